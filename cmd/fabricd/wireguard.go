package main

import (
	"fmt"
	"log/slog"

	"github.com/vishvananda/netlink"

	"github.com/ovsfabric/ovsfabric/apiserver"
	"github.com/ovsfabric/ovsfabric/config"
	"github.com/ovsfabric/ovsfabric/controller"
	"github.com/ovsfabric/ovsfabric/wireguard"
)

// startWireGuard brings up the WireGuard interface of --encryption wireguard (kernel
// WireGuard when the kernel has it, else embedded wireguard-go, or as
// --wireguard-implementation says), with the fabric MTU, and gives it and this host's key
// to the loop. Without encryption it does nothing and returns a nil device. A userspace
// device lives in fabricd: closing it (at exit) removes the interface, and its routes with
// it; the guard routes stay, so nothing leaves in clear.
func startWireGuard(s config.Settings, ctrl *controller.Controller, log *slog.Logger) (*wireguard.Device, error) {
	if !s.Encrypted() {
		removeKernelWireGuard(s.WireGuardInterface, log)
		return nil, nil
	}
	mtu, err := s.MTU()
	if err != nil {
		return nil, err
	}
	impl := wireguard.Implementation(s.WireGuardImplementation)
	if impl == "auto" {
		impl = wireguard.Auto
	}
	dev, err := wireguard.Open(wireguard.Options{Name: s.WireGuardInterface, MTU: mtu, Implementation: impl, Logger: log.With("component", "wireguard")})
	if err != nil {
		return nil, fmt.Errorf("--encryption wireguard: %w", err)
	}
	if err := ctrl.SetWireGuard(dev); err != nil {
		_ = dev.Close()
		return nil, fmt.Errorf("--wireguard-key-file: %w", err)
	}
	log.Info("encryption: WireGuard", "interface", dev.Name(), "implementation", dev.Implementation(), "mtu", mtu, "port", s.WireGuardPort)
	return dev, nil
}

// serveWireGuard gives the API the key rotation, with encryption.
func serveWireGuard(s config.Settings, ctrl *controller.Controller, srv *apiserver.Server) {
	if s.Encrypted() {
		srv.SetWireGuard(ctrl)
	}
}

// removeKernelWireGuard deletes the kernel WireGuard link a previous run with encryption left
// (kernel WireGuard outlives fabricd, so that a restart never interrupts it), once fabricd runs
// with --encryption none. A userspace device went with its process; any other link of that
// name is not fabricd's and stays.
func removeKernelWireGuard(name string, log *slog.Logger) {
	link, err := netlink.LinkByName(name)
	if err != nil || link.Type() != "wireguard" {
		return
	}
	dev, err := wireguard.Open(wireguard.Options{Name: name, Implementation: wireguard.Kernel})
	if err == nil {
		err = dev.Delete()
	}
	if err != nil {
		log.Warn("encryption is off but the WireGuard link of a previous run stays", "interface", name, "err", err)
		return
	}
	log.Info("encryption is off: removed the WireGuard link of a previous run", "interface", name)
}

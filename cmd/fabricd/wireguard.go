package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"

	"github.com/vishvananda/netlink"

	"github.com/ovsfabric/ovsfabric/apiserver"
	"github.com/ovsfabric/ovsfabric/config"
	"github.com/ovsfabric/ovsfabric/controller"
	"github.com/ovsfabric/ovsfabric/wireguard"
)

// deviceProgram is the userspace WireGuard device process's program (cmd/ovsfabric-wg).
const deviceProgram = "ovsfabric-wg"

// wireguardPidfile is where the userspace device process records its PID: beside fabricd's
// API socket (its run-time state, /run/ovsfabric by default), named after the interface.
func wireguardPidfile(s config.Settings) string {
	return filepath.Join(filepath.Dir(s.APISocket), "wireguard-"+s.WireGuardInterface+".pid")
}

// deviceBinary finds ovsfabric-wg: beside fabricd's own binary (make install, the package,
// the lab), else in $PATH.
func deviceBinary() (string, error) {
	if self, err := os.Executable(); err == nil {
		p := filepath.Join(filepath.Dir(self), deviceProgram)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p, nil
		}
	}
	p, err := exec.LookPath(deviceProgram)
	if err != nil {
		return "", fmt.Errorf("userspace WireGuard runs in %s, found neither beside fabricd nor in $PATH: %w", deviceProgram, err)
	}
	return p, nil
}

// startWireGuard brings up the WireGuard interface of --encryption wireguard (kernel
// WireGuard when the kernel has it, else wireguard-go in its own process, ovsfabric-wg, or
// as --wireguard-implementation says), with the fabric MTU, and gives it and this host's key
// to the loop. Without encryption it removes what an encrypted run left and returns a nil
// device. Both kinds outlive fabricd (Close leaves them running), so a restart does not
// disturb encrypted traffic; a userspace device process that dies is started again and
// the loop kicked to configure it.
func startWireGuard(s config.Settings, ctrl *controller.Controller, log *slog.Logger) (*wireguard.Device, error) {
	if !s.Encrypted() {
		removeKernelWireGuard(s.WireGuardInterface, log)
		stopWireGuardProcess(s, log)
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
	opts := wireguard.Options{Name: s.WireGuardInterface, MTU: mtu, Implementation: impl, Logger: log.With("component", "wireguard")}
	// With kernel WireGuard asked for, the device process matters only to end one an
	// earlier run left (Open does).
	switch bin, err := deviceBinary(); {
	case err == nil:
		opts.Process = &wireguard.ProcessOptions{Binary: bin, Pidfile: wireguardPidfile(s), OnRestart: ctrl.Kick}
	case impl != wireguard.Kernel:
		return nil, fmt.Errorf("--encryption wireguard: %w", err)
	}
	dev, err := wireguard.Open(opts)
	if err != nil {
		return nil, fmt.Errorf("--encryption wireguard: %w", err)
	}
	if err := ctrl.SetWireGuard(dev); err != nil {
		_ = dev.Close()
		return nil, fmt.Errorf("--wireguard-key-file: %w", err)
	}
	log.Info("encryption: WireGuard", "interface", dev.Name(), "implementation", dev.Implementation(), "pid", dev.PID(), "mtu", mtu, "port", s.WireGuardPort)
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

// stopWireGuardProcess ends the userspace device process an encrypted run left (it outlives
// fabricd), once fabricd runs with --encryption none.
func stopWireGuardProcess(s config.Settings, log *slog.Logger) {
	found, err := wireguard.StopProcess(s.WireGuardInterface, deviceProgram, wireguardPidfile(s))
	switch {
	case err != nil:
		log.Warn("encryption is off but the WireGuard device process of a previous run stays", "interface", s.WireGuardInterface, "err", err)
	case found:
		// No pause before the tunnel ports come back: a datapath flow that passes VXLAN to the
		// kernel (translated while there was no tunnel port) is purged when the first tunnel
		// port appears (controller/tnlpurge.go).
		log.Info("encryption is off: stopped the WireGuard device process of a previous run", "interface", s.WireGuardInterface)
	}
}

// deleteWireGuard removes the WireGuard interface (kernel link or device process) when
// fabricd leaves the fabric: nothing of it should stay behind.
func deleteWireGuard(dev *wireguard.Device, log *slog.Logger) {
	if dev == nil {
		return
	}
	if err := dev.Delete(); err != nil {
		log.Warn("left the fabric but the WireGuard interface stays", "interface", dev.Name(), "err", err)
		return
	}
	log.Info("left the fabric: WireGuard interface removed", "interface", dev.Name())
}

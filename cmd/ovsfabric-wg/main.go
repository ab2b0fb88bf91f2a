// Command ovsfabric-wg runs one userspace WireGuard interface (wireguard-go on a TUN) for
// fabricd, in a process of its own so that encrypted traffic keeps flowing while fabricd
// restarts, as it does with kernel WireGuard. fabricd starts it (--encryption wireguard where
// the kernel has no WireGuard), configures it through the UAPI socket
// /var/run/wireguard/<interface>.sock, adopts it after a restart through its pidfile, and
// stops it (SIGTERM: the interface goes) on `fabricctl leave` or when restarted with
// --encryption none. It starts with no key and no peers and is not meant to be run by hand:
//
//	ovsfabric-wg --interface wgfab0 --mtu 1440 --pidfile /run/ovsfabric/wireguard-wgfab0.pid
package main

import (
	"context"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/ovsfabric/ovsfabric/wireguard"
)

func main() {
	name := flag.String("interface", "wgfab0", "name of the WireGuard interface")
	mtu := flag.Int("mtu", wireguard.DefaultMTU, "MTU of the interface")
	pidfile := flag.String("pidfile", "", "where to write this process's PID once the interface is up (required)")
	debug := flag.Bool("debug", false, "log wireguard-go's debug messages")
	flag.Parse()
	level := slog.LevelInfo
	if *debug {
		level = slog.LevelDebug
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level})).With("component", "ovsfabric-wg", "pid", os.Getpid())
	// SIGHUP is ignored: the device must outlive the session that started it.
	signal.Ignore(syscall.SIGHUP, syscall.SIGPIPE)
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	defer stop()
	log.Info("starting", "interface", *name, "mtu", *mtu)
	if err := wireguard.Serve(ctx, wireguard.ServeOptions{Name: *name, MTU: *mtu, Pidfile: *pidfile, Logger: log}); err != nil {
		fmt.Fprintln(os.Stderr, "ovsfabric-wg:", err)
		os.Exit(1)
	}
	log.Info("stopped: interface removed", "interface", *name)
}

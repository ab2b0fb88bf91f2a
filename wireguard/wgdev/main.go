// Command wgdev runs one WireGuard interface with package wireguard, for experiments and the
// design spike of docs/encryption.md (this machine has no `wg` tool and no kernel WireGuard):
//
//	wgdev pubkey KEYFILE                 # the public key of KEYFILE (created, 0600, when missing)
//	wgdev up [-netns PATH] -name wgfab0 -key KEYFILE [-port 51820] [-mtu 1440] \
//	    [-peer PUBKEY,IP:PORT,CIDR+CIDR …]  # runs until SIGINT/SIGTERM, then removes the interface
//	wgdev show NAME                      # `wg show` of a userspace (any namespace) or kernel device
package main

import (
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl"

	"github.com/ovsfabric/ovsfabric/wireguard"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "wgdev:", err)
		os.Exit(1)
	}
}

type peerFlags []wireguard.Peer

func (p *peerFlags) String() string { return fmt.Sprint(len(*p), " peers") }

// Set parses PUBKEY,IP:PORT,CIDR+CIDR (the endpoint may be empty).
func (p *peerFlags) Set(s string) error {
	f := strings.Split(s, ",")
	if len(f) != 3 {
		return errors.New("want PUBKEY,IP:PORT,CIDR[+CIDR…]")
	}
	k, err := wireguard.ParseKey(f[0])
	if err != nil {
		return err
	}
	peer := wireguard.Peer{PublicKey: k}
	if f[1] != "" {
		if peer.Endpoint, err = netip.ParseAddrPort(f[1]); err != nil {
			return err
		}
	}
	for _, c := range strings.Split(f[2], "+") {
		pfx, err := netip.ParsePrefix(c)
		if err != nil {
			return err
		}
		peer.AllowedIPs = append(peer.AllowedIPs, pfx)
	}
	*p = append(*p, peer)
	return nil
}

func run(args []string) error {
	if len(args) == 0 {
		return errors.New("usage: wgdev pubkey|up|show …")
	}
	switch args[0] {
	case "pubkey":
		if len(args) != 2 {
			return errors.New("usage: wgdev pubkey KEYFILE")
		}
		k, _, err := wireguard.LoadOrCreateKey(args[1])
		if err != nil {
			return err
		}
		fmt.Println(k.PublicKey())
		return nil
	case "show":
		if len(args) != 2 {
			return errors.New("usage: wgdev show NAME")
		}
		c, err := wgctrl.New()
		if err != nil {
			return err
		}
		defer c.Close()
		d, err := c.Device(args[1])
		if err != nil {
			return err
		}
		fmt.Printf("%s %s: public key %s, port %d\n", d.Name, d.Type, d.PublicKey, d.ListenPort)
		for _, p := range d.Peers {
			hs := "never"
			if p.LastHandshakeTime.Unix() > 0 {
				hs = time.Since(p.LastHandshakeTime).Round(time.Second).String() + " ago"
			}
			fmt.Printf("  peer %s endpoint %v allowed %v handshake %s rx %d tx %d\n", p.PublicKey, p.Endpoint, p.AllowedIPs, hs, p.ReceiveBytes, p.TransmitBytes)
		}
		return nil
	case "up":
	default:
		return fmt.Errorf("unknown command %q", args[0])
	}
	fs := flag.NewFlagSet("up", flag.ContinueOnError)
	name := fs.String("name", "wgfab0", "interface name")
	netns := fs.String("netns", "", "network namespace path (default: this process's)")
	keyFile := fs.String("key", "", "private key file")
	port := fs.Int("port", 51820, "UDP listen port")
	mtu := fs.Int("mtu", wireguard.DefaultMTU, "interface MTU")
	impl := fs.String("impl", "", "kernel, userspace or empty for auto")
	var peers peerFlags
	fs.Var(&peers, "peer", "PUBKEY,IP:PORT,CIDR[+CIDR] (repeatable)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	if *keyFile == "" {
		return errors.New("-key is required")
	}
	key, _, err := wireguard.LoadOrCreateKey(*keyFile)
	if err != nil {
		return err
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	d, err := wireguard.Open(wireguard.Options{Name: *name, MTU: *mtu, NetNS: *netns, Implementation: wireguard.Implementation(*impl), Logger: log})
	if err != nil {
		return err
	}
	defer d.Delete()
	if _, err := d.Set(wireguard.Config{PrivateKey: key, ListenPort: *port, Peers: peers}); err != nil {
		return err
	}
	log.Info("up", "name", d.Name(), "implementation", d.Implementation(), "public_key", key.PublicKey().String(), "port", *port)
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	<-sig
	return nil
}

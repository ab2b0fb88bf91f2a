package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/labtest"
	"github.com/ovsfabric/ovsfabric/wireguard"
)

// wgMarker is the ping payload pattern that must never cross the underlay in clear.
const wgMarker = "0fab5ec7deadbeef"

// TestWireGuardDataPath builds the data path docs/encryption.md chose, by hand on two lab
// hosts and without fabricd (which does not wire it yet): containers behind br-int's gateway
// port, the host kernel routing peer slices into a wireguard.Device, the guard routes and the
// nftables isolation. It checks that containers reach each other, that an underlay capture
// during a marker ping holds only WireGuard (and never the marker), that a second network on
// h2 is unreachable from h1's network, and that with h1's WireGuard gone and a default route
// present nothing leaks in clear.
func TestWireGuardDataPath(t *testing.T) {
	requireLab(t)
	labtest.Require(t, "the WireGuard data path lab test", "tcpdump", "nft", "iperf3", "ethtool")
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	l := upLab(t, ctx, 2, false)
	h1, h2 := l.Hosts[0], l.Hosts[1]
	idb := make([]byte, 3)
	if _, err := rand.Read(idb); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(idb)
	netA, netB := netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("10.245.0.0/16")
	// slices[i] are host i's slices: h1 serves network A, h2 networks A and B.
	slices := [][]netip.Prefix{{netip.MustParsePrefix("10.244.1.0/24")}, {netip.MustParsePrefix("10.244.2.0/24"), netip.MustParsePrefix("10.245.2.0/24")}}
	const mtu = 1440 // underlay 1500 − 60 (WireGuard over IPv4)
	run := func(h *lab.Host, name string, args ...string) string {
		t.Helper()
		out, err := h.Run(ctx, name, args...)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	var devs []*wireguard.Device
	var keys []wireguard.Key
	containers := map[string]string{} // container netns by IP
	for i, h := range l.Hosts {
		if _, err := h.Vsctl(ctx, "add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type="+l.Datapath, "fail_mode=standalone",
			"--", "add-port", "br-int", "fabric0", "--", "set", "interface", "fabric0", "type=internal"); err != nil {
			t.Fatal(err)
		}
		for _, s := range slices[i] {
			run(h, "ip", "addr", "add", netip.PrefixFrom(s.Addr().Next(), s.Bits()).String(), "dev", "fabric0")
		}
		run(h, "ip", "link", "set", "fabric0", "mtu", fmt.Sprint(mtu), "up")
		run(h, "sysctl", "-qw", "net.ipv4.ip_forward=1", "net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.fabric0.send_redirects=0")
		for k, s := range slices[i] {
			ip := s.Addr().Next().Next()
			cns, err := l.AddNetNS(ctx, h, fmt.Sprintf("c%d", k))
			if err != nil {
				t.Fatal(err)
			}
			cname := filepath.Base(cns)
			port := fmt.Sprintf("c%d", k)
			run(h, "ip", "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", cname)
			run(h, "sysctl", "-qw", "net.ipv4.conf."+port+".arp_ignore=8")
			run(h, "ip", "link", "set", port, "up")
			if _, err := h.Vsctl(ctx, "add-port", "br-int", port); err != nil {
				t.Fatal(err)
			}
			for _, args := range [][]string{
				{"ip", "addr", "add", netip.PrefixFrom(ip, s.Bits()).String(), "dev", "eth0"},
				{"ip", "link", "set", "eth0", "mtu", fmt.Sprint(mtu), "up"},
				{"ip", "route", "add", "default", "via", s.Addr().Next().String()},
				{"ethtool", "-K", "eth0", "tx", "off"},
			} {
				if out, err := lab.RunIn(ctx, cname, args[0], args[1:]...); err != nil {
					t.Fatalf("%v: %s", err, out)
				}
			}
			containers[ip.String()] = cname
		}
		key, _, err := wireguard.LoadOrCreateKey(filepath.Join(h.Dir, "wireguard.key"))
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, key)
		// Names are machine-wide for a userspace device (its UAPI socket): unique per test run.
		d, err := wireguard.Open(wireguard.Options{Name: fmt.Sprintf("wge%s%d", id, i+1), MTU: mtu, NetNS: h.NetNSPath()})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := d.Delete(); err != nil {
				t.Errorf("%s: %v", h.Name, err)
			}
		})
		devs = append(devs, d)
	}
	for i, h := range l.Hosts {
		o := 1 - i
		peer := l.Hosts[o]
		if _, err := devs[i].Set(wireguard.Config{PrivateKey: keys[i], ListenPort: 51820, Peers: []wireguard.Peer{{
			PublicKey: keys[o].PublicKey(), Endpoint: netip.AddrPortFrom(peer.UnderlayIP, 51820),
			AllowedIPs: slices[o], PersistentKeepalive: 25 * time.Second,
		}}}); err != nil {
			t.Fatal(err)
		}
		wg := devs[i].Name()
		for _, n := range []netip.Prefix{netA, netB} {
			run(h, "ip", "route", "add", "unreachable", n.String(), "proto", "147")
		}
		for _, s := range slices[o] {
			run(h, "ip", "route", "add", s.String(), "dev", wg, "proto", "147")
		}
		var from []string
		for _, s := range slices[i] {
			n := netA
			if netB.Contains(s.Addr()) {
				n = netB
			}
			from = append(from, n.String()+" . "+s.String())
		}
		nft := fmt.Sprintf(`table ip ovsfab_wgtest {
	set from_wg { type ipv4_addr . ipv4_addr; flags interval; elements = { %s } }
	set to_wg { type ipv4_addr . ipv4_addr; flags interval; elements = { %s . %s, %s . %s } }
	chain forward {
		type filter hook forward priority filter; policy accept;
		iifname %q ip saddr . ip daddr @from_wg accept
		iifname %q counter drop
		oifname %q ip saddr . ip daddr @to_wg accept
		oifname %q counter drop
	}
	chain input {
		type filter hook input priority filter; policy accept;
		iifname %q ip saddr . ip daddr @from_wg accept
		iifname %q counter drop
	}
}
`, strings.Join(from, ", "), netA, netA, netB, netB, wg, wg, wg, wg, wg, wg)
		file := filepath.Join(h.Dir, "wg-isolation.nft")
		if err := os.WriteFile(file, []byte(nft), 0o600); err != nil {
			t.Fatal(err)
		}
		run(h, "nft", "-f", file)
	}

	ping := func(from, to string, extra ...string) error {
		args := append([]string{"-c", "1", "-W", "1"}, extra...)
		_, err := lab.RunIn(ctx, containers[from], "ping", append(args, to)...)
		return err
	}
	eventually(t, 30*time.Second, "c1 (h1) reaches c2 (h2) over WireGuard", func() error { return ping("10.244.1.2", "10.244.2.2") })
	eventually(t, 10*time.Second, "c2 (h2) reaches c1 (h1) over WireGuard", func() error { return ping("10.244.2.2", "10.244.1.2") })

	// capture runs fn while tcpdump records the underlay; it returns the capture.
	capture := func(name string, fn func()) []byte {
		t.Helper()
		file := filepath.Join(l.Dir, name+".pcap")
		p, err := l.StartIn(ctx, l.Underlay, "tcpdump-"+name, []string{"tcpdump", "-i", "br0", "-U", "-s", "0", "-w", file}, nil)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second) // tcpdump attaches
		fn()
		time.Sleep(500 * time.Millisecond)
		if err := p.Stop(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	marker, _ := hex.DecodeString(wgMarker)
	pcap := capture("marker", func() {
		for _, dst := range []string{"10.244.2.2"} {
			if out, err := lab.RunIn(ctx, containers["10.244.1.2"], "ping", "-c", "5", "-i", "0.2", "-s", "1000", "-p", wgMarker, dst); err != nil {
				t.Errorf("marker ping: %v\n%s", err, out)
			}
		}
	})
	if n := bytes.Count(pcap, marker); n != 0 {
		t.Errorf("the marker crossed the underlay in clear %d times", n)
	}
	file := filepath.Join(l.Dir, "marker.pcap")
	if out, err := lab.RunIn(ctx, l.Underlay, "tcpdump", "-nr", file, "ip and not udp port 51820 and not igmp"); err != nil {
		t.Errorf("read the capture: %v", err)
	} else if f := filterTcpdump(out); f != "" {
		t.Errorf("IPv4 other than WireGuard crossed the underlay:\n%s", f)
	}
	if out, _ := lab.RunIn(ctx, l.Underlay, "tcpdump", "-nr", file, "udp port 51820"); strings.Count(filterTcpdump(out), "\n") < 9 {
		t.Errorf("the capture holds too little WireGuard traffic for 5 pings (is it capturing?):\n%s", out)
	}

	// Isolation: h1's network A must not reach h2's network B, its container nor its gateway.
	// A container's attempt is stopped by its own host (h1 sends nothing); what h1 itself
	// sends (from its gateway address, allowed by WireGuard) is stopped by the receiving host.
	for _, dst := range []string{"10.245.2.2", "10.245.2.1"} {
		if err := ping("10.244.1.2", dst); err == nil {
			t.Errorf("c1 (network 10.244.0.0/16) reaches %s (network 10.245.0.0/16)", dst)
		}
	}
	if out, err := h1.Run(ctx, "ping", "-c", "1", "-W", "1", "-I", "10.244.1.1", "10.245.2.2"); err == nil {
		t.Errorf("h1's 10.244.1.1 reaches 10.245.2.2 (network 10.245.0.0/16):\n%s", out)
	}
	for _, c := range []struct {
		h     *lab.Host
		match string
	}{
		{h1, fmt.Sprintf("oifname %q counter packets 0 ", devs[0].Name())},
		{h2, fmt.Sprintf("iifname %q counter packets 0 ", devs[1].Name())},
	} {
		if out := run(c.h, "nft", "list", "chain", "ip", "ovsfab_wgtest", "forward"); strings.Contains(out, c.match) {
			t.Errorf("%s's isolation drop counted nothing:\n%s", c.h.Name, out)
		}
	}

	// TCP across the encrypted link.
	srv, err := l.StartIn(ctx, containers["10.244.2.2"], "iperf3", []string{"iperf3", "-s", "-1", "-B", "10.244.2.2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(5 * time.Second)
	var out string
	for try := 0; try < 20; try++ {
		if out, err = lab.RunIn(ctx, containers["10.244.1.2"], "iperf3", "-c", "10.244.2.2", "-t", "3", "-f", "m"); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("iperf3 over WireGuard: %v\n%s", err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "receiver") {
			t.Logf("iperf3 over WireGuard: %s", strings.Join(strings.Fields(line), " "))
		}
	}
	st, err := devs[0].Status()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("h1:\n%s", st)

	// No clear-text fallback: h1's WireGuard goes away (its routes with it) while h1 has a
	// default route to h2, which forwards. The guard route must keep the marker off the wire.
	if err := devs[0].Delete(); err != nil {
		t.Fatal(err)
	}
	run(h1, "ip", "route", "add", "default", "via", h2.UnderlayIP.String())
	pcap = capture("fallback", func() {
		if err := ping("10.244.1.2", "10.244.2.2", "-p", wgMarker); err == nil {
			t.Errorf("c1 reaches c2 with h1's WireGuard gone")
		}
	})
	if n := bytes.Count(pcap, marker); n != 0 {
		t.Errorf("with h1's WireGuard gone, the marker crossed the underlay in clear %d times", n)
	}
}

// filterTcpdump drops tcpdump's "reading from file" banner.
func filterTcpdump(out string) string {
	var keep []string
	for _, line := range strings.Split(out, "\n") {
		if line != "" && !strings.HasPrefix(line, "reading from file") {
			keep = append(keep, line)
		}
	}
	return strings.Join(keep, "\n")
}

package wireguard

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.zx2c4.com/wireguard/wgctrl/wgtypes"

	"github.com/ovsfabric/ovsfabric/lab/labtest"
)

func mustKey(t *testing.T) Key {
	t.Helper()
	k, err := wgtypes.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestConfigValidate(t *testing.T) {
	priv, a, b := mustKey(t), mustKey(t).PublicKey(), mustKey(t).PublicKey()
	p24 := netip.MustParsePrefix("10.244.1.0/24")
	for _, tc := range []struct {
		name string
		cfg  Config
		want string // "" = valid
	}{
		{"valid", Config{PrivateKey: priv, ListenPort: 51820, Peers: []Peer{
			{PublicKey: a, Endpoint: netip.MustParseAddrPort("172.30.0.12:51820"), AllowedIPs: []netip.Prefix{p24}, PersistentKeepalive: 25 * time.Second},
			{PublicKey: b, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}}}}, ""},
		{"no private key", Config{}, "no private key"},
		{"port", Config{PrivateKey: priv, ListenPort: 70000}, "listen port"},
		{"zero peer key", Config{PrivateKey: priv, Peers: []Peer{{}}}, "without public key"},
		{"own key", Config{PrivateKey: priv, Peers: []Peer{{PublicKey: priv.PublicKey()}}}, "own public key"},
		{"twice", Config{PrivateKey: priv, Peers: []Peer{{PublicKey: a}, {PublicKey: a}}}, "listed twice"},
		{"endpoint without port", Config{PrivateKey: priv, Peers: []Peer{{PublicKey: a, Endpoint: netip.MustParseAddrPort("172.30.0.12:0")}}}, "endpoint"},
		{"host bits", Config{PrivateKey: priv, Peers: []Peer{{PublicKey: a, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.244.1.1/24")}}}}, "host bits"},
		{"shared prefix", Config{PrivateKey: priv, Peers: []Peer{{PublicKey: a, AllowedIPs: []netip.Prefix{p24}}, {PublicKey: b, AllowedIPs: []netip.Prefix{p24}}}}, "two peers"},
		{"keepalive fraction", Config{PrivateKey: priv, Peers: []Peer{{PublicKey: a, PersistentKeepalive: 1500 * time.Millisecond}}}, "keepalive"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Fatalf("validate = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestDiff(t *testing.T) {
	priv, a, b := mustKey(t), mustKey(t).PublicKey(), mustKey(t).PublicKey()
	ep := netip.MustParseAddrPort("172.30.0.12:51820")
	n24 := net.IPNet{IP: net.IPv4(10, 244, 1, 0), Mask: net.CIDRMask(24, 32)} // 16-byte IP, as the kernel may report
	cur := &wgtypes.Device{PrivateKey: priv, ListenPort: 51820, Peers: []wgtypes.Peer{
		{PublicKey: a, Endpoint: net.UDPAddrFromAddrPort(ep), AllowedIPs: []net.IPNet{n24}, PersistentKeepaliveInterval: 0},
	}}
	same := Config{PrivateKey: priv, ListenPort: 51820, Peers: []Peer{{PublicKey: a, Endpoint: ep, AllowedIPs: []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24")}}}}
	if d := diff(cur, same); d != nil {
		t.Errorf("matching config: diff %+v", d)
	}
	roam := same
	roam.Peers = []Peer{{PublicKey: a, AllowedIPs: same.Peers[0].AllowedIPs}}
	if d := diff(cur, roam); d != nil {
		t.Errorf("no endpoint wanted (keep the learnt one): diff %+v", d)
	}
	anyPort := same
	anyPort.ListenPort = 0
	if d := diff(cur, anyPort); d != nil {
		t.Errorf("listen port 0 (keep): diff %+v", d)
	}
	swap := Config{PrivateKey: priv, ListenPort: 51820, Peers: []Peer{{PublicKey: b, AllowedIPs: same.Peers[0].AllowedIPs}}}
	d := diff(cur, swap)
	if d == nil || len(d.Peers) != 2 || !d.Peers[0].Remove || d.Peers[0].PublicKey != a || d.Peers[1].PublicKey != b || !d.Peers[1].ReplaceAllowedIPs {
		t.Fatalf("peer replaced: diff %+v, want removal of a first, then b", d)
	}
	if d.PrivateKey != nil || d.ListenPort != nil {
		t.Errorf("unchanged key or port sent: %+v", d)
	}
	ka := same
	ka.Peers = []Peer{{PublicKey: a, Endpoint: ep, AllowedIPs: same.Peers[0].AllowedIPs, PersistentKeepalive: 5 * time.Second}}
	if d := diff(cur, ka); d == nil || len(d.Peers) != 1 || d.Peers[0].PersistentKeepaliveInterval == nil || d.Peers[0].ReplaceAllowedIPs || d.Peers[0].Endpoint != nil {
		t.Errorf("keepalive change: diff %+v, want only the keepalive", d)
	}
}

// TestDevicesPing brings up two Devices in two network namespaces joined by a veth (the
// "underlay"), has them handshake and ping through the WireGuard link, checks that a second
// identical Set changes nothing, that a peer removed from Set carries no more traffic and that
// a bad Set changes nothing. Userspace wireguard-go here; the kernel's where it has WireGuard.
func TestDevicesPing(t *testing.T) {
	labtest.Require(t, "the WireGuard device test (network namespaces, TUN)", "ip", "ping")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	id, nsA, nsB := twoNetNS(t, ctx)
	keys := []Key{mustKey(t), mustKey(t)}
	devs := devicePair(t, ctx, "wgt"+id, nsA, nsB)
	cfg := func(i int, withPeer bool) Config {
		c := Config{PrivateKey: keys[i], ListenPort: 51820 + i}
		if withPeer {
			o := 1 - i
			c.Peers = []Peer{{PublicKey: keys[o].PublicKey(), Endpoint: netip.MustParseAddrPort(fmt.Sprintf("%s:%d", under[o], 51820+o)),
				AllowedIPs: []netip.Prefix{netip.MustParsePrefix(inner[o] + "/32")}, PersistentKeepalive: 0}}
		}
		return c
	}
	for i, d := range devs {
		if changed, err := d.Set(cfg(i, true)); err != nil || !changed {
			t.Fatalf("%s: first Set: changed=%v err=%v", d.Name(), changed, err)
		}
	}
	if !pingUntil(ctx, nsA, inner[1], 30*time.Second) {
		t.Fatalf("no ping through the WireGuard link%s", dump(devs))
	}
	st, err := devs[0].Status()
	if err != nil {
		t.Fatal(err)
	}
	if st.PublicKey != keys[0].PublicKey() || st.ListenPort != 51820 || st.Implementation != devs[0].Implementation() || len(st.Peers) != 1 {
		t.Fatalf("status %+v", st)
	}
	p := st.Peers[0]
	if p.PublicKey != keys[1].PublicKey() || p.LastHandshake.IsZero() || p.RxBytes == 0 || p.TxBytes == 0 ||
		p.Endpoint.String() != under[1]+":51821" || len(p.AllowedIPs) != 1 || p.AllowedIPs[0].String() != inner[1]+"/32" {
		t.Fatalf("peer status %+v", p)
	}
	if devs[0].Implementation() == Userspace {
		if _, err := os.Stat("/run/wireguard/" + devs[0].Name() + ".sock"); err != nil {
			t.Errorf("UAPI socket: %v", err)
		}
	}

	// The same Set again changes nothing: the session (handshake time) and counters stay.
	for i, d := range devs {
		if changed, err := d.Set(cfg(i, true)); err != nil || changed {
			t.Fatalf("%s: second Set: changed=%v err=%v", d.Name(), changed, err)
		}
	}
	st2, err := devs[0].Status()
	if err != nil {
		t.Fatal(err)
	}
	if q := st2.Peers[0]; !q.LastHandshake.Equal(p.LastHandshake) || q.RxBytes < p.RxBytes {
		t.Errorf("second Set disturbed the session: before %+v, after %+v", p, q)
	}

	// A bad configuration is refused and changes nothing.
	bad := cfg(0, true)
	bad.Peers = append(bad.Peers, Peer{PublicKey: keys[0].PublicKey()})
	if _, err := devs[0].Set(bad); err == nil {
		t.Errorf("Set with the device's own key as a peer: no error")
	}
	if st3, err := devs[0].Status(); err != nil || len(st3.Peers) != 1 || st3.Peers[0].PublicKey != keys[1].PublicKey() {
		t.Errorf("refused Set changed the device: %+v, %v", st3, err)
	}

	// The peer removed from A's Set loses its traffic, both ways.
	if changed, err := devs[0].Set(cfg(0, false)); err != nil || !changed {
		t.Fatalf("Set without the peer: changed=%v err=%v", changed, err)
	}
	if st, _ := devs[0].Status(); len(st.Peers) != 0 {
		t.Errorf("removed peer still listed: %+v", st.Peers)
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", nsA, "ping", "-c", "2", "-W", "1", inner[1]).CombinedOutput(); err == nil {
		t.Errorf("ping to a removed peer still works:\n%s", out)
	}
	if out, err := exec.CommandContext(ctx, "ip", "netns", "exec", nsB, "ping", "-c", "2", "-W", "1", inner[0]).CombinedOutput(); err == nil {
		t.Errorf("ping from a removed peer still works:\n%s", out)
	}
	// And back.
	if _, err := devs[0].Set(cfg(0, true)); err != nil {
		t.Fatal(err)
	}
	if !pingUntil(ctx, nsA, inner[1], 30*time.Second) {
		t.Fatalf("no ping after the peer was added back%s", dump(devs))
	}
}

// checkGone closes d and checks that its interface and UAPI socket are gone.
func checkGone(t *testing.T, d *Device) {
	impl, ns := d.Implementation(), ""
	if d.ns != nil {
		ns = d.ns.Path()
	}
	if err := d.Delete(); err != nil {
		t.Errorf("delete %s: %v", d.Name(), err)
	}
	if _, err := os.Stat("/run/wireguard/" + d.Name() + ".sock"); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s: UAPI socket left: %v", d.Name(), err)
	}
	if ns != "" {
		if out, err := exec.Command("ip", "-n", filepath.Base(ns), "link", "show", d.Name()).CombinedOutput(); err == nil {
			t.Errorf("%s (%s): interface left:\n%s", d.Name(), impl, out)
		}
	}
}

func pingUntil(ctx context.Context, ns, dst string, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		if exec.CommandContext(ctx, "ip", "netns", "exec", ns, "ping", "-c", "1", "-W", "1", dst).Run() == nil {
			return true
		}
	}
	return false
}

func dump(devs []*Device) string {
	var b strings.Builder
	for _, d := range devs {
		st, err := d.Status()
		fmt.Fprintf(&b, "\n%s: %+v %v", d.Name(), st, err)
	}
	return b.String()
}

func run(t *testing.T, ctx context.Context, name string, args ...string) {
	t.Helper()
	if out, err := exec.CommandContext(ctx, name, args...).CombinedOutput(); err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
}

func randomID(t *testing.T) string {
	b := make([]byte, 3)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestOpenRefusals: what Open refuses, and that a refused Open leaves nothing behind.
func TestOpenRefusals(t *testing.T) {
	labtest.Require(t, "the WireGuard device test (network namespaces, TUN)", "ip")
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	id, nsA, nsB := twoNetNS(t, ctx)
	pathA, pathB := filepath.Join("/var/run/netns", nsA), filepath.Join("/var/run/netns", nsB)
	for _, tc := range []struct {
		name string
		opts Options
		want string
	}{
		{"empty name", Options{NetNS: pathA}, "interface name"},
		{"long name", Options{Name: "wgtoolongname123", NetNS: pathA}, "interface name"},
		{"MTU", Options{Name: "wgo" + id, MTU: 100, NetNS: pathA}, "MTU"},
		{"implementation", Options{Name: "wgo" + id, Implementation: "ipsec", NetNS: pathA}, "implementation"},
		{"no such netns", Options{Name: "wgo" + id, NetNS: "/var/run/netns/ovsfab-wgtest-" + id + "-none"}, "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if d, err := Open(tc.opts); err == nil || !strings.Contains(err.Error(), tc.want) {
				if d != nil {
					d.Delete()
				}
				t.Fatalf("Open(%+v) = %v, want %q", tc.opts, err, tc.want)
			}
		})
	}
	// Kernel WireGuard demanded where the kernel has none: a clear error, no link left.
	if _, err := os.Stat("/sys/module/wireguard"); err != nil {
		_, err := Open(Options{Name: "wgk" + id, Implementation: Kernel, NetNS: pathA})
		if err == nil || !strings.Contains(err.Error(), "kernel WireGuard unavailable") {
			t.Errorf("Open(kernel) without kernel WireGuard = %v", err)
		}
		if out, err := exec.Command("ip", "-n", nsA, "link", "show", "wgk"+id).CombinedOutput(); err == nil {
			t.Errorf("refused kernel Open left a link:\n%s", out)
		}
	}
	// Two userspace devices of one name on one machine share the UAPI socket path: the
	// second is refused (lab hosts must use distinct names) and the first keeps working.
	a, err := Open(Options{Name: "wgu" + id, Implementation: Userspace, NetNS: pathA})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { checkGone(t, a) })
	if b, err := Open(Options{Name: "wgu" + id, Implementation: Userspace, NetNS: pathB}); err == nil || !strings.Contains(err.Error(), "in use") {
		if b != nil {
			b.Delete()
		}
		t.Fatalf("second userspace device of the same name: %v, want a refusal", err)
	}
	if out, err := exec.Command("ip", "-n", nsB, "link", "show", "wgu"+id).CombinedOutput(); err == nil {
		t.Errorf("refused Open left its TUN in %s:\n%s", nsB, out)
	}
	if _, err := a.Set(Config{PrivateKey: mustKey(t)}); err != nil {
		t.Errorf("first device after the refused second: %v", err)
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Set(Config{PrivateKey: mustKey(t)}); err == nil || !strings.Contains(err.Error(), "closed") {
		t.Errorf("Set after Close: %v", err)
	}
	if _, err := a.Status(); err == nil {
		t.Errorf("Status after Close: no error")
	}
}

// under and inner are the two namespaces' underlay addresses and their WireGuard addresses.
var (
	under = []string{"192.0.2.1", "192.0.2.2"}
	inner = []string{"10.99.0.1", "10.99.0.2"}
)

// twoNetNS makes two network namespaces (loopback up), deleted when the test ends, and
// returns the random ID in their names.
func twoNetNS(t *testing.T, ctx context.Context) (id, nsA, nsB string) {
	t.Helper()
	id = randomID(t)
	nsA, nsB = "ovsfab-wgtest-"+id+"-a", "ovsfab-wgtest-"+id+"-b"
	for _, ns := range []string{nsA, nsB} {
		run(t, ctx, "ip", "netns", "add", ns)
		t.Cleanup(func() {
			if err := exec.Command("ip", "netns", "del", ns).Run(); err != nil {
				t.Errorf("delete netns %s: %v", ns, err)
			}
		})
		run(t, ctx, "ip", "-n", ns, "link", "set", "lo", "up")
	}
	return id, nsA, nsB
}

// devicePair joins nsA and nsB by a veth "u" holding the under addresses and opens a Device
// named prefix+"a" / prefix+"b" in each, with its inner address; each is checked gone when
// the test ends.
func devicePair(t *testing.T, ctx context.Context, prefix, nsA, nsB string) []*Device {
	t.Helper()
	run(t, ctx, "ip", "link", "add", "u", "netns", nsA, "type", "veth", "peer", "name", "u", "netns", nsB)
	var devs []*Device
	for i, ns := range []string{nsA, nsB} {
		run(t, ctx, "ip", "-n", ns, "addr", "add", under[i]+"/24", "dev", "u")
		run(t, ctx, "ip", "-n", ns, "link", "set", "u", "up")
		d, err := Open(Options{Name: fmt.Sprintf("%s%c", prefix, 'a'+i), NetNS: filepath.Join("/var/run/netns", ns), MTU: 1440})
		if err != nil {
			t.Fatal(err)
		}
		devs = append(devs, d)
		t.Cleanup(func() { checkGone(t, d) })
		t.Logf("%s: %s WireGuard", d.Name(), d.Implementation())
		run(t, ctx, "ip", "-n", ns, "addr", "add", inner[i]+"/24", "dev", d.Name())
	}
	return devs
}

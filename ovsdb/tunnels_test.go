package ovsdb

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestReconcileTunnels(t *testing.T) {
	eachBackend(t, func(t *testing.T, ep string) {
		ctx := context.Background()
		c, raw := dial(t, ep), rawClient(t, ep)
		ensureBridge(t, c, "br-int", "h1")
		// Ports others made on the same bridge must survive every step: one without any
		// owner (an operator's ovs-vsctl add-port), and another node's tunnel.
		rawAddPort(t, raw, "br-int", "foreign0", "internal", nil)
		rawAddPort(t, raw, "br-int", "vxl-h2", "vxlan", map[string]string{KeyOwner: "h2", KeyRole: RoleTunnel})
		if err := c.EnsurePort(ctx, "br-int", PortSpec{Name: "fabric0", Type: "internal", Owner: "h1", Role: RoleGateway}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "foreign ports in cache", func() bool { return strings.Contains(portNames(t, c, "br-int"), "vxl-h2") })

		gre := func(name, remote string) TunnelSpec {
			return TunnelSpec{Name: name, Type: "gre", RemoteIP: netip.MustParseAddr(remote), Peer: "peer-" + name, Protected: true}
		}
		with := func(ts TunnelSpec, f func(*TunnelSpec)) TunnelSpec { f(&ts); return ts }
		a, b := tun("vxl-a", "172.30.0.12"), tun("vxl-b", "172.30.0.13")
		steps := []struct {
			name                    string
			desired                 []TunnelSpec
			added, updated, removed string
		}{
			{"add two", []TunnelSpec{a, b}, "vxl-a,vxl-b", "", ""},
			{"same again, other order", []TunnelSpec{b, a}, "", "", ""},
			{"a flow-based port beside the ports per peer", []TunnelSpec{a, b, flowTun("vxlan-flow", "vxlan")}, "vxlan-flow", "", ""},
			{"switch: ports per peer go as the flow port stays, one transaction", []TunnelSpec{flowTun("vxlan-flow", "vxlan")}, "", "", "vxl-a,vxl-b"},
			{"and back: ports per peer come as the flow port goes", []TunnelSpec{a, b}, "vxl-a,vxl-b", "", "vxlan-flow"},
			{"remote ip changes", []TunnelSpec{with(a, func(t *TunnelSpec) { t.RemoteIP = netip.MustParseAddr("172.30.0.22") }), b}, "", "vxl-a", ""},
			{"type changes", []TunnelSpec{with(a, func(t *TunnelSpec) { t.RemoteIP = netip.MustParseAddr("172.30.0.22") }), gre("vxl-b", "172.30.0.13")}, "", "vxl-b", ""},
			{"key and options change", []TunnelSpec{
				with(a, func(t *TunnelSpec) {
					t.RemoteIP, t.Key, t.Options = netip.MustParseAddr("172.30.0.22"), "4096", map[string]string{"dst_port": "4790"}
				}),
				gre("vxl-b", "172.30.0.13")}, "", "vxl-a", ""},
			{"protected and peer and ids change", []TunnelSpec{
				with(a, func(t *TunnelSpec) {
					t.RemoteIP, t.Key, t.Options = netip.MustParseAddr("172.30.0.22"), "4096", map[string]string{"dst_port": "4790"}
					t.Protected, t.Peer, t.ExternalIDs = false, "renamed", map[string]string{"ovsfabric-subnet": "10.244.9.0/24"}
				}),
				gre("vxl-b", "172.30.0.13")}, "", "vxl-a", ""},
			{"ipv6, one removed, one added", []TunnelSpec{gre("vxl-b", "172.30.0.13"), tun("vxl-c", "fd00::14")}, "vxl-c", "", "vxl-a"},
			{"all removed", nil, "", "", "vxl-b,vxl-c"},
			{"nothing to remove", nil, "", "", ""},
		}
		for _, st := range steps {
			t.Run(st.name, func(t *testing.T) {
				before := c.Transactions()
				res, err := c.ReconcileTunnels(ctx, "br-int", "h1", st.desired)
				if err != nil {
					t.Fatal(err)
				}
				j := func(s []string) string { return strings.Join(s, ",") }
				if j(res.Added) != st.added || j(res.Updated) != st.updated || j(res.Removed) != st.removed {
					t.Errorf("result %+v, want added %q updated %q removed %q", res, st.added, st.updated, st.removed)
				}
				wantSent := uint64(1)
				if st.added == "" && st.updated == "" && st.removed == "" {
					wantSent = 0
				}
				if sent := c.Transactions() - before; sent != wantSent || res.Transacted != (wantSent == 1) {
					t.Errorf("%d transactions (Transacted=%v), want %d", sent, res.Transacted, wantSent)
				}
				// Idempotent, and the cache already shows the commit: the same input again sends nothing.
				expectNoWrite(t, c, "repeat", func() {
					if res, err := c.ReconcileTunnels(ctx, "br-int", "h1", st.desired); err != nil || res.Transacted {
						t.Errorf("repeat: %+v %v", res, err)
					}
				})
				// What OVSDB holds is exactly what was asked for.
				var tunnels []string
				for _, d := range st.desired {
					tunnels = append(tunnels, d.Name)
					p, ok := port(t, c, "br-int", d.Name)
					if !ok {
						t.Errorf("port %s missing", d.Name)
						continue
					}
					w := d.want("h1")
					if p.Type != d.Type || !maps.Equal(p.Options, w.options) || p.Protected != d.Protected ||
						!maps.Equal(p.ExternalIDs, w.ids) || !maps.Equal(p.IfaceExternalIDs, w.ids) || p.ExternalIDs[KeyPeer] != d.Peer {
						t.Errorf("port %s is %+v, want %+v", d.Name, p, w)
					}
				}
				inv, err := c.Owned(ctx, "h1")
				if err != nil {
					t.Fatal(err)
				}
				var owned []string
				for _, p := range inv.Ports {
					if p.Role() == RoleTunnel {
						owned = append(owned, p.Name)
					}
				}
				if j(owned) != j(slices.Sorted(slices.Values(tunnels))) {
					t.Errorf("h1's tunnels = %v, want %v", owned, tunnels)
				}
				for _, n := range []string{"foreign0", "vxl-h2", "fabric0", "br-int"} {
					if _, ok := port(t, c, "br-int", n); !ok {
						t.Errorf("port %s was removed", n)
					}
				}
			})
		}
	})
}

func TestReconcileTunnelsRejects(t *testing.T) {
	eachBackend(t, func(t *testing.T, ep string) {
		ctx := context.Background()
		c, raw := dial(t, ep), rawClient(t, ep)
		ensureBridge(t, c, "br-int", "h1")
		rawAddPort(t, raw, "br-int", "taken0", "", nil)
		rawAddPort(t, raw, "br-int", "vxl-h2", "vxlan", map[string]string{KeyOwner: "h2", KeyRole: RoleTunnel})
		if err := c.EnsurePort(ctx, "br-int", PortSpec{Name: "veth1", Owner: "h1", Role: RoleContainer}); err != nil {
			t.Fatal(err)
		}
		good := tun("vxl-a", "172.30.0.12")
		if _, err := c.ReconcileTunnels(ctx, "br-int", "h1", []TunnelSpec{good}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "foreign ports in cache", func() bool { return strings.Contains(portNames(t, c, "br-int"), "vxl-h2") })
		addr := netip.MustParseAddr
		// Each case keeps vxl-a and adds something wrong: were any of it applied, vxl-a would
		// change, a port would appear, or vxl-a would go (for the empty-owner case).
		changed := tun("vxl-a", "172.30.0.99")
		for _, tc := range []struct {
			name    string
			bridge  string
			owner   string
			desired []TunnelSpec
			want    error
		}{
			{"empty name", "br-int", "h1", []TunnelSpec{changed, {Type: "vxlan", RemoteIP: addr("1.2.3.4")}}, ErrInvalid},
			{"16-byte name", "br-int", "h1", []TunnelSpec{changed, tun("vxl-0123456789ab", "172.30.0.13")}, ErrInvalid},
			{"15-byte name is fine but slash is not", "br-int", "h1", []TunnelSpec{changed, tun("vxl/0123456789a", "172.30.0.13")}, ErrInvalid},
			{"space", "br-int", "h1", []TunnelSpec{changed, tun("vxl b", "172.30.0.13")}, ErrInvalid},
			{"dot", "br-int", "h1", []TunnelSpec{changed, tun(".", "172.30.0.13")}, ErrInvalid},
			{"flow-based port with a remote ip", "br-int", "h1", []TunnelSpec{changed, func() TunnelSpec { t := flowTun("vxlan-flow", "vxlan"); t.RemoteIP = addr("1.2.3.4"); return t }()}, ErrInvalid},
			{"two flow-based ports of one type", "br-int", "h1", []TunnelSpec{changed, flowTun("vxlan-flow", "vxlan"), flowTun("vxlan-flow2", "vxlan")}, ErrInvalid},
			{"no remote ip", "br-int", "h1", []TunnelSpec{changed, {Name: "vxl-b", Type: "vxlan"}}, ErrInvalid},
			{"unspecified remote ip", "br-int", "h1", []TunnelSpec{changed, tun("vxl-b", "0.0.0.0")}, ErrInvalid},
			{"unspecified ipv6", "br-int", "h1", []TunnelSpec{changed, tun("vxl-b", "::")}, ErrInvalid},
			{"multicast", "br-int", "h1", []TunnelSpec{changed, tun("vxl-b", "239.1.1.1")}, ErrInvalid},
			{"loopback", "br-int", "h1", []TunnelSpec{changed, tun("vxl-b", "127.0.0.1")}, ErrInvalid},
			{"broadcast", "br-int", "h1", []TunnelSpec{changed, tun("vxl-b", "255.255.255.255")}, ErrInvalid},
			{"zone", "br-int", "h1", []TunnelSpec{changed, tun("vxl-b", "fe80::1%eth0")}, ErrInvalid},
			{"unknown type", "br-int", "h1", []TunnelSpec{changed, {Name: "vxl-b", Type: "geneve", RemoteIP: addr("1.2.3.4")}}, ErrInvalid},
			{"empty type", "br-int", "h1", []TunnelSpec{changed, {Name: "vxl-b", RemoteIP: addr("1.2.3.4")}}, ErrInvalid},
			{"duplicate name", "br-int", "h1", []TunnelSpec{changed, changed}, ErrInvalid},
			{"duplicate endpoint", "br-int", "h1", []TunnelSpec{changed, tun("vxl-b", "172.30.0.99")}, ErrInvalid},
			{"vni too big", "br-int", "h1", []TunnelSpec{changed, func() TunnelSpec { t := tun("vxl-b", "1.2.3.4"); t.Key = "16777216"; return t }()}, ErrInvalid},
			{"key not a number", "br-int", "h1", []TunnelSpec{changed, func() TunnelSpec { t := tun("vxl-b", "1.2.3.4"); t.Key = "0x10"; return t }()}, ErrInvalid},
			{"remote_ip in options", "br-int", "h1", []TunnelSpec{changed, {Name: "vxl-b", Type: "gre", RemoteIP: addr("1.2.3.4"), Options: map[string]string{"remote_ip": "5.6.7.8"}}}, ErrInvalid},
			{"owner in external ids", "br-int", "h1", []TunnelSpec{changed, func() TunnelSpec {
				t := tun("vxl-b", "1.2.3.4")
				t.ExternalIDs = map[string]string{KeyOwner: "h2"}
				return t
			}()}, ErrInvalid},
			{"empty owner", "br-int", "", nil, ErrInvalid},
			{"bad bridge name", "br int", "h1", []TunnelSpec{changed}, ErrInvalid},
			{"missing bridge", "br-none", "h1", []TunnelSpec{changed}, ErrNotFound},
			{"collides with a port without owner", "br-int", "h1", []TunnelSpec{changed, tun("taken0", "172.30.0.13")}, ErrNotOwned},
			{"collides with another node's tunnel", "br-int", "h1", []TunnelSpec{changed, tun("vxl-h2", "172.30.0.13")}, ErrNotOwned},
			{"collides with own container port", "br-int", "h1", []TunnelSpec{changed, tun("veth1", "172.30.0.13")}, ErrConflict},
			{"collides with the bridge's local port", "br-int", "h1", []TunnelSpec{changed, tun("br-int", "172.30.0.13")}, ErrConflict},
		} {
			t.Run(tc.name, func(t *testing.T) {
				expectNoWrite(t, c, tc.name, func() {
					_, err := c.ReconcileTunnels(ctx, tc.bridge, tc.owner, tc.desired)
					if !isErr(err, tc.want) {
						t.Errorf("err = %v, want %v", err, tc.want)
					}
				})
			})
		}
	})
}

// TestStaleCacheAbortsEverything builds a reconcile from a cache read taken before another
// client deleted one of the ports it updates: the server must abort the whole transaction.
func TestStaleCacheAbortsEverything(t *testing.T) {
	eachBackend(t, func(t *testing.T, ep string) {
		ctx := context.Background()
		c, raw := dial(t, ep), rawClient(t, ep)
		ensureBridge(t, c, "br-int", "h1")
		a, b := tun("vxl-a", "172.30.0.12"), tun("vxl-b", "172.30.0.13")
		if _, err := c.ReconcileTunnels(ctx, "br-int", "h1", []TunnelSpec{a, b}); err != nil {
			t.Fatal(err)
		}
		old, err := c.snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rawDelPort(t, raw, "br-int", "vxl-a")
		waitFor(t, "vxl-a gone", func() bool { _, ok := port(t, c, "br-int", "vxl-a"); return !ok })
		before := dump(t, c)
		a.RemoteIP, b.RemoteIP = netip.MustParseAddr("172.30.0.22"), netip.MustParseAddr("172.30.0.23")
		wants := []portWant{a.want("h1"), b.want("h1"), tun("vxl-c", "172.30.0.14").want("h1")}
		_, err = c.reconcileWith(ctx, old, "stale reconcile", "br-int", "h1", wants, nil)
		if !isErr(err, ErrStale) {
			t.Fatalf("err = %v, want ErrStale", err)
		}
		time.Sleep(50 * time.Millisecond)
		if after := dump(t, c); after != before {
			t.Errorf("an aborted transaction changed the database:\n%s\n---\n%s", before, after)
		}
		// A name taken after the cache was read: the unique index aborts the transaction.
		old, err = c.snapshot(ctx)
		if err != nil {
			t.Fatal(err)
		}
		rawAddPort(t, raw, "br-int", "vxl-c", "", nil)
		waitFor(t, "vxl-c in the cache", func() bool { _, ok := port(t, c, "br-int", "vxl-c"); return ok })
		before = dump(t, c)
		if _, err = c.reconcileWith(ctx, old, "stale reconcile", "br-int", "h1", wants, nil); !isErr(err, ErrStale) {
			t.Fatalf("err = %v, want ErrStale", err)
		}
		if after := dump(t, c); after != before {
			t.Errorf("an aborted transaction changed the database:\n%s\n---\n%s", before, after)
		}
		rawDelPort(t, raw, "br-int", "vxl-c")
		waitFor(t, "vxl-c gone", func() bool { _, ok := port(t, c, "br-int", "vxl-c"); return !ok })

		// A fresh reconcile from the current cache repairs everything.
		res, err := c.ReconcileTunnels(ctx, "br-int", "h1", []TunnelSpec{a, b})
		if err != nil || fmt.Sprint(res.Added, res.Updated) != "[vxl-a] [vxl-b]" {
			t.Errorf("reconcile after ErrStale: %+v %v", res, err)
		}
	})
}

// flowTun is a flow-based tunnel port (options:remote_ip=flow, key=flow) for every peer.
func flowTun(name, typ string) TunnelSpec {
	return TunnelSpec{Name: name, Type: typ, RemoteFlow: true, Key: "flow", Protected: true}
}

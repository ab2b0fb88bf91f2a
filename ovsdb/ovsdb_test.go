package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/ovsdb/ovsdbtest"
)

func startServer(t *testing.T) string { return ovsdbtest.Start(t) }

func dial(t *testing.T, endpoint string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	waitFor(t, "root row in cache", func() bool { _, err := c.root(ctx); return err == nil })
	return c
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func tun(name, remote string) TunnelSpec {
	return TunnelSpec{Name: name, Type: "vxlan", RemoteIP: netip.MustParseAddr(remote), Peer: "peer-" + name, Protected: true}
}

func portNames(t *testing.T, c *Client, bridge string) string {
	t.Helper()
	ps, err := c.Ports(context.Background(), bridge)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, p := range ps {
		n = append(n, p.Name)
	}
	return strings.Join(n, ",")
}

func TestBridgeAndTunnels(t *testing.T) {
	ctx := context.Background()
	c := dial(t, startServer(t))
	br := BridgeSpec{Name: "br-int", DatapathType: "netdev", FailMode: "standalone", Owner: "h1"}
	if err := c.EnsureBridge(ctx, br); err != nil {
		t.Fatal(err)
	}
	n := c.Transactions()
	if err := c.EnsureBridge(ctx, br); err != nil || c.Transactions() != n {
		t.Fatalf("second EnsureBridge: err %v, %d transactions", err, c.Transactions()-n)
	}
	if got := portNames(t, c, "br-int"); got != "br-int" {
		t.Fatalf("ports after EnsureBridge: %s", got)
	}
	// A port someone else made (no owner) must survive everything below.
	if err := c.EnsurePort(ctx, "br-int", PortSpec{Name: "foreign0", Type: "internal", Owner: "someone-else", Role: "x"}); err != nil {
		t.Fatal(err)
	}

	steps := []struct {
		name                    string
		desired                 []TunnelSpec
		added, updated, removed string
	}{
		{"add two", []TunnelSpec{tun("vxl-a", "172.30.0.12"), tun("vxl-b", "172.30.0.13")}, "vxl-a,vxl-b", "", ""},
		{"same again", []TunnelSpec{tun("vxl-b", "172.30.0.13"), tun("vxl-a", "172.30.0.12")}, "", "", ""},
		{"remote ip changes", []TunnelSpec{tun("vxl-a", "172.30.0.22"), tun("vxl-b", "172.30.0.13")}, "", "vxl-a", ""},
		{"type changes", []TunnelSpec{tun("vxl-a", "172.30.0.22"), {Name: "vxl-b", Type: "gre", RemoteIP: netip.MustParseAddr("172.30.0.13"), Peer: "peer-vxl-b", Protected: true}}, "", "vxl-b", ""},
		{"one removed, one added", []TunnelSpec{tun("vxl-a", "172.30.0.22"), tun("vxl-c", "172.30.0.14")}, "vxl-c", "", "vxl-b"},
		{"all removed", nil, "", "", "vxl-a,vxl-c"},
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
			sent := c.Transactions() - before
			wantSent := uint64(1)
			if st.added == "" && st.updated == "" && st.removed == "" {
				wantSent = 0
			}
			if sent != wantSent || res.Transacted != (wantSent == 1) {
				t.Errorf("%d transactions (Transacted=%v), want %d", sent, res.Transacted, wantSent)
			}
			// Idempotent: the same input again sends nothing.
			before = c.Transactions()
			if res, err := c.ReconcileTunnels(ctx, "br-int", "h1", st.desired); err != nil || res.Transacted || c.Transactions() != before {
				t.Errorf("repeat sent a transaction: %+v %v", res, err)
			}
			ps, _ := c.Ports(ctx, "br-int")
			for _, p := range ps {
				for _, d := range st.desired {
					if p.Name == d.Name && (p.Options["remote_ip"] != d.RemoteIP.String() || p.Type != d.Type || !p.Protected ||
						p.ExternalIDs[KeyOwner] != "h1" || p.ExternalIDs[KeyRole] != RoleTunnel || p.ExternalIDs[KeyPeer] != d.Peer) {
						t.Errorf("port %s is %+v, want %+v", p.Name, p, d)
					}
				}
			}
			if !strings.Contains(portNames(t, c, "br-int"), "foreign0") {
				t.Error("the foreign port is gone")
			}
		})
	}
}

func TestInvalidInputSendsNothing(t *testing.T) {
	ctx := context.Background()
	c := dial(t, startServer(t))
	if err := c.EnsureBridge(ctx, BridgeSpec{Name: "br-int", DatapathType: "netdev", Owner: "h1"}); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsurePort(ctx, "br-int", PortSpec{Name: "taken0", Owner: "other", Role: "x"}); err != nil {
		t.Fatal(err)
	}
	good := tun("vxl-a", "172.30.0.12")
	for _, tc := range []struct {
		name    string
		desired []TunnelSpec
		invalid bool
	}{
		{"empty name", []TunnelSpec{good, {Type: "vxlan", RemoteIP: netip.MustParseAddr("1.2.3.4")}}, true},
		{"16-byte name", []TunnelSpec{good, tun("vxl-0123456789ab", "172.30.0.13")}, true},
		{"bad char", []TunnelSpec{tun("vxl/a", "172.30.0.13")}, true},
		{"no remote ip", []TunnelSpec{{Name: "vxl-b", Type: "vxlan"}}, true},
		{"unspecified remote ip", []TunnelSpec{tun("vxl-b", "0.0.0.0")}, true},
		{"unknown type", []TunnelSpec{{Name: "vxl-b", Type: "geneve", RemoteIP: netip.MustParseAddr("1.2.3.4")}}, true},
		{"duplicate", []TunnelSpec{good, good}, true},
		{"remote_ip in options", []TunnelSpec{{Name: "vxl-b", Type: "gre", RemoteIP: netip.MustParseAddr("1.2.3.4"), Options: map[string]string{"remote_ip": "5.6.7.8"}}}, true},
		{"collides with a foreign port", []TunnelSpec{good, tun("taken0", "172.30.0.13")}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before, ports := c.Transactions(), portNames(t, c, "br-int")
			_, err := c.ReconcileTunnels(ctx, "br-int", "h1", tc.desired)
			if err == nil {
				t.Fatal("accepted")
			}
			if tc.invalid != errors.Is(err, ErrInvalid) {
				t.Errorf("err %v: ErrInvalid=%v, want %v", err, errors.Is(err, ErrInvalid), tc.invalid)
			}
			if c.Transactions() != before || portNames(t, c, "br-int") != ports {
				t.Errorf("a rejected reconcile changed something: %d transactions, ports %s -> %s", c.Transactions()-before, ports, portNames(t, c, "br-int"))
			}
		})
	}
	if _, err := c.ReconcileTunnels(ctx, "br-int", "", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty owner: %v", err)
	}
	if err := c.DeletePort(ctx, "br-int", "taken0", "h1"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(portNames(t, c, "br-int"), "taken0") {
		t.Error("DeletePort removed a port another owner made")
	}
}

func TestPortsAndSystemIDs(t *testing.T) {
	ctx := context.Background()
	ep := startServer(t)
	c := dial(t, ep)
	if err := c.EnsureBridge(ctx, BridgeSpec{Name: "br-int", DatapathType: "netdev", Owner: "h1"}); err != nil {
		t.Fatal(err)
	}
	spec := PortSpec{Name: "vf1", Owner: "h1", Role: RoleContainer, ExternalIDs: map[string]string{KeyIP: "10.244.1.2/24", KeyNetNS: "/var/run/netns/c1"}}
	if err := c.EnsurePort(ctx, "br-int", spec); err != nil {
		t.Fatal(err)
	}
	n := c.Transactions()
	if err := c.EnsurePort(ctx, "br-int", spec); err != nil || c.Transactions() != n {
		t.Errorf("repeat EnsurePort: %v, %d transactions", err, c.Transactions()-n)
	}
	spec.ExternalIDs[KeyIP] = "10.244.1.3/24"
	if err := c.EnsurePort(ctx, "br-int", spec); err != nil {
		t.Fatal(err)
	}
	owned, err := c.Owned(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, p := range owned {
		if p.Name == "vf1" {
			found = p.ExternalIDs[KeyIP] == "10.244.1.3/24" && p.ExternalIDs[KeyRole] == RoleContainer
		}
	}
	if !found {
		t.Errorf("Owned = %+v", owned)
	}
	// Changes fires when another client deletes our port, and DeletePort is idempotent.
	other := dial(t, ep)
	drain(c.Changes())
	if err := other.DeletePort(ctx, "br-int", "vf1", "h1"); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.Changes():
	case <-time.After(5 * time.Second):
		t.Error("no change notification after another client deleted a port")
	}
	if err := c.DeletePort(ctx, "br-int", "vf1", "h1"); err != nil {
		t.Errorf("deleting a missing port: %v", err)
	}

	if err := c.SetSystemExternalIDs(ctx, map[string]string{"ovsfabric-subnet": "10.244.1.0/24"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := c.SetSystemExternalIDs(ctx, map[string]string{"ovsfabric-subnet": "10.244.2.0/24", "ovsfabric-node": "h1"}, []string{"absent"}); err != nil {
		t.Fatal(err)
	}
	ids, err := c.SystemExternalIDs(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if ids["system-id"] != "test" || ids["ovsfabric-subnet"] != "10.244.2.0/24" || ids["ovsfabric-node"] != "h1" {
		t.Errorf("external_ids = %v", ids)
	}
	n = c.Transactions()
	if err := c.SetSystemExternalIDs(ctx, map[string]string{"ovsfabric-node": "h1"}, nil); err != nil || c.Transactions() != n {
		t.Errorf("no-op SetSystemExternalIDs sent a transaction: %v", err)
	}
	if err := c.SetSystemExternalIDs(ctx, nil, []string{"ovsfabric-node"}); err != nil {
		t.Fatal(err)
	}
	if ids, _ := c.SystemExternalIDs(ctx); ids["ovsfabric-node"] != "" || ids["system-id"] != "test" {
		t.Errorf("after delete: %v", ids)
	}
}

func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

func TestDialErrors(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := Dial(ctx, "http://x"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad endpoint: %v", err)
	}
	_, err := Dial(ctx, "unix:"+filepath.Join(t.TempDir(), "nothing.sock"))
	if err == nil || !strings.Contains(err.Error(), "nothing.sock") {
		t.Errorf("unreachable endpoint: %v", err)
	}
}

func TestReconcile1000(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	ctx := context.Background()
	c := dial(t, startServer(t))
	if err := c.EnsureBridge(ctx, BridgeSpec{Name: "br-int", DatapathType: "netdev", Owner: "h1"}); err != nil {
		t.Fatal(err)
	}
	var ds []TunnelSpec
	for i := 0; i < 1000; i++ {
		ds = append(ds, tun(fmt.Sprintf("vxl-%04d", i), fmt.Sprintf("172.16.%d.%d", i/250, i%250+1)))
	}
	start := time.Now()
	res, err := c.ReconcileTunnels(ctx, "br-int", "h1", ds)
	if err != nil || len(res.Added) != 1000 {
		t.Fatalf("%v, %d added", err, len(res.Added))
	}
	t.Logf("1000 tunnels in one transaction: %s", time.Since(start))
	n := c.Transactions()
	start = time.Now()
	if res, err := c.ReconcileTunnels(ctx, "br-int", "h1", ds); err != nil || res.Transacted || c.Transactions() != n {
		t.Fatalf("no-change reconcile: %+v %v", res, err)
	}
	t.Logf("no-change reconcile at 1000 tunnels: %s, 0 transactions", time.Since(start))
}

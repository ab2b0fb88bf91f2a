package ovsdb

import (
	"context"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestWithOVSVsctl runs against a real ovsdb-server and uses ovs-vsctl the way an operator
// would, next to fabricd's client: what fabricd writes reads back as expected with ovs-vsctl,
// and what the operator does (their own ports and keys, a del-port, a hand edit of a tunnel)
// is left alone or repaired by the next reconcile.
func TestWithOVSVsctl(t *testing.T) {
	ep := startOVSDBServer(t)
	vsctl := func(args ...string) string {
		t.Helper()
		out, err := exec.Command("ovs-vsctl", append([]string{"--db=" + ep, "--no-wait", "--timeout=10"}, args...)...).CombinedOutput()
		if err != nil {
			t.Fatalf("ovs-vsctl %s: %v: %s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	ctx := context.Background()
	c := dial(t, ep)
	ensureBridge(t, c, "br-int", "h1")
	if err := c.EnsurePort(ctx, "br-int", PortSpec{Name: "fabric0", Type: "internal", Owner: "h1", Role: RoleGateway}); err != nil {
		t.Fatal(err)
	}
	desired := []TunnelSpec{tun("vxl-a", "172.30.0.12"), {Name: "gre-b", Type: "gre", RemoteIP: mustAddr("172.30.0.13"), Peer: "h3", Protected: true}}
	if _, err := c.ReconcileTunnels(ctx, "br-int", "h1", desired); err != nil {
		t.Fatal(err)
	}

	for _, tc := range []struct{ args, want string }{
		{"get interface vxl-a type", "vxlan"},
		{"get interface vxl-a options", `{key=flow, remote_ip="172.30.0.12"}`},
		{"get interface gre-b options", `{remote_ip="172.30.0.13"}`},
		{"get port gre-b protected", "true"},
		{"get port vxl-a external_ids:ovsfabric-owner", `h1`},
		{"get interface vxl-a external_ids:ovsfabric-peer", `peer-vxl-a`},
		{"get interface fabric0 type", "internal"},
		{"get bridge br-int datapath_type", "netdev"},
		{"get bridge br-int fail_mode", "standalone"},
		{"list-br", "br-int"},
		{"list-ports br-int", "fabric0\ngre-b\nvxl-a"},
	} {
		if got := vsctl(strings.Fields(tc.args)...); strings.Trim(got, `"`) != tc.want {
			t.Errorf("ovs-vsctl %s = %q, want %q", tc.args, got, tc.want)
		}
	}
	if n, _ := strconv.Atoi(vsctl("get", "open_vswitch", ".", "next_cfg")); n < 3 {
		t.Errorf("next_cfg = %d: writes should bump it like ovs-vsctl does", n)
	}

	// The operator's own port and keys.
	vsctl("add-port", "br-int", "eth9", "--", "set", "interface", "eth9", "type=internal")
	vsctl("br-set-external-id", "br-int", "operator-note", "keep")
	vsctl("set", "interface", "vxl-a", "external_ids:attached-by=hand")
	// The last of the three writes reaching the cache means all three did (updates arrive in order).
	waitFor(t, "the operator's writes in the cache", func() bool { return strings.Contains(dump(t, c), "attached-by=hand") })
	expectNoWrite(t, c, "reconcile next to the operator's changes", func() {
		ensureBridge(t, c, "br-int", "h1")
		if _, err := c.ReconcileTunnels(ctx, "br-int", "h1", desired); err != nil {
			t.Fatal(err)
		}
	})

	// del-port of a fabricd tunnel and a hand edit of another: Changes fires, one reconcile
	// transaction repairs both.
	time.Sleep(50 * time.Millisecond)
	drain(c.Changes())
	vsctl("del-port", "br-int", "vxl-a")
	select {
	case <-c.Changes():
	case <-time.After(5 * time.Second):
		t.Fatal("no Changes() after ovs-vsctl del-port")
	}
	vsctl("set", "interface", "gre-b", "options:remote_ip=192.0.2.1", "options:ttl=9")
	waitFor(t, "hand edit in the cache", func() bool { p, _ := port(t, c, "br-int", "gre-b"); return p.Options["ttl"] == "9" })
	expectOneWrite(t, c, "repair", func() {
		res, err := c.ReconcileTunnels(ctx, "br-int", "h1", desired)
		if err != nil || join(res.Added) != "vxl-a" || join(res.Updated) != "gre-b" {
			t.Errorf("repair: %+v %v", res, err)
		}
	})
	if got := vsctl("get", "interface", "gre-b", "options"); got != `{remote_ip="172.30.0.13"}` {
		t.Errorf("gre-b options after repair = %s", got)
	}

	// Withdrawing removes fabricd's tunnels only.
	if _, err := c.ReconcileTunnels(ctx, "br-int", "h1", nil); err != nil {
		t.Fatal(err)
	}
	if got := vsctl("list-ports", "br-int"); got != "eth9\nfabric0" {
		t.Errorf("ports after withdrawing = %q", got)
	}
	if got := vsctl("br-get-external-id", "br-int", "operator-note"); got != "keep" {
		t.Errorf("operator's bridge key = %q", got)
	}
	if out := vsctl("show"); !strings.Contains(out, `Port fabric0`) || !strings.Contains(out, `Port eth9`) {
		t.Errorf("ovs-vsctl show:\n%s", out)
	}
}

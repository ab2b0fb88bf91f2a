package flows

import (
	"errors"
	"net/netip"
	"os"
	"strings"
	"testing"
)

// flowInput is testInput with the peers behind one flow-based tunnel port, ofport 8
// (h2 at 172.30.0.12, h3 at 172.30.0.13); ofports 2 and 5 are free.
func flowInput() Input {
	in := testInput()
	remotes := map[string]string{"h2": "172.30.0.12", "h3": "172.30.0.13"}
	for i := range in.Networks {
		for j := range in.Networks[i].Tunnels {
			t := &in.Networks[i].Tunnels[j]
			t.Port, t.OFPort, t.Remote = "vxlan-flow", 8, addr(remotes[t.Peer])
		}
	}
	return in
}

// TestPlanFlowTunnelGolden compares the plan of flowInput with
// testdata/plan-flow-tunnel.txt (-update rewrites it).
func TestPlanFlowTunnelGolden(t *testing.T) {
	got := dump(mustPlan(t, flowInput()))
	const file = "testdata/plan-flow-tunnel.txt"
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("plan differs from %s (rerun with -update and review the diff):\n%s", file, got)
	}
}

// TestPlanFlowTunnel: on a flow-based port, to-peer flows set tun_dst, table 0 admits only
// the peers' tun_src (as a port per peer admits only its remote_ip), and the flows naming a
// peer carry its PeerCookie bits; everything else is the per-peer plan's.
func TestPlanFlowTunnel(t *testing.T) {
	fs := mustPlan(t, flowInput())
	tests := []struct {
		name        string
		table, prio int
		match       string
		actions     string
		purpose     Purpose
		peer        string
	}{
		{"h2 admitted by its underlay address", 0, 100, "in_port=8,tun_src=172.30.0.12", "resubmit(,20)", PurposeFromPeer, "h2"},
		{"h3 admitted by its underlay address", 0, 100, "in_port=8,tun_src=172.30.0.13", "resubmit(,20)", PurposeFromPeer, "h3"},
		{"h2's default slice: tun_dst h2", 10, 200, "ip,reg6=0,nw_dst=10.244.7.0/24",
			"load:0->NXM_NX_TUN_ID[],mod_dl_src:00:16:3e:0a:0b:0c,mod_dl_dst:02:0f:ab:00:00:01,dec_ttl,load:0xac1e000c->NXM_NX_TUN_IPV4_DST[],output:8", PurposeToPeer, "h2"},
		{"h2's blue slice: tun_dst h2, key 100", 10, 200, "ip,reg6=0x64,nw_dst=10.50.7.0/24",
			"load:0x64->NXM_NX_TUN_ID[],mod_dl_src:00:16:3e:0a:0b:0c,mod_dl_dst:02:0f:ab:00:00:01,dec_ttl,load:0xac1e000c->NXM_NX_TUN_IPV4_DST[],output:8", PurposeToPeer, "h2"},
		{"h3's red slice: tun_dst h3", 10, 200, "ip,reg6=0xc8,nw_dst=10.60.9.0/24",
			"load:0xc8->NXM_NX_TUN_ID[],mod_dl_src:00:16:3e:0a:0b:0c,mod_dl_dst:02:0f:ab:00:00:01,dec_ttl,load:0xac1e000d->NXM_NX_TUN_IPV4_DST[],output:8", PurposeToPeer, "h3"},
	}
	for _, tt := range tests {
		f, ok := find(fs, tt.table, tt.prio, tt.match)
		if !ok {
			t.Errorf("%s: no flow table=%d priority=%d %s", tt.name, tt.table, tt.prio, tt.match)
			continue
		}
		if f.Actions != tt.actions || PurposeOf(f.Cookie) != tt.purpose {
			t.Errorf("%s: %s, want actions %s purpose %s", tt.name, f, tt.actions, tt.purpose)
		}
		cookie, mask := PeerCookie(tt.purpose, tt.peer)
		if f.Cookie&mask != cookie {
			t.Errorf("%s: cookie %#x does not match %#x/%#x", tt.name, f.Cookie, cookie, mask)
		}
	}
	for _, f := range fs {
		if f.Table == 0 && f.Match == "in_port=8" {
			t.Errorf("flow port admitted from anyone: %s", f)
		}
		if strings.Contains(f.Match, "in_port=2") || strings.Contains(f.Match, "in_port=5") || strings.Contains(f.Actions, "output:2") {
			t.Errorf("flow names a per-peer port: %s", f)
		}
	}
	if err := checkUnique(fs); err != nil {
		t.Error(err)
	}
	// The per-peer plan has exactly as many flows: one classifier per peer either way.
	if n, m := len(fs), len(mustPlan(t, testInput())); n != m {
		t.Errorf("%d flows in flow mode, %d per peer", n, m)
	}
	h2, _ := PeerCookie(PurposeToPeer, "h2")
	h3, _ := PeerCookie(PurposeToPeer, "h3")
	if h2 == h3 {
		t.Error("h2 and h3 have one peer cookie")
	}
}

// TestPlanMixedTunnels: while a host switches modes, a peer may still be behind its own port
// and another behind the flow port; both kinds of admission are planned.
func TestPlanMixedTunnels(t *testing.T) {
	in := flowInput()
	for i := range in.Networks {
		for j := range in.Networks[i].Tunnels {
			if tu := &in.Networks[i].Tunnels[j]; tu.Peer == "h3" {
				tu.Port, tu.OFPort, tu.Remote = "vxlan-h3", 5, netip.Addr{}
			}
		}
	}
	fs := mustPlan(t, in)
	for _, m := range []string{"in_port=5", "in_port=8,tun_src=172.30.0.12"} {
		if _, ok := find(fs, 0, 100, m); !ok {
			t.Errorf("no admission %s", m)
		}
	}
	if _, ok := find(fs, 0, 100, "in_port=8,tun_src=172.30.0.13"); ok {
		t.Error("h3 admitted on the flow port while it has its own")
	}
	if f, ok := find(fs, 10, 200, "ip,reg6=0xc8,nw_dst=10.60.9.0/24"); !ok || !strings.HasSuffix(f.Actions, "dec_ttl,output:5") {
		t.Errorf("h3's red slice: %v %s", ok, f)
	}
}

func TestPlanFlowTunnelInvalid(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Input)
		want   string
	}{
		{"IPv6 remote", func(in *Input) { def(in).Tunnels[0].Remote = addr("fd00::12") }, "IPv4"},
		{"loopback remote", func(in *Input) { def(in).Tunnels[0].Remote = addr("127.0.0.1") }, "IPv4"},
		{"two peers, one remote", func(in *Input) { def(in).Tunnels[1].Remote = def(in).Tunnels[0].Remote }, "already belongs to peer"},
		{"one peer, two remotes", func(in *Input) { in.Networks[1].Tunnels[0].Remote = addr("172.30.0.99") }, "already has remote"},
		{"flow port without remote", func(in *Input) { def(in).Tunnels[1].Remote = netip.Addr{} }, "ofport 8 already belongs"},
		{"flow port under two names", func(in *Input) { def(in).Tunnels[1].Port = "gre-flow" }, "already belongs to tunnel port"},
		{"per-peer port given a remote", func(in *Input) {
			def(in).Tunnels[0].OFPort, def(in).Tunnels[0].Remote, def(in).Tunnels[0].Port = 2, netip.Addr{}, "vxlan-h2"
			in.Networks[1].Tunnels[0].OFPort, in.Networks[1].Tunnels[0].Port = 2, "vxlan-h2"
		}, "not a flow-based one"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := flowInput()
			tt.change(&in)
			_, err := Plan(in)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Plan: %v, want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
}

// TestPlanRetiring: ports of the other tunnel mode that no route uses are still admitted
// from, by in_port or by tun_src, until they are gone; a port the tunnels use is not doubled.
func TestPlanRetiring(t *testing.T) {
	in := flowInput()
	in.Retiring = []Tunnel{
		{Peer: "h2", Port: "vxlan-h2", OFPort: 2},
		{Peer: "h3", Port: "vxlan-h3", OFPort: 5},
		{Peer: "h3", Port: "vxlan-h3", OFPort: 5},   // listed twice
		{Peer: "h2", Port: "vxlan-flow", OFPort: 8}, // used by the tunnels: nothing more
		{Peer: "h4", Port: "vxlan-h4", OFPort: 0},   // not numbered: skipped
	}
	fs := mustPlan(t, in)
	for _, m := range []string{"in_port=2", "in_port=5", "in_port=8,tun_src=172.30.0.12"} {
		if _, ok := find(fs, 0, 100, m); !ok {
			t.Errorf("no admission %s", m)
		}
	}
	for _, f := range fs {
		if f.Table == 10 && (strings.HasSuffix(f.Actions, "output:2") || strings.HasSuffix(f.Actions, "output:5")) {
			t.Errorf("a route uses a retiring port: %s", f)
		}
	}
	if err := checkUnique(fs); err != nil {
		t.Error(err)
	}
	// Back to ports per peer: the flow-based port admits its peers until it is gone.
	per := testInput()
	per.Retiring = []Tunnel{{Peer: "h2", Port: "vxlan-flow", OFPort: 8, Remote: addr("172.30.0.12")}, {Peer: "h3", Port: "vxlan-flow", OFPort: 8, Remote: addr("172.30.0.13")}}
	fs = mustPlan(t, per)
	for _, m := range []string{"in_port=2", "in_port=5", "in_port=8,tun_src=172.30.0.12", "in_port=8,tun_src=172.30.0.13"} {
		if _, ok := find(fs, 0, 100, m); !ok {
			t.Errorf("back to ports per peer: no admission %s", m)
		}
	}
	bad := testInput()
	bad.Retiring = []Tunnel{{Port: "vxlan-x", OFPort: 3}}
	if _, err := Plan(bad); !errors.Is(err, ErrInvalid) {
		t.Errorf("retiring port on a container's ofport: %v", err)
	}
}

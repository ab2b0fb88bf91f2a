package controller

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/endpoint"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/flows"
	"github.com/ovsfabric/ovsfabric/flows/flowstest"
	"github.com/ovsfabric/ovsfabric/ovsdb"
	"github.com/ovsfabric/ovsfabric/peers"
)

// TestTunnelModeSwitch: fabricd restarted with the other --tunnel-mode on the same OVSDB and
// bridge keeps a route to every peer at every step (the other mode's ports stay until the
// flows no longer use them), ends with only the new mode's ports, and in flow mode adds and
// removes peers without any OVSDB transaction.
func TestTunnelModeSwitch(t *testing.T) {
	ctx := context.Background()
	ep := startOVSDB(t)
	now := time.Now()
	m := &fakeMembers{ch: make(chan struct{})}
	m.set(peer("h2", "172.30.0.12", "10.244.2.0/24", peers.StateAlive, now), peer("h3", "172.30.0.13", "10.244.3.0/24", peers.StateAlive, now))
	of := flowstest.New()
	// routes are the to-peer actions of h2's and h3's subnets, "" when one has none.
	routes := func() string {
		ours, _ := of.Flows(ctx)
		var out []string
		for _, sub := range []string{"10.244.2.0/24", "10.244.3.0/24"} {
			found := false
			for _, f := range ours {
				if f.Table == flows.TableFromLocal && strings.HasSuffix(f.Match, "nw_dst="+sub) {
					_, act, _ := strings.Cut(f.Actions, "dec_ttl,")
					out, found = append(out, act), true
				}
			}
			if !found {
				return ""
			}
		}
		return strings.Join(out, " ")
	}
	tunnelPorts := func(sw *ovsdb.Client) string {
		ps, err := sw.Ports(ctx, "br-int")
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range ps {
			if p.Role() == ovsdb.RoleTunnel {
				out = append(out, p.Name+"="+p.Options["remote_ip"])
			}
		}
		return strings.Join(out, ",")
	}
	// run starts a controller in mode and syncs until its tunnel ports are want, checking
	// after every sync that both peers still have a route.
	run := func(mode fabric.TunnelMode, want string) (*Controller, *ovsdb.Client) {
		t.Helper()
		s := settings(t, "10.244.1.0/24")
		s.TunnelMode, s.TunnelModeValue = string(mode), mode
		sw := dialOVSDB(t, ep)
		k, log := &fakeKernel{}, slog.New(slog.DiscardHandler)
		eps := endpoint.New(s, sw, k, log)
		// The new mode's ports look unnumbered for the first syncs, as when ovs-vswitchd is
		// slow to take them: the flows must keep using the old ports meanwhile.
		c := New(s, &slowNumbering{Switch: sw, syncs: 3, fresh: map[string]int{}}, k, of, eps, log)
		eps.SetLoop(c)
		if err := c.Init(ctx); err != nil {
			t.Fatal(err)
		}
		c.SetMembership(m)
		deadline := time.Now().Add(10 * time.Second)
		before := routes() != "" // a fabric already running: no sync may leave a peer without a route
		for {
			if err := c.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			r := routes()
			if r == "" && before {
				t.Fatalf("%s: a peer has no route; ports %s", mode, tunnelPorts(sw))
			}
			if r != "" && tunnelPorts(sw) == want && c.tunnelsSettled {
				return c, sw
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: tunnel ports %s, want %s; routes %q", mode, tunnelPorts(sw), want, r)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	h2, h3 := fabric.TunnelPortName(fabric.TunnelVXLAN, "h2"), fabric.TunnelPortName(fabric.TunnelVXLAN, "h3")
	perPeer := h2 + "=172.30.0.12," + h3 + "=172.30.0.13"
	if h3 < h2 {
		perPeer = h3 + "=172.30.0.13," + h2 + "=172.30.0.12"
	}
	run(fabric.TunnelPerPeer, perPeer)
	if r := routes(); strings.Contains(r, "TUN_IPV4_DST") {
		t.Errorf("per-peer routes set tun_dst: %s", r)
	}

	c, sw := run(fabric.TunnelFlow, "vxlan-flow=flow")
	r := routes()
	if !strings.Contains(r, "load:0xac1e000c->NXM_NX_TUN_IPV4_DST[],output:") || !strings.Contains(r, "load:0xac1e000d->NXM_NX_TUN_IPV4_DST[],output:") {
		t.Errorf("flow-mode routes %s", r)
	}
	// Peers come and go: no OVSDB transaction (the port is one for all), only flows.
	tx := sw.Transactions()
	many := []peers.Peer{peer("h2", "172.30.0.12", "10.244.2.0/24", peers.StateAlive, now), peer("h3", "172.30.0.13", "10.244.3.0/24", peers.StateAlive, now)}
	for i := 4; i <= 501; i++ { // h2…h501: 500 peers
		many = append(many, peer(fmt.Sprintf("h%d", i), fmt.Sprintf("172.30.%d.%d", i/250+1, i%250+1), fabric.NthSubnet(netip.MustParsePrefix("10.244.0.0/16"), 28, 512+i).String(), peers.StateAlive, now))
	}
	for _, n := range []int{3, 4, 500, 2} {
		m.set(many[:n]...)
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if got := sw.Transactions() - tx; got != 0 {
			t.Errorf("%d peers: %d OVSDB transactions, want 0", n, got)
		}
		ours, _ := of.Flows(ctx)
		admit := 0
		for _, f := range ours {
			if flows.PurposeOf(f.Cookie) == flows.PurposeFromPeer {
				admit++
			}
		}
		if admit != n {
			t.Errorf("%d peers: %d from-peer flows", n, admit)
		}
	}
	if st := c.Status(); st.TunnelMode != "flow" || len(st.Peers) == 0 || st.Peers[0].Tunnel != "vxlan-flow" || !strings.HasPrefix(st.Peers[0].Cookie, "0xfab0003") {
		t.Errorf("status %+v", st)
	}

	m.set(many[:2]...)
	run(fabric.TunnelPerPeer, perPeer)
	if r := routes(); strings.Contains(r, "TUN_IPV4_DST") {
		t.Errorf("back to per-peer: routes set tun_dst: %s", r)
	}
}

// slowNumbering hides the OpenFlow number of every tunnel port it has not seen before from
// the first syncs Ports calls that show the port.
type slowNumbering struct {
	Switch
	syncs int
	seen  map[string]bool
	fresh map[string]int
}

func (s *slowNumbering) Ports(ctx context.Context, bridge string) ([]ovsdb.PortInfo, error) {
	ps, err := s.Switch.Ports(ctx, bridge)
	if s.seen == nil {
		s.seen = map[string]bool{}
		for _, p := range ps {
			s.seen[p.Name] = true // there before this controller: numbered
		}
	}
	for i := range ps {
		p := &ps[i]
		if p.Role() != ovsdb.RoleTunnel || s.seen[p.Name] {
			continue
		}
		if s.fresh[p.Name]++; s.fresh[p.Name] <= s.syncs {
			p.Ofport = 0
		}
	}
	return ps, err
}

// TestRejoinFromFlowPeers: a restarted fabricd in flow mode finds the peers to rejoin in the
// flows its previous run left (the flow-based port names none in OVSDB).
func TestRejoinFromFlowPeers(t *testing.T) {
	ctx := context.Background()
	ep := startOVSDB(t)
	now := time.Now()
	m := &fakeMembers{ch: make(chan struct{})}
	m.set(peer("h2", "172.30.0.12", "10.244.2.0/24", peers.StateAlive, now), peer("h3", "172.30.0.13", "10.244.3.0/24", peers.StateAlive, now))
	of := flowstest.New()
	start := func() *Controller {
		s := settings(t, "10.244.1.0/24")
		s.TunnelMode, s.TunnelModeValue = "flow", fabric.TunnelFlow
		sw := dialOVSDB(t, ep)
		k, log := &fakeKernel{}, slog.New(slog.DiscardHandler)
		eps := endpoint.New(s, sw, k, log)
		c := New(s, sw, k, of, eps, log)
		eps.SetLoop(c)
		if err := c.Init(ctx); err != nil {
			t.Fatal(err)
		}
		return c
	}
	c := start()
	if got := c.RejoinAddrs(); len(got) != 0 {
		t.Errorf("first start: rejoin %v", got)
	}
	c.SetMembership(m)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if fs, _ := of.Flows(ctx); strings.Contains(fmt.Sprint(fs), "tun_src=172.30.0.13") || time.Now().After(deadline) {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := strings.Join(start().RejoinAddrs(), ","); got != "172.30.0.12,172.30.0.13" {
		t.Errorf("restart: rejoin %q, want both peers", got)
	}
}

// TestRememberFlowPeersAsDumped: go-openvswitch reads a dumped tun_src back as nw_src; the
// from-peer flows' addresses are found either way, and no other flow's.
func TestRememberFlowPeersAsDumped(t *testing.T) {
	from := func(match string) flows.Flow {
		c, _ := flows.PeerCookie(flows.PurposeFromPeer, match)
		return flows.Flow{Table: 0, Priority: 100, Cookie: c | 1, Match: match, Actions: "resubmit(,20)"}
	}
	other := flows.Flow{Table: 0, Priority: 100, Cookie: flows.CookieBase | 1<<32 | 7, Match: "ip,in_port=3,dl_src=0a:58:0a:f4:03:05,nw_src=10.244.3.5", Actions: "resubmit(,10)"}
	c := &Controller{of: flowstest.New(from("in_port=8,nw_src=172.30.0.12"), from("tun_src=172.30.0.13,in_port=8"), other), log: slog.New(slog.DiscardHandler)}
	c.rememberFlowPeers(context.Background())
	if got := fmt.Sprint(c.flowPeers); got != "[172.30.0.12 172.30.0.13]" {
		t.Errorf("flow peers %s", got)
	}
}

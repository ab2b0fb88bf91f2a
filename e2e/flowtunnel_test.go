package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

// perPeerPort matches the name of a tunnel port per peer (fabric.TunnelPortName).
var perPeerPort = regexp.MustCompile(`\bPort "?(vxl|gre)-[0-9a-f]{10}"?`)

// TestFlowTunnels runs a 3-host fabric with --tunnel-mode flow, once per tunnel type (two
// labs in parallel): every host has one flow-based tunnel port and none per peer, containers
// on two networks reach exactly those of their network on every host, `fabricctl peers`
// names each peer's flow cookie and that cookie finds the flows setting its tun_dst, and
// the flows stay put across resyncs and a restart of the seed loses no ping.
func TestFlowTunnels(t *testing.T) {
	for _, tunnel := range []string{"vxlan", "gre"} {
		t.Run(tunnel, func(t *testing.T) {
			t.Parallel()
			testFlowTunnels(t, tunnel)
		})
	}
}

func testFlowTunnels(t *testing.T, tunnel string) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	l := upLab(t, ctx, 3, false)
	f := fabriclab.New(l, fabriclab.Options{Bin: binDir, Tunnel: tunnel, Resync: 2 * time.Second, Extra: []string{"--tunnel-mode", "flow"}})
	t.Cleanup(func() { dumpLogsOnFailure(t, l) })
	if err := f.StartAll(ctx, l.Hosts, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Node("h1").Client().CreateNetwork(ctx, api.NetworkCreateRequest{Name: "blue", Subnet: "10.50.0.0/16"}); err != nil {
		t.Fatal(err)
	}
	var cs []*fabriclab.Container
	nets := map[*fabriclab.Container]string{}
	for i, n := range f.Nodes() {
		waitNetworks(t, ctx, n, []string{"blue", "default"})
		for _, network := range []string{"default", "blue"} {
			c, err := attachRetry(ctx, f, n, fmt.Sprintf("%s%d", network[:1], i+1), network)
			if err != nil {
				t.Fatal(err)
			}
			cs, nets[c] = append(cs, c), network
		}
	}
	flowPort := map[string]string{"vxlan": "vxlan-flow", "gre": "gre-flow"}[tunnel]
	for _, h := range l.Hosts {
		show := vsctlShow(t, ctx, h)
		if !strings.Contains(show, "Port "+flowPort) || !strings.Contains(show, `remote_ip=flow`) || perPeerPort.MatchString(show) {
			t.Errorf("%s: want one flow-based port %s and none per peer:\n%s", h.Name, flowPort, show)
		}
	}

	// Every pair: reachable exactly when both are on one network.
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 6)
	for _, a := range cs {
		for _, b := range cs {
			if a == b {
				continue
			}
			wg.Add(1)
			go func(a, b *fabriclab.Container) {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				want := nets[a] == nets[b]
				var ok bool
				if want {
					ok = fabriclab.Reach(ctx, a.NetNS, b.IP, 20*time.Second) == nil
				} else {
					_, got, _ := fabriclab.Ping(ctx, a.NetNS, b.IP, 2, 200*time.Millisecond)
					ok = got > 0
				}
				if ok != want {
					mu.Lock()
					defer mu.Unlock()
					t.Errorf("%s (%s on %s) → %s (%s on %s): reachable %v, want %v", a.Name, nets[a], a.Node.Host.Name, b.IP, nets[b], b.Node.Host.Name, ok, want)
				}
			}(a, b)
		}
	}
	wg.Wait()

	// Which peer a packet goes to: the status names the shared port and each peer's cookie,
	// and the cookie finds the to-peer flows that set that peer's tun_dst and carried pings.
	n1 := f.Node("h1")
	st, err := n1.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.TunnelMode != "flow" || len(st.Peers) != 2 {
		t.Fatalf("h1 status: mode %q, %d peers", st.TunnelMode, len(st.Peers))
	}
	for _, p := range st.Peers {
		if p.Tunnel != flowPort || p.Cookie == "" {
			t.Errorf("h1's peer %s: port %q cookie %q", p.Name, p.Tunnel, p.Cookie)
			continue
		}
		out, err := n1.Host.Ofctl(ctx, "dump-flows", "br-int", "cookie="+p.Cookie)
		if err != nil {
			t.Fatal(err)
		}
		var routes []string
		for _, line := range strings.Split(out, "\n") {
			if strings.Contains(line, "actions=") {
				routes = append(routes, line)
			}
		}
		if len(routes) != 2 || !regexp.MustCompile(`n_packets=[1-9]`).MatchString(out) {
			t.Errorf("h1: cookie %s of %s: want its 2 slices' routes, having carried packets:\n%s", p.Cookie, p.Name, out)
		}
		for _, r := range routes {
			if !strings.Contains(r, p.Addr+"->tun_dst") && !strings.Contains(r, tunDstHex(p.Addr)) {
				t.Errorf("h1: flow of %s does not set tun_dst %s: %s", p.Name, p.Addr, r)
			}
		}
	}
	if out, err := exec.CommandContext(ctx, filepath.Join(binDir, "fabricctl"), "--socket", n1.Socket, "peers").CombinedOutput(); err != nil || !strings.Contains(string(out), "FLOW COOKIE") {
		t.Errorf("fabricctl peers: %v\n%s", err, out)
	}

	// A restart of the seed (started without --join; its flow-based port names no peer in
	// OVSDB) loses no ping: it rejoins the peers its flows admitted.
	pingCtx, stopPing := context.WithCancel(ctx)
	type count struct {
		from, to  *fabriclab.Container
		sent, got int
	}
	counted := make(chan count, 2)
	for _, p := range [][2]*fabriclab.Container{{cs[2], cs[0]}, {cs[0], cs[4]}} { // d2 → d1, d1 → d3
		go func(from, to *fabriclab.Container) {
			s, g, _ := pingUntil(pingCtx, from.NetNS, to.IP)
			counted <- count{from, to, s, g}
		}(p[0], p[1])
	}
	time.Sleep(time.Second)
	if err := n1.Proc.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n1, err = f.StartArgs(ctx, n1.Host, n1.Args); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	stopPing()
	for range 2 {
		c := <-counted
		t.Logf("%s → %s across h1's restart: %d sent, %d received", c.from.Name, c.to.Name, c.sent, c.got)
		// ping counts the probe the stop cuts short as lost: one is allowed.
		if c.sent < 20 || c.got < c.sent-1 {
			t.Errorf("%s → %s across h1's restart: %d sent, %d received", c.from.Name, c.to.Name, c.sent, c.got)
		}
	}

	// The flows as written compare equal to what the bridge reports: no resync changes them.
	updates := func() int {
		b, _ := os.ReadFile(n1.Proc.LogFile())
		return strings.Count(string(b), "flows updated")
	}
	before := updates()
	time.Sleep(5 * time.Second) // two resyncs
	if after := updates(); after != before {
		t.Errorf("h1: %d flow updates during two resyncs without changes", after-before)
	}
}

// tunDstHex is how ovs-ofctl prints a load of addr into tun_dst.
func tunDstHex(addr string) string {
	var a, b, c, d int
	fmt.Sscanf(addr, "%d.%d.%d.%d", &a, &b, &c, &d)
	return fmt.Sprintf("load:%#x->NXM_NX_TUN_IPV4_DST[]", a<<24|b<<16|c<<8|d)
}

// TestTunnelModeSwitch runs a 3-host fabric with a tunnel port per peer and a container per
// host pinging every other one every 100 ms, then restarts fabricd host by host with
// --tunnel-mode flow: in the mixed fabric per-peer and flow hosts talk to each other, each
// switched host keeps its ports per peer until its flows use the flow-based port (one
// bridge holds both, also for VXLAN's shared UDP port), and no ping is lost (as
// TestRollingUpgrade: at most the probe the stop cuts short). Once per tunnel type.
func TestTunnelModeSwitch(t *testing.T) {
	for _, tunnel := range []string{"vxlan", "gre"} {
		t.Run(tunnel, func(t *testing.T) {
			t.Parallel()
			testTunnelModeSwitch(t, tunnel)
		})
	}
}

func testTunnelModeSwitch(t *testing.T, tunnel string) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	l := upLab(t, ctx, 3, false)
	f := fabriclab.New(l, fabriclab.Options{Bin: binDir, Tunnel: tunnel, Resync: 2 * time.Second})
	t.Cleanup(func() { dumpLogsOnFailure(t, l) })
	if err := f.StartAll(ctx, l.Hosts, nil); err != nil {
		t.Fatal(err)
	}
	cs, err := f.AddContainers(ctx, "c", api.AttachRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range fabriclab.PingMatrix(ctx, cs, 20*time.Second) {
		if !r.OK {
			t.Fatalf("before the switch: %v", r.Err)
		}
	}
	pingCtx, stopPing := context.WithCancel(ctx)
	type result struct {
		from, to       string
		sent, received int
		err            error
	}
	var mu sync.Mutex
	var results []result
	var wg sync.WaitGroup
	for _, a := range cs {
		for _, b := range cs {
			if a == b {
				continue
			}
			wg.Add(1)
			go func(a, b *fabriclab.Container) {
				defer wg.Done()
				sent, got, err := pingUntil(pingCtx, a.NetNS, b.IP)
				mu.Lock()
				results = append(results, result{a.Name, b.Name, sent, got, err})
				mu.Unlock()
			}(a, b)
		}
	}
	for _, h := range l.Hosts {
		n := f.Node(h.Name)
		if err := n.Proc.Stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		args := append(slices.Clone(n.Args), "--tunnel-mode", "flow")
		if _, err := f.StartArgs(ctx, h, args); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
			t.Fatalf("after switching %s: %v", h.Name, err)
		}
		eventually(t, 30*time.Second, h.Name+" keeps only its flow-based port", func() error {
			return onlyFlowPort(ctx, h, tunnel)
		})
		if b, _ := os.ReadFile(f.Node(h.Name).Proc.LogFile()); !strings.Contains(string(b), "previous tunnel mode unused now") {
			t.Errorf("%s: the ports per peer did not stay until the flows had moved", h.Name)
		}
		time.Sleep(2 * time.Second) // pings flow through the mixed fabric
	}
	stopPing()
	wg.Wait()
	for _, r := range results {
		t.Logf("%s → %s during the switch: %d sent, %d received", r.from, r.to, r.sent, r.received)
		if r.err != nil || r.sent < 20 || r.received < r.sent-1 {
			// ping counts the last probe, cut by the stop, as lost: one is allowed.
			t.Errorf("%s → %s during the switch: %d sent, %d received (%v)", r.from, r.to, r.sent, r.received, r.err)
		}
	}
	for _, r := range fabriclab.PingMatrix(ctx, cs, 20*time.Second) {
		if !r.OK {
			t.Errorf("after the switch: %v", r.Err)
		}
	}
}

// onlyFlowPort reports whether h's bridge has its flow-based port and no port per peer.
func onlyFlowPort(ctx context.Context, h *lab.Host, tunnel string) error {
	show, err := h.Vsctl(ctx, "show")
	if err != nil {
		return err
	}
	if !strings.Contains(show, "Port "+tunnel+"-flow") || perPeerPort.MatchString(show) {
		return fmt.Errorf("ovs-vsctl show:\n%s", show)
	}
	return nil
}

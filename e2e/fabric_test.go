package e2e

import (
	"context"
	"fmt"
	"os"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/flows"
	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

// TestFabric runs the fabricd scenarios of a whole fabric's life, once per tunnel type:
// three hosts converge; an operator deletes a tunnel; fabricd is killed -9 and restarted
// under traffic; a fourth host joins; it leaves gracefully; a host with a conflicting
// static subnet is refused.
func TestFabric(t *testing.T) {
	for _, tc := range []struct{ tunnel, pipeline string }{{"vxlan", "routed"}, {"gre", "routed"}, {"vxlan", "l2"}} {
		t.Run(tc.tunnel+"-"+tc.pipeline, func(t *testing.T) { testFabric(t, tc.tunnel, tc.pipeline) })
	}
}

const staticSubnet = "10.244.1.0/24"

func testFabric(t *testing.T, tunnel, pipeline string) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	l := upLab(t, ctx, 3, false)
	f := fabriclab.New(l, fabriclab.Options{Bin: binDir, Tunnel: tunnel, Resync: 2 * time.Second, DeadPeerGrace: 2 * time.Minute, Extra: []string{"--pipeline", pipeline}})
	t.Cleanup(func() { dumpLogsOnFailure(t, l) })

	// h1 has a static subnet (for the conflict scenario); h2 and h3 claim theirs by gossip.
	if _, err := f.Start(ctx, l.Hosts[0], "--subnet", staticSubnet); err != nil {
		t.Fatal(err)
	}
	for _, h := range l.Hosts[1:] {
		if _, err := f.Start(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	took, err := f.WaitConverged(ctx, 60*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("3 hosts converged in %s after the last fabricd started", took.Round(time.Millisecond))

	cs, err := f.AddContainers(ctx, "c", api.AttachRequest{})
	if err != nil {
		t.Fatal(err)
	}

	t.Run("three hosts converge", func(t *testing.T) {
		for _, h := range l.Hosts {
			if got := tunnelPorts(t, ctx, h); len(got) != 2 {
				t.Errorf("%s: %d tunnel ports %v, want 2", h.Name, len(got), got)
			}
			if got := fabricRoutes(t, ctx, h); len(got) != 2 {
				t.Errorf("%s: %d routes %v, want 2", h.Name, len(got), got)
			}
		}
		assertMatrix(t, ctx, cs, 6)
		// Routed mode: ovsfabric's flows are on br-int, and the to-peer flows carried the
		// pings. L2 mode: none of ovsfabric's flows.
		for _, h := range l.Hosts {
			out, err := h.Ofctl(ctx, "dump-flows", "br-int", fmt.Sprintf("cookie=%#x/%#x", flows.CookieBase, flows.CookieMask))
			if err != nil {
				t.Fatal(err)
			}
			routed := regexp.MustCompile(`n_packets=[1-9].*actions=.*dec_ttl.*output`).MatchString(out)
			if pipeline == "routed" && !routed {
				t.Errorf("%s: no routed flow carried packets:\n%s", h.Name, out)
			}
			if pipeline == "l2" && strings.Contains(out, "cookie=") {
				t.Errorf("%s: ovsfabric flows in l2 mode:\n%s", h.Name, out)
			}
		}
	})

	t.Run("operator deletes a tunnel port", func(t *testing.T) {
		h := l.Hosts[1]
		before := tunnelPorts(t, ctx, h)
		if _, err := h.Vsctl(ctx, "del-port", "br-int", before[0]); err != nil {
			t.Fatal(err)
		}
		took := eventually(t, 10*time.Second, "tunnel restored", func() error {
			if got := tunnelPorts(t, ctx, h); strings.Join(got, ",") != strings.Join(before, ",") {
				return fmt.Errorf("tunnels %v, want %v", got, before)
			}
			return nil
		})
		t.Logf("tunnel %s restored after %s (resync 2s; OVSDB changes trigger a sync at once)", before[0], took.Round(time.Millisecond))
		assertMatrix(t, ctx, cs, 6)
	})

	t.Run("kill -9 and restart under traffic", func(t *testing.T) {
		victim := f.Node(l.Hosts[0].Name)
		showBefore := map[string]string{}
		routesBefore := map[string][]string{}
		for _, h := range l.Hosts {
			showBefore[h.Name] = vsctlShow(t, ctx, h)
			routesBefore[h.Name] = fabricRoutes(t, ctx, h)
		}
		// c2 -> c3 crosses two other hosts; c2 -> c1 goes through the restarted host.
		type result struct {
			name     string
			sent, rx int
			err      error
		}
		results := make(chan result, 2)
		var wg sync.WaitGroup
		for _, to := range []*fabriclab.Container{cs[2], cs[0]} {
			wg.Add(1)
			go func(to *fabriclab.Container) {
				defer wg.Done()
				s, r, err := fabriclab.Ping(ctx, cs[1].NetNS, to.IP, 700, 10*time.Millisecond)
				results <- result{cs[1].Name + "->" + to.Name, s, r, err}
			}(to)
		}
		time.Sleep(time.Second)
		if err := victim.Proc.Kill(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(500 * time.Millisecond)
		if _, err := f.StartArgs(ctx, victim.Host, victim.Args); err != nil {
			t.Fatal(err)
		}
		wg.Wait()
		close(results)
		for r := range results {
			if r.err != nil {
				t.Fatal(r.err)
			}
			t.Logf("%s: %d sent, %d received during kill -9 + restart", r.name, r.sent, r.rx)
			if r.sent < 600 || r.rx != r.sent {
				t.Errorf("%s lost %d of %d packets", r.name, r.sent-r.rx, r.sent)
			}
		}
		// Let the restarted node settle and sync a few times, then nothing may have changed.
		took, err := f.WaitConverged(ctx, 30*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("every node sees every other alive with a tunnel %s after the pings ended", took.Round(time.Millisecond))
		time.Sleep(5 * time.Second)
		for _, h := range l.Hosts {
			if got := vsctlShow(t, ctx, h); got != showBefore[h.Name] {
				t.Errorf("%s: ovs-vsctl show changed across the restart:\nbefore:\n%s\nafter:\n%s", h.Name, showBefore[h.Name], got)
			}
			if got := fabricRoutes(t, ctx, h); strings.Join(got, "\n") != strings.Join(routesBefore[h.Name], "\n") {
				t.Errorf("%s: routes changed across the restart: %v -> %v", h.Name, routesBefore[h.Name], got)
			}
		}
	})

	var h4 *lab.Host
	t.Run("a fourth host joins", func(t *testing.T) {
		var err error
		if h4, err = l.AddHost(ctx); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		n4, err := f.Start(ctx, h4)
		if err != nil {
			t.Fatal(err)
		}
		c4, err := f.AddContainer(ctx, n4, "c4", api.AttachRequest{})
		if err != nil {
			t.Fatal(err)
		}
		all := append(append([]*fabriclab.Container{}, cs...), c4)
		assertMatrix(t, ctx, all, 12)
		t.Logf("4th host: fabricd start -> all 12 pairs reachable in %s", time.Since(start).Round(time.Millisecond))
		for _, h := range append(l.Hosts[:3:3], h4) {
			if got := tunnelPorts(t, ctx, h); len(got) != 3 {
				t.Errorf("%s: %d tunnel ports, want 3", h.Name, len(got))
			}
		}
	})

	t.Run("a host leaves gracefully", func(t *testing.T) {
		if h4 == nil {
			t.Skip("no fourth host")
		}
		n4 := f.Node(h4.Name)
		if _, err := n4.Client().Leave(ctx); err != nil {
			t.Fatal(err)
		}
		took := eventually(t, 15*time.Second, "others drop h4", func() error {
			for _, h := range l.Hosts[:3] {
				if got := tunnelPorts(t, ctx, h); len(got) != 2 {
					return fmt.Errorf("%s still has %d tunnels", h.Name, len(got))
				}
				if got := fabricRoutes(t, ctx, h); len(got) != 2 {
					return fmt.Errorf("%s still has %d routes", h.Name, len(got))
				}
			}
			return nil
		})
		t.Logf("graceful leave: tunnels and routes to h4 gone from every peer in %s", took.Round(time.Millisecond))
		if err := n4.Proc.Wait(10 * time.Second); err != nil {
			t.Errorf("fabricd on h4 after leave: %v", err)
		}
		f.Forget(h4.Name)
		assertMatrix(t, ctx, cs, 6)
	})

	t.Run("static subnet conflict is refused", func(t *testing.T) {
		before := map[string]string{}
		for _, h := range l.Hosts[:3] {
			before[h.Name] = vsctlShow(t, ctx, h) + strings.Join(fabricRoutes(t, ctx, h), "\n")
		}
		h5, err := l.AddHost(ctx)
		if err != nil {
			t.Fatal(err)
		}
		p, err := h5.Start(ctx, "fabricd", f.Args(h5, f.JoinAddrs(h5.Name), "--subnet", staticSubnet), nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(30 * time.Second); err == nil {
			t.Fatal("fabricd with a conflicting static subnet exited 0")
		}
		log, _ := os.ReadFile(p.LogFile())
		if !strings.Contains(string(log), "already claimed by h1") {
			t.Errorf("no clear conflict error in the log:\n%s", log)
		}
		time.Sleep(3 * time.Second) // several resyncs of the others
		for _, h := range l.Hosts[:3] {
			if got := vsctlShow(t, ctx, h) + strings.Join(fabricRoutes(t, ctx, h), "\n"); got != before[h.Name] {
				t.Errorf("%s changed while h5 was refused:\n%s\n---\n%s", h.Name, before[h.Name], got)
			}
		}
		assertMatrix(t, ctx, cs, 6)
	})
}

// assertMatrix checks that every container reaches every other one.
func assertMatrix(t *testing.T, ctx context.Context, cs []*fabriclab.Container, pairs int) {
	t.Helper()
	res := fabriclab.PingMatrix(ctx, cs, 20*time.Second)
	if len(res) != pairs {
		t.Fatalf("%d pairs, want %d", len(res), pairs)
	}
	for _, r := range res {
		if !r.OK {
			t.Errorf("%s (%s) -> %s (%s): %v", r.From.Name, r.From.Node.Host.Name, r.To.Name, r.To.IP, r.Err)
		}
	}
}

// dumpLogsOnFailure prints every fabricd log of a failed test.
func dumpLogsOnFailure(t *testing.T, l *lab.Lab) {
	if !t.Failed() {
		return
	}
	for _, h := range l.Hosts {
		for _, p := range h.Procs() {
			b, _ := os.ReadFile(p.LogFile())
			t.Logf("=== %s %s log:\n%s", h.Name, p.Name(), tailLines(string(b), 60))
		}
	}
}

func tailLines(s string, n int) string {
	ls := strings.Split(s, "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

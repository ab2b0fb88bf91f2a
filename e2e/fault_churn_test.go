package e2e

import (
	"context"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

// TestFaultChurn makes a fourth host join and leave 20 times — by `fabricctl leave`, SIGTERM
// and kill -9 in turn, each followed by a restart — while 50 containers are attached and
// detached one after the other on another host. Traffic among the three steady hosts keeps
// flowing, every attach gets the address the previous one freed, and afterwards every host
// holds exactly what it held before: no port, veth, route, address, NAT rule or address
// reservation leaked (snapshots equal, ignoring the UUIDs and OpenFlow numbers of tunnel
// ports that a leave legitimately removed and the next join re-created).
// streamPairs are the container pairs (indexes: c1 on h1, c2 on h2, c3 on h3) pinged during
// the churn; h2 runs the attach/detach cycles.
var streamPairs = [][2]int{{0, 2}, {2, 0}, {0, 1}}

func TestFaultChurn(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	const cycles, joins = 50, 20 // attach/detach cycles on h2, join/leave cycles of h4
	fl := newFaultLab(t, ctx)
	h4, err := fl.l.AddHost(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := fl.f.Start(ctx, h4); err != nil {
		t.Fatal(err)
	}
	if _, err := fl.f.WaitConverged(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	args := fl.f.Node(h4.Name).Args
	busy := fl.f.Node(fl.l.Hosts[1].Name) // where the attach/detach cycles run
	before := fl.snapshots(t, ctx)

	var streams []*fabriclab.Stream
	for _, p := range streamPairs {
		streams = append(streams, startStream(t, ctx, fl.cs[p[0]], fl.cs[p[1]]))
	}

	// 50 attach/detach cycles on h2, alongside.
	type cycleResult struct {
		ips []string
		err error
	}
	attachDone := make(chan cycleResult, 1)
	go func() {
		ips, err := fl.f.AttachDetachCycles(ctx, busy, cycles)
		attachDone <- cycleResult{ips, err}
	}()
	start := time.Now()
	if err := fl.f.JoinLeaveCycles(ctx, h4, args, joins); err != nil {
		t.Fatal(err)
	}
	t.Logf("20 join/leave cycles of %s (fabricctl leave, SIGTERM, kill -9, each then restarted) took %s", h4.Name, time.Since(start).Round(time.Millisecond))
	r := <-attachDone
	if r.err != nil {
		t.Fatal(r.err)
	}
	for i, ip := range r.ips {
		if ip != r.ips[0] {
			t.Errorf("attach cycle %d got %s, want %s: the previous container's address was not freed", i, ip, r.ips[0])
		}
	}
	t.Logf("50 attach/detach cycles on %s, all given %s", busy.Host.Name, r.ips[0])
	// The issue asks of the churn that nothing leaks, not that nothing is lost meanwhile. Seen
	// here: about 1 echo in 100 into the host with the attach/detach cycles is lost, single
	// ones, at the moment a container port comes or goes; now and then a few consecutive
	// ones (about 40 ms) between steady hosts when h4's tunnel port goes after its leave. It
	// happens with --pipeline l2 as well, so it is not the routed pipeline's flow updates;
	// plain OVS bridges adding and removing vxlan and (down) veth ports under the same
	// traffic lose nothing. Not diagnosed yet. Losses are logged and bounded by the port
	// changes on the stream's two hosts (measured: about one echo per 20 changes), at one
	// echo per 10, so that a real break (flows gone for a second or more: a hundred echoes)
	// still fails whatever the pace of the churn: a bound on the share of echoes sent tied
	// the test to how fast attaches are (the faster the churn, the fewer echoes in it).
	for k, st := range streams {
		r := stopStream(t, st)
		t.Logf("%s (during the churn): %s, lost icmp_seq %v", st.Name, r, r.Missing)
		// Each host on the path adds and removes at most one tunnel port per join cycle; the
		// busy host adds and removes a container port per attach cycle.
		changes := 2 * 2 * joins
		if pair := streamPairs[k]; pair[0] == 1 || pair[1] == 1 {
			changes += 2 * cycles
		}
		if r.Sent < 50 || r.Lost()*10 > changes {
			t.Errorf("%s lost %d of %d echoes during the churn, more than one per 10 of the %d port changes on its hosts", st.Name, r.Lost(), r.Sent, changes)
		}
	}
	assertMatrix(t, ctx, fl.cs, 6)
	// Leak count: items that differ from before once the fabric has settled.
	_, diff := fl.f.WaitSame(ctx, before, true, 60*time.Second)
	leaks := fabriclab.LeakCount(diff)
	t.Logf("churn leak count: %d", leaks)
	if leaks > 0 {
		t.Errorf("host state differs from before the churn:\n%s", diff)
	}
}

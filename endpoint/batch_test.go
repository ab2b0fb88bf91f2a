package endpoint

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/ovsdb"
)

// netnsFiles makes n files that stand for network namespaces (the fake host only checks
// that they exist).
func netnsFiles(t *testing.T, n int) []string {
	t.Helper()
	dir := t.TempDir()
	out := make([]string, n)
	for k := range out {
		out[k] = filepath.Join(dir, fmt.Sprintf("ns%d", k))
		if err := os.WriteFile(out[k], nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// waitLive waits until ovsdbtest's ovs-vswitchd has numbered port and returns it.
func waitLive(t *testing.T, sw *ovsdb.Client, port string) ovsdb.PortInfo {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p, err := sw.WaitPort(ctx, "br-int", port)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// heldSwitch is a Switch whose EnsurePorts (the batched transaction) records the ports of
// each call and calls hold first, when set.
type heldSwitch struct {
	Switch
	mu   sync.Mutex
	txns [][]string
	hold func()
}

func (h *heldSwitch) EnsurePorts(ctx context.Context, bridge string, specs []ovsdb.PortSpec) error {
	names := make([]string, len(specs))
	for k, s := range specs {
		names[k] = s.Name
	}
	h.mu.Lock()
	hold := h.hold
	h.txns = append(h.txns, names)
	h.mu.Unlock()
	if hold != nil {
		hold()
	}
	return h.Switch.EnsurePorts(ctx, bridge, specs)
}

// TestAttachBatch: attaches that arrive while a commit is in flight are recorded together,
// in one OVSDB transaction, and their flows added in one bundle, each with its own OpenFlow
// port number from fabricd's range, which ovs-vswitchd honours; one that OVSDB refuses (its
// port name is someone else's) fails alone and leaves nothing behind, its flows removed.
func TestAttachBatch(t *testing.T) {
	ctx := context.Background()
	c, sw, k := newManager(t, settings(t))
	loop := c.loop.(*fakeLoop)
	held := &heldSwitch{Switch: c.sw}
	c.sw = held
	const n = 8
	ns := netnsFiles(t, n+1)
	bad := ns[n]
	badPort := portNameOf(api.Target{Key: bad}, DefaultNetwork)
	if err := sw.EnsurePort(ctx, "br-int", ovsdb.PortSpec{Name: badPort, Owner: "someone-else", Role: ovsdb.RoleContainer}); err != nil {
		t.Fatal(err)
	}

	// The first attach's flow bundle and transaction wait until all the others are queued
	// behind them.
	release := make(chan struct{})
	var onceFlows, oncePorts sync.Once
	loop.mu.Lock()
	loop.hold = func([]string) { onceFlows.Do(func() { <-release }) }
	loop.mu.Unlock()
	held.mu.Lock()
	held.hold = func() { oncePorts.Do(func() { <-release }) }
	held.mu.Unlock()
	type result struct {
		a   api.Attachment
		err error
	}
	results := make([]result, n+1)
	var wg sync.WaitGroup
	attach := func(i int) {
		defer wg.Done()
		results[i].a, results[i].err = c.Attach(ctx, attachReq(ns[i], "", ""))
	}
	wg.Add(1)
	go attach(0)
	// queued reports how many attaches wait in the port and in the flow batcher, and
	// whether both are running (a commit and a bundle in flight).
	queued := func() (ports, flows int, running bool) {
		c.batch.mu.Lock()
		ports, running = len(c.batch.queue), c.batch.running
		c.batch.mu.Unlock()
		c.flows.mu.Lock()
		flows, running = len(c.flows.queue), running && c.flows.running
		c.flows.mu.Unlock()
		return ports, flows, running
	}
	waitQueued := func(want int) {
		t.Helper()
		deadline := time.Now().Add(10 * time.Second)
		for {
			p, f, running := queued()
			if p == want && f == want && running {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d attaches queued for a transaction, %d for a bundle (running %v); want %d", p, f, running, want)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}
	// The first is in flight (its bundle and its transaction held) once the queues are
	// empty again.
	waitQueued(0)
	for i := 1; i <= n; i++ {
		wg.Add(1)
		go attach(i)
	}
	waitQueued(n)
	close(release)
	wg.Wait()

	if err := results[n].err; err == nil || api.StatusCode(err) != 409 {
		t.Errorf("attach over a foreign port: %v (code %d), want 409", err, api.StatusCode(err))
	}
	ofports := map[int]string{}
	for i := 0; i < n; i++ {
		r := results[i]
		if r.err != nil {
			t.Fatalf("attach %d: %v", i, r.err)
		}
		port := portNameOf(api.Target{Key: ns[i]}, DefaultNetwork)
		p := waitLive(t, sw, port)
		if p.OfportRequest < FirstContainerOfport || p.OfportRequest > LastContainerOfport || p.Ofport != p.OfportRequest {
			t.Errorf("%s: ofport_request %d, ofport %d; want one number from %d-%d", port, p.OfportRequest, p.Ofport, FirstContainerOfport, LastContainerOfport)
		}
		if o, dup := ofports[p.Ofport]; dup {
			t.Errorf("%s and %s both have ofport %d", o, port, p.Ofport)
		}
		ofports[p.Ofport] = port
	}
	loop.mu.Lock()
	added, recorded, failed := slices.Clone(loop.added), slices.Clone(loop.recorded), slices.Clone(loop.failed)
	loop.mu.Unlock()
	held.mu.Lock()
	txns := slices.Clone(held.txns)
	held.mu.Unlock()
	if len(added) != 2 || len(added[0]) != 1 || len(added[1]) != n || !slices.Contains(added[1], badPort) {
		t.Errorf("flow bundles for %v, want one for the first attach and one for the other %d", added, n)
	}
	if len(txns) != 2 || len(txns[0]) != 1 || len(txns[1]) != n || !slices.Contains(txns[1], badPort) {
		t.Errorf("port transactions for %v, want one for the first attach and one for the other %d", txns, n)
	}
	// The loop is told which were recorded and which not (whose flows it removes).
	if len(recorded) != n || !slices.Equal(failed, []string{badPort}) {
		t.Errorf("recorded %v, failed %v; want %d recorded and %s failed", recorded, failed, n, badPort)
	}
	// Nothing of the failed attach is left: its veth, a reservation, or a change to the port.
	if k.hasVeth(badPort) {
		t.Errorf("veth %s left behind", badPort)
	}
	c.mu.Lock()
	left := len(c.inflight)
	c.mu.Unlock()
	if left != 0 {
		t.Errorf("%d reservations left", left)
	}
	ports, _ := sw.Ports(ctx, "br-int")
	for _, p := range ports {
		if p.Name == badPort && (p.Owner() != "someone-else" || p.OfportRequest != 0) {
			t.Errorf("foreign port changed: %+v", p)
		}
	}
}

// TestAttachVethFailureRemovesFlows: the port's flows go out before its veth is made; when
// the veth cannot be made the attach fails, the loop is told to remove those flows before it
// returns, and nothing else is left (no port, no reservation).
func TestAttachVethFailureRemovesFlows(t *testing.T) {
	ctx := context.Background()
	c, sw, k := newManager(t, settings(t))
	loop := c.loop.(*fakeLoop)
	ns := netnsFiles(t, 1)
	port := portNameOf(api.Target{Key: ns[0]}, DefaultNetwork)
	k.mu.Lock()
	k.attachErr = errors.New("veth: no room")
	k.mu.Unlock()
	if _, err := c.Attach(ctx, attachReq(ns[0], "", "")); err == nil {
		t.Fatal("attach succeeded without its veth")
	}
	loop.mu.Lock()
	added, recorded, failed := slices.Clone(loop.added), slices.Clone(loop.recorded), slices.Clone(loop.failed)
	loop.mu.Unlock()
	if len(added) != 1 || !slices.Equal(added[0], []string{port}) || len(recorded) != 0 || !slices.Equal(failed, []string{port}) {
		t.Errorf("flows added for %v, recorded %v, failed %v; want %s added, then failed", added, recorded, failed, port)
	}
	ports, err := sw.Ports(ctx, "br-int")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ports {
		if p.Name == port {
			t.Errorf("port %s recorded for a failed attach", port)
		}
	}
	c.mu.Lock()
	left := len(c.inflight)
	c.mu.Unlock()
	if left != 0 {
		t.Errorf("%d reservations left", left)
	}
	// The next attach of the same container works, with the same address.
	k.mu.Lock()
	k.attachErr = nil
	k.mu.Unlock()
	if _, err := c.Attach(ctx, attachReq(ns[0], "", "")); err != nil {
		t.Fatal(err)
	}
}

// TestAttachOfportReuse: a new port never takes the number of a port that is still in
// OVSDB, also after a restart (a new manager reads the numbers in use), and a removed port's
// number comes back only after the rest of the range.
func TestAttachOfportReuse(t *testing.T) {
	ctx := context.Background()
	s := settings(t)
	c, sw, k := newManager(t, s)
	ns := netnsFiles(t, 3)
	number := func(target string) int {
		t.Helper()
		return waitLive(t, sw, portNameOf(api.Target{Key: target}, DefaultNetwork)).Ofport
	}
	if _, err := c.Attach(ctx, attachReq(ns[0], "", "")); err != nil {
		t.Fatal(err)
	}
	first := number(ns[0])
	if first != FirstContainerOfport {
		t.Errorf("first container port has ofport %d, want %d", first, FirstContainerOfport)
	}

	// A restarted fabricd: a new manager on the same OVSDB.
	c2 := New(s, sw, k, c.log)
	c2.SetLoop(c.loop)
	if _, err := c2.Attach(ctx, attachReq(ns[1], "", "")); err != nil {
		t.Fatal(err)
	}
	second := number(ns[1])
	if second == first {
		t.Fatalf("after a restart the new port took ofport %d of a port still there", first)
	}
	if _, err := c2.Detach(ctx, api.DetachRequest{Target: ns[0]}); err != nil {
		t.Fatal(err)
	}
	if _, err := c2.Attach(ctx, attachReq(ns[2], "", "")); err != nil {
		t.Fatal(err)
	}
	if third := number(ns[2]); third == first || third == second {
		t.Errorf("third port has ofport %d; %d was freed a moment ago and %d is in use", third, first, second)
	}
	// Publishing rewrites the port: its number stays.
	if _, err := c2.Publish(ctx, ns[1], "8080:80"); err != nil {
		t.Fatal(err)
	}
	if p := waitLive(t, sw, portNameOf(api.Target{Key: ns[1]}, DefaultNetwork)); p.OfportRequest != second || p.Ofport != second {
		t.Errorf("after publish: ofport_request %d, ofport %d, want %d", p.OfportRequest, p.Ofport, second)
	}
}

package registry

import (
	"context"
	"fmt"
	"log"
	"log/slog"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// mlNode is one host of the integration test: a real memberlist on loopback whose
// delegate forwards to a Registry, as peers.Membership's delegate will.
type mlNode struct {
	name   string
	reg    *Registry
	list   *memberlist.Memberlist
	send   *mlSender
	del    *mlDelegate
	cancel context.CancelFunc
	done   chan struct{}
}

// logSink collects the nodes' logs (memberlist may still log after Shutdown, when
// t.Log would panic); the end is shown when the test fails.
type logSink struct {
	mu  sync.Mutex
	buf []byte
}

func (s *logSink) Write(b []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.buf = append(s.buf, b...)
	if len(s.buf) > 1<<20 {
		s.buf = slices.Clone(s.buf[len(s.buf)-64<<10:])
	}
	return len(b), nil
}

func newSink(t *testing.T) *logSink {
	s := &logSink{}
	t.Cleanup(func() {
		if t.Failed() {
			s.mu.Lock()
			out := s.buf[max(0, len(s.buf)-64<<10):]
			t.Logf("logs:\n%s", out)
			s.mu.Unlock()
		}
	})
	return s
}

// mlDelegate is the small delegate of the integration test.
type mlDelegate struct {
	reg        *Registry
	stateBytes atomic.Int64 // LocalState bytes handed to memberlist
	states     atomic.Int64
}

func (d *mlDelegate) NodeMeta(int) []byte { return nil }
func (d *mlDelegate) NotifyMsg(b []byte) {
	if IsMessage(b) {
		d.reg.NotifyMsg(b)
	}
}
func (d *mlDelegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.reg.GetBroadcasts(overhead, limit)
}
func (d *mlDelegate) LocalState(join bool) []byte {
	s := d.reg.LocalState(join)
	d.stateBytes.Add(int64(len(s)))
	d.states.Add(1)
	return s
}
func (d *mlDelegate) MergeRemoteState(buf []byte, join bool) { d.reg.MergeRemoteState(buf, join) }

// mlSender sends reliably to a member by name. It keeps its own copy of each member's
// address from the event delegate (called under memberlist's lock): the *Node values
// Members returns are updated by memberlist without a lock, so reading them races.
type mlSender struct {
	list  atomic.Pointer[memberlist.Memberlist]
	bytes atomic.Int64
	msgs  atomic.Int64
	mu    sync.Mutex
	addrs map[string]memberlist.Node
}

func (s *mlSender) NotifyJoin(n *memberlist.Node)   { s.set(n) }
func (s *mlSender) NotifyUpdate(n *memberlist.Node) { s.set(n) }
func (s *mlSender) NotifyLeave(n *memberlist.Node) {
	s.mu.Lock()
	delete(s.addrs, n.Name)
	s.mu.Unlock()
}

func (s *mlSender) set(n *memberlist.Node) {
	s.mu.Lock()
	s.addrs[n.Name] = memberlist.Node{Name: n.Name, Addr: slices.Clone(n.Addr), Port: n.Port}
	s.mu.Unlock()
}

func (s *mlSender) SendTo(node string, msg []byte) error {
	l := s.list.Load()
	s.mu.Lock()
	n, ok := s.addrs[node]
	s.mu.Unlock()
	if l == nil || !ok {
		return fmt.Errorf("no member %s", node)
	}
	s.bytes.Add(int64(len(msg)))
	s.msgs.Add(1)
	return l.SendReliable(&n, msg)
}

func startNode(t *testing.T, logs *logSink, name string, inc uint32, join ...*mlNode) *mlNode {
	t.Helper()
	n := &mlNode{name: name, send: &mlSender{addrs: map[string]memberlist.Node{}}, done: make(chan struct{})}
	reg, err := New(Config{
		Origin:      name,
		Incarnation: inc,
		Sender:      n.send,
		NumNodes: func() int {
			if l := n.send.list.Load(); l != nil {
				return l.NumMembers()
			}
			return 1
		},
		GapDelay: 500 * time.Millisecond,
		// Short, for the test's runtime: during c's restart below, memberlist may still
		// hold c's old address for a moment, and an answer sent there is lost.
		RequestTimeout: 3 * time.Second,
		Logger:         slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name),
	})
	if err != nil {
		t.Fatal(err)
	}
	n.reg = reg
	n.del = &mlDelegate{reg: reg}
	mc := memberlist.DefaultLocalConfig()
	mc.Name = name
	mc.BindAddr = "127.0.0.1"
	mc.BindPort = 0
	mc.AdvertisePort = 0
	mc.PushPullInterval = time.Second
	mc.GossipInterval = 50 * time.Millisecond
	mc.TCPTimeout = 10 * time.Second
	mc.Delegate = n.del
	mc.Events = n.send
	mc.Logger = log.New(logs, name+" ", 0)
	list, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	n.list = list
	n.send.list.Store(list)
	ctx, cancel := context.WithCancel(context.Background())
	n.cancel = cancel
	go func() { defer close(n.done); _ = reg.Run(ctx) }()
	t.Cleanup(n.stop)
	var addrs []string
	for _, j := range join {
		ln := j.list.LocalNode()
		addrs = append(addrs, ln.Addr.String()+":"+strconv.Itoa(int(ln.Port)))
	}
	if len(addrs) > 0 {
		if _, err := list.Join(addrs); err != nil {
			t.Fatalf("%s join: %v", name, err)
		}
	}
	return n
}

func (n *mlNode) stop() {
	if n.cancel == nil {
		return
	}
	_ = n.list.Leave(time.Second)
	_ = n.list.Shutdown()
	n.cancel()
	<-n.done
	n.cancel = nil
}

// digestOf is what a registry announces, for comparing replicas.
func digestOf(t *testing.T, r *Registry) []digestEntry {
	d, err := decodeDigest(r.LocalState(false))
	if err != nil {
		t.Fatal(err)
	}
	return d.Entries
}

// waitConverged waits until every node announces the same digest with no gap and no
// sync outstanding, and returns how long it took.
func waitConverged(t *testing.T, timeout time.Duration, nodes ...*mlNode) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(timeout)
	for {
		ok := true
		first := digestOf(t, nodes[0].reg)
		for _, n := range nodes {
			d := digestOf(t, n.reg)
			if !reflect.DeepEqual(d, first) {
				ok = false
			}
			for _, e := range d {
				if e.W != e.M {
					ok = false
				}
			}
		}
		if ok {
			return time.Since(start)
		}
		if dbg := time.Since(start); dbg > 3*time.Second && dbg < 3050*time.Millisecond {
			for _, n := range nodes {
				t.Logf("DEBUG %s: %+v", n.name, n.reg.Origins())
			}
		}
		if time.Now().After(deadline) {
			for _, n := range nodes {
				t.Logf("%s: %+v", n.name, n.reg.Origins())
			}
			t.Fatalf("not converged after %v", timeout)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestMemberlistConvergence runs three registries over real memberlist instances on
// loopback: records and deletes converge, then 100 networks x 1000 endpoints on each of
// two hosts (10 x 100 with -short), then a host restarts with fewer records.
func TestMemberlistConvergence(t *testing.T) {
	logs := newSink(t)
	a := startNode(t, logs, "host-a", 1)
	b := startNode(t, logs, "host-b", 1, a)
	c := startNode(t, logs, "host-c", 1, a)
	nodes := []*mlNode{a, b, c}

	// Small records and deletes.
	mustSet(t, a.reg, KindNetwork, "blue", "10.1.0.0/16")
	mustSet(t, b.reg, KindNetwork, "blue", "10.9.0.0/16") // concurrent create, loses or wins alike everywhere
	mustSet(t, c.reg, KindNetwork, "red", "10.2.0.0/16")
	for i := range 20 {
		for _, n := range nodes {
			mustSet(t, n.reg, KindEndpoint, fmt.Sprintf("blue/%s-%d", n.name, i), "e")
		}
	}
	waitConverged(t, 30*time.Second, nodes...)
	for i := range 10 {
		mustDelete(t, b.reg, KindEndpoint, fmt.Sprintf("blue/host-b-%d", i))
	}
	mustDelete(t, c.reg, KindNetwork, "red")
	waitConverged(t, 30*time.Second, nodes...)
	for _, n := range nodes {
		for _, o := range nodes {
			wantLive(t, n.reg, o.name, liveView(o.reg, o.name))
		}
		w, ok := n.reg.Winner(KindNetwork, "blue")
		if !ok || w.Origin != "host-a" {
			t.Fatalf("%s: blue won by %v", n.name, w)
		}
		if _, ok := n.reg.Winner(KindNetwork, "red"); ok {
			t.Fatalf("%s: red still there", n.name)
		}
	}

	// Size: networks x endpoints on each of a and b.
	nets, eps := 100, 1000
	if testing.Short() {
		nets, eps = 10, 100
	}
	var sentBefore int64
	for _, n := range nodes {
		sentBefore += n.send.bytes.Load()
	}
	start := time.Now()
	for h, n := range []*mlNode{a, b} {
		for net := range nets {
			mustSet(t, n.reg, KindNetwork, fmt.Sprintf("net%03d", net), fmt.Sprintf("10.%d.0.0/16", net))
			for i := range eps {
				if _, err := n.reg.Set(KindEndpoint, fmt.Sprintf("net%03d/c%04d", net, i), endpointValue(h, net, i)); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	written := time.Since(start)
	took := waitConverged(t, 5*time.Minute, nodes...)
	var sent int64
	for _, n := range nodes {
		sent += n.send.bytes.Load()
	}
	total := 0
	for _, n := range nodes {
		if got := n.reg.Count(KindEndpoint); got["host-a"] != nets*eps+20 || got["host-b"] != nets*eps+10 {
			t.Fatalf("%s holds %v endpoints", n.name, got)
		}
		total += len(n.reg.List(KindEndpoint))
	}
	t.Logf("%d x %d endpoints on 2 hosts: written in %v, converged %v later on 3 hosts; sync traffic %.1f MB (%d endpoint records held in all)",
		nets, eps, written.Round(time.Millisecond), took.Round(time.Millisecond), float64(sent-sentBefore)/1e6, total)

	// Steady state: push/pulls carry digests only.
	var states, stateBytes, msgs int64
	for _, n := range nodes {
		states -= n.del.states.Load()
		stateBytes -= n.del.stateBytes.Load()
		msgs -= n.send.msgs.Load()
	}
	time.Sleep(3 * time.Second)
	for _, n := range nodes {
		states += n.del.states.Load()
		stateBytes += n.del.stateBytes.Load()
		msgs += n.send.msgs.Load()
	}
	if msgs != 0 {
		t.Errorf("steady state sent %d sync messages", msgs)
	}
	if states > 0 {
		t.Logf("steady state: %d push/pull states of %d bytes on average, no sync message", states, stateBytes/states)
	}

	// c restarts with the next incarnation and republishes only part of its records; it
	// also learns everything again from the others.
	stopAt := time.Now()
	c.stop()
	t.Logf("stop took %v", time.Since(stopAt))
	c2 := startNode(t, logs, "host-c", 2, a)
	for i := range 5 {
		mustSet(t, c2.reg, KindEndpoint, fmt.Sprintf("blue/host-c-%d", i), "e")
	}
	t.Logf("restarted host-c converged in %v", waitConverged(t, 2*time.Minute, a, b, c2).Round(time.Millisecond))
	for _, n := range []*mlNode{a, b} {
		if got := len(liveView(n.reg, "host-c")); got != 5 {
			t.Fatalf("%s holds %d records of the restarted host-c, want 5", n.name, got)
		}
	}
	if got := c2.reg.Count(KindEndpoint)["host-a"]; got != nets*eps+20 {
		t.Fatalf("restarted host-c holds %d endpoints of host-a", got)
	}

	// a and b forget c once it is gone for good.
	c2.stop()
	a.reg.Forget("host-c")
	b.reg.Forget("host-c")
	waitConverged(t, 30*time.Second, a, b)
	if got := len(liveView(a.reg, "host-c")); got != 0 {
		t.Fatalf("a still holds %d records of host-c", got)
	}
}

package registry

import (
	"bytes"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"
)

// testNet connects registries in one process without memberlist: SendTo delivers a copy
// of the message to the destination's NotifyMsg at once, and settle runs the sends Run
// would run. Time is a fake clock the test advances.
type testNet struct {
	t    testing.TB
	mu   sync.Mutex
	regs map[string]*Registry
	down map[string]bool // nodes whose messages are lost
	now  time.Time

	sent      int // reliable messages delivered
	sentBytes int
	bumps     map[string][]uint32 // OnIncarnation calls by node
}

func newNet(t testing.TB) *testNet {
	return &testNet{t: t, regs: map[string]*Registry{}, down: map[string]bool{}, bumps: map[string][]uint32{},
		now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
}

type netSender struct {
	n    *testNet
	from string
}

func (s netSender) SendTo(node string, msg []byte) error {
	s.n.mu.Lock()
	dst := s.n.regs[node]
	lost := s.n.down[node] || s.n.down[s.from]
	if dst != nil && !lost {
		s.n.sent++
		s.n.sentBytes += len(msg)
	}
	s.n.mu.Unlock()
	if dst == nil || lost {
		return fmt.Errorf("node %s unreachable", node)
	}
	dst.NotifyMsg(bytes.Clone(msg))
	return nil
}

// add starts (or restarts, replacing) node name with incarnation inc.
func (n *testNet) add(name string, inc uint32) *Registry {
	n.t.Helper()
	r, err := New(Config{
		Origin:        name,
		Incarnation:   inc,
		Sender:        netSender{n, name},
		OnIncarnation: func(i uint32) { n.mu.Lock(); n.bumps[name] = append(n.bumps[name], i); n.mu.Unlock() },
		NumNodes:      func() int { return len(n.regs) },
		TombstoneTTL:  time.Hour,
		GapDelay:      time.Second,
		Logger:        slog.New(slog.DiscardHandler),
		now:           func() time.Time { n.mu.Lock(); defer n.mu.Unlock(); return n.now },
	})
	if err != nil {
		n.t.Fatal(err)
	}
	n.mu.Lock()
	n.regs[name] = r
	n.mu.Unlock()
	return r
}

func (n *testNet) advance(d time.Duration) {
	n.mu.Lock()
	n.now = n.now.Add(d)
	n.mu.Unlock()
}

// settle runs queued sends on every registry until none is left.
func (n *testNet) settle() {
	for {
		ran := false
		for _, name := range n.names() {
			r := n.regs[name]
			for done := false; !done; {
				select {
				case job := <-r.work:
					job()
					ran = true
				default:
					done = true
				}
			}
		}
		if !ran {
			return
		}
	}
}

func (n *testNet) names() []string {
	n.mu.Lock()
	defer n.mu.Unlock()
	var out []string
	for name := range n.regs {
		out = append(out, name)
	}
	slices.Sort(out)
	return out
}

// gossip hands every broadcast queued at from to each of to, once.
func (n *testNet) gossip(from *Registry, to ...*Registry) {
	msgs := from.GetBroadcasts(0, 1<<30)
	for _, r := range to {
		for _, m := range msgs {
			r.NotifyMsg(bytes.Clone(m))
		}
	}
	n.settle()
}

// flood gossips until no registry has anything queued (everyone hears everything).
func (n *testNet) flood() {
	for range 50 {
		busy := false
		for _, name := range n.names() {
			r := n.regs[name]
			if r.queue.NumQueued() == 0 {
				continue
			}
			busy = true
			var others []*Registry
			for _, o := range n.names() {
				if o != name && !n.down[o] && !n.down[name] {
					others = append(others, n.regs[o])
				}
			}
			n.gossip(r, others...)
		}
		if !busy {
			return
		}
	}
	n.t.Fatal("gossip did not quiesce")
}

// pushPull exchanges push/pull states between a and b, as memberlist does, and settles.
func (n *testNet) pushPull(a, b *Registry) {
	sa, sb := a.LocalState(false), b.LocalState(false)
	a.MergeRemoteState(sb, false)
	b.MergeRemoteState(sa, false)
	n.settle()
}

// tick runs every registry's periodic work at the current fake time and settles.
func (n *testNet) tick() {
	for _, name := range n.names() {
		n.regs[name].tick(n.now)
	}
	n.settle()
}

// view is a registry's records (live and tombstones) of one origin, for comparisons.
func view(r *Registry, origin string) map[string]string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]string{}
	o := r.origins[origin]
	if o == nil {
		return out
	}
	for k, e := range o.recs {
		v := string(e.Value)
		if e.Deleted {
			v = "<deleted>"
		}
		out[fmt.Sprintf("%s/%s", k.kind, k.key)] = v
	}
	return out
}

// liveView is view without tombstones.
func liveView(r *Registry, origin string) map[string]string {
	out := view(r, origin)
	for k, v := range out {
		if v == "<deleted>" {
			delete(out, k)
		}
	}
	return out
}

func mustSet(t testing.TB, r *Registry, kind Kind, key, value string) Record {
	t.Helper()
	rec, err := r.Set(kind, key, []byte(value))
	if err != nil {
		t.Fatalf("Set %s %s: %v", kind, key, err)
	}
	return rec
}

func mustDelete(t testing.TB, r *Registry, kind Kind, key string) {
	t.Helper()
	ok, err := r.Delete(kind, key)
	if err != nil || !ok {
		t.Fatalf("Delete %s %s = %v, %v", kind, key, ok, err)
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

// wantLive fails unless r holds exactly want as origin's live records.
func wantLive(t testing.TB, r *Registry, origin string, want map[string]string) {
	t.Helper()
	if got := liveView(r, origin); !equalMaps(got, want) {
		t.Fatalf("%s holds of %s:\n got %v\nwant %v", r.Origin(), origin, got, want)
	}
}

// endpointValue is a realistic encoded endpoint of about 150 bytes.
func endpointValue(host, net, i int) []byte {
	return fmt.Appendf(nil, `{"c":"c%02d-%03d-%04d","n":"net%03d","if":"eth0","ip":"10.%d.%d.%d/16","mac":"02:42:0a:%02x:%02x:%02x","dns":["web-%d.svc"],"p":[]}`,
		host, net, i, net, net, i/250, i%250+2, net, i/250, i%250, i)
}

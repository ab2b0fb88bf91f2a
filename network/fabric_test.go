package network

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/registry"
)

// memStore is an in-memory Open_vSwitch external_ids (the Book's Store); it counts writes.
type memStore struct {
	mu     sync.Mutex
	ids    map[string]string
	writes int
	fail   bool // writes fail
}

func newStore() *memStore { return &memStore{ids: map[string]string{"system-id": "abc"}} }

func (s *memStore) SystemExternalIDs(context.Context) (map[string]string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return maps.Clone(s.ids), nil
}

func (s *memStore) SetSystemExternalIDs(_ context.Context, set map[string]string, del []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.fail {
		return errors.New("ovsdb unreachable")
	}
	s.writes++
	for _, k := range del {
		delete(s.ids, k)
	}
	maps.Copy(s.ids, set)
	return nil
}

func (s *memStore) get(k string) (string, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.ids[k]
	return v, ok
}

func (s *memStore) setFail(fail bool) {
	s.mu.Lock()
	s.fail = fail
	s.mu.Unlock()
}

func (s *memStore) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.writes
}

// host is one fabricd of the test fabric: a real registry, a Book and its store.
type host struct {
	name   string
	inc    uint32
	reg    *registry.Registry
	store  *memStore
	book   *Book
	cancel context.CancelFunc
	done   chan struct{}
}

// testFabric connects real registries in one process: the Sender delivers a message to
// the destination's NotifyMsg at once, and a pump plays memberlist's part (gossip of the
// queued deltas and push/pull between every pair) every few milliseconds while running.
type testFabric struct {
	t      testing.TB
	settle time.Duration
	mu     sync.Mutex
	hosts  map[string]*host
	down   map[string]bool // unreachable hosts
	paused atomic.Bool
	stop   chan struct{}
	wg     sync.WaitGroup
}

type fabricSender struct {
	f    *testFabric
	from string
}

func (s fabricSender) SendTo(node string, msg []byte) error {
	s.f.mu.Lock()
	h := s.f.hosts[node]
	lost := s.f.down[node] || s.f.down[s.from]
	s.f.mu.Unlock()
	if h == nil || lost {
		return fmt.Errorf("node %s unreachable", node)
	}
	h.reg.NotifyMsg(bytes.Clone(msg))
	return nil
}

func newFabric(t testing.TB, settle time.Duration) *testFabric {
	f := &testFabric{t: t, settle: settle, hosts: map[string]*host{}, down: map[string]bool{}, stop: make(chan struct{})}
	f.wg.Add(1)
	go f.pumpLoop()
	t.Cleanup(func() {
		close(f.stop)
		f.wg.Wait()
		for _, h := range f.all() {
			h.halt()
		}
	})
	return f
}

func testLogger(t testing.TB, name string) *slog.Logger {
	if os.Getenv("NETWORK_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("host", name)
	}
	return slog.New(slog.DiscardHandler)
}

// start starts host name (again, with a new registry of a higher incarnation and a new
// Book on its store, when it ran before) and loads its persisted records.
func (f *testFabric) start(name string, store *memStore) *host {
	f.t.Helper()
	f.mu.Lock()
	inc := uint32(1)
	if old := f.hosts[name]; old != nil {
		inc = old.inc + 1
		old.halt()
	}
	f.mu.Unlock()
	reg, err := registry.New(registry.Config{
		Origin:         name,
		Incarnation:    inc,
		Sender:         fabricSender{f, name},
		NumNodes:       func() int { f.mu.Lock(); defer f.mu.Unlock(); return len(f.hosts) },
		GapDelay:       100 * time.Millisecond,
		RequestTimeout: 2 * time.Second,
		Logger:         testLogger(f.t, name),
	})
	if err != nil {
		f.t.Fatal(err)
	}
	h := &host{name: name, inc: inc, reg: reg, store: store, done: make(chan struct{})}
	h.book = NewBook(Config{Node: name, Default: defNet, Registry: reg, Store: store, Settle: f.settle, Logger: testLogger(f.t, name)})
	if _, err := h.book.Load(context.Background()); err != nil {
		f.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { defer close(h.done); _ = reg.Run(ctx) }()
	f.mu.Lock()
	f.hosts[name] = h
	f.mu.Unlock()
	return h
}

func (h *host) halt() {
	if h.cancel != nil {
		h.book.Close()
		h.cancel()
		<-h.done
		h.cancel = nil
	}
}

// leave takes host name out of the fabric; the others forget it, as the loop does for a
// host that left.
func (f *testFabric) leave(name string) {
	f.mu.Lock()
	h := f.hosts[name]
	delete(f.hosts, name)
	f.mu.Unlock()
	h.halt()
	for _, o := range f.all() {
		o.reg.Forget(name)
	}
}

func (f *testFabric) setDown(name string, down bool) {
	f.mu.Lock()
	f.down[name] = down
	f.mu.Unlock()
}

func (f *testFabric) all() []*host {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := slices.Collect(maps.Values(f.hosts))
	slices.SortFunc(out, func(a, b *host) int { return cmp.Compare(a.name, b.name) })
	return out
}

func (f *testFabric) pumpLoop() {
	defer f.wg.Done()
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	n := 0
	for {
		select {
		case <-f.stop:
			return
		case <-t.C:
		}
		if f.paused.Load() {
			continue
		}
		f.pump(n%10 == 0)
		n++
	}
}

// pump delivers every host's queued deltas to the others, and with pushPull exchanges
// push/pull digests between every pair of reachable hosts.
func (f *testFabric) pump(pushPull bool) {
	hosts := f.all()
	f.mu.Lock()
	down := maps.Clone(f.down)
	f.mu.Unlock()
	for _, h := range hosts {
		if down[h.name] {
			continue
		}
		for _, m := range h.reg.GetBroadcasts(0, 1<<20) {
			for _, o := range hosts {
				if o != h && !down[o.name] {
					o.reg.NotifyMsg(bytes.Clone(m))
				}
			}
		}
	}
	if !pushPull {
		return
	}
	for i, a := range hosts {
		for _, b := range hosts[i+1:] {
			if down[a.name] || down[b.name] {
				continue
			}
			sa, sb := a.reg.LocalState(false), b.reg.LocalState(false)
			a.reg.MergeRemoteState(sb, false)
			b.reg.MergeRemoteState(sa, false)
		}
	}
}

// eventually runs Sync on every reachable host until cond holds, failing after a while.
func (f *testFabric) eventually(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		f.syncAll()
		if cond() {
			return
		}
		if time.Now().After(deadline) {
			for _, h := range f.all() {
				f.t.Logf("%s: %+v", h.name, h.book.View())
			}
			f.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (f *testFabric) syncAll() {
	f.t.Helper()
	for _, h := range f.all() {
		f.mu.Lock()
		down := f.down[h.name]
		f.mu.Unlock()
		if down {
			continue
		}
		if _, err := h.book.Sync(context.Background()); err != nil {
			f.t.Fatalf("%s: Sync: %v", h.name, err)
		}
	}
}

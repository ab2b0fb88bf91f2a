package network

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/registry"
)

var ctx = context.Background()

func spec(name, subnet string) Spec {
	return Spec{Name: name, Subnet: netip.MustParsePrefix(subnet)}
}

// served reports whether h's view serves network name with the identity of want.
func served(h *host, want Network) bool {
	n, ok := h.book.View().Network(want.Name)
	return ok && n == want
}

func TestBookCreate(t *testing.T) {
	f := newFabric(t, 50*time.Millisecond)
	h := f.start("h1", newStore())
	n, err := h.book.Create(ctx, spec("blue", "10.50.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	if n.Origin != "h1" || n.Created == 0 || n.HostBits != 24 || n.Key == 0 {
		t.Fatalf("created %+v", n)
	}
	v := h.book.View()
	if !reflect.DeepEqual(v.Networks, []Network{n}) || !n.HasSlice(v.Local["blue"]) || len(v.Slices["blue"]) != 1 {
		t.Fatalf("view after create: %+v", v)
	}
	if got, _ := h.store.get(KeyNetPrefix + "blue"); got != string(n.Encode()) {
		t.Fatalf("persisted definition %q", got)
	}
	if got, _ := h.store.get(KeySlicePrefix + "blue"); !strings.Contains(got, v.Local["blue"].String()) {
		t.Fatalf("persisted slice %q, want %s", got, v.Local["blue"])
	}
	// Idempotent: the same parameters answer with the network.
	again, err := h.book.Create(ctx, Spec{Name: "blue", Subnet: n.Subnet, HostBits: 24, Key: n.Key})
	if err != nil || again != n {
		t.Fatalf("second create: %+v, %v", again, err)
	}
	for _, tt := range []struct {
		spec Spec
		kind error
		msg  string
	}{
		{spec("blue", "10.51.0.0/16"), api.ErrConflict, "already exists with subnet 10.50.0.0/16"},
		{spec("red", "10.50.7.0/24"), api.ErrConflict, "overlaps network blue"},
		{Spec{Name: "red", Subnet: netip.MustParsePrefix("10.60.0.0/16"), Key: n.Key}, api.ErrConflict, "is network blue's"},
		{spec("red", "10.244.0.0/24"), api.ErrConflict, "overlaps network default"},
		{spec("Red", "10.60.0.0/16"), api.ErrInvalid, "DNS label"},
		{spec(Default, "10.60.0.0/16"), api.ErrInvalid, "cluster CIDR"},
	} {
		if _, err := h.book.Create(ctx, tt.spec); !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("Create(%+v) = %v, want %v containing %q", tt.spec, err, tt.kind, tt.msg)
		}
	}
	if _, err := h.book.Remove(ctx, "nope"); !errors.Is(err, api.ErrNotFound) {
		t.Fatalf("Remove of an unknown network = %v", err)
	}
	// Nothing changed: Sync writes nothing.
	writes := h.store.count()
	if _, err := h.book.Sync(ctx); err != nil || h.store.count() != writes {
		t.Fatalf("no-change Sync: %v, %d store writes", err, h.store.count()-writes)
	}
}

// TestConcurrentCreate: two hosts create at once networks that cannot both exist (one
// name with different parameters, or overlapping subnets, or one key). One definition wins
// everywhere, and the other caller gets a 409 naming the winner.
func TestConcurrentCreate(t *testing.T) {
	key := func(name, subnet string, k uint32) Spec {
		return Spec{Name: name, Subnet: netip.MustParsePrefix(subnet), Key: k}
	}
	for _, tt := range []struct {
		name   string
		ahead  bool // h1's clock is ahead, so h2's create is the older
		s1, s2 Spec
		lost   string // in the loser's error
	}{
		{"one name at the same time: the lower host name wins", false,
			spec("blue", "10.50.0.0/16"), spec("blue", "10.60.0.0/16"), "created at the same time by h1"},
		{"one name: the older create wins", true,
			spec("blue", "10.50.0.0/16"), spec("blue", "10.60.0.0/16"), "created at the same time by h2"},
		{"overlapping subnets", false,
			spec("blue", "10.50.0.0/16"), spec("red", "10.50.0.0/17"), "subnet 10.50.0.0/17 overlaps network blue"},
		{"one key", true,
			key("blue", "10.50.0.0/16", 42), key("red", "10.60.0.0/16", 42), "tunnel key 42 is network red's"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := newFabric(t, 300*time.Millisecond)
			h1, h2 := f.start("h1", newStore()), f.start("h2", newStore())
			winner, loser := h1, h2
			if tt.ahead {
				winner, loser = h2, h1
			}
			f.paused.Store(true)
			if tt.ahead {
				if _, err := h1.book.Create(ctx, spec("other", "10.90.0.0/16")); err != nil {
					t.Fatal(err)
				}
			}
			type result struct {
				n   Network
				err error
			}
			res := map[*host]*result{}
			var wg sync.WaitGroup
			for _, c := range []struct {
				h *host
				s Spec
			}{{h1, tt.s1}, {h2, tt.s2}} {
				r := &result{}
				res[c.h] = r
				wg.Go(func() { r.n, r.err = c.h.book.Create(ctx, c.s) })
			}
			// Both definitions are published before either host hears of the other.
			deadline := time.Now().Add(10 * time.Second)
			for {
				_, ok1 := h1.reg.Get("h1", registry.KindNetwork, tt.s1.Name)
				_, ok2 := h2.reg.Get("h2", registry.KindNetwork, tt.s2.Name)
				if ok1 && ok2 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("creates not published")
				}
				time.Sleep(time.Millisecond)
			}
			f.paused.Store(false)
			wg.Wait()
			if res[winner].err != nil {
				t.Fatalf("winner %s: %v", winner.name, res[winner].err)
			}
			if err := res[loser].err; !errors.Is(err, api.ErrConflict) || !strings.Contains(err.Error(), tt.lost) {
				t.Fatalf("loser %s: %v, want a conflict containing %q", loser.name, err, tt.lost)
			}
			win := res[winner].n
			lostName := map[*host]Spec{h1: tt.s1, h2: tt.s2}[loser].Name
			f.eventually("both hosts serve the winner only", func() bool {
				for _, h := range []*host{h1, h2} {
					v := h.book.View()
					if !served(h, win) || len(v.Conflicts) != 0 {
						return false
					}
					if n, ok := v.Network(lostName); ok && n.Origin == loser.name {
						return false
					}
				}
				return true
			})
			// The loser holds a copy of the winner, persisted.
			for _, h := range []*host{h1, h2} {
				if got, _ := h.store.get(KeyNetPrefix + win.Name); got != string(win.Encode()) {
					t.Fatalf("%s persisted %q, want %s", h.name, got, win.Encode())
				}
			}
		})
	}
}

// TestCreatorLeaves: the network survives its creator leaving the fabric.
func TestCreatorLeaves(t *testing.T) {
	f := newFabric(t, 50*time.Millisecond)
	h1, h2, h3 := f.start("h1", newStore()), f.start("h2", newStore()), f.start("h3", newStore())
	n, err := h1.book.Create(ctx, spec("blue", "10.50.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	f.eventually("every host serves blue with a slice each", func() bool {
		for _, h := range []*host{h1, h2, h3} {
			if !served(h, n) || len(h.book.View().Slices["blue"]) != 3 {
				return false
			}
		}
		return true
	})
	f.leave("h1")
	f.eventually("blue stays, without h1's slice", func() bool {
		return served(h2, n) && served(h3, n) && len(h2.book.View().Slices["blue"]) == 2 && len(h3.book.View().Slices["blue"]) == 2
	})
	for range 5 {
		f.syncAll()
		time.Sleep(20 * time.Millisecond)
	}
	if !served(h2, n) || !served(h3, n) {
		t.Fatal("blue went with its creator")
	}
}

// TestRemoveEverywhere: rm on a host that did not create the network removes it from
// every host; neither a restart of a host that saw the removal nor the return of a host
// that was away during it brings the network back; a later create of the name works.
func TestRemoveEverywhere(t *testing.T) {
	f := newFabric(t, 50*time.Millisecond)
	s1, s2, s3 := newStore(), newStore(), newStore()
	h1, h2, h3 := f.start("h1", s1), f.start("h2", s2), f.start("h3", s3)
	n, err := h1.book.Create(ctx, spec("blue", "10.50.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	f.eventually("every host serves blue", func() bool { return served(h1, n) && served(h2, n) && served(h3, n) })
	if _, ok := s3.get(KeyNetPrefix + "blue"); !ok {
		t.Fatal("h3 did not persist its copy")
	}
	f.setDown("h3", true) // away during the removal
	got, err := h2.book.Remove(ctx, "blue")
	if err != nil || got != n {
		t.Fatalf("Remove = %+v, %v", got, err)
	}
	gone := func(hs ...*host) func() bool {
		return func() bool {
			for _, h := range hs {
				if _, ok := h.book.View().Network("blue"); ok {
					return false
				}
			}
			return true
		}
	}
	f.eventually("blue gone from h1 and h2", gone(h1, h2))
	for _, s := range []*memStore{s1, s2} {
		if _, ok := s.get(KeyNetPrefix + "blue"); ok {
			t.Fatal("a copy of blue stays persisted")
		}
		if _, ok := s.get(KeySlicePrefix + "blue"); ok {
			t.Fatal("a slice of blue stays persisted")
		}
		if _, ok := s.get(KeyRemovedPrefix + "blue"); !ok {
			t.Fatal("the removal is not persisted")
		}
	}
	// A restart of a host that saw the removal does not resurrect blue.
	h2 = f.start("h2", s2)
	f.eventually("blue stays gone after h2's restart", gone(h1, h2))
	// h3 comes back (restarted) with its persisted copy: it drops it.
	f.setDown("h3", false)
	h3 = f.start("h3", s3)
	f.eventually("blue gone everywhere after h3's return", func() bool {
		_, kept := s3.get(KeyNetPrefix + "blue")
		_, removal := s3.get(KeyRemovedPrefix + "blue")
		return gone(h1, h2, h3)() && !kept && removal
	})
	for range 5 {
		f.syncAll()
		time.Sleep(20 * time.Millisecond)
	}
	if !gone(h1, h2, h3)() {
		t.Fatal("blue came back")
	}
	// A later create of the name, on the host that was away, is not affected.
	n2, err := h3.book.Create(ctx, spec("blue", "10.51.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	f.eventually("the new blue served everywhere", func() bool { return served(h1, n2) && served(h2, n2) && served(h3, n2) })
}

// TestPartitionConflict: two sides of a partition create networks with overlapping subnets;
// after it heals the later one is conflicted everywhere (not served, with the reason), only
// its creator keeps it, and removing it works.
func TestPartitionConflict(t *testing.T) {
	f := newFabric(t, 50*time.Millisecond)
	h1, h2, h3 := f.start("h1", newStore()), f.start("h2", newStore()), f.start("h3", newStore())
	f.setDown("h3", true)
	blue, err := h1.book.Create(ctx, spec("blue", "10.50.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	// h3 creates after h1, by its own clock too (its clock is ahead).
	if _, err := h3.book.Create(ctx, spec("zzz", "10.99.0.0/16")); err != nil {
		t.Fatal(err)
	}
	red, err := h3.book.Create(ctx, spec("red", "10.50.128.0/17"))
	if err != nil {
		t.Fatal(err)
	}
	f.setDown("h3", false)
	f.eventually("red conflicted everywhere", func() bool {
		for _, h := range []*host{h1, h2, h3} {
			if !served(h, blue) || !strings.Contains(h.book.View().Conflicts["red"], "overlaps network blue") {
				return false
			}
		}
		return true
	})
	if _, ok := h1.reg.Get("h1", registry.KindNetwork, "red"); ok {
		t.Fatal("h1 holds a copy of the conflicted red")
	}
	if _, ok := h3.reg.Get("h3", registry.KindNetwork, "red"); !ok {
		t.Fatal("red's creator dropped it")
	}
	if _, ok := h3.book.View().Local["red"]; ok {
		t.Fatal("h3 holds a slice of the conflicted red")
	}
	if _, err := h1.book.Remove(ctx, "red"); err != nil {
		t.Fatal(err)
	}
	f.eventually("red removed", func() bool {
		for _, h := range []*host{h1, h2, h3} {
			if _, ok := h.book.View().Conflicts["red"]; ok {
				return false
			}
		}
		_, ok := h3.reg.Get("h3", registry.KindNetwork, "red")
		return !ok
	})
	if red.Origin != "h3" {
		t.Fatalf("red %+v", red)
	}
}

// TestSliceConflict: overlapping claims of a slice are decided by (Seq, Node), the loser
// re-picks; a network with fewer slices than hosts leaves one host without, saying why.
func TestSliceConflict(t *testing.T) {
	f := newFabric(t, 50*time.Millisecond)
	h1, h2, h3 := f.start("h1", newStore()), f.start("h2", newStore()), f.start("h3", newStore())
	n, err := h1.book.Create(ctx, spec("blue", "10.50.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	agree := func(name string, count int) func() bool {
		return func() bool {
			want := h1.book.View().Slices[name]
			if len(want) != count {
				return false
			}
			for _, h := range []*host{h2, h3} {
				if !reflect.DeepEqual(h.book.View().Slices[name], want) {
					return false
				}
			}
			return true
		}
	}
	f.eventually("three slices of blue, the same view everywhere", agree("blue", 3))
	p1 := h1.book.View().Local["blue"]
	// h2 claims h1's slice with an older Seq (as a host that claimed it before hearing of
	// h1's claim): h2 keeps it, h1 re-picks.
	if _, err := h2.reg.Restore(registry.KindSlice, "blue", Slice{Prefix: p1, Seq: 1}.Encode(), 1); err != nil {
		t.Fatal(err)
	}
	f.eventually("h1 re-picked", func() bool {
		l1, l2 := h1.book.View().Local["blue"], h2.book.View().Local["blue"]
		return l2 == p1 && l1 != p1 && n.HasSlice(l1) && agree("blue", 3)()
	})
	// Two slices, three hosts.
	tiny, err := h2.book.Create(ctx, Spec{Name: "tiny", Subnet: netip.MustParsePrefix("10.70.0.0/23"), HostBits: 24})
	if err != nil {
		t.Fatal(err)
	}
	f.eventually("tiny: two slices, one host without", func() bool {
		without := 0
		for _, h := range []*host{h1, h2, h3} {
			v := h.book.View()
			if _, ok := v.Network("tiny"); !ok {
				return false
			}
			if strings.Contains(v.NoSlice["tiny"], "network tiny is exhausted") {
				without++
			} else if !tiny.HasSlice(v.Local["tiny"]) {
				return false
			}
		}
		return without == 1 && agree("tiny", 2)()
	})
}

// TestPersistenceRoundTrip: a restarted host (new registry, new Book on the same store)
// has the same view and writes nothing to its store.
func TestPersistenceRoundTrip(t *testing.T) {
	f := newFabric(t, 20*time.Millisecond)
	s := newStore()
	h := f.start("h1", s)
	for _, sp := range []Spec{spec("blue", "10.50.0.0/16"), {Name: "red", Subnet: netip.MustParsePrefix("10.60.0.0/20"), Key: 77, Internal: true}} {
		if _, err := h.book.Create(ctx, sp); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.book.Remove(ctx, "red"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.book.Create(ctx, spec("green", "10.70.0.0/16")); err != nil {
		t.Fatal(err)
	}
	before, err := h.book.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	clock := h.reg.Clock()
	writes := s.count()
	h = f.start("h1", s)
	if got := h.book.LoadedClock(); got == 0 || got > clock {
		t.Fatalf("loaded clock %d, registry's was %d", got, clock)
	}
	after, err := h.book.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(before, after) {
		t.Fatalf("view after restart:\n%+v\nbefore:\n%+v", after, before)
	}
	if s.count() != writes {
		t.Fatalf("the restart wrote to the store %d times", s.count()-writes)
	}
	if len(after.Networks) != 2 {
		t.Fatalf("networks after restart: %+v", after.Networks)
	}
	if _, ok := h.reg.Get("h1", registry.KindNetworkRemoved, "red"); !ok {
		t.Fatal("the removal of red was not restored")
	}
}

// TestStoreFailure: a create that cannot be persisted is withdrawn and fails; a Sync that
// cannot persist fails and persists at the next Sync once the store is back.
func TestStoreFailure(t *testing.T) {
	f := newFabric(t, 20*time.Millisecond)
	s := newStore()
	h := f.start("h1", s)
	s.setFail(true)
	if _, err := h.book.Create(ctx, spec("blue", "10.50.0.0/16")); err == nil || !strings.Contains(err.Error(), "ovsdb unreachable") {
		t.Fatalf("Create with the store down = %v", err)
	}
	if _, ok := h.reg.Get("h1", registry.KindNetwork, "blue"); ok {
		t.Fatal("the unpersisted definition stays published")
	}
	s.setFail(false)
	n, err := h.book.Create(ctx, spec("blue", "10.50.0.0/16"))
	if err != nil {
		t.Fatal(err)
	}
	// A new slice (the host's lost to an older claim) cannot be persisted at first.
	p := h.book.View().Local["blue"]
	other := f.start("h2", newStore())
	if _, err := other.reg.Restore(registry.KindSlice, "blue", Slice{Prefix: p, Seq: 1}.Encode(), 1); err != nil {
		t.Fatal(err)
	}
	s.setFail(true)
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, err := h.book.Sync(ctx)
		if err != nil {
			if v.Local["blue"] == p || !n.HasSlice(v.Local["blue"]) {
				t.Fatalf("view after a failed persist: %+v", v)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("h1 never learnt of h2's claim")
		}
		time.Sleep(10 * time.Millisecond)
	}
	s.setFail(false)
	v, err := h.book.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := s.get(KeySlicePrefix + "blue"); !strings.Contains(got, v.Local["blue"].String()) {
		t.Fatalf("persisted slice %q, want %s", got, v.Local["blue"])
	}
}

package registry

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func TestNewRefusesBadConfig(t *testing.T) {
	n := newNet(t)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no origin", Config{Incarnation: 1, Sender: netSender{n, "a"}}},
		{"long origin", Config{Origin: strings.Repeat("a", MaxOriginLen+1), Incarnation: 1, Sender: netSender{n, "a"}}},
		{"incarnation 0", Config{Origin: "a", Sender: netSender{n, "a"}}},
		{"no sender", Config{Origin: "a", Incarnation: 1}},
		{"clock out of range", Config{Origin: "a", Incarnation: 1, Sender: netSender{n, "a"}, Clock: maxCreated}},
	} {
		if _, err := New(tc.cfg); err == nil {
			t.Errorf("%s: New succeeded", tc.name)
		}
	}
}

func TestLocalWrites(t *testing.T) {
	n := newNet(t)
	a := n.add("a", 3)

	r1 := mustSet(t, a, KindNetwork, "blue", "v1")
	if r1.Version != MakeVersion(3, 1) || r1.Created != 1 || r1.Origin != "a" {
		t.Fatalf("first write: %v", r1)
	}
	// The same value again changes nothing.
	if r := mustSet(t, a, KindNetwork, "blue", "v1"); r.Version != r1.Version {
		t.Fatalf("rewriting the same value made version %s", r.Version)
	}
	// An update keeps the creation time.
	r2 := mustSet(t, a, KindNetwork, "blue", "v2")
	if r2.Version != MakeVersion(3, 2) || r2.Created != r1.Created {
		t.Fatalf("update: %v", r2)
	}
	mustSet(t, a, KindEndpoint, "blue", "endpoint of the same key, other kind")
	mustDelete(t, a, KindNetwork, "blue")
	if _, ok := a.Get("a", KindNetwork, "blue"); ok {
		t.Fatal("deleted record still visible")
	}
	if ok, err := a.Delete(KindNetwork, "blue"); ok || err != nil {
		t.Fatalf("second delete = %v, %v", ok, err)
	}
	// Recreated after a delete: a new creation time.
	r3 := mustSet(t, a, KindNetwork, "blue", "v3")
	if r3.Created <= r2.Created {
		t.Fatalf("recreated record keeps creation time %d", r3.Created)
	}
	// Restore keeps a persisted creation time and moves the clock past it.
	r4, err := a.Restore(KindNetwork, "red", []byte("x"), 100)
	if err != nil || r4.Created != 100 {
		t.Fatalf("Restore = %v, %v", r4, err)
	}
	if r5 := mustSet(t, a, KindNetwork, "green", "y"); r5.Created != 101 {
		t.Fatalf("creation after Restore(100) got %d", r5.Created)
	}
	if got := a.Count(KindNetwork)["a"]; got != 3 {
		t.Fatalf("Count = %d, want 3", got)
	}
	if l := a.List(KindNetwork); len(l) != 3 || l[0].Key != "blue" || l[2].Key != "red" {
		t.Fatalf("List = %v", l)
	}

	for _, tc := range []struct {
		name  string
		kind  Kind
		key   string
		value []byte
	}{
		{"kind 0", 0, "k", nil},
		{"kind too large", MaxKind + 1, "k", nil},
		{"empty key", KindNetwork, "", nil},
		{"long key", KindNetwork, strings.Repeat("k", MaxKeyLen+1), nil},
		{"key not UTF-8", KindNetwork, "\xff", nil},
		{"value too large", KindNetwork, "k", make([]byte, MaxValueSize+1)},
	} {
		before := a.Origins()
		_, err := a.Set(tc.kind, tc.key, tc.value)
		if !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: Set error %v, want ErrInvalid", tc.name, err)
		}
		if after := a.Origins(); after[0] != before[0] {
			t.Errorf("%s: refused Set changed the registry: %v -> %v", tc.name, before, after)
		}
	}
	if _, err := a.Restore(KindNetwork, "k", nil, 0); !errors.Is(err, ErrInvalid) {
		t.Errorf("Restore with creation 0: %v", err)
	}
}

func TestWinnerOrder(t *testing.T) {
	rec := func(origin string, created uint64, del bool) Record {
		return Record{Kind: KindNetwork, Key: "blue", Origin: origin, Created: created, Deleted: del}
	}
	for _, tc := range []struct {
		name   string
		recs   []Record
		want   string // winning origin, "" for none
		wantOK bool
	}{
		{"none", nil, "", false},
		{"one", []Record{rec("b", 5, false)}, "b", true},
		{"earlier creation wins over lower name", []Record{rec("a", 7, false), rec("b", 5, false)}, "b", true},
		{"tie broken by origin name", []Record{rec("b", 5, false), rec("a", 5, false)}, "a", true},
		{"tombstones do not win", []Record{rec("a", 1, true), rec("b", 5, false)}, "b", true},
		{"only tombstones", []Record{rec("a", 1, true)}, "", false},
	} {
		w, ok := Winner(tc.recs)
		if ok != tc.wantOK || w.Origin != tc.want {
			t.Errorf("%s: Winner = %q %v, want %q %v", tc.name, w.Origin, ok, tc.want, tc.wantOK)
		}
	}
}

// TestApplyRules is the merge rule of one remote record, case by case.
func TestApplyRules(t *testing.T) {
	v := func(seq uint32) Version { return MakeVersion(2, seq) }
	for _, tc := range []struct {
		name       string
		held       Version // 0: nothing held
		heldDel    bool
		w          Version // watermark
		floor      Version // Forget floor, 0: none
		in         Version
		inDel      bool
		bypass     bool
		wantStored bool
		wantKnown  bool
		wantLive   bool // record visible after
	}{
		{"new record", 0, false, 0, 0, v(1), false, false, true, true, true},
		{"newer version replaces", v(1), false, v(1), 0, v(3), false, false, true, true, true},
		{"older version ignored", v(3), false, v(3), 0, v(1), false, false, false, true, true},
		{"same version ignored", v(3), false, v(3), 0, v(3), false, false, false, true, true},
		{"tombstone deletes", v(1), false, v(1), 0, v(2), true, false, true, true, false},
		{"late update after tombstone refused", v(2), true, v(2), 0, v(1), false, false, false, true, false},
		{"late update after collected tombstone refused", 0, false, v(2), 0, v(1), false, false, false, false, false},
		{"unknown record above watermark stored", 0, false, v(2), 0, v(3), false, false, true, true, true},
		{"newer incarnation replaces", v(9), false, v(9), 0, MakeVersion(3, 1), false, false, true, true, true},
		{"forgotten copy refused", 0, false, 0, v(5), v(4), false, false, false, false, false},
		{"write after Forget accepted", 0, false, 0, v(5), v(6), false, false, true, true, true},
		{"full snapshot bypasses watermark", 0, false, v(5), 0, v(3), false, true, true, true, true},
		{"full snapshot bypasses Forget floor", 0, false, 0, v(5), v(4), false, true, true, true, true},
		{"full snapshot still keeps newer", v(6), false, v(6), 0, v(3), false, true, false, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n := newNet(t)
			r := n.add("me", 1)
			o := r.originLocked("b")
			if tc.held != 0 {
				e := &entry{Record: Record{Kind: KindNetwork, Key: "k", Origin: "b", Version: tc.held, Created: 1, Deleted: tc.heldDel}}
				if !tc.heldDel {
					e.Value = []byte("held")
				}
				o.store(e)
			}
			o.w, o.m = tc.w, max(tc.w, tc.held)
			if tc.floor != 0 {
				r.forgotten["b"] = forgotten{floor: tc.floor, at: n.now}
			}
			in := Record{Kind: KindNetwork, Key: "k", Origin: "b", Version: tc.in, Created: 1, Deleted: tc.inDel}
			if !tc.inDel {
				in.Value = []byte("in")
			}
			var eff effects
			stored, known := r.applyLocked(o, in, tc.bypass, n.now, &eff)
			if stored != tc.wantStored || known != tc.wantKnown {
				t.Fatalf("stored, known = %v, %v; want %v, %v", stored, known, tc.wantStored, tc.wantKnown)
			}
			if _, live := r.Get("b", KindNetwork, "k"); live != tc.wantLive {
				t.Fatalf("live after = %v, want %v", live, tc.wantLive)
			}
			if stored != (eff.changed != 0) && !(stored && tc.inDel && tc.held == 0) {
				t.Fatalf("changed = %v for stored %v", eff.changed, stored)
			}
		})
	}
}

func TestGossipSpreadsWrites(t *testing.T) {
	n := newNet(t)
	a, b, c := n.add("a", 1), n.add("b", 1), n.add("c", 1)
	changes, cancel := c.Subscribe()
	defer cancel()
	mustSet(t, a, KindNetwork, "blue", "10.1.0.0/16")
	mustSet(t, a, KindEndpoint, "blue/c1", "e1")
	mustSet(t, b, KindEndpoint, "blue/c2", "e2")
	// a reaches only b, b relays to c.
	n.gossip(a, b)
	n.gossip(b, c)
	n.gossip(b, a)
	for _, r := range []*Registry{a, b, c} {
		wantLive(t, r, "a", map[string]string{"network/blue": "10.1.0.0/16", "endpoint/blue/c1": "e1"})
		wantLive(t, r, "b", map[string]string{"endpoint/blue/c2": "e2"})
	}
	// In-order deltas leave no gap: watermarks equal the origin's version.
	for _, st := range c.Origins() {
		if st.Watermark != st.Max {
			t.Fatalf("c has a gap: %+v", st)
		}
	}
	if n.sent != 0 {
		t.Fatalf("%d sync messages sent, want none", n.sent)
	}
	if ks := <-changes; ks.String() != "network,endpoint" {
		t.Fatalf("c notified of %v", ks)
	}
	mustDelete(t, a, KindEndpoint, "blue/c1")
	n.flood()
	for _, r := range []*Registry{b, c} {
		wantLive(t, r, "a", map[string]string{"network/blue": "10.1.0.0/16"})
		if view(r, "a")["endpoint/blue/c1"] != "<deleted>" {
			t.Fatalf("%s has no tombstone", r.Origin())
		}
	}
	if ks := <-changes; ks != KindsOf(KindEndpoint) {
		t.Fatalf("c notified of %v after the delete", ks)
	}
}

func TestConcurrentCreates(t *testing.T) {
	n := newNet(t)
	a, b := n.add("host-a", 1), n.add("host-b", 1)
	// Both create "blue" before hearing of each other: Lamport 1 each, host-a wins by name.
	mustSet(t, b, KindNetwork, "blue", "b's definition")
	mustSet(t, a, KindNetwork, "blue", "a's definition")
	n.flood()
	for _, r := range []*Registry{a, b} {
		w, ok := r.Winner(KindNetwork, "blue")
		if !ok || w.Origin != "host-a" || string(w.Value) != "a's definition" {
			t.Fatalf("%s: winner %v", r.Origin(), w)
		}
		if l := r.Lookup(KindNetwork, "blue"); len(l) != 2 || l[1].Origin != "host-b" {
			t.Fatalf("%s: Lookup %v", r.Origin(), l)
		}
	}
	// A network created after the creator has seen another one loses, whatever its name:
	// host-b creates "red" first; host-a hears of it and then creates its own.
	mustSet(t, b, KindNetwork, "red", "b's red")
	n.flood()
	mustSet(t, a, KindNetwork, "red", "a's red")
	n.flood()
	for _, r := range []*Registry{a, b} {
		if w, _ := r.Winner(KindNetwork, "red"); w.Origin != "host-b" {
			t.Fatalf("%s: red won by %v", r.Origin(), w)
		}
	}
	// When the winner deletes its definition, the other one takes over everywhere.
	mustDelete(t, b, KindNetwork, "red")
	n.flood()
	for _, r := range []*Registry{a, b} {
		if w, _ := r.Winner(KindNetwork, "red"); w.Origin != "host-a" {
			t.Fatalf("%s: after delete red won by %v", r.Origin(), w)
		}
	}
	// Updating a record keeps its place: host-b's blue update does not make it older.
	mustSet(t, b, KindNetwork, "blue", "b's definition v2")
	n.flood()
	if w, _ := a.Winner(KindNetwork, "blue"); w.Origin != "host-a" {
		t.Fatalf("blue won by %v after an update of the loser", w)
	}
}

func TestLateUpdateAfterTombstone(t *testing.T) {
	n := newNet(t)
	a, b := n.add("a", 1), n.add("b", 1)
	mustSet(t, a, KindEndpoint, "e", "v1")
	old := a.GetBroadcasts(0, 1<<30) // the v1 delta, delivered late below
	mustDelete(t, a, KindEndpoint, "e")
	n.gossip(a, b) // b hears only the delete
	if view(b, "a")["endpoint/e"] != "<deleted>" {
		t.Fatalf("b: %v", view(b, "a"))
	}
	// The gap (v1 never seen by b) is closed by asking a, after GapDelay.
	n.tick()
	if st := b.Origins()[0]; st.Watermark == st.Max {
		t.Fatalf("b closed the gap without asking: %+v", st)
	}
	n.advance(2 * time.Second)
	n.tick()
	if st := b.Origins()[0]; st.Name != "a" || st.Watermark != MakeVersion(1, 2) || st.Syncing {
		t.Fatalf("b after gap fetch: %+v", st)
	}
	for _, m := range old {
		b.NotifyMsg(m)
	}
	wantLive(t, b, "a", map[string]string{})
	// Once the tombstone is collected, the watermark still refuses the late copy.
	n.advance(2 * time.Hour)
	n.tick()
	if st := b.Origins()[0]; st.Tombstones != 0 {
		t.Fatalf("tombstone not collected: %+v", st)
	}
	for _, m := range old {
		b.NotifyMsg(m)
	}
	wantLive(t, b, "a", map[string]string{})
}

func TestGapFilledFromOrigin(t *testing.T) {
	n := newNet(t)
	a, b := n.add("a", 1), n.add("b", 1)
	for i := range 5 {
		mustSet(t, a, KindEndpoint, "e"+string(rune('0'+i)), "v")
	}
	// Only the last broadcast arrives.
	for _, m := range a.GetBroadcasts(0, 1<<30) {
		if rec, _ := decodeDelta(m); rec.Key == "e4" {
			b.NotifyMsg(m)
		}
	}
	if got := len(liveView(b, "a")); got != 1 {
		t.Fatalf("b holds %d", got)
	}
	n.advance(500 * time.Millisecond)
	n.tick()
	if n.sent != 0 {
		t.Fatal("asked before GapDelay")
	}
	n.advance(time.Second)
	n.tick()
	wantLive(t, b, "a", liveView(a, "a"))
	if st := b.Origins()[0]; st.Watermark != MakeVersion(1, 5) {
		t.Fatalf("b: %+v", st)
	}
}

func TestPushPullFetchesOnlyWhatDiffers(t *testing.T) {
	n := newNet(t)
	a, b, c := n.add("a", 1), n.add("b", 1), n.add("c", 1)
	for i := range 100 {
		mustSet(t, a, KindEndpoint, "e"+itoa(i), "v")
	}
	mustSet(t, b, KindNetwork, "blue", "x")
	// No gossip at all: anti-entropy alone converges.
	n.pushPull(a, b)
	n.pushPull(b, c)
	for _, r := range []*Registry{a, b, c} {
		wantLive(t, r, "a", liveView(a, "a"))
		wantLive(t, r, "b", liveView(b, "b"))
	}
	// Steady state: a push/pull exchanges digests and nothing else. (The first one between
	// a and c still tells a that c is at incarnation 1 with no records.)
	n.pushPull(a, c)
	sent := n.sent
	n.pushPull(a, c)
	if n.sent != sent {
		t.Logf("a: %+v\nc: %+v", a.Origins(), c.Origins())
		t.Fatalf("steady push/pull sent %d sync messages", n.sent-sent)
	}
	// One change: c fetches a delta of one record, not everything.
	mustSet(t, a, KindEndpoint, "e7", "changed")
	bytesBefore := n.sentBytes
	n.pushPull(a, c)
	wantLive(t, c, "a", liveView(a, "a"))
	if d := n.sentBytes - bytesBefore; d > 300 {
		t.Fatalf("one-record delta took %d bytes", d)
	}
}

func TestRestartWithPersistedIncarnation(t *testing.T) {
	n := newNet(t)
	a, b := n.add("a", 4), n.add("b", 1)
	mustSet(t, a, KindEndpoint, "kept", "v1")
	mustSet(t, a, KindEndpoint, "gone", "v1")
	mustSet(t, a, KindEndpoint, "deleted", "v1")
	mustDelete(t, a, KindEndpoint, "deleted")
	n.flood()
	wantLive(t, b, "a", map[string]string{"endpoint/kept": "v1", "endpoint/gone": "v1"})

	// a restarts with the next incarnation and republishes only some records.
	a = n.add("a", 5)
	mustSet(t, a, KindEndpoint, "kept", "v1")
	mustSet(t, a, KindEndpoint, "new", "v2")
	n.flood()
	// b has the new writes, but "gone" stays until b syncs: the new incarnation is a gap.
	if _, ok := b.Get("a", KindEndpoint, "gone"); !ok {
		t.Fatal("gone dropped before any sync")
	}
	n.advance(2 * time.Second)
	n.tick()
	wantLive(t, b, "a", map[string]string{"endpoint/kept": "v1", "endpoint/new": "v2"})
	if len(n.bumps["a"]) != 0 {
		t.Fatalf("a bumped its incarnation: %v", n.bumps["a"])
	}
	// The same by push/pull alone, for a third host that missed all gossip.
	c := n.add("c", 1)
	n.pushPull(c, b)
	wantLive(t, c, "a", map[string]string{"endpoint/kept": "v1", "endpoint/new": "v2"})
}

func TestRestartWithLostIncarnation(t *testing.T) {
	n := newNet(t)
	a, b := n.add("a", 7), n.add("b", 1)
	mustSet(t, a, KindEndpoint, "k1", "old")
	mustSet(t, a, KindEndpoint, "k2", "old")
	n.flood()

	// a lost its counter and restarts at incarnation 1: its writes are below b's copies.
	a = n.add("a", 1)
	mustSet(t, a, KindEndpoint, "k1", "new")
	mustSet(t, a, KindEndpoint, "k3", "new")
	n.flood()
	wantLive(t, b, "a", map[string]string{"endpoint/k1": "old", "endpoint/k2": "old"})

	// A push/pull shows a that b holds versions of a it never wrote: a moves above them.
	n.pushPull(a, b)
	if got := n.bumps["a"]; len(got) != 1 || got[0] != 8 || a.Incarnation() != 8 {
		t.Fatalf("incarnation bumps %v, now %d; want [8]", got, a.Incarnation())
	}
	n.flood()
	n.advance(2 * time.Second)
	n.tick()
	want := map[string]string{"endpoint/k1": "new", "endpoint/k3": "new"}
	wantLive(t, a, "a", want)
	wantLive(t, b, "a", want)

	// The same when a learns it from gossip instead (a late old delta of itself).
	a = n.add("a", 2)
	mustSet(t, a, KindEndpoint, "k1", "newer")
	old := encodeDelta(&Record{Kind: KindEndpoint, Key: "k9", Origin: "a", Version: MakeVersion(8, 9), Created: 1})
	a.NotifyMsg(old)
	if a.Incarnation() != 9 {
		t.Fatalf("incarnation %d after seeing 8.9, want 9", a.Incarnation())
	}
	n.flood()
	n.advance(2 * time.Second)
	n.tick()
	wantLive(t, b, "a", map[string]string{"endpoint/k1": "newer"})
}

func TestForget(t *testing.T) {
	n := newNet(t)
	a, b, c := n.add("a", 1), n.add("b", 1), n.add("c", 1)
	mustSet(t, a, KindEndpoint, "e1", "v")
	mustSet(t, a, KindNetwork, "blue", "v")
	n.flood()
	ch, cancel := b.Subscribe()
	defer cancel()

	if b.Forget("b") {
		t.Fatal("forgot itself")
	}
	if !b.Forget("a") {
		t.Fatal("Forget(a) = false")
	}
	if ks := <-ch; !ks.Has(KindEndpoint) || !ks.Has(KindNetwork) {
		t.Fatalf("notified %v", ks)
	}
	wantLive(t, b, "a", map[string]string{})
	// c still holds a's records: neither push/pull nor late gossip brings them back.
	n.pushPull(b, c)
	b.NotifyMsg(encodeDelta(&Record{Kind: KindEndpoint, Key: "e1", Origin: "a", Version: MakeVersion(1, 1), Created: 1, Value: []byte("v")}))
	n.advance(2 * time.Second)
	n.tick()
	wantLive(t, b, "a", map[string]string{})
	if b.Forget("a") {
		t.Fatal("second Forget(a) = true")
	}

	// a comes back and writes: b accepts and fetches all of a's current records.
	mustSet(t, a, KindEndpoint, "e2", "v")
	n.flood()
	n.advance(2 * time.Second)
	n.tick()
	wantLive(t, b, "a", liveView(a, "a"))
	if len(liveView(b, "a")) != 3 {
		t.Fatalf("b: %v", liveView(b, "a"))
	}
}

// TestUnforget: an origin forgotten while cut off past the grace, alive again without a
// restart or a write, is taken again from what a peer holds once Unforget lifts the floor.
func TestUnforget(t *testing.T) {
	n := newNet(t)
	a, b, c := n.add("a", 1), n.add("b", 1), n.add("c", 1)
	mustSet(t, a, KindEndpoint, "e1", "v")
	n.flood()
	if !b.Forget("a") {
		t.Fatal("Forget(a) = false")
	}
	n.pushPull(b, c)
	wantLive(t, b, "a", map[string]string{})
	if !b.Unforget("a") || b.Unforget("a") {
		t.Fatal("Unforget(a) should report true once, then false")
	}
	n.pushPull(b, c)
	n.advance(2 * time.Second)
	n.tick()
	wantLive(t, b, "a", map[string]string{"endpoint/e1": "v"})
}

func TestForgottenOriginFetchedFromPeerWhenNewer(t *testing.T) {
	n := newNet(t)
	a, b, c := n.add("a", 1), n.add("b", 1), n.add("c", 1)
	mustSet(t, a, KindEndpoint, "e1", "v")
	n.flood()
	b.Forget("a")
	// a writes while b is cut off; c gets it; then a dies.
	n.down["b"] = true
	mustSet(t, a, KindEndpoint, "e2", "v")
	n.flood()
	n.down["b"] = false
	n.down["a"] = true
	n.pushPull(b, c)
	wantLive(t, b, "a", map[string]string{"endpoint/e1": "v", "endpoint/e2": "v"})
}

func TestTombstoneCollectedPeerGetsFullSnapshot(t *testing.T) {
	n := newNet(t)
	a, b := n.add("a", 1), n.add("b", 1)
	mustSet(t, a, KindEndpoint, "e1", "v")
	mustSet(t, a, KindEndpoint, "e2", "v")
	n.flood()
	// b is away while a deletes e1 and the tombstone expires.
	n.down["b"] = true
	mustDelete(t, a, KindEndpoint, "e1")
	mustSet(t, a, KindEndpoint, "e3", "v")
	n.flood()
	n.advance(2 * time.Hour)
	n.tick()
	if st := a.Origins()[0]; st.Tombstones != 0 {
		t.Fatalf("a kept its tombstone: %+v", st)
	}
	n.down["b"] = false
	n.pushPull(a, b)
	wantLive(t, b, "a", map[string]string{"endpoint/e2": "v", "endpoint/e3": "v"})
}

func TestDigestMismatchRepairs(t *testing.T) {
	n := newNet(t)
	a, b := n.add("a", 1), n.add("b", 1)
	mustSet(t, a, KindEndpoint, "e1", "v")
	mustSet(t, a, KindEndpoint, "e2", "v")
	n.flood()
	// Damage b's copy behind the protocol's back.
	b.mu.Lock()
	b.origins["a"].drop(recKey{KindEndpoint, "e1"})
	b.mu.Unlock()
	n.pushPull(a, b)
	wantLive(t, b, "a", liveView(a, "a"))
}

func TestLostMessagesAndTimeouts(t *testing.T) {
	n := newNet(t)
	a, b := n.add("a", 1), n.add("b", 1)
	mustSet(t, a, KindEndpoint, "e1", "v")
	n.down["a"] = true
	n.pushPull(a, b) // b's request fails to send: it is cleared for a retry
	if st := b.Origins(); len(st) > 1 && st[0].Syncing {
		t.Fatalf("request still pending after a failed send: %+v", st)
	}
	n.down["a"] = false
	n.pushPull(a, b)
	wantLive(t, b, "a", liveView(a, "a"))

	// A request whose answer never comes expires after RequestTimeout.
	mustSet(t, a, KindEndpoint, "e2", "v")
	b.mu.Lock()
	b.requestLocked("a", "a", false, n.now)
	b.mu.Unlock() // not settled: the request is never sent
	n.advance(11 * time.Second)
	b.tick(n.now)
	for _, st := range b.Origins() {
		if st.Syncing {
			t.Fatalf("request did not expire: %+v", st)
		}
	}
	for len(b.work) > 0 {
		<-b.work
	}
	n.pushPull(a, b)
	wantLive(t, b, "a", liveView(a, "a"))
}

func TestMultiPartResponseOutOfOrder(t *testing.T) {
	n := newNet(t)
	a, b := n.add("a", 1), n.add("b", 1)
	val := make([]byte, 3000)
	for i := range val {
		val[i] = byte(i*7 + i/13) // poorly compressible but reproducible
	}
	for i := range 400 {
		if _, err := a.Set(KindEndpoint, "e"+itoa(i), append(val[:2990:2990], itoa(i)...)); err != nil {
			t.Fatal(err)
		}
	}
	b.mu.Lock()
	b.requestLocked("a", "a", true, n.now)
	id := b.origins["a"].req.id
	for len(b.work) > 0 {
		<-b.work // keep the request from being sent; parts come by hand
	}
	b.mu.Unlock()
	a.mu.Lock()
	o := a.origins["a"]
	var recs []*Record
	for _, e := range o.recs {
		recs = append(recs, &e.Record)
	}
	hdr := part{From: "a", ID: id, Origin: "a", Full: true, W: o.w}
	a.mu.Unlock()
	msgs, err := encodeParts(hdr, recs)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) < 2 {
		t.Fatalf("%d parts, want several", len(msgs))
	}
	for i := len(msgs) - 1; i >= 0; i-- {
		b.NotifyMsg(msgs[i])
		b.NotifyMsg(msgs[i]) // duplicates are ignored
		if i > 0 && b.Origins()[0].Watermark != 0 {
			t.Fatal("watermark moved before the last part")
		}
	}
	wantLive(t, b, "a", liveView(a, "a"))
	if st := b.Origins()[0]; st.Watermark != MakeVersion(1, 400) || st.Syncing {
		t.Fatalf("b: %+v", st)
	}
}

func TestSubscribeCoalesces(t *testing.T) {
	n := newNet(t)
	a := n.add("a", 1)
	ch, cancel := a.Subscribe()
	mustSet(t, a, KindNetwork, "n", "v")
	mustSet(t, a, KindEndpoint, "e", "v")
	mustSet(t, a, KindEndpoint, "e", "v") // no change, no notification
	if ks := <-ch; ks != KindsOf(KindNetwork, KindEndpoint) {
		t.Fatalf("got %v", ks)
	}
	select {
	case ks := <-ch:
		t.Fatalf("extra notification %v", ks)
	default:
	}
	cancel()
	cancel()
	if _, ok := <-ch; ok {
		t.Fatal("channel open after cancel")
	}
	mustSet(t, a, KindSlice, "s", "v") // no subscriber left: must not block
}

func TestBadInputChangesNothing(t *testing.T) {
	n := newNet(t)
	a, b := n.add("a", 1), n.add("b", 1)
	mustSet(t, a, KindEndpoint, "e", "v")
	n.flood()
	before := view(b, "a")
	good := encodeDelta(&Record{Kind: KindEndpoint, Key: "e", Origin: "a", Version: MakeVersion(1, 2), Created: 1, Value: []byte("x")})
	for _, bad := range [][]byte{
		nil, {MsgTag}, {MsgTag, 'z'}, {MsgTag, msgDelta},
		good[:len(good)-1],
		append(append([]byte{}, good...), 0),
		encodeDelta(&Record{Kind: 0, Key: "e", Origin: "a", Version: MakeVersion(1, 2), Created: 1}),
		encodeDelta(&Record{Kind: KindEndpoint, Key: "e", Origin: "a", Version: MakeVersion(1, 0), Created: 1}),
		encodeDelta(&Record{Kind: KindEndpoint, Key: "e", Origin: "a", Version: MakeVersion(1, 2), Created: 0}),
		encodeDelta(&Record{Kind: KindEndpoint, Key: "", Origin: "a", Version: MakeVersion(1, 2), Created: 1}),
		encodeDelta(&Record{Kind: KindEndpoint, Key: "e", Origin: "", Version: MakeVersion(1, 2), Created: 1}),
		encodeDelta(&Record{Kind: KindEndpoint, Key: "e", Origin: "a", Version: MakeVersion(1, 2), Created: 1, Value: make([]byte, MaxValueSize+1)}),
		{MsgTag, msgPart, 1, 'a', 1, 1, 'a', 0, 0, 0, 0, 1, 0xff},
		{MsgTag, msgState, 1, 'a', 0, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		b.NotifyMsg(bad)
		b.MergeRemoteState(bad, false)
	}
	n.settle()
	if after := view(b, "a"); !equalMaps(before, after) {
		t.Fatalf("bad input changed b: %v -> %v", before, after)
	}
	if n.sent != 0 {
		t.Fatalf("bad input caused %d sends", n.sent)
	}
}

func itoa(i int) string {
	if i == 0 {
		return "0"
	}
	var b []byte
	for ; i > 0; i /= 10 {
		b = append([]byte{byte('0' + i%10)}, b...)
	}
	return string(b)
}

func TestRunOnce(t *testing.T) {
	n := newNet(t)
	a, b := n.add("a", 1), n.add("b", 1)
	mustSet(t, a, KindEndpoint, "e", "v")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 2)
	for _, r := range []*Registry{a, b} {
		go func() { done <- r.Run(ctx) }()
	}
	// Run answers requests: b's push/pull request to a gets its answer without settle.
	b.MergeRemoteState(a.LocalState(false), false)
	deadline := time.Now().Add(10 * time.Second)
	for len(liveView(b, "a")) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not answer the request")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := a.Run(ctx); err == nil {
		t.Fatal("second Run succeeded")
	}
	cancel()
	for range 2 {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
}

func TestSequenceExhaustedMovesToNextIncarnation(t *testing.T) {
	n := newNet(t)
	a, b := n.add("a", 1), n.add("b", 1)
	a.mu.Lock()
	a.ver = MakeVersion(1, math.MaxUint32-1)
	a.self().w, a.self().m = a.ver, a.ver
	a.mu.Unlock()
	mustSet(t, a, KindEndpoint, "e1", "v") // takes the last sequence number
	r := mustSet(t, a, KindEndpoint, "e2", "v")
	if r.Version.Incarnation() != 2 || a.Incarnation() != 2 || len(n.bumps["a"]) != 1 {
		t.Fatalf("write after the last sequence: %v, incarnation %d, bumps %v", r, a.Incarnation(), n.bumps["a"])
	}
	if e1, _ := a.Get("a", KindEndpoint, "e1"); e1.Version.Incarnation() != 2 {
		t.Fatalf("e1 not rewritten in the new incarnation: %v", e1)
	}
	n.pushPull(a, b)
	wantLive(t, b, "a", map[string]string{"endpoint/e1": "v", "endpoint/e2": "v"})
}

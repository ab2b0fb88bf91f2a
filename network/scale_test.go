package network

import (
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"runtime"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/registry"
)

// dropSender is the Sender of registries whose sync traffic the scale tests do not need
// (they deliver deltas by hand).
type dropSender struct{}

func (dropSender) SendTo(string, []byte) error { return errors.New("not connected") }

func newReg(tb testing.TB, name string) *registry.Registry {
	tb.Helper()
	r, err := registry.New(registry.Config{Origin: name, Incarnation: 1, Sender: dropSender{}})
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// deliver hands every delta queued at from to to (in order, so that to's watermark of
// from advances without sync requests). Call it at least every 4096 writes (the queue's
// bound).
func deliver(from, to *registry.Registry) {
	for {
		msgs := from.GetBroadcasts(0, 1<<30)
		if len(msgs) == 0 {
			return
		}
		for _, m := range msgs {
			to.NotifyMsg(m)
		}
	}
}

// scaleEndpoint is a realistic encoded endpoint record of about 200 bytes.
func scaleEndpoint(host, net, i int) []byte {
	return fmt.Appendf(nil, `{"n":"net%03d","c":"ctr-%02d-%03d-%04d","id":"%064x","if":"eth0","ip":"10.%d.%d.%d/24","mac":"02:42:0a:%02x:%02x:%02x","p":[]}`,
		net, host, net, i, host*1_000_000+net*1000+i, net, host, i%250+2, net, host, i%250)
}

// buildScale returns the Book of host h000 in a fabric of hosts hosts serving nets
// networks (created by h000's Book), each other host holding a copy of every definition,
// a slice of every network, and eps endpoint records per network (h000 too), all merged
// into h000's registry.
func buildScale(tb testing.TB, hosts, nets, eps int) (*Book, *memStore, *registry.Registry) {
	tb.Helper()
	obs := newReg(tb, "h000")
	store := newStore()
	book := NewBook(Config{Node: "h000", Default: defNet, Registry: obs, Store: store, Settle: time.Microsecond})
	tb.Cleanup(book.Close)
	var defs []Network
	for i := range nets {
		n, err := book.Create(ctx, Spec{Name: fmt.Sprintf("net%03d", i), Subnet: netip.MustParsePrefix(fmt.Sprintf("10.%d.0.0/16", i))})
		if err != nil {
			tb.Fatal(err)
		}
		defs = append(defs, n)
	}
	writeEndpoints := func(r *registry.Registry, host int) {
		for net := range nets {
			for i := range eps {
				if _, err := r.Set(registry.KindEndpoint, fmt.Sprintf("net%03d/c%04d", net, i), scaleEndpoint(host, net, i)); err != nil {
					tb.Fatal(err)
				}
			}
			if r != obs {
				deliver(r, obs)
			}
		}
	}
	writeEndpoints(obs, 0)
	for h := 1; h < hosts; h++ {
		r := newReg(tb, fmt.Sprintf("h%03d", h))
		for _, n := range defs {
			if _, err := r.Restore(registry.KindNetwork, n.Name, n.Encode(), n.Created); err != nil {
				tb.Fatal(err)
			}
			// Host h takes slot h, or slot 200 when h000 claimed slot h first (host h would
			// have re-picked).
			p := fabric.NthSubnet(n.Subnet, n.HostBits, h)
			if p == book.View().Local[n.Name] {
				p = fabric.NthSubnet(n.Subnet, n.HostBits, 200)
			}
			s := Slice{Prefix: p, Seq: uint64(1000 + h)}
			if _, err := r.Restore(registry.KindSlice, n.Name, s.Encode(), s.Seq); err != nil {
				tb.Fatal(err)
			}
		}
		deliver(r, obs)
		writeEndpoints(r, h)
	}
	for obs.GetBroadcasts(0, 1<<30) != nil { // h000's own queue: not measured
	}
	return book, store, obs
}

// TestScale100x100: 100 networks with a slice of each of 100 hosts resolve on every Sync,
// and a Sync with nothing changed writes nothing (neither the registry nor the store).
func TestScale100x100(t *testing.T) {
	if testing.Short() {
		t.Skip("scale test")
	}
	const hosts, nets = 100, 100
	book, store, reg := buildScale(t, hosts, nets, 0)
	start := time.Now()
	v, err := book.Sync(ctx)
	if err != nil {
		t.Fatal(err)
	}
	first := time.Since(start)
	if len(v.Networks) != nets || len(v.Local) != nets || len(v.Conflicts) != 0 || len(v.NoSlice) != 0 {
		t.Fatalf("view: %d networks, %d local slices, conflicts %v, no slice %v", len(v.Networks), len(v.Local), v.Conflicts, v.NoSlice)
	}
	for _, n := range v.Networks {
		if got := len(v.Slices[n.Name]); got != hosts {
			t.Fatalf("%s: %d slices, want %d", n.Name, got, hosts)
		}
	}
	writes, clock := store.count(), reg.Clock()
	queued := len(reg.GetBroadcasts(0, 1<<30))
	// A Sync told of no change reads nothing; one that reads (told of a change that
	// changed nothing it decides) writes nothing either.
	var skipped, full time.Duration
	const rounds = 5
	for i := range 2 * rounds {
		if i%2 == 1 {
			book.mu.Lock()
			book.settled = false // as if told of a change
			book.mu.Unlock()
		}
		start := time.Now()
		again, err := book.Sync(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			full += time.Since(start)
		} else {
			skipped += time.Since(start)
		}
		if !reflect.DeepEqual(again, v) {
			t.Fatalf("the view changed")
		}
	}
	if store.count() != writes {
		t.Fatalf("no-change Sync wrote the store %d times", store.count()-writes)
	}
	if reg.Clock() != clock || len(reg.GetBroadcasts(0, 1<<30)) != 0 {
		t.Fatalf("no-change Sync wrote to the registry (queued before: %d)", queued)
	}
	t.Logf("%d networks x %d hosts: first Sync %v; no-change Sync: %v reading the registry, %v told of no change",
		nets, hosts, first, full/rounds, skipped/rounds)
}

// BenchmarkSyncNoChange100x100 is a no-change Sync of 100 networks x 100 hosts' slices.
func BenchmarkSyncNoChange100x100(b *testing.B) {
	book, _, _ := buildScale(b, 100, 100, 0)
	if _, err := book.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		book.mu.Lock()
		book.settled = false // read the registry, as when told of a change
		book.mu.Unlock()
		if _, err := book.Sync(ctx); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSyncWithEndpoints is a no-change Sync while the registry also holds 100
// networks x 1000 endpoint records (about 200 bytes each) of each of 4 hosts: it reports
// the heap the registry holds and the time of a Sync that must step over the endpoints.
func BenchmarkSyncWithEndpoints(b *testing.B) {
	const hosts, nets, eps = 4, 100, 1000
	var ms0, ms1 runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms0)
	start := time.Now()
	book, _, reg := buildScale(b, hosts, nets, eps)
	build := time.Since(start)
	runtime.GC()
	runtime.ReadMemStats(&ms1)
	if _, err := book.Sync(ctx); err != nil {
		b.Fatal(err)
	}
	for b.Loop() {
		book.mu.Lock()
		book.settled = false // read the registry, as when told of a change
		book.mu.Unlock()
		if _, err := book.Sync(ctx); err != nil {
			b.Fatal(err)
		}
	}
	recs := 0
	for _, n := range reg.Count(registry.KindEndpoint) {
		recs += n
	}
	runtime.KeepAlive(reg)
	b.ReportMetric(float64(ms1.HeapAlloc-ms0.HeapAlloc)/1e6, "heap-MB")
	b.ReportMetric(float64(recs), "endpoints")
	b.ReportMetric(build.Seconds(), "build-s")
}

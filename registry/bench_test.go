package registry

import (
	"fmt"
	"runtime"
	"testing"
)

// The benchmarks size the registry for 100 networks x 1000 endpoints per host (about 150
// bytes per endpoint record). Run them with e.g.
//
//	go test -run XXX -bench . -benchtime 5x ./registry/
const benchNets, benchEps = 100, 1000

// fill writes nets networks and nets x eps endpoints as r's own records.
func fill(tb testing.TB, r *Registry, host, nets, eps int) {
	tb.Helper()
	for net := range nets {
		if _, err := r.Set(KindNetwork, fmt.Sprintf("net%03d", net), fmt.Appendf(nil, "10.%d.0.0/16", net)); err != nil {
			tb.Fatal(err)
		}
		for i := range eps {
			if _, err := r.Set(KindEndpoint, fmt.Sprintf("net%03d/c%04d", net, i), endpointValue(host, net, i)); err != nil {
				tb.Fatal(err)
			}
		}
	}
}

// snapshot returns the records of origin held by r.
func snapshot(r *Registry, origin string) (part, []*Record) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.origins[origin]
	recs := make([]*Record, 0, len(o.recs))
	for _, e := range o.recs {
		recs = append(recs, &e.Record)
	}
	return part{From: r.cfg.Origin, ID: 1, Origin: origin, Full: true, W: o.w, Floor: o.floor}, recs
}

// BenchmarkSet is one local write of an endpoint record (store, delta, broadcast queue).
func BenchmarkSet(b *testing.B) {
	n := newNet(b)
	r := n.add("a", 1)
	i := 0
	for b.Loop() {
		if _, err := r.Set(KindEndpoint, fmt.Sprintf("net%03d/c%04d", i/benchEps%benchNets, i%benchEps), endpointValue(1, i/benchEps%benchNets, i%benchEps)); err != nil {
			b.Fatal(err)
		}
		i++
	}
}

// BenchmarkEncodeFull100x1000 encodes a full snapshot of one host's 100 x 1000 records
// (what a peer that knows nothing of the host is sent).
func BenchmarkEncodeFull100x1000(b *testing.B) {
	n := newNet(b)
	a := n.add("a", 1)
	fill(b, a, 1, benchNets, benchEps)
	hdr, recs := snapshot(a, "a")
	var wire, parts int
	for b.Loop() {
		msgs, err := encodeParts(hdr, recs)
		if err != nil {
			b.Fatal(err)
		}
		wire, parts = 0, len(msgs)
		for _, m := range msgs {
			wire += len(m)
		}
	}
	raw := 0
	for _, rec := range recs {
		raw += len(appendRecord(nil, rec))
	}
	b.ReportMetric(float64(wire)/1e6, "wire-MB")
	b.ReportMetric(float64(raw)/1e6, "raw-MB")
	b.ReportMetric(float64(parts), "parts")
	b.ReportMetric(float64(len(recs)), "records")
}

// BenchmarkMergeFull100x1000 decodes and merges that snapshot into an empty registry.
// It also reports the memory a replica holds per record.
func BenchmarkMergeFull100x1000(b *testing.B) {
	n := newNet(b)
	a := n.add("a", 1)
	fill(b, a, 1, benchNets, benchEps)
	hdr, recs := snapshot(a, "a")
	msgs, err := encodeParts(hdr, recs)
	if err != nil {
		b.Fatal(err)
	}
	var held *Registry
	var ms0, ms1 runtime.MemStats
	for b.Loop() {
		b.StopTimer()
		r := n.add("b", 1)
		r.mu.Lock()
		r.originLocked("a").req = &pending{id: 1, peer: "a", deadline: n.now.Add(r.cfg.RequestTimeout)}
		r.mu.Unlock()
		held = nil
		runtime.GC()
		runtime.ReadMemStats(&ms0)
		b.StartTimer()
		for _, m := range msgs {
			r.NotifyMsg(m)
		}
		b.StopTimer()
		if st := r.Origins()[0]; st.Live != len(recs) || st.Watermark != hdr.W {
			b.Fatalf("merged %+v", st)
		}
		held = r
		runtime.GC()
		runtime.ReadMemStats(&ms1)
		b.StartTimer()
	}
	runtime.KeepAlive(held)
	b.ReportMetric(float64(ms1.HeapAlloc-ms0.HeapAlloc)/float64(len(recs)), "held-B/record")
}

// syncedPair returns two registries with 100 x 1000 records each, each holding the other's.
func syncedPair(b *testing.B) (*testNet, *Registry, *Registry) {
	n := newNet(b)
	x, y := n.add("a", 1), n.add("b", 1)
	fill(b, x, 1, benchNets, benchEps)
	fill(b, y, 2, benchNets, benchEps)
	for _, r := range []*Registry{x, y} {
		for r.queue.NumQueued() > 0 {
			r.GetBroadcasts(0, 1<<30) // gossip is not part of this measure
		}
	}
	n.pushPull(x, y)
	if len(liveView(y, "a")) != benchNets*(benchEps+1) || len(liveView(x, "b")) != benchNets*(benchEps+1) {
		b.Fatal("pair not synced")
	}
	return n, x, y
}

// BenchmarkPushPullSteady is one push/pull between two hosts holding 2 x 100 x 1000
// records, nothing changed: digests only.
func BenchmarkPushPullSteady(b *testing.B) {
	n, x, y := syncedPair(b)
	sent := n.sent
	var wire int
	for b.Loop() {
		sx, sy := x.LocalState(false), y.LocalState(false)
		x.MergeRemoteState(sy, false)
		y.MergeRemoteState(sx, false)
		wire = len(sx) + len(sy)
	}
	n.settle()
	if n.sent != sent {
		b.Fatalf("steady push/pull caused %d sync messages", n.sent-sent)
	}
	b.ReportMetric(float64(wire), "wire-B/pushpull")
}

// BenchmarkPushPullOneChange is a push/pull after one endpoint changed: the digest shows
// the difference and the peer fetches one record.
func BenchmarkPushPullOneChange(b *testing.B) {
	n, x, y := syncedPair(b)
	i := 0
	var wire int
	for b.Loop() {
		if _, err := x.Set(KindEndpoint, "net000/c0000", fmt.Appendf(nil, "changed %d", i)); err != nil {
			b.Fatal(err)
		}
		x.GetBroadcasts(0, 1<<30) // lost: anti-entropy must find it
		i++
		before := n.sentBytes
		sx, sy := x.LocalState(false), y.LocalState(false)
		x.MergeRemoteState(sy, false)
		y.MergeRemoteState(sx, false)
		n.settle()
		wire = len(sx) + len(sy) + n.sentBytes - before
	}
	if _, ok := y.Get("a", KindEndpoint, "net000/c0000"); !ok {
		b.Fatal("change not fetched")
	}
	b.ReportMetric(float64(wire), "wire-B/pushpull")
}

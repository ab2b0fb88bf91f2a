package flows

import (
	"context"
	"fmt"
	"strings"
	"testing"
)

// dumpOf renders fs as `ovs-ofctl dump-flows` prints them (statistics included; match and
// actions as the plan spells them, which normalize reads the same).
func dumpOf(fs []Flow) string {
	var b strings.Builder
	b.WriteString("NXST_FLOW reply (xid=0x4):\n")
	for _, f := range fs {
		fmt.Fprintf(&b, " cookie=%#x, duration=12.345s, table=%d, n_packets=0, n_bytes=0, idle_age=12, priority=%d", f.Cookie, f.Table, f.Priority)
		if f.Match != "" {
			b.WriteString("," + f.Match)
		}
		b.WriteString(" actions=" + f.Actions + "\n")
	}
	return b.String()
}

// TestParseDumpLargeUnchanged: a dump of a large plan, as ovs-ofctl prints it, parses into
// every flow and needs no change.
func TestParseDumpLargeUnchanged(t *testing.T) {
	desired := mustPlan(t, benchInput(20, 20))
	r := &fakeRunner{out: dumpOf(desired)}
	res, err := Reconcile(context.Background(), newFakeOFCtl(r), desired)
	if err != nil {
		t.Fatal(err)
	}
	if res != (Result{Unchanged: len(desired)}) {
		t.Fatalf("reconcile against its own dump: %s, want %d unchanged", res, len(desired))
	}
}

// TestParseDumpErrors: what is not a flow dump, or a line that is no flow, is refused.
func TestParseDumpErrors(t *testing.T) {
	for _, tc := range []struct{ name, out string }{
		{"empty", ""},
		{"no header", " cookie=0xfab0001, table=0, priority=1 actions=drop\n"},
		{"bad flow", "NXST_FLOW reply (xid=0x4):\n cookie=0xfab0001, table=0, priority=1 actions=frobnicate:(\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if fs, err := parseDump([]byte(tc.out)); err == nil {
				t.Fatalf("parsed %d flows, want an error", len(fs))
			}
		})
	}
	fs, err := parseDump([]byte("NXST_FLOW reply (xid=0x4):\n\n cookie=0xfab000100000001, duration=1s, table=3, n_packets=0, n_bytes=0, priority=7,ip actions=drop\r\nNXST_FLOW reply (xid=0x4):\n"))
	if err != nil || len(fs) != 1 || fs[0] != (Flow{Table: 3, Priority: 7, Cookie: 0xfab000100000001, Match: "ip", Actions: "drop"}) {
		t.Fatalf("parsed %+v, %v", fs, err)
	}
}

// BenchmarkResyncReconcile100x100 times the periodic resync pass's flow reconcile of about
// 10 000 flows that all match (the dump as ovs-ofctl prints them, ovs-ofctl itself left
// out): parse the dump, normalize both sides, compare.
func BenchmarkResyncReconcile100x100(b *testing.B) {
	desired := mustPlan(b, benchInput(100, 100))
	r := &fakeRunner{out: dumpOf(desired)}
	sw := newFakeOFCtl(r)
	b.ReportAllocs()
	b.ReportMetric(float64(len(desired)), "flows")
	for b.Loop() {
		r.calls = r.calls[:0]
		res, err := Reconcile(context.Background(), sw, desired)
		if err != nil || res.Unchanged != len(desired) {
			b.Fatalf("%s, %v", res, err)
		}
	}
}

// BenchmarkResyncReconcileNormalizer100x100 is BenchmarkResyncReconcile100x100 through a
// Normalizer that saw the same flows in the pass before (the steady state of the resync).
func BenchmarkResyncReconcileNormalizer100x100(b *testing.B) {
	desired := mustPlan(b, benchInput(100, 100))
	r := &fakeRunner{out: dumpOf(desired)}
	sw := newFakeOFCtl(r)
	var z Normalizer
	if _, err := z.Reconcile(context.Background(), sw, desired); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ReportMetric(float64(len(desired)), "flows")
	for b.Loop() {
		r.calls = r.calls[:0]
		res, err := z.Reconcile(context.Background(), sw, desired)
		if err != nil || res.Unchanged != len(desired) {
			b.Fatalf("%s, %v", res, err)
		}
	}
}

// TestNormalizerSeesChanges: a Normalizer that remembers the flows of the last pass still
// finds every flow changed, removed or added behind its back, and remembers only the flows
// the last pass compared.
func TestNormalizerSeesChanges(t *testing.T) {
	desired := mustPlan(t, benchInput(3, 3))
	changed := func(f func([]Flow) []Flow) []Flow { return f(append([]Flow(nil), desired...)) }
	for _, tc := range []struct {
		name      string
		installed []Flow
		want      Result
	}{
		{"unchanged", desired, Result{Unchanged: len(desired)}},
		{"actions changed", changed(func(fs []Flow) []Flow { fs[0].Actions = "drop"; return fs }), Result{Unchanged: len(desired) - 1, Modified: 1}},
		{"match changed", changed(func(fs []Flow) []Flow { fs[1].Match += ",tp_dst=99"; return fs }), Result{Unchanged: len(desired) - 1, Modified: 1}},
		{"priority changed", changed(func(fs []Flow) []Flow { fs[2].Priority++; return fs }), Result{Unchanged: len(desired) - 1, Modified: 1}},
		{"flow removed", changed(func(fs []Flow) []Flow { return fs[1:] }), Result{Unchanged: len(desired) - 1, Added: 1}},
		{"stray flow", changed(func(fs []Flow) []Flow {
			return append(fs, Flow{Table: 0, Priority: 1, Cookie: CookieBase | 0xdead, Actions: "drop"})
		}), Result{Unchanged: len(desired), Removed: 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var z Normalizer
			// The first pass sees the bridge as desired: the memo then knows every flow.
			if _, err := z.Reconcile(context.Background(), newFakeOFCtl(&fakeRunner{out: dumpOf(desired)}), desired); err != nil {
				t.Fatal(err)
			}
			r := &fakeRunner{out: dumpOf(tc.installed)}
			res, err := z.Reconcile(context.Background(), newFakeOFCtl(r), desired)
			if err != nil {
				t.Fatal(err)
			}
			if res != tc.want {
				t.Fatalf("result %s, want %s", res, tc.want)
			}
			if plain, _ := Reconcile(context.Background(), newFakeOFCtl(&fakeRunner{out: dumpOf(tc.installed)}), desired); plain != res {
				t.Fatalf("with the memo %s, without %s", res, plain)
			}
			if n := len(z.last); n > 2*len(desired)+1 {
				t.Fatalf("the memo holds %d flows after a pass that compared at most %d", n, 2*len(desired)+1)
			}
		})
	}
}

package flows

import (
	"context"
	"fmt"
	"slices"
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
			if fs, _, err := parseDump([]byte(tc.out), nil); err == nil {
				t.Fatalf("parsed %d flows, want an error", len(fs))
			}
		})
	}
	fs, _, err := parseDump([]byte("NXST_FLOW reply (xid=0x4):\n\n cookie=0xfab000100000001, duration=1s, table=3, n_packets=0, n_bytes=0, priority=7,ip actions=drop\r\nNXST_FLOW reply (xid=0x4):\n"), nil)
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

// TestLineKey: a flow dumped again with other statistics has the same key; any change of
// what the flow is gives another.
func TestLineKey(t *testing.T) {
	const base = "cookie=0xfab000102c72f06, duration=0.020s, table=0, n_packets=0, n_bytes=0, idle_age=0, priority=100,ip,in_port=4 actions=resubmit(,10)"
	key := lineKey([]byte(base))
	if key == "" || strings.Contains(key, "duration") || strings.Contains(key, "n_packets") {
		t.Fatalf("key %q", key)
	}
	for _, tc := range []struct {
		name, line string
		same       bool
	}{
		{"other statistics", "cookie=0xfab000102c72f06, duration=912.5s, table=0, n_packets=17, n_bytes=1700, idle_age=3, hard_age=900, priority=100,ip,in_port=4 actions=resubmit(,10)", true},
		{"other cookie", strings.Replace(base, "0xfab000102c72f06", "0xfab000102c72f07", 1), false},
		{"other table", strings.Replace(base, "table=0", "table=1", 1), false},
		{"other priority", strings.Replace(base, "priority=100", "priority=101", 1), false},
		{"other match", strings.Replace(base, "in_port=4", "in_port=5", 1), false},
		{"other actions", strings.Replace(base, "resubmit(,10)", "resubmit(,20)", 1), false},
		{"an idle timeout", strings.Replace(base, "idle_age=0, ", "idle_age=0, idle_timeout=5, ", 1), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := lineKey([]byte(tc.line)) == key; got != tc.same {
				t.Fatalf("same key = %v, want %v (%q, %q)", got, tc.same, lineKey([]byte(tc.line)), key)
			}
		})
	}
	if k := lineKey([]byte("cookie=0x1, table=0, priority=1")); k != "" {
		t.Fatalf("a line without actions has key %q", k)
	}
}

// TestFlowsRememberedLines: a second dump with other statistics and one flow changed parses
// into exactly what a fresh OFCtl parses.
func TestFlowsRememberedLines(t *testing.T) {
	desired := mustPlan(t, benchInput(3, 3))
	r := &fakeRunner{out: dumpOf(desired)}
	sw := newFakeOFCtl(r)
	if _, err := sw.Flows(context.Background()); err != nil {
		t.Fatal(err)
	}
	next := append([]Flow(nil), desired...)
	next[0].Actions = "drop"
	r.out = strings.ReplaceAll(dumpOf(next), "duration=12.345s", "duration=99.1s")
	got, err := sw.Flows(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want, err := newFakeOFCtl(&fakeRunner{out: r.out}).Flows(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(got, want) || got[0].Actions != "drop" {
		t.Fatalf("with the remembered lines %v\nfresh %v", got[:2], want[:2])
	}
	if len(sw.parsed) != len(next) {
		t.Fatalf("remembers %d lines, want the %d of the last dump", len(sw.parsed), len(next))
	}
}

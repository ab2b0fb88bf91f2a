package bench

import (
	"errors"
	"math"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestParsePromText(t *testing.T) {
	const text = `# HELP fabricd_reconcile_duration_seconds Time of one reconcile.
# TYPE fabricd_reconcile_duration_seconds histogram
fabricd_reconcile_duration_seconds_bucket{le="0.0005"} 0
fabricd_reconcile_duration_seconds_bucket{le="+Inf"} 7
fabricd_reconcile_duration_seconds_sum 0.0731
fabricd_reconcile_duration_seconds_count 7
fabricd_reconcile_errors_total 1
fabricd_peers{state="alive"} 5000
fabricd_peers{state="dead"} 0
fabricd_tunnels 4999
fabricd_routes 5e+03
weird{note="a b}c"} 2 1700000000000
`
	m, err := parsePromText(strings.NewReader(text))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]float64{
		`fabricd_reconcile_duration_seconds_bucket{le="+Inf"}`: 7,
		"fabricd_reconcile_duration_seconds_sum":               0.0731,
		`fabricd_peers{state="alive"}`:                         5000,
		"fabricd_routes":                                       5000,
		`weird{note="a b}c"}`:                                  2,
	} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
	fm, err := fabricdMetricsFrom(m, time.Time{})
	if err != nil {
		t.Fatal(err)
	}
	if fm.reconciles != 7 || fm.reconcileSecs != 0.0731 || fm.failed != 1 || fm.alive != 5000 || fm.tunnels != 4999 || fm.routes != 5000 || !math.IsNaN(fm.flowDumps) {
		t.Errorf("fabricdMetricsFrom = %+v", fm)
	}
	m["fabricd_reconcile_flow_dumps_total"] = 3
	if fm, _ := fabricdMetricsFrom(m, time.Time{}); fm.flowDumps != 3 {
		t.Errorf("flow dumps = %v, want 3", fm.flowDumps)
	}
	delete(m, "fabricd_tunnels")
	if _, err := fabricdMetricsFrom(m, time.Time{}); err == nil || !strings.Contains(err.Error(), "fabricd_tunnels") {
		t.Errorf("missing series: err = %v", err)
	}
	for _, bad := range []string{"novalue\n", "x{a=\"b\"}\n", "x notanumber\n"} {
		if _, err := parsePromText(strings.NewReader(bad)); err == nil {
			t.Errorf("parsePromText(%q) accepted it", bad)
		}
	}
}

func TestSingleReconciles(t *testing.T) {
	s := func(count, sum, failed, dumps float64) fabricdMetrics {
		return fabricdMetrics{reconciles: count, reconcileSecs: sum, failed: failed, flowDumps: dumps}
	}
	nan := math.NaN()
	tests := []struct {
		name                   string
		in                     []fabricdMetrics
		plain, dumped, unknown []float64
		total                  int
	}{
		{"none", nil, nil, nil, nil, 0},
		{"quiet", []fabricdMetrics{s(3, 0.1, 0, 1), s(3, 0.1, 0, 1)}, nil, nil, nil, 0},
		// A pass ends (not timed: no earlier end bounds it), a plain one, then one whose
		// dump the counter shows before it ends, then a plain one again.
		{"plain and dumped", []fabricdMetrics{
			s(3, 0.1, 0, 1), s(4, 0.11, 0, 1), s(4, 0.11, 0, 1), s(5, 0.122, 0, 1),
			s(5, 0.122, 0, 2), s(6, 0.262, 0, 2), s(6, 0.262, 0, 2), s(7, 0.27, 0, 2),
		}, []float64{12, 8}, []float64{140}, nil, 4},
		// The second pass dumped; the third ends right after it, so the rise could be
		// either's as far as it can tell: left out.
		{"ambiguous", []fabricdMetrics{s(3, 0.1, 0, 1), s(4, 0.11, 0, 1), s(5, 0.12, 0, 2), s(6, 0.13, 0, 2)}, nil, []float64{10}, nil, 3},
		{"two in one gap are not split", []fabricdMetrics{s(3, 0.1, 0, 0), s(5, 0.13, 0, 0), s(6, 0.14, 0, 0)}, []float64{10}, nil, nil, 3},
		{"a failed one is left out", []fabricdMetrics{s(2, 0.05, 0, 0), s(3, 0.1, 0, 0), s(4, 0.2, 1, 0)}, nil, nil, nil, 2},
		{"restart", []fabricdMetrics{s(30, 1, 0, 9), s(1, 0.01, 0, 0), s(2, 0.015, 0, 0), s(3, 0.02, 0, 0)}, []float64{5}, nil, nil, 2},
		{"no dump counter", []fabricdMetrics{s(3, 0.1, 0, nan), s(4, 0.107, 0, nan)}, nil, nil, []float64{7}, 1},
	}
	near := func(a, b []float64) bool {
		if len(a) != len(b) {
			return false
		}
		for i := range a {
			if math.Abs(a[i]-b[i]) > 1e-9 {
				return false
			}
		}
		return true
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := singleReconciles(tt.in)
			if r.total != tt.total || !near(r.plain, tt.plain) || !near(r.dumped, tt.dumped) || !near(r.unknown, tt.unknown) {
				t.Errorf("got %+v, want plain %v dumped %v unknown %v total %d", r, tt.plain, tt.dumped, tt.unknown, tt.total)
			}
		})
	}
}

func TestPeerScaleParsers(t *testing.T) {
	log := `time=2026-11-30T23:00:00Z level=INFO msg="tunnel added" port=vxl-syn00001
time=2026-11-30T23:00:00Z level=INFO msg="route added" dst=10.128.1.0/24 via=10.128.1.1
time=2026-11-30T23:00:00Z level=INFO msg="flows updated" bridge=br-int
time=2026-11-30T23:00:00Z level=INFO msg="subnet claim" subnet=10.128.0.0/24
time=2026-11-30T23:00:00Z level=INFO msg="flows of failed attaches removed"
`
	if n := countChangeLines(log); n != 3 {
		t.Errorf("countChangeLines = %d, want 3", n)
	}
	if n, err := parseFlowCount("NXST_AGGREGATE reply (xid=0x4): packet_count=0 byte_count=0 flow_count=5012\n"); err != nil || n != 5012 {
		t.Errorf("parseFlowCount = %d, %v", n, err)
	}
	if _, err := parseFlowCount("ovs-ofctl: br-int is not a bridge or a socket\n"); err == nil {
		t.Error("parseFlowCount accepted an error message")
	}
	if d := swarmReadyTime("100 members joined in 1s\nready 5000 members in 1m2.5s\n"); d != 62500*time.Millisecond {
		t.Errorf("swarmReadyTime = %s", d)
	}
	if d := swarmReadyTime("100 members joined in 1s\n"); d != 0 {
		t.Errorf("swarmReadyTime without a ready line = %s", d)
	}
	a := netip.MustParseAddr("198.18.0.1")
	src := "table=0,priority=100,cookie=0xfab,in_port=8,tun_src=198.18.0.1,actions=resubmit(,20)\n"
	for dump, want := range map[string]bool{
		src + "table=10,ip,nw_dst=10.128.2.0/24,actions=set_field:198.18.0.1->tun_dst,output:8\n":                true,
		src + "table=10,ip,nw_dst=10.128.2.0/24,actions=load:0xc6120001->NXM_NX_TUN_IPV4_DST[],output:8\n":       true,
		src + "table=10,ip,nw_dst=10.128.2.0/24,actions=set_field:198.18.0.10->tun_dst,output:8\n":               false,
		src + "table=10,ip,nw_dst=10.128.2.0/24,actions=load:0xc612000a->NXM_NX_TUN_IPV4_DST[],output:8\n":       false,
		"table=0,tun_src=198.18.0.10,actions=drop\ntable=10,ip,actions=set_field:198.18.0.1->tun_dst,output:8\n": false,
		"table=10,ip,actions=set_field:198.18.0.1->tun_dst,output:8\n":                                           false,
	} {
		if got := flowsToPeer(dump, a); got != want {
			t.Errorf("flowsToPeer(%q) = %v, want %v", dump, got, want)
		}
	}
	if got := sizesText([]int{100, 1000, 5000}); got != "100, 1000 and 5000" {
		t.Errorf("sizesText = %q", got)
	}
}

func TestPeerCap(t *testing.T) {
	for _, tt := range []struct {
		peers int
		want  time.Duration
	}{{100, 35 * time.Second}, {1000, 80 * time.Second}, {5000, 4 * time.Minute}} {
		if got := peerCap(tt.peers, 4*time.Minute); got != tt.want {
			t.Errorf("peerCap(%d) = %s, want %s", tt.peers, got, tt.want)
		}
	}
}

// TestPeerVerdicts checks the targets' status and what the report says for a missing flow
// mode, a partial convergence and measured cells.
func TestPeerVerdicts(t *testing.T) {
	per1k := &peerCell{mode: modePerPeer, peers: 1000, reached: 1000, applied: 3 * time.Second, dataPlane: 4 * time.Second,
		reconcileMs: []float64{5, 6, 7}, rss: []float64{40, 42}, newUsable: []float64{100}, cpuFabricd: 0.5, cpuVSwitchd: 0.9}
	per5k := &peerCell{mode: modePerPeer, peers: 5000, reached: 3120, limit: 4 * time.Minute, err: errors.New("not converged after 4m0s"),
		reconcileMs: []float64{30}, rss: []float64{80}, cpuVSwitchd: 1.2, cpuFabricd: 0.4}
	flowNA := &peerCell{mode: modeFlow, peers: 5000, err: errors.New(flowModeNA)}

	vs := peerVerdicts([]*peerCell{per1k, per5k, flowNA})
	if len(vs) != 5 {
		t.Fatalf("%d verdicts, want 5: %+v", len(vs), vs)
	}
	for _, v := range vs[:3] {
		if v.Status != NotMeasured || v.Limit != flowModeNA || !strings.HasPrefix(v.Target, "flow mode, 5000 peers: ") {
			t.Errorf("flow target without flow mode: %+v", v)
		}
	}
	if v := vs[3]; v.Status != Reported || v.Measured != "not within 4m0s: 3120 of 5000" || !strings.Contains(v.Limit, "ovs-vswitchd (1.20 cores)") || !strings.Contains(v.Limit, "had not all joined") {
		t.Errorf("partial per-peer convergence: %+v", v)
	}

	flow1k := &peerCell{mode: modeFlow, peers: 1000, reached: 1000, applied: time.Second, dataPlane: time.Second,
		reconcileMs: []float64{4}, rss: []float64{30}, newUsable: []float64{50}}
	flow5k := &peerCell{mode: modeFlow, peers: 5000, reached: 5000, applied: 9 * time.Second, dataPlane: 9 * time.Second,
		reconcileMs: []float64{24, 25, 26}, rss: []float64{70, 99.5}, newRoute: []float64{300, 400}, newOVS: []float64{900, 1300}, newUsable: []float64{900, 1300}}
	vs = peerVerdicts([]*peerCell{per1k, flow1k, per5k, flow5k})
	want := []Status{Missed, Missed, Met, Reported, Reported}
	for i, v := range vs {
		if v.Status != want[i] {
			t.Errorf("verdict %d %q: %s, want %s (%+v)", i, v.Target, v.Status, want[i], v)
		}
	}
	if l := vs[0].Limit; !strings.Contains(l, "4.00 ms at 1000 peers → 25.0 at 5000 (0.00525 ms per peer)") {
		t.Errorf("reconcile limit: %s", l)
	}
	if l := vs[1].Limit; !strings.Contains(l, "route came after 350 ms, the flow after 1100 ms") || !strings.Contains(l, "the flow toward it came last") {
		t.Errorf("new peer limit: %s", l)
	}
	if m := vs[2].Measured; m != "max 99.5 MiB (median 84.8)" {
		t.Errorf("RSS measured: %s", m)
	}
	spike := &peerCell{mode: modeFlow, peers: 5000, rss: []float64{60, 62, 113}, flows: 10030, resyncMs: []float64{1054}}
	if l := rssLimit([]*peerCell{spike}, spike); !strings.Contains(l, "the max is 1.82× the median") || !strings.Contains(l, "all 10030 flows and took 1054 ms median here") {
		t.Errorf("RSS limit with a spike: %s", l)
	}

	// At 99% of the peers the targets count and say at how many; below, they do not.
	flow5k.reached, flow5k.err = 4982, errors.New("stalled")
	if vs := peerVerdicts([]*peerCell{flow5k}); vs[0].Status != Missed || !strings.Contains(vs[0].Measured, ", at 4982 of 5000 peers)") {
		t.Errorf("at 4982 of 5000: %+v", vs[0])
	}
	flow5k.reached = 4900
	if vs := peerVerdicts([]*peerCell{flow5k}); vs[0].Status != NotMeasured || vs[0].Limit != "stalled" {
		t.Errorf("at 4900 of 5000: %+v", vs[0])
	}

	// The table shows errors in place of figures and partial convergence as such.
	per5k.changes = 652
	tab := peerResultTable([]*peerCell{per5k, flowNA})
	if got := tab.Rows[0][5]; got != "30.0 (30.0–30.0, 1) — not all no-change: 652 changes logged" {
		t.Errorf("reconcile cell with changes: %q", got)
	}
	if l := convergenceLimit(&peerCell{reached: 10, err: errors.New("the swarm exited")}); l != "not measured: the swarm exited" {
		t.Errorf("convergence limit without CPU figures: %q", l)
	}
	if got := tab.Rows[0][3]; got != "not within 4m0s: 3120 of 5000" {
		t.Errorf("partial row: %q", got)
	}
	if got := tab.Rows[1][2]; got != "error: "+flowModeNA {
		t.Errorf("flow row: %q", got)
	}
	if n := len(peerCostTable([]*peerCell{per5k, flowNA}).Rows); n != 1 {
		t.Errorf("cost table has %d rows, want 1 (no row for a cell that did not run)", n)
	}
}

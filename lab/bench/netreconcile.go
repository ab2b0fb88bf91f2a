package bench

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
)

// reconcileBench is the controller's benchmark of the pure part of a no-change reconcile at
// 100 networks × 100 peers (controller/reconcile_bench_test.go), with one sub-benchmark per
// part (part=plan, part=flows, part=compare) and the whole (part=all).
const reconcileBench = "BenchmarkReconcileNoChange100x100"

// reconcileRuns is how many times (-count) the suite runs the benchmark.
const reconcileRuns = 5

// netReconcile runs the controller's no-change reconcile benchmark with `go test -bench` in
// the module and reports the median time per reconcile and the number of flows.
func (s *suite) netReconcile(ctx context.Context, secs map[string]*Section) {
	sec := secs["net-reconcile"]
	cmdline := fmt.Sprintf("go test -run '^$' -bench '^%s$' -benchmem -count %d ./controller/", reconcileBench, reconcileRuns)
	sec.Method = "`" + cmdline + "` in the module root: the part of a reconcile loop pass that grows with networks " +
		"and does no I/O, for a host with 100 alive peers and 100 networks besides `default`, each with this host's slice, " +
		"a slice of every peer (100 peer slices per network) and one local container, on the routed pipeline: " +
		"`fabric.Plan` of the host's facts (*plan*); the pipeline's flows, i.e. `flows.Input` built from the plan and the " +
		"bridge's ports as OVSDB shows them (gateway, 100 tunnel ports, the containers) and `flows.Plan` (*flows*); and the " +
		"comparison with the flows the bridge was given last, which finds nothing to change, so the pass ends without " +
		"dumping or writing the bridge (*compare*); *all* is the three in a row. The benchmark times every call and " +
		"reports the median (`median-ns`) besides Go's mean (`ns/op`); the figures below are the median over the " +
		fmt.Sprint(reconcileRuns) + " runs of those per-run medians. Not included, measured elsewhere: the OVSDB " +
		"no-change tunnel reconcile (I/O; see the data plane config section), nftables (natrules' " +
		"BenchmarkReconcileNoChange) and the network registry's sync (network's BenchmarkSyncNoChange100x100)."
	var res []goBench
	defer func() { s.netReconcileReport(sec, res) }()
	var err error
	res, err = goBenchRun(ctx, s.cfg.Repo, filepath.Join("controller", "reconcile_bench_test.go"), cmdline,
		"-run", "^$", "-bench", "^"+reconcileBench+"$", "-benchmem", "-count", fmt.Sprint(reconcileRuns), "./controller/")
	if err != nil {
		sec.Err = err
		return
	}
	for _, r := range res {
		s.logf("net-reconcile", "%s: %.0f ns/op, median %.0f ns, %.0f flows", r.Name, r.NsPerOp, r.Metrics["median-ns"], r.Metrics["flows"])
	}
}

// reconcilePart is what the runs of one sub-benchmark measured.
type reconcilePart struct {
	median, mean, bytes, allocs, flows []float64
}

func (s *suite) netReconcileReport(sec *Section, res []goBench) {
	parts := map[string]*reconcilePart{}
	for _, r := range res {
		if !strings.HasPrefix(r.Name, reconcileBench+"/part=") {
			continue
		}
		name := strings.TrimPrefix(r.Name, reconcileBench+"/part=")
		if i := strings.LastIndexByte(name, '-'); i > 0 { // the GOMAXPROCS suffix
			name = name[:i]
		}
		p := parts[name]
		if p == nil {
			p = &reconcilePart{}
			parts[name] = p
		}
		med, ok := r.Metrics["median-ns"]
		if !ok {
			med = math.NaN()
		}
		p.median, p.mean = append(p.median, med), append(p.mean, r.NsPerOp)
		p.bytes, p.allocs = append(p.bytes, r.BytesPerOp), append(p.allocs, r.AllocsPerOp)
		if f, ok := r.Metrics["flows"]; ok {
			p.flows = append(p.flows, f)
		}
	}
	ms := func(ns float64) string { return num(ns / 1e6) }
	t := Table{Header: []string{"part", "median ms per call", "min–max ms (per run)", "mean ms (ns/op)", "B/op", "allocs/op", "runs"}}
	for _, r := range []struct{ key, name string }{
		{"plan", "plan: fabric.Plan"},
		{"flows", "flows: flows.Input from the plan and the ports, flows.Plan"},
		{"compare", "compare: desired vs applied flows"},
		{"all", "all three (the no-change reconcile's pure part)"},
	} {
		p := parts[r.key]
		if p == nil {
			t.AddRow(r.name, "n/a")
			continue
		}
		sm := Summarize(p.median)
		t.AddRow(r.name, ms(sm.Median), ms(sm.Min)+"–"+ms(sm.Max), ms(Median(p.mean)), fmt.Sprintf("%.0f", Median(p.bytes)),
			fmt.Sprintf("%.0f", Median(p.allocs)), fmt.Sprint(sm.N))
	}
	sec.Tables = append(sec.Tables, t)
	flows := math.NaN()
	if p := parts["all"]; p != nil && len(p.flows) > 0 {
		flows = Median(p.flows)
	}
	v := Verdict{Target: "no-change reconcile at 100 networks × 100 peers < 10 ms"}
	all := math.NaN()
	if p := parts["all"]; p != nil {
		all = Median(p.median) / 1e6
	}
	v.Status = Check(all, all < 10)
	switch v.Status {
	case NotMeasured:
		v.Measured, v.Limit = "n/a", "the benchmark did not run (see above)"
		if sec.Err == nil {
			sec.Err = fmt.Errorf("no %s results", reconcileBench)
		}
	default:
		v.Measured = fmt.Sprintf("%s ms median (pure part: plan, flows, compare), %.0f flows", ms(all*1e6), flows)
	}
	if v.Status == Missed {
		var each []string
		for _, k := range []string{"plan", "flows", "compare"} {
			if p := parts[k]; p != nil {
				each = append(each, fmt.Sprintf("%s %s ms", k, ms(Median(p.median))))
			}
		}
		v.Limit = fmt.Sprintf("per part (median): %s, for %.0f flows; a pass allocates %s MB in %.0f allocations "+
			"(medians of B/op and allocs/op), which the garbage collector then scans and frees on the same cores",
			strings.Join(each, ", "), flows, num(Median(parts["all"].bytes)/1e6), Median(parts["all"].allocs))
	}
	sec.Verdicts = append(sec.Verdicts, v)
	if !math.IsNaN(flows) {
		sec.Notes = append(sec.Notes, fmt.Sprintf("The plan holds %.0f flows: the bulk is one flow per network and peer slice (100 × 100).", flows))
	}
}

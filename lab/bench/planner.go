package bench

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
)

// planner runs the planner micro-benchmark (fabric.BenchmarkPlan: 10 to 10000 peers) with
// `go test -bench` in the module and reports how its cost grows.
func (s *suite) planner(ctx context.Context, secs map[string]*Section) {
	sec := secs["planner"]
	const cmdline = "go test -run '^$' -bench . -benchmem ./fabric/"
	sec.Method = "`" + cmdline + "` in the module root: fabric.Plan (the pure planner) for a host with 10, 100, 1000 " +
		"and 10000 alive peers, each with its own subnet (BenchmarkPlan in fabric/plan_bench_test.go)."
	var res []goBench
	defer func() { s.plannerReport(sec, res) }()
	var err error
	res, err = goBenchRun(ctx, s.cfg.Repo, filepath.Join("fabric", "plan_bench_test.go"), cmdline,
		"-count=1", "-run", "^$", "-bench", ".", "-benchmem", "./fabric/")
	if err != nil {
		sec.Err = err
		return
	}
	for _, r := range res {
		s.logf("planner", "%s: %.0f ns/op, %.0f B/op", r.Name, r.NsPerOp, r.BytesPerOp)
	}
}

func (s *suite) plannerReport(sec *Section, res []goBench) {
	type row struct {
		peers int
		b     goBench
	}
	var rows []row
	for _, r := range res {
		if !strings.HasPrefix(r.Name, "BenchmarkPlan/") {
			continue
		}
		if n, ok := benchParam(r.Name, "peers"); ok {
			rows = append(rows, row{n, r})
		}
	}
	sort.Slice(rows, func(i, j int) bool { return rows[i].peers < rows[j].peers })
	t := Table{Header: []string{"peers", "µs per plan", "ns per peer", "B/op", "allocs/op", "time × vs previous (peers ×10)"}}
	var growth []string
	for i, r := range rows {
		g := "—"
		if i > 0 {
			f := r.b.NsPerOp / rows[i-1].b.NsPerOp
			g = fmt.Sprintf("×%.1f", f)
			growth = append(growth, fmt.Sprintf("%d→%d: ×%.1f", rows[i-1].peers, r.peers, f))
		}
		t.AddRow(fmt.Sprint(r.peers), num(r.b.NsPerOp/1000), num(r.b.NsPerOp/float64(r.peers)), fmt.Sprintf("%.0f", r.b.BytesPerOp), fmt.Sprintf("%.0f", r.b.AllocsPerOp), g)
	}
	sec.Tables = append(sec.Tables, t)
	v := Verdict{Target: "near-linear growth (reported)", Status: Reported}
	if len(growth) == 0 {
		v.Measured, v.Status = "n/a", NotMeasured
		if sec.Err == nil {
			sec.Err = fmt.Errorf("no BenchmarkPlan results")
		}
	} else {
		last := rows[len(rows)-1]
		v.Measured = fmt.Sprintf("time per ×10 peers: %s; per peer %s ns at %d peers, %s ns at %d",
			strings.Join(growth, ", "), num(rows[0].b.NsPerOp/float64(rows[0].peers)), rows[0].peers,
			num(last.b.NsPerOp/float64(last.peers)), last.peers)
	}
	sec.Verdicts = append(sec.Verdicts, v)
}

package bench

import (
	"strings"
	"testing"
	"time"
)

func TestNetReconcileReport(t *testing.T) {
	line := func(part string, ns, median float64) string {
		return "BenchmarkReconcileNoChange100x100/part=" + part + "-2 \t 100 \t " + num(ns) + " ns/op\t 11927 flows\t " +
			num(median) + " median-ns\t 1000 B/op\t 10 allocs/op\n"
	}
	out := func(all ...float64) string {
		var b strings.Builder
		for _, a := range all {
			b.WriteString(line("plan", 3e6, 2e6) + line("flows", 4e6, 3e6) + line("compare", 1e6, 1e6) + line("all", a+1e6, a))
		}
		return b.String()
	}
	for _, tc := range []struct {
		name     string
		out      string
		status   Status
		measured string
	}{
		{"met: median of the runs' medians", out(6e6, 9e6, 7e6, 20e6, 8e6), Met, "8.00 ms median"},
		{"missed", out(12e6, 11e6, 13e6), Missed, "12.0 ms median"},
		{"no results", "FAIL\n", NotMeasured, "n/a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &suite{cfg: DefaultConfig()}
			sec := &Section{}
			s.netReconcileReport(sec, parseGoBench(tc.out))
			if len(sec.Verdicts) != 1 {
				t.Fatalf("verdicts: %+v", sec.Verdicts)
			}
			v := sec.Verdicts[0]
			if v.Status != tc.status || !strings.HasPrefix(v.Measured, tc.measured) {
				t.Fatalf("verdict %+v, want %s, measured %q…", v, tc.status, tc.measured)
			}
			if tc.status == Met && !strings.Contains(v.Measured, "11927 flows") {
				t.Errorf("measured %q: no flow count", v.Measured)
			}
			if tc.status == Missed && !strings.Contains(v.Limit, "plan 2.00 ms, flows 3.00 ms, compare 1.00 ms") {
				t.Errorf("limit %q: no parts", v.Limit)
			}
			if tc.status == NotMeasured && sec.Err == nil {
				t.Error("no results and no error")
			}
		})
	}
}

func TestNetThroughputReport(t *testing.T) {
	c := func(label string, gbps ...float64) *ntCase {
		n := len(gbps)
		return &ntCase{label: label, path: &dpPath{}, flows: 30, containers: 1, gbps: gbps, retr: make([]float64, n),
			cores: slicesOf(n, 0.5), busy: slicesOf(n, 0.9)}
	}
	for _, tc := range []struct {
		name           string
		one, many      []float64
		status         Status
		measured, note string
	}{
		{"met, steady", []float64{1, 1, 1}, []float64{0.98, 0.99, 0.97}, Met, "0.98× (paired trials 0.97×–0.99×; 3 trials", ""},
		{"missed", []float64{1, 1, 1}, []float64{0.8, 0.9, 0.85}, Missed, "0.85×", ""},
		{"straddles the target", []float64{1, 1, 1}, []float64{0.8, 1.2, 1}, Met, "1.00×", "on both sides of the target"},
		{"failed", []float64{1, 1, 1}, nanSlice(3), NotMeasured, "n/a", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &suite{cfg: DefaultConfig()}
			sec := &Section{}
			s.netThroughputReport(sec, c(labelOneNet, tc.one...), c("many", tc.many...), c("control", tc.one...))
			v := sec.Verdicts[0]
			if v.Status != tc.status || !strings.HasPrefix(v.Measured, tc.measured) {
				t.Fatalf("verdict %+v, want %s, measured %q…", v, tc.status, tc.measured)
			}
			notes := strings.Join(sec.Notes, "\n")
			if tc.note != "" && !strings.Contains(notes, tc.note) || tc.note == "" && notes != "" {
				t.Errorf("notes %q, want %q", notes, tc.note)
			}
			if tc.status == Missed && !strings.Contains(v.Limit, "control with as many containers but one network measured 1.00×") {
				t.Errorf("limit %q: no control", v.Limit)
			}
			if len(sec.Tables) != 1 || len(sec.Tables[0].Rows) != 3 {
				t.Fatalf("tables: %+v", sec.Tables)
			}
		})
	}
}

func slicesOf(n int, v float64) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = v
	}
	return out
}

func TestNetReadyReport(t *testing.T) {
	ms := func(v ...int) []time.Duration {
		var out []time.Duration
		for _, x := range v {
			out = append(out, time.Duration(x)*time.Millisecond)
		}
		return out
	}
	tr := func(usable int) readyTrial {
		return readyTrial{create: 600 * time.Millisecond, listed: ms(603, 605, 604), attach: ms(650, 660, usable-10),
			reply: ms(usable-5, usable), usable: time.Duration(usable) * time.Millisecond}
	}
	for _, tc := range []struct {
		name     string
		trials   []readyTrial
		status   Status
		measured string
	}{
		{"met", []readyTrial{tr(700), tr(680), tr(1500)}, Met, "0.70 s (3 trials)"},
		{"missed", []readyTrial{tr(1200), tr(1100), tr(900)}, Missed, "1.10 s (3 trials)"},
		{"none", nil, NotMeasured, "n/a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &suite{cfg: DefaultConfig()}
			sec := &Section{}
			s.netReadyReport(sec, tc.trials)
			v := sec.Verdicts[0]
			if v.Status != tc.status || v.Measured != tc.measured {
				t.Fatalf("verdict %+v, want %s, %q", v, tc.status, tc.measured)
			}
			if tc.status == Missed && !strings.Contains(v.Limit, "0.60 s until the create answered") {
				t.Errorf("limit %q", v.Limit)
			}
			if tc.trials != nil && (len(sec.Tables) != 2 || len(sec.Tables[1].Rows) != len(tc.trials)) {
				t.Errorf("tables: %+v", sec.Tables)
			}
			if tc.trials != nil && !strings.Contains(strings.Join(sec.Notes, ""), "5.00 ms (median) after the answer") {
				t.Errorf("notes: %q", sec.Notes)
			}
		})
	}
}

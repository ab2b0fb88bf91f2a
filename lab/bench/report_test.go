package bench

import (
	"errors"
	"math"
	"strings"
	"testing"
	"time"
)

func sampleReport() *Report {
	tp := &Section{
		Key: "throughput", Title: "Throughput", Method: "iperf3 between two hosts.",
		Tables: []Table{{
			Caption: "Gbit/s, 3 trials.",
			Header:  []string{"path", "streams", "median"},
			Rows:    [][]string{{"underlay", "1", "1.23"}, {"fabric a|b", "4"}},
		}},
		Verdicts: []Verdict{
			{Target: "routed ≥ 0.9× underlay", Measured: "n/a", Status: NotMeasured, Limit: "routed pipeline not available in this build"},
			{Target: "L2 ≥ 0.5× underlay", Measured: "0.71×", Status: Met},
		},
		Notes: []string{"the 2 cores are shared"},
		Took:  90 * time.Second, Load: "1.50",
	}
	failed := &Section{Key: "memory", Title: "Memory", Err: errors.New("fabricd exited:\nsee log"),
		Verdicts: []Verdict{{Target: "< 60 MiB", Measured: "n/a", Status: NotMeasured}}}
	return &Report{
		Command: "./bin/fabric-bench --out docs/benchmarks.md",
		Started: time.Date(2026, 11, 23, 10, 0, 0, 0, time.UTC), Took: 754 * time.Second,
		Machine:   Machine{Cores: 2, CPU: "Test CPU", MemGiB: 23.5, Kernel: "6.1.0", OVS: "3.1.0", Datapath: "netdev (userspace)", Go: "go1.26", Iperf3: "iperf 3.12"},
		LoadStart: "1.00 0.50 0.25", LoadEnd: "2.00 1.00 0.50",
		Notes:    []string{"A note."},
		Sections: []*Section{tp, failed},
	}
}

func TestRender(t *testing.T) {
	var b strings.Builder
	if err := sampleReport().Render(&b); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"# Benchmarks\n",
		"- command: `./bin/fabric-bench --out docs/benchmarks.md`\n",
		"- date: 2026-11-23 10:00 UTC, the run took 12m34s\n",
		"- machine: 2 cores (Test CPU), 23.5 GiB RAM, kernel 6.1.0\n",
		"- Open vSwitch: 3.1.0, datapath netdev (userspace)\n",
		"A note.\n",
		"| section | target | measured | status |\n|---|---|---|---|\n",
		"| [Throughput](#throughput) | routed ≥ 0.9× underlay | n/a | not measured |\n",
		"| [Throughput](#throughput) | L2 ≥ 0.5× underlay | 0.71× | **met** |\n",
		"## Throughput\n\niperf3 between two hosts.\n\nGbit/s, 3 trials.\n\n| path | streams | median |\n",
		"| underlay | 1 | 1.23 |\n",
		`| fabric a\|b | 4 | — |` + "\n", // pipes escaped, missing cells filled
		"| routed ≥ 0.9× underlay | n/a | not measured | routed pipeline not available in this build |\n",
		"- the 2 cores are shared\n",
		"_Section ran 1m30s; load average at its start: 1.50._\n",
		"**The section did not complete:** fabricd exited: see log\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q\n--- report:\n%s", want, out)
		}
	}
	if !strings.HasSuffix(out, "\n") || strings.HasSuffix(out, "\n\n") {
		t.Errorf("report must end with exactly one newline")
	}
}

func TestCheck(t *testing.T) {
	if Check(math.NaN(), true) != NotMeasured || Check(1, true) != Met || Check(1, false) != Missed {
		t.Fatal("Check")
	}
}

func TestFormatting(t *testing.T) {
	for _, tc := range []struct {
		got, want string
	}{
		{num(1234.5), "1234"}, {num(12.345), "12.3"}, {num(1.2345), "1.23"}, {num(math.NaN()), "n/a"},
		{ratio(0.934), "0.93×"}, {ratio(math.NaN()), "n/a"},
		{spread(Summarize([]float64{1, 2.5, 3})), "1.00–3.00"}, {spread(Summarize(nil)), "n/a"},
		{anchor("Scale: data plane config"), "scale-data-plane-config"},
		{cell(""), "—"}, {cell("a\nb|c"), `a b\|c`},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

// TestSectionAnchors checks that every section title gives the anchor GitHub (and the docs
// link test) gives its heading: ASCII letters, digits, spaces and punctuation only, since a
// symbol such as × is dropped from the heading's anchor but kept by anchor.
func TestSectionAnchors(t *testing.T) {
	for _, s := range Sections {
		for _, r := range s.Title {
			if r > 127 {
				t.Errorf("section %s: title %q has %q, which GitHub drops from the heading's anchor", s.Key, s.Title, r)
			}
		}
	}
}

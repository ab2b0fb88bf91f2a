package bench

import (
	"math"
	"strings"
	"testing"
	"time"
)

func TestParseProcStatTicks(t *testing.T) {
	// Field 14 (utime) = 1234, field 15 (stime) = 567; the command name holds ") (".
	const stat = "4242 (ovs-vswitchd) (x) S 1 4242 4242 0 -1 4194560 9311 0 0 0 1234 567 0 0 20 0 5 0 1180 1084669952 3381 18446744073709551615"
	got, err := parseProcStatTicks(stat)
	if err != nil || got != 1801 {
		t.Fatalf("parseProcStatTicks = %d, %v; want 1801", got, err)
	}
	for _, bad := range []string{"", "4242 ovs-vswitchd S 1", "4242 (ovs) S 1 2 3", "4242 (ovs) S 1 4242 4242 0 -1 4194560 9311 0 0 0 x 567 0"} {
		if _, err := parseProcStatTicks(bad); err == nil {
			t.Errorf("parseProcStatTicks(%q) gave no error", bad)
		}
	}
}

func TestParseSystemCPU(t *testing.T) {
	const stat = "cpu  100 10 50 800 40 0 5 0 0 0\ncpu0 50 5 25 400 20 0 2 0 0 0\nintr 1\n"
	busy, total, err := parseSystemCPU(stat)
	// busy = user + nice + system + irq + softirq + steal; idle and iowait are not busy.
	if err != nil || busy != 165 || total != 1005 {
		t.Fatalf("parseSystemCPU = %d, %d, %v; want 165, 1005", busy, total, err)
	}
	for _, bad := range []string{"", "intr 1\n", "cpu 1 2\n", "cpu 1 2 x 4 5\n"} {
		if _, _, err := parseSystemCPU(bad); err == nil {
			t.Errorf("parseSystemCPU(%q) gave no error", bad)
		}
	}
}

func TestUse(t *testing.T) {
	t0 := time.Unix(1000, 0)
	a := cpuSample{at: t0, procTicks: 1000, sysBusy: 500, sysTotal: 1000}
	b := cpuSample{at: t0.Add(2 * time.Second), procTicks: 1300, sysBusy: 800, sysTotal: 1400}
	u := use(a, b)
	if u.ProcCores != 1.5 || u.MachineBusy != 0.75 {
		t.Fatalf("use = %+v; want 1.5 cores, 0.75 busy", u)
	}
	// Counters that went backwards (a restarted process) or no time: NaN, not nonsense.
	u = use(b, a)
	if !math.IsNaN(u.ProcCores) || !math.IsNaN(u.MachineBusy) {
		t.Fatalf("use backwards = %+v; want NaN", u)
	}
}

func TestExplainThroughput(t *testing.T) {
	fabric := pathCost{Label: "fabric", Gbps: 1, Retransmits: 3000, VSCores: 1.2, MachineBusy: 0.97}
	for _, tc := range []struct {
		name      string
		p, base   pathCost
		want, not []string
	}{
		{"base bypasses OVS", fabric, pathCost{Label: "plain", Gbps: 20, Retransmits: 10, VSCores: 0.1, MachineBusy: 0.99},
			[]string{"plain does not go through ovs-vswitchd", "CPU, not a link", "retransmitted 300× as much", "Derived:"}, []string{"Hypothesis"}},
		{"more OVS CPU per Gbit/s", fabric, pathCost{Label: "underlay", Gbps: 1.5, Retransmits: 2500, VSCores: 1.2, MachineBusy: 0.97},
			[]string{"costs fabric 1.50× the ovs-vswitchd CPU", "CPU, not a link"}, []string{"retransmitted", "does not go through"}},
		{"nothing measured explains it",
			pathCost{Label: "fabric", Gbps: 1, Retransmits: 10, VSCores: 1, MachineBusy: 0.5},
			pathCost{Label: "underlay", Gbps: 1.1, Retransmits: 10, VSCores: 1.05, MachineBusy: 0.5},
			[]string{"show no cause", "hypothesis, not measured"}, []string{"Derived:"}},
		{"CPU not measured", pathCost{Label: "fabric", Gbps: 1, Retransmits: 10, VSCores: math.NaN(), MachineBusy: math.NaN()},
			pathCost{Label: "underlay", Gbps: 2, Retransmits: 10, VSCores: math.NaN(), MachineBusy: math.NaN()},
			[]string{"show no cause", "were not measured"}, []string{"not higher", "busy ="}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := explainThroughput(tc.p, tc.base)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("missing %q in %q", w, got)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(got, w) {
					t.Errorf("unexpected %q in %q", w, got)
				}
			}
		})
	}
}

func TestExplainLatency(t *testing.T) {
	got := explainLatency("fabric", "kernel", 0.25, 0.2, []float64{1.1, 0.9, math.NaN(), 1.3}, 1, "why")
	for _, w := range []string{"0.250 ms on fabric vs 0.200 ms on kernel (+50 µs", "0.90×–1.30×", "met the target in 1 of 3 rounds", "Hypothesis, not measured by the suite: why"} {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in %q", w, got)
		}
	}
}

func TestExplainThroughputCheaperPath(t *testing.T) {
	got := explainThroughput(pathCost{Label: "routed", Gbps: 1, Retransmits: 10, VSCores: 1, MachineBusy: 0.5},
		pathCost{Label: "L2", Gbps: 0.8, Retransmits: 10, VSCores: 1.6, MachineBusy: 0.5})
	if !strings.Contains(got, "A Gbit/s costs routed only 0.50× the ovs-vswitchd CPU it costs L2. These measurements show no cause") {
		t.Errorf("got %q", got)
	}
}

func FuzzParseProcStatTicks(f *testing.F) {
	f.Add("4242 (ovs-vswitchd) S 1 4242 4242 0 -1 4194560 9311 0 0 0 1234 567 0 0 20 0 5 0")
	f.Add("1 (a) b) R")
	f.Fuzz(func(t *testing.T, s string) {
		if _, err := parseProcStatTicks(s); err == nil && !strings.Contains(s, ")") {
			t.Fatalf("accepted %q without a command name", s)
		}
	})
}

func FuzzParseSystemCPU(f *testing.F) {
	f.Add("cpu  100 10 50 800 40 0 5 0 0 0\n")
	f.Fuzz(func(t *testing.T, s string) {
		if busy, total, err := parseSystemCPU(s); err == nil && busy > total {
			t.Fatalf("busy %d > total %d for %q", busy, total, s)
		}
	})
}

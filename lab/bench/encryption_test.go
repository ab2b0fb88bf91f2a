package bench

import (
	"context"
	"fmt"
	"math"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
	"github.com/ovsfabric/ovsfabric/lab/labtest"
)

// encCaseOf is a measured encCase: gbps per trial, constant CPU per run (ovs-vswitchd,
// fabricd, the WireGuard device processes), pings of p50 ms.
func encCaseOf(label string, gbps []float64, vsCores, fdCores, wgCores, busy, p50 float64) *encCase {
	n := len(gbps)
	c := &encCase{label: label, gbps: gbps, retr: make([]float64, n), vsCores: slicesOf(n, vsCores),
		fdCores: slicesOf(n, fdCores), wgCores: slicesOf(n, wgCores), busy: slicesOf(n, busy), mtu: 1450}
	if !math.IsNaN(p50) {
		c.pings = pingResult{RTTs: []float64{p50 - 0.01, p50, p50 + 0.01}, Sent: 3}
		c.rounds = []float64{p50, p50}
	}
	return c
}

func TestEncryptionReport(t *testing.T) {
	for _, tc := range []struct {
		name               string
		unenc, enc         *encCase
		status, latStatus  Status
		measured, latency  string
		limit              string
		tableRows, latRows int
		cpuMeasured        string
	}{
		{
			name:   "missed: the device processes' CPU per Gbit/s dominates",
			unenc:  encCaseOf(labelUnencrypted, []float64{0.5, 0.6, 0.55}, 1.0, 0.01, 0, 0.95, 0.4),
			enc:    encCaseOf(labelEncrypted, []float64{0.055, 0.06, 0.05}, 0.3, 0.01, 0.9, 0.97, 0.6),
			status: Missed, latStatus: Reported,
			measured:  "0.10× (paired trials 0.09×–0.11×; 0.0550 vs 0.550 Gbit/s, 3 trials)",
			latency:   "1.50× (0.600 vs 0.400 ms",
			limit:     "of the difference is ovsfabric-wg's",
			tableRows: 2, latRows: 2, cpuMeasured: "11.98× (22.0 vs 1.84 cores per Gbit/s)",
		},
		{
			name:   "met",
			unenc:  encCaseOf(labelUnencrypted, []float64{1, 1, 1}, 1.0, 0.01, 0, 0.95, 0.4),
			enc:    encCaseOf(labelEncrypted, []float64{0.6, 0.7, 0.65}, 1.0, 0.01, 0.49, 0.95, 0.4),
			status: Met, latStatus: Reported,
			measured:  "0.65× (paired trials 0.60×–0.70×",
			latency:   "1.00×",
			limit:     "Derived: a Gbit/s encrypted costs the daemons",
			tableRows: 2, latRows: 2, cpuMeasured: "2.28×",
		},
		{
			name:   "the encrypted fabric did not start",
			unenc:  encCaseOf(labelUnencrypted, []float64{1, 1, 1}, 1.0, 0.01, 0, 0.95, 0.4),
			enc:    encCaseOf(labelEncrypted, nanSlice(3), math.NaN(), math.NaN(), math.NaN(), math.NaN(), math.NaN()),
			status: NotMeasured, latStatus: NotMeasured,
			measured: "n/a", latency: "n/a", limit: "not measured",
			tableRows: 2, latRows: 2, cpuMeasured: "n/a",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &suite{cfg: DefaultConfig()}
			sec := &Section{}
			tc.enc.impl = "userspace"
			s.encryptionReport(sec, tc.unenc, tc.enc, nil, 2)
			if len(sec.Verdicts) != 3 {
				t.Fatalf("verdicts: %+v", sec.Verdicts)
			}
			v, lat, cpu := sec.Verdicts[0], sec.Verdicts[1], sec.Verdicts[2]
			if v.Status != tc.status || !strings.HasPrefix(v.Measured, tc.measured) {
				t.Errorf("throughput verdict %+v, want %s, measured %q…", v, tc.status, tc.measured)
			}
			if !strings.Contains(v.Limit, tc.limit) {
				t.Errorf("limit %q, want %q in it", v.Limit, tc.limit)
			}
			if lat.Status != tc.latStatus || !strings.HasPrefix(lat.Measured, tc.latency) {
				t.Errorf("latency verdict %+v, want %s, measured %q…", lat, tc.latStatus, tc.latency)
			}
			if tc.latStatus == Reported && !strings.Contains(lat.Limit, "µs per round trip") {
				t.Errorf("latency limit %q", lat.Limit)
			}
			if !strings.HasPrefix(cpu.Measured, tc.cpuMeasured) {
				t.Errorf("CPU verdict %+v, want measured %q…", cpu, tc.cpuMeasured)
			}
			if len(sec.Tables) != 2 || len(sec.Tables[0].Rows) != tc.tableRows || len(sec.Tables[1].Rows) != tc.latRows {
				t.Fatalf("tables: %+v", sec.Tables)
			}
			if !strings.Contains(sec.Method, "userspace") || !strings.Contains(sec.Method, "3 trials") && !strings.Contains(sec.Method, "5 trials") {
				t.Errorf("method %q: no implementation or trial count", sec.Method)
			}
			var b strings.Builder
			rep := &Report{Sections: []*Section{{Key: "encryption", Title: "Encryption", Method: sec.Method, Tables: sec.Tables, Verdicts: sec.Verdicts}}}
			if err := rep.Render(&b); err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(b.String(), "## Encryption") || !strings.Contains(b.String(), "fabricd cores per Gbit/s") {
				t.Errorf("rendered report lacks the section or its CPU column:\n%s", b.String())
			}
		})
	}
}

func TestExplainEncryption(t *testing.T) {
	cost := func(label string, gbps, vs, fd, wg, busy, retr float64) encCost {
		return encCost{pathCost: pathCost{Label: label, Gbps: gbps, VSCores: vs, MachineBusy: busy, Retransmits: retr}, FDCores: fd, WGCores: wg}
	}
	unenc := cost("unenc", 0.5, 1.0, 0.01, 0, 0.95, 10)
	for _, tc := range []struct {
		name       string
		enc, unenc encCost
		impl       string
		want, not  []string
	}{
		{"device processes dominate, CPU bound", cost("enc", 0.05, 0.3, 0.01, 0.9, 0.97, 5), unenc, "userspace",
			[]string{"of the difference is ovsfabric-wg's, the WireGuard device processes", "CPU bounds both", "which alone predicts a ratio of",
				"the two WireGuard device processes kept 0.90 cores busy (of 2)"},
			[]string{"retransmitted", "no cause", "fabricd kept"}},
		{"fabricd dominates (embedded wireguard-go)", cost("enc", 0.05, 0.3, 0.9, 0, 0.97, 5), unenc, "userspace",
			[]string{"of the difference is fabricd's, which embeds wireguard-go", "fabricd kept 0.90 cores busy (of 2)"}, nil},
		{"ovs-vswitchd dominates", cost("enc", 0.1, 1.0, 0.01, 0.1, 0.5, 5), unenc, "userspace",
			[]string{"of the difference is ovs-vswitchd's"}, []string{"CPU bounds", "fabricd kept"}},
		{"kernel WireGuard", cost("enc", 0.1, 0.3, 0.5, 0, 0.5, 5), unenc, "kernel",
			[]string{"kernel WireGuard's own work is not counted in any process's"}, nil},
		{"retransmits", cost("enc", 0.1, 0.3, 0.01, 0.5, 0.5, 500), unenc, "userspace",
			[]string{"retransmitted 50.0× as much"}, nil},
		{"no cause", cost("enc", 0.5, 1.0, 0.01, 0, 0.5, 5), cost("unenc", 0.5, 1.0, 0.01, 0, 0.5, 5), "userspace",
			[]string{"These measurements show no cause"}, []string{"Derived"}},
		{"CPU not measured", cost("enc", 0.1, math.NaN(), math.NaN(), math.NaN(), math.NaN(), 5), unenc, "userspace",
			[]string{"enc 0.100 Gbit/s (CPU not measured)", "no cause"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := explainEncryption(tc.enc, tc.unenc, tc.impl, 2)
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("%q lacks %q", got, w)
				}
			}
			for _, w := range tc.not {
				if strings.Contains(got, w) {
					t.Errorf("%q contains %q", got, w)
				}
			}
		})
	}
}

func TestSig3(t *testing.T) {
	for _, tc := range []struct {
		v    float64
		want string
	}{
		{0.0553, "0.0553"}, {0.55, "0.550"}, {1.234, "1.23"}, {12.34, "12.3"}, {123.4, "123"}, {0, "0"}, {math.NaN(), "n/a"},
	} {
		if got := sig3(tc.v); got != tc.want {
			t.Errorf("sig3(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
}

func TestAloneReport(t *testing.T) {
	cases := newAloneCases(2)
	set := func(c *aloneCase, g, cores float64) { c.gbps, c.wgCores = []float64{g, g}, []float64{cores, cores} }
	set(cases[0], 0.3, 0.9)
	set(cases[1], 1.2, 1.2)
	set(cases[2], 2.4, 1.2)
	tab, why := aloneReport(cases)
	if len(tab.Rows) != 3 || tab.Rows[1][4] != "4.00×" || tab.Rows[2][4] != "8.00×" || tab.Rows[0][3] != "3.00" {
		t.Errorf("table %+v", tab.Rows)
	}
	for _, w := range []string{"0.300 Gbit/s of single packets at 3.00 cores per Gbit/s", "1.20 Gbit/s at 1.00", "(4.00×)", "a tap without NAPI"} {
		if !strings.Contains(why, w) {
			t.Errorf("%q lacks %q", why, w)
		}
	}
	// Not measured: no sentence.
	if _, why := aloneReport(newAloneCases(2)); why != "" {
		t.Errorf("unmeasured cases explain %q", why)
	}
}

// TestWireGuardAlone runs the measurement of wireguard-go alone briefly (one trial of 2 s per
// case) with freshly built binaries: every case moves data, and nothing is left behind.
func TestWireGuardAlone(t *testing.T) {
	labtest.Require(t, "the wireguard-go alone measurement (namespaces, TUN, iperf3)", "ip", "iperf3", "ethtool", "go")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cfg := DefaultConfig()
	cfg.Bin = t.TempDir()
	if err := fabriclab.BuildBinaries(ctx, cfg.Bin); err != nil {
		t.Fatal(err)
	}
	var out strings.Builder
	s := &suite{cfg: cfg, start: time.Now(), out: &out, iperfSecs: 2}
	cases := newAloneCases(1)
	id := fmt.Sprintf("%06x", time.Now().UnixNano()&0xffffff)
	if err := s.wireguardAlone(ctx, id, cases, 1440); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	t.Logf("\n%s", out.String())
	for _, c := range cases {
		if !(c.gbps[0] > 0) || !(c.wgCores[0] > 0) {
			t.Errorf("%s: %v Gbit/s, %v cores", c.label, c.gbps[0], c.wgCores[0])
		}
	}
	if b, _ := exec.Command("ip", "netns", "list").Output(); strings.Contains(string(b), "ovsfab-wgx"+id) {
		t.Errorf("namespaces left:\n%s", b)
	}
}

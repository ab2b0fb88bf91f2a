package bench

import (
	"fmt"
	"math"
	"strings"
)

// pathCost is what one data path measured in a throughput case: medians over the trials.
type pathCost struct {
	Label string
	Gbps  float64
	// Retransmits is the sender's TCP retransmission count per run.
	Retransmits float64
	// VSCores is the CPU time of the lab's ovs-vswitchd processes per wall-clock second
	// during the run (1 = one core busy).
	VSCores float64
	// MachineBusy is the fraction of the machine's CPU time that was busy during the run.
	MachineBusy float64
}

// coresPerGbps is ovs-vswitchd's CPU cost of one Gbit/s on the path.
func (c pathCost) coresPerGbps() float64 { return c.VSCores / c.Gbps }

func (c pathCost) describe() string {
	s := fmt.Sprintf("%s %s Gbit/s, %s retransmits", c.Label, num(c.Gbps), num(c.Retransmits))
	if !math.IsNaN(c.VSCores) {
		s += fmt.Sprintf(", ovs-vswitchd %s cores busy = %s per Gbit/s", num(c.VSCores), num(c.coresPerGbps()))
	}
	if !math.IsNaN(c.MachineBusy) {
		s += fmt.Sprintf(", machine CPU %.0f%% busy", 100*c.MachineBusy)
	}
	return s
}

// Thresholds of explainThroughput.
const (
	// noOVS is ovs-vswitchd CPU per Gbit/s below which a path counts as not going through it
	// (ovs-vswitchd's own housekeeping while idle).
	noOVS = 0.02
	// cpuBound is the busy fraction of the machine's CPU from which CPU bounds a figure.
	cpuBound = 0.9
)

// explainThroughput says what limits path p against base, derived only from what the run
// measured (CPU of ovs-vswitchd per Gbit/s, the machine's CPU, TCP retransmits); when the
// measurements show no cause it says so and marks what remains as a hypothesis.
func explainThroughput(p, base pathCost) string {
	var causes []string
	seen := ""
	pc, bc := p.coresPerGbps(), base.coresPerGbps()
	switch {
	case math.IsNaN(pc) || math.IsNaN(bc):
	case bc < noOVS && pc >= noOVS:
		causes = append(causes, fmt.Sprintf("%s does not go through ovs-vswitchd (%s cores per Gbit/s), while every "+
			"packet of %s does, at %s cores per Gbit/s", base.Label, num(bc), p.Label, num(pc)))
	case pc > 1.1*bc:
		causes = append(causes, fmt.Sprintf("a Gbit/s costs %s %s× the ovs-vswitchd CPU it costs %s: more per-packet work "+
			"in ovs-vswitchd", p.Label, num(pc/bc), base.Label))
	case pc < bc/1.1:
		// Not a cause: what the measurements say about the per-packet cost.
		seen = fmt.Sprintf("A Gbit/s costs %s only %s× the ovs-vswitchd CPU it costs %s. ", p.Label, num(pc/bc), base.Label)
	}
	if p.MachineBusy >= cpuBound {
		causes = append(causes, fmt.Sprintf("the machine's CPU was %.0f%% busy during %s's runs: CPU, not a link, "+
			"bounds it", 100*p.MachineBusy, p.Label))
	}
	if p.Retransmits >= 100 && p.Retransmits > 2*base.Retransmits {
		causes = append(causes, fmt.Sprintf("%s retransmitted %s× as much as %s: packets were dropped on its path",
			p.Label, num(p.Retransmits/math.Max(base.Retransmits, 1)), base.Label))
	}
	out := "measured (medians): " + p.describe() + "; " + base.describe() + ". " + seen
	if len(causes) == 0 {
		what := "ovs-vswitchd's CPU and the machine's were not measured, retransmits show no excess"
		if !math.IsNaN(pc) && !math.IsNaN(bc) {
			what = "ovs-vswitchd CPU per Gbit/s not higher, the machine's CPU not saturated, no excess of retransmits"
		}
		return out + "These measurements show no cause (" + what + "); hypothesis, not measured: scheduling of the " +
			"processes on the shared cores."
	}
	return out + "Derived: " + strings.Join(causes, "; ") + "."
}

// explainLatency says what the run measured about a latency target (p's p50 ≤ want × base's
// p50) that was missed: the two p50s and, from the paired per-round ratios, in how many rounds
// the target held. The cause is not measured by the suite and is marked as a hypothesis.
func explainLatency(p, base string, pP50, baseP50 float64, roundRatios []float64, want float64, hypothesis string) string {
	out := fmt.Sprintf("measured: p50 %s ms on %s vs %s ms on %s (%+.0f µs per round trip)", fmt3(pP50), p, fmt3(baseP50), base, 1000*(pP50-baseP50))
	if sm := Summarize(roundRatios); sm.N > 0 {
		held := 0
		for _, r := range roundRatios {
			if !math.IsNaN(r) && r <= want {
				held++
			}
		}
		out += fmt.Sprintf("; paired round by round the p50 ratio ranged %s–%s and met the target in %d of %d rounds",
			ratio(sm.Min), ratio(sm.Max), held, sm.N)
	}
	return out + ". Hypothesis, not measured by the suite: " + hypothesis
}

package bench

import (
	"fmt"
	"math"
	"strings"
	"time"
)

// peerScaleReport writes the cells' tables and the targets (flow mode at the largest
// size: no-change reconcile < 20 ms, a new peer usable < 1 s, RSS < 100 MiB).
func (s *suite) peerScaleReport(sec *Section, cells []*peerCell) {
	sec.Tables = append(sec.Tables, peerResultTable(cells), peerRealTable(cells), peerCostTable(cells))
	for _, c := range cells {
		if c.err != nil && c.err.Error() != flowModeNA {
			sec.Notes = append(sec.Notes, fmt.Sprintf("%s, %d peers: %s", c.mode, c.peers, oneLine(c.err.Error())))
		}
		if c.changes > 0 {
			sec.Notes = append(sec.Notes, fmt.Sprintf("%s, %d peers: fabricd logged %d data plane changes in the steady window, so not every reconcile timed there was a no-change one.", c.mode, c.peers, c.changes))
		}
	}
	sec.Verdicts = append(sec.Verdicts, peerVerdicts(cells)...)
}

// peerResultTable has a row per cell: convergence, no-change reconcile, new peer, RSS.
func peerResultTable(cells []*peerCell) Table {
	t := Table{Header: []string{"tunnel mode", "peers", "swarm joined s", "fabricd applied all s", "data plane has all s",
		"no-change reconcile ms, woken by an event: median (min–max, n)", "resync pass (also dumps the flows) ms: median (min–max, n)", "new peer usable ms: median (min–max)", "fabricd RSS MiB: median (max)"}}
	for _, c := range cells {
		if c.err != nil && c.applied == 0 && len(c.rss) == 0 {
			t.AddRow(c.mode, fmt.Sprint(c.peers), "error: "+oneLine(c.err.Error()))
			continue
		}
		rc, nw, rss := Summarize(c.reconcileMs), Summarize(c.newUsable), Summarize(c.rss)
		rs := Summarize(c.resyncMs)
		reconcile := fmt.Sprintf("%s (%s, %d)", num(rc.Median), spread(rc), rc.N)
		resync := fmt.Sprintf("%s (%s, %d)", num(rs.Median), spread(rs), rs.N)
		if c.changes > 0 {
			reconcile += fmt.Sprintf(" — not all no-change: %d changes logged", c.changes)
		}
		t.AddRow(c.mode, fmt.Sprint(c.peers), secs(c.swarmReady, "not all joined"), c.convergence(c.applied), c.convergence(c.dataPlane),
			reconcile, resync,
			fmt.Sprintf("%s (%s)", num(nw.Median), spread(nw)),
			fmt.Sprintf("%s (%s)", num(rss.Median), num(rss.Max)))
	}
	return t
}

// peerRealTable has a row per cell that got as far as a real host joining.
func peerRealTable(cells []*peerCell) Table {
	t := Table{Caption: "A real host joining the filled fabric (s from the start of its fabricd):",
		Header: []string{"tunnel mode", "peers", "its API answers", "its container attached", "first reply from the first host's container"}}
	for _, c := range cells {
		if c.realAPI == 0 && c.realErr == nil {
			continue
		}
		row := []string{c.mode, fmt.Sprint(c.peers), secs(c.realAPI, "—"), secs(c.realAttach, "—"), secs(c.realReply, "—")}
		if c.realErr != nil {
			row[len(row)-1] = "error: " + oneLine(c.realErr.Error())
		}
		t.AddRow(row...)
	}
	return t
}

// convergence formats a convergence milestone: seconds, or how far the cell got.
func (c *peerCell) convergence(d time.Duration) string {
	if d > 0 {
		return num(d.Seconds())
	}
	return fmt.Sprintf("not within %s: %d of %d", c.limit, c.reached, c.peers)
}

// secs formats d in seconds, or none when it is zero.
func secs(d time.Duration, none string) string {
	if d <= 0 {
		return none
	}
	return num(d.Seconds())
}

// peerCostTable has a row per measured cell: what the fabric cost, the inputs of "what
// limits it".
func peerCostTable(cells []*peerCell) Table {
	t := Table{Caption: "What it cost (CPU in cores: CPU seconds per second; convergence from the swarm's start until the data plane had every peer):",
		Header: []string{"tunnel mode", "peers", "CPU in convergence: fabricd / ovs-vswitchd / swarm", "machine busy", "CPU in the steady window: fabricd / ovs-vswitchd",
			"ovs-vswitchd RSS MiB", "br-int ports", "br-int flows", "new peer ms: route / data path (medians)"}}
	for _, c := range cells {
		if c.err != nil && c.applied == 0 && len(c.rss) == 0 {
			continue
		}
		t.AddRow(c.mode, fmt.Sprint(c.peers),
			fmt.Sprintf("%s / %s / %s", num(c.cpuFabricd), num(c.cpuVSwitchd), num(c.cpuSwarm)),
			pct(c.machineBusy),
			fmt.Sprintf("%s / %s", num(c.winFabricd), num(c.winVSwitchd)),
			num(c.vsRSS), fmt.Sprint(c.ports), fmt.Sprint(c.flows),
			fmt.Sprintf("%s / %s", num(Median(c.newRoute)), num(Median(c.newOVS))))
	}
	return t
}

func pct(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.0f%%", 100*v)
}

// peerCellAt finds the cell of mode at peers.
func peerCellAt(cells []*peerCell, mode string, peers int) *peerCell {
	for _, c := range cells {
		if c.mode == mode && c.peers == peers {
			return c
		}
	}
	return nil
}

// peerVerdicts are the three targets for flow mode at the largest size, and the
// convergence of both modes there (reported).
func peerVerdicts(cells []*peerCell) []Verdict {
	largest := 0
	for _, c := range cells {
		largest = max(largest, c.peers)
	}
	if largest == 0 {
		return nil
	}
	flow, per := peerCellAt(cells, modeFlow, largest), peerCellAt(cells, modePerPeer, largest)
	full := flow != nil && flow.nearlyFull()
	// short says at how many peers a figure was measured when the view fell short.
	short := ""
	if full && flow.reached < flow.peers {
		short = fmt.Sprintf(", at %d of %d peers", flow.reached, flow.peers)
	}
	notMeasured := func(v Verdict) Verdict {
		v.Measured, v.Status = "n/a", NotMeasured
		switch {
		case flow == nil:
			v.Limit = "no flow-mode cell ran"
		case !full && flow.err != nil:
			v.Limit = oneLine(flow.err.Error())
		case !full:
			v.Limit = fmt.Sprintf("fabricd had only %d of %d peers (the targets count at ≥ 99%%)", flow.reached, flow.peers)
		default:
			v.Limit = "no sample (see above)"
		}
		return v
	}
	at := fmt.Sprintf("flow mode, %d peers: ", largest)
	var out []Verdict

	// No-change reconcile.
	v := Verdict{Target: at + "no-change reconcile < 20 ms"}
	if rc := Summarize(cellField(flow, func(c *peerCell) []float64 { return c.reconcileMs })); full && rc.N > 0 {
		v.Measured = fmt.Sprintf("%s ms median (%s, %d reconciles%s)", num(rc.Median), spread(rc), rc.N, short)
		v.Status = Check(rc.Median, rc.Median < 20)
		if v.Status == Missed {
			v.Limit = reconcileLimit(cells, flow)
		}
	} else {
		v = notMeasured(v)
	}
	out = append(out, v)

	// The periodic resync pass (reported).
	if rs := Summarize(cellField(flow, func(c *peerCell) []float64 { return c.resyncMs })); full && rs.N > 0 {
		out = append(out, Verdict{Target: at + "the periodic resync pass, which also dumps and compares the bridge's flows (reported)",
			Measured: fmt.Sprintf("%s ms median (%s, %d of them%s)", num(rs.Median), spread(rs), rs.N, short), Status: Reported,
			Limit: fmt.Sprintf("measured: the dump and comparison of %d flows, once every --resync", flow.flows)})
	}

	// A new peer usable.
	v = Verdict{Target: at + "a new peer usable < 1 s (synthetic peer: route and flow in place)"}
	if nw := Summarize(cellField(flow, func(c *peerCell) []float64 { return c.newUsable })); full && nw.N > 0 {
		v.Measured = fmt.Sprintf("%s ms median (%s, %d peers%s)", num(nw.Median), spread(nw), nw.N, short)
		v.Status = Check(nw.Median, nw.Median < 1000)
		if v.Status == Missed {
			v.Limit = newPeerLimit(flow)
		}
	} else {
		v = notMeasured(v)
	}
	out = append(out, v)

	// RSS.
	v = Verdict{Target: at + "fabricd RSS < 100 MiB"}
	if rss := Summarize(cellField(flow, func(c *peerCell) []float64 { return c.rss })); full && rss.N > 0 {
		v.Measured = fmt.Sprintf("max %s MiB (median %s%s)", num(rss.Max), num(rss.Median), short)
		v.Status = Check(rss.Max, rss.Max < 100)
		if v.Status == Missed {
			v.Limit = rssLimit(cells, flow)
		}
	} else {
		v = notMeasured(v)
	}
	out = append(out, v)

	// The real host (reported).
	if flow != nil && (flow.realReply > 0 || flow.realErr != nil) {
		v := Verdict{Target: at + "a real host joining, until its container has a reply from the first host's (reported)", Status: Reported}
		if flow.realReply > 0 {
			v.Measured = fmt.Sprintf("%s s (its API after %s s, its container attached after %s s)", num(flow.realReply.Seconds()), num(flow.realAPI.Seconds()), num(flow.realAttach.Seconds()))
			v.Limit = "the new host's fabricd learns and plans all the peers before its first reconcile is done"
		} else {
			v.Measured, v.Status, v.Limit = "n/a", NotMeasured, oneLine(flow.realErr.Error())
		}
		out = append(out, v)
	}

	// Convergence, both modes (reported).
	for _, c := range []*peerCell{per, flow} {
		if c == nil {
			continue
		}
		v := Verdict{Target: fmt.Sprintf("%s mode, %d peers: convergence (reported)", c.mode, c.peers), Status: Reported}
		switch {
		case c.dataPlane > 0:
			v.Measured = fmt.Sprintf("data plane has all after %s s (fabricd applied all after %s s)", num(c.dataPlane.Seconds()), num(c.applied.Seconds()))
			v.Limit = convergenceLimit(c)
		case c.reached > 0:
			v.Measured = c.convergence(0)
			v.Limit = convergenceLimit(c)
		default:
			v.Measured, v.Status = "n/a", NotMeasured
			if c.err != nil {
				v.Limit = oneLine(c.err.Error())
			}
		}
		out = append(out, v)
	}
	return out
}

func cellField(c *peerCell, f func(*peerCell) []float64) []float64 {
	if c == nil {
		return nil
	}
	return f(c)
}

// reconcileLimit explains a slow no-change reconcile from the cells: how it grew with the
// peers, and what fabricd spent in the window.
func reconcileLimit(cells []*peerCell, c *peerCell) string {
	parts := []string{fmt.Sprintf("measured: %s", growth(cells, c.mode, func(c *peerCell) float64 { return Median(c.reconcileMs) }, "ms"))}
	if !math.IsNaN(c.winFabricd) {
		parts = append(parts, fmt.Sprintf("fabricd used %s cores in the steady window (%d reconciles in %s, one a second woken by the bench)", num(c.winFabricd), c.reconciles, peerWindow))
	}
	parts = append(parts, "hypothesis: a pass is O(peers) even when nothing changes (the gossip view copied and sorted, the plan, "+
		"the OVSDB cache read, the routes and flows compared)")
	return strings.Join(parts, "; ")
}

// newPeerLimit names the later of the new peer's two steps.
func newPeerLimit(c *peerCell) string {
	r, o := Median(c.newRoute), Median(c.newOVS)
	later := "the flow toward it"
	if r > o {
		later = "the route"
	}
	return fmt.Sprintf("measured: the route came after %s ms, the flow after %s ms (medians); %s came last; fabricd's no-change reconcile at this size takes %s ms",
		num(r), num(o), later, num(Median(c.reconcileMs)))
}

// rssLimit says how RSS grew with the peers in the cell's mode.
func rssLimit(cells []*peerCell, c *peerCell) string {
	s := fmt.Sprintf("measured: median %s; hypothesis: per-peer state (memberlist's node table, the view and plan, the libovsdb cache, the flows fabricd keeps to compare)",
		growth(cells, c.mode, func(c *peerCell) float64 { return Median(c.rss) }, "MiB"))
	if sm := Summarize(c.rss); sm.Max > 1.3*sm.Median {
		s += fmt.Sprintf("; the max is %s× the median, a transient peak (hypothesis: the periodic resync pass, which dumps and parses all %d flows",
			num(sm.Max/sm.Median), c.flows)
		if rs := Summarize(c.resyncMs); rs.N > 0 {
			s += fmt.Sprintf(" and took %s ms median here", num(rs.Median))
		}
		s += ", and the garbage it leaves until the next collection)"
	}
	return s
}

// convergenceLimit names the busiest process in convergence and the swarm's share of it.
func convergenceLimit(c *peerCell) string {
	if c.cpuFabricd == 0 && c.cpuVSwitchd == 0 && c.cpuSwarm == 0 {
		if c.err != nil {
			return "not measured: " + oneLine(c.err.Error())
		}
		return "not measured"
	}
	busiest, cores := "fabricd", c.cpuFabricd
	if c.cpuVSwitchd > cores {
		busiest, cores = "ovs-vswitchd", c.cpuVSwitchd
	}
	if c.cpuSwarm > cores {
		busiest, cores = "the swarm (synthetic members joining)", c.cpuSwarm
	}
	s := fmt.Sprintf("measured: the busiest process was %s (%s cores); the machine was %s busy", busiest, num(cores), pct(c.machineBusy))
	switch {
	case c.swarmReady > 0 && c.applied > 0:
		s += fmt.Sprintf("; the synthetic members had all joined after %s s and fabricd had applied the last %s s later",
			num(c.swarmReady.Seconds()), num(max(0, (c.applied-c.swarmReady).Seconds())))
	case c.swarmReady > 0:
		s += fmt.Sprintf("; the synthetic members' joins took %s s", num(c.swarmReady.Seconds()))
	default:
		s += "; the synthetic members had not all joined yet"
	}
	return s
}

// growth describes how f grew from the smallest measured cell of mode to the largest:
// "4.1 ms at 100 peers → 31 ms at 5000 (0.0055 ms per peer)".
func growth(cells []*peerCell, mode string, f func(*peerCell) float64, unit string) string {
	var lo, hi *peerCell
	for _, c := range cells {
		if c.mode != mode || math.IsNaN(f(c)) {
			continue
		}
		if lo == nil || c.peers < lo.peers {
			lo = c
		}
		if hi == nil || c.peers > hi.peers {
			hi = c
		}
	}
	switch {
	case hi == nil:
		return "no figure"
	case lo == hi:
		return fmt.Sprintf("%s %s at %d peers", num(f(hi)), unit, hi.peers)
	}
	per := (f(hi) - f(lo)) / float64(hi.peers-lo.peers)
	return fmt.Sprintf("%s %s at %d peers → %s at %d (%.3g %s per peer)", num(f(lo)), unit, lo.peers, num(f(hi)), hi.peers, per, unit)
}

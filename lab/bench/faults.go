package bench

import (
	"context"
	"fmt"
	"math"
	"time"

	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

// faultStream is the traffic the fault figures are read from: a ping every 10 ms.
const faultStream = 10 * time.Millisecond

// partitionFor is how long the partition trials keep the underlay cut: past failure
// detection (about 2 s).
const partitionFor = 5 * time.Second

// faultFigures are the fault section's measurements, kept for its report.
type faultFigures struct {
	// healData is, per partition trial, when traffic through the cut host flowed again after
	// the underlay was restored; healView when every host saw every other alive again.
	healData, healView []float64
	// vswitchd is, per restart trial, the longest outage through the restarted host;
	// vswitchdRestart how long the restart itself took (stop until the new ovs-vswitchd had
	// its br-phy up), and vswitchdBack how long after that traffic flowed again (fabricd
	// noticing it and reprogramming the bridge, and the first replies).
	vswitchd, vswitchdRestart, vswitchdBack []float64
	// leaks counts the host-state items that differ after the churn (NaN: not measured), and
	// addrLeaks the attaches that did not get the address the previous one freed.
	leaks, addrLeaks float64
	churnTook        time.Duration
}

// faults measures recovery from faults on one 3-host VXLAN fabric (plus a fourth host for the
// churn): partition heal time, the outage of an ovs-vswitchd restart, and the leak count
// after join/leave and attach/detach churn. The lab tests e2e/fault_*_test.go assert the
// same scenarios in full; here they are timed over several trials.
func (s *suite) faults(ctx context.Context, secs map[string]*Section) {
	sec := secs["faults"]
	fig := faultFigures{leaks: math.NaN(), addrLeaks: math.NaN()}
	defer func() { s.faultReport(sec, fig) }()
	sec.Method = fmt.Sprintf("A 3-host VXLAN fabric (%s; one container per host, h1–h3) with counted pings every %s "+
		"between containers. **Partition heal** (%d trials): h1's underlay link is cut (the lab's CutUnderlay) for %s, "+
		"past failure detection, then restored; measured from the restore to the first reply through h1 after the "+
		"longest gap (data path) and until every fabricd reports every other host alive with a tunnel (membership). "+
		"**ovs-vswitchd restart** (%d trials, SIGTERM and kill -9 in turn): h1's ovs-vswitchd is stopped and started "+
		"again without any write to OVSDB (the lab's RestartVSwitchd), as an operator would; the figure is the longest "+
		"time between two replies (less one interval) of the pings c2→c1 and c1→c3, split into the restart itself (from the "+
		"stop until the new ovs-vswitchd has its br-phy up) and the time from then until the replies came back. **Churn**: a fourth host leaves "+
		"and rejoins 20 times (`fabricctl leave`, SIGTERM, kill -9 in turn, each followed by a restart) while 50 "+
		"containers are attached and detached one after the other on h2; the leak count is the number of host-state "+
		"items (OVSDB ports, links, addresses, routes of protocol 147, the nftables table, fabricctl ls and peers; "+
		"tunnel UUIDs and OpenFlow numbers aside) that differ from before the churn on any host once the fabric has "+
		"settled, plus the attaches that did not get the address the previous one freed.",
		s.mainPipelineName(), faultStream, s.cfg.FaultTrials, partitionFor, s.cfg.FaultTrials)
	l, err := s.up(ctx, "flt", 3, false)
	if err != nil {
		sec.Err = err
		return
	}
	defer s.down(l)
	f := fabriclab.New(l, fabriclab.Options{Bin: s.cfg.Bin, Tunnel: "vxlan", Extra: s.pipelineFlags(s.mainPipeline())})
	cs, err := s.fabricWithContainers(ctx, f, l.Hosts)
	if err != nil {
		sec.Err = err
		return
	}
	for i := range s.cfg.FaultTrials {
		data, view, err := s.partitionTrial(ctx, l, f, cs)
		if err != nil {
			sec.Err = fmt.Errorf("partition trial %d: %w", i+1, err)
			return
		}
		fig.healData, fig.healView = append(fig.healData, data.Seconds()), append(fig.healView, view.Seconds())
		s.logf("faults", "partition %d/%d: data path back %s, membership healed %s after the restore", i+1, s.cfg.FaultTrials,
			data.Round(time.Millisecond), view.Round(time.Millisecond))
	}
	for i := range s.cfg.FaultTrials {
		outage, restart, back, err := s.vswitchdTrial(ctx, l.Hosts[0], f, cs, i%2 == 1)
		if err != nil {
			sec.Err = fmt.Errorf("ovs-vswitchd trial %d: %w", i+1, err)
			return
		}
		fig.vswitchd = append(fig.vswitchd, outage.Seconds())
		fig.vswitchdRestart = append(fig.vswitchdRestart, restart.Seconds())
		fig.vswitchdBack = append(fig.vswitchdBack, back.Seconds())
		s.logf("faults", "ovs-vswitchd restart %d/%d: outage %s (restart itself %s, traffic back %s after it)", i+1, s.cfg.FaultTrials,
			outage.Round(time.Millisecond), restart.Round(time.Millisecond), back.Round(time.Millisecond))
	}
	if err := s.churn(ctx, l, f, &fig); err != nil {
		sec.Err = fmt.Errorf("churn: %w", err)
	}
}

// partitionTrial cuts h1's underlay for partitionFor and returns, from the restore, when
// traffic through h1 flowed again and when the membership had healed.
func (s *suite) partitionTrial(ctx context.Context, l *lab.Lab, f *fabriclab.Fabric, cs []*fabriclab.Container) (data, view time.Duration, err error) {
	if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
		return 0, 0, err
	}
	st, err := fabriclab.StartStream(ctx, "c2->c1", cs[1].NetNS, cs[0].IP, faultStream)
	if err != nil {
		return 0, 0, err
	}
	defer func() { _, _ = st.Stop() }()
	if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
		return 0, 0, err
	}
	if err := l.CutUnderlay(ctx, l.Hosts[0]); err != nil {
		return 0, 0, err
	}
	serr := sleepCtx(ctx, partitionFor)
	if err := l.RestoreUnderlay(context.WithoutCancel(ctx), l.Hosts[0]); err != nil {
		return 0, 0, err
	}
	if serr != nil {
		return 0, 0, serr
	}
	restored := time.Now()
	if view, err = f.WaitConverged(ctx, time.Minute); err != nil {
		return 0, 0, err
	}
	if err := fabriclab.Reach(ctx, cs[1].NetNS, cs[0].IP, 30*time.Second); err != nil {
		return 0, 0, err
	}
	if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
		return 0, 0, err
	}
	r, err := st.Stop()
	if err != nil {
		return 0, 0, err
	}
	if r.Recovered.IsZero() {
		return 0, 0, fmt.Errorf("no reply through h1 after the partition: %s", r)
	}
	return max(r.Recovered.Sub(restored), 0), view, nil
}

// vswitchdTrial restarts ovs-vswitchd on h and returns the longest outage of the pings
// through it (c2→c1 and c1→c3), how long the restart itself took (RestartVSwitchd: stop,
// start, br-phy up), and how long after it the traffic flowed again.
func (s *suite) vswitchdTrial(ctx context.Context, h *lab.Host, f *fabriclab.Fabric, cs []*fabriclab.Container, kill bool) (outage, restart, back time.Duration, err error) {
	if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
		return 0, 0, 0, err
	}
	var streams []*fabriclab.Stream
	defer func() {
		for _, st := range streams {
			_, _ = st.Stop()
		}
	}()
	for _, p := range [][2]*fabriclab.Container{{cs[1], cs[0]}, {cs[0], cs[2]}} {
		st, err := fabriclab.StartStream(ctx, p[0].Name+"->"+p[1].Name, p[0].NetNS, p[1].IP, faultStream)
		if err != nil {
			return 0, 0, 0, err
		}
		streams = append(streams, st)
	}
	if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
		return 0, 0, 0, err
	}
	begin := time.Now()
	if err := h.RestartVSwitchd(ctx, kill); err != nil {
		return 0, 0, 0, err
	}
	restarted := time.Now()
	restart = restarted.Sub(begin)
	for _, p := range [][2]*fabriclab.Container{{cs[1], cs[0]}, {cs[0], cs[2]}} {
		if err := fabriclab.Reach(ctx, p[0].NetNS, p[1].IP, 60*time.Second); err != nil {
			return 0, 0, 0, err
		}
	}
	if err := sleepCtx(ctx, time.Second); err != nil {
		return 0, 0, 0, err
	}
	for _, st := range streams {
		r, err := st.Stop()
		if err != nil {
			return 0, 0, 0, err
		}
		outage = max(outage, r.Outage)
		if !r.Recovered.IsZero() {
			back = max(back, r.Recovered.Sub(restarted))
		}
	}
	return outage, restart, back, nil
}

// churn runs the join/leave and attach/detach cycles and counts what leaked.
func (s *suite) churn(ctx context.Context, l *lab.Lab, f *fabriclab.Fabric, fig *faultFigures) error {
	h4, err := l.AddHost(ctx)
	if err != nil {
		return err
	}
	if _, err := f.Start(ctx, h4); err != nil {
		return err
	}
	if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
		return err
	}
	before, err := f.Snapshots(ctx)
	if err != nil {
		return err
	}
	type attachResult struct {
		ips []string
		err error
	}
	done := make(chan attachResult, 1)
	go func() {
		ips, err := f.AttachDetachCycles(ctx, f.Node(l.Hosts[1].Name), 50)
		done <- attachResult{ips, err}
	}()
	begin := time.Now()
	jerr := f.JoinLeaveCycles(ctx, h4, f.Node(h4.Name).Args, 20)
	ar := <-done
	fig.churnTook = time.Since(begin)
	if jerr != nil {
		return jerr
	}
	if ar.err != nil {
		return ar.err
	}
	addr := 0
	for _, ip := range ar.ips {
		if ip != ar.ips[0] {
			addr++
		}
	}
	_, diff := f.WaitSame(ctx, before, true, time.Minute)
	fig.leaks, fig.addrLeaks = float64(fabriclab.LeakCount(diff)), float64(addr)
	s.logf("faults", "churn done in %s: %d host-state items differ, %d attaches missed the freed address", fig.churnTook.Round(time.Millisecond), int(fig.leaks), addr)
	if diff != "" {
		s.logf("faults", "churn difference:\n%s", diff)
	}
	return nil
}

// faultReport turns the figures into the section's tables and verdicts.
func (s *suite) faultReport(sec *Section, fig faultFigures) {
	t := Table{Header: []string{"figure", "median s", "min–max s", "trials"}}
	for _, r := range []struct {
		name string
		xs   []float64
	}{
		{"partition heal: traffic through the cut host flows again (from the restore)", fig.healData},
		{"partition heal: every host sees every other alive (from the restore)", fig.healView},
		{"ovs-vswitchd restart: outage through the restarted host", fig.vswitchd},
		{"ovs-vswitchd restart: the restart itself (stop, start, br-phy up)", fig.vswitchdRestart},
		{"ovs-vswitchd restart: traffic flowing again after the new ovs-vswitchd was up", fig.vswitchdBack},
	} {
		sm := Summarize(r.xs)
		t.AddRow(r.name, num(sm.Median), spread(sm), fmt.Sprint(sm.N))
	}
	sec.Tables = append(sec.Tables, t)
	heal := Median(fig.healView)
	hv := Verdict{Target: "partition heal time (every host sees every other alive)", Measured: fmt.Sprintf("%s s (median; data path %s s)", num(heal), num(Median(fig.healData))), Status: Reported}
	if math.IsNaN(heal) {
		hv.Status, hv.Measured, hv.Limit = NotMeasured, "n/a", "no trial completed"
	} else {
		hv.Limit = "the data path does not wait for gossip (tunnels of a dead peer stay for --dead-peer-grace); the membership " +
			"heals when memberlist hears the cut host refute its death, which both sides must learn of"
	}
	med := Median(fig.vswitchd)
	vv := Verdict{Target: "ovs-vswitchd restart outage, median < 300 ms", Measured: fmt.Sprintf("%s ms (%d trials)", num(med*1000), len(fig.vswitchd)), Status: Check(med, med < 0.3)}
	switch vv.Status {
	case NotMeasured:
		vv.Measured, vv.Limit = "n/a", "no trial completed"
	case Missed:
		vv.Limit = fmt.Sprintf("measured: of the median outage, the restart itself (ovs-vswitchd stopped, started, its br-phy up) took %s ms "+
			"(median) and traffic flowed %s ms (median) after it: fabricd noticing the new management socket (inotify), "+
			"one bundle of the whole pipeline, and the first replies", num(Median(fig.vswitchdRestart)*1000), num(Median(fig.vswitchdBack)*1000))
	}
	leaks := fig.leaks + fig.addrLeaks
	lv := Verdict{Target: "churn leak count: zero", Measured: fmt.Sprintf("%.0f", leaks), Status: Check(leaks, leaks == 0)}
	switch lv.Status {
	case NotMeasured:
		lv.Measured, lv.Limit = "n/a", "the churn did not complete"
	case Missed:
		lv.Limit = fmt.Sprintf("%.0f host-state items differ, %.0f attaches missed the freed address (see the run's log)", fig.leaks, fig.addrLeaks)
	}
	sec.Verdicts = append(sec.Verdicts, hv, vv, lv)
	if fig.churnTook > 0 {
		sec.Notes = append(sec.Notes, fmt.Sprintf("The 20 join/leave cycles ran alongside the 50 attach/detach cycles in %s.", fig.churnTook.Round(time.Second)))
	}
}

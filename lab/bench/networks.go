package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
	"github.com/ovsfabric/ovsfabric/network"
)

// Labels of the paths of the networks throughput section.
const (
	labelOneNet   = "single-network fabric (default only)"
	labelManyNets = "one network among %d"
	labelIdle     = "default only, %d idle containers per host (control)"
)

// netSubnet is the /16 of the i-th network a section creates (i from 0): 10.(base+i).0.0/16,
// clear of the cluster CIDR (10.244.0.0/16) and of the lab's underlay (172.30.0.0/24).
func netSubnet(base, i int) string { return fmt.Sprintf("10.%d.0.0/16", base+i) }

// attachUntil attaches the netns at path to network on n, retrying every interval until it
// succeeds or timeout passes: a host answers 409 until it has learnt the network (by gossip)
// and claimed its slice of it.
func attachUntil(ctx context.Context, n *fabriclab.Node, path, network string, interval, timeout time.Duration) (api.Attachment, error) {
	deadline := time.Now().Add(timeout)
	for {
		a, err := n.Client().Attach(ctx, api.AttachRequest{Target: path, Network: network})
		if err == nil {
			return a, nil
		}
		if ctx.Err() != nil {
			return a, ctx.Err()
		}
		if time.Now().After(deadline) {
			return a, fmt.Errorf("attach %s to %s on %s: %w", filepath.Base(path), network, n.Host.Name, err)
		}
		if err := sleepCtx(ctx, interval); err != nil {
			return a, err
		}
	}
}

// addrOnly is an attachment's address without its prefix length.
func addrOnly(a api.Attachment) string {
	ip, _, _ := strings.Cut(a.IP, "/")
	return ip
}

// brIntFlows counts the OpenFlow flows on h's br-int (ovsfabric's and the bridge's own).
func brIntFlows(ctx context.Context, h *lab.Host) (int, error) {
	out, err := h.Ofctl(ctx, "dump-flows", "br-int")
	if err != nil {
		return 0, err
	}
	n := 0
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "actions=") {
			n++
		}
	}
	return n, nil
}

// ntCase is one path of the networks throughput section and what it measured per trial.
type ntCase struct {
	label string
	path  *dpPath
	// flows are the flows on h1's br-int; containers the containers attached per host.
	flows, containers       int
	gbps, retr, cores, busy []float64
}

// netThroughput compares iperf3 between two containers of the single-network fabric (only
// network default, one container per host) with iperf3 between two containers of one
// network of a fabric serving cfg.Networks networks, each with a container on both hosts;
// and, as a control, of a fabric with only default but as many containers as the latter.
// The three labs are up at once and the trials interleave, as in the data path section.
func (s *suite) netThroughput(ctx context.Context, secs map[string]*Section) {
	sec := secs["net-throughput"]
	nets := s.cfg.Networks
	pipeline := s.mainPipeline()
	newCase := func(label string) *ntCase {
		n := s.cfg.NetTrials
		return &ntCase{label: label, gbps: nanSlice(n), retr: nanSlice(n), cores: nanSlice(n), busy: nanSlice(n)}
	}
	one, many, idle := newCase(labelOneNet), newCase(fmt.Sprintf(labelManyNets, nets)), newCase(fmt.Sprintf(labelIdle, nets))
	cases := []*ntCase{one, many, idle}
	// Runs as long as the budget allows for this section's own runs (s.iperf reads
	// s.iperfSecs; the throughput section has reported its own length by now).
	savedSecs, savedWhy := s.iperfSecs, s.iperfWhy
	s.iperfSecs, s.iperfWhy = iperfSeconds(Config{IperfSeconds: s.cfg.IperfSeconds, Trials: s.cfg.NetTrials, IperfBudget: s.cfg.IperfBudget}, len(cases))
	defer func() { s.iperfSecs, s.iperfWhy = savedSecs, savedWhy }()
	var labs []*lab.Lab
	defer func() {
		for _, l := range labs {
			s.down(l)
		}
	}()
	defer func() { s.netThroughputReport(sec, one, many, idle) }()
	fabricIn := func(label string) (*lab.Lab, *fabriclab.Fabric, []*fabriclab.Container, error) {
		l, err := s.up(ctx, label, 2, false)
		if err != nil {
			return nil, nil, nil, err
		}
		labs = append(labs, l)
		f := fabriclab.New(l, fabriclab.Options{Bin: s.cfg.Bin, Tunnel: "vxlan", Extra: s.pipelineFlags(pipeline)})
		cs, err := s.fabricWithContainers(ctx, f, l.Hosts)
		return l, f, cs, err
	}
	pathOf := func(c *ntCase, l *lab.Lab, client, server, serverIP string) *dpPath {
		return &dpPath{Label: c.label, Kind: kindFabric, Tunnel: "vxlan", Pipeline: pipeline, Client: client, Server: server, ServerIP: serverIP, lab: l}
	}

	// The single-network fabric.
	la, _, cs, err := fabricIn("nt-one")
	if err != nil {
		sec.Err = fmt.Errorf("%s: %w", one.label, err)
		return
	}
	one.path, one.containers = pathOf(one, la, cs[0].NetNS, cs[1].NetNS, cs[1].IP), 1

	// The fabric with cfg.Networks networks, a container of each on both hosts (besides the
	// container on default that fabricWithContainers checks the fabric with).
	lb, fb, _, err := fabricIn("nt-many")
	if err != nil {
		sec.Err = fmt.Errorf("%s: %w", many.label, err)
		return
	}
	nodes := fb.Nodes()
	begin := time.Now()
	var last [2]api.Attachment
	var lastNS [2]string
	for i := range nets {
		name := fmt.Sprintf("net%02d", i+1)
		if _, err := nodes[0].Client().CreateNetwork(ctx, api.NetworkCreateRequest{Name: name, Subnet: netSubnet(110, i)}); err != nil {
			sec.Err = fmt.Errorf("create network %s: %w", name, err)
			return
		}
		for j, n := range nodes[:2] {
			path, err := lb.AddNetNS(ctx, n.Host, fmt.Sprintf("%s%d", name, j+1))
			if err != nil {
				sec.Err = err
				return
			}
			a, err := attachUntil(ctx, n, path, name, 100*time.Millisecond, 30*time.Second)
			if err != nil {
				sec.Err = err
				return
			}
			last[j], lastNS[j] = a, filepath.Base(path)
		}
	}
	s.logf("net-throughput", "%d networks created, a container of each on both hosts, in %s", nets, time.Since(begin).Round(time.Millisecond))
	if err := fabriclab.Reach(ctx, lastNS[0], addrOnly(last[1]), 20*time.Second); err != nil {
		sec.Err = fmt.Errorf("%s: %w", many.label, err)
		return
	}
	many.path, many.containers = pathOf(many, lb, lastNS[0], lastNS[1], addrOnly(last[1])), nets+1

	// The control: default only, with as many containers per host as the many-network fabric.
	lc, fc, cs, err := fabricIn("nt-idle")
	if err != nil {
		sec.Err = fmt.Errorf("%s: %w", idle.label, err)
		return
	}
	for i := range nets {
		for j, n := range fc.Nodes() {
			if _, err := fc.AddContainer(ctx, n, fmt.Sprintf("idle%02d%d", i+1, j+1), api.AttachRequest{}); err != nil {
				sec.Err = fmt.Errorf("%s: %w", idle.label, err)
				return
			}
		}
	}
	idle.path, idle.containers = pathOf(idle, lc, cs[0].NetNS, cs[1].NetNS, cs[1].IP), nets+1

	for _, c := range cases {
		if c.flows, err = brIntFlows(ctx, c.path.lab.Hosts[0]); err != nil {
			sec.Notes = append(sec.Notes, fmt.Sprintf("flows on br-int of %s not counted: %s", c.label, oneLine(err.Error())))
		}
		p := c.path
		p.vsPIDs = vswitchdPIDs(p.lab)
		if _, err := p.lab.StartIn(ctx, p.Server, "iperf3", []string{"iperf3", "-s", "-p", iperfPort, "--forceflush"}, nil); err != nil {
			sec.Err = fmt.Errorf("%s: iperf3 server: %w", p.Label, err)
			return
		}
		if err := fabriclab.Reach(ctx, p.Client, p.ServerIP, 20*time.Second); err != nil {
			sec.Err = fmt.Errorf("%s: %w", p.Label, err)
			return
		}
	}
	s.logf("net-throughput", "br-int of h1: %d flows (default only), %d (%d networks), %d (control)", one.flows, many.flows, nets, idle.flows)
	s.logf("net-throughput", "%d paths × %d trials, 1 stream, %d s per run (%s)", len(cases), s.cfg.NetTrials, s.iperfSecs, s.iperfWhy)
	for t := range s.cfg.NetTrials {
		order := slices.Clone(cases)
		if t%2 == 1 { // forwards, then backwards: drift of the machine favours no case
			slices.Reverse(order)
		}
		for _, c := range order {
			p := c.path
			before, cerr := sampleCPU(p.vsPIDs)
			r, err := s.iperf(ctx, p, 1)
			if ctx.Err() != nil {
				sec.Err = ctx.Err()
				return
			}
			if err != nil {
				s.logf("net-throughput", "trial %d/%d %s: FAILED: %v", t+1, s.cfg.NetTrials, p.Label, err)
				sec.Notes = append(sec.Notes, fmt.Sprintf("trial %d, %s failed: %s", t+1, p.Label, oneLine(err.Error())))
				continue
			}
			c.gbps[t], c.retr[t] = r.Gbps, float64(r.Retransmits)
			if cerr == nil {
				if after, err := sampleCPU(p.vsPIDs); err == nil {
					u := use(before, after)
					c.cores[t], c.busy[t] = u.ProcCores, u.MachineBusy
				}
			}
			s.logf("net-throughput", "trial %d/%d %-50s %5.2f Gbit/s (%d retransmits), ovs-vswitchd %.2f cores, machine %.0f%% busy",
				t+1, s.cfg.NetTrials, p.Label, r.Gbps, r.Retransmits, c.cores[t], 100*c.busy[t])
		}
	}
}

func (c *ntCase) cost() pathCost {
	return pathCost{Label: c.label, Gbps: Median(c.gbps), Retransmits: Median(c.retr), VSCores: Median(c.cores), MachineBusy: Median(c.busy)}
}

func (s *suite) netThroughputReport(sec *Section, one, many, idle *ntCase) {
	nets := s.cfg.Networks
	sec.Method = fmt.Sprintf("Three 2-host labs up at once, each a VXLAN fabric in %s. In the first only the network "+
		"`default` exists, with one container per host (the single-network fabric). In the second %d networks are "+
		"created through h1's API (`net01` … `net%02d`, 10.110.0.0/16 upwards) and a container of every network is "+
		"attached on both hosts, so that every network has its slice, gateway address, tunnel key and flows on both "+
		"hosts. The third is a control: only `default`, but as many containers per host as the second (%d idle ones "+
		"besides the measured one; the second has the container on `default` the suite checks every fabric with, too), so that it has the second's number of ports without its networks. iperf3 TCP, "+
		"1 stream, %d s per run after 1 omitted warm-up second (`-t %d -O 1`; %s), between the two measured containers "+
		"of each lab (in the second, those of `net%02d`, the last network created), %d trials, interleaved (every trial "+
		"runs every case, in alternating order) as in the throughput section, with the CPU time of both hosts' "+
		"ovs-vswitchd and of the machine read around each run. Ratios are of the medians, with the range of the "+
		"ratios paired trial by trial in brackets.",
		s.mainPipelineName(), nets, nets, nets, s.iperfSecs, s.iperfSecs, s.iperfWhy, nets, s.cfg.NetTrials)
	cell := func(n int) string {
		if n == 0 {
			return "n/a"
		}
		return fmt.Sprint(n)
	}
	vs := func(c *ntCase) string {
		return fmt.Sprintf("%s (%s)", ratio(Median(c.gbps)/Median(one.gbps)), ratioSpread(Summarize(Ratios(c.gbps, one.gbps))))
	}
	paired := Summarize(Ratios(many.gbps, one.gbps))
	t := Table{Header: []string{"path (container ↔ container, VXLAN, 1 stream)", "networks", "containers per host", "flows on h1's br-int",
		"Gbit/s median", "min–max", "retransmits (median)", "ovs-vswitchd cores per Gbit/s", "machine busy", "vs single-network fabric"}}
	for _, r := range []struct {
		c    *ntCase
		nets int
	}{{one, 1}, {many, nets + 1}, {idle, 1}} {
		c := r.c
		sm, pc := Summarize(c.gbps), c.cost()
		b := "n/a"
		if !math.IsNaN(pc.MachineBusy) {
			b = fmt.Sprintf("%.0f%%", 100*pc.MachineBusy)
		}
		ratioCell := "—"
		if c != one {
			ratioCell = vs(c)
		}
		t.AddRow(c.label, fmt.Sprint(r.nets), cell(c.containers), cell(c.flows), num(sm.Median), spread(sm), num(pc.Retransmits),
			num(pc.coresPerGbps()), b, ratioCell)
	}
	sec.Tables = append(sec.Tables, t)
	rt := Median(many.gbps) / Median(one.gbps)
	v := Verdict{Target: fmt.Sprintf("one network among %d ≥ 0.95× the single-network fabric", nets), Status: Check(rt, rt >= 0.95)}
	switch v.Status {
	case NotMeasured:
		v.Measured, v.Limit = "n/a", "not measured (see above)"
	default:
		v.Measured = fmt.Sprintf("%s (paired trials %s; %d trials, 1 stream)", ratio(rt), ratioSpread(paired), paired.N)
	}
	if paired.N > 1 && paired.Min < 0.95 && paired.Max >= 0.95 {
		sec.Notes = append(sec.Notes, fmt.Sprintf("The ratios paired trial by trial range from %s to %s, on both sides of "+
			"the target: from one trial to the next the machine's load moved the figures more than the networks did. "+
			"ovs-vswitchd's CPU time per Gbit/s (the table) is the steadier comparison: %s with one network, %s with %d, "+
			"%s in the control.", ratio(paired.Min), ratio(paired.Max), num(one.cost().coresPerGbps()),
			num(many.cost().coresPerGbps()), nets, num(idle.cost().coresPerGbps())))
	}
	if v.Status == Missed {
		v.Limit = explainThroughput(many.cost(), one.cost())
		if rc := Median(idle.gbps) / Median(one.gbps); !math.IsNaN(rc) {
			v.Limit += fmt.Sprintf(" The control with as many containers but one network measured %s of the single-network "+
				"fabric (ovs-vswitchd %s cores per Gbit/s, the many-network fabric %s): ", ratio(rc),
				num(idle.cost().coresPerGbps()), num(many.cost().coresPerGbps()))
			if rc < 0.95 {
				v.Limit += "the ports (containers) cost throughput without any further network, too."
			} else {
				v.Limit += "the ports alone do not explain the difference."
			}
		}
	}
	sec.Verdicts = append(sec.Verdicts, v)
}

// readyTrial is one trial of the time a new network takes to be usable on every host, all
// from the moment the create request was sent.
type readyTrial struct {
	create time.Duration   // the create request answered (on h1)
	listed []time.Duration // per host: lists the network with a slice of its own
	attach []time.Duration // per host: the attach of a container to it succeeded
	reply  []time.Duration // per other host: first echo reply from h1's container to its container
	usable time.Duration   // the last of attach and reply
}

// netReady creates a network on h1 of a 3-host fabric per trial and measures until a
// container of it is attached on every host and h1's container gets replies from the
// others'; then detaches them and removes the network.
func (s *suite) netReady(ctx context.Context, secs map[string]*Section) {
	sec := secs["net-ready"]
	var trials []readyTrial
	defer func() { s.netReadyReport(sec, trials) }()
	l, err := s.up(ctx, "nr", 3, false)
	if err != nil {
		sec.Err = err
		return
	}
	defer s.down(l)
	f := fabriclab.New(l, fabriclab.Options{Bin: s.cfg.Bin, Tunnel: "vxlan", Extra: s.pipelineFlags(s.mainPipeline())})
	if _, err := s.fabricWithContainers(ctx, f, l.Hosts); err != nil {
		sec.Err = err
		return
	}
	for i := range s.cfg.NetReadyTrials {
		tr, err := s.netReadyTrial(ctx, l, f, i)
		if err != nil {
			sec.Err = fmt.Errorf("trial %d: %w", i+1, err)
			return
		}
		trials = append(trials, tr)
		s.logf("net-ready", "trial %d/%d: created %s, listed everywhere %s, attached everywhere %s, usable %s", i+1, s.cfg.NetReadyTrials,
			tr.create.Round(time.Millisecond), slicesMax(tr.listed).Round(time.Millisecond), slicesMax(tr.attach).Round(time.Millisecond), tr.usable.Round(time.Millisecond))
	}
}

// readyPoll is how often a trial asks fabricd whether the new network is there.
const readyPoll = 10 * time.Millisecond

func (s *suite) netReadyTrial(ctx context.Context, l *lab.Lab, f *fabriclab.Fabric, i int) (readyTrial, error) {
	nodes := f.Nodes()
	tr := readyTrial{listed: make([]time.Duration, len(nodes)), attach: make([]time.Duration, len(nodes)), reply: make([]time.Duration, len(nodes)-1)}
	name := fmt.Sprintf("ready%d", i+1)
	paths := make([]string, len(nodes))
	for j, n := range nodes {
		p, err := l.AddNetNS(ctx, n.Host, fmt.Sprintf("r%d", i+1))
		if err != nil {
			return tr, err
		}
		paths[j] = p
	}
	atts := make([]api.Attachment, len(nodes))
	created := false
	defer func() {
		// Detach, then remove the network (refused while a host still counts an endpoint on
		// it: the detaches spread by gossip), then drop the namespaces; not timed.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if created {
			if err := s.removeNetwork(cctx, nodes, paths, name); err != nil {
				s.warn("net-ready: network %s: %v", name, err)
			}
		}
		for _, p := range paths {
			if err := l.DeleteNetNS(cctx, p); err != nil {
				s.logf("net-ready", "delete %s: %v", p, err)
			}
		}
	}()

	t0 := time.Now()
	if _, err := nodes[0].Client().CreateNetwork(ctx, api.NetworkCreateRequest{Name: name, Subnet: netSubnet(150, i)}); err != nil {
		return tr, fmt.Errorf("create network %s: %w", name, err)
	}
	tr.create, created = time.Since(t0), true
	var wg sync.WaitGroup
	errs := make([]error, 2*len(nodes))
	attached := make([]chan struct{}, len(nodes))
	for j, n := range nodes {
		attached[j] = make(chan struct{})
		wg.Add(2)
		go func() { // listed with a slice
			defer wg.Done()
			for {
				nw, err := n.Client().Network(ctx, name)
				if err == nil && nw.Slice != "" && nw.Conflict == "" {
					tr.listed[j] = time.Since(t0)
					return
				}
				if time.Since(t0) > 30*time.Second {
					errs[2*j] = fmt.Errorf("%s does not list %s with a slice after 30 s: %+v, %v", n.Host.Name, name, nw, err)
					return
				}
				if err := sleepCtx(ctx, readyPoll); err != nil {
					errs[2*j] = err
					return
				}
			}
		}()
		go func() { // attached
			defer wg.Done()
			defer close(attached[j])
			a, err := attachUntil(ctx, n, paths[j], name, readyPoll, 30*time.Second)
			tr.attach[j], atts[j], errs[2*j+1] = time.Since(t0), a, err
		}()
	}
	// Replies from every other host's container to h1's, each as soon as both are attached.
	rerrs := make([]error, len(nodes)-1)
	for j := 1; j < len(nodes); j++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-attached[0]
			<-attached[j]
			if errs[1] != nil || errs[2*j+1] != nil {
				rerrs[j-1] = errNotRun
				return
			}
			at, err := firstReply(ctx, filepath.Base(paths[0]), addrOnly(atts[j]), pingEvery, 30*time.Second)
			tr.reply[j-1], rerrs[j-1] = at.Sub(t0), err
		}()
	}
	wg.Wait()
	if err := errors.Join(append(errs, rerrs...)...); err != nil {
		return tr, err
	}
	tr.usable = max(slicesMax(tr.attach), slicesMax(tr.reply))
	return tr, nil
}

// removeNetwork detaches the namespaces at paths (one per node, in order) from network and
// removes it, retrying while a host still counts an endpoint on it, and waits until no host
// lists it.
func (s *suite) removeNetwork(ctx context.Context, nodes []*fabriclab.Node, paths []string, network string) error {
	var errs []error
	for j, n := range nodes {
		if _, err := n.Client().Detach(ctx, api.DetachRequest{Target: paths[j], Network: network}); err != nil && api.StatusCode(err) != 404 {
			errs = append(errs, fmt.Errorf("detach on %s: %w", n.Host.Name, err))
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err := nodes[0].Client().RemoveNetwork(ctx, api.NetworkRemoveRequest{Name: network})
		if err == nil || api.StatusCode(err) == 404 {
			break
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			errs = append(errs, fmt.Errorf("remove: %w", err))
			if _, err := nodes[0].Client().RemoveNetwork(ctx, api.NetworkRemoveRequest{Name: network, Force: true}); err != nil {
				errs = append(errs, fmt.Errorf("remove --force: %w", err))
			}
			break
		}
		if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
			return err
		}
	}
	for _, n := range nodes {
		for {
			_, err := n.Client().Network(ctx, network)
			if api.StatusCode(err) == 404 {
				break
			}
			if time.Now().After(deadline.Add(30*time.Second)) || ctx.Err() != nil {
				errs = append(errs, fmt.Errorf("%s still lists it (%v)", n.Host.Name, err))
				break
			}
			if err := sleepCtx(ctx, 100*time.Millisecond); err != nil {
				return err
			}
		}
	}
	return errors.Join(errs...)
}

func (s *suite) netReadyReport(sec *Section, trials []readyTrial) {
	sec.Method = fmt.Sprintf("A 3-host VXLAN fabric (%s; one container per host on `default`). Per trial (%d trials, a "+
		"new name and subnet each: `ready1`, 10.150.0.0/16, …), time zero is when h1's API is sent the create request "+
		"(`network create`); from then on, on every host at once, the suite asks fabricd for the network every %s until "+
		"it lists it with a slice of that host's, and asks it to attach a fresh container namespace to it every %s until "+
		"the attach succeeds (a host answers 409 until it has learnt the network by gossip). As soon as h1's container "+
		"and another host's are attached, h1's container pings that one every %s until the first reply (ping's own "+
		"receive timestamp). *Usable on every host* is the later of the last attach and the last first reply from h2's "+
		"and h3's containers: the network carries traffic between every other host and h1. Between trials the containers "+
		"are detached, the network removed (`network rm`, retried while a host still counts an endpoint), and the suite "+
		"waits until no host lists it (not timed).",
		s.mainPipelineName(), s.cfg.NetReadyTrials, readyPoll, readyPoll, pingEvery)
	var creates, listed, attached, replies, usable []time.Duration
	for _, tr := range trials {
		creates, listed, attached = append(creates, tr.create), append(listed, slicesMax(tr.listed)), append(attached, slicesMax(tr.attach))
		replies, usable = append(replies, slicesMax(tr.reply)), append(usable, tr.usable)
	}
	sec.Tables = append(sec.Tables, milestoneTable("milestone (from the create request)", []milestone{
		{"the create request answered (h1)", creates},
		{"every host lists the network with a slice of its own", listed},
		{"an attach to it succeeded on every host", attached},
		{"h1's container got a first reply from h2's and h3's", replies},
		{"usable on every host (the later of the two above)", usable},
	}))
	if len(trials) > 0 {
		per := Table{Caption: "Per trial (ms from the create request; hosts h1, h2, h3).",
			Header: []string{"trial", "created", "listed", "attached", "replies (h2, h3)", "usable"}}
		ms := func(ds []time.Duration) string {
			var out []string
			for _, d := range ds {
				out = append(out, fmt.Sprint(d.Milliseconds()))
			}
			return strings.Join(out, ", ")
		}
		for i, tr := range trials {
			per.AddRow(fmt.Sprint(i+1), fmt.Sprint(tr.create.Milliseconds()), ms(tr.listed), ms(tr.attach), ms(tr.reply), fmt.Sprint(tr.usable.Milliseconds()))
		}
		sec.Tables = append(sec.Tables, per)
	}
	if len(trials) > 0 {
		var spread []time.Duration
		for _, tr := range trials {
			spread = append(spread, slicesMax(tr.listed)-tr.create)
		}
		sec.Notes = append(sec.Notes, fmt.Sprintf("h1 answers the create request only after network.DefaultSettle (%s, "+
			"unless fabricd is configured otherwise): it waits that long to hear of a concurrent create of the same name "+
			"or of a conflicting network. The other hosts learn of the network meanwhile: the last of them listed it "+
			"with its slice %s ms (median) after the answer.", network.DefaultSettle, num(Median(Millis(spread)))))
	}
	med := Median(Millis(usable)) / 1000
	v := Verdict{Target: "new network usable on every host, median < 1 s", Measured: fmt.Sprintf("%s s (%d trials)", num(med), len(usable)), Status: Check(med, med < 1)}
	switch v.Status {
	case NotMeasured:
		v.Measured, v.Limit = "n/a", "no trial completed"
	case Missed:
		v.Limit = fmt.Sprintf("median %s s until the create answered, %s s until every host listed it with a slice "+
			"(the definition and then every host's slice spread by gossip), %s s until the last attach succeeded, %s s until "+
			"the last first reply (the peers' slices and flows of the network)", num(Median(Millis(creates))/1000),
			num(Median(Millis(listed))/1000), num(Median(Millis(attached))/1000), num(Median(Millis(replies))/1000))
	}
	sec.Verdicts = append(sec.Verdicts, v)
}

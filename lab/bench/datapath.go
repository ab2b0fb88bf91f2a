package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

// Kinds of data path.
const (
	kindUnderlay = "underlay"
	kindKernel   = "kernel"
	kindFabric   = "fabric"
)

// iperfPort is where every iperf3 server of the suite listens.
const iperfPort = "5201"

// dpPath is one data path between two network namespaces on two lab hosts.
type dpPath struct {
	Label    string
	Kind     string
	Tunnel   string // gre or vxlan, for the fabric
	Pipeline string // l2 or routed, for the fabric
	Client   string // netns of the iperf3 client and of ping
	Server   string // netns of the iperf3 server
	ServerIP string
	lab      *lab.Lab
}

func fabricLabel(tunnel, pipeline string) string {
	t := map[string]string{"gre": "GRE", "vxlan": "VXLAN"}[tunnel]
	p := map[string]string{"l2": "L2", "routed": "routed"}[pipeline]
	return "fabric " + t + ", " + p
}

// tpKey names one throughput case.
type tpKey struct {
	label   string
	streams int
}

// dataPath measures throughput (iperf3) and latency (ping) over the underlay, a kernel
// VXLAN + Linux bridge baseline and the fabric in every tunnel type and pipeline, with all
// labs up at once so that the cases interleave trial by trial.
func (s *suite) dataPath(ctx context.Context, secs map[string]*Section) {
	tp, lat := secs["throughput"], secs["latency"]
	begin := time.Now()
	var labs []*lab.Lab
	defer func() {
		for _, l := range labs {
			s.down(l)
		}
	}()
	var paths []*dpPath
	gbps, retr := map[tpKey][]float64{}, map[tpKey][]float64{}
	pings := map[string]pingResult{}
	var buildErrs []error
	var latBegin time.Time
	defer func() {
		if tp != nil {
			s.throughputReport(tp, paths, gbps, retr, pings, buildErrs)
			if !latBegin.IsZero() {
				tp.Took = latBegin.Sub(begin)
			}
		}
		if lat != nil {
			s.latencyReport(lat, paths, pings, buildErrs)
			if !latBegin.IsZero() {
				lat.Took = time.Since(latBegin)
			}
		}
	}()

	base, err := s.up(ctx, "dp-base", 2, false)
	if err != nil {
		fail(secs, err)
		return
	}
	labs = append(labs, base)
	h1, h2 := base.Hosts[0], base.Hosts[1]
	paths = append(paths, &dpPath{Label: "underlay (host ↔ host via br-phy)", Kind: kindUnderlay, Client: h1.NetNS, Server: h2.NetNS, ServerIP: h2.UnderlayIP.String(), lab: base})
	if kc, ks, kip, err := kernelVXLAN(ctx, base); err != nil {
		buildErrs = append(buildErrs, fmt.Errorf("kernel VXLAN baseline: %w", err))
	} else {
		paths = append(paths, &dpPath{Label: "kernel VXLAN + Linux bridge", Kind: kindKernel, Tunnel: "vxlan", Client: kc, Server: ks, ServerIP: kip, lab: base})
	}
	for _, pl := range s.pipelinesOrL2() {
		for _, tun := range []string{"gre", "vxlan"} {
			l, err := s.up(ctx, "dp-"+pl+"-"+tun, 2, false)
			if err != nil {
				buildErrs = append(buildErrs, err)
				continue
			}
			labs = append(labs, l)
			f := fabriclab.New(l, fabriclab.Options{Bin: s.cfg.Bin, Tunnel: tun, Extra: s.pipelineFlags(pl)})
			cs, err := s.fabricWithContainers(ctx, f, l.Hosts)
			if err != nil {
				buildErrs = append(buildErrs, fmt.Errorf("%s: %w", fabricLabel(tun, pl), err))
				continue
			}
			paths = append(paths, &dpPath{Label: fabricLabel(tun, pl), Kind: kindFabric, Tunnel: tun, Pipeline: pl, Client: cs[0].NetNS, Server: cs[1].NetNS, ServerIP: cs[1].IP, lab: l})
		}
		if ctx.Err() != nil {
			fail(secs, ctx.Err())
			return
		}
	}
	for _, err := range buildErrs {
		s.logf("datapath", "FAILED: %v", err)
	}

	// One iperf3 server per path, and a first ping so that ARP and MAC learning are done.
	var ready []*dpPath
	for _, p := range paths {
		if _, err := p.lab.StartIn(ctx, p.Server, "iperf3", []string{"iperf3", "-s", "-p", iperfPort, "--forceflush"}, nil); err != nil {
			buildErrs = append(buildErrs, fmt.Errorf("%s: iperf3 server: %w", p.Label, err))
			continue
		}
		if err := fabriclab.Reach(ctx, p.Client, p.ServerIP, 20*time.Second); err != nil {
			buildErrs = append(buildErrs, fmt.Errorf("%s: %w", p.Label, err))
			continue
		}
		ready = append(ready, p)
	}
	paths = ready

	if tp != nil {
		var cases []tpKey
		byLabel := map[string]*dpPath{}
		for _, p := range paths {
			byLabel[p.Label] = p
			for _, n := range []int{1, 4} {
				k := tpKey{p.Label, n}
				cases = append(cases, k)
				gbps[k], retr[k] = nanSlice(s.cfg.Trials), nanSlice(s.cfg.Trials)
			}
		}
		s.iperfSecs, s.iperfWhy = iperfSeconds(s.cfg, len(cases))
		s.logf("throughput", "%d cases × %d trials, %d s per run (%s)", len(cases), s.cfg.Trials, s.iperfSecs, s.iperfWhy)
		for t := range s.cfg.Trials {
			order := slices.Clone(cases)
			if t%2 == 1 { // alternate the order so that drift over time favours no case
				slices.Reverse(order)
			}
			for _, k := range order {
				r, err := s.iperf(ctx, byLabel[k.label], k.streams)
				if ctx.Err() != nil {
					fail(secs, ctx.Err())
					return
				}
				if err != nil {
					s.logf("throughput", "trial %d/%d %s -P %d: FAILED: %v", t+1, s.cfg.Trials, k.label, k.streams, err)
					tp.Notes = append(tp.Notes, fmt.Sprintf("trial %d, %s, %d stream(s) failed: %s", t+1, k.label, k.streams, oneLine(err.Error())))
					continue
				}
				gbps[k][t], retr[k][t] = r.Gbps, float64(r.Retransmits)
				s.logf("throughput", "trial %d/%d %-34s -P %d: %5.2f Gbit/s (%d retransmits)", t+1, s.cfg.Trials, k.label, k.streams, r.Gbps, r.Retransmits)
			}
		}
	}

	latBegin = time.Now()
	if lat != nil {
		for _, p := range paths {
			if p.Kind == kindFabric && p.Tunnel != "vxlan" {
				continue
			}
			r, err := pingRTTs(ctx, p.Client, p.ServerIP, s.cfg.PingCount, s.cfg.PingInterval)
			if ctx.Err() != nil {
				fail(secs, ctx.Err())
				return
			}
			if err != nil {
				lat.Notes = append(lat.Notes, fmt.Sprintf("%s: %s", p.Label, oneLine(err.Error())))
				continue
			}
			pings[p.Label] = r
			sm := Summarize(r.RTTs)
			s.logf("latency", "%-34s %d/%d replies (%d duplicates), p50 %.3f ms, p99 %.3f ms", p.Label, len(r.RTTs), r.Sent, r.Dups, sm.Median, sm.P99)
		}
	}
}

func (s *suite) pipelinesOrL2() []string {
	if s.pipelines == nil {
		return []string{"l2"}
	}
	return s.pipelines
}

func nanSlice(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = math.NaN()
	}
	return out
}

// fabricWithContainers starts fabricd on every host, waits for convergence and attaches one
// container per host (c1, c2, …) through fabricd's API; it checks that the first container
// reaches every other one.
func (s *suite) fabricWithContainers(ctx context.Context, f *fabriclab.Fabric, hosts []*lab.Host) ([]*fabriclab.Container, error) {
	for _, h := range hosts {
		if _, err := f.Start(ctx, h); err != nil {
			return nil, err
		}
	}
	if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
		return nil, err
	}
	var cs []*fabriclab.Container
	for i, n := range f.Nodes() {
		c, err := f.AddContainer(ctx, n, fmt.Sprintf("c%d", i+1), api.AttachRequest{})
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	for _, c := range cs[1:] {
		if err := fabriclab.Reach(ctx, cs[0].NetNS, c.IP, 20*time.Second); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

// kernelVXLAN builds the flannel-style baseline between the lab's first two hosts: in each
// host namespace a kernel vxlan device (VNI 42, UDP 4789, local and remote underlay
// addresses) on a Linux bridge, and a "container" namespace behind a veth on that bridge,
// 10.99.0.1 and 10.99.0.2/24 with MTU 1450. It returns the two container namespaces and the
// second one's address. The devices live in the host namespaces and go with them.
func kernelVXLAN(ctx context.Context, l *lab.Lab) (client, server, serverIP string, err error) {
	hosts := l.Hosts[:2]
	var nss []string
	for i, h := range hosts {
		peer := hosts[1-i]
		path, err := l.AddNetNS(ctx, h, "kvx")
		if err != nil {
			return "", "", "", err
		}
		ns := filepath.Base(path)
		nss = append(nss, ns)
		dev := "eth0" // where the underlay address is: br-phy with the userspace datapath
		if h.Datapath == "netdev" {
			dev = "br-phy"
		}
		for _, args := range [][]string{
			{"-n", h.NetNS, "link", "add", "vxlan42", "type", "vxlan", "id", "42", "local", h.UnderlayIP.String(), "remote", peer.UnderlayIP.String(), "dstport", "4789", "dev", dev},
			{"-n", h.NetNS, "link", "add", "brk", "type", "bridge"},
			{"-n", h.NetNS, "link", "set", "vxlan42", "master", "brk", "up"},
			{"-n", h.NetNS, "link", "set", "brk", "up"},
			{"-n", h.NetNS, "link", "add", "kv0", "mtu", "1450", "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"-n", h.NetNS, "link", "set", "kv0", "master", "brk", "up"},
			{"-n", ns, "link", "set", "eth0", "up"},
			{"-n", ns, "addr", "add", fmt.Sprintf("10.99.0.%d/24", i+1), "dev", "eth0"},
		} {
			if _, err := run(ctx, 20*time.Second, "", append([]string{"ip"}, args...)...); err != nil {
				return "", "", "", err
			}
		}
	}
	return nss[0], nss[1], "10.99.0.2", nil
}

// iperfSeconds is the length of an iperf3 run: cfg.IperfSeconds when set, else the longest
// up to 10 s that keeps cases × trials runs (each 1 s warm-up and ~0.6 s overhead more)
// within cfg.IperfBudget, at least 2 s. It also says why, for the report.
func iperfSeconds(cfg Config, cases int) (int, string) {
	if cfg.IperfSeconds > 0 {
		return cfg.IperfSeconds, "set on the command line"
	}
	runs := max(cases*cfg.Trials, 1)
	per := cfg.IperfBudget.Seconds()/float64(runs) - 1.6
	secs := min(10, max(2, int(per)))
	if secs == 10 {
		return secs, "the full 10 s"
	}
	return secs, fmt.Sprintf("shorter than 10 s so that the %d runs fit a %s budget and the whole suite stays under 15 minutes", runs, cfg.IperfBudget)
}

// iperf runs one iperf3 measurement over p with n parallel streams, retrying while the
// server is busy or not yet listening.
func (s *suite) iperf(ctx context.Context, p *dpPath, n int) (iperfResult, error) {
	secs := s.iperfSecs
	var last error
	for attempt := 0; attempt < 4; attempt++ {
		if attempt > 0 {
			if err := sleepCtx(ctx, time.Second); err != nil {
				return iperfResult{}, err
			}
		}
		out, err := run(ctx, time.Duration(secs+30)*time.Second, p.Client, "iperf3", "-c", p.ServerIP, "-p", iperfPort,
			"-t", fmt.Sprint(secs), "-O", "1", "-P", fmt.Sprint(n), "-J", "--connect-timeout", "3000")
		r, perr := parseIperf([]byte(out))
		if perr == nil {
			return r, nil
		}
		last = errors.Join(perr, err)
		if !strings.Contains(perr.Error(), "busy") && !strings.Contains(perr.Error(), "unable to connect") {
			break
		}
	}
	return iperfResult{}, last
}

// throughputReport fills the throughput section from the measurements.
func (s *suite) throughputReport(sec *Section, paths []*dpPath, gbps, retr map[tpKey][]float64, pings map[string]pingResult, buildErrs []error) {
	if s.iperfSecs == 0 { // no trial ran: say what would have
		s.iperfSecs, s.iperfWhy = iperfSeconds(s.cfg, 2*(2+2*len(s.pipelinesOrL2())))
	}
	sec.Method = fmt.Sprintf("iperf3 TCP, %d s per run after 1 omitted warm-up second (`-t %d -O 1`; %s), "+
		"1 and 4 parallel streams (`-P 4`), %d trials per case. "+
		"All paths were up at once (one lab each) and the trials interleaved: every trial ran every case, in "+
		"alternating order, so slow drift of the machine favours no case. Paths: the underlay between two lab hosts' "+
		"underlay addresses (through br-phy, the userspace datapath); a kernel VXLAN + Linux bridge baseline "+
		"(flannel-style: a kernel `vxlan` device, VNI 42, UDP 4789, on a bridge in each host namespace, a container "+
		"namespace behind a veth, 10.99.0.0/24, MTU 1450); and the fabric: fabricd on both hosts, one container each "+
		"attached through fabricd's API, for GRE and VXLAN in every pipeline fabricd offers. "+
		"Throughput is the receiver's, all streams together; ratios are of medians, with the range of the ratios "+
		"paired trial by trial in brackets.", s.iperfSecs, s.iperfSecs, s.iperfWhy, s.cfg.Trials)
	for _, err := range buildErrs {
		sec.Notes = append(sec.Notes, "could not measure: "+oneLine(err.Error()))
	}
	find := func(kind, tunnel, pipeline string) *dpPath {
		for _, p := range paths {
			if p.Kind == kind && (tunnel == "" || p.Tunnel == tunnel) && (pipeline == "" || p.Pipeline == pipeline) {
				return p
			}
		}
		return nil
	}
	under, kern := find(kindUnderlay, "", ""), find(kindKernel, "", "")
	vs := func(p, base *dpPath, n int) string {
		if p == nil || base == nil {
			return "n/a"
		}
		a, b := gbps[tpKey{p.Label, n}], gbps[tpKey{base.Label, n}]
		return fmt.Sprintf("%s (%s)", ratio(Median(a)/Median(b)), spread(Summarize(Ratios(a, b))))
	}
	t := Table{Header: []string{"path", "streams", "Gbit/s median", "min–max", "retransmits (median)", "vs underlay", "vs kernel VXLAN"}}
	type row struct {
		label string
		p     *dpPath
		na    string // why the row cannot be measured in this build
	}
	rows := []row{{"underlay (host ↔ host via br-phy)", under, ""}, {"kernel VXLAN + Linux bridge", kern, ""}}
	for _, pl := range []string{"routed", "l2"} {
		for _, tun := range []string{"gre", "vxlan"} {
			na := ""
			if pl == "routed" && s.pipelines == nil {
				na = routedNA
			}
			rows = append(rows, row{fabricLabel(tun, pl), find(kindFabric, tun, pl), na})
		}
	}
	for _, r := range rows {
		for _, n := range []int{1, 4} {
			switch {
			case r.na != "":
				t.AddRow(r.label, fmt.Sprint(n), r.na)
			case r.p == nil:
				t.AddRow(r.label, fmt.Sprint(n), "not measured (see notes)")
			default:
				k := tpKey{r.p.Label, n}
				sm := Summarize(gbps[k])
				t.AddRow(r.label, fmt.Sprint(n), num(sm.Median), spread(sm), num(Median(retr[k])), vs(r.p, under, n), vs(r.p, kern, n))
			}
		}
	}
	sec.Tables = append(sec.Tables, t)

	// Targets: routed ≥ 0.9× underlay and routed ≥ 1.5× L2, for each tunnel and stream count.
	target := func(name string, base func(tun string) *dpPath, want float64, limit string) Verdict {
		v := Verdict{Target: name}
		if s.pipelines == nil {
			v.Measured, v.Status, v.Limit = "n/a", NotMeasured, "routed pipeline "+routedNA
			return v
		}
		var parts []string
		status := Met
		for _, tun := range []string{"gre", "vxlan"} {
			for _, n := range []int{1, 4} {
				rp, bp := find(kindFabric, tun, "routed"), base(tun)
				rt := math.NaN()
				if rp != nil && bp != nil {
					rt = Median(gbps[tpKey{rp.Label, n}]) / Median(gbps[tpKey{bp.Label, n}])
				}
				parts = append(parts, fmt.Sprintf("%s %d-stream %s", strings.ToUpper(tun), n, ratio(rt)))
				switch {
				case math.IsNaN(rt):
					status = NotMeasured
				case rt < want && status == Met:
					status = Missed
				}
			}
		}
		v.Measured, v.Status = strings.Join(parts, ", "), status
		if status == Missed {
			v.Limit = limit
		}
		if status == NotMeasured {
			v.Limit = "a case failed (see notes)"
		}
		return v
	}
	sec.Verdicts = append(sec.Verdicts,
		target("routed ≥ 0.9× underlay", func(string) *dpPath { return under }, 0.9,
			"every packet still crosses two more userspace datapath bridges (br-int, then br-phy) than the underlay and is encapsulated; all hosts' ovs-vswitchd share the 2 cores"),
		target("routed ≥ 1.5× L2", func(tun string) *dpPath { return find(kindFabric, tun, "l2") }, 1.5,
			"not analysed by the suite (it does not profile the pipelines); the per-path figures and retransmissions are in the table above"),
	)
	sec.Notes = append(sec.Notes, "TCP retransmits heavily on every path here, the underlay included: each path crosses "+
		"at least one userspace datapath (br-phy), whose ovs-vswitchd drops packets when it falls behind, and all hosts' "+
		"ovs-vswitchd, the iperf3 processes and the kernel share the machine's cores. CPU, not a link, bounds every figure.")
	for _, p := range paths {
		if r := pings[p.Label]; r.Dups > 0 {
			sec.Notes = append(sec.Notes, fmt.Sprintf("%s delivers packets more than once: the latency section's ping "+
				"got %d duplicate replies to %d requests on it. Its throughput here counts only what TCP delivered once; "+
				"the duplicates load the same cores.", p.Label, r.Dups, r.Sent))
		}
	}
	if l2 := find(kindFabric, "vxlan", "l2"); l2 != nil && under != nil {
		sec.Notes = append(sec.Notes, "What limits the L2 pipeline: a packet between containers enters br-int from the "+
			"container's veth, goes up into the host kernel through the gateway port fabric0 (a tap device of "+
			"ovs-vswitchd), is routed there and comes back down through fabric0 into br-int, is encapsulated toward the "+
			"peer and leaves through br-phy — and the same hairpin happens on the receiving host. Each tap crossing is a "+
			"copy through ovs-vswitchd's main thread, which the routed pipeline is meant to remove (docs/architecture.md, "+
			"\"Data path\"). The underlay path crosses the userspace datapath only once per host (br-phy).")
	}
}

// latencyReport fills the latency section from the measurements.
func (s *suite) latencyReport(sec *Section, paths []*dpPath, pings map[string]pingResult, buildErrs []error) {
	sec.Method = fmt.Sprintf("ping RTT, %d echo requests at %s intervals per path, one path after the other, "+
		"in the same labs as the throughput section (underlay host ↔ host; kernel VXLAN baseline; the fabric over "+
		"VXLAN container ↔ container, in every pipeline fabricd offers). Percentiles of the first reply to each "+
		"request; duplicate replies (ping's DUP!) are counted apart.",
		s.cfg.PingCount, s.cfg.PingInterval)
	for _, err := range buildErrs {
		sec.Notes = append(sec.Notes, "could not measure: "+oneLine(err.Error()))
	}
	var under []float64
	for _, p := range paths {
		if p.Kind == kindUnderlay {
			under = pings[p.Label].RTTs
		}
	}
	t := Table{Header: []string{"path", "replies", "duplicates", "p50 ms", "p90 ms", "p99 ms", "max ms", "p50 vs underlay"}}
	for _, p := range paths {
		r, ok := pings[p.Label]
		if !ok {
			continue
		}
		sm := Summarize(r.RTTs)
		t.AddRow(p.Label, fmt.Sprintf("%d/%d", len(r.RTTs), r.Sent), fmt.Sprint(r.Dups), fmt3(sm.Median), fmt3(sm.P90), fmt3(sm.P99), fmt3(sm.Max), ratio(sm.Median/Median(under)))
		if r.Dups > 0 {
			sec.Notes = append(sec.Notes, fmt.Sprintf("%s: %d duplicate replies to %d requests — packets were delivered more than once on this path.", p.Label, r.Dups, r.Sent))
		}
	}
	if s.pipelines == nil {
		t.AddRow(fabricLabel("vxlan", "routed"), routedNA)
	}
	sec.Tables = append(sec.Tables, t)
	for _, pl := range []string{"routed", "l2"} {
		v := Verdict{Target: fmt.Sprintf("fabric (VXLAN, %s) p50 ≤ 1.2× underlay p50", map[string]string{"l2": "L2", "routed": "routed"}[pl])}
		if pl == "routed" && s.pipelines == nil {
			v.Measured, v.Status, v.Limit = "n/a", NotMeasured, "routed pipeline "+routedNA
			sec.Verdicts = append(sec.Verdicts, v)
			continue
		}
		rt := math.NaN()
		for _, p := range paths {
			if r, ok := pings[p.Label]; ok && p.Kind == kindFabric && p.Tunnel == "vxlan" && p.Pipeline == pl {
				rt = Median(r.RTTs) / Median(under)
				v.Measured = fmt.Sprintf("%s (%s ms vs %s ms)", ratio(rt), fmt3(Median(r.RTTs)), fmt3(Median(under)))
			}
		}
		v.Status = Check(rt, rt <= 1.2)
		switch v.Status {
		case NotMeasured:
			v.Measured, v.Limit = "n/a", "measurement failed (see notes)"
		case Missed:
			v.Limit = "the fabric path crosses more of the userspace datapath per packet than the underlay (br-int, " +
				"the gateway tap hairpin in L2 mode, encapsulation, br-phy), each a hand-off between threads and a copy on " +
				"cores shared by every host; the underlay crosses br-phy only"
		}
		sec.Verdicts = append(sec.Verdicts, v)
	}
}

// fmt3 formats a latency in ms with 3 decimals.
func fmt3(v float64) string {
	if math.IsNaN(v) {
		return "n/a"
	}
	return fmt.Sprintf("%.3f", v)
}

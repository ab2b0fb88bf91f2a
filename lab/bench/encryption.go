package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
	"github.com/ovsfabric/ovsfabric/wireguard"
)

// wgComm is the userspace WireGuard device process's name (cmd/ovsfabric-wg).
const wgComm = "ovsfabric-wg"

// Labels of the paths of the encryption section.
const (
	labelUnencrypted = "fabric VXLAN (unencrypted)"
	labelEncrypted   = "fabric WireGuard (`--encryption wireguard`)"
)

// encCase is one fabric of the encryption section and what it measured per trial (NaN when
// a trial failed) and per latency round.
type encCase struct {
	label string
	path  *dpPath
	// fdPIDs are the lab's fabricd processes; wgPIDs their userspace WireGuard device
	// processes (ovsfabric-wg), where wireguard-go runs (none with kernel WireGuard, or
	// with a fabricd that embeds wireguard-go: then it shows in fabricd's CPU).
	fdPIDs, wgPIDs []int
	// impl is the WireGuard implementation fabricd reports ("userspace", "kernel"; "" when
	// unencrypted); mtu the container MTU fabricd derived.
	impl string
	mtu  int
	// Per trial: Gbit/s, retransmits, CPU of both hosts' ovs-vswitchd, fabricd and WireGuard
	// device processes (cores), the machine's busy fraction.
	gbps, retr, vsCores, fdCores, wgCores, busy []float64
	// pings are all replies; rounds the p50 of each latency round (ms).
	pings  pingResult
	rounds []float64
}

func newEncCase(label string, trials int) *encCase {
	return &encCase{label: label, gbps: nanSlice(trials), retr: nanSlice(trials), vsCores: nanSlice(trials),
		fdCores: nanSlice(trials), wgCores: nanSlice(trials), busy: nanSlice(trials)}
}

// encCost is an encCase's medians over the trials.
type encCost struct {
	pathCost
	// FDCores and WGCores are the CPU time of the lab's fabricd and WireGuard device
	// processes per wall-clock second.
	FDCores, WGCores float64
}

func (c *encCase) cost() encCost {
	return encCost{
		pathCost: pathCost{Label: c.label, Gbps: Median(c.gbps), Retransmits: Median(c.retr), VSCores: Median(c.vsCores), MachineBusy: Median(c.busy)},
		FDCores:  Median(c.fdCores),
		WGCores:  Median(c.wgCores),
	}
}

// fdPerGbps is fabricd's CPU cost of one Gbit/s, wgPerGbps the WireGuard device processes',
// daemonsPerGbps that of ovs-vswitchd, fabricd and the device processes together.
func (c encCost) fdPerGbps() float64      { return c.FDCores / c.Gbps }
func (c encCost) wgPerGbps() float64      { return c.WGCores / c.Gbps }
func (c encCost) daemonsPerGbps() float64 { return (c.VSCores + c.FDCores + c.WGCores) / c.Gbps }

// sig3 formats v with 3 significant digits (the encrypted fabric's throughput may be well
// below 0.1 Gbit/s, where num would keep one); "n/a" for NaN.
func sig3(v float64) string {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return "n/a"
	}
	if v == 0 {
		return "0"
	}
	return strconv.FormatFloat(v, 'f', max(0, 2-int(math.Floor(math.Log10(math.Abs(v))))), 64)
}

// sig3Spread formats "min–max" of s with sig3.
func sig3Spread(s Summary) string {
	if s.N == 0 {
		return "n/a"
	}
	return sig3(s.Min) + "–" + sig3(s.Max)
}

// wgIfName is a WireGuard interface name for host h unique to this run: a userspace device's
// UAPI socket (/var/run/wireguard/NAME.sock) is machine-wide, and other labs may run at the
// same time. At most 15 bytes (IFNAMSIZ).
func wgIfName(id string, h *lab.Host) string { return "wgb" + id + h.Name }

// encryption measures, in the same run, a 2-host fabric over VXLAN and one with
// --encryption wireguard (both in the main pipeline): single-stream iperf3 throughput in
// interleaved trials with the CPU time of both hosts' ovs-vswitchd and fabricd, then ping
// latency in interleaved rounds.
func (s *suite) encryption(ctx context.Context, secs map[string]*Section) {
	sec := secs["encryption"]
	trials := max(s.cfg.EncTrials, 1)
	unenc, enc := newEncCase(labelUnencrypted, trials), newEncCase(labelEncrypted, trials)
	cases := []*encCase{unenc, enc}
	savedSecs, savedWhy := s.iperfSecs, s.iperfWhy
	s.iperfSecs, s.iperfWhy = iperfSeconds(Config{IperfSeconds: s.cfg.IperfSeconds, Trials: trials, IperfBudget: s.cfg.IperfBudget}, len(cases))
	defer func() { s.iperfSecs, s.iperfWhy = savedSecs, savedWhy }()
	var labs []*lab.Lab
	defer func() {
		for _, l := range labs {
			s.down(l)
		}
	}()
	alone := newAloneCases(min(trials, 2))
	defer func() { s.encryptionReport(sec, unenc, enc, alone, runtime.NumCPU()) }()

	if out, err := run(ctx, 20*time.Second, "", filepath.Join(s.cfg.Bin, "fabricd"), "--help"); err != nil || !strings.Contains(out, "--encryption") {
		sec.Err = fmt.Errorf("fabricd --help lists no --encryption (%v): this build has no encrypted data plane", err)
		return
	}
	idb := make([]byte, 3)
	if _, err := rand.Read(idb); err != nil {
		sec.Err = err
		return
	}
	id := hex.EncodeToString(idb)
	pipeline := s.mainPipeline()
	for _, c := range cases {
		encrypted := c == enc
		name := map[bool]string{false: "enc-vxlan", true: "enc-wg"}[encrypted]
		l, err := s.up(ctx, name, 2, false)
		if err != nil {
			sec.Err = fmt.Errorf("%s: %w", c.label, err)
			return
		}
		labs = append(labs, l)
		o := fabriclab.Options{Bin: s.cfg.Bin, Tunnel: "vxlan", Extra: s.pipelineFlags(pipeline)}
		var extra func(h *lab.Host) []string
		if encrypted {
			o.Extra = append(o.Extra, "--encryption", "wireguard")
			extra = func(h *lab.Host) []string {
				return []string{"--wireguard-interface", wgIfName(id, h), "--wireguard-key-file", filepath.Join(h.Dir, "wireguard.key")}
			}
		}
		f := fabriclab.New(l, o)
		// StartAll waits for convergence: with encryption, a WireGuard handshake with every peer.
		if err := f.StartAll(ctx, l.Hosts, extra); err != nil {
			sec.Err = fmt.Errorf("%s: %w", c.label, err)
			return
		}
		cs, err := f.AddContainers(ctx, "c", api.AttachRequest{})
		if err != nil {
			sec.Err = fmt.Errorf("%s: %w", c.label, err)
			return
		}
		c.path = &dpPath{Label: c.label, Kind: kindFabric, Tunnel: "vxlan", Pipeline: pipeline, Client: cs[0].NetNS,
			Server: cs[1].NetNS, ServerIP: cs[1].IP, lab: l, vsPIDs: vswitchdPIDs(l)}
		for _, n := range f.Nodes() {
			c.fdPIDs = append(c.fdPIDs, n.Proc.PID())
			if st, err := n.Status(ctx); err == nil && st.WireGuard != nil && st.WireGuard.PID > 0 {
				c.wgPIDs = append(c.wgPIDs, st.WireGuard.PID)
			}
		}
		if st, err := f.Nodes()[0].Status(ctx); err == nil {
			c.mtu = st.MTU
			if st.WireGuard != nil {
				c.impl = st.WireGuard.Implementation
			}
		}
		if encrypted && c.impl == "" {
			sec.Err = fmt.Errorf("%s: fabricd's status reports no WireGuard interface", c.label)
			return
		}
		if _, err := l.StartIn(ctx, c.path.Server, "iperf3", []string{"iperf3", "-s", "-p", iperfPort, "--forceflush"}, nil); err != nil {
			sec.Err = fmt.Errorf("%s: iperf3 server: %w", c.label, err)
			return
		}
		if err := fabriclab.Reach(ctx, c.path.Client, c.path.ServerIP, 20*time.Second); err != nil {
			sec.Err = fmt.Errorf("%s: %w", c.label, err)
			return
		}
	}
	s.logf("encryption", "2 fabrics (MTU %d and %d, WireGuard %s) × %d trials, 1 stream, %d s per run (%s)",
		unenc.mtu, enc.mtu, enc.impl, trials, s.iperfSecs, s.iperfWhy)
	for t := range trials {
		order := slices.Clone(cases)
		if t%2 == 1 { // A,B then B,A: drift of the machine favours neither fabric
			slices.Reverse(order)
		}
		for _, c := range order {
			vs0, verr := sampleCPU(c.path.vsPIDs)
			fd0, ferr := sampleProcCPU("fabricd", c.fdPIDs)
			wg0, werr := sampleProcCPU(wgComm, c.wgPIDs)
			r, err := s.iperf(ctx, c.path, 1)
			if ctx.Err() != nil {
				sec.Err = ctx.Err()
				return
			}
			if err != nil {
				s.logf("encryption", "trial %d/%d %s: FAILED: %v", t+1, trials, c.label, err)
				sec.Notes = append(sec.Notes, fmt.Sprintf("trial %d, %s failed: %s", t+1, c.label, oneLine(err.Error())))
				continue
			}
			c.gbps[t], c.retr[t] = r.Gbps, float64(r.Retransmits)
			if verr == nil {
				if vs1, err := sampleCPU(c.path.vsPIDs); err == nil {
					u := use(vs0, vs1)
					c.vsCores[t], c.busy[t] = u.ProcCores, u.MachineBusy
				}
			}
			if ferr == nil {
				if fd1, err := sampleProcCPU("fabricd", c.fdPIDs); err == nil {
					c.fdCores[t] = use(fd0, fd1).ProcCores
				}
			}
			if werr == nil {
				if wg1, err := sampleProcCPU(wgComm, c.wgPIDs); err == nil {
					c.wgCores[t] = use(wg0, wg1).ProcCores
				}
			}
			s.logf("encryption", "trial %d/%d %-45s %6.3f Gbit/s (%d retransmits), ovs-vswitchd %.2f cores, fabricd %.2f cores, %s %.2f cores, machine %.0f%% busy",
				t+1, trials, c.label, r.Gbps, r.Retransmits, c.vsCores[t], c.fdCores[t], wgComm, c.wgCores[t], 100*c.busy[t])
		}
	}

	rounds := max(1, (s.cfg.PingCount+pingBurst-1)/pingBurst)
	for _, c := range cases {
		c.rounds = nanSlice(rounds)
	}
	failed := map[string]bool{}
	for rd := range rounds {
		order := slices.Clone(cases)
		if rd%2 == 1 {
			slices.Reverse(order)
		}
		for _, c := range order {
			r, err := pingRTTs(ctx, c.path.Client, c.path.ServerIP, min(pingBurst, s.cfg.PingCount-rd*pingBurst), s.cfg.PingInterval)
			if ctx.Err() != nil {
				sec.Err = ctx.Err()
				return
			}
			if err != nil {
				if !failed[c.label] {
					sec.Notes = append(sec.Notes, fmt.Sprintf("ping on %s, round %d: %s", c.label, rd+1, oneLine(err.Error())))
				}
				failed[c.label] = true
				continue
			}
			c.pings.RTTs = append(c.pings.RTTs, r.RTTs...)
			c.pings.Dups += r.Dups
			c.pings.Sent += r.Sent
			c.rounds[rd] = Median(r.RTTs)
		}
	}
	for _, c := range cases {
		sm := Summarize(c.pings.RTTs)
		s.logf("encryption", "%-45s %d/%d replies, p50 %.3f ms, p99 %.3f ms", c.label, len(c.pings.RTTs), c.pings.Sent, sm.Median, sm.P99)
	}
	// The labs are idle from here: wireguard-go alone gets the machine as the fabrics had it.
	if err := s.wireguardAlone(ctx, id, alone, enc.mtu); err != nil {
		s.logf("encryption", "wireguard-go alone: %v", err)
		sec.Notes = append(sec.Notes, "wireguard-go alone: "+oneLine(err.Error()))
	}
}

// encryptionReport fills the encryption section from the measurements; cores is the
// machine's number of cores.
func (s *suite) encryptionReport(sec *Section, unenc, enc *encCase, alone []*aloneCase, cores int) {
	if s.iperfSecs == 0 {
		s.iperfSecs, s.iperfWhy = iperfSeconds(Config{IperfSeconds: s.cfg.IperfSeconds, Trials: max(s.cfg.EncTrials, 1), IperfBudget: s.cfg.IperfBudget}, 2)
	}
	impl := enc.impl
	if impl == "" {
		impl = "not known (the fabric did not start)"
	}
	sec.Method = fmt.Sprintf("Two 2-host labs up at once, each a fabric in %s, with one container per host attached "+
		"through fabricd's API: one over VXLAN tunnels (unencrypted), one with `--encryption wireguard` (every host's "+
		"own `--wireguard-interface` and `--wireguard-key-file`; WireGuard implementation here: %s; no gossip key, which "+
		"protects gossip only). iperf3 TCP from h1's container to h2's, 1 stream, %d s per run after 1 omitted warm-up "+
		"second (`-t %d -O 1`; %s), %d trials interleaved (every trial runs both fabrics, in alternating order: A,B, "+
		"B,A, …). Around every run the suite reads the CPU time (utime + stime in /proc/PID/stat) of both hosts' "+
		"ovs-vswitchd, of both hosts' fabricd and of both hosts' WireGuard device processes (ovsfabric-wg, where "+
		"userspace WireGuard, wireguard-go, runs and encrypts) — and the machine's (/proc/stat); *cores* are CPU seconds per wall-clock second of the "+
		"run, *per Gbit/s* divided by the run's Gbit/s (medians over the trials). Then ping RTT, %d echo requests at %s "+
		"intervals per fabric, in rounds of %d alternating between the fabrics; p50 of the first reply to each request. "+
		"Ratios are of medians, with the range of the ratios paired trial by trial (round by round for latency) in "+
		"brackets. Last, wireguard-go alone, without OVS: three namespaces in a row (client —veth— A —veth— B), A "+
		"forwarding the client's traffic into its WireGuard device process (ovsfabric-wg, configured through its UAPI "+
		"socket like fabricd does) toward B's, iperf3 client → B at the encrypted fabric's MTU, the same duration, cases "+
		"interleaved: the client's TSO/GSO off (single packets, as the fabric's gateway delivers them), the same with GRO "+
		"on at A's ingress veth, and the client's GSO on; CPU of both device processes. The \"what limits it\" column is "+
		"derived from these measurements.",
		s.mainPipelineName(), impl, s.iperfSecs, s.iperfSecs, s.iperfWhy, max(s.cfg.EncTrials, 1), s.cfg.PingCount, s.cfg.PingInterval, pingBurst)

	cc, ec := unenc.cost(), enc.cost()
	pct := func(v float64) string {
		if math.IsNaN(v) {
			return "n/a"
		}
		return fmt.Sprintf("%.0f%%", 100*v)
	}
	mtu := func(c *encCase) string {
		if c.mtu == 0 {
			return "n/a"
		}
		return fmt.Sprint(c.mtu)
	}
	tp := Table{Header: []string{"path (container ↔ container, 1 stream)", "MTU", "Gbit/s median", "min–max", "retransmits (median)",
		"ovs-vswitchd cores per Gbit/s", "fabricd cores per Gbit/s", "ovsfabric-wg cores per Gbit/s", "all three per Gbit/s", "machine busy", "vs unencrypted"}}
	for _, c := range []*encCase{unenc, enc} {
		pc := c.cost()
		vs := "—"
		if c == enc {
			vs = fmt.Sprintf("%s (%s)", ratio(pc.Gbps/cc.Gbps), ratioSpread(Summarize(Ratios(enc.gbps, unenc.gbps))))
		}
		tp.AddRow(c.label, mtu(c), sig3(pc.Gbps), sig3Spread(Summarize(c.gbps)), num(pc.Retransmits), num(pc.coresPerGbps()),
			num(pc.fdPerGbps()), num(pc.wgPerGbps()), num(pc.daemonsPerGbps()), pct(pc.MachineBusy), vs)
	}
	sec.Tables = append(sec.Tables, tp)

	p50c, p50e := Median(unenc.pings.RTTs), Median(enc.pings.RTTs)
	roundRatios := Ratios(enc.rounds, unenc.rounds)
	lt := Table{Header: []string{"path (container ↔ container)", "replies", "duplicates", "p50 ms", "p90 ms", "p99 ms", "max ms", "p50 vs unencrypted"}}
	for _, c := range []*encCase{unenc, enc} {
		if c.pings.Sent == 0 {
			lt.AddRow(c.label, "not measured")
			continue
		}
		sm := Summarize(c.pings.RTTs)
		vs := "—"
		if c == enc {
			vs = fmt.Sprintf("%s (%s)", ratio(p50e/p50c), ratioSpread(Summarize(roundRatios)))
		}
		lt.AddRow(c.label, fmt.Sprintf("%d/%d", len(c.pings.RTTs), c.pings.Sent), fmt.Sprint(c.pings.Dups),
			fmt3(sm.Median), fmt3(sm.P90), fmt3(sm.P99), fmt3(sm.Max), vs)
	}
	sec.Tables = append(sec.Tables, lt)
	var aloneWhy string
	if len(alone) > 0 && !math.IsNaN(Median(alone[0].gbps)) {
		var at Table
		at, aloneWhy = aloneReport(alone)
		sec.Tables = append(sec.Tables, at)
	}

	rt := ec.Gbps / cc.Gbps
	paired := Summarize(Ratios(enc.gbps, unenc.gbps))
	v := Verdict{Target: "encrypted ≥ 0.5× unencrypted throughput (1 stream)", Status: Check(rt, rt >= 0.5)}
	if v.Status == NotMeasured {
		v.Measured, v.Limit = "n/a", "not measured (see above)"
	} else {
		v.Measured = fmt.Sprintf("%s (paired trials %s; %s vs %s Gbit/s, %d trials)", ratio(rt), ratioSpread(paired), sig3(ec.Gbps), sig3(cc.Gbps), paired.N)
		v.Limit = explainEncryption(ec, cc, enc.impl, cores) + aloneWhy
	}
	lat := Verdict{Target: "encrypted p50 latency vs unencrypted", Status: Reported}
	if lr := p50e / p50c; math.IsNaN(lr) {
		lat.Measured, lat.Status, lat.Limit = "n/a", NotMeasured, "not measured (see above)"
	} else {
		lat.Measured = fmt.Sprintf("%s (%s vs %s ms; paired rounds %s)", ratio(lr), fmt3(p50e), fmt3(p50c), ratioSpread(Summarize(roundRatios)))
		lat.Limit = fmt.Sprintf("encryption adds %+.0f µs per round trip at the p50 (two WireGuard legs: h1 → h2 and back)", 1000*(p50e-p50c))
	}
	cpu := Verdict{Target: "CPU (ovs-vswitchd + fabricd + ovsfabric-wg) per Gbit/s, encrypted vs unencrypted", Status: Reported}
	if cr := ec.daemonsPerGbps() / cc.daemonsPerGbps(); math.IsNaN(cr) {
		cpu.Measured, cpu.Status, cpu.Limit = "n/a", NotMeasured, "CPU time not measured (see above)"
	} else {
		cpu.Measured = fmt.Sprintf("%s (%s vs %s cores per Gbit/s)", ratio(cr), num(ec.daemonsPerGbps()), num(cc.daemonsPerGbps()))
		cpu.Limit = fmt.Sprintf("per Gbit/s: ovs-vswitchd %s vs %s cores, fabricd %s vs %s, ovsfabric-wg (wireguard-go) %s", num(ec.coresPerGbps()), num(cc.coresPerGbps()),
			num(ec.fdPerGbps()), num(cc.fdPerGbps()), num(ec.wgPerGbps()))
	}
	sec.Verdicts = append(sec.Verdicts, v, lat, cpu)
	for _, c := range []*encCase{unenc, enc} {
		if c.pings.Dups > 0 {
			sec.Notes = append(sec.Notes, fmt.Sprintf("%s: %d duplicate replies to %d requests — packets were delivered more than once on this path.", c.label, c.pings.Dups, c.pings.Sent))
		}
	}
}

// explainEncryption says what limits the encrypted fabric's throughput against the
// unencrypted one, derived only from what the run measured: where the added CPU per Gbit/s
// goes (fabricd, which holds userspace WireGuard, or ovs-vswitchd), whether the machine's CPU
// was saturated (then throughput goes with the inverse of the machine's CPU per Gbit/s), and
// retransmits.
func explainEncryption(enc, unenc encCost, impl string, cores int) string {
	perGbps := func(c encCost) string {
		if math.IsNaN(c.VSCores) || math.IsNaN(c.FDCores) {
			return fmt.Sprintf("%s %s Gbit/s (CPU not measured)", c.Label, sig3(c.Gbps))
		}
		return fmt.Sprintf("%s %s Gbit/s, ovs-vswitchd %s + fabricd %s + ovsfabric-wg %s cores busy = %s + %s + %s per Gbit/s", c.Label, sig3(c.Gbps),
			num(c.VSCores), num(c.FDCores), num(c.WGCores), num(c.coresPerGbps()), num(c.fdPerGbps()), num(c.wgPerGbps()))
	}
	out := "measured (medians): " + perGbps(enc) + "; " + perGbps(unenc) + ". "
	var causes []string
	dVS, dFD, dWG := enc.coresPerGbps()-unenc.coresPerGbps(), enc.fdPerGbps()-unenc.fdPerGbps(), enc.wgPerGbps()-unenc.wgPerGbps()
	if math.IsNaN(dWG) {
		dWG = 0
	}
	if added := dVS + dFD + dWG; !math.IsNaN(added) && added > 0 {
		who, share, what := "ovsfabric-wg's", dWG/added, "the WireGuard device processes: wireguard-go's encryption, its TUN device, its UDP socket"
		if impl == "kernel" {
			who, share, what = "fabricd's", dFD/added, "though kernel WireGuard's own work is not counted in any process's CPU time"
		} else if dFD > dWG {
			who, share, what = "fabricd's", dFD/added, "which embeds wireguard-go in this build"
		}
		if dVS > dWG && dVS > dFD {
			who, share, what = "ovs-vswitchd's", dVS/added, "through which the encrypted path hands every packet to the host kernel (gateway port) and WireGuard's UDP back out (br-phy)"
		}
		causes = append(causes, fmt.Sprintf("a Gbit/s encrypted costs the daemons %s× the CPU of one unencrypted "+
			"(%s against %s cores per Gbit/s); %.0f%% of the difference is %s, %s", num(enc.daemonsPerGbps()/unenc.daemonsPerGbps()),
			num(enc.daemonsPerGbps()), num(unenc.daemonsPerGbps()), 100*share, who, what))
	}
	if enc.MachineBusy >= cpuBound && unenc.MachineBusy >= cpuBound && cores > 0 {
		me, mc := enc.MachineBusy*float64(cores)/enc.Gbps, unenc.MachineBusy*float64(cores)/unenc.Gbps
		causes = append(causes, fmt.Sprintf("the machine's CPU was %.0f%% and %.0f%% busy: CPU bounds both, and the machine "+
			"spent %s cores per Gbit/s encrypted against %s unencrypted, which alone predicts a ratio of %s (measured %s)",
			100*enc.MachineBusy, 100*unenc.MachineBusy, num(me), num(mc), ratio(mc/me), ratio(enc.Gbps/unenc.Gbps)))
	} else if enc.MachineBusy >= cpuBound {
		causes = append(causes, fmt.Sprintf("the machine's CPU was %.0f%% busy during the encrypted runs: CPU, not a link, bounds them", 100*enc.MachineBusy))
	}
	if !math.IsNaN(enc.FDCores) && enc.FDCores >= 0.9 {
		causes = append(causes, fmt.Sprintf("fabricd kept %s cores busy (of %d)", num(enc.FDCores), cores))
	}
	if !math.IsNaN(enc.WGCores) && enc.WGCores >= 0.9 {
		causes = append(causes, fmt.Sprintf("the two WireGuard device processes kept %s cores busy (of %d)", num(enc.WGCores), cores))
	}
	if enc.Retransmits >= 100 && enc.Retransmits > 2*unenc.Retransmits {
		causes = append(causes, fmt.Sprintf("the encrypted path retransmitted %s× as much: packets were dropped on it",
			num(enc.Retransmits/math.Max(unenc.Retransmits, 1))))
	}
	if len(causes) == 0 {
		return out + "These measurements show no cause (no added CPU per Gbit/s, the machine's CPU not saturated, no excess " +
			"of retransmits); hypothesis, not measured: scheduling of the processes on the shared cores."
	}
	return out + "Derived: " + strings.Join(causes, "; ") + "."
}

// aloneCase is one way of feeding wireguard-go in the measurement of wireguard-go alone.
type aloneCase struct {
	label string
	// clientGSO leaves the client's TSO/GSO on (its TCP's super-packets pass the veth whole);
	// ingressGRO turns GRO on at the forwarding host's ingress veth (a NAPI device: it
	// coalesces single packets into GSO ones before they are routed into WireGuard).
	clientGSO, ingressGRO bool
	gbps, wgCores         []float64
}

// Labels of the measurement of wireguard-go alone.
const (
	labelAloneSingle = "single packets ≤ MTU (as the fabric's gateway hands them to the kernel)"
	labelAloneGRO    = "the same, coalesced by GRO at the forwarding host's ingress"
	labelAloneGSO    = "GSO super-packets of the client's TCP"
)

func newAloneCases(trials int) []*aloneCase {
	return []*aloneCase{
		{label: labelAloneSingle, gbps: nanSlice(trials), wgCores: nanSlice(trials)},
		{label: labelAloneGRO, ingressGRO: true, gbps: nanSlice(trials), wgCores: nanSlice(trials)},
		{label: labelAloneGSO, clientGSO: true, gbps: nanSlice(trials), wgCores: nanSlice(trials)},
	}
}

// wireguardAlone measures the fabric's WireGuard program on its own, without OVS: three
// namespaces in a row, client —veth— A —veth— B, A forwarding the client's traffic into a
// WireGuard device process (ovsfabric-wg, configured through its UAPI socket by package
// wireguard, as fabricd does) toward B's; iperf3 from the client to B at the fabric's MTU.
// The cases differ only in what A's kernel hands wireguard-go: single packets, or GSO
// packets. It reports, per case and trial, Gbit/s and the two device processes' CPU.
func (s *suite) wireguardAlone(ctx context.Context, id string, cases []*aloneCase, mtu int) (err error) {
	bin := filepath.Join(s.cfg.Bin, wgComm)
	if _, err := os.Stat(bin); err != nil {
		return fmt.Errorf("no %s in %s (a build whose fabricd embeds wireguard-go)", wgComm, s.cfg.Bin)
	}
	if mtu == 0 {
		mtu = 1440
	}
	ns := func(n string) string { return "ovsfab-wgx" + id + "-" + n }
	var made []string
	defer func() {
		for _, n := range made {
			if derr := exec.Command("ip", "netns", "del", n).Run(); derr != nil {
				err = errors.Join(err, fmt.Errorf("delete netns %s: %w", n, derr))
			}
		}
	}()
	sh := func(argv ...string) error {
		_, err := run(ctx, 20*time.Second, "", argv...)
		return err
	}
	for _, n := range []string{"c", "a", "b"} {
		if err := sh("ip", "netns", "add", ns(n)); err != nil {
			return err
		}
		made = append(made, ns(n))
	}
	steps := [][]string{
		{"ip", "link", "add", "c", "netns", ns("c"), "type", "veth", "peer", "name", "c", "netns", ns("a")},
		{"ip", "link", "add", "u", "netns", ns("a"), "type", "veth", "peer", "name", "u", "netns", ns("b")},
		{"ip", "-n", ns("c"), "addr", "add", "10.98.1.2/24", "dev", "c"},
		{"ip", "-n", ns("a"), "addr", "add", "10.98.1.1/24", "dev", "c"},
		{"ip", "-n", ns("a"), "addr", "add", "192.0.2.1/24", "dev", "u"},
		{"ip", "-n", ns("b"), "addr", "add", "192.0.2.2/24", "dev", "u"},
		{"ip", "-n", ns("c"), "link", "set", "c", "up", "mtu", strconv.Itoa(mtu)},
		{"ip", "-n", ns("a"), "link", "set", "c", "up", "mtu", strconv.Itoa(mtu)},
		{"ip", "-n", ns("a"), "link", "set", "u", "up"},
		{"ip", "-n", ns("b"), "link", "set", "u", "up"},
		{"ip", "-n", ns("c"), "link", "set", "lo", "up"},
		{"ip", "-n", ns("b"), "link", "set", "lo", "up"},
		{"ip", "-n", ns("c"), "route", "add", "default", "via", "10.98.1.1"},
		{"ip", "netns", "exec", ns("a"), "sysctl", "-qw", "net.ipv4.ip_forward=1"},
	}
	for _, st := range steps {
		if err := sh(st...); err != nil {
			return err
		}
	}
	keys := make([]wireguard.Key, 2)
	devs := make([]*wireguard.Device, 2)
	defer func() {
		for _, d := range devs {
			if d != nil {
				if derr := d.Delete(); derr != nil {
					err = errors.Join(err, derr)
				}
			}
		}
	}()
	dir, err := os.MkdirTemp("", "ovsfab-wgx-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	// The device processes' own log lines stay out of the bench's output.
	logf, err := os.Create(filepath.Join(dir, "ovsfabric-wg.log"))
	if err != nil {
		return err
	}
	defer logf.Close()
	for i, n := range []string{"a", "b"} {
		if keys[i], _, err = wireguard.LoadOrCreateKey(filepath.Join(dir, n+".key")); err != nil {
			return err
		}
		name := "wgx" + id + n
		devs[i], err = wireguard.Open(wireguard.Options{Name: name, MTU: mtu, Implementation: wireguard.Userspace,
			NetNS: filepath.Join("/var/run/netns", ns(n)), Process: &wireguard.ProcessOptions{Binary: bin, Pidfile: filepath.Join(dir, name+".pid"), Output: logf}})
		if err != nil {
			return err
		}
	}
	under := []string{"192.0.2.1", "192.0.2.2"}
	allowed := []string{"10.98.1.0/24", "10.98.2.0/24"}
	for i := range devs {
		o := 1 - i
		if _, err := devs[i].Set(wireguard.Config{PrivateKey: keys[i], ListenPort: 51820, Peers: []wireguard.Peer{{
			PublicKey: keys[o].PublicKey(), Endpoint: netip.MustParseAddrPort(under[o] + ":51820"),
			AllowedIPs: []netip.Prefix{netip.MustParsePrefix(allowed[o])}}}}); err != nil {
			return err
		}
	}
	for _, st := range [][]string{
		{"ip", "-n", ns("a"), "link", "set", devs[0].Name(), "up"},
		{"ip", "-n", ns("a"), "route", "add", allowed[1], "dev", devs[0].Name(), "src", "10.98.1.1"},
		{"ip", "-n", ns("b"), "addr", "add", "10.98.2.1/24", "dev", devs[1].Name()},
		{"ip", "-n", ns("b"), "route", "add", allowed[0], "dev", devs[1].Name()},
	} {
		if err := sh(st...); err != nil {
			return err
		}
	}
	srv := command(ctx, ns("b"), "iperf3", "-s", "-p", iperfPort)
	if err := srv.Start(); err != nil {
		return fmt.Errorf("iperf3 server: %w", err)
	}
	defer func() { _ = srv.Process.Kill(); _ = srv.Wait() }()
	path := &dpPath{Label: "wireguard-go alone", Client: ns("c"), Server: ns("b"), ServerIP: "10.98.2.1"}
	if err := fabriclab.Reach(ctx, path.Client, path.ServerIP, 20*time.Second); err != nil {
		return err
	}
	onOff := map[bool]string{true: "on", false: "off"}
	pids := []int{devs[0].PID(), devs[1].PID()}
	for t := range len(cases[0].gbps) {
		order := slices.Clone(cases)
		if t%2 == 1 {
			slices.Reverse(order)
		}
		for _, c := range order {
			if err := sh("ip", "netns", "exec", ns("c"), "ethtool", "-K", "c", "tso", onOff[c.clientGSO], "gso", onOff[c.clientGSO]); err != nil {
				return err
			}
			if err := sh("ip", "netns", "exec", ns("a"), "ethtool", "-K", "c", "gro", onOff[c.ingressGRO]); err != nil {
				return err
			}
			w0, werr := sampleProcCPU(wgComm, pids)
			r, err := s.iperf(ctx, path, 1)
			if err != nil {
				s.logf("encryption", "wireguard-go alone, trial %d, %s: FAILED: %v", t+1, c.label, err)
				continue
			}
			c.gbps[t] = r.Gbps
			if werr == nil {
				if w1, err := sampleProcCPU(wgComm, pids); err == nil {
					c.wgCores[t] = use(w0, w1).ProcCores
				}
			}
			s.logf("encryption", "wireguard-go alone, trial %d: %-70s %6.3f Gbit/s, ovsfabric-wg %.2f cores", t+1, c.label, r.Gbps, c.wgCores[t])
		}
	}
	return nil
}

// aloneReport is the table of wireguardAlone's cases and a sentence for the throughput
// verdict's explanation ("" when it was not measured).
func aloneReport(cases []*aloneCase) (Table, string) {
	t := Table{Header: []string{"wireguard-go alone (2 ovsfabric-wg, veth, no OVS): what the forwarding host's kernel hands it", "Gbit/s median", "min–max", "ovsfabric-wg cores per Gbit/s", "vs single packets"}}
	var single, gro float64 = math.NaN(), math.NaN()
	var singleCPU, groCPU float64 = math.NaN(), math.NaN()
	for _, c := range cases {
		g, cpu := Median(c.gbps), Median(c.wgCores)/Median(c.gbps)
		switch c.label {
		case labelAloneSingle:
			single, singleCPU = g, cpu
		case labelAloneGRO:
			gro, groCPU = g, cpu
		}
	}
	for _, c := range cases {
		g := Median(c.gbps)
		vs := "—"
		if c.label != labelAloneSingle {
			vs = ratio(g / single)
		}
		t.AddRow(c.label, sig3(g), sig3Spread(Summarize(c.gbps)), num(Median(c.wgCores)/g), vs)
	}
	if math.IsNaN(single) || math.IsNaN(gro) {
		return t, ""
	}
	return t, fmt.Sprintf(" Measured without OVS (same run): wireguard-go forwards %s Gbit/s of single packets at %s cores per Gbit/s, "+
		"and %s Gbit/s at %s once GRO at the forwarding host's ingress has coalesced them into GSO packets (%s): the fabric's "+
		"gateway is an OVS internal port (a tap without NAPI, so no GRO), which hands the kernel, and so wireguard-go, single "+
		"packets; the encrypted path also crosses ovs-vswitchd twice per host (br-int → gateway, WireGuard's UDP → br-phy).",
		sig3(single), num(singleCPU), sig3(gro), num(groCPU), ratio(gro/single))
}

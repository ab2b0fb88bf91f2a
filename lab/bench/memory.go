package bench

import (
	"context"
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

// Memory lab addressing: fabricd holds the first /24 of memCIDR statically, the swarm the
// following ones.
const (
	memCIDR      = "10.64.0.0/12"
	memSubnet    = "10.64.0.0/24"
	memSwarmPort = 20000
)

// memory measures fabricd's RSS with a view of cfg.MemoryPeers peers: one real fabricd on a
// lab host, joined by a swarm of synthetic members (this program, `swarm`, in the lab's
// external namespace) until fabricd has every one of them alive with a tunnel port and a
// route. The idle figure comes from the control phase's 3-host fabric.
func (s *suite) memory(ctx context.Context, secs map[string]*Section) {
	sec := secs["memory"]
	synthetic := s.cfg.MemoryPeers
	sec.Method = fmt.Sprintf("fabricd's resident set size (VmRSS in /proc/PID/status), sampled 10 times 0.5 s apart "+
		"after its view has settled. Idle: the three fabricd of the control-plane lab (3 hosts, one container each), "+
		"3 s after convergence. At %d peers: one real fabricd on a lab host (VXLAN, %s, cluster CIDR %s, static subnet %s) "+
		"joined by %d synthetic members that this program runs (`fabric-bench swarm`) in the lab's external namespace "+
		"on the underlay: bare hashicorp/memberlist nodes announcing fabricd's metadata (a /24 of the cluster CIDR and "+
		"an unreachable underlay address in 198.18.0.0/15). fabricd, with its default timings, probes, gossips and "+
		"pushes/pulls with them as with real hosts, plans for them, and keeps a VXLAN tunnel port per peer in OVSDB "+
		"(and so in its libovsdb cache) and a route per peer in the kernel: everything but data traffic. To keep the "+
		"swarm itself cheap on one machine, each synthetic member keeps only fabricd in its own view, probes it every "+
		"20 s and never starts a push/pull. Sampled once fabricd's status shows every synthetic peer alive with a tunnel.",
		s.cfg.MemoryPeers, s.mainPipelineName(), memCIDR, memSubnet, synthetic)
	var alone, full []float64
	var settle time.Duration
	var viewed int
	defer func() { s.memoryReport(sec, alone, full, viewed, settle) }()

	l, err := s.up(ctx, "mem", 1, true)
	if err != nil {
		sec.Err = err
		return
	}
	defer s.down(l)
	h := l.Hosts[0]
	extra := append([]string{"--cluster-cidr", memCIDR, "--subnet", memSubnet, "--log-level", "warn"}, s.pipelineFlags(s.mainPipeline())...)
	f := fabriclab.New(l, fabriclab.Options{Bin: s.cfg.Bin, Tunnel: "vxlan", Extra: extra})
	n, err := f.Start(ctx, h)
	if err != nil {
		sec.Err = err
		return
	}
	if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
		sec.Err = err
		return
	}
	_ = sleepCtx(ctx, 2*time.Second)
	alone = s.sampleRSS(ctx, n.Proc.PID(), 5)
	s.logf("memory", "fabricd alone: RSS median %.1f MiB; starting %d synthetic members", Median(alone), synthetic)

	begin := time.Now()
	swarm, err := l.StartIn(ctx, l.External, "swarm", []string{s.cfg.Self, "swarm",
		"--members", fmt.Sprint(synthetic), "--bind", l.ExternalIP.String(), "--port", fmt.Sprint(memSwarmPort),
		"--join", fmt.Sprintf("%s:7946", h.UnderlayIP), "--cluster-cidr", memCIDR, "--tunnel", "vxlan"}, nil)
	if err != nil {
		sec.Err = err
		return
	}
	var alive, tunnels int
	for {
		st, err := n.Status(ctx)
		if err == nil {
			alive, tunnels = 0, 0
			for _, p := range st.Peers {
				if p.State == "alive" && p.Tunnel != "" {
					alive++
				}
				if p.Tunnel != "" {
					tunnels++
				}
			}
			if alive >= synthetic {
				break
			}
		}
		if !swarm.Alive() {
			sec.Err = fmt.Errorf("the swarm exited: %s", tailFile(swarm.LogFile(), 5))
			return
		}
		if !n.Proc.Alive() {
			sec.Err = fmt.Errorf("fabricd exited: %s", tailFile(n.Proc.LogFile(), 5))
			return
		}
		if time.Since(begin) > 3*time.Minute {
			// Measure anyway, and say at how many peers.
			sec.Err = fmt.Errorf("after 3 min fabricd had %d of %d synthetic peers alive with a tunnel (%d with a tunnel in any state); the figure below is at that view",
				alive, synthetic, tunnels)
			break
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			sec.Err = err
			return
		}
	}
	viewed = alive
	settle = time.Since(begin)
	s.logf("memory", "fabricd has %d peers alive with tunnels after %s; sampling", alive, settle.Round(time.Second))
	_ = sleepCtx(ctx, 5*time.Second)
	full = s.sampleRSS(ctx, n.Proc.PID(), 10)
	// What fabricd actually holds at that point, from OVSDB and the kernel.
	if out, err := h.Vsctl(ctx, "list-ports", "br-int"); err == nil {
		ports := strings.Count(out, "\n")
		routes := -1
		if out, err := run(ctx, 30*time.Second, h.NetNS, "ip", "route", "show", "proto", "147"); err == nil {
			routes = strings.Count(out, "\n")
		}
		sec.Notes = append(sec.Notes, fmt.Sprintf("While sampling, br-int had %d ports in OVSDB (the gateway and the tunnels) and the host %d routes of protocol 147.", ports, routes))
	}
	if swarmRSS, err := rssMiB(swarm.PID(), "fabric-bench"); err == nil {
		sec.Notes = append(sec.Notes, fmt.Sprintf("For scale: the swarm process (%d bare memberlist members in one Go process) used %.0f MiB.", synthetic, swarmRSS))
	}
	s.logf("memory", "fabricd at %d peers: RSS median %.1f MiB, max %.1f MiB", alive, Median(full), Summarize(full).Max)
}

// sampleRSS reads fabricd's RSS n times, 0.5 s apart.
func (s *suite) sampleRSS(ctx context.Context, pid, n int) []float64 {
	var out []float64
	for i := range n {
		if i > 0 && sleepCtx(ctx, 500*time.Millisecond) != nil {
			break
		}
		if v, err := rssMiB(pid, "fabricd"); err == nil {
			out = append(out, v)
		}
	}
	return out
}

func (s *suite) memoryReport(sec *Section, alone, full []float64, viewed int, settle time.Duration) {
	t := Table{Header: []string{"fabricd", "peers in view", "RSS median MiB", "min–max MiB", "samples"}}
	for _, r := range []struct {
		name, peers string
		xs          []float64
	}{
		{"idle in a 3-host fabric (each of the 3)", "2", s.idleRSS},
		{"alone (memory lab, before the swarm)", "0", alone},
		{"with the synthetic swarm", fmt.Sprintf("%d alive with a tunnel (synthetic)", viewed), full},
	} {
		sm := Summarize(r.xs)
		t.AddRow(r.name, r.peers, num(sm.Median), spread(sm), fmt.Sprint(sm.N))
	}
	sec.Tables = append(sec.Tables, t)
	if settle > 0 {
		sec.Notes = append(sec.Notes, fmt.Sprintf("fabricd had every synthetic peer alive with a tunnel %s after the swarm started.", settle.Round(time.Second)))
	}
	mx := math.NaN()
	if len(full) > 0 && viewed >= s.cfg.MemoryPeers {
		mx = Summarize(full).Max
	}
	v := Verdict{Target: fmt.Sprintf("RSS < 60 MiB at %d peers", s.cfg.MemoryPeers), Measured: fmt.Sprintf("max %s MiB (median %s)", num(mx), num(Median(full))), Status: Check(mx, mx < 60)}
	switch v.Status {
	case NotMeasured:
		v.Measured, v.Limit = "n/a", "not measured (see above)"
	case Missed:
		v.Limit = "per-peer state: memberlist's node table and broadcast queue, the peer view and plan, and the libovsdb cache of every Port and Interface row (each tunnel carries options and external_ids)"
	}
	idle := Summarize(s.idleRSS)
	sec.Verdicts = append(sec.Verdicts, Verdict{Target: "idle in a 3-host fabric (reported)", Measured: fmt.Sprintf("%s MiB median", num(idle.Median)), Status: map[bool]Status{true: Reported, false: NotMeasured}[idle.N > 0]}, v)
}

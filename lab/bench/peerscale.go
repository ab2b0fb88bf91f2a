package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
	"github.com/ovsfabric/ovsfabric/ovsdb"
	"github.com/ovsfabric/ovsfabric/peers"
)

// Peer scale lab addressing: fabricd holds the first /24 of peerCIDR statically, synthetic
// member i the (i+1)-th; a /9 has room for 32767 members.
const (
	peerCIDR      = "10.128.0.0/9"
	peerSubnet    = "10.128.0.0/24"
	peerSwarmPort = 20000
	// peerMetricsAddr is fabricd's --metrics-addr, inside the lab host's namespace.
	peerMetricsAddr = "127.0.0.1:9477"
	// peerWindow is the steady-state window after convergence in which the no-change
	// reconciles are timed and the RSS is sampled; peerNewPeers members then join one by one.
	peerWindow   = 20 * time.Second
	peerNewPeers = 3
	// peerSeeds members join fabricd; the others join one of them (SwarmConfig.Seeds).
	peerSeeds = 16
	// peerTick is how often, in the window, the bench writes peerTickKey into the
	// Open_vSwitch row's external_ids: fabricd monitors that column, so every write wakes a
	// reconcile that has nothing to change.
	peerTick = time.Second
	// peerScrape is how often the window reads fabricd's metrics: often enough that a
	// resync pass and the pass right after it rarely end between the same two scrapes.
	peerScrape  = 25 * time.Millisecond
	peerTickKey = "ovsfabric-bench-tick"
	// peerStall ends a cell's wait for convergence early when fabricd's view has not grown
	// for that long (members whose every alive message was lost are never heard of).
	peerStall = time.Minute
	// peerNewPeerTimeout bounds the wait for one new peer, peerRealTimeout the real host's
	// wait for a reply.
	peerNewPeerTimeout = 30 * time.Second
	peerRealTimeout    = 90 * time.Second
)

// The tunnel modes (fabricd's --tunnel-mode).
const (
	modePerPeer = "per-peer"
	modeFlow    = "flow"
)

// flowModeNA is how the flow rows read when fabricd has no --tunnel-mode flag.
const flowModeNA = "flow mode not available in this build (fabricd --help lists no --tunnel-mode)"

// peerCell is what one (tunnel mode, peers) cell measured.
type peerCell struct {
	mode  string
	peers int
	err   error
	// limit is the convergence cap; reached the peers fabricd had applied when convergence
	// ended (all of them, or as many as it had when the cap struck).
	limit   time.Duration
	reached int
	// swarmReady is when every synthetic member had joined (the swarm's own report), applied
	// when fabricd's metrics first showed every peer alive with its route (and, per peer, its
	// tunnel port) applied, dataPlane when ovs-vswitchd had them too (per-peer mode: every
	// tunnel port has an OpenFlow port number); all from the swarm's start, 0 when not reached.
	swarmReady, applied, dataPlane time.Duration
	// CPU (cores) during convergence and in the steady window.
	cpuFabricd, cpuVSwitchd, cpuSwarm, machineBusy float64
	winFabricd, winVSwitchd                        float64
	// reconcileMs are the no-change reconciles timed in the window that compared the flows
	// with those last applied (with a fabricd that does not count flow dumps: all of them);
	// resyncMs those that dumped the bridge's flows (the periodic --resync pass); reconciles all reconciles
	// in it; changes the changes fabricd logged in it (0 when every reconcile changed nothing).
	reconcileMs []float64
	resyncMs    []float64
	reconciles  int
	changes     int
	// rss are fabricd's RSS samples (MiB) in the window; vsRSS ovs-vswitchd's.
	rss   []float64
	vsRSS float64
	// ports and flows are br-int's port count (OVSDB) and flow count (ovs-vswitchd).
	ports, flows int
	// newRoute, newOVS, newUsable are the new peers' times (ms) from the member's start until
	// the kernel had its route, until ovs-vswitchd had its tunnel port (per-peer) or a flow
	// toward its address (flow), and until both.
	newRoute, newOVS, newUsable []float64
	// A real host joining the filled fabric, from its fabricd's start: its API answers, its
	// container is attached, and that container has a reply from the container on the first
	// host; realErr is why it did not get that far.
	realAPI, realAttach, realReply time.Duration
	realErr                        error
}

// nearlyFull reports whether fabricd's view reached 99% of the cell's peers: enough for the
// figures to stand for the size (the report says at how many they were measured).
func (c *peerCell) nearlyFull() bool { return c.reached*100 >= c.peers*99 }

// peerScaleModes runs fabricd --help: with --tunnel-mode the flow rows run.
func (s *suite) peerScaleModes(ctx context.Context) bool {
	out, err := run(ctx, 20*time.Second, "", filepath.Join(s.cfg.Bin, "fabricd"), "--help")
	return err == nil && strings.Contains(out, "--tunnel-mode")
}

// peerCap is how long a cell waits for convergence: 30 s plus 50 ms a peer, at most max.
func peerCap(peers int, max time.Duration) time.Duration {
	return min(30*time.Second+time.Duration(peers)*50*time.Millisecond, max)
}

// peerScale measures one real fabricd joined by a swarm of synthetic members at each size of
// cfg.PeerScale, in both tunnel modes: convergence, no-change reconcile, RSS, a new peer.
func (s *suite) peerScale(ctx context.Context, secs map[string]*Section) {
	sec := secs["scale-peers"]
	modeFlag := s.peerScaleModes(ctx)
	sec.Method = fmt.Sprintf("Per cell (tunnel mode × peers, the modes interleaved at each size) a fresh 1-host lab: one real "+
		"fabricd (VXLAN, %s, cluster CIDR %s, static subnet %s, default timings and log level, `--metrics-addr` for its "+
		"Prometheus series, `--tunnel-mode per-peer|flow`) joined by N synthetic members that this program runs "+
		"(`fabric-bench swarm`, as in the memory section: bare memberlist nodes in the lab's external namespace announcing "+
		"fabricd's metadata, a /24 each and an unreachable underlay address in 198.18.0.0/15; here only the first %d join "+
		"fabricd, the others one of those, so that a join exchanges a 2-node view rather than fabricd's whole one, and fabricd "+
		"hears of each from the alive message it then gossips to fabricd within its 1 s gossip interval, as it hears of "+
		"hosts that joined through another). "+
		"**Convergence**, from the swarm's start: *fabricd applied* is the first scrape (every 250 ms) of fabricd's "+
		"metrics showing N peers alive and N routes (and, per-peer, N tunnel ports) applied by a successful reconcile; "+
		"*data plane* is when ovs-vswitchd has them too (per-peer: every tunnel port has an OpenFlow port number in OVSDB; "+
		"flow: fabricd programs the flows within the reconcile, so it is the same instant). Each cell's wait is capped at "+
		"30 s + 50 ms per peer, at most %s, and ended after a minute without progress; a cell that stops short reports how far "+
		"it got and is measured at that view (its targets count only at ≥ 99%% of the peers, and say at how many). "+
		"**No-change reconcile**: 3 s after convergence, fabricd's `fabricd_reconcile_duration_seconds` is scraped every "+
		"%s for %s; where its count rose by exactly one between two scrapes, the rise of its sum is that reconcile's "+
		"time, and the rise of `fabricd_reconcile_flow_dumps_total` tells the two kinds of pass apart: most compare the "+
		"flows they want with those last applied and, finding no difference, end there (*woken by an event*); one every "+
		"--resync (default 5 s, kept) also dumps the bridge's flows to find changes made behind fabricd's back (*resync "+
		"pass*). For more samples the bench wakes a pass every %s with an unrelated OVSDB write (the key "+peerTickKey+
		" in the Open_vSwitch row's external_ids, a column fabricd monitors; ovs-vswitchd re-reads its configuration on it "+
		"too, at the same moment, which per-peer mode's thousands of ports make dearer); fabricd's log must show no tunnel, route, gateway "+
		"or flow change in the window (it logs each at info), else the cell says so. **RSS**: fabricd's VmRSS, 10 samples "+
		"2 s apart in the same window. **A new peer usable**: then %d more synthetic members join one after the other "+
		"(started in this process, in the external namespace); each is timed from its start until the kernel of fabricd's "+
		"host has the route to its /24 and ovs-vswitchd has its data path: per-peer, its tunnel port with an OpenFlow port "+
		"number; flow, the flow sending to it (tun_dst set to its underlay address) and the one admitting its packets (tun_src) in br-int (polled every 20 ms; in flow mode with two filtered `ovs-ofctl dump-flows`, `tun_src=ADDR` and `ip,nw_dst=SUBNET`). This is the synthetic peer's "+
		"route and tunnel or flow being in place, not a packet crossing (its underlay address is unreachable); the packet "+
		"crossing comes last: **a real host joining**, a second lab host whose fabricd joins the filled fabric through the "+
		"first, timed from its fabricd's start until its API answers, a container on it is attached, and that container has "+
		"a reply (ping every 10 ms) from a container attached on the first host before the swarm (at most %s). CPU is "+
		"read from /proc (cores = CPU seconds per second), ports from OVSDB, flows from `ovs-ofctl dump-aggregate br-int`. "+
		"Budget: about %s in all at %s peers (more when a cell runs into its cap).",
		s.mainPipelineName(), peerCIDR, peerSubnet, peerSeeds, s.cfg.PeerScaleCap, peerScrape, peerWindow, peerTick, peerNewPeers, peerRealTimeout, s.peerScaleBudget(), sizesText(s.cfg.PeerScale))
	if !modeFlag {
		sec.Notes = append(sec.Notes, "This fabricd build has no `--tunnel-mode` flag (its `--help` lists none): it keeps a tunnel port per peer, "+
			"so the per-peer rows run without the flag and the flow rows are reported as not available.")
	}
	var cells []*peerCell
	defer func() { s.peerScaleReport(sec, cells) }()
	for _, n := range s.cfg.PeerScale {
		for _, mode := range []string{modePerPeer, modeFlow} {
			c := &peerCell{mode: mode, peers: n, limit: peerCap(n, s.cfg.PeerScaleCap)}
			cells = append(cells, c)
			switch {
			case mode == modeFlow && !modeFlag:
				c.err = errors.New(flowModeNA)
				continue
			case ctx.Err() != nil:
				c.err = fmt.Errorf("not run: %w", ctx.Err())
				continue
			}
			s.peerCellRun(ctx, c, modeFlag)
			s.logf("scale-peers", "%s, %d peers: applied after %s (%d reached), reconcile median %s ms (%d), resync pass %s ms (%d), new peer median %s ms, RSS median %s MiB%s",
				mode, n, c.applied.Round(time.Millisecond), c.reached, num(Median(c.reconcileMs)), len(c.reconcileMs), num(Median(c.resyncMs)), len(c.resyncMs),
				num(Median(c.newUsable)), num(Median(c.rss)), errSuffix(c.err))
		}
	}
}

// sizesText formats sizes as "100, 1000 and 5000".
func sizesText(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	if len(s) < 2 {
		return strings.Join(s, "")
	}
	return strings.Join(s[:len(s)-1], ", ") + " and " + s[len(s)-1]
}

// peerScaleBudget estimates the section's time from what it took on 2 shared cores: per cell
// about 30 s (lab, window, new peers, a real host) and 9 ms per peer (convergence, the real
// host's own); a cell held up to its cap takes that much longer.
func (s *suite) peerScaleBudget() time.Duration {
	var d time.Duration
	for _, n := range s.cfg.PeerScale {
		d += 2 * (30*time.Second + min(time.Duration(n)*9*time.Millisecond, s.cfg.PeerScaleCap))
	}
	return d.Round(time.Minute)
}

// peerCellRun runs one cell in its own lab.
func (s *suite) peerCellRun(ctx context.Context, c *peerCell, modeFlag bool) {
	l, err := s.up(ctx, fmt.Sprintf("p%d%s", c.peers, c.mode[:1]), 1, true)
	if err != nil {
		c.err = err
		return
	}
	defer s.down(l)
	h := l.Hosts[0]
	extra := append([]string{"--cluster-cidr", peerCIDR, "--metrics-addr", peerMetricsAddr}, s.pipelineFlags(s.mainPipeline())...)
	if modeFlag {
		extra = append(extra, "--tunnel-mode", c.mode)
	}
	f := fabriclab.New(l, fabriclab.Options{Bin: s.cfg.Bin, Tunnel: "vxlan", Extra: extra})
	n, err := f.Start(ctx, h, "--subnet", peerSubnet)
	if err != nil {
		c.err = err
		return
	}
	if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
		c.err = err
		return
	}
	// The container a real host's container will ping at the end.
	target, err := f.AddContainer(ctx, n, "c1", api.AttachRequest{})
	if err != nil {
		c.err = err
		return
	}
	sc := newScraper(h.NetNSPath(), peerMetricsAddr)
	defer sc.close()
	// The peer gauges appear with fabricd's first reconcile.
	var scrapeErr error
	if err := poll(ctx, 30*time.Second, func() bool { _, scrapeErr = sc.scrape(ctx); return scrapeErr == nil }); err != nil {
		c.err = fmt.Errorf("fabricd's metrics: %w (last scrape: %v)", err, scrapeErr)
		return
	}
	db, err := ovsdb.Dial(ctx, h.Endpoint())
	if err != nil {
		c.err = err
		return
	}
	defer db.Close()
	fabricdPID, vsPIDs := n.Proc.PID(), vswitchdPIDs(l)

	// Convergence.
	fd0, fdErr := sampleProcCPU("fabricd", []int{fabricdPID})
	vs0, vsErr := sampleCPU(vsPIDs)
	begin := time.Now()
	swarm, err := l.StartIn(ctx, l.External, "swarm", []string{s.cfg.Self, "swarm",
		"--members", fmt.Sprint(c.peers), "--bind", l.ExternalIP.String(), "--port", fmt.Sprint(peerSwarmPort),
		"--join", fmt.Sprintf("%s:7946", h.UnderlayIP), "--cluster-cidr", peerCIDR, "--tunnel", "vxlan", "--seeds", fmt.Sprint(peerSeeds)}, nil)
	if err != nil {
		c.err = err
		return
	}
	if err := s.peerConverge(ctx, c, sc, db, n, swarm, begin); err != nil {
		c.err = err
		return
	}
	fd1, fdErr1 := sampleProcCPU("fabricd", []int{fabricdPID})
	vs1, vsErr1 := sampleCPU(vsPIDs)
	if fdErr == nil && fdErr1 == nil {
		c.cpuFabricd = use(fd0, fd1).ProcCores
		c.machineBusy = use(fd0, fd1).MachineBusy
	}
	if vsErr == nil && vsErr1 == nil {
		c.cpuVSwitchd = use(vs0, vs1).ProcCores
	}
	// The swarm started at begin: its CPU time so far is all convergence's.
	if sw, err := sampleProcCPU("fabric-bench", []int{swarm.PID()}); err == nil {
		c.cpuSwarm = float64(sw.procTicks) / userHZ / time.Since(begin).Seconds()
	}
	c.swarmReady = swarmReadyTime(readFile(swarm.LogFile()))

	// Steady window.
	if err := sleepCtx(ctx, 3*time.Second); err != nil {
		c.err = err
		return
	}
	if err := s.peerWindow(ctx, c, sc, db, n, vsPIDs); err != nil {
		c.err = err
		return
	}
	if ports, err := db.Ports(ctx, "br-int"); err == nil {
		c.ports = len(ports)
	}
	if out, err := h.Ofctl(ctx, "dump-aggregate", "br-int"); err == nil {
		c.flows, _ = parseFlowCount(out)
	}
	if len(vsPIDs) > 0 {
		c.vsRSS, _ = rssMiB(vsPIDs[0], "ovs-vswitchd")
	}

	// New peers.
	if !c.nearlyFull() {
		return // the cell already says how far it got; a new peer would not be timed against a full view
	}
	joined, err := s.peerNewPeers(ctx, c, l, h, db)
	defer func() {
		for _, m := range joined {
			_ = m.Shutdown()
		}
	}()
	if err != nil {
		c.err = err
		return
	}
	c.realErr = s.peerRealHost(ctx, c, f, target)
}

// peerRealHost adds a lab host, starts fabricd on it (joining the filled fabric through the
// first host) and times its API, the attach of a container and that container's first
// reply from the first host's container.
func (s *suite) peerRealHost(ctx context.Context, c *peerCell, f *fabriclab.Fabric, target *fabriclab.Container) error {
	h, err := f.Lab.AddHost(ctx)
	if err != nil {
		return err
	}
	path, err := f.Lab.AddNetNS(ctx, h, "c2")
	if err != nil {
		return err
	}
	t0 := time.Now()
	n, err := f.Start(ctx, h)
	if err != nil {
		return err
	}
	c.realAPI = time.Since(t0)
	for {
		_, err := n.Client().Attach(ctx, api.AttachRequest{Target: path})
		if err == nil {
			break
		}
		if time.Since(t0) > peerRealTimeout {
			return fmt.Errorf("attach on %s: %w", h.Name, err)
		}
		if err := sleepCtx(ctx, 10*time.Millisecond); err != nil {
			return err
		}
	}
	c.realAttach = time.Since(t0)
	at, err := firstReply(ctx, filepath.Base(path), target.IP, 10*time.Millisecond, peerRealTimeout-time.Since(t0))
	if err != nil {
		return err
	}
	c.realReply = at.Sub(t0)
	return nil
}

// peerConverge waits until fabricd has applied every synthetic peer and ovs-vswitchd has
// them, or the cell's cap passes (then c says how far it got and the cell goes on).
func (s *suite) peerConverge(ctx context.Context, c *peerCell, sc *scraper, db *ovsdb.Client, n *fabriclab.Node, swarm *lab.Proc, begin time.Time) error {
	var last fabricdMetrics
	lastLog, progress := time.Now(), time.Now()
	for {
		m, err := sc.scrape(ctx)
		if err == nil {
			last = m
			applied := min(m.alive, m.routes)
			if c.mode == modePerPeer {
				applied = min(applied, m.tunnels)
			}
			if int(applied) != c.reached {
				progress = time.Now()
			}
			c.reached = int(applied)
			if c.applied == 0 && c.reached >= c.peers {
				c.applied = m.at.Sub(begin)
				if c.mode != modePerPeer {
					c.dataPlane = c.applied
				}
			}
		}
		if c.applied > 0 && c.dataPlane == 0 {
			if ports, err := db.Ports(ctx, "br-int"); err == nil && tunnelsWithOfport(ports) >= c.peers {
				c.dataPlane = time.Since(begin)
			}
		}
		if c.dataPlane > 0 {
			return nil
		}
		if !swarm.Alive() {
			return fmt.Errorf("the swarm exited: %s", tailFile(swarm.LogFile(), 5))
		}
		if !n.Proc.Alive() {
			return fmt.Errorf("fabricd exited: %s", tailFile(n.Proc.LogFile(), 5))
		}
		if stalled := time.Since(progress); stalled > peerStall && c.applied == 0 {
			c.err = fmt.Errorf("stalled: fabricd had %d of %d peers applied (%.0f alive, %.0f routes, %.0f tunnel ports) after %s, with no change in the last %s; the other figures are at that view",
				c.reached, c.peers, last.alive, last.routes, last.tunnels, time.Since(begin).Round(time.Second), peerStall)
			return nil
		}
		if el := time.Since(begin); el > c.limit {
			what := "fabricd had applied all of them, ovs-vswitchd not yet"
			if c.applied == 0 {
				what = fmt.Sprintf("fabricd had %d of %d peers applied (%.0f alive, %.0f routes, %.0f tunnel ports)", c.reached, c.peers, last.alive, last.routes, last.tunnels)
			}
			c.err = fmt.Errorf("not converged after %s: %s; the other figures are at that view", c.limit, what)
			return nil
		}
		if time.Since(lastLog) > 30*time.Second {
			lastLog = time.Now()
			s.logf("scale-peers", "%s, %d peers: after %s fabricd has %.0f alive, %.0f routes, %.0f tunnel ports", c.mode, c.peers,
				time.Since(begin).Round(time.Second), last.alive, last.routes, last.tunnels)
		}
		if err := sleepCtx(ctx, 250*time.Millisecond); err != nil {
			return err
		}
	}
}

// tunnelsWithOfport counts the tunnel ports to which ovs-vswitchd has given an OpenFlow port.
func tunnelsWithOfport(ports []ovsdb.PortInfo) int {
	k := 0
	for _, p := range ports {
		if (p.Type == "vxlan" || p.Type == "gre") && p.Ofport > 0 {
			k++
		}
	}
	return k
}

// peerWindow times the no-change reconciles and samples the RSS in the steady window.
func (s *suite) peerWindow(ctx context.Context, c *peerCell, sc *scraper, db *ovsdb.Client, n *fabriclab.Node, vsPIDs []int) error {
	logFile := n.Proc.LogFile()
	var from int64
	if st, err := os.Stat(logFile); err == nil {
		from = st.Size()
	}
	fd0, fdErr := sampleProcCPU("fabricd", []int{n.Proc.PID()})
	vs0, vsErr := sampleCPU(vsPIDs)
	var ms []fabricdMetrics
	begin := time.Now()
	nextRSS, nextTick, tick := begin, begin.Add(peerTick), 0
	for time.Since(begin) < peerWindow {
		if time.Now().After(nextTick) {
			tick++
			if err := db.SetSystemExternalIDs(ctx, map[string]string{peerTickKey: strconv.Itoa(tick)}, nil); err != nil {
				return fmt.Errorf("OVSDB tick: %w", err)
			}
			nextTick = nextTick.Add(peerTick)
		}
		if m, err := sc.scrape(ctx); err == nil {
			ms = append(ms, m)
		}
		if time.Now().After(nextRSS) {
			if v, err := rssMiB(n.Proc.PID(), "fabricd"); err == nil {
				c.rss = append(c.rss, v)
			}
			nextRSS = nextRSS.Add(peerWindow / 10)
		}
		if err := sleepCtx(ctx, peerScrape); err != nil {
			return err
		}
	}
	fd1, fdErr1 := sampleProcCPU("fabricd", []int{n.Proc.PID()})
	vs1, vsErr1 := sampleCPU(vsPIDs)
	if fdErr == nil && fdErr1 == nil {
		c.winFabricd = use(fd0, fd1).ProcCores
	}
	if vsErr == nil && vsErr1 == nil {
		c.winVSwitchd = use(vs0, vs1).ProcCores
	}
	rt := singleReconciles(ms)
	c.reconcileMs, c.resyncMs, c.reconciles = append(rt.plain, rt.unknown...), rt.dumped, rt.total
	c.changes = countChangeLines(readFileFrom(logFile, from))
	return nil
}

// peerNewPeers joins peerNewPeers more members one after the other and times each until the
// route and the tunnel port or flow are in place. It returns the members it started (the
// caller shuts them down).
func (s *suite) peerNewPeers(ctx context.Context, c *peerCell, l *lab.Lab, h *lab.Host, db *ovsdb.Client) ([]*memberlist.Memberlist, error) {
	cidr := netip.MustParsePrefix(peerCIDR)
	cfg := SwarmConfig{Bind: l.ExternalIP, BasePort: peerSwarmPort, Join: fmt.Sprintf("%s:7946", h.UnderlayIP), ClusterCIDR: cidr, Tunnel: peers.TunnelVXLAN}
	nsh, err := netns.GetFromPath(h.NetNSPath())
	if err != nil {
		return nil, err
	}
	defer nsh.Close()
	nl, err := netlink.NewHandleAt(nsh)
	if err != nil {
		return nil, err
	}
	defer nl.Close()
	extNS := filepath.Join("/var/run/netns", l.External)
	var joined []*memberlist.Memberlist
	for k := range peerNewPeers {
		if err := sleepCtx(ctx, time.Second); err != nil {
			return joined, err
		}
		i := c.peers + k
		name := fmt.Sprintf("%s%05d", synPrefix, i)
		subnet := fabric.NthSubnet(cidr, 24, i+1)
		addr := netip.AddrFrom4([4]byte{198, 18, byte((i + 1) >> 8), byte(i + 1)})
		port := fabric.TunnelPortName(fabric.TunnelVXLAN, name)
		var m *memberlist.Memberlist
		begin := time.Now()
		// Its sockets are made in the external namespace. Only the join dials out (TCP, on
		// this thread); later it only answers and sends UDP, so TCP pings are off.
		err := inNetNS(extNS, func() error {
			var err error
			m, err = startMember(cfg, i, cfg.Join, func(mc *memberlist.Config) { mc.DisableTcpPings = true })
			return err
		})
		if err != nil {
			return joined, fmt.Errorf("new peer %s: %w", name, err)
		}
		joined = append(joined, m)
		var route, ovsAt time.Duration
		for route == 0 || ovsAt == 0 {
			if route == 0 && hasRoute(nl, subnet) {
				route = time.Since(begin)
			}
			if ovsAt == 0 {
				ok := false
				if c.mode == modePerPeer {
					if ports, err := db.Ports(ctx, "br-int"); err == nil {
						for _, p := range ports {
							ok = ok || p.Name == port && p.Ofport > 0
						}
					}
				} else {
					// Two filtered dumps (the flows admitting it, the flows toward its /24):
					// a full dump of thousands of flows 50 times a second would load
					// ovs-vswitchd while it programs the very flows being waited for.
					in, err1 := h.Ofctl(ctx, "dump-flows", "br-int", "tun_src="+addr.String())
					out, err2 := h.Ofctl(ctx, "dump-flows", "br-int", "ip,nw_dst="+subnet.String())
					ok = err1 == nil && err2 == nil && flowsToPeer(in+out, addr)
				}
				if ok {
					ovsAt = time.Since(begin)
				}
			}
			if time.Since(begin) > peerNewPeerTimeout {
				return joined, fmt.Errorf("new peer %s: not usable within %s (route after %s, data path after %s; 0 = not seen)", name, peerNewPeerTimeout, route, ovsAt)
			}
			if err := sleepCtx(ctx, 20*time.Millisecond); err != nil {
				return joined, err
			}
		}
		ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
		c.newRoute = append(c.newRoute, ms(route))
		c.newOVS = append(c.newOVS, ms(ovsAt))
		c.newUsable = append(c.newUsable, ms(max(route, ovsAt)))
	}
	return joined, nil
}

// hasRoute reports whether the main table has a route to dst.
func hasRoute(h *netlink.Handle, dst netip.Prefix) bool {
	ipn := &net.IPNet{IP: dst.Addr().AsSlice(), Mask: net.CIDRMask(dst.Bits(), dst.Addr().BitLen())}
	rs, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Dst: ipn}, netlink.RT_FILTER_DST)
	return err == nil && len(rs) > 0
}

// flowsToPeer reports whether a dump of br-int's flows has both flows the flow mode needs
// toward a peer: one sending to it (an action setting tun_dst to addr, which ovs-ofctl shows
// as set_field or as a load of the address in hex) and one admitting its packets (a match on
// tun_src=addr).
func flowsToPeer(dump string, addr netip.Addr) bool {
	a := addr.As4()
	hex := fmt.Sprintf("0x%x", uint32(a[0])<<24|uint32(a[1])<<16|uint32(a[2])<<8|uint32(a[3]))
	dst := regexp.MustCompile(`(set_field:` + regexp.QuoteMeta(addr.String()) + `->tun_dst|load:` + hex + `->NXM_NX_TUN_IPV4_DST\[\])`)
	src := regexp.MustCompile(`tun_src=` + regexp.QuoteMeta(addr.String()) + `([^0-9.]|$)`)
	hasDst, hasSrc := false, false
	for _, line := range strings.Split(dump, "\n") {
		hasDst = hasDst || dst.MatchString(line)
		hasSrc = hasSrc || src.MatchString(line)
	}
	return hasDst && hasSrc
}

// changeRE matches fabricd's info lines for a change it applied.
var changeRE = regexp.MustCompile(`msg="(tunnel (added|updated|removed)|route (added|replaced|removed)|gateway address (added|removed)|flows (updated|added)[^"]*)"`)

// countChangeLines counts fabricd log lines reporting a change to the data plane.
func countChangeLines(log string) int { return len(changeRE.FindAllStringIndex(log, -1)) }

// flowCountRE is ovs-ofctl dump-aggregate's flow count.
var flowCountRE = regexp.MustCompile(`flow_count=(\d+)`)

// parseFlowCount reads the flow count from `ovs-ofctl dump-aggregate` output.
func parseFlowCount(out string) (int, error) {
	m := flowCountRE.FindStringSubmatch(out)
	if m == nil {
		return 0, fmt.Errorf("no flow_count in %q", strings.TrimSpace(out))
	}
	return strconv.Atoi(m[1])
}

// swarmReadyRE is the swarm's line once every member has joined ("ready 1000 members in 2.5s").
var swarmReadyRE = regexp.MustCompile(`(?m)^ready \d+ members in (\S+)$`)

// swarmReadyTime is the time in the swarm's "ready" line; 0 when there is none.
func swarmReadyTime(log string) time.Duration {
	m := swarmReadyRE.FindStringSubmatch(log)
	if m == nil {
		return 0
	}
	d, err := time.ParseDuration(m[1])
	if err != nil {
		return 0
	}
	return d
}

func readFile(path string) string {
	b, _ := os.ReadFile(path)
	return string(b)
}

// readFileFrom reads path from offset on ("" when it cannot).
func readFileFrom(path string, offset int64) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil || st.Size() < offset {
		return ""
	}
	b := make([]byte, st.Size()-offset)
	n, _ := f.ReadAt(b, offset)
	return string(b[:n])
}

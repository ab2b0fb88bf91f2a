package bench

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/dockerlab"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

// The networks of the Docker plugin section.
const (
	dockerFabricNet    = "blue"           // the fabric network, served by our plugin
	dockerFabricSubnet = "10.160.0.0/16"  // clear of the cluster CIDR and the underlay
	dockerBridgeNet    = "brnet"          // Docker's own bridge network on each host
	dockerBridgeSubnet = "10.199.%d.0/24" // of host i (from 1)
)

// dockerTrial is one `docker run` timed from the moment the command started.
type dockerTrial struct {
	run   time.Duration // docker run -d returned
	reply time.Duration // first echo reply from the container to one on the other host
	ip    netip.Addr    // the container's address
	batch int           // the parallel batch it belongs to (addresses are distinct within one)
}

// dockerCase is one network the sequential trials run containers on.
type dockerCase struct {
	label  string
	trials []dockerTrial
}

// dockerPlugin is what h1's fabricd logged of the plugin's calls while containers started
// on our network, in one mode (one by one, or batches at once).
type dockerPlugin struct {
	// perContainer is CreateEndpoint + Join of each endpoint (ms): what `docker run` waits
	// for of the network driver; create and join are each call alone; address the IPAM's
	// RequestAddress.
	perContainer, create, join, address []float64
	phases                              []attachPhases
}

// parseDockerPlugin reads the plugin's per-container calls and the attaches from fabricd's log.
func parseDockerPlugin(log string) dockerPlugin {
	var p dockerPlugin
	creates := parseCallLog(log, "docker plugin call", map[string]string{"method": "NetworkDriver.CreateEndpoint"}, "endpoint")
	joins := parseCallLog(log, "docker plugin call", map[string]string{"method": "NetworkDriver.Join"}, "endpoint")
	p.create, p.join = callMillis(creates), callMillis(joins)
	p.address = callMillis(parseCallLog(log, "docker plugin call", map[string]string{"method": "IpamDriver.RequestAddress"}, ""))
	joined := map[string]float64{}
	for _, j := range joins {
		joined[j.Key] = float64(j.Took) / float64(time.Millisecond)
	}
	for _, c := range creates {
		if j, ok := joined[c.Key]; ok && c.Key != "" {
			p.perContainer = append(p.perContainer, float64(c.Took)/float64(time.Millisecond)+j)
		}
	}
	p.phases = parseAttachLog(log)
	return p
}

func (c *dockerCase) replies() []time.Duration {
	var out []time.Duration
	for _, t := range c.trials {
		out = append(out, t.reply)
	}
	return out
}

func (c *dockerCase) runs() []time.Duration {
	var out []time.Duration
	for _, t := range c.trials {
		out = append(out, t.run)
	}
	return out
}

// dockerParallel are the batches of containers started at once on one host, on one network.
type dockerParallel struct {
	size    int           // containers per batch
	batches int           // batches run
	want    int           // containers started, in all batches
	trials  []dockerTrial // the ones that got a reply, timed from the batch's start
	errs    []string      // why the others did not
	slice   netip.Prefix  // the host's slice of the network (invalid when unknown)
}

// dockerSection measures `docker run` with our plugin against Docker's own bridge driver on
// a 2-host fabric whose hosts run a private dockerd each (Host.StartDockerWithPlugins).
func (s *suite) dockerSection(ctx context.Context, secs map[string]*Section) {
	sec := secs["docker"]
	ours := &dockerCase{label: "ovsfabric network `" + dockerFabricNet + "` (our plugin)"}
	bridge := &dockerCase{label: "Docker's bridge network `" + dockerBridgeNet + "` + static routes"}
	par, parBridge := &dockerParallel{size: s.cfg.DockerParallel}, &dockerParallel{size: s.cfg.DockerParallel}
	var plugin [2]dockerPlugin // one by one, at once
	defer func() { s.dockerReport(sec, ours, bridge, par, parBridge, plugin) }()
	if err := dockerlab.Available(); err != nil {
		sec.Err = err
		return
	}
	if out, err := run(ctx, 20*time.Second, "", filepath.Join(s.cfg.Bin, "fabricd"), "--help"); err != nil || !strings.Contains(out, "--docker-plugin") {
		sec.Err = fmt.Errorf("fabricd --help lists no --docker-plugin (%v): this build has no Docker plugin", err)
		return
	}
	l, err := s.up(ctx, "dk", 2, false)
	if err != nil {
		sec.Err = err
		return
	}
	defer s.down(l)
	docks, err := s.startDockers(ctx, l)
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		for _, d := range docks {
			if d != nil {
				if err := d.Stop(sctx); err != nil {
					s.warn("docker: stop dockerd: %v", err)
				}
			}
		}
	}()
	if err != nil {
		sec.Err = err
		return
	}
	f := fabriclab.New(l, fabriclab.Options{Bin: s.cfg.Bin, Tunnel: "vxlan", Extra: s.pipelineFlags(s.mainPipeline())})
	for _, h := range l.Hosts {
		if _, err := f.Start(ctx, h, "--docker-plugin=on", "--docker-plugin-socket", filepath.Join(h.DockerPluginDir(), "ovsfabric.sock")); err != nil {
			sec.Err = err
			return
		}
	}
	if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
		sec.Err = err
		return
	}
	targets, err := s.dockerNetworks(ctx, l, f, docks)
	if err != nil {
		sec.Err = err
		return
	}
	s.logf("docker", "targets on h2: %s on %s, %s on %s", targets[0], dockerFabricNet, targets[1], dockerBridgeNet)

	// h1's fabricd logs the plugin's calls and its attaches; only our network's containers
	// make them, so the lines of each mode are told apart by offset.
	var logFile string
	if n := f.Node("h1"); n != nil {
		logFile = n.Proc.LogFile()
	}
	pluginFrom := func(off int64) dockerPlugin {
		b, err := readLogFrom(logFile, off)
		if err != nil {
			s.logf("docker", "fabricd's log: %v", err)
		}
		return parseDockerPlugin(b)
	}
	off := logSize(logFile)

	// Sequential trials on h1, interleaved: every trial runs both networks, in alternating order.
	d1 := docks[0]
	for t := range s.cfg.DockerTrials {
		order := []int{0, 1}
		if t%2 == 1 {
			order = []int{1, 0}
		}
		for _, k := range order {
			c, network, target := ours, dockerFabricNet, targets[0]
			if k == 1 {
				c, network, target = bridge, dockerBridgeNet, targets[1]
			}
			name := fmt.Sprintf("t%d%s", t+1, network)
			tr, err := dockerRunReply(ctx, d1, name, network, target, time.Now())
			if rerr := dockerRm(ctx, d1, name); rerr != nil {
				err = errors.Join(err, rerr)
			}
			if err != nil {
				sec.Err = fmt.Errorf("trial %d, %s: %w", t+1, network, err)
				return
			}
			c.trials = append(c.trials, tr)
			s.logf("docker", "trial %d/%d %-6s docker run %s, first reply %s", t+1, s.cfg.DockerTrials, network,
				tr.run.Round(time.Millisecond), tr.reply.Round(time.Millisecond))
		}
	}

	plugin[0] = pluginFrom(off)
	off = logSize(logFile)
	defer func() { plugin[1] = pluginFrom(off) }()

	// Batches of containers at once on h1: on our network (h1's slice of it) and, for
	// comparison (no verdict), on the bridge network, in the order ours, bridge, bridge, ours;
	// each batch removed before the next.
	if n, err := f.Nodes()[0].Client().Network(ctx, dockerFabricNet); err == nil {
		par.slice, _ = netip.ParsePrefix(n.Slice)
	}
	for i, b := range []struct {
		p       *dockerParallel
		network string
		target  string
	}{{par, dockerFabricNet, targets[0]}, {parBridge, dockerBridgeNet, targets[1]}, {parBridge, dockerBridgeNet, targets[1]}, {par, dockerFabricNet, targets[0]}} {
		prefix := fmt.Sprintf("b%d-", i+1)
		s.dockerBatch(ctx, d1, b.p, prefix, b.network, b.target)
		if err := s.dockerRmBatch(ctx, d1, prefix, b.p.size); err != nil {
			s.warn("docker: removing batch %s: %v", prefix, err) // a container whose run failed is not there
		}
	}
}

// dockerBatch starts p.size containers PREFIX1… on network at once and records their times
// from the batch's start.
func (s *suite) dockerBatch(ctx context.Context, d *dockerlab.Daemon, p *dockerParallel, prefix, network, target string) {
	var wg sync.WaitGroup
	var mu sync.Mutex
	batch := p.batches
	p.batches++
	p.want += p.size
	n0 := len(p.trials)
	t0 := time.Now()
	for i := range p.size {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr, err := dockerRunReply(ctx, d, fmt.Sprintf("%s%d", prefix, i+1), network, target, t0)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				p.errs = append(p.errs, err.Error())
				return
			}
			tr.batch = batch
			p.trials = append(p.trials, tr)
		}()
	}
	wg.Wait()
	mine := dockerReplies(p.trials[n0:])
	s.logf("docker", "%d parallel docker run --network %s: %d replied, p50 reply %s, slowest %s", p.size, network, len(mine),
		time.Duration(Percentile(Millis(mine), 50)*float64(time.Millisecond)).Round(time.Millisecond), slicesMax(mine).Round(time.Millisecond))
}

// dockerRmBatch removes the containers of a batch (not timed).
func (s *suite) dockerRmBatch(ctx context.Context, d *dockerlab.Daemon, prefix string, n int) error {
	args := []string{"rm", "-f"}
	for i := range n {
		args = append(args, fmt.Sprintf("%s%d", prefix, i+1))
	}
	_, err := d.CLI(context.WithoutCancel(ctx), args...)
	return err
}

func dockerReplies(ts []dockerTrial) []time.Duration {
	var out []time.Duration
	for _, t := range ts {
		out = append(out, t.reply)
	}
	return out
}

// startDockers starts a private dockerd with the host's own plugin directory on every host
// and imports busybox, all at once. It returns the daemons started, also on error.
func (s *suite) startDockers(ctx context.Context, l *lab.Lab) ([]*dockerlab.Daemon, error) {
	docks := make([]*dockerlab.Daemon, len(l.Hosts))
	errs := make([]error, len(l.Hosts))
	var wg sync.WaitGroup
	for i, h := range l.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			d, err := h.StartDockerWithPlugins(ctx)
			if err == nil {
				_, err = d.ImportBusybox(ctx)
			}
			docks[i], errs[i] = d, err
		}()
	}
	wg.Wait()
	return docks, errors.Join(errs...)
}

// dockerNetworks creates the fabric network (through h1's API; fabricd makes it a Docker
// network on every host) and a bridge network on every host with routes between the hosts'
// bridge subnets over the underlay, and starts a target container on h2 on each. It returns
// the targets' addresses: ours, bridge.
func (s *suite) dockerNetworks(ctx context.Context, l *lab.Lab, f *fabriclab.Fabric, docks []*dockerlab.Daemon) ([2]string, error) {
	var targets [2]string
	if _, err := f.Nodes()[0].Client().CreateNetwork(ctx, api.NetworkCreateRequest{Name: dockerFabricNet, Subnet: dockerFabricSubnet}); err != nil {
		return targets, fmt.Errorf("create network %s: %w", dockerFabricNet, err)
	}
	for i, d := range docks {
		h := l.Hosts[i]
		if err := retryFor(ctx, time.Minute, func() error {
			out, err := d.CLI(ctx, "network", "inspect", "-f", "{{.Driver}}", dockerFabricNet)
			if err == nil && out != "ovsfabric" {
				err = fmt.Errorf("driver %q", out)
			}
			return err
		}); err != nil {
			return targets, fmt.Errorf("docker network %s on %s: %w", dockerFabricNet, h.Name, err)
		}
		subnet := fmt.Sprintf(dockerBridgeSubnet, i+1)
		if _, err := d.CLI(ctx, "network", "create", "-d", "bridge", "--subnet", subnet, dockerBridgeNet); err != nil {
			return targets, fmt.Errorf("bridge network on %s: %w", h.Name, err)
		}
		// The lab's dockerd runs with --ip-forward=false --iptables=false: the host forwards
		// and routes the other host's bridge subnet itself, with no NAT either way.
		if _, err := h.Run(ctx, "sysctl", "-qw", "net.ipv4.ip_forward=1"); err != nil {
			return targets, err
		}
		for j, o := range l.Hosts {
			if j != i {
				if _, err := h.Run(ctx, "ip", "route", "replace", fmt.Sprintf(dockerBridgeSubnet, j+1), "via", o.UnderlayIP.String()); err != nil {
					return targets, err
				}
			}
		}
	}
	d2 := docks[1]
	for k, network := range []string{dockerFabricNet, dockerBridgeNet} {
		name := "target-" + network
		if _, err := d2.CLI(ctx, "run", "-d", "--name", name, "--network", network, dockerlab.BusyboxImage, "sleep", "1000000"); err != nil {
			return targets, fmt.Errorf("target on %s: %w", network, err)
		}
		ip, err := dockerAddr(ctx, d2, name, network)
		if err != nil {
			return targets, err
		}
		targets[k] = ip.String()
	}
	return targets, nil
}

// dockerRunReply runs a container on network and pings target from its network namespace
// until the first reply; both times count from t0.
func dockerRunReply(ctx context.Context, d *dockerlab.Daemon, name, network, target string, t0 time.Time) (dockerTrial, error) {
	var tr dockerTrial
	if _, err := d.CLI(ctx, "run", "-d", "--name", name, "--network", network, dockerlab.BusyboxImage, "sleep", "1000000"); err != nil {
		return tr, fmt.Errorf("docker run %s: %w", name, err)
	}
	tr.run = time.Since(t0)
	pid, err := d.Pid(ctx, name)
	if err != nil {
		return tr, err
	}
	at, err := firstReply(ctx, fmt.Sprintf("/proc/%d/ns/net", pid), target, pingEvery, 30*time.Second)
	if err != nil {
		return tr, fmt.Errorf("%s: %w", name, err)
	}
	tr.reply = at.Sub(t0)
	tr.ip, err = dockerAddr(ctx, d, name, network)
	return tr, err
}

// dockerAddr is the container's address on network.
func dockerAddr(ctx context.Context, d *dockerlab.Daemon, name, network string) (netip.Addr, error) {
	out, err := d.CLI(ctx, "inspect", "-f", "{{(index .NetworkSettings.Networks \""+network+"\").IPAddress}}", name)
	if err != nil {
		return netip.Addr{}, err
	}
	ip, err := netip.ParseAddr(out)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%s's address on %s: %w", name, network, err)
	}
	return ip, nil
}

// dockerRm removes a container (not timed).
func dockerRm(ctx context.Context, d *dockerlab.Daemon, name string) error {
	_, err := d.CLI(context.WithoutCancel(ctx), "rm", "-f", name)
	return err
}

// retryFor calls f every 100 ms until it succeeds or timeout passes.
func retryFor(ctx context.Context, timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		if serr := sleepCtx(ctx, 100*time.Millisecond); serr != nil {
			return errors.Join(err, serr)
		}
	}
}

func (s *suite) dockerReport(sec *Section, ours, bridge *dockerCase, par, parBridge *dockerParallel, plugin [2]dockerPlugin) {
	sec.Method = fmt.Sprintf("A 2-host VXLAN fabric (%s) whose hosts each run a private dockerd with the host's own "+
		"plugin directory (fabricd `--docker-plugin on`; see [docker.md](docker.md)); busybox imported from Debian's "+
		"busybox-static. The fabric network `%s` (%s) is created through h1's API, and fabricd makes it a Docker network "+
		"on both hosts. Docker's own counterpart is a user-defined bridge network `%s` on each host (10.199.1.0/24 on h1, "+
		"10.199.2.0/24 on h2; the lab's dockerd runs with `--iptables=false --ip-forward=false`, so the hosts forward and "+
		"each routes the other's bridge subnet via its underlay address, no NAT). A target container runs on h2 on each "+
		"network. Per trial (%d, interleaved: every trial runs both networks, in alternating order) h1 runs `docker run -d "+
		"--network NET busybox sleep` and, as soon as it returns, pings h2's target on the same network from the new "+
		"container's network namespace (nsenter, iputils ping every %s); the time is from the start of `docker run` to ping's "+
		"receive timestamp of the first echo reply. The container is removed between runs (not timed). Then %d containers "+
		"are started at once on h1 with `docker run -d --network %s`, each pinging h2's target the same way, timed from "+
		"the moment the batch started, and removed; so are as many on `%s`, for comparison; two batches per network, "+
		"in the order ours, bridge, bridge, ours. The plugin's share of each `docker run` on our network (its "+
		"CreateEndpoint, where fabricd attaches, and Join) comes from h1's fabricd log.",
		s.mainPipelineName(), dockerFabricNet, dockerFabricSubnet, dockerBridgeNet, s.cfg.DockerTrials, pingEvery,
		s.cfg.DockerParallel, dockerFabricNet, dockerBridgeNet)
	sec.Tables = append(sec.Tables, milestoneTable("milestone (from the start of `docker run`, sequential)", []milestone{
		{"`docker run -d` returned, " + ours.label, ours.runs()},
		{"`docker run -d` returned, " + bridge.label, bridge.runs()},
		{"first reply from h2's target, " + ours.label, ours.replies()},
		{"first reply from h2's target, " + bridge.label, bridge.replies()},
	}))
	rt := Median(Millis(ours.replies())) / Median(Millis(bridge.replies()))
	paired := Summarize(Ratios(Millis(ours.replies()), Millis(bridge.replies())))
	v := Verdict{Target: "`docker run` → first cross-host reply on our network ≤ 1.2× Docker's bridge network", Status: Check(rt, rt <= 1.2)}
	switch v.Status {
	case NotMeasured:
		v.Measured, v.Limit = "n/a", "not measured (see above)"
	default:
		r := ratio(rt)
		if r == ratio(1.2) { // the rounding would hide which side of the target it is
			r = fmt.Sprintf("%.3f×", rt)
		}
		v.Measured = fmt.Sprintf("%s (%s ms vs %s ms, medians; paired trials %s; %d trials)", r,
			num(Median(Millis(ours.replies()))), num(Median(Millis(bridge.replies()))), ratioSpread(paired), paired.N)
	}
	if v.Status == Missed {
		v.Limit = fmt.Sprintf("`docker run` itself returned after %s ms with our plugin vs %s ms with the bridge (medians): "+
			"the plugin's calls (address, endpoint, join: fabricd's OVS port and flows) add to the container's start; "+
			"the rest, %s ms vs %s ms, is the time until the first reply got through.",
			num(Median(Millis(ours.runs()))), num(Median(Millis(bridge.runs()))),
			num(Median(Millis(ours.replies()))-Median(Millis(ours.runs()))), num(Median(Millis(bridge.replies()))-Median(Millis(bridge.runs()))))
	}
	if paired.N > 1 && paired.Min <= 1.2 && paired.Max > 1.2 {
		sec.Notes = append(sec.Notes, fmt.Sprintf("The ratios paired trial by trial range from %s to %s, on both sides of "+
			"the target: from one trial to the next, the machine's load moved `docker run` (dockerd, containerd, runc) more "+
			"than the network driver did.", ratio(paired.Min), ratio(paired.Max)))
	}
	sec.Verdicts = append(sec.Verdicts, v)

	// The parallel batches.
	replies := Millis(dockerReplies(par.trials))
	outside := 0
	for _, t := range par.trials {
		if par.slice.IsValid() && !par.slice.Contains(t.ip) {
			outside++
		}
	}
	distinct := distinctAddrs(par.trials)
	if len(par.trials) > 0 || len(parBridge.trials) > 0 {
		t := Table{Caption: fmt.Sprintf("%d containers started at once on h1 per batch, %d batches per network (in the order ours, bridge, "+
			"bridge, ours), ms from each batch's start; the figures are over all containers of a network's batches.", par.size, max(par.batches, parBridge.batches)),
			Header: []string{"network", "containers replied", "distinct addresses", "p50 first reply", "p99 first reply", "max first reply", "p50 `docker run` returned"}}
		for _, r := range []struct {
			label string
			p     *dockerParallel
		}{{"`docker run -d --network " + dockerFabricNet + "` (our plugin)", par}, {"`docker run -d --network " + dockerBridgeNet + "` (Docker's bridge)", parBridge}} {
			rs := Millis(dockerReplies(r.p.trials))
			mx := math.NaN()
			if len(rs) > 0 {
				mx = slices.Max(rs)
			}
			t.AddRow(r.label, fmt.Sprintf("%d of %d", len(r.p.trials), r.p.want), fmt.Sprint(distinctAddrs(r.p.trials)), num(Percentile(rs, 50)),
				num(Percentile(rs, 99)), num(mx), num(Percentile(Millis(dockerRuns(r.p.trials)), 50)))
		}
		sec.Tables = append(sec.Tables, t)
	}
	pv := Verdict{Target: fmt.Sprintf("%d parallel `docker run --network %s` on one host: all get distinct addresses of the host's slice and reply", par.size, dockerFabricNet)}
	switch {
	case par.want == 0 || (len(par.trials) == 0 && len(par.errs) == 0):
		pv.Status, pv.Measured, pv.Limit = NotMeasured, "n/a", "not measured (see above)"
	default:
		ok := len(par.trials) == par.want && distinct == par.want && outside == 0
		pv.Status = Check(0, ok)
		pv.Measured = fmt.Sprintf("%d of %d replied, %d distinct addresses (%d per batch, %d batches)", len(par.trials), par.want, distinct, par.size, par.batches)
		if len(replies) > 0 {
			pv.Measured += fmt.Sprintf("; first reply p50 %s ms, p99 %s ms from the batch's start", num(Percentile(replies, 50)), num(Percentile(replies, 99)))
			if br := Millis(dockerReplies(parBridge.trials)); len(br) > 0 {
				pv.Measured += fmt.Sprintf(" (Docker's bridge, same batches: p50 %s ms, p99 %s ms)", num(Percentile(br, 50)), num(Percentile(br, 99)))
			}
		}
		if !ok {
			var why []string
			if len(par.errs) > 0 {
				why = append(why, fmt.Sprintf("%d failed (first: %s)", len(par.errs), oneLine(par.errs[0])))
			}
			if distinct < len(par.trials) {
				why = append(why, fmt.Sprintf("%d addresses given twice in a batch", len(par.trials)-distinct))
			}
			if outside > 0 {
				why = append(why, fmt.Sprintf("%d addresses outside h1's slice %s", outside, par.slice))
			}
			pv.Limit = strings.Join(why, "; ")
		}
	}
	sec.Verdicts = append(sec.Verdicts, pv)
	s.dockerPluginReport(sec, plugin, par.size)
}

// dockerPluginReport reports the plugin's share of `docker run` on our network, one by one
// (the sequential trials) and at once (the batches), against the attach targets of issue 15.
func (s *suite) dockerPluginReport(sec *Section, plugin [2]dockerPlugin, size int) {
	modes := []string{"one by one", fmt.Sprintf("%d at once", size)}
	t := Table{Caption: "The plugin's calls per container on our network (h1's fabricd log), ms: CreateEndpoint (fabricd's attach: veth, " +
		"address, OVS port, flows) and Join, which `docker run` waits for in turn; RequestAddress (IPAM) comes before them.",
		Header: []string{"mode", "containers", "CreateEndpoint + Join p50", "p99", "max", "CreateEndpoint p50", "Join p50", "RequestAddress p50"}}
	for k, p := range plugin {
		pc := Summarize(p.perContainer)
		t.AddRow(modes[k], fmt.Sprint(pc.N), num(pc.Median), num(pc.P99), num(pc.Max), num(Median(p.create)), num(Median(p.join)), num(Median(p.address)))
	}
	sec.Tables = append(sec.Tables, t)
	for k, lim := range [][2]float64{{50, 100}, {200, 400}} {
		p := plugin[k]
		pc := Summarize(p.perContainer)
		limit := fmt.Sprintf("CreateEndpoint p50 %s ms, Join p50 %s ms; in CreateEndpoint, fabricd's attach ", num(Median(p.create)), num(Median(p.join))) +
			explainPhases(p.phases)
		for _, v := range []Verdict{
			{Target: fmt.Sprintf("`docker run` %s: plugin CreateEndpoint + Join p50 < %s ms", modes[k], num(lim[0])), Measured: num(pc.Median) + " ms", Status: Check(pc.Median, pc.Median < lim[0])},
			{Target: fmt.Sprintf("`docker run` %s: plugin CreateEndpoint + Join p99 < %s ms", modes[k], num(lim[1])), Measured: num(pc.P99) + " ms", Status: Check(pc.P99, pc.P99 < lim[1])},
		} {
			switch v.Status {
			case NotMeasured:
				v.Measured, v.Limit = "n/a", "not measured (see above)"
			case Missed:
				v.Limit = limit
			}
			sec.Verdicts = append(sec.Verdicts, v)
		}
	}
}

func dockerRuns(ts []dockerTrial) []time.Duration {
	var out []time.Duration
	for _, t := range ts {
		out = append(out, t.run)
	}
	return out
}

// distinctAddrs counts the different addresses within each batch, summed over the batches.
func distinctAddrs(ts []dockerTrial) int {
	seen := map[int]map[netip.Addr]bool{}
	n := 0
	for _, t := range ts {
		if seen[t.batch] == nil {
			seen[t.batch] = map[netip.Addr]bool{}
		}
		if !seen[t.batch][t.ip] {
			seen[t.batch][t.ip] = true
			n++
		}
	}
	return n
}

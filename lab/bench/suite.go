package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ovsfabric/ovsfabric/lab"
)

// Config says what the suite runs and how hard. DefaultConfig fits the whole suite in about
// 9 minutes on a 2-core machine without the networks sections, which add about 4½ (most of it
// the networks throughput runs), the encryption section, which adds about 3, the Docker
// plugin section, which adds about 1, and the peer scale section, which adds about 5 (up to
// 12 when its largest cells run into their caps).
type Config struct {
	// Bin is the directory holding the fabricd and fabricctl binaries.
	Bin string
	// Repo is the module root, for `go test -bench ./fabric/`.
	Repo string
	// Work is where the labs' directories go; keep it short (unix socket paths live below).
	Work string
	// Self is this program's executable: the memory section runs it as `Self swarm …`.
	Self string
	// Trials is how many times every throughput case runs; IperfSeconds how long each run
	// measures (after one omitted warm-up second). IperfSeconds 0 picks the longest run up to
	// 10 s that keeps all throughput runs within IperfBudget.
	Trials       int
	IperfSeconds int
	IperfBudget  time.Duration
	// PingCount pings at PingInterval measure latency.
	PingCount    int
	PingInterval time.Duration
	// ConvergenceTrials and FailureTrials are the trials of those sections.
	ConvergenceTrials int
	FailureTrials     int
	// AttachSequential containers are attached one by one, then AttachParallel at once.
	AttachSequential int
	AttachParallel   int
	// ScalePeers tunnel ports are reconciled against a real OVSDB.
	ScalePeers int
	// GossipMembers memberlist members run GossipTrials times in this process.
	GossipMembers int
	GossipTrials  int
	// MemoryPeers is the size of the view fabricd's memory is measured at.
	MemoryPeers int
	// PeerScale are the view sizes the peer scale section measures in each tunnel mode;
	// PeerScaleCap caps each cell's wait for convergence.
	PeerScale    []int
	PeerScaleCap time.Duration
	// FaultTrials is the number of partition and ovs-vswitchd restart trials.
	FaultTrials int
	// Networks is how many networks the networks throughput section creates; NetTrials how
	// many interleaved trials it runs per path. NetReadyTrials is the number of networks
	// created one after the other to time how soon each is usable on every host.
	Networks       int
	NetTrials      int
	NetReadyTrials int
	// EncTrials is how many interleaved trials the encryption section runs per fabric (about
	// 25 s each for both fabrics at the default run length).
	EncTrials int
	// DockerTrials is how many interleaved `docker run` trials the Docker plugin section runs
	// per network; DockerParallel how many containers it then starts at once.
	DockerTrials   int
	DockerParallel int
	// Only runs just these sections (keys as in Sections); empty runs all.
	Only []string
	// Progress receives one line per step.
	Progress io.Writer
}

// DefaultConfig is the configuration `make bench` runs.
func DefaultConfig() Config {
	return Config{
		Bin: "bin", Repo: ".", Work: os.TempDir(),
		Trials: 3, IperfBudget: 5 * time.Minute, PingCount: 1000, PingInterval: 10 * time.Millisecond,
		ConvergenceTrials: 10, FailureTrials: 5, AttachSequential: 100, AttachParallel: 20,
		ScalePeers: 1000, GossipMembers: 100, GossipTrials: 3, MemoryPeers: 1000, FaultTrials: 5,
		PeerScale: []int{100, 1000, 5000}, PeerScaleCap: 4 * time.Minute,
		Networks: 20, NetTrials: 5, NetReadyTrials: 7, EncTrials: 5, DockerTrials: 15, DockerParallel: 20,
		Progress: io.Discard,
	}
}

// SectionInfo names a section: Key for --only, Title in the report.
type SectionInfo struct{ Key, Title string }

// Sections lists the sections in report order.
var Sections = []SectionInfo{
	{"throughput", "Throughput"},
	{"latency", "Latency"},
	{"encryption", "Encryption"},
	{"convergence", "Convergence"},
	{"failure", "Failure detection"},
	{"attach", "Attach"},
	{"cni", "CNI plugin"},
	{"dns", "Fabric DNS"},
	{"docker", "Docker plugin"},
	{"faults", "Fault recovery"},
	{"ovsdb", "Scale: data plane config"},
	{"gossip", "Scale: gossip"},
	{"memory", "Memory"},
	{"scale-peers", "Scale: peers and tunnel modes"},
	{"planner", "Planner"},
	{"net-throughput", "Networks: throughput"},
	{"net-reconcile", "Networks: reconcile"},
	{"net-ready", "Networks: time to usable"},
}

func title(key string) string {
	for _, s := range Sections {
		if s.Key == key {
			return s.Title
		}
	}
	return key
}

// suite is one run.
type suite struct {
	cfg   Config
	start time.Time
	out   io.Writer
	outMu sync.Mutex

	// pipelines are the --pipeline values fabricd offers ("l2", "routed"); nil when it has no
	// --pipeline flag (then it runs L2 only).
	pipelines []string
	// iperfSecs is the length of every iperf3 run, iperfWhy the reason for it.
	iperfSecs int
	iperfWhy  string
	// idleRSS are fabricd's RSS samples (MiB) idle in a 3-host fabric, from the control phase.
	idleRSS []float64
	// warnings are remarks for the whole report (e.g. something a lab left behind).
	warnMu   sync.Mutex
	warnings []string
}

// phase is a group of sections that share labs.
type phase struct {
	keys    []string
	timeout time.Duration
	run     func(ctx context.Context, secs map[string]*Section)
}

// Run runs the selected sections and returns the report. It returns an error only when ctx
// ended (the report is then incomplete); a section that fails is reported as such.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Progress == nil {
		cfg.Progress = io.Discard
	}
	for _, k := range cfg.Only {
		if !slices.ContainsFunc(Sections, func(s SectionInfo) bool { return s.Key == k }) {
			return nil, fmt.Errorf("unknown section %q", k)
		}
	}
	s := &suite{cfg: cfg, start: time.Now(), out: cfg.Progress}
	rep := &Report{Started: s.start, LoadStart: loadAvg(), Machine: machine(ctx)}
	s.detectPipelines(ctx)
	s.logf("suite", "machine: %d cores, kernel %s, %s, datapath %s; fabricd pipelines: %s",
		rep.Machine.Cores, rep.Machine.Kernel, rep.Machine.OVS, rep.Machine.Datapath, s.pipelineList())

	// Cheap, single-process work first; the data path last but one, so that it runs on a
	// machine that has settled; memory and the peer scale last (they load OVS with up to
	// 5000 tunnels).
	phases := []phase{
		{[]string{"planner"}, 5 * time.Minute, s.planner},
		{[]string{"net-reconcile"}, 5 * time.Minute, s.netReconcile},
		{[]string{"gossip"}, 4 * time.Minute, s.gossip},
		{[]string{"ovsdb"}, 8 * time.Minute, s.ovsdbScale},
		{[]string{"throughput", "latency"}, 10 * time.Minute, s.dataPath},
		{[]string{"net-throughput"}, 8 * time.Minute, s.netThroughput},
		{[]string{"encryption"}, 8 * time.Minute, s.encryption},
		{[]string{"convergence", "failure", "attach"}, 10 * time.Minute, s.control},
		{[]string{"net-ready"}, 5 * time.Minute, s.netReady},
		{[]string{"faults"}, 8 * time.Minute, s.faults},
		{[]string{"cni"}, 5 * time.Minute, s.cniSection},
		{[]string{"dns"}, 5 * time.Minute, s.dnsSection},
		{[]string{"docker"}, 6 * time.Minute, s.dockerSection},
		{[]string{"memory"}, 6 * time.Minute, s.memory},
		{[]string{"scale-peers"}, 16 * time.Minute, s.peerScale},
	}
	secs := map[string]*Section{}
	for _, p := range phases {
		run := map[string]*Section{}
		for _, k := range p.keys {
			if len(cfg.Only) == 0 || slices.Contains(cfg.Only, k) {
				run[k] = &Section{Key: k, Title: title(k), Load: loadAvg()}
			}
		}
		if len(run) == 0 {
			continue
		}
		begin := time.Now()
		pctx, cancel := context.WithTimeout(ctx, p.timeout)
		p.run(pctx, run)
		timedOut := pctx.Err() == context.DeadlineExceeded
		cancel()
		for k, sec := range run {
			if sec.Took == 0 {
				sec.Took = time.Since(begin)
			}
			if timedOut && sec.Err == nil {
				sec.Err = fmt.Errorf("the phase hit its %s limit", p.timeout)
			}
			secs[k] = sec
			s.logf(k, "done in %s%s", sec.Took.Round(time.Second), errSuffix(sec.Err))
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("interrupted: %w", err)
		}
	}
	for _, sd := range Sections {
		if sec := secs[sd.Key]; sec != nil {
			rep.Sections = append(rep.Sections, sec)
		}
	}
	rep.Took = time.Since(s.start)
	rep.LoadEnd = loadAvg()
	rep.Notes = append(rep.Notes, s.notes()...)
	return rep, nil
}

func errSuffix(err error) string {
	if err == nil {
		return ""
	}
	return " — FAILED: " + oneLine(err.Error())
}

// notes are the report-wide remarks.
func (s *suite) notes() []string {
	out := []string{
		"Every lab host is a network namespace with its own ovsdb-server and ovs-vswitchd on this one machine " +
			"(see [lab.md](lab.md)), so all hosts, their userspace datapaths, iperf3 and fabricd share its cores: " +
			"absolute figures are those of this machine and this run, and only the comparisons made side by side " +
			"in the same run (ratios) carry over. Other work running on the machine at the same time shows in the " +
			"load averages quoted above and per section.",
	}
	if s.pipelines == nil {
		out = append(out, "This fabricd build has no `--pipeline` flag (its `--help` lists none): it runs the L2 "+
			"flood-and-learn pipeline only, so every routed-pipeline figure is reported as *not available in this "+
			"build*. The suite measures `--pipeline routed` and `--pipeline l2` side by side as soon as fabricd offers them.")
	}
	s.warnMu.Lock()
	out = append(out, s.warnings...)
	s.warnMu.Unlock()
	return out
}

func (s *suite) warn(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	s.logf("warning", "%s", msg)
	s.warnMu.Lock()
	s.warnings = append(s.warnings, "Warning: "+msg)
	s.warnMu.Unlock()
}

// logf prints a progress line: elapsed time, section, message.
func (s *suite) logf(section, format string, args ...any) {
	el := time.Since(s.start).Round(time.Second)
	s.outMu.Lock()
	defer s.outMu.Unlock()
	fmt.Fprintf(s.out, "[%02d:%02d] %-11s %s\n", int(el.Minutes()), int(el.Seconds())%60, section, fmt.Sprintf(format, args...))
}

// routedNA is how a routed-pipeline figure reads when fabricd has no --pipeline flag.
const routedNA = "not available in this build (fabricd --help lists no --pipeline)"

// detectPipelines asks fabricd's --help whether it has --pipeline.
func (s *suite) detectPipelines(ctx context.Context) {
	out, err := run(ctx, 20*time.Second, "", filepath.Join(s.cfg.Bin, "fabricd"), "--help")
	if err != nil {
		s.warn("fabricd --help failed: %v", err)
		return
	}
	if strings.Contains(out, "--pipeline") {
		s.pipelines = []string{"l2", "routed"}
	}
}

func (s *suite) pipelineList() string {
	if s.pipelines == nil {
		return "l2 only (no --pipeline flag)"
	}
	return strings.Join(s.pipelines, ", ")
}

// pipelineFlags are fabricd's flags for pipeline p ("l2" or "routed").
func (s *suite) pipelineFlags(p string) []string {
	if s.pipelines == nil {
		return nil
	}
	return []string{"--pipeline", p}
}

// mainPipeline is the pipeline the control-plane and memory sections run: routed when
// fabricd offers it, else L2 (the only one).
func (s *suite) mainPipeline() string {
	if s.pipelines == nil {
		return "l2"
	}
	return "routed"
}

// mainPipelineName names mainPipeline for the report.
func (s *suite) mainPipelineName() string {
	if s.pipelines == nil {
		return "the L2 pipeline, the only one of this build"
	}
	return "the routed pipeline, `--pipeline routed`"
}

// up builds a lab in <work>/<label>.
func (s *suite) up(ctx context.Context, label string, hosts int, external bool) (*lab.Lab, error) {
	begin := time.Now()
	dir := filepath.Join(s.cfg.Work, label)
	l, err := lab.Up(ctx, lab.Config{Dir: dir, Hosts: hosts, External: external})
	if err != nil {
		return nil, fmt.Errorf("lab %s: %w", label, err)
	}
	s.logf("lab", "%s up (%d hosts%s, netns prefix ovsfab-%s-) in %s", label, hosts, map[bool]string{true: " + external", false: ""}[external], l.Name, time.Since(begin).Round(time.Millisecond))
	return l, nil
}

// down tears a lab down (also after ctx ended) and reports anything left behind.
func (s *suite) down(l *lab.Lab) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	err := l.Down(ctx)
	if left := l.Leftovers(); len(left) > 0 {
		s.warn("lab %s left behind: %s", l.Name, strings.Join(left, ", "))
	} else if err != nil {
		s.warn("lab %s down: %v", l.Name, err)
	}
	s.logf("lab", "%s down", l.Name)
}

// machine describes this machine.
func machine(ctx context.Context) Machine {
	m := Machine{Cores: runtime.NumCPU(), Go: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPU = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/meminfo"); err == nil {
		var kb float64
		if _, err := fmt.Sscanf(string(b), "MemTotal: %f kB", &kb); err == nil {
			m.MemGiB = kb / (1 << 20)
		}
	}
	if out, err := run(ctx, 10*time.Second, "", "uname", "-r"); err == nil {
		m.Kernel = strings.TrimSpace(out)
	}
	if out, err := run(ctx, 10*time.Second, "", "ovs-vswitchd", "--version"); err == nil {
		m.OVS = strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	}
	if out, err := run(ctx, 10*time.Second, "", "iperf3", "--version"); err == nil {
		m.Iperf3 = strings.TrimSpace(strings.SplitN(out, "\n", 2)[0])
	}
	if lab.KernelDatapath() {
		m.Datapath = "system (openvswitch kernel module loaded)"
	} else {
		m.Datapath = "netdev (userspace; no openvswitch kernel module)"
	}
	return m
}

// fail marks every section as failed with err (when it has no error yet).
func fail(secs map[string]*Section, err error) {
	for _, sec := range secs {
		if sec.Err == nil {
			sec.Err = err
		}
	}
}

// errNotRun says that a section did not run because an earlier step failed.
var errNotRun = errors.New("not run: an earlier step of its phase failed")

// Command fabric-bench runs ovsfabric's benchmark suite (package lab/bench) on this machine
// and rewrites docs/benchmarks.md with the results: data path throughput and latency (also
// encrypted against unencrypted), convergence, failure detection, attach, OVSDB and gossip
// scale, memory, fabricd at 100 to 5000 peers in both tunnel modes, the planner and networks
// (throughput among many, reconcile at scale, time until a new one is usable), each with its
// target and whether it was met. `make bench` runs it as
//
//	./bin/fabric-bench --out docs/benchmarks.md
//
// It needs root (network namespaces, OVS daemons), takes about 14 minutes on 2 cores, prints
// its progress, and tears every lab down, also on failure and on Ctrl-C (an interrupted run
// writes no report).
//
// `fabric-bench swarm …` is used by the suite itself: it runs synthetic gossip members for
// the memory and peer scale sections.
package main

import (
	"context"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ovsfabric/ovsfabric/lab/bench"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

func main() {
	var err error
	if len(os.Args) > 1 && os.Args[1] == "swarm" {
		err = swarm(os.Args[2:])
	} else {
		err = runSuite(os.Args[1:])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "fabric-bench:", err)
		os.Exit(1)
	}
}

func runSuite(args []string) error {
	var err error
	cfg := bench.DefaultConfig()
	fs := flag.NewFlagSet("fabric-bench", flag.ContinueOnError)
	out := fs.String("out", "docs/benchmarks.md", "Markdown file to (re)write; empty prints to stdout")
	only := fs.String("only", "", "comma-separated sections to run (default all): "+sectionKeys())
	fs.StringVar(&cfg.Bin, "bin", cfg.Bin, "directory with fabricd and fabricctl (built there when missing)")
	fs.StringVar(&cfg.Repo, "repo", cfg.Repo, "module root, for the planner's go test")
	fs.StringVar(&cfg.Work, "work", cfg.Work, "directory for the labs (a fresh subdirectory is made; keep the path short)")
	fs.IntVar(&cfg.Trials, "trials", cfg.Trials, "throughput trials per case")
	fs.IntVar(&cfg.IperfSeconds, "iperf-seconds", cfg.IperfSeconds, "seconds per iperf3 run, plus 1 omitted (0: up to 10, to fit the budget)")
	fs.IntVar(&cfg.ConvergenceTrials, "convergence-trials", cfg.ConvergenceTrials, "convergence trials")
	fs.IntVar(&cfg.FailureTrials, "failure-trials", cfg.FailureTrials, "failure detection trials")
	fs.IntVar(&cfg.FaultTrials, "fault-trials", cfg.FaultTrials, "partition and ovs-vswitchd restart trials")
	fs.IntVar(&cfg.AttachSequential, "attach", cfg.AttachSequential, "containers attached one by one")
	fs.IntVar(&cfg.AttachParallel, "attach-parallel", cfg.AttachParallel, "containers attached at once")
	fs.IntVar(&cfg.ScalePeers, "scale-peers", cfg.ScalePeers, "tunnel ports in the OVSDB scale section")
	fs.IntVar(&cfg.GossipMembers, "gossip-members", cfg.GossipMembers, "members in the gossip scale section")
	fs.IntVar(&cfg.GossipTrials, "gossip-trials", cfg.GossipTrials, "gossip scale trials")
	fs.IntVar(&cfg.MemoryPeers, "memory-peers", cfg.MemoryPeers, "peers in fabricd's view for the memory section")
	fs.IntVar(&cfg.PingCount, "pings", cfg.PingCount, "pings per latency path")
	fs.IntVar(&cfg.Networks, "networks", cfg.Networks, "networks in the networks throughput section")
	fs.IntVar(&cfg.NetTrials, "net-trials", cfg.NetTrials, "interleaved trials per path of the networks throughput section")
	fs.IntVar(&cfg.EncTrials, "enc-trials", cfg.EncTrials, "interleaved trials per fabric of the encryption section")
	fs.IntVar(&cfg.DockerTrials, "docker-trials", cfg.DockerTrials, "interleaved docker run trials per network of the Docker plugin section")
	fs.IntVar(&cfg.DockerParallel, "docker-parallel", cfg.DockerParallel, "containers started at once in the Docker plugin section")
	fs.IntVar(&cfg.NetReadyTrials, "net-ready-trials", cfg.NetReadyTrials, "networks created one by one in the networks time-to-usable section")
	peerScale := fs.String("peer-scale", joinInts(cfg.PeerScale), "comma-separated view sizes of the peer scale section (each in both tunnel modes)")
	fs.DurationVar(&cfg.PeerScaleCap, "peer-scale-cap", cfg.PeerScaleCap, "longest wait for one peer scale cell to converge")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if cfg.PeerScale, err = parseInts(*peerScale); err != nil {
		return fmt.Errorf("--peer-scale: %w", err)
	}
	if os.Geteuid() != 0 {
		return fmt.Errorf("the benchmarks need root (network namespaces and OVS daemons)")
	}
	if *only != "" {
		cfg.Only = strings.Split(*only, ",")
	}
	if cfg.Self, err = os.Executable(); err != nil {
		return err
	}
	if cfg.Bin, err = filepath.Abs(cfg.Bin); err != nil {
		return err
	}
	if cfg.Repo, err = filepath.Abs(cfg.Repo); err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	if _, err := os.Stat(filepath.Join(cfg.Bin, "fabricd")); err != nil {
		fmt.Fprintf(os.Stderr, "building fabricd and fabricctl into %s\n", cfg.Bin)
		bctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
		err := fabriclab.BuildBinaries(bctx, cfg.Bin)
		cancel()
		if err != nil {
			return err
		}
	}
	work, err := os.MkdirTemp(cfg.Work, "ofb-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	cfg.Work = work
	cfg.Progress = os.Stderr

	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return err
	}
	rep.Command = strings.Join(append([]string{commandName()}, args...), " ")
	fmt.Fprintf(os.Stderr, "suite done in %s\n", rep.Took.Round(time.Second))
	if *out == "" {
		return rep.Render(os.Stdout)
	}
	tmp := *out + ".tmp"
	f, err := os.Create(tmp)
	if err != nil {
		return err
	}
	if err := rep.Render(f); err != nil {
		f.Close()
		os.Remove(tmp)
		return err
	}
	if err := f.Close(); err != nil {
		os.Remove(tmp)
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", *out)
	return nil
}

// commandName is how this program was invoked, relative to the working directory when it
// lies below it (./bin/fabric-bench).
func commandName() string {
	name := os.Args[0]
	if abs, err := filepath.Abs(name); err == nil {
		if wd, err := os.Getwd(); err == nil {
			if rel, err := filepath.Rel(wd, abs); err == nil && !strings.HasPrefix(rel, "..") {
				return "./" + rel
			}
		}
	}
	return name
}

// joinInts formats ns as "1,2,3".
func joinInts(ns []int) string {
	s := make([]string, len(ns))
	for i, n := range ns {
		s[i] = strconv.Itoa(n)
	}
	return strings.Join(s, ",")
}

// parseInts reads "1,2,3": positive sizes up to 30000 (the peer scale lab's cluster CIDR
// has room for 32767 members).
func parseInts(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil {
			return nil, err
		}
		if n < 1 || n > 30000 {
			return nil, fmt.Errorf("%d: want 1 to 30000", n)
		}
		out = append(out, n)
	}
	return out, nil
}

func sectionKeys() string {
	var keys []string
	for _, s := range bench.Sections {
		keys = append(keys, s.Key)
	}
	return strings.Join(keys, ",")
}

// swarm runs synthetic gossip members until SIGTERM or SIGINT.
func swarm(args []string) error {
	fs := flag.NewFlagSet("fabric-bench swarm", flag.ContinueOnError)
	members := fs.Int("members", 1000, "number of members")
	bind := fs.String("bind", "", "address every member listens on")
	port := fs.Int("port", 20000, "first member's port; member i uses port+i")
	join := fs.String("join", "", "HOST:PORT of the fabricd to join")
	cidr := fs.String("cluster-cidr", "", "fabricd's cluster CIDR")
	tunnel := fs.String("tunnel", "vxlan", "fabricd's tunnel type")
	seeds := fs.Int("seeds", 0, "when > 0, only the first this many members join fabricd; the others join one of them (fabricd hears of them by gossip)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	addr, err := netip.ParseAddr(*bind)
	if err != nil {
		return fmt.Errorf("--bind: %w", err)
	}
	pfx, err := netip.ParsePrefix(*cidr)
	if err != nil {
		return fmt.Errorf("--cluster-cidr: %w", err)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return bench.RunSwarm(ctx, bench.SwarmConfig{Members: *members, Bind: addr, BasePort: *port, Join: *join, ClusterCIDR: pfx, Tunnel: *tunnel, Seeds: *seeds, Log: os.Stdout})
}

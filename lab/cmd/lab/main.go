// Command lab builds, inspects and removes multi-host Open vSwitch labs on this machine (see
// docs/lab.md): every host a network namespace with its own ovsdb-server and ovs-vswitchd,
// joined by an underlay bridge.
//
//	lab up --hosts 3 [--dir .lab/default] [--datapath auto|netdev|system] [--external]
//	lab status [--dir D | --name N]
//	lab exec [--dir D | --name N] h1 -- ovs-vsctl show
//	lab add-host [--dir D | --name N]
//	lab down [--dir D | --name N]
//	lab ls
//	lab gc
package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ovsfabric/ovsfabric/lab"
)

func main() {
	if err := root().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(1)
	}
}

// options are the flags every command shares.
type options struct {
	dir     string
	name    string
	verbose bool
}

func (o *options) logger() *slog.Logger {
	level := slog.LevelInfo
	if o.verbose {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}

// open loads the lab selected by --name (from the machine's registry) or --dir. When there is
// no such lab, the error lists the labs that exist and how to select one.
func (o *options) open() (*lab.Lab, error) {
	var (
		l   *lab.Lab
		err error
	)
	if o.name != "" {
		l, err = lab.OpenName(o.name)
	} else {
		l, err = lab.Open(o.dir)
	}
	if errors.Is(err, fs.ErrNotExist) {
		return nil, notFound{err}
	}
	if err != nil {
		return nil, err
	}
	l.SetLogger(o.logger())
	return l, nil
}

// notFound is "no such lab", with the labs that do exist.
type notFound struct{ err error }

func (e notFound) Unwrap() error { return e.err }

func (e notFound) Error() string {
	msg := e.err.Error()
	labs, _ := lab.Labs()
	var sel []string
	for _, i := range labs {
		switch {
		case i.Dir != "":
			sel = append(sel, fmt.Sprintf("--dir %s   (lab %s, hosts: %d)", i.Dir, i.Name, i.Hosts))
		default:
			sel = append(sel, fmt.Sprintf("--name %s   (namespaces only)", i.Name))
		}
	}
	if len(sel) == 0 {
		return msg + "\nno lab exists on this machine: make one with `lab up` (or `make demo KEEP=1`)"
	}
	return msg + "\nlabs on this machine (`lab ls`); select one with\n  " + strings.Join(sel, "\n  ")
}

func root() *cobra.Command {
	o := &options{}
	cmd := &cobra.Command{
		Use:   "lab",
		Short: "Multi-host Open vSwitch labs in network namespaces",
		Long: `lab builds "hosts" on this machine: each a network namespace running its own ovsdb-server
and ovs-vswitchd, joined by an underlay (a Linux bridge in a lab namespace). Everything is
recorded in <dir>/state.json and removed again by 'lab down'. See docs/lab.md.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	cmd.PersistentFlags().StringVar(&o.dir, "dir", filepath.Join(".lab", "default"), "lab directory (state, databases, sockets, logs)")
	cmd.PersistentFlags().StringVar(&o.name, "name", "", "lab name (up: the name to give; other commands: select the lab by name instead of --dir)")
	cmd.PersistentFlags().BoolVarP(&o.verbose, "verbose", "v", false, "log every command run")
	cmd.AddCommand(upCmd(o), downCmd(o), statusCmd(o), execCmd(o), addHostCmd(o), lsCmd(), gcCmd(o))
	return cmd
}

func upCmd(o *options) *cobra.Command {
	var (
		cfg      lab.Config
		underlay string
	)
	cmd := &cobra.Command{
		Use:   "up",
		Short: "Build a lab: a netns, ovsdb-server and ovs-vswitchd per host, an underlay between them",
		Example: `  lab up --hosts 3
  lab up --dir .lab/mine --hosts 2 --external --mtu 9000`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer cancel()
			cfg.Dir, cfg.Name, cfg.Keep, cfg.Logger = o.dir, o.name, true, o.logger()
			if underlay != "" {
				p, err := netip.ParsePrefix(underlay)
				if err != nil {
					return fmt.Errorf("--underlay: %w", err)
				}
				cfg.UnderlayCIDR = p
			}
			start := time.Now()
			l, err := lab.Up(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Printf("lab %s up in %s\n\n", l.Name, time.Since(start).Round(time.Millisecond))
			printStatus(l)
			sel := "--dir " + l.Dir
			fmt.Printf("\nlook inside:  lab exec %s h1 -- ovs-vsctl show\nremove:       lab down %s\n", sel, sel)
			return nil
		},
	}
	cmd.Flags().IntVar(&cfg.Hosts, "hosts", 3, "number of hosts")
	cmd.Flags().StringVar(&cfg.Datapath, "datapath", "auto", "auto, netdev (userspace) or system (kernel module)")
	cmd.Flags().BoolVar(&cfg.External, "external", false, "add an 'outside world' namespace on the underlay")
	cmd.Flags().StringVar(&underlay, "underlay", "172.30.0.0/24", "underlay network")
	cmd.Flags().IntVar(&cfg.UnderlayMTU, "mtu", 1500, "underlay MTU")
	return cmd
}

func downCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "down",
		Short: "Remove everything a lab made: its processes (by PID), namespaces, registry entry, directory",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			l, err := o.open()
			if nf := (notFound{}); errors.As(err, &nf) {
				fmt.Printf("%v: nothing to do\n", nf.err)
				return nil
			}
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
			defer cancel()
			start := time.Now()
			if err := l.Down(ctx); err != nil {
				return err
			}
			fmt.Printf("lab %s removed in %s\n", l.Name, time.Since(start).Round(time.Millisecond))
			return nil
		},
	}
}

func statusCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show a lab's hosts, namespaces, underlay addresses, processes and OVSDB sockets",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			l, err := o.open()
			if err != nil {
				return err
			}
			printStatus(l)
			return nil
		},
	}
}

func addHostCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "add-host",
		Short: "Add one more host to a running lab",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			l, err := o.open()
			if err != nil {
				return err
			}
			ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer cancel()
			h, err := l.AddHost(ctx)
			if err != nil {
				return err
			}
			fmt.Printf("added %s: netns %s, underlay %s, ovsdb %s\n", h.Name, h.NetNS, h.UnderlayIP, h.Endpoint())
			return nil
		},
	}
}

func execCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "exec TARGET -- CMD [ARGS...]",
		Short: "Run a command in a lab namespace; on a host, ovs-vsctl/ovs-ofctl/ovs-appctl talk to its daemons",
		Long: `exec runs CMD in a lab namespace with 'ip netns exec'. TARGET is a host (h1), "ext" (the
external node), "underlay", or a container namespace (h1-c1, or its full name). On a host the
OVS environment is set (OVS_RUNDIR and friends point at the host's directory), so plain
ovs-vsctl, ovs-ofctl and 'ovs-appctl -t ovs-vswitchd' reach that host's daemons;
FABRICCTL_SOCKET is the host's fabricd API socket (<dir>/hN/fabricd.sock), so plain fabricctl
talks to that host's fabricd, and DOCKER_HOST its private dockerd when it runs. The lab's bin
directory (where fabricd was started from, and this lab binary's) comes first on PATH.`,
		Example: `  lab exec --dir .lab/demo h1 -- fabricctl peers
  lab exec --dir .lab/demo h2 -- docker ps
  lab exec h1 -- ovs-vsctl show
  lab exec h1 -- ovs-ofctl dump-flows br-int
  lab exec h1 -- ovs-appctl -t ovs-vswitchd fdb/show br-int
  lab exec h2 -- ip route
  lab exec ext -- ping -c1 172.30.0.11`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if cmd.ArgsLenAtDash() != 1 {
				return errors.New("usage: lab exec TARGET -- CMD [ARGS...]")
			}
			l, err := o.open()
			if err != nil {
				return err
			}
			ns, env, err := target(l, args[0])
			if err != nil {
				return err
			}
			env = append(env, "PATH="+binPath(l, args[0]))
			ip, err := exec.LookPath("ip")
			if err != nil {
				ip = "/usr/sbin/ip"
			}
			// Replace this process: the terminal, signals and the exit status are the command's.
			argv := append([]string{"ip", "netns", "exec", ns}, args[1:]...)
			return syscall.Exec(ip, argv, mergeEnv(os.Environ(), env))
		},
	}
}

// target resolves an exec TARGET to a namespace and the environment to run in it with.
func target(l *lab.Lab, t string) (string, []string, error) {
	if h := l.Host(t); h != nil {
		env := append(h.Env(), "FABRICCTL_SOCKET="+h.APISocket())
		if _, err := os.Stat(strings.TrimPrefix(h.DockerHost(), "unix://")); err == nil {
			env = append(env, "DOCKER_HOST="+h.DockerHost())
		}
		return h.NetNS, env, nil
	}
	switch t {
	case "ext", "external":
		if l.External == "" {
			return "", nil, fmt.Errorf("lab %s has no external node (lab up --external)", l.Name)
		}
		return l.External, nil, nil
	case "u", "underlay":
		return l.Underlay, nil, nil
	}
	prefix := lab.NetNSPrefix(l.Name)
	for _, ns := range l.NetNS() {
		if ns == t || ns == prefix+t {
			return ns, nil, nil
		}
	}
	var names []string
	for _, h := range l.Hosts {
		names = append(names, h.Name)
	}
	return "", nil, fmt.Errorf("no %q in lab %s (hosts: %s; or ext, underlay, a container netns)", t, l.Name, strings.Join(names, ", "))
}

func lsCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List every lab on this machine (also other people's and test labs)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			labs, err := lab.Labs()
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tHOSTS\tNETNS\tOWNER\tDIR")
			for _, i := range labs {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%s\n", i.Name, i.Hosts, len(i.NetNS), owner(i), orDash(i.Dir))
			}
			return tw.Flush()
		},
	}
}

func owner(i lab.Info) string {
	switch {
	case !i.Registered:
		return "unregistered"
	case i.Keep:
		return "kept (lab up)"
	case i.OwnerAlive:
		return fmt.Sprintf("pid %d", i.Owner)
	default:
		return fmt.Sprintf("pid %d gone: orphaned", i.Owner)
	}
}

func gcCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "gc",
		Short: "Take down orphaned labs: test labs whose process has died (never labs made by 'lab up')",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			labs, err := lab.Labs()
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
			defer cancel()
			var errs []error
			n := 0
			for _, i := range labs {
				switch {
				case i.Orphaned():
					l, err := lab.OpenName(i.Name)
					if err == nil {
						l.SetLogger(o.logger())
						err = l.Down(ctx)
					}
					if err != nil {
						errs = append(errs, err)
						continue
					}
					n++
					fmt.Printf("removed orphaned lab %s (builder pid %d gone, dir %s)\n", i.Name, i.Owner, orDash(i.Dir))
				case !i.Registered:
					fmt.Printf("left alone: namespaces %s belong to no registered lab (`lab down --name %s` removes them)\n", strings.Join(i.NetNS, ", "), i.Name)
				}
			}
			fmt.Printf("%d orphaned labs removed\n", n)
			return errors.Join(errs...)
		},
	}
}

func printStatus(l *lab.Lab) {
	fmt.Printf("lab %s  dir %s\n", l.Name, orDash(l.Dir))
	fmt.Printf("datapath %s  underlay %s (netns %s, bridge br0)  mtu %d\n", orDash(l.Datapath), l.UnderlayCIDR, l.Underlay, l.MTU)
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\nHOST\tNETNS\tUNDERLAY\tOVSDB\tAPI SOCKET\tPROCESSES")
	var api, dockers []string
	for _, h := range l.Hosts {
		sock := "-"
		if _, err := os.Stat(h.APISocket()); err == nil {
			sock = h.APISocket()
			api = append(api, h.Name)
		}
		var parts []string
		if ps := procs(h.Procs()); ps != "-" {
			parts = append(parts, ps)
		}
		// The private dockerd's processes: dockerd, containerd, shims, containers.
		if dps := h.DockerProcesses(); len(dps) > 0 {
			dockers = append(dockers, fmt.Sprintf("%s: DOCKER_HOST=%s", h.Name, h.DockerHost()))
			for _, p := range dps {
				parts = append(parts, fmt.Sprintf("%s:%d(up)", p.Name, p.PID))
			}
		}
		ps := orDash(strings.Join(parts, " "))
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, h.NetNS+exists(h.NetNS), h.UnderlayIP, h.Endpoint(), sock, ps)
	}
	if l.External != "" {
		fmt.Fprintf(tw, "ext\t%s\t%s\t-\t-\t%s\n", l.External+exists(l.External), l.ExternalIP, procs(procsIn(l, l.External)))
	}
	_ = tw.Flush()
	sel := "--dir " + l.Dir
	if l.Dir == "" {
		sel = "--name " + l.Name
	}
	if len(api) > 0 {
		fmt.Printf("\nfabricctl on a host (FABRICCTL_SOCKET is its API socket):  lab exec %s %s -- fabricctl peers\n", sel, api[0])
	}
	if len(dockers) > 0 {
		fmt.Printf("\nprivate dockerd (stopped by lab down):\n  %s\n", strings.Join(dockers, "\n  "))
	}
	var others []string
	for _, ns := range l.NetNS() {
		if ns == l.Underlay || ns == l.External || slices.ContainsFunc(l.Hosts, func(h *lab.Host) bool { return h.NetNS == ns }) {
			continue
		}
		s := ns + exists(ns)
		if p := procs(procsIn(l, ns)); p != "-" {
			s += " " + p
		}
		others = append(others, s)
	}
	if len(others) > 0 {
		fmt.Printf("\ncontainer namespaces:\n  %s\n", strings.Join(others, "\n  "))
	}
	if l.Dir != "" {
		fmt.Printf("\nlogs: %s/<host>/{ovsdb-server,ovs-vswitchd,<process>}.log, <host>/docker/{dockerd,containerd}.log\n", l.Dir)
	}
}

func procsIn(l *lab.Lab, ns string) []*lab.Proc {
	var out []*lab.Proc
	for _, p := range l.Procs() {
		if p.NetNS() == ns {
			out = append(out, p)
		}
	}
	return out
}

// procs shows the latest process of each name: name:pid(up|dead).
func procs(ps []*lab.Proc) string {
	latest := map[string]*lab.Proc{}
	var order []string
	for _, p := range ps {
		if _, ok := latest[p.Name()]; !ok {
			order = append(order, p.Name())
		}
		latest[p.Name()] = p
	}
	var out []string
	for _, name := range order {
		p := latest[name]
		state := "dead"
		if p.Alive() {
			state = "up"
		}
		out = append(out, fmt.Sprintf("%s:%d(%s)", name, p.PID(), state))
	}
	if len(out) == 0 {
		return "-"
	}
	return strings.Join(out, " ")
}

func exists(ns string) string {
	if _, err := os.Stat(filepath.Join("/var/run/netns", ns)); err != nil {
		return " (missing)"
	}
	return ""
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// binPath is PATH for a command run by exec: first the directories of the fabricd the lab runs
// on the target host (or any host) and of this lab binary — bin/ of the checkout, holding
// fabricctl — then the caller's PATH.
func binPath(l *lab.Lab, target string) string {
	var dirs []string
	add := func(d string) {
		if d != "" && filepath.IsAbs(d) && !slices.Contains(dirs, d) {
			dirs = append(dirs, d)
		}
	}
	h := l.Host(target)
	for _, p := range slices.Backward(l.Procs()) {
		if argv := p.Argv(); p.Name() == "fabricd" && len(argv) > 0 && (h == nil || p.NetNS() == h.NetNS) {
			add(filepath.Dir(argv[0]))
			break
		}
	}
	if exe, err := os.Executable(); err == nil {
		add(filepath.Dir(exe))
	}
	path := os.Getenv("PATH")
	if path == "" {
		path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	}
	return strings.Join(append(dirs, path), string(os.PathListSeparator))
}

// mergeEnv is base with the variables of over set (replaced, not added twice: with two PATH
// entries, programs would see the first).
func mergeEnv(base, over []string) []string {
	keys := map[string]bool{}
	for _, kv := range over {
		k, _, _ := strings.Cut(kv, "=")
		keys[k] = true
	}
	out := slices.DeleteFunc(slices.Clone(base), func(kv string) bool {
		k, _, _ := strings.Cut(kv, "=")
		return keys[k]
	})
	return append(out, over...)
}

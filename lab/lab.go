package lab

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ovsfabric/ovsfabric/lab/dockerlab"
)

// Config describes a lab to build with Up. The zero value (plus Hosts) is a sensible lab.
type Config struct {
	// Dir holds everything of the lab: state.json and one directory per host (default
	// .lab/<Name>, made absolute). Unix socket paths below it must fit in 107 bytes, so it may
	// be at most 77 bytes long.
	Dir string
	// Name is a short lab ID (1-12 characters a-z, 0-9; default random): every namespace of
	// the lab is named ovsfab-<Name>-…, and no two labs on the machine share a name.
	Name string
	// Hosts is how many hosts Up builds (h1 … hN). More can be added with AddHost.
	Hosts int
	// Datapath is the OVS datapath type: "netdev" (userspace), "system" (kernel module), or
	// "" / "auto": system when the openvswitch kernel module is loaded, else netdev.
	Datapath string
	// UnderlayCIDR is the underlay network (default 172.30.0.0/24). Host hN gets the network
	// address + 10 + N (172.30.0.11 for h1), the external node the last usable address
	// (172.30.0.254). Every lab has its underlay in its own namespaces, so labs running at the
	// same time may use the same CIDR.
	UnderlayCIDR netip.Prefix
	// UnderlayMTU is the MTU of the underlay links and of br-phy (default 1500).
	UnderlayMTU int
	// External adds a namespace ovsfab-<Name>-ext on the underlay, standing for the world
	// outside the fabric (for masquerade and published-port tests).
	External bool
	// Keep marks a lab meant to outlive the process that builds it (the lab CLI). Labs
	// without Keep whose builder has died are what `lab gc` removes.
	Keep bool
	// Logger receives progress (Info) and every command run (Debug). Default: discard.
	Logger *slog.Logger
}

// maxDirLen keeps <dir>/h999/ovs-vswitchd.<7-digit pid>.ctl within a unix socket path's 107 bytes.
const maxDirLen = 107 - len("/h999/ovs-vswitchd.4194304.ctl")

// withDefaults fills in and checks cfg.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.Name == "" {
		cfg.Name = randomName()
	}
	if err := checkName(cfg.Name); err != nil {
		return cfg, err
	}
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(".lab", cfg.Name)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return cfg, fmt.Errorf("lab dir: %w", err)
	}
	cfg.Dir = dir
	if len(dir) > maxDirLen {
		return cfg, fmt.Errorf("lab dir %s is %d bytes long; at most %d fit unix socket paths below it", dir, len(dir), maxDirLen)
	}
	if cfg.Hosts < 0 {
		return cfg, fmt.Errorf("hosts: %d", cfg.Hosts)
	}
	switch cfg.Datapath {
	case "", "auto":
		cfg.Datapath = "netdev"
		if KernelDatapath() {
			cfg.Datapath = "system"
		}
	case "netdev", "system":
	default:
		return cfg, fmt.Errorf("datapath %q: want auto, netdev or system", cfg.Datapath)
	}
	if !cfg.UnderlayCIDR.IsValid() {
		cfg.UnderlayCIDR = netip.MustParsePrefix("172.30.0.0/24")
	}
	cfg.UnderlayCIDR = cfg.UnderlayCIDR.Masked()
	if cfg.Hosts > 0 {
		if _, err := hostAddr(cfg.UnderlayCIDR, cfg.Hosts); err != nil {
			return cfg, err
		}
	}
	if cfg.UnderlayMTU == 0 {
		cfg.UnderlayMTU = 1500
	}
	minMTU := 576
	if cfg.UnderlayCIDR.Addr().Is6() {
		minMTU = 1280
	}
	if cfg.UnderlayMTU < minMTU || cfg.UnderlayMTU > 65535 {
		return cfg, fmt.Errorf("underlay MTU %d: want %d-65535", cfg.UnderlayMTU, minMTU)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return cfg, nil
}

// KernelDatapath reports whether the openvswitch kernel module is loaded (the "system"
// datapath is available).
func KernelDatapath() bool {
	_, err := os.Stat("/sys/module/openvswitch")
	return err == nil
}

// Lab is a lab built by Up or loaded by Open. Its methods are safe for concurrent use; the
// exported fields are read-only (read Hosts while no AddHost runs, or use Host).
type Lab struct {
	// Name is the lab ID; Dir its absolute directory ("" for namespaces found without state,
	// see OpenName).
	Name string
	Dir  string
	// Datapath is "netdev" or "system"; MTU the underlay MTU.
	Datapath string
	MTU      int
	// Underlay is the namespace holding the underlay bridge br0, with one port u-<host> per
	// host (and u-ext); UnderlayCIDR its network.
	Underlay     string
	UnderlayCIDR netip.Prefix
	// Hosts in the order they were added. AddHost appends.
	Hosts []*Host
	// External is the outside-world namespace and ExternalIP its address (Config.External).
	External   string
	ExternalIP netip.Addr

	log        *slog.Logger
	registered bool // the registry entry is this lab's

	saveMu sync.Mutex // serialises save
	mu     sync.Mutex // guards st, Hosts, procs
	st     state
	procs  []*Proc
}

// hostUpHook, when set (by tests), runs at the end of building every host; an error fails it.
var hostUpHook func(*Host) error

// Up builds a lab: the underlay, cfg.Hosts hosts (built in parallel) and the external node.
// Everything is recorded in <dir>/state.json as it is made. When Up fails half-way it removes
// what it made and returns the error.
func Up(ctx context.Context, cfg Config) (*Lab, error) {
	start := time.Now()
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, fmt.Errorf("lab up: %w", err)
	}
	for _, bin := range []string{"ip", "ethtool", "sysctl", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl"} {
		if _, err := lookPath(bin); err != nil {
			return nil, fmt.Errorf("lab up: %w", err)
		}
	}
	if _, err := os.Stat(filepath.Join(cfg.Dir, "state.json")); err == nil {
		return nil, fmt.Errorf("lab up: %s holds a lab already (remove it with `lab down --dir %s`)", cfg.Dir, cfg.Dir)
	}
	l := &Lab{
		Name: cfg.Name, Dir: cfg.Dir, Datapath: cfg.Datapath, MTU: cfg.UnderlayMTU,
		Underlay: NetNSPrefix(cfg.Name) + "u", UnderlayCIDR: cfg.UnderlayCIDR, log: cfg.Logger,
	}
	l.st = state{Version: stateVersion, Name: cfg.Name, Dir: cfg.Dir, Datapath: cfg.Datapath,
		Underlay: cfg.UnderlayCIDR.String(), MTU: cfg.UnderlayMTU, Keep: cfg.Keep, CreatedAt: time.Now().UTC()}
	if !cfg.Keep {
		l.st.OwnerPID = os.Getpid()
		l.st.OwnerStart, _ = procStartTime(os.Getpid())
	}
	b, err := encodeState(&l.st)
	if err != nil {
		return nil, fmt.Errorf("lab up: %w", err)
	}
	if err := reserve(cfg.Name, b); err != nil {
		return nil, fmt.Errorf("lab up: %w", err)
	}
	l.registered = true
	fail := func(err error) (*Lab, error) {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
		if derr := l.Down(dctx); derr != nil {
			err = errors.Join(err, fmt.Errorf("tearing the half-made lab down: %w", derr))
		}
		return nil, fmt.Errorf("lab up: %w", err)
	}
	if err := os.MkdirAll(l.Dir, 0o755); err != nil {
		return fail(fmt.Errorf("lab dir: %w", err))
	}
	if err := l.save(); err != nil {
		return fail(err)
	}
	if err := l.addNetNS(ctx, l.Underlay); err != nil {
		return fail(fmt.Errorf("underlay: %w", err))
	}
	for _, args := range [][]string{
		{"-n", l.Underlay, "link", "add", "br0", "type", "bridge"},
		{"-n", l.Underlay, "link", "set", "br0", "up"},
	} {
		if err := l.run(ctx, "ip", args...); err != nil {
			return fail(fmt.Errorf("underlay: %w", err))
		}
	}
	if err := l.addHosts(ctx, cfg.Hosts); err != nil {
		return fail(err)
	}
	if cfg.External {
		if err := l.addExternal(ctx); err != nil {
			return fail(err)
		}
	}
	l.log.Info("lab up", "name", l.Name, "dir", l.Dir, "hosts", len(l.Hosts), "datapath", l.Datapath,
		"took", time.Since(start).Round(time.Millisecond))
	return l, nil
}

// addHosts builds n hosts, up to three at a time.
func (l *Lab) addHosts(ctx context.Context, n int) error {
	l.mu.Lock()
	first := l.st.NextHost + 1
	l.st.NextHost += n
	l.mu.Unlock()
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, 3)
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for i := first; i < first+n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			if ctx.Err() != nil {
				return
			}
			h, err := l.addHost(ctx, i)
			if err == nil && hostUpHook != nil {
				err = hostUpHook(h)
			}
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				cancel(err)
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (l *Lab) prefix() string { return NetNSPrefix(l.Name) }

// addExternal makes the outside-world node on the underlay.
func (l *Lab) addExternal(ctx context.Context) error {
	ns := l.prefix() + "ext"
	if err := l.addNetNS(ctx, ns); err != nil {
		return fmt.Errorf("external node: %w", err)
	}
	if err := l.plugUnderlay(ctx, ns, "u-ext"); err != nil {
		return fmt.Errorf("external node: %w", err)
	}
	ip := externalAddr(l.UnderlayCIDR)
	args := []string{"-n", ns, "addr", "add", ip.String(), "dev", "eth0"}
	if ip.Addr().Is6() {
		args = append(args, "nodad")
	}
	if err := l.run(ctx, "ip", args...); err != nil {
		return fmt.Errorf("external node: %w", err)
	}
	l.mu.Lock()
	l.External, l.ExternalIP = ns, ip.Addr()
	l.st.External, l.st.ExtIP = ns, ip.Addr().String()
	l.mu.Unlock()
	return l.save()
}

// addNetNS records, then creates a named namespace with lo up.
func (l *Lab) addNetNS(ctx context.Context, name string) error {
	l.mu.Lock()
	if slices.Contains(l.st.Netns, name) {
		l.mu.Unlock()
		return fmt.Errorf("netns %s exists in the lab already", name)
	}
	l.st.Netns = append(l.st.Netns, name)
	l.mu.Unlock()
	if err := l.save(); err != nil {
		return err
	}
	if err := l.run(ctx, "ip", "netns", "add", name); err != nil {
		return err
	}
	return l.run(ctx, "ip", "-n", name, "link", "set", "lo", "up")
}

// AddNetNS creates a network namespace for a container on host h, named
// ovsfab-<lab>-<host>-<name> (ovsfab-<lab>-<name> when h is nil), with lo up, and returns its
// path (/var/run/netns/…). It is recorded, and Down deletes it; it is not wired to anything.
func (l *Lab) AddNetNS(ctx context.Context, h *Host, name string) (string, error) {
	if !nsNameRE.MatchString(name) {
		return "", fmt.Errorf("netns name %q: want letters, digits, _ . -", name)
	}
	ns := l.prefix() + name
	if h != nil {
		ns = h.NetNS + "-" + name
	}
	if err := l.addNetNS(ctx, ns); err != nil {
		return "", fmt.Errorf("add netns %s: %w", ns, err)
	}
	return filepath.Join(netnsDir, ns), nil
}

// DeleteNetNS deletes a namespace made by AddNetNS (a container that goes away), given by path
// or name.
func (l *Lab) DeleteNetNS(ctx context.Context, pathOrName string) error {
	name := filepath.Base(pathOrName)
	if !strings.HasPrefix(name, l.prefix()) {
		return fmt.Errorf("delete netns %s: not this lab's", name)
	}
	if err := l.deleteNetNS(ctx, name); err != nil {
		return fmt.Errorf("delete netns %s: %w", name, err)
	}
	return nil
}

func (l *Lab) deleteNetNS(ctx context.Context, name string) error {
	if _, err := os.Stat(filepath.Join(netnsDir, name)); err == nil {
		if err := l.run(ctx, "ip", "netns", "del", name); err != nil {
			return err
		}
	}
	// `ip netns exec` config fabricd may have written for it (its resolv.conf, pointing at
	// the fabric DNS) when fabricd was stopped before it could detach it.
	if err := os.RemoveAll(filepath.Join(etcNetnsDir, name)); err != nil {
		return fmt.Errorf("remove %s: %w", filepath.Join(etcNetnsDir, name), err)
	}
	l.mu.Lock()
	l.st.Netns = slices.DeleteFunc(l.st.Netns, func(s string) bool { return s == name })
	l.mu.Unlock()
	return l.save()
}

// Host returns the host called name (h1, h2, …), or nil.
func (l *Lab) Host(name string) *Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.Hosts {
		if h.Name == name {
			return h
		}
	}
	return nil
}

// NetNS lists the lab's recorded namespaces: the underlay, hosts, external node, containers.
func (l *Lab) NetNS() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.st.Netns...)
}

// Procs lists every process the lab started (dead ones too), in start order.
func (l *Lab) Procs() []*Proc {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*Proc(nil), l.procs...)
}

// SetLogger sets where the lab logs (for a Lab from Open or OpenName).
func (l *Lab) SetLogger(log *slog.Logger) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	l.log = log
}

// StartIn starts a long-running process in any lab namespace (a container's, the external
// node's), without the OVS environment. Its output goes to <lab dir>/<netns suffix>-<name>.log;
// it is recorded and Down stops it.
func (l *Lab) StartIn(ctx context.Context, netns, name string, argv []string, env []string) (*Proc, error) {
	if !nsNameRE.MatchString(name) {
		return nil, fmt.Errorf("start %q in %s: bad process name (it names the log file)", name, netns)
	}
	if !strings.HasPrefix(netns, l.prefix()) {
		return nil, fmt.Errorf("start %s in %s: not a namespace of this lab", name, netns)
	}
	logPath := filepath.Join(l.Dir, strings.TrimPrefix(netns, l.prefix())+"-"+name+".log")
	return l.start(ctx, netns, name, argv, env, logPath)
}

// CutUnderlay takes h's underlay link down (its port u-<host> on the underlay bridge), as if
// its cable were pulled; the host's own eth0 loses carrier.
func (l *Lab) CutUnderlay(ctx context.Context, h *Host) error {
	if err := l.run(ctx, "ip", "-n", l.Underlay, "link", "set", "u-"+h.Name, "down"); err != nil {
		return fmt.Errorf("cut underlay of %s: %w", h.Name, err)
	}
	return nil
}

// RestoreUnderlay brings h's underlay link back up.
func (l *Lab) RestoreUnderlay(ctx context.Context, h *Host) error {
	if err := l.run(ctx, "ip", "-n", l.Underlay, "link", "set", "u-"+h.Name, "up"); err != nil {
		return fmt.Errorf("restore underlay of %s: %w", h.Name, err)
	}
	return nil
}

// save writes the state to <dir>/state.json and the registry, each atomically.
func (l *Lab) save() error {
	l.saveMu.Lock()
	defer l.saveMu.Unlock()
	l.mu.Lock()
	st := l.st
	st.Netns = append([]string(nil), l.st.Netns...)
	st.Hosts = nil
	for _, h := range l.Hosts {
		st.Hosts = append(st.Hosts, hostRecord{Name: h.Name, NetNS: h.NetNS, Dir: h.Dir, UnderlayIP: h.UnderlayIP.String(), Index: h.index})
	}
	st.Procs = nil
	for _, p := range l.procs {
		st.Procs = append(st.Procs, p.rec)
	}
	l.mu.Unlock()
	b, err := encodeState(&st)
	if err != nil {
		return err
	}
	if l.Dir != "" {
		if err := writeFileAtomic(filepath.Join(l.Dir, "state.json"), b); err != nil {
			return fmt.Errorf("write lab state: %w", err)
		}
	}
	if l.registered {
		if err := writeFileAtomic(registryPath(l.Name), b); err != nil {
			return fmt.Errorf("write lab registry: %w", err)
		}
	}
	return nil
}

// Open loads the lab in dir from its state file: to inspect it, add to it, or take it down
// after the process that built it crashed.
func Open(dir string) (*Lab, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("no lab in %s (no state.json there): %w", dir, fs.ErrNotExist)
	}
	if err != nil {
		return nil, fmt.Errorf("no lab in %s: %w", dir, err)
	}
	st, err := decodeState(b)
	if err != nil {
		return nil, fmt.Errorf("lab in %s: %w", dir, err)
	}
	l, err := fromState(st, dir)
	if err != nil {
		return nil, fmt.Errorf("lab in %s: %w", dir, err)
	}
	if reg, err := readRegistry(st.Name); err == nil && reg.Dir == dir {
		l.registered = true
	}
	return l, nil
}

// OpenName loads the lab called name from the machine's registry (its directory may be gone,
// e.g. a test's temporary directory). When no lab of that name is registered but namespaces
// with its prefix exist, the Lab returned knows only those: Down deletes them (and reports,
// without killing, any process still inside).
func OpenName(name string) (*Lab, error) {
	if err := checkName(name); err != nil {
		return nil, err
	}
	st, err := readRegistry(name)
	if err == nil {
		l, err := fromState(st, st.Dir)
		if err != nil {
			return nil, fmt.Errorf("lab %s: %w", name, err)
		}
		l.registered = true
		return l, nil
	}
	if !errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("lab %s: %w", name, err)
	}
	ns := netnsWithPrefix(NetNSPrefix(name))
	if len(ns) == 0 {
		return nil, fmt.Errorf("no lab called %s on this machine: %w", name, fs.ErrNotExist)
	}
	l := &Lab{Name: name, Underlay: NetNSPrefix(name) + "u", log: slog.New(slog.DiscardHandler)}
	l.st = state{Version: stateVersion, Name: name, Netns: ns}
	return l, nil
}

// fromState makes a Lab from a state file's content; dir is where the lab lives.
func fromState(st *state, dir string) (*Lab, error) {
	pfx, err := netip.ParsePrefix(st.Underlay)
	if err != nil {
		return nil, fmt.Errorf("underlay: %w", err)
	}
	l := &Lab{Name: st.Name, Dir: dir, Datapath: st.Datapath, MTU: st.MTU, Underlay: NetNSPrefix(st.Name) + "u",
		UnderlayCIDR: pfx, External: st.External, log: slog.New(slog.DiscardHandler), st: *st}
	l.ExternalIP, _ = netip.ParseAddr(st.ExtIP)
	for _, r := range st.Hosts {
		ip, _ := netip.ParseAddr(r.UnderlayIP)
		hdir := r.Dir
		if dir != "" {
			hdir = filepath.Join(dir, r.Name)
		}
		l.Hosts = append(l.Hosts, &Host{Name: r.Name, NetNS: r.NetNS, Dir: hdir, UnderlayIP: ip,
			UnderlayPrefix: netip.PrefixFrom(ip, pfx.Bits()), Datapath: st.Datapath, index: r.Index, lab: l})
	}
	for _, r := range st.Procs {
		l.procs = append(l.procs, &Proc{lab: l, rec: r})
	}
	return l, nil
}

// Down removes everything the lab made: it stops the processes it started (checking by start
// time and command line that each PID is still the one it started; other processes are never
// signalled) and those they left running on purpose (Host.DetachedProcs), the hosts' private dockerds (Host.StartDocker, or found in a host's docker
// directory: their containers, daemons, shims, mounts and cgroups, see dockerlab.Cleanup),
// its hosts' OVS daemons, deletes its namespaces (their links go with them), its
// registry entry and its directory. It is idempotent and works from the state file alone
// (Open, OpenName). A namespace in which a process the lab did not start still runs is kept
// and reported; the error lists everything that could not be removed, and the state is kept
// so that Down can be run again; the error ends with the shell commands that would finish
// the teardown by hand.
func (l *Lab) Down(ctx context.Context) error {
	start := time.Now()
	l.mu.Lock()
	procs := append([]*Proc(nil), l.procs...)
	hosts := append([]*Host(nil), l.Hosts...)
	netns := append([]string(nil), l.st.Netns...)
	l.mu.Unlock()
	var errs []error

	// 1. What runs on the hosts (fabricd, iperf3, …), before OVS goes away under it.
	var others []*Proc
	for _, p := range procs {
		if !p.rec.Daemon && p.Alive() {
			others = append(others, p)
		}
	}
	errs = append(errs, stopAll(others, 5*time.Second)...)
	// What those left running on purpose, known by the pidfiles in the host directories
	// (fabricd's WireGuard device process, which outlives fabricd).
	for _, h := range hosts {
		if err := h.StopDetached(5 * time.Second); err != nil {
			errs = append(errs, err)
		}
	}

	// 1b. The hosts' private dockerds: their containers, dockerd, containerd, the shims by
	// recorded PID (checked by start time), then their mounts, cgroups and directories.
	dockers := l.dockers()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for _, r := range dockers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := dockerlab.Cleanup(ctx, r.Daemon, l.log); err != nil {
				mu.Lock()
				errs = append(errs, fmt.Errorf("host %s: %w", r.Host, err))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()

	// 2. Each host's ovs-vswitchd, then ovsdb-server (also ones known only by pidfile).
	for _, h := range hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := h.StopOVS(ctx); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	var still []*Proc
	for _, p := range procs {
		if p.Alive() {
			still = append(still, p)
		}
	}
	for _, p := range still {
		errs = append(errs, p.Kill())
	}

	// 3. Namespaces, newest first, plus any with the lab's prefix (the name is the lab's).
	for _, ns := range netnsWithPrefix(l.prefix()) {
		if !slices.Contains(netns, ns) {
			netns = append([]string{ns}, netns...)
		}
	}
	for i := len(netns) - 1; i >= 0; i-- {
		ns := netns[i]
		path := filepath.Join(netnsDir, ns)
		if _, err := os.Stat(path); err != nil {
			continue
		}
		if pids := waitNetNSEmpty(path, 2*time.Second); len(pids) > 0 {
			var ds []string
			for _, pid := range pids {
				ds = append(ds, describePID(pid))
			}
			errs = append(errs, fmt.Errorf("netns %s kept: processes the lab did not start still run in it (not killed): %s", ns, strings.Join(ds, ", ")))
			continue
		}
		if err := l.run(ctx, "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	// The `ip netns exec` files fabricd wrote for the lab's containers (resolv.conf) when it
	// stopped before it could detach them.
	if ents, err := os.ReadDir(etcNetnsDir); err == nil {
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), l.prefix()) {
				if err := os.RemoveAll(filepath.Join(etcNetnsDir, e.Name())); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}

	if err := errors.Join(errs...); err != nil {
		_ = l.save()
		return fmt.Errorf("lab %s down: %w\nto finish the teardown by hand, run as root:\n  %s", l.Name, err, strings.Join(l.handCommands(), "\n  "))
	}
	// 4. The registry entry and the directory.
	if err := release(l.Name, l.Dir); err != nil {
		return fmt.Errorf("lab %s down: %w", l.Name, err)
	}
	if l.Dir != "" {
		if err := removeLabDir(l.Dir, l.Name); err != nil {
			return fmt.Errorf("lab %s down: %w", l.Name, err)
		}
	}
	l.log.Info("lab down", "name", l.Name, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// waitNetNSEmpty waits up to timeout for the processes in the namespace at path to be gone
// (children of stopped processes may take a moment) and returns those still there.
func waitNetNSEmpty(path string, timeout time.Duration) []int {
	deadline := time.Now().Add(timeout)
	for {
		pids := pidsInNetNS(path)
		if len(pids) == 0 || time.Now().After(deadline) {
			return pids
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// removeLabDir removes dir if it is the directory of lab name (its state.json says so) or is
// already gone; it never removes a directory that is not a lab's.
func removeLabDir(dir, name string) error {
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, fs.ErrNotExist) {
		if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("%s has no state.json: not removed", dir)
	}
	if err != nil {
		return err
	}
	if st, err := decodeState(b); err != nil || st.Name != name {
		return fmt.Errorf("%s holds another lab's state: not removed", dir)
	}
	return os.RemoveAll(dir)
}

// Leftovers lists what of the lab still exists: namespaces with its prefix, processes it
// started that still run, any process inside one of its namespaces, its registry entry.
// Empty after a successful Down; tests assert that.
func (l *Lab) Leftovers() []string {
	var out []string
	seen := map[int]bool{}
	for _, ns := range netnsWithPrefix(l.prefix()) {
		out = append(out, "netns "+ns)
		for _, pid := range pidsInNetNS(filepath.Join(netnsDir, ns)) {
			seen[pid] = true
			out = append(out, "process "+describePID(pid)+" in netns "+ns)
		}
	}
	for _, p := range l.Procs() {
		if !seen[p.rec.PID] && p.Alive() {
			out = append(out, fmt.Sprintf("process %s (pid %d) in netns %s", p.rec.Name, p.rec.PID, p.rec.NetNS))
		}
	}
	for _, r := range l.dockers() {
		for _, left := range dockerlab.Leftovers(r.Daemon) {
			out = append(out, left+" (host "+r.Host+")")
		}
	}
	if l.Dir != "" {
		if mounts, err := dockerlab.MountsBelow(l.Dir); err == nil {
			for _, m := range mounts {
				if !slices.ContainsFunc(out, func(s string) bool { return s == "mount "+m || strings.HasPrefix(s, "mount "+m+" ") }) {
					out = append(out, "mount "+m)
				}
			}
		}
	}
	if st, err := readRegistry(l.Name); err == nil && (st.Dir == l.Dir || l.Dir == "") {
		out = append(out, "registry entry "+registryPath(l.Name))
	}
	return out
}

// Leftovers lists what remains on this machine of the lab called name (see Lab.Leftovers),
// from its registry entry if it has one, else from namespaces with its prefix.
func Leftovers(name string) []string {
	if st, err := readRegistry(name); err == nil {
		if l, err := fromState(st, st.Dir); err == nil {
			return l.Leftovers()
		}
	}
	l := &Lab{Name: name}
	return l.Leftovers()
}

package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"
)

// Config describes a lab.
type Config struct {
	// Dir holds everything of the lab (default .lab/<Name>). Keep it short: unix socket paths
	// below it must fit in 108 bytes.
	Dir string
	// Name is a short lab ID; every namespace is named ovsfab-<Name>-…. Default: random.
	Name string
	// Hosts is how many hosts Up builds.
	Hosts int
	// Datapath is "netdev" (userspace), "system" (kernel module) or "" for auto: system when
	// the openvswitch kernel module is loaded.
	Datapath string
	// UnderlayCIDR is the underlay network (default 172.30.0.0/24); host i gets .10+i.
	UnderlayCIDR netip.Prefix
	// UnderlayMTU is the MTU of the underlay links (default 1500).
	UnderlayMTU int
	// External adds a namespace "ext" on the underlay, standing for the world outside the
	// fabric, at the underlay's .254.
	External bool
	Logger   *slog.Logger
}

// Lab is a running lab.
type Lab struct {
	Name  string
	Dir   string
	Hosts []*Host
	// External is the outside-world namespace's name and address (when Config.External).
	External   string
	ExternalIP netip.Addr

	log *slog.Logger

	mu    sync.Mutex
	st    state
	procs map[int]*Proc
}

type state struct {
	Name      string       `json:"name"`
	Dir       string       `json:"dir"`
	Datapath  string       `json:"datapath"`
	Underlay  string       `json:"underlay_cidr"`
	MTU       int          `json:"mtu"`
	NextHost  int          `json:"next_host"`
	Netns     []string     `json:"netns"`
	Hosts     []hostRecord `json:"hosts"`
	Procs     []procRecord `json:"procs"`
	External  string       `json:"external,omitempty"`
	ExtIP     string       `json:"external_ip,omitempty"`
	CreatedAt time.Time    `json:"created_at"`
}

type hostRecord struct {
	Name       string `json:"name"`
	NetNS      string `json:"netns"`
	Dir        string `json:"dir"`
	UnderlayIP string `json:"underlay_ip"`
	Index      int    `json:"index"`
}

// KernelDatapath reports whether the openvswitch kernel module is loaded.
func KernelDatapath() bool {
	_, err := os.Stat("/sys/module/openvswitch")
	return err == nil
}

// prefix is the start of every namespace name of the lab.
func (l *Lab) prefix() string { return "ovsfab-" + l.Name + "-" }

// Up builds a lab. When it fails half-way it removes what it made.
func Up(ctx context.Context, cfg Config) (*Lab, error) {
	if cfg.Name == "" {
		b := make([]byte, 3)
		_, _ = rand.Read(b)
		cfg.Name = hex.EncodeToString(b)
	}
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(".lab", cfg.Name)
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, err
	}
	if cfg.Datapath == "" {
		cfg.Datapath = "netdev"
		if KernelDatapath() {
			cfg.Datapath = "system"
		}
	}
	if cfg.Datapath != "netdev" && cfg.Datapath != "system" {
		return nil, fmt.Errorf("datapath %q: want netdev or system", cfg.Datapath)
	}
	if !cfg.UnderlayCIDR.IsValid() {
		cfg.UnderlayCIDR = netip.MustParsePrefix("172.30.0.0/24")
	}
	if cfg.UnderlayMTU == 0 {
		cfg.UnderlayMTU = 1500
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	for _, bin := range []string{"ip", "ethtool", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl"} {
		if _, err := lookPath(bin); err != nil {
			return nil, fmt.Errorf("lab needs %s: %w", bin, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "state.json")); err == nil {
		return nil, fmt.Errorf("%s holds a lab already (remove it with `lab down --dir %s`)", dir, dir)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lab dir: %w", err)
	}
	l := &Lab{Name: cfg.Name, Dir: dir, log: cfg.Logger, procs: map[int]*Proc{}}
	l.st = state{Name: cfg.Name, Dir: dir, Datapath: cfg.Datapath, Underlay: cfg.UnderlayCIDR.String(), MTU: cfg.UnderlayMTU, CreatedAt: time.Now()}
	fail := func(err error) (*Lab, error) {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_ = l.Down(dctx)
		return nil, err
	}
	if err := l.save(); err != nil {
		return fail(err)
	}
	u := l.underlayNS()
	if err := l.addNetNS(u); err != nil {
		return fail(err)
	}
	if err := run(ctx, "ip", "-n", u, "link", "add", "br0", "type", "bridge"); err != nil {
		return fail(err)
	}
	if err := run(ctx, "ip", "-n", u, "link", "set", "br0", "up"); err != nil {
		return fail(err)
	}
	for i := 0; i < cfg.Hosts; i++ {
		if _, err := l.AddHost(ctx); err != nil {
			return fail(err)
		}
	}
	if cfg.External {
		if err := l.addExternal(ctx); err != nil {
			return fail(err)
		}
	}
	return l, nil
}

func (l *Lab) underlayNS() string { return l.prefix() + "u" }

// underlayAddr is host index i's underlay address.
func (l *Lab) underlayAddr(i int) (netip.Prefix, error) {
	p := netip.MustParsePrefix(l.st.Underlay)
	a := p.Addr().As4()
	n := int(a[3]) + 10 + i
	if n > 250 {
		return netip.Prefix{}, fmt.Errorf("underlay %s is full", p)
	}
	a[3] = byte(n)
	return netip.PrefixFrom(netip.AddrFrom4(a), p.Bits()), nil
}

// addNetNS creates a named namespace with lo up and records it.
func (l *Lab) addNetNS(name string) error {
	l.mu.Lock()
	l.st.Netns = append(l.st.Netns, name)
	l.mu.Unlock()
	if err := l.save(); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := run(ctx, "ip", "netns", "add", name); err != nil {
		return err
	}
	return run(ctx, "ip", "-n", name, "link", "set", "lo", "up")
}

// AddNetNS creates a container network namespace on host h (the host only names it; the
// namespace is attached by whoever wires it) and returns its path.
func (l *Lab) AddNetNS(ctx context.Context, h *Host, name string) (string, error) {
	ns := l.prefix() + h.Name + "-" + name
	if err := l.addNetNS(ns); err != nil {
		return "", fmt.Errorf("container netns %s: %w", ns, err)
	}
	return "/var/run/netns/" + ns, nil
}

// DeleteNetNS deletes a namespace the lab made (a container that goes away).
func (l *Lab) DeleteNetNS(ctx context.Context, path string) error {
	name := filepath.Base(path)
	if !strings.HasPrefix(name, l.prefix()) {
		return fmt.Errorf("netns %s is not this lab's", name)
	}
	if err := run(ctx, "ip", "netns", "del", name); err != nil {
		return err
	}
	l.mu.Lock()
	l.st.Netns = remove(l.st.Netns, name)
	l.mu.Unlock()
	return l.save()
}

func remove(list []string, s string) []string {
	out := list[:0]
	for _, x := range list {
		if x != s {
			out = append(out, x)
		}
	}
	return out
}

func (l *Lab) addExternal(ctx context.Context) error {
	ns := l.prefix() + "ext"
	if err := l.addNetNS(ns); err != nil {
		return err
	}
	p := netip.MustParsePrefix(l.st.Underlay)
	a := p.Addr().As4()
	a[3] = 254
	ip := netip.PrefixFrom(netip.AddrFrom4(a), p.Bits())
	u := l.underlayNS()
	mtu := fmt.Sprint(l.st.MTU)
	for _, args := range [][]string{
		{"ip", "-n", u, "link", "add", "u-ext", "mtu", mtu, "type", "veth", "peer", "name", "eth0", "netns", ns},
		{"ip", "-n", u, "link", "set", "u-ext", "master", "br0", "up"},
		{"ip", "-n", ns, "link", "set", "eth0", "mtu", mtu, "up"},
		{"ip", "-n", ns, "addr", "add", ip.String(), "dev", "eth0"},
	} {
		if err := run(ctx, args[0], args[1:]...); err != nil {
			return fmt.Errorf("external node: %w", err)
		}
	}
	if err := l.wireLike(ctx, ns, "u-ext"); err != nil {
		return err
	}
	l.mu.Lock()
	l.External, l.ExternalIP = ns, ip.Addr()
	l.st.External, l.st.ExtIP = ns, ip.Addr().String()
	l.mu.Unlock()
	return l.save()
}

// wireLike makes an underlay veth pair (eth0 in ns, underlayEnd in the underlay namespace)
// behave like a cable between real NICs: frames leave with complete checksums. A veth
// otherwise hands out frames whose TCP/UDP checksum is left to "hardware", which the
// userspace datapath (reading them through a raw socket) forwards unfinished.
func (l *Lab) wireLike(ctx context.Context, ns, underlayEnd string) error {
	for _, args := range [][]string{
		{"ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off"},
		{"ip", "netns", "exec", l.underlayNS(), "ethtool", "-K", underlayEnd, "tx", "off"},
	} {
		if err := run(ctx, args[0], args[1:]...); err != nil {
			return fmt.Errorf("checksum offload off: %w", err)
		}
	}
	return nil
}

// save writes the state file atomically.
func (l *Lab) save() error {
	l.mu.Lock()
	l.st.Hosts = l.st.Hosts[:0]
	for _, h := range l.Hosts {
		l.st.Hosts = append(l.st.Hosts, hostRecord{Name: h.Name, NetNS: h.NetNS, Dir: h.Dir, UnderlayIP: h.UnderlayIP.String(), Index: h.index})
	}
	var procs []procRecord
	for _, p := range l.procs {
		procs = append(procs, p.rec)
	}
	sort.Slice(procs, func(i, j int) bool { return procs[i].PID < procs[j].PID })
	l.st.Procs = procs
	b, err := json.MarshalIndent(l.st, "", "  ")
	l.mu.Unlock()
	if err != nil {
		return err
	}
	tmp := filepath.Join(l.Dir, "state.json.tmp")
	if err := os.WriteFile(tmp, b, 0o644); err != nil {
		return fmt.Errorf("write lab state: %w", err)
	}
	return os.Rename(tmp, filepath.Join(l.Dir, "state.json"))
}

// Open loads a lab from its directory's state file, e.g. to take it down after a crash.
func Open(dir string) (*Lab, error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		return nil, fmt.Errorf("no lab in %s: %w", dir, err)
	}
	l := &Lab{Dir: dir, log: slog.New(slog.DiscardHandler), procs: map[int]*Proc{}}
	if err := json.Unmarshal(b, &l.st); err != nil {
		return nil, fmt.Errorf("lab state %s: %w", dir, err)
	}
	l.Name = l.st.Name
	l.External = l.st.External
	l.ExternalIP, _ = netip.ParseAddr(l.st.ExtIP)
	for _, r := range l.st.Hosts {
		ip, _ := netip.ParseAddr(r.UnderlayIP)
		pfx := netip.MustParsePrefix(l.st.Underlay)
		l.Hosts = append(l.Hosts, &Host{Name: r.Name, NetNS: r.NetNS, Dir: r.Dir, UnderlayIP: ip, UnderlayPrefix: netip.PrefixFrom(ip, pfx.Bits()), Datapath: l.st.Datapath, index: r.Index, lab: l})
	}
	for _, r := range l.st.Procs {
		l.procs[r.PID] = &Proc{rec: r}
	}
	return l, nil
}

// Host returns the host called name, or nil.
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

// Down stops every process the lab started (by PID), deletes its namespaces and its
// directory. It is idempotent and works from a state file alone.
func (l *Lab) Down(ctx context.Context) error {
	l.mu.Lock()
	var procs []*Proc
	for _, p := range l.procs {
		procs = append(procs, p)
	}
	hosts := append([]*Host(nil), l.Hosts...)
	netns := append([]string(nil), l.st.Netns...)
	l.mu.Unlock()
	// Children first (fabricd, iperf3…), then each host's OVS daemons.
	sort.Slice(procs, func(i, j int) bool { return !isOVS(procs[i].rec.Name) && isOVS(procs[j].rec.Name) })
	var wg sync.WaitGroup
	for _, p := range procs {
		if isOVS(p.rec.Name) {
			continue
		}
		wg.Add(1)
		go func(p *Proc) { defer wg.Done(); _ = p.Stop(5 * time.Second) }(p)
	}
	wg.Wait()
	for _, h := range hosts {
		wg.Add(1)
		go func(h *Host) { defer wg.Done(); h.stopOVS() }(h)
	}
	wg.Wait()
	for _, p := range procs {
		if p.Alive() {
			_ = p.Kill()
		}
	}
	var errs []error
	for i := len(netns) - 1; i >= 0; i-- {
		ns := netns[i]
		if _, err := os.Stat("/var/run/netns/" + ns); err != nil {
			continue
		}
		if err := run(ctx, "ip", "netns", "del", ns); err != nil {
			errs = append(errs, err)
		}
	}
	if left := l.Leftovers(); len(left) > 0 {
		errs = append(errs, fmt.Errorf("left behind: %s", strings.Join(left, ", ")))
	}
	if len(errs) == 0 {
		if err := os.RemoveAll(l.Dir); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

func isOVS(name string) bool { return name == "ovsdb-server" || name == "ovs-vswitchd" }

// Leftovers lists what of the lab still exists: namespaces with its prefix and processes it
// started that still run. Empty after a successful Down.
func (l *Lab) Leftovers() []string {
	var out []string
	entries, _ := os.ReadDir("/var/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), l.prefix()) {
			out = append(out, "netns "+e.Name())
		}
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, p := range l.procs {
		if p.Alive() {
			out = append(out, fmt.Sprintf("process %s (pid %d)", p.rec.Name, p.rec.PID))
		}
	}
	return out
}

// CutUnderlay takes h's underlay link down (as if its cable were pulled).
func (l *Lab) CutUnderlay(ctx context.Context, h *Host) error {
	return run(ctx, "ip", "-n", l.underlayNS(), "link", "set", "u-"+h.Name, "down")
}

// RestoreUnderlay brings h's underlay link back.
func (l *Lab) RestoreUnderlay(ctx context.Context, h *Host) error {
	return run(ctx, "ip", "-n", l.underlayNS(), "link", "set", "u-"+h.Name, "up")
}

// RunIn runs a command in the named network namespace and returns its combined output.
func RunIn(ctx context.Context, netns, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", netns, name}, args...)...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), netns, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// StartIn starts a background process in the named network namespace; it is recorded and
// stopped by Down. Output goes to <dir>/<netns>-<name>.log.
func (l *Lab) StartIn(ctx context.Context, netns, name string, argv []string, env []string) (*Proc, error) {
	return l.start(netns, name, argv, env, filepath.Join(l.Dir, strings.TrimPrefix(netns, l.prefix())+"-"+name+".log"))
}

func (l *Lab) start(netns, name string, argv, env []string, logPath string) (*Proc, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("start %s: empty command", name)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	defer logf.Close()
	cmd := exec.Command("ip", append([]string{"netns", "exec", netns}, argv...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, netns, err)
	}
	st, _ := procStartTime(cmd.Process.Pid)
	p := &Proc{rec: procRecord{Name: name, NetNS: netns, PID: cmd.Process.Pid, StartTime: st, Log: logPath, Argv: argv}, cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	l.mu.Lock()
	l.procs[p.rec.PID] = p
	l.mu.Unlock()
	if err := l.save(); err != nil {
		_ = p.Kill()
		return nil, err
	}
	return p, nil
}

// run runs a command and returns an error with its output.
func run(ctx context.Context, name string, args ...string) error {
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// lookPath finds a binary also in the sbin directories a non-login PATH may lack.
func lookPath(bin string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin"} {
		if p, err := exec.LookPath(filepath.Join(dir, bin)); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (install openvswitch-switch and iproute2: `make deps`)", bin)
}

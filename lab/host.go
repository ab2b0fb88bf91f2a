package lab

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// vswitchSchema is the Open_vSwitch schema every host database is created from.
const vswitchSchema = "/usr/share/openvswitch/vswitch.ovsschema"

// Host is one lab host: a network namespace with its own ovsdb-server and ovs-vswitchd, whose
// files (database, sockets, pidfiles, logs) are all in Dir, and an underlay NIC eth0.
type Host struct {
	// Name is h1, h2, … (numbered from 1 in the order hosts were added; never reused).
	Name string
	// NetNS is the `ip netns` name: ovsfab-<lab>-<Name>.
	NetNS string
	// Dir is <lab dir>/<Name>: conf.db, db.sock, *.pid, *.ctl, *.log, and the logs of the
	// processes started with Start.
	Dir string
	// UnderlayIP is the host's underlay address, UnderlayPrefix the same with the underlay's
	// prefix length. It sits on br-phy (netdev datapath) or eth0 (system datapath).
	UnderlayIP     netip.Addr
	UnderlayPrefix netip.Prefix
	// Datapath is the OVS datapath type of the lab: "netdev" or "system".
	Datapath string

	index int
	lab   *Lab
}

// AddHost adds a host to the lab (also to a running one): its namespace, its underlay link,
// its database and OVS daemons and, for the userspace datapath, br-phy holding its underlay
// address. When it fails it removes what it made for the host.
func (l *Lab) AddHost(ctx context.Context) (*Host, error) {
	l.mu.Lock()
	l.st.NextHost++
	i := l.st.NextHost
	l.mu.Unlock()
	h, err := l.addHost(ctx, i)
	if err != nil && h != nil {
		dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
		defer cancel()
		if rerr := l.removeHost(dctx, h); rerr != nil {
			err = errors.Join(err, fmt.Errorf("removing the half-made host: %w", rerr))
		}
	}
	return h, err
}

// addHost builds host number i. On error the returned host (if not nil) is recorded and
// partly made.
func (l *Lab) addHost(ctx context.Context, i int) (*Host, error) {
	start := time.Now()
	name := "h" + strconv.Itoa(i)
	addr, err := hostAddr(l.UnderlayCIDR, i)
	if err != nil {
		return nil, err
	}
	h := &Host{Name: name, NetNS: l.prefix() + name, Dir: filepath.Join(l.Dir, name),
		UnderlayIP: addr.Addr(), UnderlayPrefix: addr, Datapath: l.Datapath, index: i, lab: l}
	if err := os.MkdirAll(h.Dir, 0o755); err != nil {
		return nil, fmt.Errorf("host %s: %w", name, err)
	}
	l.mu.Lock()
	l.Hosts = append(l.Hosts, h)
	sort.Slice(l.Hosts, func(a, b int) bool { return l.Hosts[a].index < l.Hosts[b].index })
	l.mu.Unlock()
	if err := l.addNetNS(ctx, h.NetNS); err != nil {
		return h, fmt.Errorf("host %s: %w", name, err)
	}
	if err := l.plugUnderlay(ctx, h.NetNS, "u-"+name); err != nil {
		return h, fmt.Errorf("host %s: %w", name, err)
	}
	if err := l.run(ctx, "ovsdb-tool", "create", h.confDB(), vswitchSchema); err != nil {
		return h, fmt.Errorf("host %s: create database: %w", name, err)
	}
	if err := h.StartOVS(ctx); err != nil {
		return h, err
	}
	l.log.Info("host up", "host", name, "netns", h.NetNS, "underlay", addr, "took", time.Since(start).Round(time.Millisecond))
	return h, nil
}

// removeHost undoes a half-made host: its processes, its namespace (its veth goes with it).
func (l *Lab) removeHost(ctx context.Context, h *Host) error {
	var errs []error
	for _, p := range h.Procs() {
		if !p.rec.Daemon {
			errs = append(errs, p.Stop(5*time.Second))
		}
	}
	errs = append(errs, h.StopDetached(5*time.Second))
	errs = append(errs, h.StopOVS(ctx))
	if err := l.deleteNetNS(ctx, h.NetNS); err != nil {
		errs = append(errs, err)
	}
	l.mu.Lock()
	for k, x := range l.Hosts {
		if x == h {
			l.Hosts = append(l.Hosts[:k], l.Hosts[k+1:]...)
			break
		}
	}
	l.mu.Unlock()
	errs = append(errs, l.save())
	return errors.Join(errs...)
}

func (h *Host) confDB() string { return filepath.Join(h.Dir, "conf.db") }

// DBSocket is the path of the host's OVSDB unix socket.
func (h *Host) DBSocket() string { return filepath.Join(h.Dir, "db.sock") }

// Endpoint is the host's OVSDB endpoint ("unix:<dir>/db.sock") for libovsdb, ovs-vsctl --db
// and fabricd's --ovsdb.
func (h *Host) Endpoint() string { return "unix:" + h.DBSocket() }

// NetNSPath is the path of the host's network namespace (/var/run/netns/<NetNS>).
func (h *Host) NetNSPath() string { return filepath.Join(netnsDir, h.NetNS) }

// Env is the environment under which ovs-vsctl, ovs-ofctl and ovs-appctl find this host's
// database and daemons: OVS_RUNDIR, OVS_DBDIR, OVS_LOGDIR and OVS_SYSCONFDIR are the host's
// directory (ovs-vsctl's default database is then $OVS_RUNDIR/db.sock, ovs-ofctl finds
// $OVS_RUNDIR/<bridge>.mgmt, `ovs-appctl -t ovs-vswitchd` finds the pidfile and control
// socket there), and DB_SOCK is the database socket.
func (h *Host) Env() []string {
	return []string{"OVS_RUNDIR=" + h.Dir, "OVS_DBDIR=" + h.Dir, "OVS_LOGDIR=" + h.Dir,
		"OVS_SYSCONFDIR=" + h.Dir, "DB_SOCK=" + h.DBSocket()}
}

// Run runs a command in the host's namespace with the host's OVS environment (Env) and returns
// its combined output; the error includes the output.
func (h *Host) Run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := runIn(ctx, h.Env(), h.NetNS, name, args...)
	if err != nil {
		return out, fmt.Errorf("%s: %w", h.Name, err)
	}
	return out, nil
}

// Vsctl runs ovs-vsctl against the host's database.
func (h *Host) Vsctl(ctx context.Context, args ...string) (string, error) {
	return h.Run(ctx, "ovs-vsctl", append([]string{"--db=" + h.Endpoint()}, args...)...)
}

// Ofctl runs ovs-ofctl against the host's ovs-vswitchd (bridge management sockets are in the
// host's directory), e.g. Ofctl(ctx, "dump-flows", "br-int").
func (h *Host) Ofctl(ctx context.Context, args ...string) (string, error) {
	return h.Run(ctx, "ovs-ofctl", args...)
}

// Appctl runs `ovs-appctl -t TARGET ARGS…` against one of the host's daemons; target is
// "ovs-vswitchd" or "ovsdb-server", e.g. Appctl(ctx, "ovs-vswitchd", "fdb/show", "br-int").
func (h *Host) Appctl(ctx context.Context, target string, args ...string) (string, error) {
	return h.Run(ctx, "ovs-appctl", append([]string{"-t", target}, args...)...)
}

// Start starts a long-running process in the host's namespace with the host's OVS environment
// plus env, e.g. Start(ctx, "fabricd", []string{"/path/fabricd", "--ovsdb", h.Endpoint()}, nil).
// Its output goes to <host dir>/<name>.log; it is recorded in the state file and Down stops it.
func (h *Host) Start(ctx context.Context, name string, argv []string, env []string) (*Proc, error) {
	if !nsNameRE.MatchString(name) {
		return nil, fmt.Errorf("start %q on %s: bad process name (it names the log file)", name, h.Name)
	}
	return h.lab.start(ctx, h.NetNS, name, argv, append(h.Env(), env...), filepath.Join(h.Dir, name+".log"))
}

// Procs are the processes the lab started in this host's namespace, OVS daemons included, in
// start order (dead ones too, until Down).
func (h *Host) Procs() []*Proc {
	h.lab.mu.Lock()
	defer h.lab.mu.Unlock()
	var out []*Proc
	for _, p := range h.lab.procs {
		if p.rec.NetNS == h.NetNS {
			out = append(out, p)
		}
	}
	return out
}

// proc is the most recently started process called name on the host, or nil.
func (h *Host) proc(name string) *Proc {
	procs := h.Procs()
	for i := len(procs) - 1; i >= 0; i-- {
		if procs[i].rec.Name == name {
			return procs[i]
		}
	}
	return nil
}

// OVSDBServer is the host's ovsdb-server as last started (nil before the first start).
func (h *Host) OVSDBServer() *Proc { return h.proc("ovsdb-server") }

// VSwitchd is the host's ovs-vswitchd as last started (nil before the first start). Tests
// kill it with VSwitchd().Kill() and bring it back with StartOVS.
func (h *Host) VSwitchd() *Proc { return h.proc("ovs-vswitchd") }

// StartOVS starts whichever of the host's ovsdb-server and ovs-vswitchd is not running (both
// after StopOVS; the database and its content persist) and waits until ovs-vswitchd has
// applied the database. It then puts the underlay address where tunnels need it: on br-phy
// for the userspace datapath (br-phy's internal port is a tap of ovs-vswitchd, gone with it),
// on eth0 for the kernel one.
func (h *Host) StartOVS(ctx context.Context) error {
	if p := h.OVSDBServer(); p == nil || !p.Alive() {
		if _, err := h.startDaemon(ctx, "ovsdb-server", []string{"ovsdb-server", h.confDB(),
			"--remote=punix:" + h.DBSocket(), "--remote=db:Open_vSwitch,Open_vSwitch,manager_options"}); err != nil {
			return err
		}
	}
	if _, err := h.Vsctl(ctx, "--no-wait", "init"); err != nil {
		return fmt.Errorf("host %s: initialise the database: %w", h.Name, err)
	}
	if p := h.VSwitchd(); p == nil || !p.Alive() {
		if _, err := h.startDaemon(ctx, "ovs-vswitchd", []string{"ovs-vswitchd", h.Endpoint()}); err != nil {
			return err
		}
	}
	return h.setupUnderlayAddr(ctx)
}

// startDaemon starts an OVS daemon with --detach: the command returns once the daemon is
// ready (ovsdb-server listens; ovs-vswitchd has read its configuration), then the daemon's PID
// is read from its pidfile and recorded. Down also finds the daemon through its pidfile should
// the harness die before recording it.
func (h *Host) startDaemon(ctx context.Context, name string, argv []string) (*Proc, error) {
	pidfile := filepath.Join(h.Dir, name+".pid")
	logfile := filepath.Join(h.Dir, name+".log")
	outfile := filepath.Join(h.Dir, name+".out")
	argv = append(argv, "--pidfile="+pidfile, "--log-file="+logfile, "--detach", "--no-chdir", "-vconsole:off")
	out, err := os.Create(outfile)
	if err != nil {
		return nil, fmt.Errorf("start %s on %s: %w", name, h.Name, err)
	}
	cmd := exec.CommandContext(ctx, ipBin(), append([]string{"netns", "exec", h.NetNS}, argv...)...)
	cmd.Env = append(os.Environ(), h.Env()...)
	cmd.Dir = h.Dir
	cmd.Stdout, cmd.Stderr = out, out
	// The daemon's detach handshake is bounded by ctx; a stuck start is reported, not waited on.
	err = cmd.Run()
	_ = out.Close()
	if err != nil {
		return nil, fmt.Errorf("start %s on %s: %w%s%s", name, h.Name, err, tail(outfile, 5), tail(logfile, 10))
	}
	pid, err := readPidfile(pidfile)
	if err != nil {
		return nil, fmt.Errorf("start %s on %s: %w%s", name, h.Name, err, tail(logfile, 10))
	}
	st, err := procStartTime(pid)
	if err != nil {
		return nil, fmt.Errorf("start %s on %s: pid %d from %s: %w%s", name, h.Name, pid, pidfile, err, tail(logfile, 10))
	}
	p := &Proc{lab: h.lab, rec: procRecord{Name: name, NetNS: h.NetNS, PID: pid, StartTime: st, Log: logfile, Argv: argv, Daemon: true}}
	if err := h.lab.addProc(p); err != nil {
		return p, fmt.Errorf("start %s on %s: %w", name, h.Name, err)
	}
	h.lab.log.Debug("started", "proc", name, "host", h.Name, "pid", pid)
	return p, nil
}

func readPidfile(path string) (int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, fmt.Errorf("read pidfile: %w", err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 {
		return 0, fmt.Errorf("pidfile %s: bad content %q", path, b)
	}
	return pid, nil
}

// setupUnderlayAddr puts the underlay address on br-phy (netdev; created holding eth0 if
// needed) or eth0 (system). Adding br-phy without --no-wait also proves ovs-vswitchd is up:
// ovs-vsctl waits until it has applied the change.
func (h *Host) setupUnderlayAddr(ctx context.Context) error {
	dev := "eth0"
	if h.Datapath == "netdev" {
		dev = "br-phy"
		// eth0 belongs to OVS (read through a raw socket), but the kernel still sees every
		// frame on it: with no address there it would still answer ARP for br-phy's address
		// (arp_ignore=0) and take in packets sent to eth0's MAC, so peers would get every
		// reply twice. arp_ignore=1 and IPv6 off keep the host's IP stack off eth0.
		if _, err := h.Run(ctx, "sysctl", "-qw", "net.ipv4.conf.eth0.arp_ignore=1", "net.ipv6.conf.eth0.disable_ipv6=1"); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
		// br-phy's internal port is a tap of ovs-vswitchd, made anew at every start; a fixed
		// MAC keeps the peers' ARP entries valid across restarts.
		if _, err := h.Vsctl(ctx, "--timeout=30", "--may-exist", "add-br", "br-phy",
			"--", "set", "bridge", "br-phy", "datapath_type=netdev", "other_config:hwaddr=\""+bridgeMAC(h.UnderlayIP)+"\"",
			"--", "--may-exist", "add-port", "br-phy", "eth0"); err != nil {
			return fmt.Errorf("host %s: br-phy: %w%s", h.Name, err, tail(filepath.Join(h.Dir, "ovs-vswitchd.log"), 10))
		}
		if err := h.waitLink(ctx, dev); err != nil {
			return err
		}
	} else if _, err := h.Appctl(ctx, "ovs-vswitchd", "version"); err != nil {
		return fmt.Errorf("host %s: ovs-vswitchd does not answer: %w", h.Name, err)
	}
	return h.setUnderlayAddr(ctx, dev)
}

// setUnderlayAddr puts the host's underlay address and the lab's MTU on dev (eth0, or br-phy
// with the userspace datapath), as after every start of ovs-vswitchd.
func (h *Host) setUnderlayAddr(ctx context.Context, dev string) error {
	add := []string{"-n", h.NetNS, "addr", "replace", h.UnderlayPrefix.String(), "dev", dev}
	if h.UnderlayIP.Is6() {
		add = append(add, "nodad")
	}
	for _, args := range [][]string{add, {"-n", h.NetNS, "link", "set", dev, "mtu", strconv.Itoa(h.lab.MTU), "up"}} {
		if err := h.lab.run(ctx, "ip", args...); err != nil {
			return fmt.Errorf("host %s: underlay address: %w", h.Name, err)
		}
	}
	return nil
}

// waitLink waits until dev exists in the host's namespace.
func (h *Host) waitLink(ctx context.Context, dev string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		err := h.lab.run(ctx, "ip", "-n", h.NetNS, "link", "show", "dev", dev)
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("host %s: %s did not appear: %w", h.Name, dev, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("host %s: waiting for %s: %w", h.Name, dev, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// DetachedProcs are the processes that programs the lab started left running on purpose and
// recorded in a pidfile in the host's directory — fabricd's userspace WireGuard device
// (ovsfabric-wg), which outlives fabricd: every <Dir>/*.pid other than the OVS daemons' whose
// PID runs (not a zombie) inside the host's namespace. The namespace check is what makes a
// PID ours: nothing else runs there.
func (h *Host) DetachedProcs() []*Proc {
	files, _ := filepath.Glob(filepath.Join(h.Dir, "*.pid"))
	var out []*Proc
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), ".pid")
		if name == "ovs-vswitchd" || name == "ovsdb-server" {
			continue // StopOVS's
		}
		pid, err := readPidfile(f)
		if err != nil || !inNetNS(pid, h.NetNSPath()) {
			continue
		}
		st, err := procStartTime(pid)
		if err != nil {
			continue
		}
		b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
		argv := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
		out = append(out, &Proc{rec: procRecord{Name: name, NetNS: h.NetNS, PID: pid, StartTime: st, Argv: argv}})
	}
	return out
}

// StopDetached stops DetachedProcs (SIGTERM, SIGKILL after timeout), each by its PID.
func (h *Host) StopDetached(timeout time.Duration) error {
	if err := errors.Join(stopAll(h.DetachedProcs(), timeout)...); err != nil {
		return fmt.Errorf("host %s: %w", h.Name, err)
	}
	return nil
}

// StopOVS stops the host's ovs-vswitchd, then its ovsdb-server (SIGTERM, SIGKILL after 10 s).
// The datapath and br-phy's address go with ovs-vswitchd; the database stays.
func (h *Host) StopOVS(ctx context.Context) error {
	var errs []error
	for _, name := range []string{"ovs-vswitchd", "ovsdb-server"} {
		var procs []*Proc
		for _, p := range h.Procs() {
			if p.rec.Name == name && p.Alive() {
				procs = append(procs, p)
			}
		}
		// A daemon that detached but was never recorded (the harness died in between) is
		// found through its pidfile: the same program, with this host's directory on its
		// command line.
		if pid, err := readPidfile(filepath.Join(h.Dir, name+".pid")); err == nil && cmdlineMatches(pid, name, h.Dir) {
			known := false
			for _, p := range procs {
				known = known || p.rec.PID == pid
			}
			if st, err := procStartTime(pid); err == nil && !known {
				procs = append(procs, &Proc{rec: procRecord{Name: name, NetNS: h.NetNS, PID: pid, StartTime: st, Argv: []string{name}, Daemon: true}})
			}
		}
		errs = append(errs, stopAll(procs, 10*time.Second)...)
		if err := ctx.Err(); err != nil {
			errs = append(errs, err)
			break
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("host %s: stop OVS: %w", h.Name, err)
	}
	return nil
}

// RestartOVS stops and starts the host's OVS daemons; the database and its content persist.
func (h *Host) RestartOVS(ctx context.Context) error {
	if err := h.StopOVS(ctx); err != nil {
		return err
	}
	return h.StartOVS(ctx)
}

// plugUnderlay connects namespace ns to the underlay bridge: a veth with end eth0 in ns and
// end underlayEnd on br0 in the underlay namespace, both with the lab's MTU and with TX
// checksum offload off. A veth otherwise hands out frames whose TCP/UDP checksum is left to
// "hardware", which the userspace datapath (reading through a raw socket) forwards
// unfinished; with offload off the frames carry complete checksums as on a cable between
// real NICs.
func (l *Lab) plugUnderlay(ctx context.Context, ns, underlayEnd string) error {
	mtu := strconv.Itoa(l.MTU)
	u := l.Underlay
	for _, args := range [][]string{
		{"ip", "-n", u, "link", "add", underlayEnd, "mtu", mtu, "type", "veth", "peer", "name", "eth0", "mtu", mtu, "netns", ns},
		{"ip", "-n", u, "link", "set", underlayEnd, "master", "br0", "up"},
		{"ip", "-n", ns, "link", "set", "eth0", "up"},
		{"ip", "netns", "exec", ns, "ethtool", "-K", "eth0", "tx", "off"},
		{"ip", "netns", "exec", u, "ethtool", "-K", underlayEnd, "tx", "off"},
	} {
		if err := l.run(ctx, args[0], args[1:]...); err != nil {
			return fmt.Errorf("underlay link: %w", err)
		}
	}
	return nil
}

// RestartVSwitchd stops the host's ovs-vswitchd (SIGTERM; SIGKILL with kill) and starts it
// again, as an operator's restart would: unlike StartOVS it writes nothing to the database
// (no ovs-vsctl), so a client watching OVSDB sees only what ovs-vswitchd itself changes. The
// underlay address goes back on br-phy (the userspace datapath makes that tap anew).
func (h *Host) RestartVSwitchd(ctx context.Context, kill bool) error {
	if p := h.VSwitchd(); p != nil && p.Alive() {
		stop := func() error { return p.Stop(10 * time.Second) }
		if kill {
			stop = p.Kill
		}
		if err := stop(); err != nil {
			return fmt.Errorf("host %s: stop ovs-vswitchd: %w", h.Name, err)
		}
		// Alive turns false once the process's command line is gone, which happens while the
		// kernel still tears a killed process down and holds its pidfile lock (the new daemon
		// then aborts: "already running"): wait until the PID is gone or a zombie.
		deadline := time.Now().Add(10 * time.Second)
		for sameProcess(p.rec.PID, p.rec.StartTime) {
			if time.Now().After(deadline) {
				return fmt.Errorf("host %s: ovs-vswitchd (pid %d) still exiting after 10s", h.Name, p.rec.PID)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	if _, err := h.startDaemon(ctx, "ovs-vswitchd", []string{"ovs-vswitchd", h.Endpoint()}); err != nil {
		return err
	}
	dev := "eth0"
	if h.Datapath == "netdev" {
		dev = "br-phy"
		if err := h.waitLink(ctx, dev); err != nil {
			return err
		}
	}
	return h.setUnderlayAddr(ctx, dev)
}

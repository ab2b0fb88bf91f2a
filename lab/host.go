package lab

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// Host is one lab host: a network namespace with its own ovsdb-server and ovs-vswitchd.
type Host struct {
	Name           string
	NetNS          string
	Dir            string
	UnderlayIP     netip.Addr
	UnderlayPrefix netip.Prefix
	Datapath       string

	index int
	lab   *Lab
}

// AddHost adds a host to the lab: its namespace, underlay link, OVS daemons and, for the
// userspace datapath, br-phy holding its underlay address.
func (l *Lab) AddHost(ctx context.Context) (*Host, error) {
	l.mu.Lock()
	l.st.NextHost++
	i := l.st.NextHost
	l.mu.Unlock()
	name := "h" + strconv.Itoa(i)
	addr, err := l.underlayAddr(i)
	if err != nil {
		return nil, err
	}
	h := &Host{Name: name, NetNS: l.prefix() + name, Dir: filepath.Join(l.Dir, name), UnderlayIP: addr.Addr(), UnderlayPrefix: addr, Datapath: l.st.Datapath, index: i, lab: l}
	if err := os.MkdirAll(h.Dir, 0o755); err != nil {
		return nil, err
	}
	if err := l.addNetNS(h.NetNS); err != nil {
		return nil, fmt.Errorf("host %s: %w", name, err)
	}
	l.mu.Lock()
	l.Hosts = append(l.Hosts, h)
	l.mu.Unlock()
	if err := l.save(); err != nil {
		return nil, err
	}
	u := l.underlayNS()
	mtu := strconv.Itoa(l.st.MTU)
	for _, args := range [][]string{
		{"ip", "-n", u, "link", "add", "u-" + name, "mtu", mtu, "type", "veth", "peer", "name", "eth0", "netns", h.NetNS},
		{"ip", "-n", u, "link", "set", "u-" + name, "master", "br0", "up"},
		{"ip", "-n", h.NetNS, "link", "set", "eth0", "mtu", mtu, "up"},
	} {
		if err := run(ctx, args[0], args[1:]...); err != nil {
			return nil, fmt.Errorf("host %s underlay: %w", name, err)
		}
	}
	if err := l.wireLike(ctx, h.NetNS, "u-"+name); err != nil {
		return nil, err
	}
	if err := h.createDB(ctx); err != nil {
		return nil, err
	}
	if err := h.StartOVS(ctx); err != nil {
		return nil, err
	}
	return h, nil
}

func (h *Host) waitLink(ctx context.Context, dev string) error {
	deadline := time.Now().Add(15 * time.Second)
	for {
		if err := run(ctx, "ip", "-n", h.NetNS, "link", "show", dev); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("host %s: %s did not appear", h.Name, dev)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// DBSocket is the path of the host's OVSDB unix socket.
func (h *Host) DBSocket() string { return filepath.Join(h.Dir, "db.sock") }

// Endpoint is the host's OVSDB endpoint for libovsdb and fabricd's --ovsdb.
func (h *Host) Endpoint() string { return "unix:" + h.DBSocket() }

// NetNSPath is the path of the host's network namespace.
func (h *Host) NetNSPath() string { return "/var/run/netns/" + h.NetNS }

// Env is the environment under which ovs-appctl, ovs-ofctl and ovs-vsctl find this host's
// daemons and sockets.
func (h *Host) Env() []string {
	return []string{"OVS_RUNDIR=" + h.Dir, "OVS_DBDIR=" + h.Dir, "OVS_LOGDIR=" + h.Dir, "OVS_SYSCONFDIR=" + h.Dir, "DB_SOCK=" + h.DBSocket()}
}

func (h *Host) createDB(ctx context.Context) error {
	db := filepath.Join(h.Dir, "conf.db")
	if _, err := os.Stat(db); err == nil {
		return nil
	}
	if err := run(ctx, "ovsdb-tool", "create", db, "/usr/share/openvswitch/vswitch.ovsschema"); err != nil {
		return fmt.Errorf("host %s: %w", h.Name, err)
	}
	return nil
}

// StartOVS starts the host's ovsdb-server and ovs-vswitchd (again, after StopOVS; the
// database persists).
func (h *Host) StartOVS(ctx context.Context) error {
	l := h.lab
	d := h.Dir
	if _, err := l.start(h.NetNS, "ovsdb-server", []string{"ovsdb-server", filepath.Join(d, "conf.db"),
		"--remote=punix:" + h.DBSocket(), "--pidfile=" + filepath.Join(d, "ovsdb-server.pid"),
		"--unixctl=" + filepath.Join(d, "ovsdb-server.ctl"), "--log-file=" + filepath.Join(d, "ovsdb-server.log"),
		"-vconsole:off"}, h.Env(), filepath.Join(d, "ovsdb-server.out")); err != nil {
		return err
	}
	if err := h.waitFile(ctx, h.DBSocket()); err != nil {
		return err
	}
	if _, err := h.Vsctl(ctx, "--no-wait", "init"); err != nil {
		return fmt.Errorf("host %s: ovs-vsctl init: %w", h.Name, err)
	}
	if _, err := l.start(h.NetNS, "ovs-vswitchd", []string{"ovs-vswitchd", "unix:" + h.DBSocket(),
		"--pidfile=" + filepath.Join(d, "ovs-vswitchd.pid"), "--unixctl=" + filepath.Join(d, "ovs-vswitchd.ctl"),
		"--log-file=" + filepath.Join(d, "ovs-vswitchd.log"), "-vconsole:off"}, h.Env(), filepath.Join(d, "ovs-vswitchd.out")); err != nil {
		return err
	}
	if err := h.waitFile(ctx, filepath.Join(d, "ovs-vswitchd.ctl")); err != nil {
		return err
	}
	// Ready when vswitchd has reported its first configuration round.
	if _, err := h.Vsctl(ctx, "--timeout=20", "wait-until", "Open_vSwitch", ".", "cur_cfg>=0"); err != nil {
		return fmt.Errorf("host %s: ovs-vswitchd not ready: %w", h.Name, err)
	}
	return h.setupUnderlayAddr(ctx)
}

// setupUnderlayAddr puts the underlay address where tunnels need it: on br-phy (holding eth0)
// for the userspace datapath, on eth0 for the kernel one. br-phy's internal port is a tap
// device of ovs-vswitchd, recreated on every restart, so this runs after every start.
func (h *Host) setupUnderlayAddr(ctx context.Context) error {
	mtu := strconv.Itoa(h.lab.st.MTU)
	dev := "eth0"
	if h.Datapath == "netdev" {
		dev = "br-phy"
		if _, err := h.Vsctl(ctx, "--may-exist", "add-br", "br-phy", "--", "set", "bridge", "br-phy", "datapath_type=netdev",
			"--", "--may-exist", "add-port", "br-phy", "eth0"); err != nil {
			return fmt.Errorf("host %s br-phy: %w", h.Name, err)
		}
		if err := h.waitLink(ctx, "br-phy"); err != nil {
			return err
		}
	}
	for _, args := range [][]string{
		{"ip", "-n", h.NetNS, "addr", "replace", h.UnderlayPrefix.String(), "dev", dev},
		{"ip", "-n", h.NetNS, "link", "set", dev, "mtu", mtu, "up"},
	} {
		if err := run(ctx, args[0], args[1:]...); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
	}
	return nil
}

func (h *Host) waitFile(ctx context.Context, path string) error {
	deadline := time.Now().Add(20 * time.Second)
	for {
		if _, err := os.Stat(path); err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("host %s: %s did not appear (see the logs in %s)", h.Name, path, h.Dir)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// StopOVS stops the host's ovs-vswitchd and ovsdb-server (the datapath goes with them).
func (h *Host) StopOVS(ctx context.Context) error {
	h.stopOVS()
	return nil
}

func (h *Host) stopOVS() {
	for _, name := range []string{"ovs-vswitchd", "ovsdb-server"} {
		for _, p := range h.Procs() {
			if p.rec.Name == name {
				_ = p.Stop(10 * time.Second)
			}
		}
	}
	_ = os.Remove(h.DBSocket())
	_ = os.Remove(filepath.Join(h.Dir, "ovs-vswitchd.ctl"))
	_ = os.Remove(filepath.Join(h.Dir, "ovsdb-server.ctl"))
}

// RestartOVS stops and starts the host's OVS daemons; the database and its content persist.
func (h *Host) RestartOVS(ctx context.Context) error {
	h.stopOVS()
	return h.StartOVS(ctx)
}

// Procs are the processes the lab started in this host's namespace.
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

// Start starts a background process in the host's namespace, with the host's OVS
// environment. Output goes to <host dir>/<name>.log.
func (h *Host) Start(ctx context.Context, name string, argv []string, env []string) (*Proc, error) {
	return h.lab.start(h.NetNS, name, argv, append(h.Env(), env...), filepath.Join(h.Dir, name+".log"))
}

// Run runs a command in the host's namespace with the host's OVS environment and returns its
// combined output.
func (h *Host) Run(ctx context.Context, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NetNS, name}, args...)...)
	cmd.Env = append(os.Environ(), h.Env()...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %s %s: %w: %s", h.Name, name, strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Vsctl runs ovs-vsctl against the host's database.
func (h *Host) Vsctl(ctx context.Context, args ...string) (string, error) {
	return h.Run(ctx, "ovs-vsctl", append([]string{"--db=unix:" + h.DBSocket()}, args...)...)
}

// Ofctl runs ovs-ofctl against the host's ovs-vswitchd (its management sockets are in the
// host's run directory).
func (h *Host) Ofctl(ctx context.Context, args ...string) (string, error) {
	return h.Run(ctx, "ovs-ofctl", args...)
}

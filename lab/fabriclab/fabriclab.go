// Package fabriclab runs ovsfabric on a lab: fabricd on lab hosts, containers (network
// namespaces) attached through fabricd's API, and connectivity checks between them. The lab
// tests, `make demo` and the benchmarks all build on it.
package fabriclab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/lab"
)

// Options say how fabricd runs on every host.
type Options struct {
	// Bin is the directory holding the fabricd and fabricctl binaries.
	Bin string
	// Tunnel is gre or vxlan.
	Tunnel string
	// Resync and DeadPeerGrace are passed to fabricd when set.
	Resync        time.Duration
	DeadPeerGrace time.Duration
	// Extra flags for every fabricd.
	Extra []string
	// Env is added to every fabricd's environment (after the host's OVS environment, so
	// "OVS_RUNDIR=" empties it).
	Env []string
}

// Fabric is fabricd running on (some of) a lab's hosts.
type Fabric struct {
	Lab  *lab.Lab
	Opts Options

	mu    sync.Mutex
	nodes map[string]*Node
}

// Node is one fabricd process on a lab host.
type Node struct {
	Host   *lab.Host
	Proc   *lab.Proc
	Socket string
	Args   []string
}

// New wraps a running lab.
func New(l *lab.Lab, o Options) *Fabric {
	if o.Tunnel == "" {
		o.Tunnel = "vxlan"
	}
	return &Fabric{Lab: l, Opts: o, nodes: map[string]*Node{}}
}

// BuildBinaries builds fabricd, fabricctl and ovsfabric-wg (fabricd's userspace WireGuard
// device process, found beside fabricd) from the module containing this package into dir.
func BuildBinaries(ctx context.Context, dir string) error {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", dir + string(os.PathSeparator)}, commands(root)...)...)
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build fabricd: %w\n%s", err, out)
	}
	return nil
}

// BuildBinariesAt builds fabricd and fabricctl as they were at commit rev of the git
// repository holding this module (e.g. an earlier release, for rolling-upgrade tests) into
// dir. It needs git and the commit in the clone's history.
func BuildBinariesAt(ctx context.Context, rev, dir string) error {
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	src, err := os.MkdirTemp("", "ovsfabric-src-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(src)
	archive := exec.CommandContext(ctx, "sh", "-c", `git -C "$1" archive "$2" | tar -x -C "$3"`, "sh", root, rev, src)
	if out, err := archive.CombinedOutput(); err != nil {
		return fmt.Errorf("extract commit %s (is it in this clone's history?): %w\n%s", rev, err, out)
	}
	cmd := exec.CommandContext(ctx, "go", append([]string{"build", "-o", dir + string(os.PathSeparator)}, commands(src)...)...)
	cmd.Dir = src
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build fabricd at %s: %w\n%s", rev, err, out)
	}
	return nil
}

// commands are the programs a fabric host runs, as build arguments, for the source tree at
// root (older commits have no ovsfabric-wg: their fabricd embeds wireguard-go).
func commands(root string) []string {
	out := []string{"./cmd/fabricd", "./cmd/fabricctl"}
	if _, err := os.Stat(filepath.Join(root, "cmd", "ovsfabric-wg")); err == nil {
		out = append(out, "./cmd/ovsfabric-wg")
	}
	return out
}

// Node returns the fabricd node on host name, or nil.
func (f *Fabric) Node(name string) *Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.nodes[name]
}

// Nodes returns the running nodes sorted by host name.
func (f *Fabric) Nodes() []*Node {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]*Node, 0, len(f.nodes))
	for _, n := range f.nodes {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Host.Name < out[j].Host.Name })
	return out
}

// Args is the fabricd command line for host h joining through the given addresses.
func (f *Fabric) Args(h *lab.Host, join []string, extra ...string) []string {
	args := []string{
		filepath.Join(f.Opts.Bin, "fabricd"),
		"--name", h.Name,
		"--advertise-addr", h.UnderlayIP.String(),
		"--ovsdb", h.Endpoint(),
		"--api-socket", filepath.Join(h.Dir, "fabricd.sock"),
		"--tunnel", f.Opts.Tunnel,
		"--docker-host", "unix://" + filepath.Join(h.Dir, "docker", "docker.sock"),
		"--podman-host", "",
		// The host's own keyring file: never the machine's default one.
		"--keyring-file", filepath.Join(h.Dir, "gossip.keyring"),
	}
	if len(join) > 0 {
		args = append(args, "--join", strings.Join(join, ","))
	}
	if f.Opts.Resync > 0 {
		args = append(args, "--resync", f.Opts.Resync.String())
	}
	if f.Opts.DeadPeerGrace > 0 {
		args = append(args, "--dead-peer-grace", f.Opts.DeadPeerGrace.String())
	}
	args = append(args, f.Opts.Extra...)
	return append(args, extra...)
}

// JoinAddrs are the underlay addresses of the running nodes other than skip.
func (f *Fabric) JoinAddrs(skip string) []string {
	var out []string
	for _, n := range f.Nodes() {
		if n.Host.Name != skip {
			out = append(out, n.Host.UnderlayIP.String())
		}
	}
	return out
}

// Start starts fabricd on h, joining the nodes already running, and waits for its API.
func (f *Fabric) Start(ctx context.Context, h *lab.Host, extra ...string) (*Node, error) {
	args := f.Args(h, f.JoinAddrs(h.Name), extra...)
	return f.StartArgs(ctx, h, args)
}

// StartArgs starts fabricd on h with exactly args and waits for its API socket to answer.
func (f *Fabric) StartArgs(ctx context.Context, h *lab.Host, args []string) (*Node, error) {
	p, err := h.Start(ctx, "fabricd", args, f.Opts.Env)
	if err != nil {
		return nil, fmt.Errorf("start fabricd on %s: %w", h.Name, err)
	}
	n := &Node{Host: h, Proc: p, Socket: filepath.Join(h.Dir, "fabricd.sock"), Args: args}
	f.mu.Lock()
	f.nodes[h.Name] = n
	f.mu.Unlock()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := n.Client().Status(ctx); err == nil {
			return n, nil
		}
		if !p.Alive() {
			return nil, fmt.Errorf("fabricd on %s exited: %s", h.Name, tail(p.LogFile(), 20))
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("fabricd on %s: API did not answer within 30s: %s", h.Name, tail(p.LogFile(), 20))
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// StartAll starts fabricd on each of hosts in turn (each joining the nodes already running,
// with extra(h) added to its flags when extra is set) and waits up to a minute for the
// fabric to converge.
func (f *Fabric) StartAll(ctx context.Context, hosts []*lab.Host, extra func(h *lab.Host) []string) error {
	for _, h := range hosts {
		var more []string
		if extra != nil {
			more = extra(h)
		}
		if _, err := f.Start(ctx, h, more...); err != nil {
			return err
		}
	}
	_, err := f.WaitConverged(ctx, time.Minute)
	return err
}

// AddContainers attaches a new network namespace on every running node, in host order,
// named prefix1, prefix2…, with req (its Target set for each).
func (f *Fabric) AddContainers(ctx context.Context, prefix string, req api.AttachRequest) ([]*Container, error) {
	var cs []*Container
	for i, n := range f.Nodes() {
		c, err := f.AddContainer(ctx, n, fmt.Sprintf("%s%d", prefix, i+1), req)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	return cs, nil
}

// Forget drops a node from the fabric's bookkeeping (after it left or was stopped for good).
func (f *Fabric) Forget(name string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.nodes, name)
}

// Client is an API client for the node.
func (n *Node) Client() *api.Client { return api.NewClient(n.Socket) }

// Status asks the node for its status.
func (n *Node) Status(ctx context.Context) (api.Status, error) { return n.Client().Status(ctx) }

// tail returns the last lines of a file, for error messages.
func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return "\n" + strings.Join(ls, "\n")
}

// WaitConverged waits until every running node sees exactly the other running nodes alive,
// each with a tunnel port (with encryption: a completed WireGuard handshake), and returns how
// long it took.
func (f *Fabric) WaitConverged(ctx context.Context, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	var last error
	for time.Since(start) < timeout {
		if last = f.converged(ctx); last == nil {
			return time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return 0, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	return 0, fmt.Errorf("not converged after %s: %w", timeout, last)
}

func (f *Fabric) converged(ctx context.Context) error {
	nodes := f.Nodes()
	for _, n := range nodes {
		st, err := n.Status(ctx)
		if err != nil {
			return fmt.Errorf("%s: %w", n.Host.Name, err)
		}
		if st.Subnet == "" {
			return fmt.Errorf("%s has no subnet yet", n.Host.Name)
		}
		want := map[string]bool{}
		for _, o := range nodes {
			if o != n {
				want[o.Host.Name] = true
			}
		}
		for _, p := range st.Peers {
			// Encrypted (no tunnel port): a completed WireGuard handshake.
			if want[p.Name] && p.State == "alive" && (p.Tunnel != "" || strings.HasPrefix(p.WireGuard, "ok")) {
				delete(want, p.Name)
			}
		}
		if len(want) > 0 {
			return fmt.Errorf("%s does not yet have alive peers with tunnels: %v", n.Host.Name, keys(want))
		}
	}
	return nil
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Container is a network namespace attached to the fabric on a node.
type Container struct {
	Name  string
	Node  *Node
	NetNS string // ip netns name
	Path  string // netns path
	IP    string // address without prefix
	A     api.Attachment
}

// AddContainer creates a network namespace on node n's host and attaches it through fabricd.
func (f *Fabric) AddContainer(ctx context.Context, n *Node, name string, req api.AttachRequest) (*Container, error) {
	path, err := f.Lab.AddNetNS(ctx, n.Host, name)
	if err != nil {
		return nil, err
	}
	req.Target = path
	a, err := n.Client().Attach(ctx, req)
	if err != nil {
		return nil, fmt.Errorf("attach %s on %s: %w", name, n.Host.Name, err)
	}
	ip, _, _ := strings.Cut(a.IP, "/")
	return &Container{Name: name, Node: n, NetNS: filepath.Base(path), Path: path, IP: ip, A: a}, nil
}

// Ping sends count pings from the netns (an `ip netns` name, or a path such as a Docker
// container's /proc/PID/ns/net) to ip and reports how many came back.
func Ping(ctx context.Context, netns, ip string, count int, interval time.Duration) (sent, received int, err error) {
	ping := []string{"ping", "-n", "-q", "-c", strconv.Itoa(count), "-W", "1", "-i", fmt.Sprintf("%.3f", interval.Seconds()), ip}
	var cmd *exec.Cmd
	if strings.HasPrefix(netns, "/") {
		cmd = exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + netns}, ping...)...)
	} else {
		cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", netns}, ping...)...)
	}
	out, err := cmd.CombinedOutput()
	s, r, perr := parsePing(string(out))
	if perr != nil {
		return 0, 0, fmt.Errorf("ping %s from %s: %v: %s", ip, netns, err, out)
	}
	return s, r, nil
}

// parsePing reads "N packets transmitted, M received" from ping's summary.
func parsePing(out string) (int, int, error) {
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "packets transmitted") {
			continue
		}
		var s, r int
		if _, err := fmt.Sscanf(strings.TrimSpace(line), "%d packets transmitted, %d received", &s, &r); err != nil {
			return 0, 0, err
		}
		return s, r, nil
	}
	return 0, 0, errors.New("no ping summary")
}

// Reach waits until a ping from c to ip succeeds, up to timeout.
func Reach(ctx context.Context, netns, ip string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		_, r, err := Ping(ctx, netns, ip, 1, 200*time.Millisecond)
		if err == nil && r == 1 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s cannot reach %s within %s", netns, ip, timeout)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
	}
}

// PingResult is one pair of a ping matrix.
type PingResult struct {
	From, To *Container
	OK       bool
	Err      error
}

// PingMatrix pings every container from every other one (each pair waited up to timeout)
// and returns the results in order.
func PingMatrix(ctx context.Context, cs []*Container, timeout time.Duration) []PingResult {
	var out []PingResult
	for _, a := range cs {
		for _, b := range cs {
			if a == b {
				continue
			}
			err := Reach(ctx, a.NetNS, b.IP, timeout)
			out = append(out, PingResult{From: a, To: b, OK: err == nil, Err: err})
		}
	}
	return out
}

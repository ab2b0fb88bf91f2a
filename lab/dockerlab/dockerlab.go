// Package dockerlab runs a real, private Docker daemon for lab tests and the demo.
//
// Start launches containerd and dockerd (Debian's docker.io, dockerd 20.10) inside a
// given network namespace with every piece of state under one directory: data root,
// exec root, pidfiles, API socket, containerd root/state/socket and logs. containerd
// is started by this package with its own config (dockerd --containerd=...), because
// the containerd that dockerd 20.10 starts by itself lets its "opt" plugin create
// /opt/containerd. Nothing is
// shared with a system Docker: the daemon does not create a bridge, never touches
// iptables or sysctls, listens only on its own unix socket and puts its containers in
// its own cgroup parent. With no registry reachable, ImportBusybox builds a tiny image
// from the host's static busybox; Run starts containers with --network none (they
// have only lo), ready to be attached by fabricd.
//
// Stop removes every container in the daemon, stops dockerd and containerd, kills by
// PID whatever they started that is still alive (shims, container processes), unmounts
// what is left below the directory, removes the daemon's cgroups and the directory.
//
// A daemon outlives the process that started it unless stopped (the demo with KEEP=1).
// Its Record — directory, cgroup parent, PIDs and start times of containerd and dockerd —
// goes to Config.OnRecord (the lab's state file) and to Dir/dockerlab.json before and as
// each daemon starts; Cleanup does what Stop does from a Record, in another process.
//
// A few things live outside the directory because the binaries hard-code them:
// /run/docker/plugins (dockerd's plugin exec root) and /run/containerd/s (the shims'
// sockets). When a dockerlab daemon has to create those directories it marks them, and
// the last dockerlab daemon to stop on the machine removes them again if empty.
//
// The daemon runs in the network namespace through nsenter(1), not `ip netns exec`:
// the latter remounts /sys in a private mount namespace, which hides the cgroup v1
// hierarchies under /sys/fs/cgroup, and dockerd then refuses to start ("Devices cgroup
// isn't mounted"). With nsenter the daemon shares the caller's mount namespace, so its
// mounts are visible in /proc/self/mountinfo and Stop can clean them up.
package dockerlab

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"
)

// BusyboxImage is the image ImportBusybox creates and Run uses.
const BusyboxImage = "ovsfabric/busybox:lab"

// maxSocketPath is the longest unix socket path containerd accepts ("unix socket path
// too long (> 104)": it keeps to the BSD limit; Linux itself allows 107).
const maxSocketPath = 104

// Timeouts of the daemon's lifecycle. Start is also bounded by its context.
const (
	startTimeout      = 90 * time.Second // containerd + dockerd until the API answers
	dockerdStopGrace  = 20 * time.Second // SIGTERM → SIGKILL for dockerd
	processStopGrace  = 10 * time.Second // SIGTERM → SIGKILL for containerd, shims
	removeContainersT = 60 * time.Second // removing the containers through the API
)

// Config describes a daemon to start.
type Config struct {
	// Dir holds all of the daemon's state: data-root, exec-root, pidfiles, the API
	// socket (Dir/docker.sock), containerd's state and the logs (dockerd.log,
	// containerd.log). It is created if missing and removed, with all it holds, by
	// Stop. It must be absolute or relative to the working
	// directory and at most 71 bytes long, to leave room for unix sockets below it.
	Dir string
	// NetNS is the network namespace the daemon runs in: an `ip netns` name
	// (/run/netns/NAME) or an absolute path to a namespace file. Empty means the
	// caller's namespace.
	NetNS string
	// StorageDriver is dockerd's storage driver. Empty means detect: overlay2 when an
	// overlay mount works below Dir, vfs otherwise (and vfs again if dockerd refuses
	// overlay2).
	StorageDriver string
	// Logger receives progress and cleanup messages; nil means slog.Default().
	Logger *slog.Logger
	// PluginDir, when set, gives the daemon its own /run/docker/plugins: containerd and
	// dockerd run in a mount namespace of their own (made with the first of them, entered
	// by the second) where PluginDir is bind-mounted on /run/docker/plugins, so that
	// several daemons on one machine each find their own host's plugins (dockerd looks
	// for them only there). Their mounts live and die with that namespace; nothing is
	// mounted in the caller's.
	PluginDir string
	// OnRecord, when set, is handed the daemon's Record before its first process starts
	// and again after each one started, so that a lab can stop the daemon later from
	// another process (Cleanup). An error fails Start.
	OnRecord func(Record) error
	// DNS, when set, is daemon.json's "dns": the servers Docker's embedded resolver
	// (127.0.0.11) forwards the names it does not know to, from inside each container's
	// network namespace.
	DNS []netip.Addr
}

// cgroupParentPrefix starts the cgroup parent of every dockerlab daemon.
const cgroupParentPrefix = "/ovsfabric-dockerlab-"

// Daemon is a running private dockerd with its own containerd. Its methods are safe
// for concurrent use; Stop is idempotent.
type Daemon struct {
	dir      string
	netns    string // namespace file, "" for the caller's
	driver   string
	id       string // random, names the cgroup parent
	log      *slog.Logger
	env      []string // environment for dockerd, containerd and the docker CLI
	cgParent string   // --cgroup-parent, e.g. /ovsfabric-dockerlab-0a1b2c3d
	onRecord func(Record) error
	// pluginDir is Config.PluginDir (absolute), "" for the caller's mount namespace.
	pluginDir string
	// dns is Config.DNS.
	dns []netip.Addr

	containerd *child
	dockerd    *child
	shared     *sharedDirs
	// adoptedContainerd and adoptedDockerd are daemons another process started, known
	// from a Record (Cleanup).
	adoptedContainerd *proc
	adoptedDockerd    *proc

	mu       sync.Mutex
	imported bool
	stopped  bool
	stopErr  error
}

// child is a process this package started and still owns (not yet reaped).
type child struct {
	name  string
	cmd   *exec.Cmd
	log   string        // path of its log file
	start uint64        // start time (field 22 of /proc/PID/stat), for the Record
	done  chan struct{} // closed when Wait returned
	err   error         // Wait's result, valid after done
}

func (c *child) exited() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// Paths below Dir.
func (d *Daemon) path(elem ...string) string {
	return filepath.Join(append([]string{d.dir}, elem...)...)
}
func (d *Daemon) socket() string     { return d.path("docker.sock") }
func (d *Daemon) dataRoot() string   { return d.path("data") }
func (d *Daemon) execRoot() string   { return d.path("exec") }
func (d *Daemon) ctrdSocket() string { return d.path("containerd", "containerd.sock") }
func (d *Daemon) ctrdState() string  { return d.path("containerd", "state") }

// Available reports whether everything Start needs is installed: dockerd, docker,
// containerd, a containerd shim, runc, nsenter and a static busybox. It does not check
// for root.
func Available() error {
	var missing []string
	for _, bin := range []string{"dockerd", "docker", "containerd", "containerd-shim-runc-v2", "runc", "nsenter"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin)
		}
	}
	if _, err := busyboxPath(); err != nil {
		missing = append(missing, "busybox (static)")
	}
	if len(missing) > 0 {
		return fmt.Errorf("dockerlab: missing %s (Debian: apt-get install docker.io busybox-static)", strings.Join(missing, ", "))
	}
	return nil
}

// Start starts containerd and dockerd in cfg.NetNS with all state below cfg.Dir and
// waits until the Docker API answers. On failure everything started is torn down, Dir
// is removed, and the error carries the tail of the failing daemon's log.
func Start(ctx context.Context, cfg Config) (*Daemon, error) {
	if os.Geteuid() != 0 {
		return nil, errors.New("dockerlab: starting dockerd needs root")
	}
	if err := Available(); err != nil {
		return nil, err
	}
	if cfg.Dir == "" {
		return nil, errors.New("dockerlab: Config.Dir is empty")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, fmt.Errorf("dockerlab: directory %q: %w", cfg.Dir, err)
	}
	// The socket that limits Dir's length is containerd's ttrpc socket (104 bytes at
	// most). dockerd's exec-root/libnetwork/<12 hex>.sock is one byte longer but only
	// needs to fit Linux's 107.
	if maxDir := maxSocketPath - len("/containerd/containerd.sock.ttrpc"); len(dir) > maxDir {
		return nil, fmt.Errorf("dockerlab: directory %q is too long: %d bytes, at most %d leave room for the unix sockets below it", dir, len(dir), maxDir)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	nsPath := ""
	if cfg.NetNS != "" {
		nsPath = cfg.NetNS
		if !filepath.IsAbs(nsPath) {
			nsPath = filepath.Join("/run/netns", cfg.NetNS)
		}
		if _, err := os.Stat(nsPath); err != nil {
			return nil, fmt.Errorf("dockerlab: network namespace %q: %w", cfg.NetNS, err)
		}
	}
	idBytes := make([]byte, 4)
	if _, err := rand.Read(idBytes); err != nil {
		return nil, fmt.Errorf("dockerlab: random id: %w", err)
	}
	d := &Daemon{
		dir:   dir,
		netns: nsPath,
		id:    hex.EncodeToString(idBytes),
		log:   log.With("dockerlab", dir),
	}
	d.cgParent = cgroupParentPrefix + d.id
	d.onRecord = cfg.OnRecord
	d.dns = slices.Clone(cfg.DNS)
	if cfg.PluginDir != "" {
		if d.pluginDir, err = filepath.Abs(cfg.PluginDir); err != nil {
			return nil, fmt.Errorf("dockerlab: plugin directory %q: %w", cfg.PluginDir, err)
		}
	}
	d.env = append(cleanEnv(), "DOCKER_CONFIG="+d.path("cli"))

	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("dockerlab: %w", err)
	}
	// From here on a failure must undo everything: Stop copes with a partial start.
	fail := func(err error) (*Daemon, error) {
		if serr := d.Stop(context.Background()); serr != nil {
			err = errors.Join(err, fmt.Errorf("cleanup after failed start: %w", serr))
		}
		return nil, err
	}
	began := time.Now()
	if d.shared, err = acquireSharedDirs(); err != nil {
		return fail(fmt.Errorf("dockerlab: %w", err))
	}
	for _, sub := range []string{"cli", "containerd", "exec", "data"} {
		if err := os.MkdirAll(d.path(sub), 0o700); err != nil {
			return fail(fmt.Errorf("dockerlab: %w", err))
		}
	}
	if err := d.saveRecord(); err != nil {
		return fail(err)
	}
	d.driver = cfg.StorageDriver
	auto := d.driver == ""
	if auto {
		d.driver = "vfs"
		if err := probeOverlay(d.path("overlay-probe")); err != nil {
			d.log.Info("overlay mounts do not work here, using the vfs storage driver", "err", err)
		} else {
			d.driver = "overlay2"
		}
	}
	if err := d.startContainerd(ctx); err != nil {
		return fail(err)
	}
	err = d.startDockerd(ctx)
	if err != nil && auto && d.driver == "overlay2" && ctx.Err() == nil && strings.Contains(strings.ToLower(err.Error()), "overlay") {
		d.log.Warn("dockerd failed with overlay2, retrying with vfs", "err", err)
		if serr := d.stopChild(d.dockerd, dockerdStopGrace); serr != nil {
			return fail(errors.Join(err, fmt.Errorf("dockerlab: %w", serr)))
		}
		d.dockerd = nil
		// A dockerd that dies during start-up leaves its data-root bind-mounted.
		if rerr := errors.Join(unmountBelow(d.dir, d.log), os.RemoveAll(d.dataRoot())); rerr != nil {
			return fail(errors.Join(err, fmt.Errorf("dockerlab: resetting data-root: %w", rerr)))
		}
		d.driver = "vfs"
		err = d.startDockerd(ctx)
	}
	if err != nil {
		return fail(err)
	}
	d.log.Info("docker daemon ready", "host", d.Host(), "netns", cfg.NetNS, "storage", d.driver,
		"dockerd_pid", d.dockerd.pid(), "containerd_pid", d.containerd.pid(), "took", time.Since(began).Round(time.Millisecond))
	return d, nil
}

// Host is the daemon's API endpoint, "unix://DIR/docker.sock": fabricd's --docker-host,
// DOCKER_HOST for the docker CLI, client.WithHost for the Go client.
func (d *Daemon) Host() string { return "unix://" + d.socket() }

// StorageDriver is the storage driver dockerd runs with (overlay2 or vfs).
func (d *Daemon) StorageDriver() string { return d.driver }

// startContainerd starts a private containerd. dockerd 20.10 would start one itself,
// but with a generated config that lets containerd's "opt" plugin create /opt/containerd;
// our own config keeps every path below Dir.
func (d *Daemon) startContainerd(ctx context.Context) error {
	cfgPath := d.path("containerd", "config.toml")
	conf := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[debug]
  address = ""

[metrics]
  address = ""

[plugins]
  [plugins."io.containerd.internal.v1.opt"]
    path = %q
  [plugins."io.containerd.runtime.v1.linux"]
    runtime_root = %q
`, d.path("containerd", "root"), d.ctrdState(), d.ctrdSocket(), d.path("containerd", "opt"), d.path("containerd", "runc-v1"))
	if err := os.WriteFile(cfgPath, []byte(conf), 0o600); err != nil {
		return fmt.Errorf("dockerlab: containerd config: %w", err)
	}
	bin, args := "containerd", []string{"--config", cfgPath, "--log-level", "info"}
	if d.pluginDir != "" {
		if err := os.MkdirAll(d.pluginDir, 0o755); err != nil {
			return fmt.Errorf("dockerlab: %w", err)
		}
		// A mount namespace of its own (slave: the host's later mounts still show), with
		// the plugin directory on /run/docker/plugins; dockerd enters it (see spawn).
		args = append([]string{"--mount", "--propagation", "slave", "--", "sh", "-c",
			`mount --bind "$0" /run/docker/plugins && exec "$@"`, d.pluginDir, bin}, args...)
		bin = "unshare"
	}
	c, err := d.spawn("containerd", d.path("containerd.log"), bin, args...)
	if err != nil {
		return err
	}
	d.containerd = c
	if err := d.saveRecord(); err != nil {
		return err
	}
	if err := d.waitReady(ctx, c, func() error {
		conn, err := net.DialTimeout("unix", d.ctrdSocket(), time.Second)
		if err != nil {
			return err
		}
		return conn.Close()
	}); err != nil {
		return fmt.Errorf("dockerlab: containerd did not come up: %w", err)
	}
	return nil
}

// dockerdArgs are the flags dockerd runs with.
func (d *Daemon) dockerdArgs() []string {
	return []string{
		"--config-file", d.path("daemon.json"), // never /etc/docker/daemon.json
		"--data-root", d.dataRoot(),
		"--exec-root", d.execRoot(),
		"--pidfile", d.path("dockerd.pid"),
		"--host", d.Host(),
		"--containerd", d.ctrdSocket(),
		"--storage-driver", d.driver,
		"--cgroup-parent", d.cgParent,
		"--exec-opt", "native.cgroupdriver=cgroupfs",
		"--bridge=none",
		"--iptables=false",
		"--ip6tables=false",
		"--ip-forward=false",
		"--ip-masq=false",
		"--userland-proxy=false",
		"--live-restore=false",
		"--shutdown-timeout", "5",
	}
}

func (d *Daemon) startDockerd(ctx context.Context) error {
	// dockerd 20.10 keeps its identity key in /etc/docker/key.json unless told
	// otherwise, and only the config file can tell it (no such flag).
	conf := map[string]any{"deprecated-key-path": d.path("key.json")}
	if len(d.dns) > 0 {
		conf["dns"] = d.dns
	}
	js, err := json.Marshal(conf)
	if err != nil {
		return fmt.Errorf("dockerlab: daemon.json: %w", err)
	}
	if err := os.WriteFile(d.path("daemon.json"), append(js, '\n'), 0o600); err != nil {
		return fmt.Errorf("dockerlab: daemon.json: %w", err)
	}
	c, err := d.spawn("dockerd", d.path("dockerd.log"), "dockerd", d.dockerdArgs()...)
	if err != nil {
		return err
	}
	d.dockerd = c
	if err := d.saveRecord(); err != nil {
		return err
	}
	hc := d.httpClient()
	defer hc.CloseIdleConnections()
	if err := d.waitReady(ctx, c, func() error {
		resp, err := hc.Get("http://docker/_ping")
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64))
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("_ping: %s %s", resp.Status, body)
		}
		return nil
	}); err != nil {
		return fmt.Errorf("dockerlab: dockerd (storage driver %s) did not come up: %w", d.driver, err)
	}
	return nil
}

// httpClient talks to the daemon's API socket.
func (d *Daemon) httpClient() *http.Client {
	sock := d.socket()
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
				var dl net.Dialer
				return dl.DialContext(ctx, "unix", sock)
			},
		},
	}
}

// spawn starts bin in the daemon's network namespace with output to logPath.
func (d *Daemon) spawn(name, logPath, bin string, args ...string) (*child, error) {
	argv := append([]string{bin}, args...)
	var enter []string
	if d.netns != "" {
		enter = append(enter, "--net="+d.netns)
	}
	if d.pluginDir != "" && name != "containerd" && d.containerd != nil {
		// containerd's mount namespace (see startContainerd): its mounts and dockerd's
		// must see each other.
		enter = append(enter, fmt.Sprintf("--mount=/proc/%d/ns/mnt", d.containerd.pid()))
	}
	if len(enter) > 0 {
		argv = append(append([]string{"nsenter"}, enter...), append([]string{"--"}, argv...)...)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("dockerlab: %s log: %w", name, err)
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Dir = d.dir
	cmd.Env = d.env
	cmd.Stdout = logf // a file, not a pipe: grandchildren holding it cannot block Wait
	cmd.Stderr = logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("dockerlab: starting %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, log: logPath, done: make(chan struct{})}
	_, c.start, _ = procStat(cmd.Process.Pid)
	go func() {
		c.err = cmd.Wait()
		close(c.done)
	}()
	d.log.Debug("started", "process", name, "pid", cmd.Process.Pid, "argv", strings.Join(argv, " "))
	return c, nil
}

// waitReady polls ready until it succeeds, the child exits, ctx ends or startTimeout
// passes. Errors carry the tail of the child's log.
func (d *Daemon) waitReady(ctx context.Context, c *child, ready func() error) error {
	deadline := time.Now().Add(startTimeout)
	var last error
	for {
		if last = ready(); last == nil {
			return nil
		}
		if c.exited() {
			return fmt.Errorf("%s exited (%v); log tail:\n%s", c.name, c.err, logTail(c.log, 25))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s (%v); log tail:\n%s", c.name, startTimeout, last, logTail(c.log, 25))
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s not ready (%v): %w; log tail:\n%s", c.name, last, ctx.Err(), logTail(c.log, 25))
		case <-c.done:
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// logTail returns the last n lines of a log file, leaving out gRPC's connectivity
// chatter, which buries the lines that explain a failure.
func logTail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(no log: %v)", err)
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		if strings.Contains(line, "module=grpc") {
			continue
		}
		lines = append(lines, line)
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	if len(lines) == 0 {
		return "(log empty)"
	}
	return strings.Join(lines, "\n")
}

// cleanEnv is the caller's environment without DOCKER_* and CONTAINERD_* variables,
// which could point the CLI or the daemons elsewhere (DOCKER_HOST, DOCKER_CONTEXT,
// DOCKER_TLS_VERIFY, DOCKER_TMPDIR, ...), with a PATH that finds the daemons.
func cleanEnv() []string {
	var env []string
	hasPath := false
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		switch {
		case strings.HasPrefix(k, "DOCKER_"), strings.HasPrefix(k, "CONTAINERD_"):
			continue
		case k == "PATH":
			hasPath = true
			kv += ":/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
		}
		env = append(env, kv)
	}
	if !hasPath {
		env = append(env, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin")
	}
	return env
}

// probeOverlay reports whether an overlay mount works in dir (the filesystem below
// Dir decides whether overlay2 can work: overlay on overlay, for one, does not).
func probeOverlay(dir string) (err error) {
	defer func() {
		if rerr := os.RemoveAll(dir); rerr != nil && err == nil {
			err = rerr
		}
	}()
	for _, sub := range []string{"lower", "upper", "work", "merged"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
			return err
		}
	}
	if err := os.WriteFile(filepath.Join(dir, "lower", "f"), []byte("x"), 0o600); err != nil {
		return err
	}
	merged := filepath.Join(dir, "merged")
	opts := fmt.Sprintf("lowerdir=%s,upperdir=%s,workdir=%s", filepath.Join(dir, "lower"), filepath.Join(dir, "upper"), filepath.Join(dir, "work"))
	if err := syscall.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		return fmt.Errorf("overlay mount: %w", err)
	}
	defer func() {
		if uerr := syscall.Unmount(merged, 0); uerr != nil {
			_ = syscall.Unmount(merged, syscall.MNT_DETACH)
		}
	}()
	// A write through the overlay exercises copy-up, which is where unsupported
	// upper filesystems fail.
	if err := os.WriteFile(filepath.Join(merged, "f"), []byte("y"), 0o600); err != nil {
		return fmt.Errorf("overlay copy-up: %w", err)
	}
	if b, err := os.ReadFile(filepath.Join(merged, "f")); err != nil || !bytes.Equal(b, []byte("y")) {
		return fmt.Errorf("overlay read back: %q, %v", b, err)
	}
	return nil
}

package dockerlab

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/docker/docker/client"

	"github.com/ovsfabric/ovsfabric/lab/labtest"
)

// requireLab skips the test when it cannot run here (not root, docker.io or busybox
// missing), or fails it when CI=true: CI must run the lab tests.
func requireLab(t *testing.T) {
	t.Helper()
	labtest.Require(t, "the dockerlab lab test (it starts dockerd and creates a network namespace)", "ip")
	if err := Available(); err != nil {
		labtest.SkipOrFail(t, "the dockerlab lab test: %v", err)
	}
}

// testLogger sends slog output to t.Log.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

func randHex(t *testing.T, n int) string {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// newNetns creates a network namespace with a unique name, deleted on cleanup.
func newNetns(t *testing.T) string {
	t.Helper()
	name := fmt.Sprintf("dlt-%d-%s", os.Getpid(), randHex(t, 3))
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v: %s", name, err, out)
		}
	})
	return name
}

// nsID identifies a namespace file by device and inode.
func nsID(t *testing.T, path string) [2]uint64 {
	t.Helper()
	var st syscall.Stat_t
	if err := syscall.Stat(path, &st); err != nil {
		t.Fatalf("stat %s: %v", path, err)
	}
	return [2]uint64{st.Dev, st.Ino}
}

func exists(path string) bool {
	_, err := os.Lstat(path)
	return err == nil
}

// netnsState describes a network namespace: links, addresses, routes, firewall
// rules and forwarding sysctls.
func netnsState(t *testing.T, ns string) string {
	t.Helper()
	script := `ip -o link show | sed 's/ qlen [0-9]*//'; ip -o addr show; ip route show table all; ip -6 route show table all
cat /proc/sys/net/ipv4/ip_forward /proc/sys/net/ipv6/conf/all/forwarding /proc/sys/net/ipv4/conf/all/route_localnet
if command -v nft >/dev/null; then nft list ruleset; fi
if command -v iptables-save >/dev/null; then iptables-save | grep -v '^#'; fi; true`
	out, err := exec.Command("ip", "netns", "exec", ns, "sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("reading netns %s: %v: %s", ns, err, out)
	}
	return string(out)
}

// outsidePaths are places a careless dockerd/containerd writes to. Nothing may appear
// there because of this package.
var outsidePaths = []string{"/etc/docker/key.json", "/opt/containerd", "/var/lib/docker", "/var/lib/containerd", "/run/docker.sock", "/run/docker.pid"}

func TestDaemonLifecycle(t *testing.T) {
	requireLab(t)
	ctx := context.Background()
	ns := newNetns(t)
	dir := filepath.Join(t.TempDir(), "docker")

	nsBefore := netnsState(t, ns)
	before := map[string]bool{}
	for _, p := range append(slices.Clone(outsidePaths), sharedDirPaths...) {
		before[p] = exists(p)
	}

	t0 := time.Now()
	// DOCKERLAB_STORAGE_DRIVER=vfs forces a driver; empty detects.
	d, err := Start(ctx, Config{Dir: dir, NetNS: ns, StorageDriver: os.Getenv("DOCKERLAB_STORAGE_DRIVER"), Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	tStart := time.Since(t0)
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			if err := d.Stop(context.Background()); err != nil {
				t.Errorf("Stop (cleanup): %v", err)
			}
		}
	})
	if want := "unix://" + filepath.Join(dir, "docker.sock"); d.Host() != want {
		t.Errorf("Host() = %q, want %q", d.Host(), want)
	}
	if got, want := nsID(t, fmt.Sprintf("/proc/%d/ns/net", d.dockerd.pid())), nsID(t, "/run/netns/"+ns); got != want {
		t.Errorf("dockerd runs in netns %v, want %s %v", got, ns, want)
	}
	t.Logf("storage driver: %s; dockerd %s", d.StorageDriver(), strings.Join(d.dockerdArgs(), " "))

	t0 = time.Now()
	image, err := d.ImportBusybox(ctx)
	if err != nil {
		t.Fatalf("ImportBusybox: %v", err)
	}
	tImport := time.Since(t0)
	// Idempotent, also when the daemon already has the image.
	d.imported = false
	if again, err := d.ImportBusybox(ctx); err != nil || again != image {
		t.Fatalf("ImportBusybox again = %q, %v", again, err)
	}

	var tRun []time.Duration
	ids := map[string]string{}
	for _, name := range []string{"c1", "c2"} {
		t0 = time.Now()
		id, err := d.Run(ctx, name)
		if err != nil {
			t.Fatalf("Run %s: %v", name, err)
		}
		tRun = append(tRun, time.Since(t0))
		if !regexp.MustCompile(`^[0-9a-f]{64}$`).MatchString(id) {
			t.Errorf("Run %s returned ID %q", name, id)
		}
		ids[name] = id
	}

	// Resolve the containers the way fabricd does: Docker API at Host(), by name.
	cli, err := client.NewClientWithOpts(client.WithHost(d.Host()), client.WithAPIVersionNegotiation())
	if err != nil {
		t.Fatalf("docker client: %v", err)
	}
	defer cli.Close()

	selfNet := nsID(t, "/proc/self/ns/net")
	hostNet := nsID(t, "/run/netns/"+ns)
	pids := map[string]int{}
	for _, name := range []string{"c1", "c2"} {
		pid, err := d.Pid(ctx, name)
		if err != nil {
			t.Fatalf("Pid %s: %v", name, err)
		}
		pids[name] = pid
		if _, ok := lookupProc(pid); !ok {
			t.Errorf("container %s: PID %d is not a live process", name, pid)
		}
		netns := nsID(t, fmt.Sprintf("/proc/%d/ns/net", pid))
		if netns == selfNet || netns == hostNet {
			t.Errorf("container %s (PID %d) shares a network namespace with the test or the lab host", name, pid)
		}
		info, err := cli.ContainerInspect(ctx, name)
		if err != nil {
			t.Fatalf("API inspect %s: %v", name, err)
		}
		if info.ID != ids[name] || info.State == nil || info.State.Pid != pid {
			t.Errorf("API inspect %s: ID %s pid %v, want %s pid %d", name, info.ID, info.State, ids[name], pid)
		}

		out, err := d.Exec(ctx, name, "hostname")
		if err != nil || strings.TrimSpace(out) != name {
			t.Errorf("Exec %s hostname = %q, %v; want %q", name, out, err, name)
		}
		out, err = d.Exec(ctx, name, "ip", "addr")
		if err != nil {
			t.Fatalf("Exec %s ip addr: %v", name, err)
		}
		links := regexp.MustCompile(`(?m)^\d+: ([^:@]+)`).FindAllStringSubmatch(out, -1)
		if len(links) != 1 || links[0][1] != "lo" {
			t.Errorf("container %s has links %v, want only lo:\n%s", name, links, out)
		}
	}
	if pids["c1"] == pids["c2"] || nsID(t, fmt.Sprintf("/proc/%d/ns/net", pids["c1"])) == nsID(t, fmt.Sprintf("/proc/%d/ns/net", pids["c2"])) {
		t.Errorf("c1 and c2 share a PID or a network namespace")
	}
	if _, err := d.Exec(ctx, "c1", "sh", "-c", "exit 3"); err == nil {
		t.Errorf("Exec of a failing command returned no error")
	}
	if _, err := d.Pid(ctx, "nosuch"); err == nil {
		t.Errorf("Pid of a missing container returned no error")
	}

	// The daemon must not have touched the lab host's network namespace: no bridge,
	// no addresses, routes, firewall rules or sysctls.
	if got := netnsState(t, ns); got != nsBefore {
		t.Errorf("netns %s changed while the daemon ran:\nbefore:\n%s\nafter:\n%s", ns, nsBefore, got)
	}

	// Everything this daemon started, to check it is gone after Stop.
	started := []proc{}
	for _, c := range []*child{d.dockerd, d.containerd} {
		p, ok := lookupProc(c.pid())
		if !ok {
			t.Fatalf("%s (PID %d) is not running", c.name, c.pid())
		}
		started = append(started, p)
	}
	shims := d.shimProcs()
	if len(shims) == 0 {
		t.Errorf("found no containerd shims of this daemon")
	}
	inCgroup := d.containerProcs()
	for name, pid := range pids {
		if !slices.ContainsFunc(inCgroup, func(p proc) bool { return p.pid == pid }) {
			t.Errorf("container %s (PID %d) is not in cgroup parent %s (found %v)", name, pid, d.cgParent, pidList(inCgroup))
		}
	}
	started = append(append(started, shims...), inCgroup...)
	mounted, err := readMountinfo()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("before Stop: processes %v, %d mounts below %s", pidList(started), len(mountsBelow(mounted, dir)), dir)

	t0 = time.Now()
	if err := d.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
	stopped = true
	tStop := time.Since(t0)
	t.Logf("timings: Start %s, ImportBusybox %s, Run c1 %s, Run c2 %s, Stop %s",
		tStart.Round(time.Millisecond), tImport.Round(time.Millisecond), tRun[0].Round(time.Millisecond), tRun[1].Round(time.Millisecond), tStop.Round(time.Millisecond))

	for _, p := range started {
		if p.alive() {
			t.Errorf("process %d started by the daemon is still alive after Stop", p.pid)
		}
	}
	if mounted, err = readMountinfo(); err != nil {
		t.Fatal(err)
	}
	if left := mountsBelow(mounted, dir); len(left) > 0 {
		t.Errorf("mounts left below %s: %v", dir, left)
	}
	if exists(dir) {
		t.Errorf("%s still exists after Stop", dir)
	}
	if left := cgroupDirs(d.cgParent); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
	for _, p := range outsidePaths {
		if !before[p] && exists(p) {
			t.Errorf("%s appeared while the daemon ran", p)
		}
	}
	// The shared directories go when no other dockerlab daemon runs (another test
	// process may be running one right now).
	if lock, err := os.Open(sharedLockPath); err == nil {
		if flock(lock, syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			for _, p := range sharedDirPaths {
				if !before[p] && exists(p) {
					t.Errorf("%s left behind", p)
				}
			}
		}
		lock.Close()
	}
	if err := d.Stop(ctx); err != nil {
		t.Errorf("second Stop: %v", err)
	}
}

// TestStopAfterCrash kills dockerd and containerd with SIGKILL while a container runs,
// the way a crashed test leaves them, and checks that Stop still removes everything:
// the orphaned shim and container process, the mounts below Dir, the cgroups, Dir.
func TestStopAfterCrash(t *testing.T) {
	requireLab(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "docker")
	d, err := Start(ctx, Config{Dir: dir, NetNS: newNetns(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	if _, err := d.Run(ctx, "crash"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	started := append(append([]proc{}, d.shimProcs()...), d.containerProcs()...)
	if len(started) < 2 {
		t.Fatalf("want a shim and a container process, found %v", pidList(started))
	}
	for _, c := range []*child{d.dockerd, d.containerd} {
		_ = c.cmd.Process.Kill()
		<-c.done
	}
	mounted, _ := readMountinfo()
	t.Logf("after SIGKILL: shim and container %v alive, %d mounts below Dir", pidList(slices.DeleteFunc(slices.Clone(started), func(p proc) bool { return !p.alive() })), len(mountsBelow(mounted, dir)))

	if err := d.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
	for _, p := range started {
		if p.alive() {
			t.Errorf("process %d still alive after Stop", p.pid)
		}
	}
	mounted, _ = readMountinfo()
	if left := mountsBelow(mounted, dir); len(left) > 0 {
		t.Errorf("mounts left below %s: %v", dir, left)
	}
	if exists(dir) {
		t.Errorf("%s still exists", dir)
	}
	if left := cgroupDirs(d.cgParent); len(left) > 0 {
		t.Errorf("cgroups left: %v", left)
	}
}

// TestStartFailure checks that a daemon that cannot start reports why (the tail of
// dockerd's log) and leaves nothing behind.
func TestStartFailure(t *testing.T) {
	requireLab(t)
	ctx := context.Background()
	base := t.TempDir()

	dir := filepath.Join(base, "nons")
	if _, err := Start(ctx, Config{Dir: dir, NetNS: "dockerlab-no-such-netns-" + randHex(t, 3)}); err == nil || !strings.Contains(err.Error(), "network namespace") {
		t.Errorf("Start in a missing netns: err = %v", err)
	}
	if exists(dir) {
		t.Errorf("%s created by a failed Start", dir)
	}

	long := filepath.Join(base, strings.Repeat("x", 100))
	if _, err := Start(ctx, Config{Dir: long}); err == nil || !strings.Contains(err.Error(), "too long") {
		t.Errorf("Start with a long Dir: err = %v", err)
	}

	ns := newNetns(t)
	dir = filepath.Join(base, "bad")
	t0 := time.Now()
	_, err := Start(ctx, Config{Dir: dir, NetNS: ns, StorageDriver: "no-such-driver", Logger: testLogger(t)})
	t.Logf("failed Start took %s: %v", time.Since(t0).Round(time.Millisecond), err)
	if err == nil {
		t.Fatal("Start with a bogus storage driver succeeded")
	}
	if !strings.Contains(err.Error(), "log tail") || !strings.Contains(err.Error(), "no-such-driver") {
		t.Errorf("error does not carry dockerd's log tail: %v", err)
	}
	if exists(dir) {
		t.Errorf("%s left behind by a failed Start", dir)
	}
	sock := filepath.Join(dir, "containerd", "containerd.sock")
	if left := findProcs(func(argv []string) bool {
		return slices.Contains(argv, sock) || slices.Contains(argv, filepath.Join(dir, "containerd", "config.toml"))
	}); len(left) > 0 {
		t.Errorf("processes left by a failed Start: %v", pidList(left))
	}
	if mounted, err := readMountinfo(); err == nil {
		if left := mountsBelow(mounted, dir); len(left) > 0 {
			t.Errorf("mounts left by a failed Start: %v", left)
		}
	}
}

func TestParseStat(t *testing.T) {
	// A command name with spaces and parentheses must not shift the fields.
	line := "4242 (we (ir) d) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000000 100 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n"
	state, start, err := parseStat([]byte(line))
	if err != nil || state != 'S' || start != 987654 {
		t.Errorf("parseStat = %c, %d, %v; want S, 987654", state, start, err)
	}
	if _, _, err := parseStat([]byte("1 (x) S 1")); err == nil {
		t.Errorf("parseStat accepted a truncated line")
	}
	self, ok := lookupProc(os.Getpid())
	if !ok || !self.alive() {
		t.Errorf("lookupProc(self) = %v, %v", self, ok)
	}
	if (proc{pid: self.pid, start: self.start + 1}).alive() {
		t.Errorf("a proc with another start time counts as alive (PID reuse)")
	}
}

func TestMountinfo(t *testing.T) {
	const info = `26 1 254:0 / / rw,relatime - ext4 /dev/vda rw
47 26 254:0 /tmp/d/data /tmp/d/data rw,relatime shared:7 - ext4 /dev/vda rw
46 47 0:38 / /tmp/d/data/overlay2/abc/merged rw,relatime shared:3 - overlay overlay rw,lowerdir=/x
95 26 0:4 net:[4026532249] /tmp/d/exec/netns/cd82 rw - nsfs nsfs rw
96 26 0:4 / /tmp/d\040x/y rw - tmpfs tmpfs rw
97 26 0:4 / /tmp/dd/z rw - tmpfs tmpfs rw
98 26 0:4 / /tmp/d rw - tmpfs tmpfs rw
30 22 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
`
	mounts, err := parseMountinfo(strings.NewReader(info))
	if err != nil {
		t.Fatal(err)
	}
	if mounts[4].point != "/tmp/d x/y" {
		t.Errorf("unescaped %q, want %q", mounts[4].point, "/tmp/d x/y")
	}
	if mounts[7].fstype != "cgroup" {
		t.Errorf("fstype %q, want cgroup", mounts[7].fstype)
	}
	got := mountsBelow(mounts, "/tmp/d")
	want := []string{"/tmp/d/data/overlay2/abc/merged", "/tmp/d/exec/netns/cd82", "/tmp/d/data"}
	if !slices.Equal(got, want) {
		t.Errorf("mountsBelow = %v, want %v (deepest first, Dir itself and siblings excluded)", got, want)
	}
	if _, err := parseMountinfo(strings.NewReader("garbage\n")); err == nil {
		t.Errorf("parseMountinfo accepted garbage")
	}
}

func TestCleanEnv(t *testing.T) {
	t.Setenv("DOCKER_HOST", "tcp://elsewhere:2375")
	t.Setenv("DOCKER_CONTEXT", "other")
	for _, kv := range cleanEnv() {
		if strings.HasPrefix(kv, "DOCKER_") {
			t.Errorf("cleanEnv kept %s", kv)
		}
	}
}

func TestBusyboxRootfs(t *testing.T) {
	if _, err := busyboxPath(); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal(err)
		}
		t.Skip(err)
	}
	b, err := busyboxRootfs()
	if err != nil {
		t.Fatal(err)
	}
	entries := map[string]*tar.Header{}
	tr := tar.NewReader(bytes.NewReader(b))
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		entries[strings.TrimSuffix(h.Name, "/")] = h
	}
	if h := entries["bin/busybox"]; h == nil || h.Typeflag != tar.TypeReg || fs.FileMode(h.Mode)&0o111 == 0 {
		t.Errorf("bin/busybox missing or not executable: %+v", h)
	}
	for _, name := range []string{"bin/sh", "bin/ping", "bin/nc", "sbin/ip", "sbin/ifconfig", "bin/sleep", "usr/bin/wget", "usr/sbin/httpd", "bin/cat", "bin/hostname"} {
		if h := entries[name]; h == nil || h.Typeflag != tar.TypeSymlink || h.Linkname != "/bin/busybox" {
			t.Errorf("%s missing or not a symlink to /bin/busybox: %+v", name, h)
		}
	}
	if h := entries["tmp"]; h == nil || h.Mode != 0o1777 {
		t.Errorf("tmp missing or not 1777: %+v", h)
	}
}

// TestLongestDir starts a daemon in the longest Dir that Start accepts and runs a
// container in it: every socket below Dir must fit in a unix socket address.
func TestLongestDir(t *testing.T) {
	requireLab(t)
	ctx := context.Background()
	base := t.TempDir()
	pad := maxSocketPath - len(filepath.Join(base, "containerd", "containerd.sock.ttrpc")) - 1
	if pad < 1 {
		t.Skipf("temporary directory %s is too long for this test", base)
	}
	dir := filepath.Join(base, strings.Repeat("d", pad))
	d, err := Start(ctx, Config{Dir: dir, NetNS: newNetns(t), Logger: testLogger(t)})
	if err != nil {
		t.Fatalf("Start in a %d-byte Dir: %v", len(dir), err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	if _, err := d.Run(ctx, "long"); err != nil {
		t.Fatalf("Run in a %d-byte Dir: %v", len(dir), err)
	}
	if out, err := d.Exec(ctx, "long", "true"); err != nil {
		t.Fatalf("Exec in a %d-byte Dir: %v: %s", len(dir), err, out)
	}
	var socks []string
	_ = filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
		if err == nil && e.Type()&fs.ModeSocket != 0 {
			socks = append(socks, fmt.Sprintf("%s (%d)", p, len(p)))
		}
		return nil
	})
	t.Logf("Dir is %d bytes; sockets below it: %v", len(dir), socks)
	if err := d.Stop(ctx); err != nil {
		t.Errorf("Stop: %v", err)
	}
}

// TestCleanupFromRecord stops a daemon the way `lab down` does after the process that started
// it has gone: from its Record alone (here found again by Discover without the record file,
// as for a daemon nobody recorded), and checks that nothing is left.
func TestCleanupFromRecord(t *testing.T) {
	requireLab(t)
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "docker")
	var hooked []Record
	d, err := Start(ctx, Config{Dir: dir, NetNS: newNetns(t), Logger: testLogger(t),
		OnRecord: func(r Record) error { hooked = append(hooked, r); return nil }})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { _ = d.Stop(context.Background()) })
	if _, err := d.Run(ctx, "rec"); err != nil {
		t.Fatalf("Run: %v", err)
	}
	// OnRecord saw the daemon before any process (so a crash in between leaves a record of
	// the cgroup parent) and after each started.
	if len(hooked) < 3 || len(hooked[0].Procs) != 0 || len(hooked[len(hooked)-1].Procs) != 2 {
		t.Errorf("OnRecord calls: %+v", hooked)
	}
	rec := d.Record()
	if err := os.Remove(filepath.Join(dir, recordFile)); err != nil {
		t.Fatal(err)
	}
	found, ok := Discover(dir)
	if !ok || found.CgroupParent != rec.CgroupParent || len(found.Procs) != 2 {
		t.Fatalf("Discover without the record file: %+v, %v; want %+v", found, ok, rec)
	}
	ps := Processes(found)
	names := map[string]bool{}
	for _, p := range ps {
		names[strings.SplitN(p.Name, ":", 2)[0]] = true
	}
	for _, want := range []string{"dockerd", "containerd", "containerd-shim", "container"} {
		if !names[want] {
			t.Errorf("Processes lacks %s: %+v", want, ps)
		}
	}
	if cmds := HandCommands(found); len(cmds) == 0 || !strings.HasPrefix(cmds[0], "kill -9 ") {
		t.Errorf("HandCommands of a running daemon: %q", cmds)
	}
	if err := Cleanup(ctx, found, testLogger(t)); err != nil {
		t.Errorf("Cleanup: %v", err)
	}
	if left := Leftovers(rec); len(left) > 0 {
		t.Errorf("left after Cleanup: %v", left)
	}
	if err := Cleanup(ctx, rec, testLogger(t)); err != nil {
		t.Errorf("second Cleanup: %v", err)
	}
	if _, ok := Discover(dir); ok {
		t.Error("Discover finds a daemon after Cleanup")
	}
	// A record must never make Cleanup walk cgroups that are not a dockerlab daemon's.
	if err := Cleanup(ctx, Record{Dir: dir, CgroupParent: "/"}, testLogger(t)); err == nil {
		t.Error("Cleanup accepted cgroup parent /")
	}
}

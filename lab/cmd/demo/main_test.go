package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/dockerlab"
	"github.com/ovsfabric/ovsfabric/lab/labtest"
)

// TestKeepThenDown runs the demo as `make demo KEEP=1` does (its own binaries, lab name and
// directory), which checks the networks' isolation matrix itself (any pair that differs
// fails it), then `lab down` as `make demo-down` does, and checks that nothing is left: no
// namespace, no process of the lab (fabricd, OVS, dockerd, containerd, the shim, the
// container's process), no mount below the lab directory, no cgroup of the private dockerd.
func TestKeepThenDown(t *testing.T) {
	labtest.Require(t, "the demo teardown test (it runs the demo: namespaces, OVS, a private dockerd)",
		"ip", "ethtool", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ping", "sysctl")
	if err := dockerlab.Available(); err != nil {
		labtest.SkipOrFail(t, "the demo teardown test: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	tmp := t.TempDir()
	bin := filepath.Join(tmp, "bin")
	build(t, ctx, bin)
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	name := "dk" + hex.EncodeToString(b)
	dir := filepath.Join(tmp, "lab")
	t.Cleanup(func() {
		if l, err := lab.OpenName(name); err == nil { // the test failed before `lab down`
			_ = l.Down(context.Background())
		}
	})

	demo := exec.CommandContext(ctx, filepath.Join(bin, "fabric-demo"))
	demo.Env = append(os.Environ(), "HOSTS=2", "KEEP=1", "DIR="+dir, "BIN="+bin, "NAME="+name, "TUNNEL=vxlan")
	out, err := demo.CombinedOutput()
	if err != nil {
		t.Fatalf("demo KEEP=1: %v\n%s", err, out)
	}
	for _, want := range []string{"reach each other", "web(docker)", "docker run -d --name web --hostname web --network blue ovsfabric", "The lab keeps running",
		"fabricctl network ls", "isolated across networks, all as expected"} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("demo output lacks %q:\n%s", want, out)
		}
	}

	// What the kept lab runs: the daemons recorded in its state, and every process in its
	// namespaces or in the private dockerd's cgroup (shim, container), with start times.
	st := readState(t, dir)
	if len(st.Dockers) != 1 || st.Dockers[0].Daemon.CgroupParent == "" {
		t.Fatalf("state records %d dockerds, want 1 with its cgroup parent: %+v", len(st.Dockers), st.Dockers)
	}
	rec := st.Dockers[0].Daemon
	var recorded []string
	for _, p := range rec.Procs {
		recorded = append(recorded, p.Name)
	}
	if strings.Join(recorded, ",") != "containerd,dockerd" {
		t.Errorf("recorded docker daemons %v, want containerd and dockerd", recorded)
	}
	running := processesOf(t, name, dir, rec.CgroupParent)
	names := map[string]bool{}
	for _, p := range running {
		names[p.comm] = true
	}
	for _, want := range []string{"fabricd", "ovs-vswitchd", "ovsdb-server", "dockerd", "containerd", "containerd-shim", "sleep"} {
		if !names[want] {
			t.Errorf("no %s among the kept lab's processes %v", want, running)
		}
	}
	if cgs := cgroups(rec.CgroupParent); len(cgs) == 0 {
		t.Errorf("no cgroup %s while the container runs", rec.CgroupParent)
	}
	// The dockerd runs in a mount namespace of its own (its /run/docker/plugins is the host's
	// plugin directory): its mounts show in containerd's mountinfo, not in this process's.
	if m := mountsBelow(t, fmt.Sprintf("/proc/%d/mountinfo", rec.Procs[0].PID), dir); len(m) == 0 {
		t.Errorf("no mount below %s in the private dockerd's mount namespace while it runs", dir)
	}
	// lab status lists them too, with the API sockets.
	status, err := exec.CommandContext(ctx, filepath.Join(bin, "lab"), "status", "--dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("lab status: %v\n%s", err, status)
	}
	for _, want := range []string{"dockerd:", "containerd:", "containerd-shim:", filepath.Join(dir, "h1", "fabricd.sock")} {
		if !bytes.Contains(status, []byte(want)) {
			t.Errorf("lab status lacks %q:\n%s", want, status)
		}
	}

	// The demo has exited: `lab down` is another process, as with `make demo-down`.
	down, err := exec.CommandContext(ctx, filepath.Join(bin, "lab"), "down", "--dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("lab down: %v\n%s", err, down)
	}
	t.Logf("lab down: %s", bytes.TrimSpace(down))

	for _, ns := range netns(lab.NetNSPrefix(name)) {
		t.Errorf("netns %s left", ns)
	}
	deadline := time.Now().Add(10 * time.Second) // zombies of reparented processes are reaped by init
	for _, p := range running {
		for p.alive() && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if p.alive() {
			t.Errorf("process %s (pid %d) left", p.comm, p.pid)
		}
	}
	if m := mountsBelow(t, "/proc/self/mountinfo", dir); len(m) > 0 {
		t.Errorf("mounts left: %v", m)
	}
	if cgs := cgroups(rec.CgroupParent); len(cgs) > 0 {
		t.Errorf("cgroups left: %v", cgs)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s left: %v", dir, err)
	}
	if left := lab.Leftovers(name); len(left) > 0 {
		t.Errorf("lab leftovers: %v", left)
	}
}

// build builds the binaries `make build` makes into bin.
func build(t *testing.T, ctx context.Context, bin string) {
	t.Helper()
	goBin, err := exec.LookPath("go")
	if err != nil {
		goBin = "/usr/local/go/bin/go" // where the Makefile's PATH finds it
	}
	root, err := filepath.Abs(filepath.Join("..", "..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	for _, args := range [][]string{
		{"build", "-o", bin + "/", "./cmd/fabricd", "./cmd/fabricctl", "./lab/cmd/lab"},
		{"build", "-o", filepath.Join(bin, "fabric-demo"), "./lab/cmd/demo"},
	} {
		cmd := exec.CommandContext(ctx, goBin, args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
}

// labState is the part of <dir>/state.json this test reads.
type labState struct {
	Dockers []struct {
		Host   string           `json:"host"`
		Daemon dockerlab.Record `json:"daemon"`
	} `json:"dockers"`
}

func readState(t *testing.T, dir string) labState {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st labState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatalf("state.json: %v", err)
	}
	return st
}

// process is a PID with its start time, so a reused PID is not taken for it.
type process struct {
	pid   int
	start string
	comm  string
}

func (p process) String() string { return fmt.Sprintf("%s:%d", p.comm, p.pid) }

func (p process) alive() bool {
	start, state, ok := stat(p.pid)
	return ok && start == p.start && state != "Z"
}

// stat returns the start time and state of pid from /proc/PID/stat.
func stat(pid int) (start, state string, ok bool) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return "", "", false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return "", "", false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return "", "", false
	}
	return f[19], f[0], true
}

// processesOf lists the processes in the lab's namespaces, with the lab directory on their
// command line, or in the cgroup parent.
func processesOf(t *testing.T, name, dir, cgParent string) []process {
	t.Helper()
	nsIno := map[uint64]bool{}
	for _, ns := range netns(lab.NetNSPrefix(name)) {
		if fi, err := os.Stat(filepath.Join("/var/run/netns", ns)); err == nil {
			nsIno[inode(fi)] = true
		}
	}
	inCgroup := map[int]bool{}
	for _, cg := range cgroups(cgParent) {
		_ = filepath.Walk(cg, func(path string, fi os.FileInfo, err error) error {
			if err == nil && fi.Name() == "cgroup.procs" {
				b, _ := os.ReadFile(path)
				for _, s := range strings.Fields(string(b)) {
					pid, _ := strconv.Atoi(s)
					inCgroup[pid] = true
				}
			}
			return nil
		})
	}
	entries, _ := os.ReadDir("/proc")
	var out []process
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == os.Getpid() {
			continue
		}
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		fi, err := os.Stat(fmt.Sprintf("/proc/%d/ns/net", pid))
		if !inCgroup[pid] && !bytes.Contains(cmdline, []byte(dir)) && (err != nil || !nsIno[inode(fi)]) {
			continue
		}
		start, state, ok := stat(pid)
		if !ok || state == "Z" {
			continue
		}
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		out = append(out, process{pid: pid, start: start, comm: strings.TrimSpace(string(comm))})
	}
	return out
}

// inode is the inode number of a namespace file: equal inodes, same namespace.
func inode(fi os.FileInfo) uint64 {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}

// netns lists the named namespaces starting with prefix.
func netns(prefix string) []string {
	entries, _ := os.ReadDir("/var/run/netns")
	var out []string
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), prefix) {
			out = append(out, e.Name())
		}
	}
	return out
}

// cgroups lists the directories of cgroup parent in every hierarchy (v1 and v2).
func cgroups(parent string) []string {
	if parent == "" {
		return nil
	}
	base := strings.TrimPrefix(parent, "/")
	var out []string
	for _, pattern := range []string{"/sys/fs/cgroup/" + base, "/sys/fs/cgroup/*/" + base} {
		m, _ := filepath.Glob(pattern)
		out = append(out, m...)
	}
	return out
}

// mountsBelow lists the mount points at or below dir in the mountinfo file (of a process's
// mount namespace).
func mountsBelow(t *testing.T, mountinfo, dir string) []string {
	t.Helper()
	b, err := os.ReadFile(mountinfo)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && (f[4] == dir || strings.HasPrefix(f[4], dir+"/")) {
			out = append(out, f[4])
		}
	}
	return out
}

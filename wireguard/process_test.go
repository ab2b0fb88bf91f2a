package wireguard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/lab/labtest"
)

// fakeProcs is deviceProcs without processes: each "process" is a PID and a channel its
// death closes. It records what the supervisor did.
type fakeProcs struct {
	mu       sync.Mutex
	running  int                     // the PID the pidfile names (0: none)
	answers  bool                    // its UAPI socket answers
	ignore   map[syscall.Signal]bool // signals the process survives
	startErr []error                 // errors of the next starts, in order
	next     int
	exits    map[int]chan struct{}
	calls    []string
}

func newFake() *fakeProcs {
	return &fakeProcs{next: 100, exits: map[int]chan struct{}{}, ignore: map[syscall.Signal]bool{}}
}

func (f *fakeProcs) log(c string) { f.calls = append(f.calls, c) }

func (f *fakeProcs) find() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log("find")
	return f.running
}

func (f *fakeProcs) ready() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log("ready")
	if !f.answers {
		return errors.New("connection refused")
	}
	return nil
}

func (f *fakeProcs) start() (int, <-chan struct{}, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log("start")
	if len(f.startErr) > 0 {
		err := f.startErr[0]
		f.startErr = f.startErr[1:]
		if err != nil {
			return 0, nil, err
		}
	}
	f.next++
	f.running, f.answers = f.next, true
	ch := make(chan struct{})
	f.exits[f.next] = ch
	return f.next, ch, nil
}

func (f *fakeProcs) watch(pid int) (<-chan struct{}, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log("watch")
	ch, ok := f.exits[pid]
	if !ok {
		ch = make(chan struct{})
		f.exits[pid] = ch
	}
	return ch, nil
}

func (f *fakeProcs) signal(pid int, sig syscall.Signal) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.log(sig.String())
	if !f.ignore[sig] {
		f.dieLocked(pid)
	}
	return nil
}

// die ends pid as a crash would.
func (f *fakeProcs) die(pid int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.dieLocked(pid)
}

func (f *fakeProcs) dieLocked(pid int) {
	if ch, ok := f.exits[pid]; ok {
		select {
		case <-ch:
		default:
			close(ch)
		}
	}
	if f.running == pid {
		f.running, f.answers = 0, false
	}
}

func (f *fakeProcs) alive(pid int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	select {
	case <-f.exits[pid]:
		return false
	default:
		return true
	}
}

func (f *fakeProcs) history() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func quietSupervisor(f *fakeProcs, onRestart func()) *supervisor {
	s := newSupervisor(f, slog.New(slog.DiscardHandler), onRestart)
	s.retry, s.maxRetry, s.stopWait = 10*time.Millisecond, 20*time.Millisecond, 50*time.Millisecond
	return s
}

func TestSupervisorOpen(t *testing.T) {
	for _, tc := range []struct {
		name        string
		running     int // a process of an earlier run, per its pidfile
		answers     bool
		adopted     bool
		wantPID     int
		wantHistory []string
	}{
		{"none runs: start", 0, false, false, 101, []string{"find", "start"}},
		{"one runs and answers: adopt", 42, true, true, 42, []string{"find", "watch", "ready"}},
		{"one runs but does not answer: replace", 42, false, false, 101, []string{"find", "watch", "ready", "terminated", "start"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			f.running, f.answers = tc.running, tc.answers
			s := quietSupervisor(f, nil)
			adopted, err := s.open()
			if err != nil {
				t.Fatal(err)
			}
			defer s.detach()
			if adopted != tc.adopted || s.PID() != tc.wantPID {
				t.Errorf("open: adopted %v pid %d, want %v %d", adopted, s.PID(), tc.adopted, tc.wantPID)
			}
			if h := f.history(); !slices.Equal(h, tc.wantHistory) {
				t.Errorf("calls %v, want %v", h, tc.wantHistory)
			}
			if tc.running != 0 && !tc.adopted && f.alive(tc.running) {
				t.Error("the process that did not answer still runs")
			}
		})
	}
}

func TestSupervisorStartFails(t *testing.T) {
	f := newFake()
	f.startErr = []error{errors.New("exec: no such file")}
	s := quietSupervisor(f, nil)
	if _, err := s.open(); err == nil {
		t.Fatal("open succeeded although the device process could not start")
	}
	s.detach() // nothing to detach: must not block
	if err := s.stop(); err != nil {
		t.Fatal(err)
	}
}

func TestSupervisorRestartsCrashed(t *testing.T) {
	f := newFake()
	restarted := make(chan int, 4)
	var s *supervisor
	s = quietSupervisor(f, func() { restarted <- s.PID() })
	if _, err := s.open(); err != nil {
		t.Fatal(err)
	}
	defer s.detach()
	first := s.PID()
	// The first restart attempt fails: the supervisor retries.
	f.mu.Lock()
	f.startErr = []error{errors.New("UAPI socket in use"), errors.New("still in use"), errors.New("still in use")}
	f.mu.Unlock()
	f.die(first)
	select {
	case pid := <-restarted:
		if pid == first || pid == 0 || !f.alive(pid) {
			t.Fatalf("after the crash: pid %d (was %d)", pid, first)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the crashed device process was not started again")
	}
	if n := slices.Index(f.history(), "start"); n < 0 || len(f.history()) < 3 {
		t.Errorf("calls %v", f.history())
	}
	s.mu.Lock()
	restarts := s.restarts
	s.mu.Unlock()
	if restarts != 1 {
		t.Errorf("%d restarts, want 1", restarts)
	}
}

func TestSupervisorDetachLeavesItRunning(t *testing.T) {
	f := newFake()
	s := quietSupervisor(f, func() { t.Error("restarted after detach") })
	if _, err := s.open(); err != nil {
		t.Fatal(err)
	}
	pid := s.PID()
	s.detach()
	s.detach() // idempotent
	if !f.alive(pid) {
		t.Fatal("detach ended the device process")
	}
	// The next run adopts it.
	s2 := quietSupervisor(f, nil)
	adopted, err := s2.open()
	if err != nil || !adopted || s2.PID() != pid {
		t.Fatalf("second open: adopted %v pid %d err %v, want to adopt %d", adopted, s2.PID(), err, pid)
	}
	// A process dying after detach is not restarted by the detached supervisor.
	if err := s2.stop(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
}

func TestSupervisorStop(t *testing.T) {
	for _, tc := range []struct {
		name   string
		ignore []syscall.Signal
		want   []string // signals sent
		fails  bool
	}{
		{"SIGTERM suffices", nil, []string{"terminated"}, false},
		{"SIGKILL after the wait", []syscall.Signal{syscall.SIGTERM}, []string{"terminated", "killed"}, false},
		{"unkillable", []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL}, []string{"terminated", "killed"}, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFake()
			for _, s := range tc.ignore {
				f.ignore[s] = true
			}
			s := quietSupervisor(f, func() { t.Error("restarted while stopping") })
			if _, err := s.open(); err != nil {
				t.Fatal(err)
			}
			pid := s.PID()
			err := s.stop()
			if (err != nil) != tc.fails {
				t.Fatalf("stop: %v, want failure %v", err, tc.fails)
			}
			var sigs []string
			for _, c := range f.history() {
				if c == "terminated" || c == "killed" {
					sigs = append(sigs, c)
				}
			}
			if !slices.Equal(sigs, tc.want) {
				t.Errorf("signals %v, want %v", sigs, tc.want)
			}
			if !tc.fails && f.alive(pid) {
				t.Error("still alive after stop")
			}
			if err := s.stop(); tc.fails == false && err != nil {
				t.Errorf("second stop: %v", err)
			}
		})
	}
}

// TestFindDevice: a pidfile counts only when its PID runs the device program for this
// interface (a stale or reused PID, or garbage, is no device).
func TestFindDevice(t *testing.T) {
	dir := t.TempDir()
	// sh -c '…; :' stays sh (no exec of its last command), with the device's arguments after it.
	dev := exec.Command("sh", "-c", "sleep 60; :", "sh", "--interface", "wgfind0")
	if err := dev.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dev.Process.Kill(); _ = dev.Wait() })
	for _, tc := range []struct {
		name, content, bin, iface string
		want                      int
	}{
		{"the device", strconv.Itoa(dev.Process.Pid), "/usr/bin/sh", "wgfind0", dev.Process.Pid},
		{"another interface's", strconv.Itoa(dev.Process.Pid), "/usr/bin/sh", "wgfind1", 0},
		{"another program", strconv.Itoa(os.Getpid()), "/usr/bin/sh", "wgfind0", 0},
		{"no such process", "999999999", "sh", "wgfind0", 0},
		{"garbage", "twelve", "sh", "wgfind0", 0},
		{"no pidfile", "", "sh", "wgfind0", 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pidfile := filepath.Join(dir, tc.name+".pid")
			if tc.content != "" {
				if err := os.WriteFile(pidfile, []byte(tc.content+"\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			p := &osProcs{name: tc.iface, bin: tc.bin, pidfile: pidfile}
			if got := p.find(); got != tc.want {
				t.Errorf("find = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestDeviceProcess runs a userspace device in its own process (cmd/ovsfabric-wg, built
// here) in one namespace against an embedded one in another, and checks the lifecycle
// fabricd relies on: Close leaves the process running and pings keep flowing, with none
// lost, while no one holds it; Open adopts it with its configuration; a killed process is
// started again (OnRestart) and works once configured; Delete stops it and removes its
// interface, UAPI socket and pidfile.
func TestDeviceProcess(t *testing.T) {
	labtest.Require(t, "the WireGuard device process test (network namespaces, TUN, go build)", "ip", "ping", "go")
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	dir := t.TempDir()
	_, file, _, _ := runtime.Caller(0)
	build := exec.CommandContext(ctx, "go", "build", "-o", dir+"/", "./cmd/ovsfabric-wg")
	build.Dir = filepath.Join(filepath.Dir(file), "..")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build ovsfabric-wg: %v\n%s", err, out)
	}
	bin, pidfile := filepath.Join(dir, "ovsfabric-wg"), filepath.Join(dir, "wg.pid")
	id, nsA, nsB := twoNetNS(t, ctx)
	nameA := "wgp" + id + "a"
	// Whatever happens, the device process does not outlive the test (it would keep nsA).
	t.Cleanup(func() {
		if found, err := StopProcess(nameA, bin, pidfile); found || err != nil {
			t.Errorf("device process left at the end (stopped now): %v", err)
		}
	})
	run(t, ctx, "ip", "link", "add", "u", "netns", nsA, "type", "veth", "peer", "name", "u", "netns", nsB)
	for i, ns := range []string{nsA, nsB} {
		run(t, ctx, "ip", "-n", ns, "addr", "add", under[i]+"/24", "dev", "u")
		run(t, ctx, "ip", "-n", ns, "link", "set", "u", "up")
	}
	logf, err := os.Create(filepath.Join(dir, "wg.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close()
	t.Cleanup(func() {
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			t.Logf("device process output:\n%s", b)
		}
	})
	restarted := make(chan struct{}, 4)
	openA := func() *Device {
		t.Helper()
		d, err := Open(Options{Name: nameA, NetNS: filepath.Join("/var/run/netns", nsA), MTU: 1440,
			Process: &ProcessOptions{Binary: bin, Pidfile: pidfile, Output: logf, OnRestart: func() { restarted <- struct{}{} }}})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	a := openA()
	b, err := Open(Options{Name: "wgp" + id + "b", NetNS: filepath.Join("/var/run/netns", nsB), MTU: 1440})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { checkGone(t, b) })
	keys := []Key{mustKey(t), mustKey(t)}
	cfg := func(i int) Config {
		o := 1 - i
		return Config{PrivateKey: keys[i], ListenPort: 51820 + i, Peers: []Peer{{PublicKey: keys[o].PublicKey(),
			Endpoint:   netip.MustParseAddrPort(fmt.Sprintf("%s:%d", under[o], 51820+o)),
			AllowedIPs: []netip.Prefix{netip.MustParsePrefix(inner[o] + "/32")}, PersistentKeepalive: 25 * time.Second}}}
	}
	setUp := func(d *Device, i int, ns string) {
		t.Helper()
		if _, err := d.Set(cfg(i)); err != nil {
			t.Fatal(err)
		}
		run(t, ctx, "ip", "-n", ns, "addr", "replace", inner[i]+"/24", "dev", d.Name())
	}
	setUp(a, 0, nsA)
	setUp(b, 1, nsB)
	if !pingUntil(ctx, nsA, inner[1], 30*time.Second) {
		t.Fatalf("no ping through the WireGuard link%s", dump([]*Device{a, b}))
	}
	pid := a.PID()
	st, err := a.Status()
	if err != nil || pid == 0 || st.PID != pid || a.Implementation() != Userspace {
		t.Fatalf("device process: pid %d, status %+v, %v", pid, st, err)
	}
	if b, err := os.ReadFile(pidfile); err != nil || strings.TrimSpace(string(b)) != strconv.Itoa(pid) {
		t.Fatalf("pidfile: %q %v, want %d", b, err, pid)
	}

	// Close (fabricd stops) and Open again (it restarts) under a ping every 20 ms: none lost.
	ping := exec.CommandContext(ctx, "ip", "netns", "exec", nsB, "ping", "-n", "-q", "-c", "100", "-i", "0.02", "-W", "1", inner[0])
	var pingOut strings.Builder
	ping.Stdout, ping.Stderr = &pingOut, &pingOut
	if err := ping.Start(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	if err := syscall.Kill(pid, 0); err != nil {
		t.Fatalf("Close ended the device process: %v", err)
	}
	a = openA()
	if a.PID() != pid {
		t.Errorf("Open did not adopt the running process %d: pid %d", pid, a.PID())
	}
	if changed, err := a.Set(cfg(0)); err != nil || changed {
		t.Errorf("the adopted device lost its configuration: Set changed=%v err=%v", changed, err)
	}
	if err := ping.Wait(); err != nil || !strings.Contains(pingOut.String(), " 0% packet loss") {
		t.Errorf("pings across Close and Open: %v\n%s", err, pingOut.String())
	}
	t.Logf("across Close and Open of the device: %s", lastLines(pingOut.String(), 2))

	// A killed device process is started again; once configured it carries traffic.
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	select {
	case <-restarted:
	case <-time.After(30 * time.Second):
		t.Fatal("the killed device process was not started again")
	}
	if a.PID() == pid || a.PID() == 0 {
		t.Fatalf("pid after the restart %d (killed %d)", a.PID(), pid)
	}
	setUp(a, 0, nsA)
	if !pingUntil(ctx, nsA, inner[1], 30*time.Second) {
		t.Fatalf("no ping after the device process was started again%s", dump([]*Device{a, b}))
	}

	// Delete stops it and removes everything.
	pid = a.PID()
	checkGone(t, a)
	if err := syscall.Kill(pid, 0); err == nil && (&osProcs{name: nameA, bin: bin}).isDevice(pid) {
		t.Errorf("device process %d still runs after Delete", pid)
	}
	if _, err := os.Stat(pidfile); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("pidfile left after Delete: %v", err)
	}
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "; ")
}

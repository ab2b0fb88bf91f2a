package wireguard

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// ProcessOptions run a userspace device in a process of its own (the program Serve runs,
// cmd/ovsfabric-wg), so that it outlives the process that opened it, as kernel WireGuard
// does: Open adopts the process its pidfile names when it runs and answers on its UAPI
// socket, else starts one; Close leaves it running; Delete stops it; a device process that
// dies is started again (its interface comes back empty: OnRestart re-applies the rest).
type ProcessOptions struct {
	// Binary is the device program; it is started as
	// `Binary --interface NAME --mtu MTU --pidfile PIDFILE`.
	Binary string
	// Pidfile is where the device process records its PID once its interface is up and its
	// UAPI socket answers; the next Open adopts the process it names.
	Pidfile string
	// Output receives the device process's stdout and stderr (default: this process's stderr).
	Output *os.File
	// OnRestart is called after a device process that died was started again, with an
	// interface that has no key, peers or routes: the caller applies them again.
	OnRestart func()
}

// procStartTimeout bounds how long a new device process may take to answer on its UAPI socket.
const procStartTimeout = 15 * time.Second

// deviceProcs is what the supervisor needs of the operating system (osProcs; tests use a
// fake): find, start, watch and signal the device process of one interface.
type deviceProcs interface {
	// find returns the PID the pidfile names when that process runs the device program for
	// this interface, else 0.
	find() int
	// ready reports whether the interface's UAPI socket answers.
	ready() error
	// start starts a device process and returns once it is ready (its PID is in the
	// pidfile, its UAPI socket answers); exited is closed when it ends.
	start() (pid int, exited <-chan struct{}, err error)
	// watch returns a channel closed when pid ends (a process started by an earlier fabricd).
	watch(pid int) (<-chan struct{}, error)
	// signal sends sig to pid if it still runs the device program for this interface.
	signal(pid int, sig syscall.Signal) error
}

// supervisor keeps one device process running: adopt or start it, restart it when it dies,
// leave it (detach) or stop it.
type supervisor struct {
	p         deviceProcs
	log       *slog.Logger
	onRestart func()
	retry     time.Duration // after the first failed restart; doubles up to maxRetry
	maxRetry  time.Duration
	stopWait  time.Duration // SIGTERM to SIGKILL

	mu       sync.Mutex
	pid      int
	exited   <-chan struct{}
	restarts int
	quit     chan struct{} // closed by detach and stop: the watcher ends
	done     chan struct{} // closed when the watcher has ended
}

func newSupervisor(p deviceProcs, log *slog.Logger, onRestart func()) *supervisor {
	if onRestart == nil {
		onRestart = func() {}
	}
	return &supervisor{p: p, log: log, onRestart: onRestart, retry: time.Second, maxRetry: 30 * time.Second, stopWait: 5 * time.Second}
}

// open adopts the running device process when it answers, replaces one that does not, and
// starts one when none runs; then watches it. It reports whether it adopted one.
func (s *supervisor) open() (adopted bool, err error) {
	var (
		pid    int
		exited <-chan struct{}
	)
	if found := s.p.find(); found > 0 {
		ch, werr := s.p.watch(found)
		rerr := s.p.ready()
		switch {
		case werr != nil:
			s.log.Warn("WireGuard device process found but not watchable: starting another", "pid", found, "err", werr)
		case rerr != nil:
			s.log.Warn("WireGuard device process does not answer: replacing it", "pid", found, "err", rerr)
			if err := s.kill(found, ch); err != nil {
				return false, err
			}
		default:
			pid, exited, adopted = found, ch, true
		}
	}
	if !adopted {
		if pid, exited, err = s.p.start(); err != nil {
			return false, err
		}
	}
	s.mu.Lock()
	s.pid, s.exited = pid, exited
	s.quit, s.done = make(chan struct{}), make(chan struct{})
	s.mu.Unlock()
	go s.watchLoop()
	return adopted, nil
}

// watchLoop starts the device process again whenever it dies, until detach or stop.
func (s *supervisor) watchLoop() {
	defer close(s.done)
	for {
		s.mu.Lock()
		pid, exited := s.pid, s.exited
		s.mu.Unlock()
		select {
		case <-s.quit:
			return
		case <-exited:
		}
		s.log.Error("WireGuard device process exited: starting it again (traffic through this host stops meanwhile)", "pid", pid)
		wait := s.retry
		for {
			select {
			case <-s.quit:
				return
			default:
			}
			npid, nexited, err := s.p.start()
			if err == nil {
				s.mu.Lock()
				s.pid, s.exited = npid, nexited
				s.restarts++
				s.mu.Unlock()
				s.log.Info("WireGuard device process started again", "pid", npid)
				break
			}
			s.log.Error("start the WireGuard device process", "err", err, "retry_in", wait)
			select {
			case <-s.quit:
				return
			case <-time.After(wait):
			}
			wait = min(2*wait, s.maxRetry)
		}
		s.onRestart()
	}
}

// PID is the device process's PID.
func (s *supervisor) PID() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid
}

// endWatch stops the watcher (idempotent) and returns the process it watched.
func (s *supervisor) endWatch() (int, <-chan struct{}) {
	s.mu.Lock()
	quit, done := s.quit, s.done
	s.mu.Unlock()
	if quit == nil {
		return 0, nil
	}
	select {
	case <-quit:
	default:
		close(quit)
	}
	<-done
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid, s.exited
}

// detach stops watching and leaves the process running (a restart adopts it).
func (s *supervisor) detach() { s.endWatch() }

// stop stops watching and ends the process: SIGTERM (it removes its interface and pidfile),
// SIGKILL after stopWait.
func (s *supervisor) stop() error {
	pid, exited := s.endWatch()
	if pid == 0 {
		return nil
	}
	return s.kill(pid, exited)
}

// kill ends pid (SIGTERM, then SIGKILL) and waits for exited.
func (s *supervisor) kill(pid int, exited <-chan struct{}) error {
	select {
	case <-exited:
		return nil
	default:
	}
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		if err := s.p.signal(pid, sig); err != nil {
			return fmt.Errorf("stop the WireGuard device process %d: %w", pid, err)
		}
		select {
		case <-exited:
			return nil
		case <-time.After(s.stopWait):
			s.log.Warn("WireGuard device process still runs", "pid", pid, "after", sig)
		}
	}
	return fmt.Errorf("WireGuard device process %d still runs after SIGKILL", pid)
}

// osProcs is deviceProcs on this machine.
type osProcs struct {
	name, bin, pidfile string
	mtu                int
	out                *os.File
	do                 func(func() error) error // in the device's namespace
}

// StopProcess stops the device process of interface name that pidfile names, if one runs
// (SIGTERM, SIGKILL after 5 s), and reports whether there was one: fabricd started with
// encryption off ends the device a previous encrypted run left.
func StopProcess(name, binary, pidfile string) (bool, error) {
	p := &osProcs{name: name, bin: binary, pidfile: pidfile}
	pid := p.find()
	if pid == 0 {
		return false, nil
	}
	ch, err := p.watch(pid)
	if err != nil {
		return true, err
	}
	s := newSupervisor(p, slog.New(slog.DiscardHandler), nil)
	return true, s.kill(pid, ch)
}

func (p *osProcs) find() int {
	b, err := os.ReadFile(p.pidfile)
	if err != nil {
		return 0
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 0 || !p.isDevice(pid) {
		return 0
	}
	return pid
}

// isDevice reports whether pid runs (not a zombie) the device program for this interface.
func (p *osProcs) isDevice(pid int) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	if i := bytes.LastIndexByte(stat, ')'); i < 0 || len(stat) < i+3 || stat[i+2] == 'Z' || stat[i+2] == 'X' {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	if filepath.Base(args[0]) != filepath.Base(p.bin) {
		return false
	}
	for i := 1; i+1 < len(args); i++ {
		if args[i] == "--interface" && args[i+1] == p.name {
			return true
		}
	}
	return false
}

func (p *osProcs) ready() error { return uapiReady(p.name) }

// uapiReady asks the interface's UAPI socket for its configuration and checks the answer ends well.
func uapiReady(name string) error {
	c, err := net.DialTimeout("unix", uapiPath(name), 2*time.Second)
	if err != nil {
		return err
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte("get=1\n\n")); err != nil {
		return err
	}
	r := bufio.NewReader(c)
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return fmt.Errorf("UAPI %s: %w", uapiPath(name), err)
		}
		if v, ok := strings.CutPrefix(line, "errno="); ok {
			if v = strings.TrimSpace(v); v != "0" {
				return fmt.Errorf("UAPI %s: errno %s", uapiPath(name), v)
			}
			return nil
		}
	}
}

// uapiPath is wireguard-go's UAPI socket of interface name (ipc.UAPIOpen).
func uapiPath(name string) string { return filepath.Join("/var/run/wireguard", name+".sock") }

func (p *osProcs) start() (int, <-chan struct{}, error) {
	cmd := exec.Command(p.bin, "--interface", p.name, "--mtu", strconv.Itoa(p.mtu), "--pidfile", p.pidfile)
	out := p.out
	if out == nil {
		out = os.Stderr
	}
	cmd.Stdout, cmd.Stderr = out, out
	// Its own session: a terminal's signals for fabricd's process group do not reach it; and
	// "/" as its directory, so that it keeps no other directory busy while it runs.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	cmd.Dir = "/"
	// Started from a thread in the device's namespace, it runs there.
	if err := p.do(cmd.Start); err != nil {
		return 0, nil, fmt.Errorf("start %s: %w", p.bin, err)
	}
	pid := cmd.Process.Pid
	exited := make(chan struct{})
	var waitErr error
	go func() {
		waitErr = cmd.Wait()
		close(exited)
	}()
	deadline := time.Now().Add(procStartTimeout)
	for {
		select {
		case <-exited:
			return 0, nil, fmt.Errorf("%s (pid %d) exited while starting: %v (its output is in this log)", p.bin, pid, waitErr)
		case <-time.After(20 * time.Millisecond):
		}
		if b, err := os.ReadFile(p.pidfile); err == nil && strings.TrimSpace(string(b)) == strconv.Itoa(pid) && p.ready() == nil {
			return pid, exited, nil
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return 0, nil, fmt.Errorf("%s (pid %d) not ready after %s: killed", p.bin, pid, procStartTimeout)
		}
	}
}

// watch polls a pidfd, which signals the end of any process, not only of a child.
func (p *osProcs) watch(pid int) (<-chan struct{}, error) {
	fd, err := unix.PidfdOpen(pid, 0)
	if err != nil {
		return nil, fmt.Errorf("pidfd of %d: %w", pid, err)
	}
	if !p.isDevice(pid) { // the PID was reused between find and PidfdOpen
		unix.Close(fd)
		return nil, fmt.Errorf("pid %d no longer runs %s", pid, p.bin)
	}
	ch := make(chan struct{})
	go func() {
		defer close(ch)
		defer unix.Close(fd)
		fds := []unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
		for {
			n, err := unix.Poll(fds, -1)
			if err == nil && n > 0 || err != nil && !errors.Is(err, unix.EINTR) {
				return
			}
		}
	}()
	return ch, nil
}

func (p *osProcs) signal(pid int, sig syscall.Signal) error {
	if !p.isDevice(pid) {
		return nil // gone already
	}
	if err := syscall.Kill(pid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// ServeOptions describe the device a device process (Serve) runs.
type ServeOptions struct {
	// Name and MTU of the interface.
	Name string
	MTU  int
	// Pidfile receives this process's PID once the device is up and its UAPI socket answers.
	Pidfile string
	// Logger receives wireguard-go's messages.
	Logger *slog.Logger
}

// Serve runs one userspace device in this process until ctx ends, then removes its
// interface, UAPI socket and pidfile: the device process that ProcessOptions starts. It
// starts with no key and no peers; whoever started it configures it through the UAPI socket.
func Serve(ctx context.Context, o ServeOptions) error {
	if o.Pidfile == "" {
		return errors.New("wireguard device: no pidfile")
	}
	d, err := Open(Options{Name: o.Name, MTU: o.MTU, Implementation: Userspace, Logger: o.Logger})
	if err != nil {
		return err
	}
	defer d.Close()
	pid := strconv.Itoa(os.Getpid())
	if err := writeFileAtomic(o.Pidfile, []byte(pid+"\n")); err != nil {
		return fmt.Errorf("wireguard device: pidfile: %w", err)
	}
	defer func() {
		// Only our own: a successor may have written its PID already.
		if b, err := os.ReadFile(o.Pidfile); err == nil && strings.TrimSpace(string(b)) == pid {
			_ = os.Remove(o.Pidfile)
		}
	}()
	select {
	case <-ctx.Done():
		return nil
	case <-d.dev.Wait():
		return fmt.Errorf("wireguard %s: device closed", o.Name)
	}
}

// writeFileAtomic writes data to path through a temporary file and a rename.
func writeFileAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	if err := os.Rename(tmp, path); err != nil {
		_ = os.Remove(tmp)
		return err
	}
	return nil
}

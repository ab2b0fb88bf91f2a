package lab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Proc is a background process the lab started in one of its namespaces: one started with
// Host.Start or Lab.StartIn, or a host's ovsdb-server or ovs-vswitchd. It is recorded in the
// state file with its PID and start time, and Down stops it.
type Proc struct {
	lab  *Lab
	rec  procRecord
	cmd  *exec.Cmd     // nil for a daemon that detached or a process known from the state file
	done chan struct{} // closed when cmd has been waited for
	err  error         // cmd's exit error, valid after done
}

type procRecord struct {
	Name      string `json:"name"`
	NetNS     string `json:"netns"`
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
	Log       string `json:"log"`
	// Argv is the command as given (without the `ip netns exec NS` in front); Env is the
	// environment added to ours. Restart uses both.
	Argv []string `json:"argv"`
	Env  []string `json:"env,omitempty"`
	// Daemon marks an OVS daemon that detached itself (its PID comes from its pidfile).
	Daemon bool `json:"daemon,omitempty"`
}

// PID is the process ID.
func (p *Proc) PID() int { return p.rec.PID }

// Name is the name the process was started under (e.g. "fabricd", "ovs-vswitchd").
func (p *Proc) Name() string { return p.rec.Name }

// NetNS is the network namespace the process runs in.
func (p *Proc) NetNS() string { return p.rec.NetNS }

// Argv is the command line the process was started with.
func (p *Proc) Argv() []string { return append([]string(nil), p.rec.Argv...) }

// LogFile is where its stdout and stderr go (for OVS daemons: their --log-file).
func (p *Proc) LogFile() string { return p.rec.Log }

// Alive reports whether the process still runs. For a process this Lab value did not start
// itself (a detached OVS daemon, or after Open) it checks that the PID still belongs to the
// process recorded: same start time and command.
func (p *Proc) Alive() bool {
	if p.cmd != nil {
		select {
		case <-p.done:
			return false
		default:
			return true
		}
	}
	return isRecorded(p.rec)
}

// Wait waits up to timeout for the process to exit. It returns the process's exit error (nil
// for exit status 0; always nil for a process this Lab value did not start itself), or an
// error when it still runs after timeout.
func (p *Proc) Wait(timeout time.Duration) error {
	if p.cmd != nil {
		t := time.NewTimer(timeout)
		defer t.Stop()
		select {
		case <-p.done:
			return p.err
		case <-t.C:
			return fmt.Errorf("%s (pid %d) still running after %s", p.rec.Name, p.rec.PID, timeout)
		}
	}
	deadline := time.Now().Add(timeout)
	for p.Alive() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s (pid %d) still running after %s", p.rec.Name, p.rec.PID, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// signal sends sig to the process if it is still the one recorded. A child of ours cannot have
// its PID reused before it is reaped, so it is signalled through its handle; any other process
// only after its start time and command line have been checked.
func (p *Proc) signal(sig syscall.Signal) error {
	if p.cmd != nil {
		if !p.Alive() {
			return nil
		}
		if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
			return fmt.Errorf("signal %s (pid %d): %w", p.rec.Name, p.rec.PID, err)
		}
		return nil
	}
	if !isRecorded(p.rec) {
		return nil
	}
	if err := syscall.Kill(p.rec.PID, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("signal %s (pid %d): %w", p.rec.Name, p.rec.PID, err)
	}
	return nil
}

// Kill sends SIGKILL (kill -9) and waits up to 10 s for the process to be gone.
func (p *Proc) Kill() error {
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	if !p.Alive() {
		return nil
	}
	if err := p.Wait(10 * time.Second); err != nil && p.Alive() {
		return fmt.Errorf("kill -9 %s: %w", p.rec.Name, err)
	}
	return nil
}

// Stop sends SIGTERM, waits up to timeout, then sends SIGKILL. It returns nil once the process
// is gone, whatever its exit status.
func (p *Proc) Stop(timeout time.Duration) error {
	if err := p.signal(syscall.SIGTERM); err != nil {
		return err
	}
	if p.Wait(timeout) == nil || !p.Alive() {
		return nil
	}
	return p.Kill()
}

// Restart stops the process (SIGTERM, SIGKILL after 10 s) and starts the same command again
// in the same namespace, logging to the same file. It returns the new process. An OVS daemon
// is restarted with Host.StartOVS instead.
func (p *Proc) Restart(ctx context.Context) (*Proc, error) {
	if p.rec.Daemon {
		return nil, fmt.Errorf("restart %s: use Host.RestartOVS or Host.StartOVS for OVS daemons", p.rec.Name)
	}
	if p.lab == nil {
		return nil, fmt.Errorf("restart %s: process not started by a lab", p.rec.Name)
	}
	if err := p.Stop(10 * time.Second); err != nil {
		return nil, fmt.Errorf("restart %s: %w", p.rec.Name, err)
	}
	return p.lab.start(ctx, p.rec.NetNS, p.rec.Name, p.rec.Argv, p.rec.Env, p.rec.Log)
}

// start starts argv in the named namespace as a child of ours, output appended to logPath,
// and records it.
func (l *Lab) start(ctx context.Context, netns, name string, argv, env []string, logPath string) (*Proc, error) {
	if len(argv) == 0 {
		return nil, fmt.Errorf("start %s in %s: empty command", name, netns)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, netns, err)
	}
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, netns, err)
	}
	defer logf.Close()
	// Not CommandContext: the process outlives the call; Stop, Kill or Down end it.
	cmd := exec.Command(ipBin(), append([]string{"netns", "exec", netns}, argv...)...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s in %s: %w", name, netns, err)
	}
	st, _ := procStartTime(cmd.Process.Pid)
	p := &Proc{lab: l, cmd: cmd, done: make(chan struct{}), rec: procRecord{
		Name: name, NetNS: netns, PID: cmd.Process.Pid, StartTime: st, Log: logPath,
		Argv: append([]string(nil), argv...), Env: append([]string(nil), env...),
	}}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	if err := l.addProc(p); err != nil {
		_ = p.Kill()
		return nil, fmt.Errorf("start %s in %s: %w", name, netns, err)
	}
	l.log.Debug("started", "proc", name, "netns", netns, "pid", p.rec.PID, "log", logPath)
	return p, nil
}

// addProc records p in the lab and saves the state.
func (l *Lab) addProc(p *Proc) error {
	l.mu.Lock()
	l.procs = append(l.procs, p)
	l.mu.Unlock()
	return l.save()
}

// stopAll stops procs in parallel (SIGTERM, SIGKILL after timeout).
func stopAll(procs []*Proc, timeout time.Duration) []error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
	)
	for _, p := range procs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := p.Stop(timeout); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errs
}

// isRecorded reports whether the recorded process still runs under its PID: the same start
// time (field 22 of /proc/PID/stat, unchanged by exec), and either the same program on its
// command line or still inside the lab namespace it was started in (a wrapper such as
// `sh -c 'exec …'` changes its command line). A reused PID is never taken for ours.
func isRecorded(r procRecord) bool {
	if r.PID <= 0 || len(r.Argv) == 0 {
		return false
	}
	st, err := procStartTime(r.PID)
	if err != nil || (r.StartTime != 0 && st != r.StartTime) {
		return false
	}
	return cmdlineMatches(r.PID, r.Argv[0], "") || (r.StartTime != 0 && r.NetNS != "" && inNetNS(r.PID, filepath.Join(netnsDir, r.NetNS)))
}

// inNetNS reports whether process pid is in the network namespace at nsPath.
func inNetNS(pid int, nsPath string) bool {
	var want, got syscall.Stat_t
	if syscall.Stat(nsPath, &want) != nil || syscall.Stat("/proc/"+strconv.Itoa(pid)+"/ns/net", &got) != nil {
		return false
	}
	return want.Dev == got.Dev && want.Ino == got.Ino
}

// cmdlineMatches reports whether /proc/PID/cmdline runs program (compared by base name) —
// or is still the `ip netns exec` about to exec it — and, when mustContain is set, has an
// argument containing it.
func cmdlineMatches(pid int, program, mustContain string) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return false
	}
	args := strings.Split(strings.TrimRight(string(b), "\x00"), "\x00")
	base := filepath.Base(args[0])
	ok := base == filepath.Base(program) ||
		(base == "ip" && len(args) > 4 && args[1] == "netns" && args[2] == "exec" && filepath.Base(args[4]) == filepath.Base(program))
	if !ok || mustContain == "" {
		return ok
	}
	return bytes.Contains(b, []byte(mustContain))
}

// procStartTime is field 22 of /proc/PID/stat (start time in clock ticks since boot); it tells
// a reused PID from ours. A zombie counts as gone.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	if f[0] == "Z" || f[0] == "X" {
		return 0, fmt.Errorf("pid %d has exited", pid)
	}
	return strconv.ParseUint(f[19], 10, 64)
}

// sameProcess reports whether pid runs and is the process that started at start.
func sameProcess(pid int, start uint64) bool {
	if pid <= 0 {
		return false
	}
	st, err := procStartTime(pid)
	return err == nil && (start == 0 || st == start)
}

// pidsInNetNS lists the processes whose network namespace is the one at nsPath.
func pidsInNetNS(nsPath string) []int {
	if _, err := os.Stat(nsPath); err != nil {
		return nil
	}
	entries, _ := os.ReadDir("/proc")
	var out []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if inNetNS(pid, nsPath) {
			if _, err := procStartTime(pid); err == nil { // skip zombies
				out = append(out, pid)
			}
		}
	}
	return out
}

// describePID is "pid N (cmdline)" for messages.
func describePID(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	cmd := strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))
	if len(cmd) > 100 {
		cmd = cmd[:100] + "…"
	}
	return fmt.Sprintf("pid %d (%s)", pid, cmd)
}

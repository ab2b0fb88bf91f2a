package lab

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Proc is a background process the lab started.
type Proc struct {
	rec  procRecord
	cmd  *exec.Cmd     // nil for a process known only from the state file
	done chan struct{} // closed when cmd has been waited for
	err  error
}

type procRecord struct {
	Name      string   `json:"name"`
	NetNS     string   `json:"netns"`
	PID       int      `json:"pid"`
	StartTime uint64   `json:"start_time"`
	Log       string   `json:"log"`
	Argv      []string `json:"argv"`
}

// PID is the process ID.
func (p *Proc) PID() int { return p.rec.PID }

// Name is the name the process was started under.
func (p *Proc) Name() string { return p.rec.Name }

// LogFile is where its stdout and stderr go.
func (p *Proc) LogFile() string { return p.rec.Log }

// Alive reports whether the process still runs (and is the one we started).
func (p *Proc) Alive() bool {
	if p.done != nil {
		select {
		case <-p.done:
			return false
		default:
			return true
		}
	}
	return sameProcess(p.rec.PID, p.rec.StartTime)
}

// Wait waits up to timeout for the process to exit and returns its exit error (nil for exit
// status 0).
func (p *Proc) Wait(timeout time.Duration) error {
	if p.done == nil {
		deadline := time.Now().Add(timeout)
		for p.Alive() {
			if time.Now().After(deadline) {
				return fmt.Errorf("%s (pid %d) still running after %s", p.rec.Name, p.rec.PID, timeout)
			}
			time.Sleep(20 * time.Millisecond)
		}
		return nil
	}
	select {
	case <-p.done:
		return p.err
	case <-time.After(timeout):
		return fmt.Errorf("%s (pid %d) still running after %s", p.rec.Name, p.rec.PID, timeout)
	}
}

// Kill sends SIGKILL (kill -9) and waits for the process to die.
func (p *Proc) Kill() error {
	if !p.Alive() {
		return nil
	}
	if err := syscall.Kill(p.rec.PID, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("kill %s (pid %d): %w", p.rec.Name, p.rec.PID, err)
	}
	_ = p.Wait(10 * time.Second)
	return nil
}

// Stop sends SIGTERM, then SIGKILL when the process has not exited after timeout.
func (p *Proc) Stop(timeout time.Duration) error {
	if !p.Alive() {
		return nil
	}
	if err := syscall.Kill(p.rec.PID, syscall.SIGTERM); err != nil && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("stop %s (pid %d): %w", p.rec.Name, p.rec.PID, err)
	}
	if p.Wait(timeout) == nil || !p.Alive() {
		return nil
	}
	return p.Kill()
}

// procStartTime is field 22 of /proc/PID/stat: it tells a reused PID from ours.
func procStartTime(pid int) (uint64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad stat for pid %d", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 20 {
		return 0, fmt.Errorf("bad stat for pid %d", pid)
	}
	if f[0] == "Z" {
		return 0, fmt.Errorf("pid %d is a zombie", pid)
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

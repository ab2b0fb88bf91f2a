package dockerlab

import (
	"bytes"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// proc identifies a process by PID and start time, so a recycled PID is never
// mistaken for (and never signalled as) the process we meant.
type proc struct {
	pid   int
	start uint64 // field 22 of /proc/PID/stat, clock ticks since boot
}

// procStat reads the state and start time of a process from /proc/PID/stat.
func procStat(pid int) (state byte, start uint64, err error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	return parseStat(b)
}

// parseStat parses /proc/PID/stat. The command name (field 2) may contain spaces and
// parentheses, so fields are counted after its last ')'.
func parseStat(b []byte) (state byte, start uint64, err error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, 0, fmt.Errorf("malformed stat %q", b)
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); field 22 (starttime) is f[19].
	if len(f) < 20 || len(f[0]) != 1 {
		return 0, 0, fmt.Errorf("malformed stat %q", b)
	}
	start, err = strconv.ParseUint(f[19], 10, 64)
	if err != nil {
		return 0, 0, fmt.Errorf("malformed stat starttime %q: %w", f[19], err)
	}
	return f[0][0], start, nil
}

// lookupProc returns the live process with this PID.
func lookupProc(pid int) (proc, bool) {
	state, start, err := procStat(pid)
	if err != nil || state == 'Z' || state == 'X' {
		return proc{}, false
	}
	return proc{pid: pid, start: start}, true
}

// alive reports whether p still runs: same PID, same start time, not a zombie.
func (p proc) alive() bool {
	state, start, err := procStat(p.pid)
	return err == nil && start == p.start && state != 'Z' && state != 'X'
}

// findProcs returns the live processes whose argv satisfies match.
func findProcs(match func(argv []string) bool) []proc {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var out []proc
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil || len(b) == 0 {
			continue
		}
		if !match(strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")) {
			continue
		}
		if p, ok := lookupProc(pid); ok {
			out = append(out, p)
		}
	}
	return out
}

// signalProcs sends sig to the processes that are still the ones we identified.
func signalProcs(procs []proc, sig syscall.Signal) {
	for _, p := range procs {
		if p.alive() {
			_ = syscall.Kill(p.pid, sig)
		}
	}
}

// waitGone waits up to timeout for the processes to exit and returns those still alive.
func waitGone(procs []proc, timeout time.Duration) []proc {
	deadline := time.Now().Add(timeout)
	for {
		alive := slices.DeleteFunc(slices.Clone(procs), func(p proc) bool { return !p.alive() })
		if len(alive) == 0 || time.Now().After(deadline) {
			return alive
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func pidList(procs []proc) []int {
	pids := make([]int, len(procs))
	for i, p := range procs {
		pids[i] = p.pid
	}
	return pids
}

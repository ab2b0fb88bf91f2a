package bench

import (
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ovsfabric/ovsfabric/lab"
)

// userHZ is the unit of the CPU times in /proc (USER_HZ, sysconf(_SC_CLK_TCK)): 100 on every
// Linux architecture this runs on.
const userHZ = 100

// parseProcStatTicks reads utime + stime (clock ticks) from a /proc/PID/stat text. The command
// name in parentheses may hold spaces and parentheses, so the fields are counted after the
// last ')'.
func parseProcStatTicks(stat string) (uint64, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, errors.New("proc stat: no ')' after the command name")
	}
	f := strings.Fields(stat[i+1:])
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("proc stat: %d fields after the command name, want at least 13", len(f))
	}
	u, err := strconv.ParseUint(f[11], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("proc stat utime: %w", err)
	}
	s, err := strconv.ParseUint(f[12], 10, 64)
	if err != nil {
		return 0, fmt.Errorf("proc stat stime: %w", err)
	}
	return u + s, nil
}

// parseSystemCPU reads the machine-wide "cpu" line of /proc/stat: busy and total ticks, where
// idle and iowait count as not busy (guest time is already inside user and nice).
func parseSystemCPU(stat string) (busy, total uint64, err error) {
	for _, line := range strings.Split(stat, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "cpu" {
			continue
		}
		if len(f) < 5 {
			return 0, 0, fmt.Errorf("/proc/stat cpu line: %d fields", len(f))
		}
		var idle uint64
		for i, s := range f[1:min(len(f), 9)] { // user nice system idle iowait irq softirq steal
			v, err := strconv.ParseUint(s, 10, 64)
			if err != nil {
				return 0, 0, fmt.Errorf("/proc/stat cpu line: %w", err)
			}
			if total+v < total {
				return 0, 0, errors.New("/proc/stat cpu line: counters overflow")
			}
			total += v
			if i == 3 || i == 4 {
				idle += v
			}
		}
		return total - idle, total, nil
	}
	return 0, 0, errors.New("/proc/stat: no cpu line")
}

// cpuSample is a reading of the CPU time of some processes and of the whole machine.
type cpuSample struct {
	at                time.Time
	procTicks         uint64
	sysBusy, sysTotal uint64
}

// cpuUse is what happened between two samples.
type cpuUse struct {
	// ProcCores is the processes' CPU time per wall-clock second (1 = one core busy).
	ProcCores float64
	// MachineBusy is the fraction of all the machine's CPU time that was busy.
	MachineBusy float64
}

// use computes the CPU use from a to b; NaN where the samples cannot tell.
func use(a, b cpuSample) cpuUse {
	u := cpuUse{ProcCores: math.NaN(), MachineBusy: math.NaN()}
	if wall := b.at.Sub(a.at).Seconds(); wall > 0 && b.procTicks >= a.procTicks {
		u.ProcCores = float64(b.procTicks-a.procTicks) / userHZ / wall
	}
	if b.sysTotal > a.sysTotal && b.sysBusy >= a.sysBusy {
		u.MachineBusy = float64(b.sysBusy-a.sysBusy) / float64(b.sysTotal-a.sysTotal)
	}
	return u
}

// vswitchdPIDs are the ovs-vswitchd processes of l's hosts, from their pidfiles.
func vswitchdPIDs(l *lab.Lab) []int {
	var pids []int
	for _, h := range l.Hosts {
		b, err := os.ReadFile(filepath.Join(h.Dir, "ovs-vswitchd.pid"))
		if err != nil {
			continue
		}
		if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
			pids = append(pids, pid)
		}
	}
	return pids
}

// sampleCPU reads the CPU time of pids (each checked to be an ovs-vswitchd, so that a reused
// PID is never counted) and of the machine.
func sampleCPU(pids []int) (cpuSample, error) { return sampleProcCPU("ovs-vswitchd", pids) }

// sampleProcCPU reads the CPU time of pids, each checked to be a process named comm, and of
// the machine.
func sampleProcCPU(comm string, pids []int) (cpuSample, error) {
	s := cpuSample{at: time.Now()}
	for _, pid := range pids {
		c, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		if err != nil {
			return s, fmt.Errorf("pid %d: %w", pid, err)
		}
		if got := strings.TrimSpace(string(c)); got != comm {
			return s, fmt.Errorf("pid %d is %q, not %s", pid, got, comm)
		}
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return s, fmt.Errorf("pid %d: %w", pid, err)
		}
		t, err := parseProcStatTicks(string(b))
		if err != nil {
			return s, fmt.Errorf("pid %d: %w", pid, err)
		}
		s.procTicks += t
	}
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return s, err
	}
	s.sysBusy, s.sysTotal, err = parseSystemCPU(string(b))
	return s, err
}

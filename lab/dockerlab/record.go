package dockerlab

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// recordFile is the name of the record a daemon keeps in its Dir (like a pidfile): Discover
// reads it when nobody else recorded the daemon.
const recordFile = "dockerlab.json"

// Record is what another process needs to stop a daemon and clean up after it once the
// process that started it has gone (the demo with KEEP=1, a crashed test): its directory,
// its cgroup parent and the PIDs, with start times, of the containerd and dockerd it runs.
// Start hands it to Config.OnRecord and writes it to Dir/dockerlab.json.
type Record struct {
	// Dir is the daemon's directory (absolute).
	Dir string `json:"dir"`
	// NetNS is the namespace file the daemon runs in ("" for the caller's).
	NetNS string `json:"netns,omitempty"`
	// CgroupParent is dockerd's --cgroup-parent, e.g. /ovsfabric-dockerlab-0a1b2c3d.
	CgroupParent string `json:"cgroup_parent"`
	// Procs are the daemons started so far, containerd first.
	Procs []ProcRecord `json:"procs,omitempty"`
}

// ProcRecord identifies a daemon process: its PID and start time (field 22 of
// /proc/PID/stat), so that a reused PID is never taken for it.
type ProcRecord struct {
	Name      string `json:"name"`
	PID       int    `json:"pid"`
	StartTime uint64 `json:"start_time"`
}

// Record returns the daemon's current record.
func (d *Daemon) Record() Record {
	rec := Record{Dir: d.dir, NetNS: d.netns, CgroupParent: d.cgParent}
	for _, c := range []*child{d.containerd, d.dockerd} {
		if c == nil {
			continue
		}
		rec.Procs = append(rec.Procs, ProcRecord{Name: c.name, PID: c.pid(), StartTime: c.start})
	}
	return rec
}

// saveRecord writes Dir/dockerlab.json and hands the record to the OnRecord hook.
func (d *Daemon) saveRecord() error {
	rec := d.Record()
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return fmt.Errorf("dockerlab: record: %w", err)
	}
	if err := os.WriteFile(d.path(recordFile), append(b, '\n'), 0o600); err != nil {
		return fmt.Errorf("dockerlab: record: %w", err)
	}
	if d.onRecord != nil {
		if err := d.onRecord(rec); err != nil {
			return fmt.Errorf("dockerlab: record: %w", err)
		}
	}
	return nil
}

// Discover finds the daemon that runs, or ran, in dir: from dir/dockerlab.json, or — for a
// daemon started before records existed — from the processes whose command line names
// dir (dockerd's --data-root, containerd's --config). It reports false when there is no
// trace of a daemon (no record, no such process, no dir).
func Discover(dir string) (Record, bool) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return Record{}, false
	}
	rec := Record{Dir: dir}
	if b, err := os.ReadFile(filepath.Join(dir, recordFile)); err == nil {
		if json.Unmarshal(b, &rec) == nil && rec.Dir == dir {
			return rec, true
		}
		rec = Record{Dir: dir}
	}
	cfg := filepath.Join(dir, "containerd", "config.toml")
	data := filepath.Join(dir, "data")
	found := false
	for _, p := range findProcs(func(argv []string) bool {
		return (filepath.Base(argv[0]) == "containerd" && slices.Contains(argv, cfg)) ||
			(filepath.Base(argv[0]) == "dockerd" && slices.Contains(argv, data))
	}) {
		argv := cmdline(p.pid)
		name := filepath.Base(argv[0])
		rec.Procs = append(rec.Procs, ProcRecord{Name: name, PID: p.pid, StartTime: p.start})
		if i := slices.Index(argv, "--cgroup-parent"); name == "dockerd" && i >= 0 && i+1 < len(argv) {
			rec.CgroupParent = argv[i+1]
		}
		found = true
	}
	if _, err := os.Stat(dir); err == nil {
		found = true
	}
	return rec, found
}

// cmdline is /proc/PID/cmdline split into arguments (nil when gone).
func cmdline(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil || len(b) == 0 {
		return nil
	}
	return strings.Split(strings.TrimSuffix(string(b), "\x00"), "\x00")
}

// Cleanup stops the daemon rec describes and removes everything it left, as Stop does, from
// another process than the one that started it: containers through the API while dockerd
// still answers, dockerd and containerd by recorded PID (checked by start time: a reused PID
// is never signalled), then the shims and container processes, the mounts below Dir, the
// cgroups, Dir. It is idempotent: a daemon already stopped leaves nothing to do.
func Cleanup(ctx context.Context, rec Record, log *slog.Logger) error {
	if rec.Dir == "" || !filepath.IsAbs(rec.Dir) {
		return fmt.Errorf("dockerlab: cleanup: record without an absolute Dir: %q", rec.Dir)
	}
	if rec.CgroupParent != "" && !strings.HasPrefix(rec.CgroupParent, "/ovsfabric-dockerlab-") {
		return fmt.Errorf("dockerlab: cleanup: cgroup parent %q is not a dockerlab one", rec.CgroupParent)
	}
	if log == nil {
		log = slog.Default()
	}
	d := &Daemon{dir: rec.Dir, netns: rec.NetNS, cgParent: rec.CgroupParent, log: log.With("dockerlab", rec.Dir)}
	d.env = append(cleanEnv(), "DOCKER_CONFIG="+d.path("cli"))
	for _, p := range rec.Procs {
		pr := proc{pid: p.PID, start: p.StartTime}
		if p.StartTime == 0 || !pr.alive() {
			continue
		}
		switch p.Name {
		case "dockerd":
			d.adoptedDockerd = &pr
		case "containerd":
			d.adoptedContainerd = &pr
		}
	}
	// The shared directories are released like a stopping daemon's: removed when no running
	// dockerlab daemon holds the lock.
	if f, err := os.Open(sharedLockPath); err == nil {
		d.shared = &sharedDirs{lock: f}
	}
	return d.Stop(ctx)
}

// Process is a live process belonging to a daemon: dockerd, containerd, a shim, or a
// process of one of its containers.
type Process struct {
	Name string
	PID  int
}

// Processes lists the daemon's live processes: the recorded dockerd and containerd, the
// shims of its containerd, the processes in its cgroup parent.
func Processes(rec Record) []Process {
	d := &Daemon{dir: rec.Dir, cgParent: rec.CgroupParent}
	var out []Process
	seen := map[int]bool{}
	add := func(name string, p proc) {
		if !seen[p.pid] {
			seen[p.pid] = true
			out = append(out, Process{Name: name, PID: p.pid})
		}
	}
	for _, r := range rec.Procs {
		if p := (proc{pid: r.PID, start: r.StartTime}); r.StartTime != 0 && p.alive() {
			add(r.Name, p)
		}
	}
	for _, p := range d.shimProcs() {
		add("containerd-shim", p)
	}
	if rec.CgroupParent != "" {
		for _, p := range d.containerProcs() {
			add("container:"+comm(p.pid), p)
		}
	}
	return out
}

func comm(pid int) string {
	b, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/comm")
	return strings.TrimSpace(string(b))
}

// Leftovers lists what of the daemon still exists: its processes, mounts below Dir, its
// cgroups, Dir. Empty after a successful Stop or Cleanup.
func Leftovers(rec Record) []string {
	var out []string
	for _, p := range Processes(rec) {
		out = append(out, fmt.Sprintf("process %s (pid %d) of the dockerd in %s", p.Name, p.PID, rec.Dir))
	}
	if mounts, err := readMountinfo(); err == nil {
		for _, m := range mountsBelow(mounts, rec.Dir) {
			out = append(out, "mount "+m)
		}
	}
	if rec.CgroupParent != "" {
		for _, c := range cgroupDirs(rec.CgroupParent) {
			out = append(out, "cgroup "+c)
		}
	}
	if _, err := os.Stat(rec.Dir); err == nil {
		out = append(out, "directory "+rec.Dir)
	}
	return out
}

// HandCommands are the shell commands that finish by hand what Cleanup could not: kill
// what still runs, unmount what is mounted below Dir, remove the cgroups and Dir.
func HandCommands(rec Record) []string {
	var cmds []string
	var pids []string
	for _, p := range Processes(rec) {
		pids = append(pids, strconv.Itoa(p.PID))
	}
	if len(pids) > 0 {
		cmds = append(cmds, "kill -9 "+strings.Join(pids, " "))
	}
	if mounts, err := readMountinfo(); err == nil {
		for _, m := range mountsBelow(mounts, rec.Dir) {
			cmds = append(cmds, "umount -l "+shellQuote(m))
		}
	}
	if rec.CgroupParent != "" {
		for _, c := range cgroupDirs(rec.CgroupParent) {
			cmds = append(cmds, "rmdir "+shellQuote(c))
		}
	}
	if _, err := os.Stat(rec.Dir); err == nil {
		cmds = append(cmds, "rm -rf "+shellQuote(rec.Dir))
	}
	return cmds
}

// shellQuote quotes s for a POSIX shell when it holds anything but safe characters.
func shellQuote(s string) string {
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("/._-:+=,@%", r)) {
			safe = false
			break
		}
	}
	if safe && s != "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// stopAdopted stops a process this package did not start (found from a record): SIGTERM,
// SIGKILL after grace, each only while the PID still has the recorded start time.
func stopAdopted(name string, p *proc, grace time.Duration, log *slog.Logger) error {
	if p == nil || !p.alive() {
		return nil
	}
	signalProcs([]proc{*p}, syscall.SIGTERM)
	if len(waitGone([]proc{*p}, grace)) == 0 {
		return nil
	}
	log.Warn("process ignored SIGTERM; killing it", "process", name, "pid", p.pid, "after", grace)
	signalProcs([]proc{*p}, syscall.SIGKILL)
	if len(waitGone([]proc{*p}, processStopGrace)) > 0 {
		return fmt.Errorf("%s (pid %d) survived SIGKILL", name, p.pid)
	}
	return nil
}

// MountsBelow lists the mount points strictly below dir in this process's mount namespace,
// deepest first (the order to unmount them in).
func MountsBelow(dir string) ([]string, error) {
	mounts, err := readMountinfo()
	if err != nil {
		return nil, fmt.Errorf("reading mountinfo: %w", err)
	}
	return mountsBelow(mounts, dir), nil
}

// ShellQuote quotes s for a POSIX shell when it holds anything but safe characters, for
// commands printed to be run by hand.
func ShellQuote(s string) string { return shellQuote(s) }

package dockerlab

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// mountEntry is one line of /proc/self/mountinfo.
type mountEntry struct {
	root   string // root of the mount within its filesystem
	point  string // mount point
	fstype string
}

// readMountinfo parses /proc/self/mountinfo.
func readMountinfo() ([]mountEntry, error) {
	f, err := os.Open("/proc/self/mountinfo")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseMountinfo(f)
}

// parseMountinfo parses mountinfo(5) lines:
//
//	36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw,errors=continue
func parseMountinfo(r io.Reader) ([]mountEntry, error) {
	var out []mountEntry
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		pre, post, ok := strings.Cut(line, " - ")
		f := strings.Fields(pre)
		if !ok || len(f) < 5 {
			return nil, fmt.Errorf("malformed mountinfo line %q", line)
		}
		if _, err := strconv.Atoi(f[0]); err != nil {
			return nil, fmt.Errorf("malformed mountinfo line %q: %w", line, err)
		}
		fstype, _, _ := strings.Cut(post, " ")
		out = append(out, mountEntry{root: unescapeMount(f[3]), point: unescapeMount(f[4]), fstype: fstype})
	}
	return out, sc.Err()
}

// unescapeMount undoes the octal escapes (\040 for space, \011, \012, \134) the
// kernel uses in mountinfo paths.
func unescapeMount(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+4 <= len(s) {
			if v, err := strconv.ParseUint(s[i+1:i+4], 8, 8); err == nil {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// mountsBelow returns the mount points strictly below dir, deepest (most recently
// mounted) first, so that they can be unmounted in order.
func mountsBelow(mounts []mountEntry, dir string) []string {
	prefix := strings.TrimSuffix(dir, "/") + "/"
	var below []mountEntry
	for _, m := range mounts {
		if strings.HasPrefix(m.point, prefix) {
			below = append(below, m)
		}
	}
	// A mount's point lies at or below its parent's, so longer paths first unmounts
	// children before parents. Mount IDs are recycled and say nothing about order;
	// mounts stacked on one point appear once each and are unmounted top first.
	slices.SortStableFunc(below, func(a, b mountEntry) int { return len(b.point) - len(a.point) })
	points := make([]string, len(below))
	for i, m := range below {
		points[i] = m.point
	}
	return points
}

// unmountBelow unmounts everything mounted strictly below dir in our mount namespace.
func unmountBelow(dir string, log *slog.Logger) error {
	for pass := 0; pass < 8; pass++ {
		mounts, err := readMountinfo()
		if err != nil {
			return fmt.Errorf("reading mountinfo: %w", err)
		}
		points := mountsBelow(mounts, dir)
		if len(points) == 0 {
			return nil
		}
		for _, p := range points {
			if err := syscall.Unmount(p, 0); err != nil {
				if derr := syscall.Unmount(p, syscall.MNT_DETACH); derr != nil && !errors.Is(derr, syscall.EINVAL) {
					log.Warn("unmount failed", "path", p, "err", derr)
					continue
				}
			}
			log.Info("unmounted leftover mount", "path", p)
		}
	}
	mounts, err := readMountinfo()
	if err != nil {
		return fmt.Errorf("reading mountinfo: %w", err)
	}
	if left := mountsBelow(mounts, dir); len(left) > 0 {
		return fmt.Errorf("mounts left below %s: %v", dir, left)
	}
	return nil
}

// cgroupMountPoints are the mount points of the cgroup (v1) and cgroup2 hierarchies.
func cgroupMountPoints() []string {
	mounts, err := readMountinfo()
	if err != nil {
		return nil
	}
	var points []string
	for _, m := range mounts {
		if (m.fstype == "cgroup" || m.fstype == "cgroup2") && m.root == "/" {
			points = append(points, m.point)
		}
	}
	return points
}

// cgroupDirs returns parent (an absolute cgroup path) and its descendants in every
// hierarchy where it exists, deepest first.
func cgroupDirs(parent string) []string {
	// Only a dockerlab cgroup parent: an empty or foreign one would name other cgroups, or
	// the whole hierarchy, and what is in them would be killed and removed.
	if !strings.HasPrefix(parent, cgroupParentPrefix) || strings.Contains(parent, "..") {
		return nil
	}
	var dirs []string
	for _, mp := range cgroupMountPoints() {
		root := filepath.Join(mp, parent)
		_ = filepath.WalkDir(root, func(path string, e fs.DirEntry, err error) error {
			if err == nil && e.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
	}
	slices.SortStableFunc(dirs, func(a, b string) int { return strings.Count(b, "/") - strings.Count(a, "/") })
	return dirs
}

// cgroupPids returns the PIDs in parent and below, in any hierarchy.
func cgroupPids(parent string) []int {
	seen := map[int]bool{}
	var pids []int
	for _, dir := range cgroupDirs(parent) {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, s := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(s); err == nil && !seen[pid] {
				seen[pid] = true
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// removeCgroups removes parent and its descendants in every hierarchy. A cgroup can
// be removed with rmdir once it has no processes and no children.
func removeCgroups(parent string) error {
	var errs []error
	for _, dir := range cgroupDirs(parent) {
		if err := os.Remove(dir); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing cgroup %s: %w", dir, err))
		}
	}
	return errors.Join(errs...)
}

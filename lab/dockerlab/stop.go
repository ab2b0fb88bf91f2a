package dockerlab

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// Stop tears the daemon down and leaves nothing behind: it removes every container in
// the daemon (all of them were made for this daemon), stops dockerd (SIGTERM, SIGKILL
// after a timeout) and containerd, kills by PID the shims and container processes that
// are still alive, unmounts what is left below Dir, removes the daemon's cgroups, the
// shim sockets and Dir. ctx bounds only the graceful part (removing containers through
// the API, at most a minute; a ctx that is already done gets that minute too); the
// forced cleanup always runs. Stop is idempotent and copes with a
// partially started daemon; the error lists everything that could not be cleaned up.
func (d *Daemon) Stop(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopped {
		return d.stopErr
	}
	d.stopped = true
	began := time.Now()
	var errs []error

	// 1. Containers, through the API while dockerd is alive: this lets dockerd,
	// containerd and the shims unmount and delete everything themselves.
	if (d.dockerd != nil && !d.dockerd.exited()) || (d.adoptedDockerd != nil && d.adoptedDockerd.alive()) {
		if err := d.removeAllContainers(ctx); err != nil {
			d.log.Warn("removing containers through the API failed; killing them", "err", err)
		}
	}

	// 2. dockerd. Everything it started through containerd is found below.
	if d.dockerd != nil {
		if err := d.stopChild(d.dockerd, dockerdStopGrace); err != nil {
			errs = append(errs, err)
		}
	}
	if err := stopAdopted("dockerd", d.adoptedDockerd, dockerdStopGrace, d.log); err != nil {
		errs = append(errs, err)
	}

	// 3. Whatever survived: container processes (members of our cgroup parent) and
	// the shims of our containerd (they carry "-address <our socket>", and are
	// reparented away from containerd, so they are found through /proc). Container
	// processes first, so shims do not see them die and try to restart anything.
	leftovers := d.containerProcs()
	if len(leftovers) > 0 {
		d.log.Warn("container processes still alive after dockerd stopped; killing them", "pids", pidList(leftovers))
		signalProcs(leftovers, syscall.SIGKILL)
		if alive := waitGone(leftovers, processStopGrace); len(alive) > 0 {
			errs = append(errs, fmt.Errorf("container processes %v survived SIGKILL", pidList(alive)))
		}
	}
	if shims := d.shimProcs(); len(shims) > 0 {
		d.log.Warn("containerd shims still alive after dockerd stopped; stopping them", "pids", pidList(shims))
		signalProcs(shims, syscall.SIGTERM)
		if alive := waitGone(shims, processStopGrace); len(alive) > 0 {
			signalProcs(alive, syscall.SIGKILL)
			if alive = waitGone(alive, processStopGrace); len(alive) > 0 {
				errs = append(errs, fmt.Errorf("containerd shims %v survived SIGKILL", pidList(alive)))
			}
		}
	}

	// 4. containerd.
	if d.containerd != nil {
		if err := d.stopChild(d.containerd, processStopGrace); err != nil {
			errs = append(errs, err)
		}
	}
	if err := stopAdopted("containerd", d.adoptedContainerd, processStopGrace, d.log); err != nil {
		errs = append(errs, err)
	}

	// 5. Mounts below Dir (dockerd's data-root bind mount, overlay rootfs, netns
	// bind mounts: all gone after a clean shutdown, left behind after a SIGKILL).
	if err := unmountBelow(d.dir, d.log); err != nil {
		errs = append(errs, err)
	}

	// 6. The cgroup parent of our containers, in every hierarchy.
	if err := removeCgroups(d.cgParent); err != nil {
		errs = append(errs, err)
	}

	// 7. Shim sockets outside Dir (/run/containerd/s/<hash>), when a shim died
	// without removing its socket. Their bundles below Dir name them.
	d.removeShimSockets()

	// 8. The shared directories, if we are the last dockerlab daemon.
	if d.shared != nil {
		if err := d.shared.release(d.log); err != nil {
			errs = append(errs, err)
		}
	}

	// 9. Dir.
	if err := os.RemoveAll(d.dir); err != nil {
		errs = append(errs, fmt.Errorf("removing %s: %w", d.dir, err))
	}

	if len(errs) > 0 {
		d.stopErr = fmt.Errorf("dockerlab: stopping the daemon in %s: %w", d.dir, errors.Join(errs...))
		d.log.Error("docker daemon stopped with leftovers", "err", d.stopErr)
	} else {
		d.log.Info("docker daemon stopped and cleaned up", "took", time.Since(began).Round(time.Millisecond))
	}
	return d.stopErr
}

// removeAllContainers removes every container in the daemon through the API.
func (d *Daemon) removeAllContainers(ctx context.Context) error {
	if ctx.Err() != nil {
		// Already done (say, t.Context() in a cleanup): still try, within the
		// timeout, as the graceful way leaves the least to force.
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, removeContainersT)
	defer cancel()
	out, err := d.docker(ctx, nil, "ps", "--all", "--quiet", "--no-trunc")
	if err != nil {
		return err
	}
	ids := strings.Fields(out)
	if len(ids) == 0 {
		return nil
	}
	_, err = d.docker(ctx, nil, append([]string{"rm", "--force", "--volumes"}, ids...)...)
	if err == nil {
		d.log.Debug("removed containers", "count", len(ids))
	}
	return err
}

// stopChild stops a process this package started: SIGTERM, then SIGKILL after grace.
// It returns an error only when the process could not be stopped at all.
func (d *Daemon) stopChild(c *child, grace time.Duration) error {
	if c == nil || c.exited() {
		return nil
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		d.log.Warn("SIGTERM failed", "process", c.name, "pid", c.pid(), "err", err)
	}
	select {
	case <-c.done:
		return nil
	case <-time.After(grace):
	}
	d.log.Warn("process ignored SIGTERM; killing it", "process", c.name, "pid", c.pid(), "after", grace)
	if err := c.cmd.Process.Kill(); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("killing %s (pid %d): %w", c.name, c.pid(), err)
	}
	select {
	case <-c.done:
		return nil
	case <-time.After(processStopGrace):
		return fmt.Errorf("%s (pid %d) survived SIGKILL", c.name, c.pid())
	}
}

// containerProcs are the live processes in the daemon's cgroup parent.
func (d *Daemon) containerProcs() []proc {
	var procs []proc
	for _, pid := range cgroupPids(d.cgParent) {
		if p, ok := lookupProc(pid); ok {
			procs = append(procs, p)
		}
	}
	return procs
}

// shimProcs are the live containerd shims serving our containerd: their command line
// holds "-address <our containerd socket>", a path nobody else uses.
func (d *Daemon) shimProcs() []proc {
	sock := d.ctrdSocket()
	return findProcs(func(argv []string) bool {
		if len(argv) == 0 || !strings.HasPrefix(filepath.Base(argv[0]), "containerd-shim") {
			return false
		}
		for i, a := range argv {
			if (a == "-address" || a == "--address") && i+1 < len(argv) && argv[i+1] == sock {
				return true
			}
		}
		return false
	})
}

// removeShimSockets removes the sockets named in the task bundles of our containerd
// when they still exist after their shims are gone.
func (d *Daemon) removeShimSockets() {
	files, _ := filepath.Glob(filepath.Join(d.ctrdState(), "io.containerd.runtime.v2.task", "*", "*", "address"))
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		sock := strings.TrimPrefix(strings.TrimSpace(string(b)), "unix://")
		if !strings.HasPrefix(sock, "/run/containerd/s/") {
			continue
		}
		if fi, err := os.Lstat(sock); err == nil && fi.Mode()&os.ModeSocket != 0 {
			if err := os.Remove(sock); err == nil {
				d.log.Debug("removed stale shim socket", "path", sock)
			}
		}
	}
}

// RestartDockerd stops dockerd (SIGTERM: it stops its containers, as on a host's docker
// restart) and starts it again with the same configuration and containerd, waiting until
// its API answers. Containers with a restart policy come back as dockerd starts.
func (d *Daemon) RestartDockerd(ctx context.Context) error {
	d.mu.Lock()
	stopped := d.stopped
	d.mu.Unlock()
	if stopped || d.dockerd == nil {
		return errors.New("dockerlab: RestartDockerd: the daemon is not running")
	}
	if err := d.stopChild(d.dockerd, dockerdStopGrace); err != nil {
		return fmt.Errorf("dockerlab: stopping dockerd: %w", err)
	}
	return d.startDockerd(ctx)
}

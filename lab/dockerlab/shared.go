package dockerlab

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"syscall"
)

// sharedDirPaths are directories outside Dir that the binaries hard-code: dockerd's
// plugin exec root (/run/docker/plugins) and the directory of the containerd shims'
// sockets (/run/containerd/s). Parents come before children.
var sharedDirPaths = []string{"/run/docker", "/run/docker/plugins", "/run/containerd", "/run/containerd/s"}

// sharedMarkXattr marks a shared directory that a dockerlab daemon created, so that
// the last dockerlab daemon to stop (in any process) may remove it again.
const sharedMarkXattr = "trusted.ovsfabric-dockerlab"

// sharedLockPath is flock'ed: shared by every running dockerlab daemon on the machine,
// exclusive by the one removing the shared directories. The directory itself is
// locked, so no lock file is ever created.
const sharedLockPath = "/run"

// sharedDirs is a running daemon's hold on the shared directories.
type sharedDirs struct {
	lock *os.File
}

// acquireSharedDirs takes the shared lock and creates (and marks) the shared
// directories that do not exist yet.
func acquireSharedDirs() (*sharedDirs, error) {
	f, err := os.Open(sharedLockPath)
	if err != nil {
		return nil, fmt.Errorf("shared dirs lock: %w", err)
	}
	// Blocks only while a stopping daemon removes the directories.
	if err := flock(f, syscall.LOCK_SH); err != nil {
		f.Close()
		return nil, fmt.Errorf("shared dirs lock %s: %w", sharedLockPath, err)
	}
	for _, p := range sharedDirPaths {
		err := os.Mkdir(p, 0o700)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("creating %s: %w", p, err)
		}
		// Ours: mark it. Without the mark it is merely never removed.
		_ = syscall.Setxattr(p, sharedMarkXattr, []byte("1"), 0)
	}
	return &sharedDirs{lock: f}, nil
}

// release drops the daemon's hold. If no other dockerlab daemon holds the lock, it
// removes the marked shared directories that are empty.
func (s *sharedDirs) release(log *slog.Logger) error {
	if s.lock == nil {
		return nil
	}
	defer func() {
		s.lock.Close() // releases the lock
		s.lock = nil
	}()
	if err := flock(s.lock, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		if errors.Is(err, syscall.EWOULDBLOCK) {
			log.Debug("other dockerlab daemons are running; leaving the shared directories to them")
			return nil
		}
		return fmt.Errorf("shared dirs lock %s: %w", sharedLockPath, err)
	}
	var errs []error
	for _, p := range slices.Backward(sharedDirPaths) {
		if !marked(p) || !emptyDir(p) {
			continue
		}
		if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("removing %s: %w", p, err))
			continue
		}
		log.Debug("removed shared directory", "path", p)
	}
	return errors.Join(errs...)
}

func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

func marked(path string) bool {
	buf := make([]byte, 8)
	_, err := syscall.Getxattr(path, sharedMarkXattr, buf)
	return err == nil
}

func emptyDir(path string) bool {
	f, err := os.Open(path)
	if err != nil {
		return false
	}
	defer f.Close()
	_, err = f.Readdirnames(1)
	return errors.Is(err, io.EOF)
}

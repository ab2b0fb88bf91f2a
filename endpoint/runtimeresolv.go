package endpoint

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"golang.org/x/sys/unix"
)

// A Docker or Podman container reads the resolv.conf its runtime keeps for it (Docker:
// DATA-ROOT/containers/ID/resolv.conf, Podman: .../overlay-containers/ID/userdata/resolv.conf),
// bind-mounted over its /etc/resolv.conf. Attach points that file at the fabric DNS and keeps
// the runtime's version next to it (runtimeBackup); detach, and the pruning of a stopped
// container, put it back. The file is rewritten in place: a bind mount pins the inode, so a
// rename would not reach the running container; the backup, which nothing mounts, is written
// atomically (temporary file and rename) before the file is touched.

// runtimeBackup is the name of the copy of the runtime's own resolv.conf, in its directory.
const runtimeBackup = "resolv.conf.ovsfabric-orig"

// maxResolvConf bounds what is read of a runtime's resolv.conf (they are a few lines).
const maxResolvConf = 64 << 10

// checkRuntimeResolvConf accepts only what a container runtime names as a container's
// resolv.conf: an absolute, clean path to a file named resolv.conf in a directory tree that
// carries the container's full ID as one of its components. Anything else — a path outside
// the runtime's per-container directory — is never written.
func checkRuntimeResolvConf(path, id string) error {
	if !filepath.IsAbs(path) || filepath.Clean(path) != path || strings.ContainsRune(path, 0) {
		return fmt.Errorf("resolv.conf path %q is not an absolute, clean path", path)
	}
	if filepath.Base(path) != "resolv.conf" {
		return fmt.Errorf("resolv.conf path %q does not name a resolv.conf", path)
	}
	if len(id) < 12 || !slices.Contains(strings.Split(filepath.Dir(path), "/"), id) {
		return fmt.Errorf("resolv.conf path %q is not in the directory of container %q", path, id)
	}
	return nil
}

// openRuntimeDir opens the directory of a runtime's resolv.conf without following any
// symbolic link on the way (openat2 RESOLVE_NO_SYMLINKS), so a link planted in the
// container's directory cannot lead the writes elsewhere.
func openRuntimeDir(path, id string) (*os.File, error) {
	if err := checkRuntimeResolvConf(path, id); err != nil {
		return nil, err
	}
	dir := filepath.Dir(path)
	fd, err := unix.Openat2(unix.AT_FDCWD, dir, &unix.OpenHow{
		Flags:   unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC,
		Resolve: unix.RESOLVE_NO_SYMLINKS | unix.RESOLVE_NO_MAGICLINKS,
	})
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", dir, err)
	}
	return os.NewFile(uintptr(fd), dir), nil
}

// openIn opens name in dir (not following a symbolic link) and checks it is a regular file.
func openIn(dir *os.File, name string, flags int) (*os.File, error) {
	fd, err := unix.Openat(int(dir.Fd()), name, flags|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", filepath.Join(dir.Name(), name), err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir.Name(), name))
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		_ = f.Close()
		return nil, fmt.Errorf("%s is not a regular file", f.Name())
	}
	return f, nil
}

func readAll(f *os.File) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(io.NewSectionReader(f, 0, maxResolvConf+1), maxResolvConf+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", f.Name(), err)
	}
	if len(b) > maxResolvConf {
		return nil, fmt.Errorf("%s is over %d bytes", f.Name(), maxResolvConf)
	}
	return b, nil
}

// rewriteInPlace replaces f's content by body: one write at offset 0, then the length, then
// fsync (see the package note on why not a rename).
func rewriteInPlace(f *os.File, body []byte) error {
	if _, err := f.WriteAt(body, 0); err != nil {
		return fmt.Errorf("write %s: %w", f.Name(), err)
	}
	if err := f.Truncate(int64(len(body))); err != nil {
		return fmt.Errorf("truncate %s: %w", f.Name(), err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("sync %s: %w", f.Name(), err)
	}
	return nil
}

// writeAtomic writes name in dir through a temporary file and a rename.
func writeAtomic(dir *os.File, name string, body []byte) error {
	tmp := name + ".tmp"
	dfd := int(dir.Fd())
	_ = unix.Unlinkat(dfd, tmp, 0) // a crash's leftover; never a directory (flags 0)
	fd, err := unix.Openat(dfd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("create %s: %w", filepath.Join(dir.Name(), tmp), err)
	}
	f := os.NewFile(uintptr(fd), filepath.Join(dir.Name(), tmp))
	_, err = f.Write(body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = unix.Renameat(dfd, tmp, dfd, name)
	}
	if err != nil {
		_ = unix.Unlinkat(dfd, tmp, 0)
		return fmt.Errorf("write %s: %w", filepath.Join(dir.Name(), name), err)
	}
	return nil
}

// runtimeResolvBody is the resolv.conf fabricd gives a container: the mark, the fabric DNS
// and the search domains of the runtime's own file.
func runtimeResolvBody(gw string, orig []byte) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s\nnameserver %s\n", resolvMark, gw)
	sc := bufio.NewScanner(bytes.NewReader(orig))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) > 1 && (f[0] == "search" || f[0] == "domain") {
			b.WriteString(strings.Join(f, " ") + "\n")
		}
	}
	b.WriteString("options ndots:0\n")
	return b.Bytes()
}

// writeRuntimeResolvConf points a Docker/Podman container's resolv.conf at gw, keeping the
// runtime's own version as runtimeBackup (once: a file that is ours already is only
// rewritten). It reports the file written.
func (m *Manager) writeRuntimeResolvConf(r Record, gw string) (string, error) {
	dir, err := openRuntimeDir(r.ResolvConf, r.ID)
	if err != nil {
		return "", err
	}
	defer dir.Close()
	f, err := openIn(dir, "resolv.conf", unix.O_RDWR)
	if err != nil {
		return "", err
	}
	defer f.Close()
	cur, err := readAll(f)
	if err != nil {
		return "", err
	}
	orig := cur
	if bytes.HasPrefix(cur, []byte(resolvMark)) {
		// Ours already (a second network, a re-attach after a restart): the backup holds the
		// runtime's version.
		if bf, err := openIn(dir, runtimeBackup, unix.O_RDONLY); err == nil {
			orig, err = readAll(bf)
			_ = bf.Close()
			if err != nil {
				return "", err
			}
		}
	} else if err := writeAtomic(dir, runtimeBackup, cur); err != nil {
		return "", err
	}
	if err := rewriteInPlace(f, runtimeResolvBody(gw, orig)); err != nil {
		return "", err
	}
	return r.ResolvConf, nil
}

// restoreRuntimeResolvConf puts back the runtime's own resolv.conf of r's container and
// removes the backup. A file the runtime rewrote meanwhile (the container restarted) is
// left as it is; a container that is gone has nothing left to restore.
func (m *Manager) restoreRuntimeResolvConf(r Record) error {
	dir, err := openRuntimeDir(r.ResolvConf, r.ID)
	if errors.Is(err, unix.ENOENT) {
		return nil
	} else if err != nil {
		return err
	}
	defer dir.Close()
	bf, err := openIn(dir, runtimeBackup, unix.O_RDONLY)
	if errors.Is(err, unix.ENOENT) {
		return nil // never written, or restored already
	} else if err != nil {
		return err
	}
	orig, err := readAll(bf)
	_ = bf.Close()
	if err != nil {
		return err
	}
	f, err := openIn(dir, "resolv.conf", unix.O_RDWR)
	if err != nil && !errors.Is(err, unix.ENOENT) {
		return err
	}
	if f != nil {
		defer f.Close()
		cur, err := readAll(f)
		if err != nil {
			return err
		}
		if bytes.HasPrefix(cur, []byte(resolvMark)) {
			if err := rewriteInPlace(f, orig); err != nil {
				return err
			}
		}
	}
	if err := unix.Unlinkat(int(dir.Fd()), runtimeBackup, 0); err != nil && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("remove %s: %w", filepath.Join(dir.Name(), runtimeBackup), err)
	}
	return nil
}

package dockerlab

import (
	"archive/tar"
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path"
	"strconv"
	"strings"
	"time"
)

// containerLabel marks the containers Run creates.
const containerLabel = "ovsfabric.dockerlab=1"

// docker runs the docker CLI against the daemon and returns its trimmed stdout. The
// error carries the command and its stderr.
func (d *Daemon) docker(ctx context.Context, stdin io.Reader, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", append([]string{"--host", d.Host()}, args...)...)
	cmd.Env = d.env
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(stdout.String()), nil
}

// ImportBusybox makes BusyboxImage from the host's static busybox (a rootfs with
// busybox and a symlink per applet: sh, ping, nc, ip, ifconfig, sleep, wget, httpd,
// ...) with `docker import`, and returns its name. It is idempotent: an existing image
// is kept.
func (d *Daemon) ImportBusybox(ctx context.Context) (string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.imported {
		return BusyboxImage, nil
	}
	if _, err := d.docker(ctx, nil, "image", "inspect", "--format", "{{.Id}}", BusyboxImage); err == nil {
		d.imported = true
		return BusyboxImage, nil
	}
	began := time.Now()
	rootfs, err := busyboxRootfs()
	if err != nil {
		return "", fmt.Errorf("dockerlab: building the busybox rootfs: %w", err)
	}
	id, err := d.docker(ctx, bytes.NewReader(rootfs), "import",
		"--change", `ENV PATH=/usr/sbin:/usr/bin:/sbin:/bin`,
		"--change", `CMD ["sh"]`,
		"--change", `LABEL ovsfabric.dockerlab=busybox`,
		"-", BusyboxImage)
	if err != nil {
		return "", fmt.Errorf("dockerlab: importing %s: %w", BusyboxImage, err)
	}
	d.imported = true
	d.log.Info("imported image", "image", BusyboxImage, "id", id, "rootfs_bytes", len(rootfs), "took", time.Since(began).Round(time.Millisecond))
	return BusyboxImage, nil
}

// Run starts a detached container from BusyboxImage (imported first if needed) with
// `docker run -d --name NAME --hostname NAME --network none`, running args, or
// `sleep 1000000` when args is empty, and returns its ID. The container has only lo.
func (d *Daemon) Run(ctx context.Context, name string, args ...string) (string, error) {
	if name == "" {
		return "", errors.New("dockerlab: Run needs a container name")
	}
	image, err := d.ImportBusybox(ctx)
	if err != nil {
		return "", err
	}
	if len(args) == 0 {
		args = []string{"sleep", "1000000"}
	}
	runArgs := []string{"run", "--detach", "--pull", "never",
		"--name", name, "--hostname", name,
		"--network", "none",
		"--label", containerLabel,
		image}
	id, err := d.docker(ctx, nil, append(runArgs, args...)...)
	if err != nil {
		return "", fmt.Errorf("dockerlab: running container %s: %w", name, err)
	}
	return id, nil
}

// Pid returns the PID of the container's init process in the caller's PID namespace
// (State.Pid); its network namespace is /proc/PID/ns/net. It fails when the container
// is not running.
func (d *Daemon) Pid(ctx context.Context, name string) (int, error) {
	out, err := d.docker(ctx, nil, "inspect", "--type", "container", "--format", "{{.State.Pid}}", name)
	if err != nil {
		return 0, fmt.Errorf("dockerlab: inspecting container %s: %w", name, err)
	}
	pid, err := strconv.Atoi(out)
	if err != nil {
		return 0, fmt.Errorf("dockerlab: container %s: State.Pid %q: %w", name, out, err)
	}
	if pid <= 0 {
		return 0, fmt.Errorf("dockerlab: container %s is not running", name)
	}
	return pid, nil
}

// Exec runs cmd in the container (`docker exec`) and returns its combined output.
// On failure the error includes the output.
func (d *Daemon) Exec(ctx context.Context, name string, cmd ...string) (string, error) {
	if len(cmd) == 0 {
		return "", errors.New("dockerlab: Exec needs a command")
	}
	c := exec.CommandContext(ctx, "docker", append([]string{"--host", d.Host(), "exec", name}, cmd...)...)
	c.Env = d.env
	out, err := c.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("dockerlab: exec in %s: %s: %w: %s", name, strings.Join(cmd, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// busyboxPath is the host's busybox binary; it must be static to run in the image.
func busyboxPath() (string, error) {
	for _, p := range []string{"/bin/busybox", "/usr/bin/busybox"} {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() {
			return p, nil
		}
	}
	return "", errors.New("busybox not found (Debian: busybox-static)")
}

// checkStatic fails when the ELF binary at p asks for a program interpreter (is
// dynamically linked): the image has no libc.
func checkStatic(p string) error {
	f, err := elf.Open(p)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, prog := range f.Progs {
		if prog.Type == elf.PT_INTERP {
			return fmt.Errorf("%s is dynamically linked; install busybox-static", p)
		}
	}
	return nil
}

// busyboxRootfs builds the image's root filesystem as a tar archive: the usual
// directories, /bin/busybox, one symlink per applet at the path `busybox --list-full`
// gives, and minimal /etc files.
func busyboxRootfs() ([]byte, error) {
	bb, err := busyboxPath()
	if err != nil {
		return nil, err
	}
	if err := checkStatic(bb); err != nil {
		return nil, err
	}
	bin, err := os.ReadFile(bb)
	if err != nil {
		return nil, err
	}
	list, err := exec.Command(bb, "--list-full").Output()
	if err != nil {
		return nil, fmt.Errorf("%s --list-full: %w", bb, err)
	}

	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	mtime := time.Unix(0, 0)
	dirs := map[string]bool{}
	addDir := func(name string, mode int64) error {
		if dirs[name] {
			return nil
		}
		dirs[name] = true
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: mode, ModTime: mtime})
	}
	for _, dir := range []string{"bin", "sbin", "usr", "usr/bin", "usr/sbin", "etc", "dev", "proc", "sys", "root", "var", "run", "home"} {
		if err := addDir(dir, 0o755); err != nil {
			return nil, err
		}
	}
	for _, dir := range []string{"tmp", "var/tmp"} {
		if err := addDir(dir, 0o1777); err != nil {
			return nil, err
		}
	}
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "bin/busybox", Mode: 0o755, Size: int64(len(bin)), ModTime: mtime}); err != nil {
		return nil, err
	}
	if _, err := tw.Write(bin); err != nil {
		return nil, err
	}
	links := map[string]bool{"bin/busybox": true}
	addLink := func(name string) error {
		name = strings.TrimPrefix(path.Clean("/"+name), "/")
		if links[name] || !strings.Contains(name, "/") {
			return nil // the binary itself, duplicates, top-level oddities like linuxrc
		}
		links[name] = true
		if err := addDir(path.Dir(name), 0o755); err != nil {
			return err
		}
		return tw.WriteHeader(&tar.Header{Typeflag: tar.TypeSymlink, Name: name, Linkname: "/bin/busybox", Mode: 0o777, ModTime: mtime})
	}
	for _, name := range strings.Fields(string(list)) {
		if err := addLink(name); err != nil {
			return nil, err
		}
	}
	// Whatever this busybox lists, the lab relies on these.
	for _, name := range []string{"bin/sh", "bin/sleep", "bin/cat", "bin/hostname", "bin/ping", "sbin/ip", "sbin/ifconfig", "bin/nc", "usr/bin/wget", "usr/sbin/httpd"} {
		if err := addLink(name); err != nil {
			return nil, err
		}
	}
	files := map[string]string{
		"etc/passwd":   "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
		"etc/group":    "root:x:0:\nnogroup:x:65534:\n",
		"etc/hostname": "busybox\n",
	}
	for _, name := range []string{"etc/passwd", "etc/group", "etc/hostname"} {
		content := files[name]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: name, Mode: 0o644, Size: int64(len(content)), ModTime: mtime}); err != nil {
			return nil, err
		}
		if _, err := io.WriteString(tw, content); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// CLI runs the docker CLI against the daemon with args and returns its trimmed output.
func (d *Daemon) CLI(ctx context.Context, args ...string) (string, error) {
	return d.docker(ctx, nil, args...)
}

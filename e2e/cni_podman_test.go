package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
	"github.com/ovsfabric/ovsfabric/lab/labtest"
)

// podmanHost is a Podman (Debian's, CNI backend) of its own on a lab host: its storage,
// run and CNI configuration directories live in the test's temporary directory, and it runs
// inside the host's network namespace.
type podmanHost struct {
	host *lab.Host
	dir  string
	env  []string
}

// newPodman configures Podman on host h to find the plugin in kit.bin and the network
// configuration "fabric" (network default, fabricd's socket sock) in its own directory.
func newPodman(t *testing.T, kit *cniKit, h *lab.Host, sock string) *podmanHost {
	t.Helper()
	dir := t.TempDir()
	netDir := filepath.Join(dir, "net.d")
	if err := os.MkdirAll(netDir, 0o755); err != nil {
		t.Fatal(err)
	}
	// Podman 4.3 speaks CNI up to 1.0.0.
	conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": "fabric",
		"plugins": []map[string]any{{"type": "ovsfabric", "network": "default", "socket": sock,
			"capabilities": map[string]bool{"ips": true, "mac": true, "portMappings": true, "aliases": true}}}})
	if err := os.WriteFile(filepath.Join(netDir, "fabric.conflist"), conf, 0o644); err != nil {
		t.Fatal(err)
	}
	// Podman raises the container's open-files and process limits to values this machine
	// may not grant (runc: "error setting rlimit type 7"): ask for modest ones.
	cc := fmt.Sprintf(`[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
pids_limit = 0
[network]
network_backend = "cni"
cni_plugin_dirs = [%q]
network_config_dir = %q
[engine]
cgroup_manager = "cgroupfs"
events_logger = "file"
events_logfile_path = %q
tmp_dir = %q
static_dir = %q
volume_path = %q
`, kit.bin, netDir, filepath.Join(dir, "events.log"), filepath.Join(dir, "tmp"), filepath.Join(dir, "static"), filepath.Join(dir, "volumes"))
	if err := os.WriteFile(filepath.Join(dir, "containers.conf"), []byte(cc), 0o644); err != nil {
		t.Fatal(err)
	}
	p := &podmanHost{host: h, dir: dir, env: []string{"CONTAINERS_CONF=" + filepath.Join(dir, "containers.conf")}}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if out, err := p.run(ctx, "rm", "-f", "-a", "-t", "0"); err != nil {
			t.Errorf("podman rm: %v: %s", err, out)
		}
		_, _ = p.run(ctx, "system", "reset", "-f")
	})
	return p
}

// run runs podman with this host's storage and configuration in the host's netns. It joins
// only the netns (nsenter, not `ip netns exec`): the container namespaces Podman mounts
// under /run/netns must be visible to fabricd, which `ip netns exec`'s private mount
// namespace would hide.
func (p *podmanHost) run(ctx context.Context, args ...string) (string, error) {
	argv := append([]string{"--net=" + p.host.NetNSPath(), "podman",
		"--root", filepath.Join(p.dir, "root"), "--runroot", filepath.Join(p.dir, "run"),
		"--storage-driver", "vfs", "--tmpdir", filepath.Join(p.dir, "tmp")}, args...)
	cmd := exec.CommandContext(ctx, "nsenter", argv...)
	cmd.Env = append(os.Environ(), p.env...)
	out, err := cmd.CombinedOutput()
	return strings.TrimSpace(string(out)), err
}

// importBusybox imports a busybox rootfs (Debian's busybox-static) as the image "busybox".
func (p *podmanHost) importBusybox(t *testing.T, ctx context.Context) {
	t.Helper()
	bb, err := exec.LookPath("busybox")
	if err != nil {
		t.Fatal(err)
	}
	rootfs := filepath.Join(p.dir, "rootfs")
	for _, d := range []string{"bin", "etc", "tmp", "proc", "sys", "dev"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(bb)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, l := range []string{"sh", "ping", "sleep", "ip", "cat", "nslookup"} {
		if err := os.Symlink("busybox", filepath.Join(rootfs, "bin", l)); err != nil {
			t.Fatal(err)
		}
	}
	tarball := filepath.Join(p.dir, "rootfs.tar")
	if out, err := exec.CommandContext(ctx, "tar", "-C", rootfs, "-cf", tarball, ".").CombinedOutput(); err != nil {
		t.Fatalf("tar: %v: %s", err, out)
	}
	if out, err := p.run(ctx, "import", "--change", "ENV PATH=/bin", tarball, "busybox"); err != nil {
		t.Fatalf("podman import: %v: %s", err, out)
	}
}

// TestCNIPodman runs Debian's Podman with its CNI backend on two lab hosts: `podman run
// --network fabric` gets an address of its host's slice from the plugin, reaches the
// container on the other host by address, and `podman rm` releases the endpoint.
func TestCNIPodman(t *testing.T) {
	requireLab(t)
	labtest.Require(t, "podman (CNI backend)", "podman", "busybox", "tar", "nsenter")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	l := upLab(t, ctx, 2, false)
	f := fabriclab.New(l, fabriclab.Options{Bin: binDir, Resync: 2 * time.Second})
	t.Cleanup(func() { dumpLogsOnFailure(t, l) })
	for _, h := range l.Hosts {
		if _, err := f.Start(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	kit := buildCNIKit(t, ctx)
	ips := map[string]string{}
	var pods []*podmanHost
	for _, n := range f.Nodes() {
		p := newPodman(t, kit, n.Host, n.Socket)
		pods = append(pods, p)
		p.importBusybox(t, ctx)
		name := "web-" + n.Host.Name
		if out, err := p.run(ctx, "run", "-d", "--name", name, "--network", "fabric", "busybox", "sleep", "1000"); err != nil {
			t.Fatalf("podman run on %s: %v: %s", n.Host.Name, err, out)
		}
		as, err := n.Client().Attachments(ctx)
		if err != nil || len(as) != 1 || as[0].Container != name {
			t.Fatalf("%s attachments after podman run: %+v %v", n.Host.Name, as, err)
		}
		ip, _, _ := strings.Cut(as[0].IP, "/")
		ips[n.Host.Name] = ip
		out, err := p.run(ctx, "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name)
		if err != nil || out != ip {
			t.Errorf("podman inspect on %s: %q %v, fabricd says %s", n.Host.Name, out, err, ip)
		}
	}
	for i, p := range pods {
		other := ips[l.Hosts[1-i].Name]
		var out string
		var err error
		for try := 0; try < 20; try++ {
			if out, err = p.run(ctx, "exec", "web-"+p.host.Name, "ping", "-c", "1", "-W", "1", other); err == nil {
				break
			}
		}
		if err != nil {
			t.Errorf("podman container on %s cannot reach %s: %v: %s", p.host.Name, other, err, out)
		}
	}
	for i, p := range pods {
		if out, err := p.run(ctx, "rm", "-f", "-t", "0", "web-"+p.host.Name); err != nil {
			t.Fatalf("podman rm: %v: %s", err, out)
		}
		if as, err := f.Nodes()[i].Client().Attachments(ctx); err != nil || len(as) != 0 {
			t.Errorf("%s after podman rm: %+v %v", p.host.Name, as, err)
		}
	}
}

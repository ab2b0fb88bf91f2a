package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
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
// configurations "fabric" (the fabric network default) and "blue" (the fabric network blue),
// with fabricd's socket sock, in its own directory.
func newPodman(t *testing.T, kit *cniKit, h *lab.Host, sock string) *podmanHost {
	t.Helper()
	dir := t.TempDir()
	netDir := filepath.Join(dir, "net.d")
	if err := os.MkdirAll(netDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, network := range map[string]string{"fabric": "default", "blue": "blue"} {
		// Podman 4.3 speaks CNI up to 1.0.0.
		conf, _ := json.Marshal(map[string]any{"cniVersion": "1.0.0", "name": name,
			"plugins": []map[string]any{{"type": "ovsfabric", "network": network, "socket": sock,
				"capabilities": map[string]bool{"ips": true, "mac": true, "portMappings": true, "aliases": true}}}})
		if err := os.WriteFile(filepath.Join(netDir, name+".conflist"), conf, 0o644); err != nil {
			t.Fatal(err)
		}
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

// TestCNIPodman runs Debian's Podman with its CNI backend on two lab hosts. On the fabric
// network default (configuration "fabric") and on the fabric network blue (configuration
// "blue"): `podman run --network NET` gets an address of its host's slice of the network
// from the plugin, `podman inspect` shows it, and the container reaches the one on the other
// host by address and by name (the fabric DNS: the nameserver and search domain of the ADD
// result, which Podman writes into the container's resolv.conf). A container on blue and
// default at once has its default route on its first network and reaches both. `podman rm`
// releases every endpoint.
func TestCNIPodman(t *testing.T) {
	requireLab(t)
	labtest.Require(t, "podman (CNI backend)", "podman", "busybox", "tar", "nsenter")
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	l := upLab(t, ctx, 2, false)
	f := fabriclab.New(l, fabriclab.Options{Bin: binDir, Resync: 2 * time.Second})
	t.Cleanup(func() { dumpLogsOnFailure(t, l) })
	if err := f.StartAll(ctx, l.Hosts, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := f.Node("h1").Client().CreateNetwork(ctx, api.NetworkCreateRequest{Name: "blue", Subnet: "10.50.0.0/16"}); err != nil {
		t.Fatalf("create blue: %v", err)
	}
	for _, n := range f.Nodes() {
		waitNetworks(t, ctx, n, []string{"blue", "default"})
	}
	kit := buildCNIKit(t, ctx)
	var pods []*podmanHost
	for _, n := range f.Nodes() {
		p := newPodman(t, kit, n.Host, n.Socket)
		pods = append(pods, p)
		p.importBusybox(t, ctx)
	}
	// ips[network][host] is the address of the container web-NETWORK-HOST.
	ips := map[string]map[string]string{}
	for _, net := range []struct{ conf, network string }{{"fabric", "default"}, {"blue", "blue"}} {
		ips[net.network] = map[string]string{}
		for i, n := range f.Nodes() {
			p := pods[i]
			name := "web-" + net.conf + "-" + n.Host.Name
			if out, err := p.run(ctx, "run", "-d", "--name", name, "--network", net.conf, "busybox", "sleep", "1000"); err != nil {
				t.Fatalf("podman run --network %s on %s: %v: %s", net.conf, n.Host.Name, err, out)
			}
			a, err := attachmentOf(ctx, n, name)
			if err != nil || a.Network != net.network || a.IfName != "eth0" {
				t.Fatalf("%s: endpoint of %s: %+v %v; want eth0 on %s", n.Host.Name, name, a, err, net.network)
			}
			ip, _, _ := strings.Cut(a.IP, "/")
			ips[net.network][n.Host.Name] = ip
			out, err := p.run(ctx, "inspect", "--format", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", name)
			if err != nil || out != ip {
				t.Errorf("podman inspect %s on %s: %q %v, fabricd says %s", name, n.Host.Name, out, err, ip)
			}
			// Podman writes the ADD result's DNS into the container's resolv.conf.
			out, err = p.run(ctx, "exec", name, "cat", "/etc/resolv.conf")
			t.Logf("resolv.conf of %s:\n%s", name, out)
			if err != nil || !strings.Contains(out, "nameserver "+a.Gateway) || !strings.Contains(out, "search "+net.network) || strings.Count(out, "nameserver "+a.Gateway) != 1 {
				t.Errorf("resolv.conf of %s on %s: %v\n%s\nwant nameserver %s, search %s", name, n.Host.Name, err, out, a.Gateway, net.network)
			}
		}
		for i, p := range pods {
			me, other := l.Hosts[i].Name, l.Hosts[1-i].Name
			from := "web-" + net.conf + "-" + me
			for _, to := range []string{ips[net.network][other], "web-" + net.conf + "-" + other} {
				if out, err := podmanPing(ctx, p, from, to); err != nil {
					t.Errorf("%s on %s cannot reach %s: %v: %s", from, me, to, err, out)
				}
			}
		}
	}
	// Networks are isolated: blue's container does not reach default's, by address or name.
	if out, err := pods[0].run(ctx, "exec", "web-blue-h1", "ping", "-c", "1", "-W", "1", ips["default"]["h2"]); err == nil {
		t.Errorf("web-blue-h1 reached web-fabric-h2 on default: %s", out)
	}
	if out, err := pods[0].run(ctx, "exec", "web-blue-h1", "nslookup", "web-fabric-h2"); err == nil && strings.Contains(out, ips["default"]["h2"]) {
		t.Errorf("web-blue-h1 resolved a name of default: %s", out)
	}

	// One container on blue and default: two interfaces, the default route on the network
	// set up first, the other network's CIDR on the other interface; it reaches both
	// networks on the other host. (Podman 4.3 names the interfaces and runs the ADDs in no
	// fixed order: either network may be first.)
	p := pods[0]
	if out, err := p.run(ctx, "run", "-d", "--name", "both", "--network", "blue,fabric", "busybox", "sleep", "1000"); err != nil {
		t.Fatalf("podman run --network blue,fabric: %v: %s", err, out)
	}
	as, err := f.Node("h1").Client().Attachments(ctx)
	if err != nil {
		t.Fatal(err)
	}
	ifOf := map[string]string{} // network → interface
	for _, a := range as {
		if a.Container == "both" {
			ifOf[a.Network] = a.IfName
		}
	}
	if len(ifOf) != 2 || ifOf["blue"] == "" || ifOf["default"] == "" || ifOf["blue"] == ifOf["default"] {
		t.Errorf("endpoints of both: %v, want one interface on blue and one on default", ifOf)
	}
	out, err := p.run(ctx, "exec", "both", "ip", "route")
	first, other, otherCIDR := "blue", "default", "10.244.0.0/16"
	if strings.Contains(out, "default via 10.244.") {
		first, other, otherCIDR = "default", "blue", "10.50.0.0/16"
	}
	if err != nil || strings.Count(out, "default via") != 1 || !regexp.MustCompile(`default via \S+ dev `+ifOf[first]+`\b`).MatchString(out) ||
		!regexp.MustCompile(regexp.QuoteMeta(otherCIDR)+` via \S+ dev `+ifOf[other]).MatchString(out) {
		t.Errorf("routes of both (%v): %v\n%s\nwant one default route, via %s's gateway on %s, and %s via %s's gateway on %s",
			ifOf, err, out, first, ifOf[first], otherCIDR, other, ifOf[other])
	}
	t.Logf("both: %s on blue, %s on default; the default route on %s", ifOf["blue"], ifOf["default"], first)
	for _, to := range []string{ips["blue"]["h2"], ips["default"]["h2"], "web-blue-h2"} {
		if out, err := podmanPing(ctx, p, "both", to); err != nil {
			t.Errorf("both cannot reach %s: %v: %s", to, err, out)
		}
	}
	if out, err := p.run(ctx, "exec", "both", "cat", "/etc/resolv.conf"); err == nil {
		t.Logf("resolv.conf of a container on blue and default:\n%s", out)
	}

	for i, p := range pods {
		if out, err := p.run(ctx, "rm", "-f", "-a", "-t", "0"); err != nil {
			t.Fatalf("podman rm: %v: %s", err, out)
		}
		if as, err := f.Nodes()[i].Client().Attachments(ctx); err != nil || len(as) != 0 {
			t.Errorf("%s after podman rm: %+v %v", p.host.Name, as, err)
		}
	}
}

// attachmentOf is the endpoint of container name on node n (the only one it has).
func attachmentOf(ctx context.Context, n *fabriclab.Node, name string) (api.Attachment, error) {
	as, err := n.Client().Attachments(ctx)
	if err != nil {
		return api.Attachment{}, err
	}
	var found []api.Attachment
	for _, a := range as {
		if a.Container == name {
			found = append(found, a)
		}
	}
	if len(found) != 1 {
		return api.Attachment{}, fmt.Errorf("%d endpoints of %s among %+v", len(found), name, as)
	}
	return found[0], nil
}

// podmanPing pings to (an address or a name) from container from, again for up to 30 s
// while the fabric learns of a new endpoint (its flows, its name by gossip).
func podmanPing(ctx context.Context, p *podmanHost, from, to string) (string, error) {
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, err := p.run(ctx, "exec", from, "ping", "-c", "1", "-W", "1", to)
		if err == nil || time.Now().After(deadline) {
			return out, err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

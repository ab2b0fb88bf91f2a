package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/dockerlab"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
	"github.com/ovsfabric/ovsfabric/lab/labtest"
)

// TestAttach covers fabricctl attach and friends on a 3-host fabric, once per tunnel type:
// netns and real Docker containers across hosts, a fixed --ip, addresses that survive
// restarts of fabricd and of OVS, detach, published ports, masquerade, 20 parallel attaches,
// cleanup of containers that went away, and bad input that changes nothing.
func TestAttach(t *testing.T) {
	for _, tunnel := range []string{"vxlan", "gre"} {
		t.Run(tunnel, func(t *testing.T) { testAttach(t, tunnel) })
	}
}

func testAttach(t *testing.T, tunnel string) {
	requireLab(t)
	if err := dockerlab.Available(); err != nil {
		labtest.SkipOrFail(t, "docker: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	l := upLab(t, ctx, 3, true)
	f := fabriclab.New(l, fabriclab.Options{Bin: binDir, Tunnel: tunnel, Resync: 2 * time.Second})
	t.Cleanup(func() { dumpLogsOnFailure(t, l) })
	if err := f.StartAll(ctx, l.Hosts, nil); err != nil {
		t.Fatal(err)
	}
	n1, n2, n3 := f.Node("h1"), f.Node("h2"), f.Node("h3")
	st1, err := n1.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	subnet1 := strings.TrimSuffix(st1.Subnet, "0/24")

	// Real Docker on h2, containers with --network none, attached by name.
	dock, err := dockerlab.Start(ctx, dockerlab.Config{Dir: filepath.Join(l.Hosts[1].Dir, "docker"), NetNS: l.Hosts[1].NetNS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		sctx, c := context.WithTimeout(context.Background(), time.Minute)
		defer c()
		if err := dock.Stop(sctx); err != nil {
			t.Errorf("stop docker: %v", err)
		}
	})
	if _, err := dock.ImportBusybox(ctx); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"web", "stopped"} {
		if _, err := dock.Run(ctx, name); err != nil {
			t.Fatal(err)
		}
	}

	c1, err := f.AddContainer(ctx, n1, "c1", api.AttachRequest{IP: subnet1 + "77"})
	if err != nil {
		t.Fatal(err)
	}
	if c1.IP != subnet1+"77" {
		t.Errorf("fixed --ip not honoured: got %s", c1.IP)
	}
	c3, err := f.AddContainer(ctx, n3, "c3", api.AttachRequest{})
	if err != nil {
		t.Fatal(err)
	}
	webA, err := n2.Client().Attach(ctx, api.AttachRequest{Target: "web"})
	if err != nil {
		t.Fatalf("attach docker container by name: %v", err)
	}
	webIP, _, _ := strings.Cut(webA.IP, "/")
	if webA.Container != "web" || webA.ID == "" {
		t.Errorf("docker attachment %+v", webA)
	}
	again, err := n2.Client().Attach(ctx, api.AttachRequest{Target: "web"})
	if err != nil || !again.Unchanged || again.IP != webA.IP {
		t.Errorf("repeated attach is not a no-op: %+v %v", again, err)
	}
	dockerPing := func(to string) error {
		var err error
		for i := 0; i < 20; i++ {
			if _, err = dock.Exec(ctx, "web", "ping", "-c", "1", "-W", "1", to); err == nil {
				return nil
			}
		}
		return err
	}
	matrix := func(t *testing.T) {
		t.Helper()
		assertMatrix(t, ctx, []*fabriclab.Container{c1, c3}, 2)
		for _, c := range []*fabriclab.Container{c1, c3} {
			if err := fabriclab.Reach(ctx, c.NetNS, webIP, 20*time.Second); err != nil {
				t.Errorf("%s -> docker web: %v", c.Name, err)
			}
			if err := dockerPing(c.IP); err != nil {
				t.Errorf("docker web -> %s: %v", c.Name, err)
			}
		}
	}
	t.Run("netns and docker containers reach each other", matrix)

	t.Run("ls --all shows every host's attachments", func(t *testing.T) {
		eventually(t, 15*time.Second, "gossip spreads attachments", func() error {
			out, err := exec.CommandContext(ctx, filepath.Join(binDir, "fabricctl"), "--socket", n1.Socket, "ls", "--all").CombinedOutput()
			if err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			for _, want := range []string{`h2\s+web\s+default\s+` + regexp.QuoteMeta(webA.IP), `h3\s+\S+\s+default\s+` + regexp.QuoteMeta(c3.A.IP), `h1\s+\S+\s+default\s+` + regexp.QuoteMeta(c1.A.IP)} {
				if !regexp.MustCompile(want).Match(out) {
					return fmt.Errorf("no %q in:\n%s", want, out)
				}
			}
			return nil
		})
	})

	t.Run("addresses survive restarts", func(t *testing.T) {
		before := map[string]string{}
		for _, n := range f.Nodes() {
			as, err := n.Client().Attachments(ctx)
			if err != nil {
				t.Fatal(err)
			}
			before[n.Host.Name] = attachmentsKey(as)
		}
		for _, n := range f.Nodes() {
			if err := n.Proc.Stop(10 * time.Second); err != nil {
				t.Fatal(err)
			}
			if _, err := f.StartArgs(ctx, n.Host, n.Args); err != nil {
				t.Fatal(err)
			}
		}
		matrix(t)
		for _, h := range l.Hosts {
			if err := h.RestartOVS(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
		matrix(t)
		for _, n := range f.Nodes() {
			as, err := n.Client().Attachments(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if got := attachmentsKey(as); got != before[n.Host.Name] {
				t.Errorf("%s attachments changed:\n%s\n->\n%s", n.Host.Name, before[n.Host.Name], got)
			}
		}
	})

	t.Run("publish and masquerade", func(t *testing.T) {
		srvNS := c1.NetNS
		srv, err := l.StartIn(ctx, srvNS, "iperf3-publish", []string{"iperf3", "-s", "--forceflush", "-p", "80"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer srv.Stop(5 * time.Second)
		if _, err := n1.Client().Publish(ctx, c1.Path, "8080:80"); err != nil {
			t.Fatal(err)
		}
		h1IP := l.Hosts[0].UnderlayIP.String()
		for _, from := range []string{l.Hosts[1].NetNS, l.External} {
			if out, err := retryRun(ctx, from, "iperf3", "--connect-timeout", "2000", "-c", h1IP, "-p", "8080", "-t", "1"); err != nil {
				t.Errorf("published port %s:8080 from %s: %v\n%s", h1IP, from, err, out)
			}
		}
		// Outbound: c3 connects to a server in the "internet" netns, which must see h3's address.
		ext, err := l.StartIn(ctx, l.External, "iperf3-ext", []string{"iperf3", "-s", "--forceflush", "-p", "5201"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer ext.Stop(5 * time.Second)
		if out, err := retryRun(ctx, c3.NetNS, "iperf3", "--connect-timeout", "2000", "-c", l.ExternalIP.String(), "-p", "5201", "-t", "1"); err != nil {
			t.Fatalf("container -> outside: %v\n%s", err, out)
		}
		log, _ := os.ReadFile(ext.LogFile())
		want := "Accepted connection from " + l.Hosts[2].UnderlayIP.String()
		if !strings.Contains(string(log), want) {
			t.Errorf("outside server did not see the masqueraded source %s:\n%s", l.Hosts[2].UnderlayIP, log)
		}
		// Between containers the source address is kept.
		inner, err := l.StartIn(ctx, c1.NetNS, "iperf3-inner", []string{"iperf3", "-s", "--forceflush", "-p", "5202"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer inner.Stop(5 * time.Second)
		if out, err := retryRun(ctx, c3.NetNS, "iperf3", "--connect-timeout", "2000", "-c", c1.IP, "-p", "5202", "-t", "1"); err != nil {
			t.Fatalf("container -> container: %v\n%s", err, out)
		}
		log, _ = os.ReadFile(inner.LogFile())
		if !strings.Contains(string(log), "Accepted connection from "+c3.IP) {
			t.Errorf("container-to-container traffic lost its source %s:\n%s", c3.IP, log)
		}
		if _, err := n1.Client().Unpublish(ctx, c1.Path, "8080:80"); err != nil {
			t.Fatal(err)
		}
		if _, err := lab.RunIn(ctx, l.External, "iperf3", "--connect-timeout", "2000", "-c", h1IP, "-p", "8080", "-t", "1"); err == nil {
			t.Error("unpublished port still reachable")
		}
	})

	t.Run("bad input changes nothing", func(t *testing.T) {
		if err := publishBad(ctx, n2, webA); err != nil {
			t.Fatal(err)
		}
		if _, err := dock.Exec(ctx, "stopped", "true"); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.CommandContext(ctx, "docker", "-H", dock.Host(), "stop", "-t", "1", "stopped").CombinedOutput(); err != nil {
			t.Fatalf("docker stop: %v %s", err, out)
		}
		free, err := l.AddNetNS(ctx, l.Hosts[1], "free")
		if err != nil {
			t.Fatal(err)
		}
		st2, _ := n2.Status(ctx)
		sub2 := strings.TrimSuffix(st2.Subnet, "0/24")
		before := snapshot(t, ctx, l.Hosts[1], webA.NetNS)
		ctl := filepath.Join(binDir, "fabricctl")
		for _, tc := range []struct {
			name string
			args []string
			want string
		}{
			{"unknown container", []string{"attach", "no-such-container"}, "not found"},
			{"missing netns path", []string{"attach", "/var/run/netns/ovsfab-nope"}, "does not exist"},
			{"container not running", []string{"attach", "stopped"}, "not running"},
			{"ip outside the subnet", []string{"attach", free, "--ip", "10.99.0.5"}, "outside"},
			{"ip taken", []string{"attach", free, "--ip", strings.Split(webA.IP, "/")[0]}, "in use by web (port " + webA.Port + ")"},
			{"ip with another prefix length", []string{"attach", free, "--ip", sub2 + "60/16"}, "give the address without /16"},
			{"netns name without its path", []string{"attach", filepath.Base(free)}, "attach " + free},
			{"ip is the gateway", []string{"attach", free, "--ip", sub2 + "1"}, "gateway"},
			{"malformed ip", []string{"attach", free, "--ip", "10.244.1"}, "not an IP"},
			{"invalid mac", []string{"attach", free, "--mac", "zz:00"}, "MAC"},
			{"multicast mac", []string{"attach", free, "--mac", "01:00:5e:00:00:01"}, "unicast"},
			{"ifname exists in container", []string{"attach", free, "--ifname", "lo"}, "exists"},
			{"ifname too long", []string{"attach", free, "--ifname", "averyveryverylongname"}, "15"},
			{"publish out of range", []string{"publish", "web", "70000:80"}, "port"},
			{"publish malformed", []string{"publish", "web", "8080"}, "HOSTPORT:CONTAINERPORT"},
			{"publish bad proto", []string{"publish", "web", "8080:80/sctp"}, "tcp or udp"},
			{"port already published", []string{"publish", "web", "9090:81"}, "already published"},
			{"publish the gossip port", []string{"publish", "web", "7946:80"}, "fabricd's gossip port (--gossip-port 7946)"},
			{"publish the gossip port, udp", []string{"publish", "web", "7946:80/udp"}, "fabricd's gossip port"},
			{"publish DNS", []string{"publish", "web", "53:53/udp"}, "DNS"},
			{"not a fabricd socket: ovsdb", []string{"--socket", l.Hosts[1].DBSocket(), "status"}, l.Hosts[1].DBSocket() + " is not a fabricd API socket"},
			{"not a fabricd socket: docker", []string{"--socket", strings.TrimPrefix(dock.Host(), "unix://"), "status"}, " is not a fabricd API socket"},
			{"detach unknown", []string{"detach", "no-such-container"}, "not attached"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				// The socket comes from the environment, as in `lab exec`; a --socket in the
				// case's arguments wins over it.
				cmd := exec.CommandContext(ctx, ctl, tc.args...)
				cmd.Env = append(os.Environ(), api.SocketEnv+"="+n2.Socket)
				out, err := cmd.CombinedOutput()
				t.Logf("fabricctl %s: %s", strings.Join(tc.args, " "), bytes.TrimSpace(out))
				if err == nil {
					t.Fatalf("fabricctl %s succeeded: %s", strings.Join(tc.args, " "), out)
				}
				if !strings.Contains(string(out), tc.want) {
					t.Errorf("fabricctl %s: %q does not say %q", strings.Join(tc.args, " "), strings.TrimSpace(string(out)), tc.want)
				}
			})
		}
		out, err := exec.CommandContext(ctx, ctl, "--socket", "/run/ovsfabric-none.sock", "status").CombinedOutput()
		if err == nil || !strings.Contains(string(out), "/run/ovsfabric-none.sock") || !strings.Contains(string(out), "fabricd") {
			t.Errorf("fabricd not running: %v %q", err, out)
		}
		if code, body := rawPost(t, n2.Socket, "/v1/attachments", `{"target": 12`); code != http.StatusBadRequest || !strings.Contains(body, `"error"`) {
			t.Errorf("malformed request: %d %s", code, body)
		}
		if code, body := rawPost(t, n2.Socket, "/v1/attachments", `{"target": "web", "bogus": 1}`); code != http.StatusBadRequest {
			t.Errorf("unknown field: %d %s", code, body)
		}
		after := snapshot(t, ctx, l.Hosts[1], webA.NetNS)
		if after != before {
			t.Errorf("bad input changed the host:\nbefore:\n%s\nafter:\n%s", before, after)
		}
		if out, err := exec.CommandContext(ctx, ctl, "--socket", n2.Socket, "ls").CombinedOutput(); err != nil ||
			!regexp.MustCompile(`web\s+default\s+\S+\s+\S+\s+\S+\s+tcp:9090:80\s`).Match(out) {
			t.Errorf("fabricctl ls does not show web's published port tcp:9090:80: %v\n%s", err, out)
		}
		if _, err := lab.RunIn(ctx, filepath.Base(free), "ip", "-o", "link", "show", "eth0"); err == nil {
			t.Error("a half-made eth0 was left in the target netns")
		}
		if err := dockerPing(c3.IP); err != nil {
			t.Errorf("other attachments broke: %v", err)
		}
	})

	t.Run("detach names the published ports it removed", func(t *testing.T) {
		out, err := exec.CommandContext(ctx, filepath.Join(binDir, "fabricctl"), "--socket", n2.Socket, "detach", "web").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "removed published ports: tcp:9090:80") {
			t.Errorf("fabricctl detach web: %v\n%s", err, out)
		}
		if rules, err := lab.RunIn(ctx, l.Hosts[1].NetNS, "nft", "list", "ruleset"); err != nil || strings.Contains(rules, "9090") {
			t.Errorf("DNAT of 9090 left after detach (%v):\n%s", err, rules)
		}
	})

	t.Run("detach frees the IP; a gone container is cleaned up", func(t *testing.T) {
		d, err := n3.Client().Detach(ctx, api.DetachRequest{Target: c3.Path})
		if err != nil {
			t.Fatal(err)
		}
		if len(d) != 1 || d[0].IP != c3.A.IP {
			t.Errorf("detached %+v", d)
		}
		c3b, err := f.AddContainer(ctx, n3, "c3b", api.AttachRequest{})
		if err != nil {
			t.Fatal(err)
		}
		if c3b.A.IP != c3.A.IP {
			t.Errorf("freed IP %s not reused: got %s", c3.A.IP, c3b.A.IP)
		}
		if err := l.DeleteNetNS(ctx, c3b.Path); err != nil {
			t.Fatal(err)
		}
		eventually(t, 15*time.Second, "attachment of a deleted netns removed", func() error {
			as, err := n3.Client().Attachments(ctx)
			if err != nil {
				return err
			}
			if len(as) != 0 {
				return fmt.Errorf("still attached: %+v", as)
			}
			if out, _ := l.Hosts[2].Vsctl(ctx, "list-ports", "br-int"); strings.Contains(out, c3b.A.Port) {
				return fmt.Errorf("port %s still on br-int", c3b.A.Port)
			}
			return nil
		})
	})

	t.Run("20 parallel attaches get distinct addresses", func(t *testing.T) {
		var paths []string
		for i := 0; i < 20; i++ {
			p, err := l.AddNetNS(ctx, l.Hosts[2], fmt.Sprintf("p%d", i))
			if err != nil {
				t.Fatal(err)
			}
			paths = append(paths, p)
		}
		var mu sync.Mutex
		ips := map[string]string{}
		var wg sync.WaitGroup
		for _, p := range paths {
			wg.Add(1)
			go func(p string) {
				defer wg.Done()
				a, err := n3.Client().Attach(ctx, api.AttachRequest{Target: p})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					t.Errorf("attach %s: %v", p, err)
					return
				}
				if other, dup := ips[a.IP]; dup {
					t.Errorf("%s and %s both got %s", other, p, a.IP)
				}
				ips[a.IP] = p
			}(p)
		}
		wg.Wait()
		if len(ips) != 20 {
			t.Errorf("%d distinct addresses, want 20", len(ips))
		}
		for ip, p := range ips {
			addr, _, _ := strings.Cut(ip, "/")
			if err := fabriclab.Reach(ctx, c1.NetNS, addr, 20*time.Second); err != nil {
				t.Errorf("c1 -> %s (%s): %v", addr, p, err)
			}
		}
	})
}

// attachmentsKey is a stable text form of a host's attachments.
func attachmentsKey(as []api.Attachment) string {
	var lines []string
	for _, a := range as {
		lines = append(lines, fmt.Sprintf("%s %s %s %s %s", a.Container, a.IP, a.MAC, a.Port, strings.Join(a.Published, ",")))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// snapshot is what bad input must not change on a host: links, OVS ports and interfaces,
// routes, the NAT table, and the container's interfaces.
func snapshot(t *testing.T, ctx context.Context, h *lab.Host, containerNetNS string) string {
	t.Helper()
	var b strings.Builder
	for _, cmd := range [][]string{
		{"ip", "-o", "link", "show"},
		{"ip", "-o", "-4", "addr", "show"},
		{"ip", "route", "show", "table", "all"},
		{"nft", "list", "table", "ip", "ovsfabric"},
		{"ovs-vsctl", "--db=" + h.Endpoint(), "--columns=name,external_ids", "list", "Interface"},
	} {
		out, err := h.Run(ctx, cmd[0], cmd[1:]...)
		if err != nil {
			t.Fatalf("snapshot: %v", err)
		}
		b.WriteString(stripCounters(out))
	}
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+containerNetNS, "ip", "-o", "addr", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("snapshot container: %v %s", err, out)
	}
	b.Write(out)
	return b.String()
}

// stripCounters drops nft counter values, which move with unrelated traffic.
func stripCounters(s string) string {
	var out []string
	for _, line := range strings.Split(s, "\n") {
		if i := strings.Index(line, "counter packets"); i >= 0 {
			if j := strings.Index(line[i:], " bytes "); j >= 0 {
				rest := line[i+j+len(" bytes "):]
				if k := strings.IndexByte(rest, ' '); k >= 0 {
					rest = rest[k:]
				} else {
					rest = ""
				}
				line = line[:i] + "counter" + rest
			}
		}
		out = append(out, line)
	}
	return strings.Join(out, "\n")
}

// publishBad publishes 9090 on web so that publishing it again is a conflict.
func publishBad(ctx context.Context, n *fabriclab.Node, a api.Attachment) error {
	_, err := n.Client().Publish(ctx, "web", "9090:80")
	return err
}

// retryRun runs a command in a netns until it succeeds, each try bounded to 10 s, at most
// 10 tries.
func retryRun(ctx context.Context, netns string, name string, args ...string) (string, error) {
	var out string
	var err error
	for i := 0; i < 10; i++ {
		tctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		out, err = lab.RunIn(tctx, netns, name, args...)
		cancel()
		if err == nil {
			return out, nil
		}
		time.Sleep(250 * time.Millisecond)
	}
	return out, err
}

// rawPost sends a raw body to fabricd's API.
func rawPost(t *testing.T, socket, path, body string) (int, string) {
	t.Helper()
	c := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, "unix", socket)
	}}}
	resp, err := c.Post("http://fabricd"+path, "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e api.Error
	var buf bytes.Buffer
	_, _ = buf.ReadFrom(resp.Body)
	_ = json.Unmarshal(buf.Bytes(), &e)
	return resp.StatusCode, buf.String()
}

package e2e

import (
	"context"
	"fmt"
	"os/exec"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

// TestNetworks covers networks on a 3-host fabric, once per tunnel type (in parallel: two
// labs): two networks besides default (one --internal) created on different hosts, two
// concurrent creates of one name with different subnets (one wins everywhere), a host
// that joins later and learns them, the full isolation matrix (every pair of containers,
// same host and across hosts), a container on two networks, spoofed source addresses and
// ARP across networks dropped, egress refused on the internal network, a restart of fabricd
// that keeps every network, and `network rm` refused while endpoints remain, then allowed.
func TestNetworks(t *testing.T) {
	for _, tunnel := range []string{"vxlan", "gre"} {
		t.Run(tunnel, func(t *testing.T) {
			t.Parallel()
			testNetworks(t, tunnel)
		})
	}
}

func testNetworks(t *testing.T, tunnel string) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	l := upLab(t, ctx, 3, true)
	f := fabriclab.New(l, fabriclab.Options{Bin: binDir, Tunnel: tunnel, Resync: 2 * time.Second})
	t.Cleanup(func() { dumpLogsOnFailure(t, l) })
	// h3 joins after the networks exist.
	for _, h := range l.Hosts[:2] {
		if _, err := f.Start(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	n1, n2 := f.Node("h1"), f.Node("h2")
	blue, err := n1.Client().CreateNetwork(ctx, api.NetworkCreateRequest{Name: "blue", Subnet: "10.50.0.0/16"})
	if err != nil {
		t.Fatalf("create blue: %v", err)
	}
	if blue.Key == 0 || blue.Slice == "" {
		t.Errorf("blue as created: %+v; want a key and this host's slice", blue)
	}
	if _, err := n2.Client().CreateNetwork(ctx, api.NetworkCreateRequest{Name: "red", Subnet: "10.60.0.0/16", Internal: true}); err != nil {
		t.Fatalf("create red: %v", err)
	}
	// Overlapping subnets and a second definition of a name are refused, and change nothing.
	for _, req := range []api.NetworkCreateRequest{
		{Name: "green", Subnet: "10.50.128.0/17"},
		{Name: "blue", Subnet: "10.70.0.0/16"},
		{Name: "cluster", Subnet: "10.244.5.0/24"},
	} {
		if _, err := n2.Client().CreateNetwork(ctx, req); api.StatusCode(err) != 409 {
			t.Errorf("create %s %s: %v (code %d), want 409", req.Name, req.Subnet, err, api.StatusCode(err))
		}
	}
	// Two hosts create one name at once with different subnets: one definition wins, the
	// same on every host, and the other caller is told.
	var wg0 sync.WaitGroup
	errs := make([]error, 2)
	for i, sub := range []string{"10.70.0.0/16", "10.80.0.0/16"} {
		wg0.Add(1)
		go func(i int, sub string) {
			defer wg0.Done()
			_, errs[i] = []*fabriclab.Node{n1, n2}[i].Client().CreateNetwork(ctx, api.NetworkCreateRequest{Name: "green", Subnet: sub})
		}(i, sub)
	}
	wg0.Wait()
	if (errs[0] == nil) == (errs[1] == nil) || (errs[0] != nil && api.StatusCode(errs[0]) != 409) || (errs[1] != nil && api.StatusCode(errs[1]) != 409) {
		t.Errorf("concurrent creates of green: %v / %v; want one created and one 409", errs[0], errs[1])
	}
	want := "10.70.0.0/16"
	if errs[0] != nil {
		want = "10.80.0.0/16"
	}
	for _, n := range []*fabriclab.Node{n1, n2} {
		deadline := time.Now().Add(15 * time.Second)
		for {
			g, err := n.Client().Network(ctx, "green")
			if err == nil && g.Subnet == want {
				break
			}
			if time.Now().After(deadline) {
				t.Errorf("%s: green is %+v (%v), want the winner's %s", n.Host.Name, g, err, want)
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	if _, err := f.Start(ctx, l.Hosts[2]); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	n3 := f.Node("h3")
	nodes := []*fabriclab.Node{n1, n2, n3}
	for _, n := range nodes {
		waitNetworks(t, ctx, n, []string{"blue", "default", "green", "red"})
	}

	// One container per network on every host, and one on blue and red at once on h1.
	var cs []*fabriclab.Container
	nets := map[*fabriclab.Container]string{}
	for i, n := range nodes {
		for _, network := range []string{"default", "blue", "red"} {
			c, err := attachRetry(ctx, f, n, fmt.Sprintf("%s%d", network[:1], i+1), network)
			if err != nil {
				t.Fatal(err)
			}
			cs = append(cs, c)
			nets[c] = network
		}
	}
	multi, err := attachRetry(ctx, f, n1, "multi", "blue")
	if err != nil {
		t.Fatal(err)
	}
	multiRed, err := n1.Client().Attach(ctx, api.AttachRequest{Target: multi.Path, Network: "red"})
	if err != nil || multiRed.IfName != "eth1" || !strings.HasPrefix(multiRed.IP, "10.60.") {
		t.Fatalf("second network of multi: %+v %v", multiRed, err)
	}

	// The isolation matrix: every pair, reachable exactly when they share a network.
	type pair struct {
		from, to *fabriclab.Container
		ip       string
		want     bool
	}
	var pairs []pair
	for _, a := range cs {
		for _, b := range cs {
			if a != b {
				pairs = append(pairs, pair{a, b, b.IP, nets[a] == nets[b]})
			}
		}
		// multi is on blue (eth0) and red (eth1).
		pairs = append(pairs, pair{a, multi, multi.IP, nets[a] == "blue"})
		pairs = append(pairs, pair{a, multi, strings.Split(multiRed.IP, "/")[0], nets[a] == "red"})
		pairs = append(pairs, pair{multi, a, a.IP, nets[a] != "default"})
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	sem := make(chan struct{}, 8)
	for _, p := range pairs {
		wg.Add(1)
		go func(p pair) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			var ok bool
			if p.want {
				ok = fabriclab.Reach(ctx, p.from.NetNS, p.ip, 15*time.Second) == nil
			} else {
				_, got, _ := fabriclab.Ping(ctx, p.from.NetNS, p.ip, 2, 200*time.Millisecond)
				ok = got > 0
			}
			if ok != p.want {
				mu.Lock()
				defer mu.Unlock()
				t.Errorf("%s (%s on %s) → %s (%s on %s): reachable %v, want %v", p.from.Name, nets[p.from], p.from.Node.Host.Name, p.ip, nets[p.to], p.to.Node.Host.Name, ok, p.want)
			}
		}(p)
	}
	wg.Wait()

	b1, r1, d1, b2, d2 := cs[1], cs[2], cs[0], cs[4], cs[3]
	// Another network's gateway on the same host is not a way across.
	rGW := r1.A.Gateway
	if _, got, _ := fabriclab.Ping(ctx, b1.NetNS, rGW, 2, 200*time.Millisecond); got > 0 {
		t.Errorf("%s on blue reaches red's gateway %s", b1.Name, rGW)
	}
	// Nor is the host kernel: a route to red through blue's gateway leads nowhere.
	if out, err := nsRun(ctx, b1.NetNS, "ip", "route", "add", r1.IP+"/32", "via", b1.A.Gateway); err != nil {
		t.Fatalf("route in %s: %v %s", b1.Name, err, out)
	}
	if _, got, _ := fabriclab.Ping(ctx, b1.NetNS, r1.IP, 2, 200*time.Millisecond); got > 0 {
		t.Errorf("%s on blue reaches %s on red through the gateway", b1.Name, r1.IP)
	}
	// ARP: red's address on blue's link gets no answer.
	if out, err := nsRun(ctx, b1.NetNS, "ip", "route", "replace", r1.IP+"/32", "dev", "eth0"); err != nil {
		t.Fatalf("route in %s: %v %s", b1.Name, err, out)
	}
	_, _, _ = fabriclab.Ping(ctx, b1.NetNS, r1.IP, 2, 200*time.Millisecond)
	if out, _ := nsRun(ctx, b1.NetNS, "ip", "neigh", "show", r1.IP); strings.Contains(out, "lladdr") {
		t.Errorf("%s resolved red's %s by ARP: %s", b1.Name, r1.IP, out)
	}
	// Spoofed source address: b1 sending as d1 (default) reaches nobody.
	if out, err := nsRun(ctx, b1.NetNS, "ip", "addr", "add", d1.IP+"/32", "dev", "eth0"); err != nil {
		t.Fatalf("spoof address: %v %s", err, out)
	}
	if out, _ := nsRun(ctx, b1.NetNS, "ping", "-n", "-c", "2", "-W", "1", "-I", d1.IP, d2.IP); !strings.Contains(out, " 0 received") {
		t.Errorf("%s spoofing %s reached %s: %s", b1.Name, d1.IP, d2.IP, out)
	}
	if out, _ := nsRun(ctx, b1.NetNS, "ping", "-n", "-c", "2", "-W", "1", "-I", d1.IP, b2.IP); !strings.Contains(out, " 0 received") {
		t.Errorf("%s spoofing %s reached %s on its own network: %s", b1.Name, d1.IP, b2.IP, out)
	}
	if out, err := nsRun(ctx, b1.NetNS, "ip", "addr", "del", d1.IP+"/32", "dev", "eth0"); err != nil {
		t.Fatalf("remove the spoofed address: %v %s", err, out)
	}
	// Spoofed MAC: b1 with another MAC reaches nobody, and again with its own.
	if out, err := nsRun(ctx, b1.NetNS, "ip", "link", "set", "eth0", "address", "02:00:00:aa:bb:cc"); err != nil {
		t.Fatalf("spoof MAC: %v %s", err, out)
	}
	if _, got, _ := fabriclab.Ping(ctx, b1.NetNS, b2.IP, 2, 200*time.Millisecond); got > 0 {
		t.Errorf("%s with a spoofed MAC reached %s", b1.Name, b2.IP)
	}
	if out, err := nsRun(ctx, b1.NetNS, "ip", "link", "set", "eth0", "address", b1.A.MAC); err != nil {
		t.Fatalf("restore MAC: %v %s", err, out)
	}
	if err := fabriclab.Reach(ctx, b1.NetNS, b2.IP, 15*time.Second); err != nil {
		t.Errorf("after restoring its MAC: %v", err)
	}

	// Egress: blue masquerades to the outside world, red (--internal) does not get out.
	ext := l.ExternalIP.String()
	if err := fabriclab.Reach(ctx, b2.NetNS, ext, 15*time.Second); err != nil {
		t.Errorf("blue egress: %v", err)
	}
	if _, got, _ := fabriclab.Ping(ctx, cs[5].NetNS, ext, 2, 200*time.Millisecond); got > 0 {
		t.Errorf("%s on the internal network red reached the outside %s", cs[5].Name, ext)
	}
	if _, err := n1.Client().Publish(ctx, r1.Path, "8080:80"); err == nil {
		t.Errorf("publishing a port of %s on the internal network red succeeded", r1.Name)
	}

	// A restart keeps every network and endpoint and loses no packet of blue across it.
	pingCtx, stopPing := context.WithCancel(ctx)
	type count struct{ sent, got int }
	counted := make(chan count, 1)
	go func() {
		s, g, _ := pingUntil(pingCtx, b1.NetNS, b2.IP)
		counted <- count{s, g}
	}()
	time.Sleep(time.Second)
	if err := n2.Proc.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	n2, err = f.StartArgs(ctx, n2.Host, n2.Args)
	if err != nil {
		t.Fatal(err)
	}
	waitNetworks(t, ctx, n2, []string{"blue", "default", "green", "red"})
	time.Sleep(2 * time.Second)
	stopPing()
	c := <-counted
	// ping counts the probe the stop cuts short as lost: one is allowed.
	if c.sent < 20 || c.got < c.sent-1 {
		t.Errorf("%s → %s every 100 ms through h2's fabricd restart: %d sent, %d received", b1.Name, b2.Name, c.sent, c.got)
	}
	t.Logf("%s → %s every 100 ms through h2's fabricd restart: %d sent, %d received", b1.Name, b2.Name, c.sent, c.got)
	for _, p := range [][2]*fabriclab.Container{{b1, b2}, {r1, cs[5]}, {cs[8], cs[5]}} {
		if err := fabriclab.Reach(ctx, p[0].NetNS, p[1].IP, 15*time.Second); err != nil {
			t.Errorf("after restarting h2's fabricd: %v", err)
		}
	}

	// rm is refused while endpoints remain, naming where; allowed once they are gone.
	_, err = n3.Client().RemoveNetwork(ctx, api.NetworkRemoveRequest{Name: "blue"})
	if api.StatusCode(err) != 409 || !strings.Contains(err.Error(), "h1") || !strings.Contains(err.Error(), "h2") {
		t.Errorf("rm blue with endpoints: %v, want 409 naming h1 and h2", err)
	}
	for _, c := range append(cs, multi) {
		if nets[c] == "blue" || c == multi {
			if _, err := c.Node.Client().Detach(ctx, api.DetachRequest{Target: c.Path, Network: "blue"}); err != nil {
				t.Errorf("detach %s from blue: %v", c.Name, err)
			}
		}
	}
	// multi keeps red.
	if err := fabriclab.Reach(ctx, multi.NetNS, r1.IP, 15*time.Second); err != nil {
		t.Errorf("multi after leaving blue: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, err = n3.Client().RemoveNetwork(ctx, api.NetworkRemoveRequest{Name: "blue"})
		if err == nil || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond) // the detaches reach h3 by gossip
	}
	if err != nil {
		t.Fatalf("rm blue once empty: %v", err)
	}
	for _, n := range nodes {
		waitNetworks(t, ctx, f.Node(n.Host.Name), []string{"default", "green", "red"})
	}
}

// attachRetry attaches a new netns to network on n, retrying while n has no slice of it yet.
func attachRetry(ctx context.Context, f *fabriclab.Fabric, n *fabriclab.Node, name, network string) (*fabriclab.Container, error) {
	path, err := f.Lab.AddNetNS(ctx, n.Host, name)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		a, err := n.Client().Attach(ctx, api.AttachRequest{Target: path, Network: network})
		if err == nil {
			ip, _, _ := strings.Cut(a.IP, "/")
			parts := strings.Split(path, "/")
			return &fabriclab.Container{Name: name, Node: n, NetNS: parts[len(parts)-1], Path: path, IP: ip, A: a}, nil
		}
		if api.StatusCode(err) != 409 || time.Now().After(deadline) {
			return nil, fmt.Errorf("attach %s to %s on %s: %w", name, network, n.Host.Name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// waitNetworks waits until n lists exactly the networks want (by name, sorted), each with a
// slice of this host.
func waitNetworks(t *testing.T, ctx context.Context, n *fabriclab.Node, want []string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var last []api.Network
	for {
		ns, err := n.Client().Networks(ctx)
		last = ns
		var names []string
		sliced := true
		for _, x := range ns {
			names = append(names, x.Name)
			sliced = sliced && x.Slice != ""
		}
		sort.Strings(names)
		if err == nil && sliced && strings.Join(names, ",") == strings.Join(want, ",") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s lists networks %+v (err %v), want %v each with a slice", n.Host.Name, last, err, want)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// nsRun runs a command in the named network namespace.
func nsRun(ctx context.Context, netns string, argv ...string) (string, error) {
	out, err := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", netns}, argv...)...).CombinedOutput()
	return string(out), err
}

package e2e

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/dockerlab"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
	"github.com/ovsfabric/ovsfabric/lab/labtest"
)

// TestDNSNetworks covers the fabric DNS on three networks (default, blue, red) of a 3-host
// fabric, once per tunnel type (in parallel: two labs): every network's names resolve on
// every host as NAME and NAME.NETWORK, with PTR; the same name on two networks is two
// names; an alias shared by endpoints on several hosts answers all their addresses; the
// isolation matrix for names (every client asks about every other network's names, as NAME
// and NAME.NETWORK, and their addresses' PTR: NXDOMAIN, answered by the gateway itself,
// never forwarded); another network's gateway does not answer; outside names through the
// forwarder from every network; a container on two networks resolves both networks' names
// and keeps a resolver when it leaves its first; detach and a host that leaves take their
// names from every host.
func TestDNSNetworks(t *testing.T) {
	for _, tunnel := range []string{"vxlan", "gre"} {
		t.Run(tunnel, func(t *testing.T) {
			t.Parallel()
			testDNSNetworks(t, tunnel)
		})
	}
}

// dnsEP is one endpoint of the test: its container, network and resolver (at its gateway).
type dnsEP struct {
	c       *fabriclab.Container
	network string
	// also is the other network of a container on two (its names resolve too, as with
	// Docker); empty for the others.
	also string
	r    *resolver
}

func (e *dnsEP) addr() netip.Addr { return netip.MustParseAddr(e.c.IP) }

// attachNamed attaches a new netns (or, with path set, an existing one) on n to network
// with the given names, retrying while n has no slice of the network yet (409).
func attachNamed(ctx context.Context, f *fabriclab.Fabric, n *fabriclab.Node, nsName, path, network, name string, aliases ...string) (*fabriclab.Container, error) {
	if path == "" {
		var err error
		if path, err = f.Lab.AddNetNS(ctx, n.Host, nsName); err != nil {
			return nil, err
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		a, err := n.Client().Attach(ctx, api.AttachRequest{Target: path, Network: network, Name: name, Aliases: aliases})
		if err == nil {
			ip, _, _ := strings.Cut(a.IP, "/")
			return &fabriclab.Container{Name: nsName, Node: n, NetNS: filepath.Base(path), Path: path, IP: ip, A: a}, nil
		}
		if api.StatusCode(err) != 409 || time.Now().After(deadline) {
			return nil, fmt.Errorf("attach %s to %s on %s: %w", nsName, network, n.Host.Name, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// expectLocalNX checks that name (or, for a PTR, the reverse name) gets NXDOMAIN answered
// by the gateway itself (authoritative): what isolation answers, exactly as for a name
// nobody has.
func (r *resolver) expectLocalNX(name string, qtype uint16) error {
	m, err := r.query(name, qtype)
	if err != nil {
		return err
	}
	if m.Rcode != dns.RcodeNameError || !m.Authoritative || len(m.Answer) > 0 {
		return fmt.Errorf("%s %s: rcode %s aa %v answers %v; want an authoritative NXDOMAIN", dns.TypeToString[qtype], name, dns.RcodeToString[m.Rcode], m.Authoritative, m.Answer)
	}
	return nil
}

// expectPTR checks the PTR answer for addr.
func (r *resolver) expectPTR(addr netip.Addr, want string) error {
	rev, err := dns.ReverseAddr(addr.String())
	if err != nil {
		return err
	}
	m, err := r.query(rev, dns.TypePTR)
	if err != nil {
		return err
	}
	if len(m.Answer) != 1 {
		return fmt.Errorf("PTR %s: rcode %s answers %v; want %s", rev, dns.RcodeToString[m.Rcode], m.Answer, want)
	}
	if p, ok := m.Answer[0].(*dns.PTR); !ok || p.Ptr != want {
		return fmt.Errorf("PTR %s: %v; want %s", rev, m.Answer[0], want)
	}
	return nil
}

func testDNSNetworks(t *testing.T, tunnel string) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 12*time.Minute)
	defer cancel()
	l := upLab(t, ctx, 3, true)
	t.Cleanup(func() { dumpLogsOnFailure(t, l) })
	startUpstream(t, l.External)
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver "+l.ExternalIP.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := fabriclab.New(l, fabriclab.Options{Bin: binDir, Tunnel: tunnel, Resync: 2 * time.Second,
		Extra: []string{"--dns-resolv-conf", resolv}})
	for _, h := range l.Hosts {
		if _, err := f.Start(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	n1, n2, n3 := f.Node("h1"), f.Node("h2"), f.Node("h3")
	if _, err := n1.Client().CreateNetwork(ctx, api.NetworkCreateRequest{Name: "blue", Subnet: "10.50.0.0/16"}); err != nil {
		t.Fatalf("create blue: %v", err)
	}
	if _, err := n2.Client().CreateNetwork(ctx, api.NetworkCreateRequest{Name: "red", Subnet: "10.60.0.0/16"}); err != nil {
		t.Fatalf("create red: %v", err)
	}
	for _, n := range []*fabriclab.Node{n1, n2, n3} {
		waitNetworks(t, ctx, n, []string{"blue", "default", "red"})
	}

	// The endpoints: on blue web (h1, alias api), db (h2, alias api), bclient (h3); on red
	// another web (h2, alias api), secret (h3), rclient (h1); on default dweb (h1), dclient
	// (h2); multi on blue, then red (h3).
	type spec struct {
		n                 *fabriclab.Node
		ns, network, name string
		aliases           []string
	}
	specs := []spec{
		{n1, "bweb", "blue", "web", []string{"api"}},
		{n2, "bdb", "blue", "db", []string{"api"}},
		{n3, "bclient", "blue", "bclient", nil},
		{n2, "rweb", "red", "web", []string{"api"}},
		{n3, "rsecret", "red", "secret", nil},
		{n1, "rclient", "red", "rclient", nil},
		{n1, "dweb", "default", "dweb", nil},
		{n2, "dclient", "default", "dclient", nil},
	}
	eps := map[string]*dnsEP{}
	for _, s := range specs {
		c, err := attachNamed(ctx, f, s.n, s.ns, "", s.network, s.name, s.aliases...)
		if err != nil {
			t.Fatal(err)
		}
		if c.A.Nameserver != c.A.Gateway || c.A.Network != s.network {
			t.Errorf("%s: attach answer nameserver %q gateway %q network %q", s.ns, c.A.Nameserver, c.A.Gateway, c.A.Network)
		}
		eps[s.ns] = &dnsEP{c: c, network: s.network, r: newResolver(t, c.Path, c.A.Gateway)}
	}
	multiBlue, err := attachNamed(ctx, f, n3, "multi", "", "blue", "multi")
	if err != nil {
		t.Fatal(err)
	}
	multiRed, err := attachNamed(ctx, f, n3, "multi", multiBlue.Path, "red", "multi")
	if err != nil {
		t.Fatal(err)
	}
	if multiRed.A.IfName != "eth1" {
		t.Fatalf("multi's second network: %+v", multiRed.A)
	}
	eps["multi-blue"] = &dnsEP{c: multiBlue, network: "blue", also: "red", r: newResolver(t, multiBlue.Path, multiBlue.A.Gateway)}
	eps["multi-red"] = &dnsEP{c: multiRed, network: "red", also: "blue", r: newResolver(t, multiRed.Path, multiRed.A.Gateway)}
	ip := func(ns string) netip.Addr { return eps[ns].addr() }

	// What each network's clients resolve: NAME and NAME.NETWORK.
	want := map[string]map[string][]netip.Addr{
		"blue":    {"web": {ip("bweb")}, "db": {ip("bdb")}, "bclient": {ip("bclient")}, "api": sortAddrs(ip("bweb"), ip("bdb")), "multi": {ip("multi-blue")}},
		"red":     {"web": {ip("rweb")}, "secret": {ip("rsecret")}, "rclient": {ip("rclient")}, "api": {ip("rweb")}, "multi": {ip("multi-red")}},
		"default": {"dweb": {ip("dweb")}, "dclient": {ip("dclient")}},
	}
	// The PTR name of each endpoint, by network.
	ptrs := map[string]string{}
	for _, e := range eps {
		ptrs[e.c.IP] = e.c.A.Name + "." + e.network + "."
	}
	// Every client, in parallel: its networks' names resolve (after gossip), others' do not.
	var wg sync.WaitGroup
	var mu sync.Mutex
	fail := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		t.Errorf(format, args...)
	}
	for key, e := range eps {
		wg.Add(1)
		go func() {
			defer wg.Done()
			where := fmt.Sprintf("%s (%s on %s)", key, e.network, e.c.Node.Host.Name)
			for name, addrs := range want[e.network] {
				for _, q := range []string{name, name + "." + e.network} {
					if err := within(30*time.Second, func() error { return e.r.expect(q, addrs) }); err != nil {
						fail("%s: %v", where, err)
					}
				}
			}
			for other, names := range want {
				if other == e.network {
					continue
				}
				if other == e.also {
					// The container's other network: its names resolve too (its own
					// network's first, for a name on both).
					for name, addrs := range names {
						if _, same := want[e.network][name]; !same {
							if err := within(30*time.Second, func() error { return e.r.expect(name, addrs) }); err != nil {
								fail("%s asks %s's %s: %v", where, other, name, err)
							}
						}
						if err := within(30*time.Second, func() error { return e.r.expect(name+"."+other, addrs) }); err != nil {
							fail("%s asks %s: %v", where, name+"."+other, err)
						}
					}
					continue
				}
				for name := range names {
					if _, same := want[e.network][name]; !same {
						if err := e.r.expectLocalNX(name, dns.TypeA); err != nil {
							fail("%s asks %s's %s: %v", where, other, name, err)
						}
					}
					if err := e.r.expectLocalNX(name+"."+other, dns.TypeA); err != nil {
						fail("%s asks %s: %v", where, name+"."+other, err)
					}
				}
			}
			for _, o := range eps {
				rev, _ := dns.ReverseAddr(o.c.IP)
				if o.network == e.network || o.network == e.also {
					if err := e.r.expectPTR(o.addr(), ptrs[o.c.IP]); err != nil {
						fail("%s: %v", where, err)
					}
				} else if err := e.r.expectLocalNX(rev, dns.TypePTR); err != nil {
					fail("%s asks the PTR of %s on %s: %v", where, o.c.IP, o.network, err)
				}
			}
			// Outside names through the forwarder, from every network.
			if err := e.r.expect(outsideName, []netip.Addr{outsideAddr}); err != nil {
				fail("%s: outside name: %v", where, err)
			}
		}()
	}
	wg.Wait()
	t.Logf("%d endpoints on 3 networks checked every name, the other networks' names and every PTR", len(eps))
	if t.Failed() {
		t.FailNow()
	}

	// Another network's gateway on the same host does not answer (the data path drops it).
	bc := eps["bclient"].c
	rGW := multiRed.A.Gateway // red's gateway on h3, where bclient is
	if m, err := newResolver(t, bc.Path, rGW).query("secret.", dns.TypeA); err == nil && m.Rcode != dns.RcodeRefused {
		t.Errorf("bclient asking red's gateway %s: rcode %s answers %v; want no answer or REFUSED", rGW, dns.RcodeToString[m.Rcode], m.Answer)
	}

	// multi: its resolv.conf names its first network's gateway; through it the program in
	// the container resolves blue's names, and red's at red's gateway.
	conf := filepath.Join("/etc/netns", multiBlue.NetNS, "resolv.conf")
	if b, err := os.ReadFile(conf); err != nil || !strings.Contains(string(b), "nameserver "+multiBlue.A.Gateway+"\n") {
		t.Errorf("resolv.conf of multi: %q %v; want blue's gateway %s", b, err, multiBlue.A.Gateway)
	}
	if out, err := lab.RunIn(ctx, multiBlue.NetNS, "busybox", "nslookup", "db"); err != nil || !strings.Contains(out, eps["bdb"].c.IP) {
		t.Errorf("nslookup db in multi: %v\n%s", err, out)
	}
	if out, err := lab.RunIn(ctx, multiBlue.NetNS, "busybox", "nslookup", "secret", multiRed.A.Gateway); err != nil || !strings.Contains(out, eps["rsecret"].c.IP) {
		t.Errorf("nslookup secret at red's gateway in multi: %v\n%s", err, out)
	}
	// Leaving blue, multi's resolver moves to red's gateway; blue forgets multi, red keeps it.
	if _, err := n3.Client().Detach(ctx, api.DetachRequest{Target: multiBlue.Path, Network: "blue"}); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(conf); err != nil || !strings.Contains(string(b), "nameserver "+multiRed.A.Gateway+"\n") {
		t.Errorf("resolv.conf of multi after leaving blue: %q %v; want red's gateway %s", b, err, multiRed.A.Gateway)
	}
	if out, err := lab.RunIn(ctx, multiBlue.NetNS, "busybox", "nslookup", "secret"); err != nil || !strings.Contains(out, eps["rsecret"].c.IP) {
		t.Errorf("nslookup secret in multi after leaving blue: %v\n%s", err, out)
	}
	eventually(t, 20*time.Second, "multi gone from blue on h1", func() error { return eps["bweb"].r.expect("multi", nil) })
	if err := eps["rclient"].r.expect("multi", []netip.Addr{ip("multi-red")}); err != nil {
		t.Errorf("multi on red after it left blue: %v", err)
	}
	if _, err := n3.Client().Detach(ctx, api.DetachRequest{Target: multiBlue.Path}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(conf); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("multi's resolv.conf after its last detach: %v", err)
	}

	// Detach takes a name from every host; the shared alias keeps its other endpoint.
	if _, err := n2.Client().Detach(ctx, api.DetachRequest{Target: eps["bdb"].c.Path}); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"bweb", "bclient"} {
		r := eps[k].r
		eventually(t, 20*time.Second, "db gone on "+k, func() error { return r.expect("db", nil) })
		eventually(t, 20*time.Second, "api without db on "+k, func() error { return r.expect("api", []netip.Addr{ip("bweb")}) })
	}
	// A host that leaves takes its names from every network.
	if _, err := n2.Client().Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n2.Proc.Wait(30 * time.Second); err != nil {
		t.Logf("fabricd on h2 after leave: %v", err)
	}
	f.Forget("h2")
	eventually(t, 30*time.Second, "red's web gone on h1", func() error { return eps["rclient"].r.expect("web", nil) })
	eventually(t, 30*time.Second, "dclient gone on h1", func() error { return eps["dweb"].r.expect("dclient", nil) })
	if err := eps["rclient"].r.expect("secret", []netip.Addr{ip("rsecret")}); err != nil {
		t.Errorf("h3's secret after h2 left: %v", err)
	}
	if err := eps["bclient"].r.expect("web", []netip.Addr{ip("bweb")}); err != nil {
		t.Errorf("blue's web after h2 left: %v", err)
	}
}

// within retries check until it returns nil or timeout passes, and returns its last error.
func within(timeout time.Duration, check func() error) error {
	start := time.Now()
	for {
		err := check()
		if err == nil || time.Since(start) > timeout {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestDNSDocker: a real Docker container (dockerd in the lab, --network none) attached by
// name gets its runtime's resolv.conf pointed at the fabric DNS, resolves a name on another
// host from inside (`docker exec … nslookup`), and gets its own resolv.conf back on detach.
func TestDNSDocker(t *testing.T) {
	requireLab(t)
	if err := dockerlab.Available(); err != nil {
		labtest.SkipOrFail(t, "docker: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	l := upLab(t, ctx, 2, true)
	t.Cleanup(func() { dumpLogsOnFailure(t, l) })
	startUpstream(t, l.External)
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver "+l.ExternalIP.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := fabriclab.New(l, fabriclab.Options{Bin: binDir, Tunnel: "vxlan", Resync: 2 * time.Second,
		Extra: []string{"--dns-resolv-conf", resolv}})
	for _, h := range l.Hosts {
		if _, err := f.Start(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
		t.Fatal(err)
	}
	n1, n2 := f.Node("h1"), f.Node("h2")
	dock, err := l.Hosts[0].StartDocker(ctx)
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
	if _, err := dock.Run(ctx, "app"); err != nil {
		t.Fatal(err)
	}
	orig, err := dock.Exec(ctx, "app", "cat", "/etc/resolv.conf")
	if err != nil {
		t.Fatal(err)
	}
	peer, err := f.AddContainer(ctx, n2, "peer", api.AttachRequest{Name: "peer"})
	if err != nil {
		t.Fatal(err)
	}
	a, err := n1.Client().Attach(ctx, api.AttachRequest{Target: "app"})
	if err != nil {
		t.Fatalf("attach the docker container: %v", err)
	}
	if a.Name != "app" || a.Nameserver != a.Gateway {
		t.Errorf("attach answer: name %q nameserver %q gateway %q", a.Name, a.Nameserver, a.Gateway)
	}
	in, err := dock.Exec(ctx, "app", "cat", "/etc/resolv.conf")
	if err != nil || !strings.Contains(in, "nameserver "+a.Gateway+"\n") {
		t.Errorf("the container's /etc/resolv.conf after attach: %q %v; want nameserver %s", in, err, a.Gateway)
	}
	// From inside: a name on the other host, and an outside name through the forwarder.
	var out string
	eventually(t, 30*time.Second, "nslookup peer in the docker container", func() error {
		var err error
		out, err = dock.Exec(ctx, "app", "nslookup", "peer")
		if err == nil && !strings.Contains(out, peer.IP) {
			err = fmt.Errorf("no %s in %q", peer.IP, out)
		}
		return err
	})
	if out, err := dock.Exec(ctx, "app", "nslookup", strings.TrimSuffix(outsideName, ".")); err != nil || !strings.Contains(out, outsideAddr.String()) {
		t.Errorf("nslookup %s in the docker container: %v\n%s", outsideName, err, out)
	}
	// And the other way round: the container's name on the other host.
	pr := newResolver(t, peer.Path, peer.A.Gateway)
	ip, _, _ := strings.Cut(a.IP, "/")
	eventually(t, 20*time.Second, "app resolves on h2", func() error { return pr.expect("app", []netip.Addr{netip.MustParseAddr(ip)}) })

	// Detach gives the container its own resolv.conf back, and leaves no backup behind.
	if _, err := n1.Client().Detach(ctx, api.DetachRequest{Target: "app"}); err != nil {
		t.Fatal(err)
	}
	if after, err := dock.Exec(ctx, "app", "cat", "/etc/resolv.conf"); err != nil || after != orig {
		t.Errorf("the container's /etc/resolv.conf after detach: %q %v; want the original %q", after, err, orig)
	}
	if left, _ := filepath.Glob(filepath.Join(l.Hosts[0].DockerDir(), "data", "containers", "*", "*ovsfabric*")); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	eventually(t, 20*time.Second, "app gone on h2", func() error { return pr.expect("app", nil) })

	// A container that stops while attached: fabricd prunes it and restores the file.
	if _, err := n1.Client().Attach(ctx, api.AttachRequest{Target: "app"}); err != nil {
		t.Fatal(err)
	}
	if _, err := dock.Exec(ctx, "app", "nslookup", "peer"); err != nil {
		t.Errorf("nslookup after re-attach: %v", err)
	}
	if out, err := exec.CommandContext(ctx, "docker", "-H", dock.Host(), "stop", "-t", "1", "app").CombinedOutput(); err != nil {
		t.Fatalf("docker stop: %v %s", err, out)
	}
	files, _ := filepath.Glob(filepath.Join(l.Hosts[0].DockerDir(), "data", "containers", "*", "resolv.conf"))
	if len(files) != 1 {
		t.Fatalf("resolv.conf files of the container: %v", files)
	}
	eventually(t, 30*time.Second, "the stopped container's resolv.conf restored", func() error {
		b, err := os.ReadFile(files[0])
		if err != nil || string(b) != orig {
			return fmt.Errorf("%q %v", b, err)
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(files[0]), "*ovsfabric*")); len(left) > 0 {
			return fmt.Errorf("left behind: %v", left)
		}
		return nil
	})
}

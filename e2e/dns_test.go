package e2e

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/miekg/dns"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

// TestDNS covers the fabric DNS on a 3-host fabric, once per tunnel type: names and
// aliases resolve on every host (through the resolv.conf attach writes, and straight at the
// gateway), PTR answers, a client on no fabric network is refused, an outside name goes
// through the host's upstream (a tiny DNS server in the lab's ext namespace), and detach and
// a host that leaves take their names from every host. It logs how long a new name takes to
// be served on the other hosts.
func TestDNS(t *testing.T) {
	for _, tunnel := range []string{"vxlan", "gre"} {
		t.Run(tunnel, func(t *testing.T) { testDNS(t, tunnel) })
	}
}

// outsideName is what the lab's upstream DNS server answers, and outsideAddr its address.
const outsideName = "outside.example."

var outsideAddr = netip.MustParseAddr("198.51.100.7")

func testDNS(t *testing.T, tunnel string) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	l := upLab(t, ctx, 3, true)
	t.Cleanup(func() { dumpLogsOnFailure(t, l) })

	// The upstream: a DNS server in the ext namespace, named by the resolv.conf fabricd reads.
	startUpstream(t, l.External)
	up := l.ExternalIP
	resolv := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(resolv, []byte("nameserver "+up.String()+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := fabriclab.New(l, fabriclab.Options{Bin: binDir, Tunnel: tunnel, Resync: 2 * time.Second, DeadPeerGrace: 20 * time.Second,
		Extra: []string{"--dns-resolv-conf", resolv}})
	if err := f.StartAll(ctx, l.Hosts, nil); err != nil {
		t.Fatal(err)
	}
	n1, n2, n3 := f.Node("h1"), f.Node("h2"), f.Node("h3")
	web, err := f.AddContainer(ctx, n1, "web", api.AttachRequest{Name: "web", Aliases: []string{"api"}})
	if err != nil {
		t.Fatal(err)
	}
	db, err := f.AddContainer(ctx, n2, "db", api.AttachRequest{Name: "db", Aliases: []string{"api", "store"}})
	if err != nil {
		t.Fatal(err)
	}
	client, err := f.AddContainer(ctx, n3, "client", api.AttachRequest{Name: "client"})
	if err != nil {
		t.Fatal(err)
	}
	if web.A.Nameserver != web.A.Gateway || web.A.Name != "web" || !slices.Equal(web.A.Aliases, []string{"api"}) {
		t.Errorf("attach answer: nameserver %q gateway %q name %q aliases %v", web.A.Nameserver, web.A.Gateway, web.A.Name, web.A.Aliases)
	}
	if _, err := n1.Client().Attach(ctx, api.AttachRequest{Target: "pid:1", Name: "Not.A.Label"}); api.StatusCode(err) != 400 {
		t.Errorf("attach --name Not.A.Label: %v, want a 400", err)
	}

	// A resolver in every container's netns, asking its own gateway.
	cs := []*fabriclab.Container{web, db, client}
	res := map[string]*resolver{}
	for _, c := range cs {
		res[c.Name] = newResolver(t, c.Path, c.A.Gateway)
	}
	ip := func(c *fabriclab.Container) netip.Addr { return netip.MustParseAddr(c.IP) }
	want := map[string][]netip.Addr{
		"web": {ip(web)}, "web.default": {ip(web)}, "db": {ip(db)}, "store": {ip(db)}, "client": {ip(client)},
		"api": sortAddrs(ip(web), ip(db)),
	}
	for _, c := range cs {
		for name, addrs := range want {
			r := res[c.Name]
			eventually(t, 20*time.Second, fmt.Sprintf("%s on %s resolves %s", c.Name, c.Node.Host.Name, name), func() error {
				return r.expect(name, addrs)
			})
		}
	}
	// PTR.
	rev, _ := dns.ReverseAddr(web.IP)
	if m, err := res["client"].query(rev, dns.TypePTR); err != nil || len(m.Answer) != 1 || m.Answer[0].(*dns.PTR).Ptr != "web.default." && m.Answer[0].(*dns.PTR).Ptr != "web." {
		t.Errorf("PTR %s from h3: %v %v", rev, m, err)
	}
	// Through the resolv.conf attach wrote: what a program in the container does.
	conf, err := os.ReadFile(filepath.Join("/etc/netns", client.NetNS, "resolv.conf"))
	if err != nil || !strings.Contains(string(conf), "nameserver "+client.A.Gateway) {
		t.Errorf("resolv.conf of %s: %q %v", client.NetNS, conf, err)
	}
	out, err := lab.RunIn(ctx, client.NetNS, "busybox", "nslookup", "web")
	if err != nil || !strings.Contains(out, web.IP) {
		t.Errorf("busybox nslookup web in %s: %v\n%s", client.NetNS, err, out)
	}
	// TCP as well.
	if m, err := res["client"].queryTCP("db.", dns.TypeA); err != nil || len(m.Answer) != 1 {
		t.Errorf("db over TCP: %v %v", m, err)
	}
	// An outside name through the forwarder.
	if err := res["db"].expect(outsideName, []netip.Addr{outsideAddr}); err != nil {
		t.Errorf("outside name: %v", err)
	}
	// fabricctl dns ls lists the names fabric-wide with their origin host.
	recs, err := n2.Client().DNSRecords(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	hosts := map[string]string{}
	for _, r := range recs {
		hosts[r.Name] = r.Host
	}
	if hosts["web"] != "h1" || hosts["db"] != "h2" || hosts["client"] != "h3" {
		t.Errorf("dns ls on h2: %+v", recs)
	}

	// A client on no fabric network: the ext namespace, routed to h1's gateway.
	if _, err := lab.RunIn(ctx, l.External, "ip", "route", "replace", "10.244.0.0/16", "via", n1.Host.UnderlayIP.String()); err != nil {
		t.Fatal(err)
	}
	outsider := newResolver(t, filepath.Join("/var/run/netns", l.External), web.A.Gateway)
	if m, err := outsider.query("web.", dns.TypeA); err == nil && m.Rcode != dns.RcodeRefused {
		t.Errorf("query from outside the fabric: rcode %s, want REFUSED", dns.RcodeToString[m.Rcode])
	} else if err != nil {
		t.Logf("query from outside the fabric: %v (dropped: fine)", err)
	}
	if m, err := outsider.query(outsideName, dns.TypeA); err == nil && len(m.Answer) > 0 {
		t.Errorf("open recursion for an outsider: %v", m)
	}

	// Propagation of a new name to the other hosts: from the attach request until the other
	// hosts' gateways answer it (polled every 5 ms).
	var times []time.Duration
	for i := range 7 {
		name := fmt.Sprintf("late%d", i)
		start := time.Now()
		c, err := f.AddContainer(ctx, n1, name, api.AttachRequest{Name: name})
		if err != nil {
			t.Fatal(err)
		}
		attached := time.Since(start)
		served := map[string]time.Duration{}
		for time.Since(start) < 20*time.Second && len(served) < 2 {
			for _, other := range []string{"db", "client"} {
				if _, ok := served[other]; !ok && res[other].expect(name, []netip.Addr{ip(c)}) == nil {
					served[other] = time.Since(start)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		if len(served) < 2 {
			t.Fatalf("%s not served on every host after 20s: %v", name, served)
		}
		t.Logf("new name %s: attach %s, served on h2 after %s, on h3 after %s (from the attach request)", name, attached.Round(time.Millisecond), served["db"].Round(time.Millisecond), served["client"].Round(time.Millisecond))
		times = append(times, served["db"], served["client"])
		if _, err := n1.Client().Detach(ctx, api.DetachRequest{Target: c.Path}); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(times)
	t.Logf("propagation of a new name to another host (%s), from the attach request: median %s, max %s over %d", tunnel, times[len(times)/2].Round(time.Millisecond), times[len(times)-1].Round(time.Millisecond), len(times))

	// Detach takes the name from every host; the alias keeps its other endpoint.
	if _, err := n1.Client().Detach(ctx, api.DetachRequest{Target: web.Path}); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join("/etc/netns", web.NetNS, "resolv.conf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("detach left the resolv.conf of %s: %v", web.NetNS, err)
	}
	for _, c := range []*fabriclab.Container{db, client} {
		r := res[c.Name]
		eventually(t, 20*time.Second, "web gone on "+c.Node.Host.Name, func() error { return r.expect("web", nil) })
		eventually(t, 20*time.Second, "api without web on "+c.Node.Host.Name, func() error { return r.expect("api", []netip.Addr{ip(db)}) })
	}

	// A host that leaves takes its names.
	if _, err := n2.Client().Leave(ctx); err != nil {
		t.Fatal(err)
	}
	if err := n2.Proc.Wait(30 * time.Second); err != nil {
		t.Logf("fabricd on h2 after leave: %v", err)
	}
	f.Forget("h2")
	eventually(t, 30*time.Second, "db gone on h3", func() error { return res["client"].expect("db", nil) })
	eventually(t, 30*time.Second, "api gone on h3", func() error { return res["client"].expect("api", nil) })
	eventually(t, 20*time.Second, "dns ls on h3 lists only its own name", func() error {
		recs, err := n3.Client().DNSRecords(ctx, "")
		if err != nil || len(recs) != 1 || recs[0].Name != "client" {
			return fmt.Errorf("%+v %v", recs, err)
		}
		return nil
	})
}

func sortAddrs(as ...netip.Addr) []netip.Addr {
	sort.Slice(as, func(i, j int) bool { return as[i].Less(as[j]) })
	return as
}

// resolver asks one DNS server from sockets opened in one network namespace.
type resolver struct {
	t      *testing.T
	nsPath string
	server string
}

func newResolver(t *testing.T, nsPath, server string) *resolver {
	return &resolver{t: t, nsPath: nsPath, server: net.JoinHostPort(server, "53")}
}

// inNS runs fn in the network namespace at path (containernetworking's ns package locks
// the OS thread and switches it back).
func inNS(path string, fn func() error) error {
	return ns.WithNetNSPath(path, func(ns.NetNS) error { return fn() })
}

func (r *resolver) exchange(name string, qtype uint16, network string) (*dns.Msg, error) {
	var conn net.Conn
	if err := inNS(r.nsPath, func() error {
		var err error
		conn, err = net.DialTimeout(network, r.server, 2*time.Second)
		return err
	}); err != nil {
		return nil, err
	}
	defer conn.Close()
	q := new(dns.Msg)
	q.SetQuestion(dns.Fqdn(name), qtype)
	c := &dns.Client{Net: network, Timeout: 2 * time.Second}
	m, _, err := c.ExchangeWithConn(q, &dns.Conn{Conn: conn})
	return m, err
}

func (r *resolver) query(name string, qtype uint16) (*dns.Msg, error) {
	return r.exchange(name, qtype, "udp")
}

func (r *resolver) queryTCP(name string, qtype uint16) (*dns.Msg, error) {
	return r.exchange(name, qtype, "tcp")
}

// expect checks that name's A records are exactly want (none: NXDOMAIN).
func (r *resolver) expect(name string, want []netip.Addr) error {
	m, err := r.query(name, dns.TypeA)
	if err != nil {
		return err
	}
	if len(want) == 0 {
		if m.Rcode != dns.RcodeNameError {
			return fmt.Errorf("%s: rcode %s, answers %v; want NXDOMAIN", name, dns.RcodeToString[m.Rcode], m.Answer)
		}
		return nil
	}
	if m.Rcode != dns.RcodeSuccess {
		return fmt.Errorf("%s: rcode %s", name, dns.RcodeToString[m.Rcode])
	}
	var got []netip.Addr
	for _, rr := range m.Answer {
		if a, ok := rr.(*dns.A); ok {
			ad, _ := netip.AddrFromSlice(a.A.To4())
			got = append(got, ad)
		}
	}
	got = sortAddrs(got...)
	if !slices.Equal(got, want) {
		return fmt.Errorf("%s: %v, want %v", name, got, want)
	}
	return nil
}

// startUpstream serves outsideName on UDP port 53 of the namespace ns (the lab's outside
// world) until the test ends.
func startUpstream(t *testing.T, ns string) {
	t.Helper()
	var pc net.PacketConn
	if err := inNS(filepath.Join("/var/run/netns", ns), func() error {
		var err error
		pc, err = net.ListenPacket("udp4", ":53")
		return err
	}); err != nil {
		t.Fatalf("upstream DNS in %s: %v", ns, err)
	}
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(q)
		switch {
		case len(q.Question) != 1 || !strings.EqualFold(q.Question[0].Name, outsideName):
			m.Rcode = dns.RcodeNameError
		case q.Question[0].Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: outsideName, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: outsideAddr.AsSlice()})
		default:
			// The name exists without records of that type (NODATA), as busybox's
			// nslookup, which asks AAAA too, expects of a v4-only name.
		}
		_ = w.WriteMsg(m)
	})}
	go func() { _ = srv.ActivateAndServe() }()
	t.Cleanup(func() { _ = srv.Shutdown() })
}

package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"math"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/hashicorp/memberlist"
	"github.com/miekg/dns"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/endpoint"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/fabricdns"
	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
	"github.com/ovsfabric/ovsfabric/peers"
	"github.com/ovsfabric/ovsfabric/registry"
)

// The DNS section's sizes.
const (
	// dnsLatencyQueries are asked one after the other for the latency figures.
	dnsLatencyQueries = 2000
	// dnsPropagationTrials new names are attached one by one.
	dnsPropagationTrials = 20
	// dnsQPSClients containers hammer one gateway for dnsQPSTime; each stays under the
	// server's per-client rate limit (dnsQPSClientRate), so the figure is what the server
	// answers, not what it drops.
	dnsQPSClients    = 128
	dnsQPSTime       = 5 * time.Second
	dnsQPSClientRate = 0.9 * fabricdns.DefaultRateLimit
	dnsQPSWindow     = 4 // queries in flight per client
	// dnsNames endpoint names come from dnsSynthetic synthetic hosts (dnsNames/dnsSynthetic
	// endpoints each, within the host's /24).
	dnsNames     = 10000
	dnsSynthetic = 40
	// dnsCIDR is the DNS lab's cluster CIDR; the lab's hosts hold the first /24s statically,
	// the synthetic hosts /24s from dnsSynFirst on.
	dnsCIDR     = "10.80.0.0/16"
	dnsSynFirst = 100
	dnsSynPort  = 21000
)

// dnsSection measures the fabric DNS in a 3-host VXLAN fabric: query latency through the
// gateway on the client's own host, the propagation of a new name to every other host, the
// queries per second one fabricd answers, and fabricd's RSS with dnsNames names (endpoint
// records of synthetic hosts).
func (s *suite) dnsSection(ctx context.Context, secs map[string]*Section) {
	sec := secs["dns"]
	var r dnsFigures
	defer func() { s.dnsReport(sec, &r) }()
	l, err := s.up(ctx, "dns", 3, true)
	if err != nil {
		sec.Err = err
		return
	}
	defer s.down(l)
	cluster := netip.MustParsePrefix(dnsCIDR)
	f := fabriclab.New(l, fabriclab.Options{Bin: s.cfg.Bin, Tunnel: "vxlan"})
	for i, h := range l.Hosts {
		extra := append([]string{"--cluster-cidr", dnsCIDR, "--subnet", fabric.NthSubnet(cluster, 24, i).String(), "--log-level", "warn"}, s.pipelineFlags(s.mainPipeline())...)
		if _, err := f.Start(ctx, h, extra...); err != nil {
			sec.Err = err
			return
		}
	}
	if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
		sec.Err = err
		return
	}
	n1, n2, n3 := f.Node("h1"), f.Node("h2"), f.Node("h3")
	clients := map[string]*dnsClient{}
	for _, n := range []*fabriclab.Node{n1, n2, n3} {
		c, err := f.AddContainer(ctx, n, "q-"+n.Host.Name, api.AttachRequest{Name: "q-" + n.Host.Name})
		if err != nil {
			sec.Err = err
			return
		}
		if clients[n.Host.Name], err = newDNSClient(c.Path, c.A.Gateway); err != nil {
			sec.Err = err
			return
		}
		defer clients[n.Host.Name].Close()
	}
	web, err := f.AddContainer(ctx, n2, "web", api.AttachRequest{Name: "web"})
	if err != nil {
		sec.Err = err
		return
	}
	if err := clients["h1"].await("web.", web.IP, 30*time.Second); err != nil {
		sec.Err = fmt.Errorf("h1 never served web: %w", err)
		return
	}

	// Latency: h1's container asks its own gateway for a name on h2, one query at a time.
	if r.latency, r.latencyLost, err = clients["h1"].latencies("web.", dnsLatencyQueries); err != nil {
		sec.Err = err
		return
	}
	s.logf("dns", "latency: %d queries, p50 %.0f µs, p99 %.0f µs", len(r.latency), Median(r.latency), Percentile(r.latency, 99))

	// Propagation: a new name attached on h1, until h2's and h3's gateways answer it.
	for i := range dnsPropagationTrials {
		name := fmt.Sprintf("new%02d", i)
		start := time.Now()
		c, err := f.AddContainer(ctx, n1, name, api.AttachRequest{Name: name})
		if err != nil {
			sec.Err = err
			return
		}
		r.attach = append(r.attach, ms(time.Since(start)))
		var last time.Duration
		for _, h := range []string{"h2", "h3"} {
			d, err := clients[h].pollUntil(name+".", c.IP, start, 10*time.Second)
			if err != nil {
				sec.Err = fmt.Errorf("%s on %s: %w", name, h, err)
				return
			}
			r.perHost = append(r.perHost, ms(d))
			last = max(last, d)
		}
		r.everyHost = append(r.everyHost, ms(last))
	}
	s.logf("dns", "propagation to every host: p50 %.0f ms, max %.0f ms", Median(r.everyHost), Summarize(r.everyHost).Max)

	// Queries per second: dnsQPSClients containers on h1 at once.
	var qcs []*dnsClient
	for i := range dnsQPSClients {
		c, err := f.AddContainer(ctx, n1, fmt.Sprintf("qps%02d", i), api.AttachRequest{})
		if err != nil {
			sec.Err = err
			return
		}
		qc, err := newDNSClient(c.Path, c.A.Gateway)
		if err != nil {
			sec.Err = err
			return
		}
		defer qc.Close()
		qcs = append(qcs, qc)
	}
	r.qps, r.qpsLost = hammer(ctx, qcs, "web.", dnsQPSTime)
	s.logf("dns", "%d clients: %.0f answers/s, %d unanswered", len(qcs), r.qps, r.qpsLost)

	// Memory with dnsNames names: synthetic hosts join h1 with endpoint records.
	r.rssBefore = s.sampleRSS(ctx, n1.Proc.PID(), 5)
	begin := time.Now()
	syn, err := startDNSSwarm(ctx, l, cluster, n1.Host.UnderlayIP)
	if err != nil {
		sec.Err = err
		return
	}
	defer syn.close()
	for {
		recs, err := n1.Client().DNSRecords(ctx, "")
		if err == nil {
			r.namesSeen = len(recs)
			if len(recs) >= dnsNames {
				break
			}
		}
		if time.Since(begin) > 2*time.Minute {
			sec.Err = fmt.Errorf("after 2 min h1 served %d of the %d synthetic names; the figure below is at that count", r.namesSeen, dnsNames)
			break
		}
		if err := sleepCtx(ctx, 500*time.Millisecond); err != nil {
			sec.Err = err
			return
		}
	}
	r.namesAfter = time.Since(begin)
	_ = sleepCtx(ctx, 3*time.Second)
	r.rssNames = s.sampleRSS(ctx, n1.Proc.PID(), 10)
	if r.latencyNames, r.latencyNamesLost, err = clients["h1"].latencies("web.", dnsLatencyQueries/4); err != nil {
		sec.Err = err
	}
	s.logf("dns", "with %d names: RSS median %.1f MiB (before %.1f)", r.namesSeen, Median(r.rssNames), Median(r.rssBefore))
}

// dnsFigures are the DNS section's measurements (latencies in µs, times in ms).
type dnsFigures struct {
	latency, latencyNames         []float64
	latencyLost, latencyNamesLost int
	attach, perHost, everyHost    []float64
	qps                           float64
	qpsLost                       int64
	rssBefore, rssNames           []float64
	namesSeen                     int
	namesAfter                    time.Duration
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func (s *suite) dnsReport(sec *Section, r *dnsFigures) {
	sec.Method = fmt.Sprintf("A 3-host VXLAN fabric (%s, cluster CIDR %s), one container per host asking its own host's "+
		"gateway over UDP from a socket in its namespace (this program's, with miekg/dns). Latency: %d queries one after "+
		"the other for a name on another host (the answer comes from h1's table). Propagation: %d times, a new netns "+
		"attached on h1 with --name; from the attach request until the gateways of h2 and of h3 answer the name (each "+
		"polled every 2 ms); 'every host' is the later of the two. Queries per second: %d containers on h1 ask h1's "+
		"gateway at once for %s, each with %d queries in flight and paced under %.0f/s (the server's per-client limit "+
		"is %d/s: beyond it queries are dropped, not answered), counting answers. Memory: fabricd's RSS on h1 (VmRSS, "+
		"10 samples 0.5 s apart) before and after %d synthetic hosts (bare memberlist members with a registry, run by "+
		"this program in the lab's external namespace) join with %d endpoint records each, %d names in all; they are %d more peers too (a tunnel port and a route each: "+
		"see Memory for what peers alone cost). The clients, OVS's userspace datapath and the three fabricd share the "+
		"machine's cores, so the queries-per-second figure is what this machine answers end to end, not the server's "+
		"ceiling (see `go test -bench . ./fabricdns/` for that, on loopback).",
		s.mainPipelineName(), dnsCIDR, dnsLatencyQueries, dnsPropagationTrials, dnsQPSClients, dnsQPSTime,
		dnsQPSWindow, dnsQPSClientRate, fabricdns.DefaultRateLimit, dnsSynthetic, dnsNames/dnsSynthetic, dnsNames, dnsSynthetic)
	lat, latN := Summarize(r.latency), Summarize(r.latencyNames)
	t := Table{Caption: "Query latency through the gateway, same host (µs)", Header: []string{"table", "answered", "unanswered in 1 s", "p50", "p90", "p99", "max"}}
	t.AddRow("the lab's few names", fmt.Sprint(lat.N), fmt.Sprint(r.latencyLost), num(lat.Median), num(lat.P90), num(lat.P99), num(lat.Max))
	t.AddRow(fmt.Sprintf("%d names", r.namesSeen), fmt.Sprint(latN.N), fmt.Sprint(r.latencyNamesLost), num(latN.Median), num(latN.P90), num(latN.P99), num(latN.Max))
	sec.Tables = append(sec.Tables, t)
	every, per, att := Summarize(r.everyHost), Summarize(r.perHost), Summarize(r.attach)
	t = Table{Caption: "Propagation of a new name (ms from the attach request)", Header: []string{"", "samples", "p50", "p90", "max"}}
	t.AddRow("the attach itself", fmt.Sprint(att.N), num(att.Median), num(att.P90), num(att.Max))
	t.AddRow("served by one other host", fmt.Sprint(per.N), num(per.Median), num(per.P90), num(per.Max))
	t.AddRow("served by every host", fmt.Sprint(every.N), num(every.Median), num(every.P90), num(every.Max))
	sec.Tables = append(sec.Tables, t)
	capQPS := dnsQPSClients * dnsQPSClientRate
	qps := "n/a"
	if r.qps > 0 {
		qps = fmt.Sprintf("%.0f", r.qps)
		if r.qps >= 0.95*capQPS {
			qps = "≥ " + qps + " (the clients' pacing cap)"
		}
	}
	rb, rn := Summarize(r.rssBefore), Summarize(r.rssNames)
	t = Table{Caption: "Throughput and memory", Header: []string{"", "value"}}
	t.AddRow(fmt.Sprintf("answers per second, %d clients on one host", dnsQPSClients), qps)
	t.AddRow("queries unanswered within 1 s meanwhile", fmt.Sprint(r.qpsLost))
	t.AddRow("fabricd RSS before the synthetic names (MiB, median, min–max)", num(rb.Median)+", "+spread(rb))
	t.AddRow(fmt.Sprintf("fabricd RSS with %d names (MiB, median, min–max)", r.namesSeen), num(rn.Median)+", "+spread(rn))
	if r.namesAfter > 0 {
		t.AddRow("the synthetic names all served after", r.namesAfter.Round(100*time.Millisecond).String())
	}
	sec.Tables = append(sec.Tables, t)
	med := math.NaN()
	if every.N > 0 {
		med = every.Median
	}
	v := Verdict{Target: "a new name served by every host within 1 s (median)", Measured: num(med) + " ms", Status: Check(med, med < 1000)}
	if v.Status == NotMeasured {
		v.Measured, v.Limit = "n/a", "not measured (see above)"
	}
	sec.Verdicts = append(sec.Verdicts, v,
		Verdict{Target: "query latency p50/p99, same host (reported)", Measured: fmt.Sprintf("%s / %s µs", num(lat.Median), num(lat.P99)), Status: map[bool]Status{true: Reported, false: NotMeasured}[lat.N > 0]},
		Verdict{Target: "queries per second one fabricd answers (reported)", Measured: qps, Status: map[bool]Status{true: Reported, false: NotMeasured}[r.qps > 0]},
		Verdict{Target: fmt.Sprintf("fabricd RSS with %d names (reported)", dnsNames), Measured: num(rn.Median) + " MiB", Status: map[bool]Status{true: Reported, false: NotMeasured}[rn.N > 0 && r.namesSeen >= dnsNames]},
	)
}

// inNetNS runs fn in the network namespace at path (containernetworking's ns package locks
// the OS thread and switches it back).
func inNetNS(path string, fn func() error) error {
	return ns.WithNetNSPath(path, func(ns.NetNS) error { return fn() })
}

// dnsClient asks one server from a UDP socket opened in a container's namespace (the
// socket stays in it whichever thread uses it).
type dnsClient struct {
	conn   *net.UDPConn
	nsPath string
	server *net.UDPAddr
	id     atomic.Uint32
}

func newDNSClient(nsPath, server string) (*dnsClient, error) {
	srv, err := net.ResolveUDPAddr("udp", net.JoinHostPort(server, "53"))
	if err != nil {
		return nil, err
	}
	c := &dnsClient{nsPath: nsPath, server: srv}
	err = inNetNS(nsPath, func() error {
		var err error
		c.conn, err = net.DialUDP("udp", nil, srv)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("socket in %s: %w", nsPath, err)
	}
	return c, nil
}

func (c *dnsClient) Close() { _ = c.conn.Close() }

// ask sends one A query on c's socket and waits for its answer (others are skipped).
func (c *dnsClient) ask(name string, timeout time.Duration) (*dns.Msg, error) {
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	q.Id = uint16(c.id.Add(1))
	b, err := q.Pack()
	if err != nil {
		return nil, err
	}
	_ = c.conn.SetDeadline(time.Now().Add(timeout))
	if _, err := c.conn.Write(b); err != nil {
		return nil, err
	}
	buf := make([]byte, 1500)
	for {
		n, err := c.conn.Read(buf)
		if err != nil {
			return nil, err
		}
		m := new(dns.Msg)
		if m.Unpack(buf[:n]) == nil && m.Id == q.Id {
			return m, nil
		}
	}
}

// answers says whether m's answer is exactly the A record ip.
func answers(m *dns.Msg, ip string) bool {
	if m == nil || m.Rcode != dns.RcodeSuccess || len(m.Answer) != 1 {
		return false
	}
	a, ok := m.Answer[0].(*dns.A)
	return ok && a.A.String() == ip
}

// await polls name until it answers ip or timeout passes.
func (c *dnsClient) await(name, ip string, timeout time.Duration) error {
	_, err := c.pollUntil(name, ip, time.Now(), timeout)
	return err
}

// pollUntil asks name every 2 ms until the answer is ip, and returns the time since start.
func (c *dnsClient) pollUntil(name, ip string, start time.Time, timeout time.Duration) (time.Duration, error) {
	var last error
	for time.Since(start) < timeout {
		m, err := c.ask(name, 500*time.Millisecond)
		if answers(m, ip) {
			return time.Since(start), nil
		}
		last = err
		if m != nil {
			last = fmt.Errorf("rcode %s, %d answers", dns.RcodeToString[m.Rcode], len(m.Answer))
		}
		time.Sleep(2 * time.Millisecond)
	}
	return 0, fmt.Errorf("not answered within %s: %v", timeout, last)
}

// latencies asks name n times one after the other and returns each answered round trip in
// µs, and how many queries got no answer within a second (UDP: a loss is the client's
// resolver's retry, not a failure; over a tenth lost is).
func (c *dnsClient) latencies(name string, n int) ([]float64, int, error) {
	out := make([]float64, 0, n)
	lost := 0
	for i := range n {
		t0 := time.Now()
		m, err := c.ask(name, time.Second)
		var ne net.Error
		switch {
		case errors.As(err, &ne) && ne.Timeout():
			if lost++; lost > n/10 {
				return out, lost, fmt.Errorf("%d of %d queries unanswered", lost, i+1)
			}
			continue
		case err != nil:
			return out, lost, fmt.Errorf("query %d: %w", i+1, err)
		case m.Rcode != dns.RcodeSuccess:
			return out, lost, fmt.Errorf("query %d: rcode %s", i+1, dns.RcodeToString[m.Rcode])
		}
		out = append(out, float64(time.Since(t0))/float64(time.Microsecond))
	}
	return out, lost, nil
}

// hammer has every client keep dnsQPSWindow queries for name in flight, each client paced
// under dnsQPSClientRate, for d; it returns the answers per second and the queries that went
// unanswered for a second.
func hammer(ctx context.Context, cs []*dnsClient, name string, d time.Duration) (float64, int64) {
	var answered, lost atomic.Int64
	ctx, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	q := new(dns.Msg)
	q.SetQuestion(name, dns.TypeA)
	tmpl, _ := q.Pack()
	gap := time.Second * 10 / time.Duration(10*dnsQPSClientRate)
	start := time.Now()
	var wg sync.WaitGroup
	for _, c := range cs {
		sent := make(chan time.Time, dnsQPSWindow)
		wg.Add(2)
		go func() { // sender: one query per gap while fewer than the window are in flight
			defer wg.Done()
			defer close(sent)
			b := slices.Clone(tmpl)
			next := time.Now()
			for i := 0; ctx.Err() == nil; i++ {
				if w := time.Until(next); w > 0 {
					time.Sleep(w)
				}
				next = next.Add(gap)
				b[0], b[1] = byte(i>>8), byte(i)
				select {
				case sent <- time.Now():
				case <-ctx.Done():
					return
				}
				if _, err := c.conn.Write(b); err != nil {
					return
				}
			}
		}()
		go func() { // receiver: frees a window slot per answer, or per second of silence
			defer wg.Done()
			buf := make([]byte, 1500)
			for t0 := range sent {
				_ = c.conn.SetReadDeadline(t0.Add(time.Second))
				if _, err := c.conn.Read(buf); err != nil {
					if ctx.Err() == nil {
						lost.Add(1)
					}
					continue
				}
				if ctx.Err() == nil {
					answered.Add(1)
				}
			}
		}()
	}
	<-ctx.Done()
	took := time.Since(start)
	wg.Wait()
	// Drain what arrived late, so the clients start clean if used again.
	for _, c := range cs {
		buf := make([]byte, 1500)
		for {
			_ = c.conn.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
			if _, err := c.conn.Read(buf); err != nil {
				break
			}
		}
	}
	return float64(answered.Load()) / took.Seconds(), lost.Load()
}

// dnsSwarm is a set of synthetic hosts, each a memberlist member with a registry holding
// endpoint records, running in this process with its sockets in the lab's external
// namespace.
type dnsSwarm struct {
	cancel context.CancelFunc
	lists  []*memberlist.Memberlist
	done   sync.WaitGroup
}

// nsTransport is memberlist's network transport with its listeners bound, and its
// outgoing connections dialled, in a network namespace.
type nsTransport struct {
	*memberlist.NetTransport
	ns string
}

func (t *nsTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	var c net.Conn
	err := inNetNS(t.ns, func() error {
		var err error
		c, err = net.DialTimeout("tcp", addr, timeout)
		return err
	})
	return c, err
}

func (t *nsTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.DialTimeout(a.Addr, timeout)
}

// synRegDelegate is a synthetic host's delegate: fabricd's metadata, and the registry for
// messages and push/pull.
type synRegDelegate struct {
	meta []byte
	reg  *registry.Registry
}

func (d *synRegDelegate) NodeMeta(int) []byte { return d.meta }
func (d *synRegDelegate) NotifyMsg(b []byte) {
	if registry.IsMessage(b) {
		d.reg.NotifyMsg(b)
	}
}
func (d *synRegDelegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.reg.GetBroadcasts(overhead, limit)
}
func (d *synRegDelegate) LocalState(join bool) []byte { return d.reg.LocalState(join) }
func (d *synRegDelegate) MergeRemoteState(buf []byte, join bool) {
	if registry.IsMessage(buf) {
		d.reg.MergeRemoteState(buf, join)
	}
}

// listSender sends registry messages reliably to a member of one memberlist by name.
type listSender struct {
	mu   sync.Mutex
	list *memberlist.Memberlist
}

func (s *listSender) SendTo(node string, msg []byte) error {
	s.mu.Lock()
	l := s.list
	s.mu.Unlock()
	if l == nil {
		return errors.New("not started")
	}
	for _, m := range l.Members() {
		if m.Name == node {
			return l.SendReliable(m, msg)
		}
	}
	return fmt.Errorf("no member %s", node)
}

// startDNSSwarm starts dnsSynthetic synthetic hosts in the lab's external namespace, each
// with dnsNames/dnsSynthetic endpoint records (named sNNeMMM) on the default network in its
// /24, and joins them to join (fabricd's gossip port).
func startDNSSwarm(ctx context.Context, l *lab.Lab, cluster netip.Prefix, join netip.Addr) (*dnsSwarm, error) {
	ctx, cancel := context.WithCancel(ctx)
	sw := &dnsSwarm{cancel: cancel}
	nsPath := "/var/run/netns/" + l.External
	per := dnsNames / dnsSynthetic
	for i := range dnsSynthetic {
		idx := dnsSynFirst + i
		name := fmt.Sprintf("%s%05d", synPrefix, idx)
		meta, err := synMeta(SwarmConfig{ClusterCIDR: cluster, Tunnel: "vxlan"}, idx-1)
		if err != nil {
			sw.close()
			return nil, err
		}
		send := &listSender{}
		reg, err := registry.New(registry.Config{Origin: name, Incarnation: 1, Sender: send})
		if err != nil {
			sw.close()
			return nil, err
		}
		subnet := fabric.NthSubnet(cluster, 24, idx)
		addr := subnet.Addr().Next()
		for j := range per {
			addr = addr.Next()
			r := endpoint.Record{Port: fmt.Sprintf("v%04d", j), Network: endpoint.DefaultNetwork, Container: fmt.Sprintf("s%02de%03d", i, j),
				IfName: "eth0", Addr: netip.PrefixFrom(addr, 24), Name: fmt.Sprintf("s%02de%03d", i, j)}
			if _, err := reg.Set(registry.KindEndpoint, endpoint.SharedKey(r), endpoint.EncodeShared(r)); err != nil {
				sw.close()
				return nil, fmt.Errorf("synthetic record: %w", err)
			}
		}
		sw.done.Add(1)
		go func() { defer sw.done.Done(); _ = reg.Run(ctx) }()
		var nt *memberlist.NetTransport
		port := dnsSynPort + i
		if err := inNetNS(nsPath, func() error {
			var err error
			nt, err = memberlist.NewNetTransport(&memberlist.NetTransportConfig{BindAddrs: []string{l.ExternalIP.String()}, BindPort: port,
				Logger: log.New(io.Discard, "", 0)})
			return err
		}); err != nil {
			sw.close()
			return nil, fmt.Errorf("synthetic host %s: %w", name, err)
		}
		d := &synRegDelegate{meta: meta, reg: reg}
		mc := memberlist.DefaultLANConfig()
		mc.Name = name
		mc.Transport = &nsTransport{NetTransport: nt, ns: nsPath}
		mc.AdvertiseAddr, mc.AdvertisePort = l.ExternalIP.String(), port
		mc.Label = peers.GossipLabel
		mc.ProbeInterval, mc.ProbeTimeout = 5*time.Second, 2*time.Second
		mc.Delegate = d
		mc.Logger = log.New(io.Discard, "", 0)
		list, err := memberlist.Create(mc)
		if err != nil {
			_ = nt.Shutdown()
			sw.close()
			return nil, fmt.Errorf("synthetic host %s: %w", name, err)
		}
		send.mu.Lock()
		send.list = list
		send.mu.Unlock()
		sw.lists = append(sw.lists, list)
		if _, err := list.Join([]string{netip.AddrPortFrom(join, 7946).String()}); err != nil {
			sw.close()
			return nil, fmt.Errorf("synthetic host %s: join: %w", name, err)
		}
	}
	return sw, nil
}

// close shuts the synthetic hosts down without leaving (a crash, to fabricd).
func (sw *dnsSwarm) close() {
	sw.cancel()
	for _, l := range sw.lists {
		_ = l.Shutdown()
	}
	sw.done.Wait()
}

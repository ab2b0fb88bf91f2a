package fabricdns

import (
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/miekg/dns"
)

var (
	blueNet = Network{Name: "blue", Subnets: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16"), netip.MustParsePrefix("fd00:1::/64")}}
	redNet  = Network{Name: "red", Subnets: []netip.Prefix{netip.MustParsePrefix("10.2.0.0/16")}}
)

// testRecords: web on blue and red (different addresses), db on blue with a v6 address too,
// two blue endpoints sharing the alias "api".
func testRecords() []Record {
	return []Record{
		{Network: "blue", Name: "web", Addr: netip.MustParseAddr("10.1.1.2"), Origin: "h1"},
		{Network: "red", Name: "web", Addr: netip.MustParseAddr("10.2.1.2"), Origin: "h1"},
		{Network: "blue", Name: "db", Addr: netip.MustParseAddr("10.1.2.3"), Origin: "h2"},
		{Network: "blue", Name: "db", Addr: netip.MustParseAddr("fd00:1::3"), Origin: "h2"},
		{Network: "blue", Name: "api-1", Aliases: []string{"api", "API.v1"}, Addr: netip.MustParseAddr("10.1.1.10"), Origin: "h1"},
		{Network: "blue", Name: "api-2", Aliases: []string{"api"}, Addr: netip.MustParseAddr("10.1.3.10"), Origin: "h3"},
		{Network: "red", Name: "secret", Addr: netip.MustParseAddr("10.2.9.9"), Origin: "h3"},
	}
}

func testTable(t testing.TB) *Table {
	t.Helper()
	tab := NewTable()
	if err := tab.SetNetworks([]Network{blueNet, redNet}); err != nil {
		t.Fatal(err)
	}
	if err := tab.Replace(testRecords()); err != nil {
		t.Fatal(err)
	}
	return tab
}

// startUpstream runs a tiny upstream resolver on 127.0.0.1 (UDP and TCP, one port): it
// answers NAME.example. with 192.0.2.1, "big.example." with 100 A records (truncated over
// UDP), and NXDOMAIN for everything else.
func startUpstream(t testing.TB) netip.AddrPort {
	t.Helper()
	h := dns.HandlerFunc(func(w dns.ResponseWriter, r *dns.Msg) {
		m := new(dns.Msg).SetReply(r)
		m.RecursionAvailable = true
		q := r.Question[0]
		_, udp := w.RemoteAddr().(*net.UDPAddr)
		switch {
		case q.Name == "big.example." && q.Qtype == dns.TypeA:
			for i := range 100 {
				m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, byte(i))})
			}
			if udp {
				m.Truncate(512)
			}
		case dns.IsSubDomain("example.", q.Name) && q.Qtype == dns.TypeA:
			m.Answer = append(m.Answer, &dns.A{Hdr: dns.RR_Header{Name: q.Name, Rrtype: dns.TypeA, Class: dns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)})
		default:
			m.Rcode = dns.RcodeNameError
		}
		_ = w.WriteMsg(m)
	})
	var pc net.PacketConn
	var ln net.Listener
	var port int
	for try := 0; ; try++ {
		var err error
		if pc, err = net.ListenPacket("udp4", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		port = pc.LocalAddr().(*net.UDPAddr).Port
		if ln, err = net.Listen("tcp4", net.JoinHostPort("127.0.0.1", strconv.Itoa(port))); err == nil {
			break
		}
		pc.Close()
		if try == 10 {
			t.Fatal(err) // the kernel picked a UDP port whose TCP twin is busy, ten times
		}
	}
	udp := &dns.Server{PacketConn: pc, Handler: h}
	tcp := &dns.Server{Listener: ln, Handler: h}
	go func() { _ = udp.ActivateAndServe() }()
	go func() { _ = tcp.ActivateAndServe() }()
	t.Cleanup(func() { _ = udp.Shutdown(); _ = tcp.Shutdown() })
	return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
}

// deadUpstream is an address where nothing listens (a port just freed): queries to it fail
// at once with "connection refused".
func deadUpstream(t testing.TB) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ap := pc.LocalAddr().(*net.UDPAddr).AddrPort()
	pc.Close()
	return ap
}

func newTestServer(t testing.TB, dir Directory, cfg Config) *Server {
	t.Helper()
	cfg.Directory = dir
	if cfg.Port == 0 {
		cfg.Port = AnyPort
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = -1
	}
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func question(name string, qtype uint16) *dns.Msg {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	return m
}

func pack(t testing.TB, m *dns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

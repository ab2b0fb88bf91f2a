package fabricdns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// Loopback networks: everything in 127.0.0.0/8 is on lo, so a test can bind listeners and
// pick client source addresses in two "networks" without touching any interface.
var (
	loBlue = Network{Name: "blue", Subnets: []netip.Prefix{netip.MustParsePrefix("127.1.0.0/16")}}
	loRed  = Network{Name: "red", Subnets: []netip.Prefix{netip.MustParsePrefix("127.2.0.0/16")}}
	blueGW = Listener{Network: "blue", Addr: netip.MustParseAddr("127.1.0.1")}
	redGW  = Listener{Network: "red", Addr: netip.MustParseAddr("127.2.0.1")}
)

func loTable(t testing.TB) *Table {
	t.Helper()
	tab := NewTable()
	if err := tab.SetNetworks([]Network{loBlue, loRed}); err != nil {
		t.Fatal(err)
	}
	if err := tab.Replace(testRecords()); err != nil {
		t.Fatal(err)
	}
	return tab
}

// ask sends one query from source address src over proto ("udp" or "tcp").
func ask(t testing.TB, proto string, src netip.Addr, server netip.AddrPort, m *dns.Msg) (*dns.Msg, error) {
	t.Helper()
	d := &net.Dialer{Timeout: 5 * time.Second}
	if proto == "udp" {
		d.LocalAddr = net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	} else {
		d.LocalAddr = net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))
	}
	c := &dns.Client{Net: proto, Dialer: d, Timeout: 10 * time.Second}
	in, _, err := c.Exchange(m, server.String())
	return in, err
}

func TestServeUDPAndTCP(t *testing.T) {
	up := startUpstream(t)
	s := newTestServer(t, loTable(t), Config{Upstreams: []netip.AddrPort{up}})
	if err := s.Set([]Listener{blueGW, redGW}); err != nil {
		t.Fatal(err)
	}
	addrs := s.Addrs()
	blueSrc, redSrc := netip.MustParseAddr("127.1.0.5"), netip.MustParseAddr("127.2.0.5")
	for _, proto := range []string{"udp", "tcp"} {
		for _, tt := range []struct {
			name   string
			src    netip.Addr
			via    Listener
			q      string
			rcode  int
			answer string // the first answer's address, "" for none
			count  int
		}{
			{"blue name", blueSrc, blueGW, "web.", dns.RcodeSuccess, "10.1.1.2", 1},
			{"red name", redSrc, redGW, "web.red.", dns.RcodeSuccess, "10.2.1.2", 1},
			{"alias", blueSrc, blueGW, "api.", dns.RcodeSuccess, "10.1.1.10", 2},
			{"isolation: red client at blue's gateway", redSrc, blueGW, "web.", dns.RcodeRefused, "", 0},
			{"isolation: red name from blue", blueSrc, blueGW, "secret.", dns.RcodeNameError, "", 0},
			{"forwarded", blueSrc, blueGW, "www.example.", dns.RcodeSuccess, "192.0.2.1", 1},
		} {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				in, err := ask(t, proto, tt.src, addrs[tt.via], question(tt.q, dns.TypeA))
				if err != nil {
					t.Fatal(err)
				}
				if in.Rcode != tt.rcode {
					t.Fatalf("rcode %s, want %s", dns.RcodeToString[in.Rcode], dns.RcodeToString[tt.rcode])
				}
				if len(in.Answer) != tt.count {
					t.Fatalf("%d answers, want %d: %v", len(in.Answer), tt.count, in.Answer)
				}
				if tt.count > 0 && in.Answer[0].(*dns.A).A.String() != tt.answer {
					t.Errorf("answer %v, want %s", in.Answer[0], tt.answer)
				}
			})
		}
	}
	// A forwarded answer too big for UDP: the upstream truncates, fabricdns retries it over
	// TCP and passes on what fits the client's transport.
	t.Run("forwarded, truncated upstream", func(t *testing.T) {
		in, err := ask(t, "udp", blueSrc, addrs[blueGW], question("big.example.", dns.TypeA))
		if err != nil {
			t.Fatal(err)
		}
		in.Compress = true // as it was sent
		if !in.Truncated || in.Len() > 512 {
			t.Errorf("UDP answer TC=%v, %d bytes; want TC within 512", in.Truncated, in.Len())
		}
		in, err = ask(t, "tcp", blueSrc, addrs[blueGW], question("big.example.", dns.TypeA))
		if err != nil {
			t.Fatal(err)
		}
		if in.Truncated || len(in.Answer) != 100 {
			t.Errorf("TCP answer TC=%v with %d records; want all 100", in.Truncated, len(in.Answer))
		}
	})
	st := s.Stats()
	if st.Queries < 14 || st.Answered < 8 || st.Forwarded < 4 || st.Refused < 2 {
		t.Errorf("stats %+v do not count the queries above", st)
	}
}

func TestSetLevelTriggered(t *testing.T) {
	s := newTestServer(t, loTable(t), Config{Upstreams: []netip.AddrPort{deadUpstream(t)}})
	if err := s.Set([]Listener{blueGW, redGW}); err != nil {
		t.Fatal(err)
	}
	first := s.Addrs()
	if len(first) != 2 {
		t.Fatalf("Addrs() = %v, want two", first)
	}
	if err := s.Set([]Listener{redGW, blueGW}); err != nil {
		t.Fatal(err)
	}
	if again := s.Addrs(); again[blueGW] != first[blueGW] || again[redGW] != first[redGW] {
		t.Errorf("a repeated Set reopened sockets: %v then %v", first, again)
	}
	if err := s.Set([]Listener{blueGW}); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.Addrs()[redGW]; ok {
		t.Error("red's listener still listed")
	}
	if c, err := net.DialTimeout("tcp", first[redGW].String(), 5*time.Second); err == nil {
		c.Close()
		t.Error("red's TCP socket still accepts")
	}
	if _, err := ask(t, "udp", netip.MustParseAddr("127.1.0.5"), first[blueGW], question("web.", dns.TypeA)); err != nil {
		t.Errorf("blue stopped answering: %v", err)
	}
	if err := s.Set([]Listener{{Network: "", Addr: netip.MustParseAddr("127.3.0.1")}}); err == nil {
		t.Error("Set accepted a listener without a network")
	}
	if len(s.Addrs()) != 0 {
		t.Errorf("after Set with no valid listener: %v still open", s.Addrs())
	}
}

func TestForwardServfail(t *testing.T) {
	dead := deadUpstream(t)
	s := newTestServer(t, loTable(t), Config{Upstreams: []netip.AddrPort{dead}, ForwardTimeout: time.Second})
	if err := s.Set([]Listener{blueGW}); err != nil {
		t.Fatal(err)
	}
	m := question("www.example.", dns.TypeA)
	m.SetEdns0(1232, false)
	in, err := ask(t, "udp", netip.MustParseAddr("127.1.0.5"), s.Addrs()[blueGW], m)
	if err != nil {
		t.Fatal(err)
	}
	if in.Rcode != dns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", dns.RcodeToString[in.Rcode])
	}
	var ede *dns.EDNS0_EDE
	if opt := in.IsEdns0(); opt != nil {
		for _, o := range opt.Option {
			if e, ok := o.(*dns.EDNS0_EDE); ok {
				ede = e
			}
		}
	}
	if ede == nil || ede.InfoCode != dns.ExtendedErrorCodeNoReachableAuthority || !strings.Contains(ede.ExtraText, dead.String()) {
		t.Errorf("extended error %v, want 'No Reachable Authority' naming %s", ede, dead)
	}
	if st := s.Stats(); st.ForwardFailed != 1 {
		t.Errorf("ForwardFailed = %d, want 1", st.ForwardFailed)
	}
}

func TestPortTaken(t *testing.T) {
	holder, err := net.ListenPacket("udp4", "127.1.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Close()
	port := holder.LocalAddr().(*net.UDPAddr).Port
	s := newTestServer(t, loTable(t), Config{Port: port, Upstreams: []netip.AddrPort{deadUpstream(t)}})
	err = s.Set([]Listener{blueGW, redGW})
	if !errors.Is(err, ErrPortTaken) {
		t.Fatalf("Set error %v, want ErrPortTaken", err)
	}
	for _, want := range []string{fmt.Sprintf("127.1.0.1:%d/udp", port), fmt.Sprintf("pid %d", os.Getpid()), "network blue"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if _, ok := s.Addrs()[redGW]; !ok {
		t.Error("red's listener, whose port is free, was not opened")
	}
	holder.Close()
	if err := s.Set([]Listener{blueGW, redGW}); err != nil {
		t.Errorf("the next Set after the port was freed: %v", err)
	}
}

// TestRateLimitUDP: one client's flood is cut to its bucket; the rest are dropped unanswered.
func TestRateLimitUDP(t *testing.T) {
	s := newTestServer(t, loTable(t), Config{RateLimit: 1, RateBurst: 5, Upstreams: []netip.AddrPort{deadUpstream(t)}})
	if err := s.Set([]Listener{blueGW}); err != nil {
		t.Fatal(err)
	}
	c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.1.0.9:0")), net.UDPAddrFromAddrPort(s.Addrs()[blueGW]))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw := pack(t, question("web.", dns.TypeA))
	const sent = 50
	start := time.Now()
	for range sent {
		if _, err := c.Write(raw); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	buf := make([]byte, 1500)
	for {
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		if _, err := c.Read(buf); err != nil {
			break
		}
		got++
	}
	// 5 at once, then 1 per second: a loaded machine may stretch the exchange, so allow for
	// the refill over the time it took.
	allowed := 5 + int(time.Since(start).Seconds()) + 1
	if got == 0 || got > allowed {
		t.Errorf("%d of %d answered, want 1..%d", got, sent, allowed)
	}
	if st := s.Stats(); st.Dropped < uint64(sent-allowed) {
		t.Errorf("Dropped = %d, want at least %d", st.Dropped, sent-allowed)
	}
}

// TestSetDuringForward: removing a listener does not wait for a TCP query it is forwarding
// to an upstream that never answers.
func TestSetDuringForward(t *testing.T) {
	hole, err := net.ListenPacket("udp4", "127.0.0.1:0") // reads nothing, answers nothing
	if err != nil {
		t.Fatal(err)
	}
	defer hole.Close()
	up := hole.LocalAddr().(*net.UDPAddr).AddrPort()
	s := newTestServer(t, loTable(t), Config{Upstreams: []netip.AddrPort{up}, ForwardTimeout: time.Minute})
	if err := s.Set([]Listener{blueGW}); err != nil {
		t.Fatal(err)
	}
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.1.0.5:0"))}
	c, err := d.Dial("tcp", s.Addrs()[blueGW].String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	raw := pack(t, question("www.example.", dns.TypeA))
	if _, err := c.Write(append([]byte{0, byte(len(raw))}, raw...)); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); s.Stats().Forwarded == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the query was never forwarded")
		}
	}
	done := make(chan error, 1)
	go func() { done <- s.Set(nil) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(forwardBudget - time.Second):
		t.Fatal("Set waited for the forwarded query")
	}
}

// TestTCPPipelined: a TCP client may send several queries on one connection and gets the
// answers in order.
func TestTCPPipelined(t *testing.T) {
	s := newTestServer(t, loTable(t), Config{Upstreams: []netip.AddrPort{deadUpstream(t)}})
	if err := s.Set([]Listener{blueGW}); err != nil {
		t.Fatal(err)
	}
	d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.MustParseAddrPort("127.1.0.5:0"))}
	nc, err := d.Dial("tcp", s.Addrs()[blueGW].String())
	if err != nil {
		t.Fatal(err)
	}
	c := &dns.Conn{Conn: nc}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	names := []string{"web.", "db.", "api."}
	for _, n := range names {
		if err := c.WriteMsg(question(n, dns.TypeA)); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range names {
		in, err := c.ReadMsg()
		if err != nil {
			t.Fatal(err)
		}
		if in.Question[0].Name != n || len(in.Answer) == 0 {
			t.Errorf("answer %v, want addresses of %s", in, n)
		}
	}
}

// TestAnyNetwork: the one listener of every network answers each client as a client of its
// own network (by source address), among the networks the server has listeners for; any
// other client is refused.
func TestAnyNetwork(t *testing.T) {
	up := startUpstream(t)
	s := newTestServer(t, loTable(t), Config{Upstreams: []netip.AddrPort{up}})
	anyL := Listener{Network: AnyNetwork, Addr: netip.MustParseAddr("127.0.53.53")}
	if err := s.Set([]Listener{blueGW, redGW, anyL}); err != nil {
		t.Fatal(err)
	}
	blueSrc, redSrc, noneSrc := netip.MustParseAddr("127.1.0.5"), netip.MustParseAddr("127.2.0.5"), netip.MustParseAddr("127.3.0.5")
	for _, proto := range []string{"udp", "tcp"} {
		for _, tt := range []struct {
			name   string
			src    netip.Addr
			q      string
			rcode  int
			answer string
		}{
			{"blue client, blue name", blueSrc, "web.", dns.RcodeSuccess, "10.1.1.2"},
			{"red client, red name", redSrc, "web.", dns.RcodeSuccess, "10.2.1.2"},
			{"red client, red-only name", redSrc, "secret.", dns.RcodeSuccess, "10.2.9.9"},
			{"isolation: blue client, red-only name", blueSrc, "secret.", dns.RcodeNameError, ""},
			{"isolation: blue client, NAME.red", blueSrc, "secret.red.", dns.RcodeNameError, ""},
			{"forwarded", blueSrc, "www.example.", dns.RcodeSuccess, "192.0.2.1"},
			{"client of no network", noneSrc, "web.", dns.RcodeRefused, ""},
		} {
			t.Run(proto+"/"+tt.name, func(t *testing.T) {
				in, err := ask(t, proto, tt.src, s.Addrs()[anyL], question(tt.q, dns.TypeA))
				if err != nil {
					t.Fatal(err)
				}
				if in.Rcode != tt.rcode {
					t.Fatalf("rcode %s, want %s", dns.RcodeToString[in.Rcode], dns.RcodeToString[tt.rcode])
				}
				got := ""
				if len(in.Answer) > 0 {
					got = in.Answer[0].(*dns.A).A.String()
				}
				if got != tt.answer {
					t.Errorf("answer %q, want %q", got, tt.answer)
				}
			})
		}
	}
	// A network the table knows but this server has no listener for (this host does not
	// serve it): its clients are refused on the shared address too.
	if err := s.Set([]Listener{blueGW, anyL}); err != nil {
		t.Fatal(err)
	}
	in, err := ask(t, "udp", redSrc, s.Addrs()[anyL], question("web.", dns.TypeA))
	if err != nil {
		t.Fatal(err)
	}
	if in.Rcode != dns.RcodeRefused {
		t.Errorf("red client without a red listener: rcode %s, want REFUSED", dns.RcodeToString[in.Rcode])
	}
}

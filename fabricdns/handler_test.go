package fabricdns

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// answers renders a response's answer section compactly: "A 10.1.1.2", "PTR web.blue.".
func answers(m *dns.Msg) []string {
	var out []string
	for _, rr := range m.Answer {
		switch r := rr.(type) {
		case *dns.A:
			out = append(out, "A "+r.A.String())
		case *dns.AAAA:
			out = append(out, "AAAA "+r.AAAA.String())
		case *dns.PTR:
			out = append(out, "PTR "+r.Ptr)
		default:
			out = append(out, rr.String())
		}
	}
	return out
}

func TestAnswers(t *testing.T) {
	up := startUpstream(t)
	tab := testTable(t)
	s := newTestServer(t, tab, Config{Upstreams: []netip.AddrPort{up}})
	blueClient := netip.MustParseAddr("10.1.7.7")
	// A container on blue and red: its blue address asks blue's server.
	both := netip.MustParseAddr("10.1.7.8")
	tab.SetAlso(map[netip.Addr][]string{both: {"red"}})
	redClient := netip.MustParseAddr("10.2.7.7")
	outsider := netip.MustParseAddr("192.168.1.1")
	tests := []struct {
		name    string
		network string
		client  netip.Addr
		q       string
		qtype   uint16
		rcode   int
		want    []string
		aa      bool // answered by us, authoritatively
	}{
		{"name", "blue", blueClient, "web.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.1.1.2"}, true},
		{"name.network", "blue", blueClient, "web.blue.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.1.1.2"}, true},
		{"case-insensitive", "blue", blueClient, "WeB.BLUE.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.1.1.2"}, true},
		{"same name, other network", "red", redClient, "web.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.2.1.2"}, true},
		{"shared alias: every address", "blue", blueClient, "api.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.1.1.10", "A 10.1.3.10"}, true},
		{"alias.network", "blue", blueClient, "api.blue.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.1.1.10", "A 10.1.3.10"}, true},
		{"dotted alias", "blue", blueClient, "api.v1.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.1.1.10"}, true},
		{"AAAA of a v4-only name: NODATA", "blue", blueClient, "web.", dns.TypeAAAA, dns.RcodeSuccess, nil, true},
		{"AAAA of a dual-stack name", "blue", blueClient, "db.", dns.TypeAAAA, dns.RcodeSuccess, []string{"AAAA fd00:1::3"}, true},
		{"A of a dual-stack name", "blue", blueClient, "db.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.1.2.3"}, true},
		{"ANY of a known name: every address", "blue", blueClient, "db.", dns.TypeANY, dns.RcodeSuccess, []string{"A 10.1.2.3", "AAAA fd00:1::3"}, true},
		{"unknown type of a known name: NODATA", "blue", blueClient, "web.", dns.TypeMX, dns.RcodeSuccess, nil, true},
		{"unassigned type of a known name: NODATA", "blue", blueClient, "web.", 65280, dns.RcodeSuccess, nil, true},
		{"PTR", "blue", blueClient, "2.1.1.10.in-addr.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"PTR web.blue."}, true},
		{"PTR v6", "blue", blueClient, "3.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.1.0.0.0.0.0.d.f.ip6.arpa.", dns.TypePTR, dns.RcodeSuccess, []string{"PTR db.blue."}, true},
		{"PTR of an unknown address in the network", "blue", blueClient, "99.9.1.10.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, nil, true},
		{"PTR of another network's endpoint", "blue", blueClient, "9.9.2.10.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, nil, true},
		{"isolation: other network's name", "blue", blueClient, "secret.", dns.TypeA, dns.RcodeNameError, nil, true},
		{"a container on two networks: the other network's name", "blue", both, "secret.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.2.9.9"}, true},
		{"a container on two networks: its own network first", "blue", both, "web.", dns.TypeA, dns.RcodeSuccess, []string{"A 10.1.1.2"}, true},
		{"a container on two networks: unknown everywhere", "blue", both, "nosuch.", dns.TypeA, dns.RcodeNameError, nil, true},
		{"isolation: other network's NAME.NETWORK", "blue", blueClient, "secret.red.", dns.TypeA, dns.RcodeNameError, nil, true},
		{"isolation: other network's name, asked as NAME.NETWORK", "red", redClient, "db.blue.", dns.TypeA, dns.RcodeNameError, nil, true},
		{"isolation: other network's PTR", "red", redClient, "3.2.1.10.in-addr.arpa.", dns.TypePTR, dns.RcodeNameError, nil, true},
		{"isolation: client outside the listener's network", "blue", redClient, "web.", dns.TypeA, dns.RcodeRefused, nil, false},
		{"outsider refused", "blue", outsider, "web.", dns.TypeA, dns.RcodeRefused, nil, false},
		{"outsider not forwarded for", "blue", outsider, "www.example.", dns.TypeA, dns.RcodeRefused, nil, false},
		{"unknown single label", "blue", blueClient, "nosuch.", dns.TypeA, dns.RcodeNameError, nil, true},
		{"unknown NAME.NETWORK", "blue", blueClient, "nosuch.blue.", dns.TypeA, dns.RcodeNameError, nil, true},
		{"forwarded", "blue", blueClient, "www.example.", dns.TypeA, dns.RcodeSuccess, []string{"A 192.0.2.1"}, false},
		{"forwarded NXDOMAIN", "blue", blueClient, "nosuch.test.", dns.TypeA, dns.RcodeNameError, nil, false},
		{"zone transfer refused", "blue", blueClient, "blue.", dns.TypeAXFR, dns.RcodeRefused, nil, false},
		{"OPT as a question", "blue", blueClient, "web.", dns.TypeOPT, dns.RcodeFormatError, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := question(tt.q, tt.qtype)
			raw := pack(t, req)
			b := s.handle(context.Background(), query{network: tt.network, client: tt.client, raw: raw})
			if b == nil {
				t.Fatal("dropped")
			}
			resp := new(dns.Msg)
			if err := resp.Unpack(b); err != nil {
				t.Fatalf("unpacking answer: %v", err)
			}
			if resp.Id != req.Id || !resp.Response {
				t.Errorf("id %d response %v, want id %d and a response", resp.Id, resp.Response, req.Id)
			}
			if resp.Rcode != tt.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tt.rcode])
			}
			if got := answers(resp); !slices.Equal(got, tt.want) {
				t.Errorf("answers %q, want %q", got, tt.want)
			}
			if resp.Authoritative != tt.aa {
				t.Errorf("authoritative %v, want %v", resp.Authoritative, tt.aa)
			}
			for _, rr := range resp.Answer {
				if tt.aa && rr.Header().Ttl > MaxTTL {
					t.Errorf("TTL %d over %d", rr.Header().Ttl, MaxTTL)
				}
			}
			if resp.Rcode == dns.RcodeRefused || resp.Rcode == dns.RcodeFormatError {
				if len(b) > len(raw) {
					t.Errorf("error answer of %d bytes to a %d-byte query", len(b), len(raw))
				}
			}
		})
	}
}

// rawQuery builds a query by hand, for what miekg/dns refuses to pack.
func rawQuery(id uint16, flags uint16, qdcount uint16, body []byte) []byte {
	b := make([]byte, 12, 12+len(body))
	binary.BigEndian.PutUint16(b[0:], id)
	binary.BigEndian.PutUint16(b[2:], flags)
	binary.BigEndian.PutUint16(b[4:], qdcount)
	return append(b, body...)
}

// wireName encodes labels without checks.
func wireName(labels ...string) []byte {
	var b []byte
	for _, l := range labels {
		b = append(b, byte(len(l)))
		b = append(b, l...)
	}
	return append(b, 0)
}

func TestBadInput(t *testing.T) {
	s := newTestServer(t, testTable(t), Config{Upstreams: []netip.AddrPort{deadUpstream(t)}})
	client := netip.MustParseAddr("10.1.7.7")
	qtail := []byte{0, 1, 0, 1} // A IN
	long63 := strings.Repeat("a", 63)
	multi := question("web.", dns.TypeA)
	multi.Question = append(multi.Question, dns.Question{Name: "db.", Qtype: dns.TypeA, Qclass: dns.ClassINET})
	notify := question("web.", dns.TypeSOA)
	notify.Opcode = dns.OpcodeNotify
	chaos := question("version.bind.", dns.TypeTXT)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	anyClass := question("web.", dns.TypeA)
	anyClass.Question[0].Qclass = dns.ClassANY
	badVers := question("web.", dns.TypeA)
	badVers.SetEdns0(1232, false)
	badVers.IsEdns0().SetVersion(1)
	withAnswer := question("web.", dns.TypeA)
	withAnswer.Answer = []dns.RR{&dns.A{Hdr: dns.RR_Header{Name: "x.", Rrtype: dns.TypeA, Class: dns.ClassINET}, A: []byte{1, 2, 3, 4}}}
	response := question("web.", dns.TypeA)
	response.Response = true

	tests := []struct {
		name  string
		raw   []byte
		rcode int // -1: dropped
	}{
		{"empty", nil, -1},
		{"short header", []byte{1, 2, 3}, -1},
		{"a response", pack(t, response), -1},
		{"header only, no question", rawQuery(7, 0x0100, 0, nil), dns.RcodeFormatError},
		{"truncated question", rawQuery(7, 0x0100, 1, []byte{3, 'w', 'e'}), dns.RcodeFormatError},
		{"question without type", rawQuery(7, 0x0100, 1, wireName("web")), dns.RcodeFormatError},
		{"label over 63 bytes", rawQuery(7, 0x0100, 1, append(wireName(long63+"a"), qtail...)), dns.RcodeFormatError},
		{"name over 255 bytes", rawQuery(7, 0x0100, 1, append(wireName(long63, long63, long63, long63, "x"), qtail...)), dns.RcodeFormatError},
		{"compression loop", rawQuery(7, 0x0100, 1, append([]byte{0xc0, 12}, qtail...)), dns.RcodeFormatError},
		{"two questions", pack(t, multi), dns.RcodeFormatError},
		{"records in a query", pack(t, withAnswer), dns.RcodeFormatError},
		{"NOTIFY", pack(t, notify), dns.RcodeNotImplemented},
		{"CHAOS class", pack(t, chaos), dns.RcodeRefused},
		{"ANY class", pack(t, anyClass), dns.RcodeRefused},
		{"EDNS version 1", pack(t, badVers), dns.RcodeBadVers},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.Stats()
			b := s.handle(context.Background(), query{network: "blue", client: client, raw: tt.raw})
			if tt.rcode == -1 {
				if b != nil {
					t.Fatalf("answered %x, want a drop", b)
				}
				if s.Stats().Dropped != before.Dropped+1 {
					t.Errorf("dropped counter did not move")
				}
				return
			}
			if b == nil {
				t.Fatal("dropped, want an answer")
			}
			if len(b) > len(tt.raw) {
				t.Errorf("answer of %d bytes to a %d-byte query: amplification", len(b), len(tt.raw))
			}
			resp := new(dns.Msg)
			if err := resp.Unpack(b); err != nil {
				t.Fatalf("unpacking answer: %v", err)
			}
			if resp.Rcode != tt.rcode {
				t.Errorf("rcode %s, want %s", dns.RcodeToString[resp.Rcode], dns.RcodeToString[tt.rcode])
			}
			if resp.Id != 7 && binary.BigEndian.Uint16(tt.raw) != resp.Id {
				t.Errorf("id %d, not the query's", resp.Id)
			}
		})
	}
}

func TestTruncation(t *testing.T) {
	tab := NewTable()
	if err := tab.SetNetworks([]Network{blueNet}); err != nil {
		t.Fatal(err)
	}
	var recs []Record
	for i := range 100 {
		recs = append(recs, Record{Network: "blue", Name: fmt.Sprintf("w%d", i), Aliases: []string{"many"}, Addr: netip.AddrFrom4([4]byte{10, 1, 5, byte(i)})})
	}
	if err := tab.Replace(recs); err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, tab, Config{Upstreams: []netip.AddrPort{deadUpstream(t)}})
	client := netip.MustParseAddr("10.1.7.7")
	edns := question("many.", dns.TypeA)
	edns.SetEdns0(4096, false)
	for _, tt := range []struct {
		name    string
		req     *dns.Msg
		tcp     bool
		limit   int
		tc      bool
		answers int
	}{
		{"UDP without EDNS: 512 bytes", question("many.", dns.TypeA), false, 512, true, -1},
		{"UDP with EDNS 4096: capped at 1232", edns, false, maxUDPSize, true, -1},
		{"TCP: all of them", question("many.", dns.TypeA), true, 65535, false, 100},
	} {
		t.Run(tt.name, func(t *testing.T) {
			b := s.handle(context.Background(), query{network: "blue", client: client, raw: pack(t, tt.req), tcp: tt.tcp})
			if len(b) > tt.limit {
				t.Fatalf("answer of %d bytes over the limit %d", len(b), tt.limit)
			}
			resp := new(dns.Msg)
			if err := resp.Unpack(b); err != nil {
				t.Fatal(err)
			}
			if resp.Truncated != tt.tc {
				t.Errorf("TC %v, want %v", resp.Truncated, tt.tc)
			}
			if tt.answers >= 0 && len(resp.Answer) != tt.answers {
				t.Errorf("%d answers, want %d", len(resp.Answer), tt.answers)
			}
		})
	}
}

func TestReverseName(t *testing.T) {
	for _, tt := range []struct {
		in   string
		want string
	}{
		{"4.3.2.1.in-addr.arpa", "1.2.3.4"},
		{"4.3.2.01.in-addr.arpa", ""},
		{"4.3.2.256.in-addr.arpa", ""},
		{"3.2.1.in-addr.arpa", ""},
		{"x.3.2.1.in-addr.arpa", ""},
		{"1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", "2001:db8::1"},
		{"g.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", ""},
		{"10.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa", ""},
		{"1.0.ip6.arpa", ""},
		{"web", ""},
	} {
		a, ok := reverseName(tt.in)
		got := ""
		if ok {
			got = a.String()
		}
		if got != tt.want {
			t.Errorf("reverseName(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// TestEDNS: an answer to an EDNS query carries OPT (our 1232-byte buffer, DO clear), one to a
// plain query none.
func TestEDNS(t *testing.T) {
	s := newTestServer(t, testTable(t), Config{Upstreams: []netip.AddrPort{deadUpstream(t)}})
	client := netip.MustParseAddr("10.1.7.7")
	for _, withEDNS := range []bool{false, true} {
		req := question("web.", dns.TypeA)
		if withEDNS {
			req.SetEdns0(4096, true)
		}
		resp := new(dns.Msg)
		if err := resp.Unpack(s.handle(context.Background(), query{network: "blue", client: client, raw: pack(t, req)})); err != nil {
			t.Fatal(err)
		}
		opt := resp.IsEdns0()
		switch {
		case !withEDNS && opt != nil:
			t.Error("OPT in the answer to a query without EDNS")
		case withEDNS && (opt == nil || opt.UDPSize() != maxUDPSize):
			t.Errorf("answer to an EDNS query has OPT %v, want one with a %d-byte buffer", opt, maxUDPSize)
		}
	}
}

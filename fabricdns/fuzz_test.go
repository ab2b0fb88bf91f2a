package fabricdns

import (
	"context"
	"encoding/binary"
	"net/netip"
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzHandle feeds arbitrary bytes to the query handler as if they came from a client on
// blue, on red, or on no network, over UDP or TCP. It must never panic, must answer with the
// query's ID, within the transport's size limit, and never with an error or refusal larger
// than the query (no amplification). The seeds run in plain `go test`.
func FuzzHandle(f *testing.F) {
	seed := func(m *dns.Msg, who byte, tcp bool) {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, who, tcp)
	}
	seed(question("web.", dns.TypeA), 0, false)
	seed(question("api.blue.", dns.TypeA), 0, true)
	seed(question("db.", dns.TypeAAAA), 0, false)
	seed(question("2.1.1.10.in-addr.arpa.", dns.TypePTR), 0, false)
	seed(question("web.", dns.TypeA), 1, false)
	seed(question("web.", dns.TypeA), 2, false)
	seed(question("www.example.", dns.TypeA), 0, false)
	seed(question("big.example.", dns.TypeA), 0, false)
	edns := question("web.", dns.TypeANY)
	edns.SetEdns0(4096, true)
	seed(edns, 0, false)
	chaos := question("version.bind.", dns.TypeTXT)
	chaos.Question[0].Qclass = dns.ClassCHAOS
	seed(chaos, 0, false)
	f.Add([]byte{}, byte(0), false)
	f.Add([]byte{0, 1, 0, 0}, byte(0), false)
	f.Add(rawQuery(7, 0x0100, 1, []byte{3, 'w', 'e'}), byte(0), false)
	f.Add(rawQuery(7, 0x0100, 1, append([]byte{0xc0, 12}, 0, 1, 0, 1)), byte(0), false)
	f.Add(rawQuery(7, 0x0100, 2, append(wireName(strings.Repeat("a", 63), strings.Repeat("b", 63), strings.Repeat("c", 63), strings.Repeat("d", 63)), 0, 1, 0, 1)), byte(0), true)
	f.Add(rawQuery(7, 0x0100, 1, append(wireName(strings.Repeat("a", 64)), 0, 1, 0, 1)), byte(0), false)

	up := startUpstream(f)
	s := newTestServer(f, testTable(f), Config{Upstreams: []netip.AddrPort{up}})
	clients := []netip.Addr{netip.MustParseAddr("10.1.7.7"), netip.MustParseAddr("10.2.7.7"), netip.MustParseAddr("192.0.2.7")}

	f.Fuzz(func(t *testing.T, raw []byte, who byte, tcp bool) {
		in := append([]byte(nil), raw...)
		b := s.handle(context.Background(), query{network: "blue", client: clients[int(who)%len(clients)], raw: raw, tcp: tcp})
		if string(in) != string(raw) {
			t.Fatal("the handler modified the query")
		}
		if b == nil {
			return
		}
		if len(raw) < 12 {
			t.Fatalf("answered a %d-byte message", len(raw))
		}
		if binary.BigEndian.Uint16(b) != binary.BigEndian.Uint16(raw) {
			t.Fatal("answer with another ID")
		}
		limit := maxUDPSize
		if tcp {
			limit = dns.MaxMsgSize
		}
		if len(b) > limit {
			t.Fatalf("answer of %d bytes over the limit %d", len(b), limit)
		}
		resp := new(dns.Msg)
		if err := resp.Unpack(b); err != nil {
			t.Fatalf("unparseable answer %x: %v", b, err)
		}
		if !resp.Response {
			t.Fatal("answer without QR")
		}
		switch resp.Rcode {
		case dns.RcodeRefused, dns.RcodeFormatError, dns.RcodeNotImplemented, dns.RcodeBadVers:
			if len(b) > len(raw) {
				t.Fatalf("%s of %d bytes to a %d-byte query", dns.RcodeToString[resp.Rcode], len(b), len(raw))
			}
		}
		if int(who)%len(clients) == 2 && resp.Rcode != dns.RcodeRefused && resp.Rcode != dns.RcodeFormatError &&
			resp.Rcode != dns.RcodeNotImplemented {
			t.Fatalf("a client on no network got %s", dns.RcodeToString[resp.Rcode])
		}
	})
}

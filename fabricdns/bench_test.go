package fabricdns

import (
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// benchServer serves loTable on blue's loopback gateway without a rate limit.
func benchServer(b *testing.B) (*Server, netip.AddrPort) {
	b.Helper()
	s := newTestServer(b, loTable(b), Config{Upstreams: []netip.AddrPort{deadUpstream(b)}})
	if err := s.Set([]Listener{blueGW}); err != nil {
		b.Fatal(err)
	}
	return s, s.Addrs()[blueGW]
}

func dialFrom(b *testing.B, src string, dst netip.AddrPort) *net.UDPConn {
	b.Helper()
	c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort(src)), net.UDPAddrFromAddrPort(dst))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { c.Close() })
	return c
}

// BenchmarkQueryUDP is one client asking a name through a real UDP socket on loopback, one
// query at a time: ns/op is the round-trip latency (p50/p99 reported too).
func BenchmarkQueryUDP(b *testing.B) {
	_, addr := benchServer(b)
	c := dialFrom(b, "127.1.0.5:0", addr)
	raw := pack(b, question("web.", dns.TypeA))
	buf := make([]byte, 1500)
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for b.Loop() {
		start := time.Now()
		if _, err := c.Write(raw); err != nil {
			b.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(start))
		if n < len(raw) {
			b.Fatalf("short answer of %d bytes", n)
		}
	}
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
}

// BenchmarkQueryUDPParallel is many clients (one socket each) at
// once: qps is what one server sustains on this machine.
func BenchmarkQueryUDPParallel(b *testing.B) {
	s, addr := benchServer(b)
	raw := pack(b, question("api.blue.", dns.TypeA))
	var clients atomic.Uint32
	b.SetParallelism(4)
	before := s.Stats().Answered
	b.RunParallel(func(pb *testing.PB) {
		n := clients.Add(1)
		src := netip.AddrFrom4([4]byte{127, 1, byte(n >> 8), byte(n)})
		c, err := net.DialUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(src, 0)), net.UDPAddrFromAddrPort(addr))
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		buf := make([]byte, 1500)
		for pb.Next() {
			if _, err := c.Write(raw); err != nil {
				b.Error(err)
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Read(buf); err != nil {
				b.Error(err)
				return
			}
		}
	})
	if answered := s.Stats().Answered - before; answered < uint64(b.N) {
		b.Fatalf("%d of %d queries answered from the table", answered, b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "qps")
}

// BenchmarkTable10k builds a table of 10 000 endpoints (each a name and an alias, 10 networks)
// and reports its heap size.
func BenchmarkTable10k(b *testing.B) {
	recs := make([]Record, 10000)
	for i := range recs {
		recs[i] = Record{
			Network: fmt.Sprintf("net%d", i%10),
			Name:    fmt.Sprintf("container-%05d", i),
			Aliases: []string{fmt.Sprintf("svc-%d", i%100)},
			Addr:    netip.AddrFrom4([4]byte{10, byte(i % 10), byte(i >> 8), byte(i)}),
			Origin:  fmt.Sprintf("host-%d", i%3),
		}
	}
	var heap uint64
	for b.Loop() {
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		tab := NewTable()
		if err := tab.Replace(recs); err != nil {
			b.Fatal(err)
		}
		runtime.GC()
		runtime.ReadMemStats(&m1)
		heap = m1.HeapAlloc - m0.HeapAlloc
		if got := tab.Lookup("net3", "container-00003"); len(got) != 1 {
			b.Fatalf("lookup: %v", got)
		}
		runtime.KeepAlive(tab)
	}
	b.ReportMetric(float64(heap), "heap-bytes")
	b.ReportMetric(float64(heap)/10000, "bytes/name")
}

// BenchmarkForwardUDP is a forwarded name through a real UDP socket on loopback to a tiny
// upstream on loopback: fabricdns's forwarding overhead plus the upstream's answer.
func BenchmarkForwardUDP(b *testing.B) {
	up := startUpstream(b)
	s := newTestServer(b, loTable(b), Config{Upstreams: []netip.AddrPort{up}})
	if err := s.Set([]Listener{blueGW}); err != nil {
		b.Fatal(err)
	}
	c := dialFrom(b, "127.1.0.5:0", s.Addrs()[blueGW])
	raw := pack(b, question("www.example.", dns.TypeA))
	buf := make([]byte, 1500)
	for b.Loop() {
		if _, err := c.Write(raw); err != nil {
			b.Fatal(err)
		}
		_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
		if _, err := c.Read(buf); err != nil {
			b.Fatal(err)
		}
	}
}

package bench

import (
	"testing"
	"time"
)

func TestParseIperf(t *testing.T) {
	const out = `{"start":{},"intervals":[],"end":{"sum_sent":{"bits_per_second":9.1e8,"retransmits":12},
		"sum_received":{"bits_per_second":8.9e8}}}`
	r, err := parseIperf([]byte(out))
	if err != nil || r.Gbps != 0.89 || r.Retransmits != 12 {
		t.Fatalf("parseIperf = %+v, %v", r, err)
	}
	if _, err := parseIperf([]byte(`{"error":"unable to connect to server: Connection refused"}`)); err == nil {
		t.Fatal("an iperf3 error must be an error")
	}
	if _, err := parseIperf([]byte(`garbage`)); err == nil {
		t.Fatal("garbage must be an error")
	}
	if _, err := parseIperf([]byte(`{"end":{}}`)); err == nil {
		t.Fatal("no data must be an error")
	}
}

func TestParsePing(t *testing.T) {
	const out = `PING 10.244.1.2 (10.244.1.2) 56(84) bytes of data.
64 bytes from 10.244.1.2: icmp_seq=1 ttl=63 time=1.37 ms
64 bytes from 10.244.1.2: icmp_seq=1 ttl=63 time=1.52 ms (DUP!)
From 10.244.0.1 icmp_seq=2 Destination Host Unreachable
[1795424494.651394] 64 bytes from 10.244.1.2: icmp_seq=3 ttl=63 time=0.512 ms

--- 10.244.1.2 ping statistics ---
3 packets transmitted, 2 received, +1 duplicates, 33% packet loss, time 402ms
rtt min/avg/max/mdev = 0.512/0.941/1.370/0.429 ms`
	got := parsePing(out)
	if len(got.RTTs) != 2 || got.RTTs[0] != 1.37 || got.RTTs[1] != 0.512 || got.Dups != 1 || got.Sent != 3 {
		t.Fatalf("parsePing = %+v", got)
	}
}

func TestParseReplyTime(t *testing.T) {
	at, ok := parseReplyTime("[1795424494.651394] 64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.015 ms")
	if !ok || !at.Equal(time.Unix(1795424494, 651394000)) {
		t.Fatalf("parseReplyTime = %v, %v", at, ok)
	}
	for _, line := range []string{
		"PING 127.0.0.1 (127.0.0.1) 56(84) bytes of data.",
		"[1795424494.651394] From 10.244.0.1 icmp_seq=2 Destination Host Unreachable",
		"64 bytes from 127.0.0.1: icmp_seq=1 ttl=64 time=0.015 ms",
	} {
		if _, ok := parseReplyTime(line); ok {
			t.Errorf("%q is not a timestamped reply", line)
		}
	}
}

func TestParseGoBench(t *testing.T) {
	const out = `goos: linux
goarch: amd64
pkg: github.com/ovsfabric/ovsfabric/fabric
cpu: Intel(R) Xeon(R) CPU
BenchmarkPlan/peers=10-2         	  112466	     10493 ns/op	   10416 B/op	      82 allocs/op
BenchmarkPlan/peers=10000-2      	      96	  12483711 ns/op	 9764402 B/op	   60119 allocs/op
BenchmarkOther-2 	 5 	 100 ns/op
BenchmarkReconcileNoChange100x100/part=all-2 	 181 	 6512345 ns/op	  10504 flows	   6301234 median-ns	 2048 B/op	 12 allocs/op
PASS
ok  	github.com/ovsfabric/ovsfabric/fabric	5.123s`
	got := parseGoBench(out)
	if len(got) != 4 {
		t.Fatalf("parseGoBench = %+v", got)
	}
	if m := got[3].Metrics; got[3].NsPerOp != 6512345 || got[3].AllocsPerOp != 12 || m["flows"] != 10504 || m["median-ns"] != 6301234 || len(m) != 2 {
		t.Fatalf("custom metrics: %+v", got[3])
	}
	if got[1].Metrics != nil {
		t.Fatalf("no custom metrics: %+v", got[1])
	}
	if got[1].Name != "BenchmarkPlan/peers=10000-2" || got[1].Iterations != 96 || got[1].NsPerOp != 12483711 || got[1].BytesPerOp != 9764402 || got[1].AllocsPerOp != 60119 {
		t.Fatalf("line 2: %+v", got[1])
	}
	if got[2].BytesPerOp != -1 {
		t.Fatalf("no -benchmem columns: %+v", got[2])
	}
	if n, ok := benchParam(got[1].Name, "peers"); !ok || n != 10000 {
		t.Fatalf("benchParam = %d, %v", n, ok)
	}
	if _, ok := benchParam("BenchmarkOther-2", "peers"); ok {
		t.Fatal("no parameter")
	}
}

func TestParseVmRSS(t *testing.T) {
	got, err := parseVmRSS("Name:\tfabricd\nVmPeak:\t 1793372 kB\nVmRSS:\t   22528 kB\nThreads:\t9\n")
	if err != nil || got != 22 {
		t.Fatalf("parseVmRSS = %v, %v", got, err)
	}
	if _, err := parseVmRSS("Name:\tkthreadd\n"); err == nil {
		t.Fatal("a kernel thread has no VmRSS")
	}
}

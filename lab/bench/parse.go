package bench

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// iperfResult is what the suite reads from `iperf3 -J`.
type iperfResult struct {
	// Gbps is the receiver's throughput, all streams together.
	Gbps float64
	// Retransmits is the sender's TCP retransmission count.
	Retransmits int
}

// parseIperf reads iperf3's JSON output.
func parseIperf(b []byte) (iperfResult, error) {
	var v struct {
		Error string `json:"error"`
		End   struct {
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return iperfResult{}, fmt.Errorf("iperf3 output: %w", err)
	}
	if v.Error != "" {
		return iperfResult{}, fmt.Errorf("iperf3: %s", v.Error)
	}
	if v.End.SumReceived.BitsPerSecond <= 0 {
		return iperfResult{}, errors.New("iperf3 reported no received data")
	}
	return iperfResult{Gbps: v.End.SumReceived.BitsPerSecond / 1e9, Retransmits: v.End.SumSent.Retransmits}, nil
}

var (
	rttRE   = regexp.MustCompile(` bytes from .* time=([0-9.]+) ms`)
	replyRE = regexp.MustCompile(`^\[([0-9]+)\.([0-9]+)\] [0-9]+ bytes from `)
)

// pingResult is what ping's output says about a run.
type pingResult struct {
	// RTTs are the round-trip times (ms) of the first reply to each request.
	RTTs []float64
	// Dups counts duplicate replies (ping's "(DUP!)"): a request or reply delivered twice.
	Dups int
	// Sent is how many requests ping reports it sent (0 when it printed no summary).
	Sent int
}

// parsePing reads ping's output: every reply's RTT, duplicates apart, and the summary.
func parsePing(out string) pingResult {
	var r pingResult
	for _, line := range strings.Split(out, "\n") {
		if m := rttRE.FindStringSubmatch(line); m != nil {
			if strings.Contains(line, "(DUP!)") {
				r.Dups++
				continue
			}
			if v, err := strconv.ParseFloat(m[1], 64); err == nil {
				r.RTTs = append(r.RTTs, v)
			}
			continue
		}
		if i := strings.Index(line, " packets transmitted"); i > 0 {
			r.Sent, _ = strconv.Atoi(strings.TrimSpace(line[:i]))
		}
	}
	return r
}

// parseReplyTime reads the receive timestamp of an echo reply line of `ping -D`
// ("[1795424494.651394] 64 bytes from …").
func parseReplyTime(line string) (time.Time, bool) {
	m := replyRE.FindStringSubmatch(line)
	if m == nil {
		return time.Time{}, false
	}
	sec, err := strconv.ParseInt(m[1], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	frac := m[2]
	if len(frac) > 9 {
		frac = frac[:9]
	}
	frac += strings.Repeat("0", 9-len(frac))
	ns, err := strconv.ParseInt(frac, 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(sec, ns), true
}

// goBench is one result line of `go test -bench`.
type goBench struct {
	Name        string
	Iterations  int
	NsPerOp     float64
	BytesPerOp  float64
	AllocsPerOp float64
	// Metrics are the other units the benchmark reported (b.ReportMetric), e.g. "flows".
	Metrics map[string]float64
}

// parseGoBench reads the result lines of `go test -bench -benchmem` output, e.g.
// "BenchmarkPlan/peers=10-2   	  112466	     10493 ns/op	   10416 B/op	      82 allocs/op".
func parseGoBench(out string) []goBench {
	var res []goBench
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		iters, err := strconv.Atoi(f[1])
		if err != nil {
			continue
		}
		b := goBench{Name: f[0], Iterations: iters, BytesPerOp: -1, AllocsPerOp: -1}
		ok := false
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				continue
			}
			switch f[i+1] {
			case "ns/op":
				b.NsPerOp, ok = v, true
			case "B/op":
				b.BytesPerOp = v
			case "allocs/op":
				b.AllocsPerOp = v
			default:
				if b.Metrics == nil {
					b.Metrics = map[string]float64{}
				}
				b.Metrics[f[i+1]] = v
			}
		}
		if ok {
			res = append(res, b)
		}
	}
	return res
}

// benchParam reads the integer after "key=" in a benchmark name
// ("BenchmarkPlan/peers=1000-2" → 1000).
func benchParam(name, key string) (int, bool) {
	i := strings.Index(name, key+"=")
	if i < 0 {
		return 0, false
	}
	s := name[i+len(key)+1:]
	end := 0
	for end < len(s) && s[end] >= '0' && s[end] <= '9' {
		end++
	}
	n, err := strconv.Atoi(s[:end])
	return n, err == nil
}

// parseVmRSS reads VmRSS (in MiB) out of a /proc/PID/status text.
func parseVmRSS(status string) (float64, error) {
	sc := bufio.NewScanner(strings.NewReader(status))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) >= 3 && f[0] == "VmRSS:" && f[2] == "kB" {
			kb, err := strconv.ParseFloat(f[1], 64)
			if err != nil {
				return 0, err
			}
			return kb / 1024, nil
		}
	}
	return 0, errors.New("no VmRSS line")
}

// rssMiB is the resident set size of process pid in MiB, after checking that the process is
// the program named comm (so that a reused PID is never measured).
func rssMiB(pid int, comm string) (float64, error) {
	c, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	if got := strings.TrimSpace(string(c)); got != comm {
		return 0, fmt.Errorf("pid %d is %q, not %s", pid, got, comm)
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("pid %d: %w", pid, err)
	}
	return parseVmRSS(string(b))
}

// loadAvg is the first three fields of /proc/loadavg.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return ""
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return ""
	}
	return strings.Join(f[:3], " ")
}

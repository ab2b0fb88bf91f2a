package bench

import (
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/ovsfabric/ovsfabric/lab"
)

// attachPhases is one attach as fabricd logs it (its "attached" line): the veth and netlink
// work, the wait for its batch and the OVSDB transaction, and the rest until the port is live
// (the end of its flow bundle, which began with the veth, and the wait until ovs-vswitchd has
// numbered the port). Flows (the bundle, from when it was queued), Numbered (the wait for
// ovs-vswitchd after the bundle) and Total (from the request's arrival) are zero in the lines
// of builds that did not log them.
type attachPhases struct {
	Veth, OVSDB, Live      time.Duration
	Flows, Numbered, Total time.Duration
}

// logFields are the key=value fields of one line of slog's text format (values unquoted when
// they were quoted without escapes).
func logFields(line string) map[string]string {
	out := map[string]string{}
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			out[k] = strings.Trim(v, `"`)
		}
	}
	return out
}

// parseAttachLog reads the phases of every "attached" line of fabricd's log (slog's text
// format: key=value pairs, msg=attached veth=3ms ovsdb=12ms live=80ms). Lines without all
// three of veth, ovsdb and live are skipped.
func parseAttachLog(log string) []attachPhases {
	var out []attachPhases
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, " msg=attached ") {
			continue
		}
		f := logFields(line)
		var a attachPhases
		ok := true
		for k, dst := range map[string]*time.Duration{"veth": &a.Veth, "ovsdb": &a.OVSDB, "live": &a.Live,
			"flows": &a.Flows, "numbered": &a.Numbered, "total": &a.Total} {
			v, there := f[k]
			if !there {
				ok = ok && (k != "veth" && k != "ovsdb" && k != "live")
				continue
			}
			d, err := time.ParseDuration(v)
			if err != nil {
				ok = false
				break
			}
			*dst = d
		}
		if ok {
			out = append(out, a)
		}
	}
	return out
}

// parseCallLog reads the took= of every line of fabricd's log with message msg whose fields
// include all of match, in order, with the value of field key (e.g. the endpoint) beside it.
func parseCallLog(log, msg string, match map[string]string, key string) []loggedCall {
	var out []loggedCall
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, "msg="+msg+" ") && !strings.Contains(line, `msg="`+msg+`" `) {
			continue
		}
		f := logFields(line)
		ok := true
		for k, v := range match {
			ok = ok && f[k] == v
		}
		d, err := time.ParseDuration(f["took"])
		if !ok || err != nil {
			continue
		}
		out = append(out, loggedCall{Key: f[key], Took: d})
	}
	return out
}

// loggedCall is one call fabricd logged: how long it took, and a field naming what it was for.
type loggedCall struct {
	Key  string
	Took time.Duration
}

// callMillis are the calls' times in ms.
func callMillis(cs []loggedCall) []float64 {
	out := make([]float64, len(cs))
	for i, c := range cs {
		out[i] = float64(c.Took) / float64(time.Millisecond)
	}
	return out
}

// logSize is the size of a log file now, where the lines of what follows begin.
func logSize(path string) int64 {
	fi, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return fi.Size()
}

// readLogFrom reads a log file from offset on.
func readLogFrom(path string, offset int64) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if _, err := f.Seek(offset, io.SeekStart); err != nil {
		return "", err
	}
	b, err := io.ReadAll(f)
	return string(b), err
}

// explainAttach says where an attach's time goes, from fabricd's logged phases and the
// client's own clock (API answered; first ping reply), all in ms: the p50 and p99 of each
// phase, and which is the largest at p50.
func explainAttach(phases []attachPhases, apiMs, workingMs []float64) string {
	after := make([]float64, min(len(apiMs), len(workingMs)))
	for i := range after {
		after[i] = workingMs[i] - apiMs[i]
	}
	return explainPhases(phases, part{"from the API's answer to the first ping reply", after})
}

// part is one named set of figures (ms) of a phase breakdown.
type part struct {
	name string
	xs   []float64
}

// phaseMillis is one phase of phases in ms.
func phaseMillis(phases []attachPhases, get func(attachPhases) time.Duration) []float64 {
	out := make([]float64, len(phases))
	for i, p := range phases {
		out[i] = float64(get(p)) / float64(time.Millisecond)
	}
	return out
}

// explainPhases describes fabricd's logged attach phases (p50 / p99 ms), then extra, and
// names the largest at p50 of the phases in sequence (veth, OVSDB, after the transaction)
// and extra. The flow bundle, when logged, runs beside the veth and the transaction, so it is
// shown but not counted as a phase of its own.
func explainPhases(phases []attachPhases, extra ...part) string {
	parts := []part{
		{"veth, addresses and routes by netlink", phaseMillis(phases, func(p attachPhases) time.Duration { return p.Veth })},
		{"the wait for its batch and the OVSDB transaction", phaseMillis(phases, func(p attachPhases) time.Duration { return p.OVSDB })},
		{"after the transaction, the rest of the flow bundle and the wait until ovs-vswitchd has numbered the port", phaseMillis(phases, func(p attachPhases) time.Duration { return p.Live })},
	}
	parts = append(parts, extra...)
	var desc []string
	largest, largestV := "", math.Inf(-1)
	for _, p := range parts {
		sm := Summarize(p.xs)
		if sm.N == 0 {
			desc = append(desc, p.name+" n/a")
			continue
		}
		desc = append(desc, fmt.Sprintf("%s %s / %s", p.name, num(sm.Median), num(sm.P99)))
		if sm.Median > largestV {
			largest, largestV = p.name, sm.Median
		}
	}
	for _, p := range []part{
		{"the flow bundle (queued and sent beside the veth and the transaction)", phaseMillis(phases, func(p attachPhases) time.Duration { return p.Flows })},
		{"the wait for ovs-vswitchd after it", phaseMillis(phases, func(p attachPhases) time.Duration { return p.Numbered })},
		{"fabricd's whole attach", phaseMillis(phases, func(p attachPhases) time.Duration { return p.Total })},
	} {
		if sm := Summarize(p.xs); sm.N > 0 && sm.Max > 0 {
			desc = append(desc, fmt.Sprintf("%s %s / %s", p.name, num(sm.Median), num(sm.P99)))
		}
	}
	out := fmt.Sprintf("measured (p50 / p99 ms; phases from %d \"attached\" lines of fabricd's log): %s", len(phases), strings.Join(desc, "; "))
	if largest != "" {
		out += fmt.Sprintf(". The largest at p50 is %s (%s ms)", largest, num(largestV))
	}
	return out
}

// attachCPU is a reading of the CPU time of one host's fabricd and ovs-vswitchd.
type attachCPU struct {
	fabricd, vswitchd cpuSample
	ok                bool
}

// sampleAttachCPU reads the CPU time of fabricd (fabricdPID) and of the ovs-vswitchd of
// host h.
func sampleAttachCPU(fabricdPID int, h *lab.Host) attachCPU {
	var c attachCPU
	var err1, err2 error
	c.fabricd, err1 = sampleProcCPU("fabricd", []int{fabricdPID})
	var pid int
	if b, err := os.ReadFile(filepath.Join(h.Dir, "ovs-vswitchd.pid")); err == nil {
		pid, _ = strconv.Atoi(strings.TrimSpace(string(b)))
	}
	c.vswitchd, err2 = sampleProcCPU("ovs-vswitchd", []int{pid})
	c.ok = err1 == nil && err2 == nil
	return c
}

// describeCPU says how much CPU time fabricd and ovs-vswitchd spent per attach between a and
// b (n attaches), and how busy the machine was: measured, not a guess at what limits it.
func describeCPU(a, b attachCPU, n int) string {
	if !a.ok || !b.ok || n == 0 || b.fabricd.procTicks < a.fabricd.procTicks || b.vswitchd.procTicks < a.vswitchd.procTicks {
		return ""
	}
	per := func(x, y cpuSample) float64 {
		return float64(y.procTicks-x.procTicks) * 1000 / userHZ / float64(n)
	}
	busy := use(a.fabricd, b.fabricd).MachineBusy
	return fmt.Sprintf("CPU time per attach (from /proc): fabricd %s ms, ovs-vswitchd %s ms, with the machine's %d cores %.0f%% busy meanwhile",
		num(per(a.fabricd, b.fabricd)), num(per(a.vswitchd, b.vswitchd)), runtime.NumCPU(), 100*busy)
}

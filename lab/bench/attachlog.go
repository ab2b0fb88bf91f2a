package bench

import (
	"fmt"
	"io"
	"math"
	"os"
	"strings"
	"time"
)

// attachPhases is one attach as fabricd logs it (its "attached" line): the veth and netlink
// work, the wait for its batch and the OVSDB transaction, and the flow bundle and the wait
// until the port is live (numbered by ovs-vswitchd).
type attachPhases struct {
	Veth, OVSDB, Live time.Duration
}

// parseAttachLog reads the phases of every "attached" line of fabricd's log (slog's text
// format: key=value pairs, msg=attached veth=3ms ovsdb=12ms live=80ms). Lines without all
// three phases are skipped.
func parseAttachLog(log string) []attachPhases {
	var out []attachPhases
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, " msg=attached ") {
			continue
		}
		var a attachPhases
		got := 0
		for _, f := range strings.Fields(line) {
			k, v, ok := strings.Cut(f, "=")
			if !ok {
				continue
			}
			dst := map[string]*time.Duration{"veth": &a.Veth, "ovsdb": &a.OVSDB, "live": &a.Live}[k]
			if dst == nil {
				continue
			}
			d, err := time.ParseDuration(v)
			if err != nil {
				break
			}
			*dst = d
			got++
		}
		if got == 3 {
			out = append(out, a)
		}
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
	ms := func(get func(attachPhases) time.Duration) []float64 {
		out := make([]float64, len(phases))
		for i, p := range phases {
			out[i] = float64(get(p)) / float64(time.Millisecond)
		}
		return out
	}
	after := make([]float64, min(len(apiMs), len(workingMs)))
	for i := range after {
		after[i] = workingMs[i] - apiMs[i]
	}
	parts := []struct {
		name string
		xs   []float64
	}{
		{"veth, addresses and routes by netlink", ms(func(p attachPhases) time.Duration { return p.Veth })},
		{"the wait for its batch and the OVSDB transaction", ms(func(p attachPhases) time.Duration { return p.OVSDB })},
		{"the flow bundle and the wait until ovs-vswitchd has numbered the port", ms(func(p attachPhases) time.Duration { return p.Live })},
		{"from the API's answer to the first ping reply", after},
	}
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
	out := fmt.Sprintf("measured (p50 / p99 ms; phases from %d \"attached\" lines of fabricd's log): %s", len(phases), strings.Join(desc, "; "))
	if largest != "" {
		out += fmt.Sprintf(". The largest at p50 is %s (%s ms)", largest, num(largestV))
	}
	return out
}

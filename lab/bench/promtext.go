package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// parsePromText reads Prometheus' text exposition format into series → value, the series
// named as written (`fabricd_peers{state="alive"}`). Comments and blank lines are skipped;
// a sample line that does not parse is an error.
func parsePromText(r io.Reader) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		// The series ends at the last '}' when it has labels (label values may hold spaces),
		// else at the first space; an optional timestamp may follow the value.
		var series, rest string
		if i := strings.LastIndexByte(line, '}'); i > 0 && strings.IndexByte(line, '{') > 0 {
			series, rest = line[:i+1], line[i+1:]
		} else if j := strings.IndexByte(line, ' '); j > 0 {
			series, rest = line[:j], line[j:]
		} else {
			return nil, fmt.Errorf("metrics line %q: no value", line)
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return nil, fmt.Errorf("metrics line %q: no value", line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return nil, fmt.Errorf("metrics line %q: %w", line, err)
		}
		out[series] = v
	}
	return out, sc.Err()
}

// fabricdMetrics is one scrape of the fabricd series the peer scale section reads.
type fabricdMetrics struct {
	at time.Time
	// reconciles and reconcileSecs are fabricd_reconcile_duration_seconds' _count and _sum;
	// failed is fabricd_reconcile_errors_total.
	reconciles, reconcileSecs, failed float64
	// alive, tunnels and routes are what fabricd's last successful reconcile applied: alive
	// peers in its view, tunnel ports and routes kept.
	alive, tunnels, routes float64
	// flowDumps is fabricd_reconcile_flow_dumps_total: reconciles that dumped the bridge's
	// flows; NaN when this fabricd does not export it.
	flowDumps float64
}

// fabricdMetricsFrom picks the series out of a parsed scrape; missing ones are an error.
func fabricdMetricsFrom(m map[string]float64, at time.Time) (fabricdMetrics, error) {
	out := fabricdMetrics{at: at}
	for name, dst := range map[string]*float64{
		"fabricd_reconcile_duration_seconds_count": &out.reconciles,
		"fabricd_reconcile_duration_seconds_sum":   &out.reconcileSecs,
		"fabricd_reconcile_errors_total":           &out.failed,
		`fabricd_peers{state="alive"}`:             &out.alive,
		"fabricd_tunnels":                          &out.tunnels,
		"fabricd_routes":                           &out.routes,
	} {
		v, ok := m[name]
		if !ok {
			return out, fmt.Errorf("fabricd's metrics have no %s", name)
		}
		*dst = v
	}
	out.flowDumps = math.NaN()
	if v, ok := m["fabricd_reconcile_flow_dumps_total"]; ok {
		out.flowDumps = v
	}
	return out, nil
}

// reconcileTimes are individual reconciles recovered from scrapes (ms), by whether they
// dumped the bridge's flows.
type reconcileTimes struct {
	// plain compared the flows with those last applied; dumped dumped the bridge's flows (the
	// periodic resync pass); unknown are those of a fabricd without the dump counter.
	plain, dumped, unknown []float64
	// total is how many reconciles the scrapes saw in all, timed individually or not.
	total int
}

// singleReconciles recovers the duration (ms) of individual reconciles from consecutive
// scrapes: where the histogram's count rose by exactly one and no reconcile failed, the rise
// of its sum is that one reconcile's time. Whether it dumped the bridge's flows comes from
// the dump counter, which rises mid-pass: a pass dumped when the counter rose after the
// scrape that saw the previous pass end. When it also rose in the interval in which that
// previous pass ended, the dump may be either pass's and the time is left out (as is the
// first pass, whose start no scrape bounds).
func singleReconciles(ms []fabricdMetrics) reconcileTimes {
	var r reconcileTimes
	prev := -1 // the scrape that saw the last pass end
	for i := 1; i < len(ms); i++ {
		a, b := ms[i-1], ms[i]
		n := b.reconciles - a.reconciles
		if n < 0 { // a restarted fabricd: the counters start again
			prev = -1
			continue
		}
		if n == 0 {
			continue
		}
		r.total += int(n)
		p := prev
		prev = i
		if n != 1 || b.failed != a.failed {
			continue
		}
		d := (b.reconcileSecs - a.reconcileSecs) * 1000
		switch {
		case math.IsNaN(b.flowDumps) || math.IsNaN(a.flowDumps):
			r.unknown = append(r.unknown, d)
		case p < 1 || ms[p].flowDumps != ms[p-1].flowDumps:
			// Cannot tell whose dump it was.
		case b.flowDumps == ms[p].flowDumps:
			r.plain = append(r.plain, d)
		default:
			r.dumped = append(r.dumped, d)
		}
	}
	return r
}

// scraper reads fabricd's Prometheus endpoint inside a lab host's network namespace: its
// connections are opened in that namespace (a socket stays in the namespace it was made in).
type scraper struct {
	client *http.Client
	url    string
}

func newScraper(nsPath, addr string) *scraper {
	dial := func(ctx context.Context, network, address string) (net.Conn, error) {
		var c net.Conn
		err := inNetNS(nsPath, func() error {
			var err error
			c, err = (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, address)
			return err
		})
		return c, err
	}
	return &scraper{
		client: &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, MaxIdleConns: 1}},
		url:    "http://" + addr + "/metrics",
	}
}

func (s *scraper) scrape(ctx context.Context) (fabricdMetrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.url, nil)
	if err != nil {
		return fabricdMetrics{}, err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return fabricdMetrics{}, fmt.Errorf("scrape %s: %w", s.url, err)
	}
	defer resp.Body.Close()
	at := time.Now()
	if resp.StatusCode != http.StatusOK {
		return fabricdMetrics{}, fmt.Errorf("scrape %s: %s", s.url, resp.Status)
	}
	m, err := parsePromText(resp.Body)
	if err != nil {
		return fabricdMetrics{}, err
	}
	return fabricdMetricsFrom(m, at)
}

func (s *scraper) close() { s.client.CloseIdleConnections() }

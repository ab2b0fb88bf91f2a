package bench

import (
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestDockerReport(t *testing.T) {
	ms := func(v int) time.Duration { return time.Duration(v) * time.Millisecond }
	seq := func(label string, replies ...int) *dockerCase {
		c := &dockerCase{label: label}
		for _, r := range replies {
			c.trials = append(c.trials, dockerTrial{run: ms(r - 50), reply: ms(r)})
		}
		return c
	}
	batch := func(n int, dup bool, errs ...string) *dockerParallel {
		p := &dockerParallel{size: n, batches: 1, want: n, errs: errs, slice: netip.MustParsePrefix("10.160.0.0/24")}
		for i := range n - len(errs) {
			ip := netip.AddrFrom4([4]byte{10, 160, 0, byte(10 + i)})
			if dup && i == 1 {
				ip = netip.AddrFrom4([4]byte{10, 160, 0, 10})
			}
			p.trials = append(p.trials, dockerTrial{run: ms(400 + 10*i), reply: ms(500 + 10*i), ip: ip})
		}
		return p
	}
	twice := func(p *dockerParallel) *dockerParallel {
		for _, tr := range slices.Clone(p.trials) {
			tr.batch = 1
			p.trials = append(p.trials, tr)
		}
		p.batches, p.want = 2, 2*p.want
		return p
	}
	for _, tc := range []struct {
		name           string
		ours, bridge   *dockerCase
		par            *dockerParallel
		status, pstat  Status
		measured, pmsr string
		limit          string
	}{
		{"met", seq("ours", 600, 610, 620), seq("bridge", 550, 560, 570), batch(20, false), Met, Met,
			"1.09×", "20 of 20 replied, 20 distinct addresses (20 per batch, 1 batches); first reply p50", ""},
		{"two batches may reuse addresses", seq("ours", 600), seq("bridge", 600), twice(batch(20, false)), Met, Met,
			"1.00×", "40 of 40 replied, 40 distinct addresses (20 per batch, 2 batches)", ""},
		{"missed, a duplicate address", seq("ours", 900, 910, 920), seq("bridge", 500, 510, 520), batch(20, true), Missed, Missed,
			"1.78×", "20 of 20 replied, 19 distinct addresses", "1 addresses given twice"},
		{"missed by a hair: three decimals", seq("ours", 1202, 1300, 1000), seq("bridge", 1000, 1000, 1000), batch(20, false), Missed, Met,
			"1.202×", "20 of 20 replied", ""},
		{"a failed run", seq("ours", 600), seq("bridge", 600), batch(3, false, "docker run p3: boom"), Met, Missed,
			"1.00×", "2 of 3 replied", "1 failed (first: docker run p3: boom)"},
		{"nothing measured", seq("ours"), seq("bridge"), &dockerParallel{size: 20}, NotMeasured, NotMeasured, "n/a", "n/a", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &suite{cfg: DefaultConfig()}
			sec := &Section{Key: "docker", Title: "Docker plugin"}
			s.dockerReport(sec, tc.ours, tc.bridge, tc.par, batch(tc.par.size, false), [2]dockerPlugin{})
			// Two verdicts of the comparison with Docker's bridge, then four of the plugin's
			// share (not measured here).
			if len(sec.Verdicts) != 6 {
				t.Fatalf("verdicts: %+v", sec.Verdicts)
			}
			v, pv := sec.Verdicts[0], sec.Verdicts[1]
			if v.Status != tc.status || !strings.HasPrefix(v.Measured, tc.measured) {
				t.Errorf("run→reply verdict %+v, want %s, measured %q…", v, tc.status, tc.measured)
			}
			if v.Status == Missed && !strings.Contains(v.Limit, "`docker run` itself returned after") {
				t.Errorf("limit %q does not split the time", v.Limit)
			}
			straddles := strings.Contains(strings.Join(sec.Notes, " "), "on both sides of the target")
			if want := strings.Contains(tc.name, "hair"); straddles != want {
				t.Errorf("note on paired ratios on both sides of the target: %v, want %v (%q)", straddles, want, sec.Notes)
			}
			if pv.Status != tc.pstat || !strings.HasPrefix(pv.Measured, tc.pmsr) {
				t.Errorf("parallel verdict %+v, want %s, measured %q…", pv, tc.pstat, tc.pmsr)
			}
			if !strings.Contains(pv.Limit, tc.limit) || (tc.limit == "" && pv.Limit != "" && pv.Status != NotMeasured) {
				t.Errorf("parallel limit %q, want %q", pv.Limit, tc.limit)
			}
			rep := &Report{Sections: []*Section{sec}}
			var b bytes.Buffer
			if err := rep.Render(&b); err != nil {
				t.Fatal(err)
			}
			md := b.String()
			for _, want := range []string{"Docker plugin", "first reply from h2's target, ours", fmt.Sprintf("%d parallel `docker run --network blue`", tc.par.size), "`docker run -d --network brnet` (Docker's bridge)"} {
				if !strings.Contains(md, want) {
					t.Errorf("report lacks %q:\n%s", want, md)
				}
			}
		})
	}
}

// TestDockerPlugin: the plugin's calls are paired by endpoint into one figure per container,
// judged against the attach targets, and a missed target says where the time went.
func TestDockerPlugin(t *testing.T) {
	const log = `time=x level=INFO msg="docker plugin call" node=h1 method=IpamDriver.RequestAddress endpoint="" took=1ms
time=x level=INFO msg="docker plugin call" node=h1 method=NetworkDriver.CreateEndpoint endpoint=aaaaaaaaaaaa took=40ms
time=x level=INFO msg="docker plugin call" node=h1 method=IpamDriver.RequestAddress endpoint="" took=2ms
time=x level=INFO msg="docker plugin call" node=h1 method=NetworkDriver.CreateEndpoint endpoint=bbbbbbbbbbbb took=90ms
time=x level=INFO msg=attached node=h1 container=docker:x veth=5ms ovsdb=3ms live=30ms batch=1 flows=20ms flowbatch=1 numbered=25ms total=39ms
time=x level=INFO msg="docker plugin call" node=h1 method=NetworkDriver.Join endpoint=bbbbbbbbbbbb took=1ms
time=x level=INFO msg="docker plugin call" node=h1 method=NetworkDriver.Join endpoint=aaaaaaaaaaaa took=2ms
time=x level=INFO msg="docker plugin call" node=h1 method=NetworkDriver.Join endpoint=cccccccccccc took=2ms`
	p := parseDockerPlugin(log)
	slices.Sort(p.perContainer)
	if !slices.Equal(p.perContainer, []float64{42, 91}) || len(p.address) != 2 || len(p.phases) != 1 {
		t.Fatalf("parsed %+v", p)
	}
	s := &suite{cfg: DefaultConfig()}
	sec := &Section{Key: "docker"}
	s.dockerPluginReport(sec, [2]dockerPlugin{p, {}}, 20)
	if len(sec.Verdicts) != 4 {
		t.Fatalf("verdicts %+v", sec.Verdicts)
	}
	if v := sec.Verdicts[0]; v.Status != Missed || !strings.Contains(v.Limit, "veth, addresses and routes by netlink 5.00 / 5.00") {
		t.Errorf("one by one p50: %+v", v)
	}
	if v := sec.Verdicts[1]; v.Status != Met {
		t.Errorf("one by one p99 (91 ms): %+v", v)
	}
	if v := sec.Verdicts[2]; v.Status != NotMeasured {
		t.Errorf("at once, nothing logged: %+v", v)
	}
}

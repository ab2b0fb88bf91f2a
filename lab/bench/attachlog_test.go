package bench

import (
	"strings"
	"testing"
	"time"
)

func TestParseAttachLog(t *testing.T) {
	const log = `time=2026-11-30T18:13:35.472Z level=INFO msg="fabricd started" node=h1
time=2026-11-30T18:13:35.498Z level=INFO msg=attached node=h2 container=c2 netns=/var/run/netns/c2 ip=10.244.6.2/24 mac=d2:da:7d:5a:b2:67 port=vfcf5d608190 veth=10ms ovsdb=2ms live=7ms
time=2026-11-30T18:13:35.600Z level=INFO msg=attached node=h2 container=c3 veth=1.5s ovsdb=250µs live=120ms
time=2026-11-30T18:13:35.700Z level=INFO msg=attached node=h2 container=c4 veth=bad ovsdb=2ms live=7ms
time=2026-11-30T18:13:35.800Z level=WARN msg="new port not live yet" port=vf1 veth=1ms ovsdb=1ms live=1ms
time=2026-11-30T18:13:35.900Z level=INFO msg=attached node=h2 container=c5 veth=1ms ovsdb=2ms
time=2026-11-30T18:13:36.000Z level=INFO msg=attached node=h1 container="a b" veth=9ms ovsdb=3ms live=20ms batch=1 flows=25ms flowbatch=1 numbered=1ms total=40ms`
	got := parseAttachLog(log)
	want := []attachPhases{
		{Veth: 10 * time.Millisecond, OVSDB: 2 * time.Millisecond, Live: 7 * time.Millisecond},
		{Veth: 1500 * time.Millisecond, OVSDB: 250 * time.Microsecond, Live: 120 * time.Millisecond},
		{Veth: 9 * time.Millisecond, OVSDB: 3 * time.Millisecond, Live: 20 * time.Millisecond, Flows: 25 * time.Millisecond, Numbered: time.Millisecond, Total: 40 * time.Millisecond},
	}
	if len(got) != len(want) {
		t.Fatalf("parseAttachLog = %+v; want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Errorf("line %d: %+v, want %+v", i, got[i], want[i])
		}
	}
}

func TestExplainAttach(t *testing.T) {
	ph := []attachPhases{
		{Veth: 10 * time.Millisecond, OVSDB: 2 * time.Millisecond, Live: 40 * time.Millisecond},
		{Veth: 12 * time.Millisecond, OVSDB: 3 * time.Millisecond, Live: 60 * time.Millisecond},
	}
	got := explainAttach(ph, []float64{55, 80}, []float64{70, 90})
	for _, w := range []string{"from 2 \"attached\" lines", "the OVSDB transaction 2.50 /", "from the API's answer to the first ping reply 12.5 /",
		"The largest at p50 is after the transaction, the rest of the flow bundle and the wait until ovs-vswitchd has numbered the port (50.0 ms)"} {
		if !strings.Contains(got, w) {
			t.Errorf("missing %q in %q", w, got)
		}
	}
	if got := explainAttach(nil, nil, nil); !strings.Contains(got, "the OVSDB transaction n/a") || strings.Contains(got, "largest") {
		t.Errorf("nothing measured: %q", got)
	}
}

func TestParseCallLog(t *testing.T) {
	const log = `time=x level=INFO msg="docker plugin call" node=h1 method=NetworkDriver.CreateEndpoint endpoint=0123456789ab took=12.5ms
time=x level=INFO msg="docker plugin call" node=h1 method=NetworkDriver.Join endpoint=0123456789ab took=300µs
time=x level=INFO msg="docker plugin call" node=h1 method=NetworkDriver.Join endpoint=ffff took=bad
time=x level=INFO msg="api request" node=h1 method=POST path=/v1/cni/add status=200 uid=0 gid=0 pid=1 took=40ms
time=x level=INFO msg="api request" node=h1 method=POST path=/v1/cni/add status=500 uid=0 gid=0 pid=1 took=41ms`
	joins := parseCallLog(log, "docker plugin call", map[string]string{"method": "NetworkDriver.Join"}, "endpoint")
	if len(joins) != 1 || joins[0] != (loggedCall{Key: "0123456789ab", Took: 300 * time.Microsecond}) {
		t.Errorf("joins %+v", joins)
	}
	adds := parseCallLog(log, "api request", map[string]string{"path": "/v1/cni/add", "status": "200"}, "")
	if len(adds) != 1 || adds[0].Took != 40*time.Millisecond {
		t.Errorf("CNI adds %+v", adds)
	}
}

func FuzzParseAttachLog(f *testing.F) {
	f.Add("time=x level=INFO msg=attached veth=10ms ovsdb=2ms live=7ms\n")
	f.Fuzz(func(t *testing.T, s string) {
		if got, lines := len(parseAttachLog(s)), strings.Count(s, " msg=attached "); got > lines {
			t.Fatalf("%d attaches from %d attached lines", got, lines)
		}
	})
}

func FuzzParseCallLog(f *testing.F) {
	f.Add("time=x level=INFO msg=\"docker plugin call\" method=NetworkDriver.Join endpoint=ab took=1ms\n")
	f.Fuzz(func(t *testing.T, s string) {
		got := parseCallLog(s, "docker plugin call", map[string]string{"method": "NetworkDriver.Join"}, "endpoint")
		if lines := strings.Count(s, "docker plugin call"); len(got) > lines {
			t.Fatalf("%d calls from %d lines", len(got), lines)
		}
	})
}

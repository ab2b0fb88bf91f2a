package fabriclab

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestSnapshotDiff(t *testing.T) {
	base := Snapshot{Host: "h1", Subnet: "10.244.1.0/24",
		Ports:  []string{"br-int fabric0 uuid=aa ids={} iface=fabric0 type=\"internal\" ofport=1", "br-int vxl-1 uuid=bb ids={} iface=vxl-1 type=\"vxlan\" ofport=2"},
		Routes: []string{"10.244.2.0/24 via 10.244.2.1 dev fabric0 proto 147 onlink"}}
	for _, tc := range []struct {
		name   string
		change func(s *Snapshot)
		stable bool
		want   []string // lines the diff must hold; none: equal
	}{
		{"equal", func(*Snapshot) {}, false, nil},
		{"route gone", func(s *Snapshot) { s.Routes = nil }, false, []string{"- route: 10.244.2.0/24"}},
		{"port re-created", func(s *Snapshot) {
			s.Ports = []string{s.Ports[0], "br-int vxl-1 uuid=cc ids={} iface=vxl-1 type=\"vxlan\" ofport=3"}
		}, false, []string{"- port: br-int vxl-1 uuid=bb", "+ port: br-int vxl-1 uuid=cc"}},
		{"port re-created, stable IDs", func(s *Snapshot) {
			s.Ports = []string{s.Ports[0], "br-int vxl-1 uuid=cc ids={} iface=vxl-1 type=\"vxlan\" ofport=3"}
		}, true, nil},
		{"subnet changed", func(s *Snapshot) { s.Subnet = "10.244.9.0/24" }, true, []string{"- subnet: 10.244.1.0/24", "+ subnet: 10.244.9.0/24"}},
		{"extra attachment", func(s *Snapshot) { s.Attachments = []string{"c9 ip=10.244.1.9/24"} }, true, []string{"+ attachment: c9"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			after := base
			after.Ports = append([]string(nil), base.Ports...)
			tc.change(&after)
			d := DiffAll(map[string]Snapshot{"h1": base}, map[string]Snapshot{"h1": after}, tc.stable)
			if len(tc.want) == 0 {
				if d != "" {
					t.Fatalf("want equal, diff:\n%s", d)
				}
				return
			}
			for _, w := range tc.want {
				if !strings.Contains(d, w) {
					t.Errorf("diff lacks %q:\n%s", w, d)
				}
			}
			if got := LeakCount(d); got != len(tc.want) {
				t.Errorf("LeakCount %d, want %d:\n%s", got, len(tc.want), d)
			}
		})
	}
}

func TestSnapshotWithout(t *testing.T) {
	s := Snapshot{Ports: []string{"br-int vabc uuid=1", "br-int fabric0 uuid=2"}, Links: []string{"vabc kind=veth", "fabric0 kind=tun"},
		Attachments: []string{"c1 ip=10.244.1.2/24 port=vabc"}, Addrs: []string{"fabric0 10.244.1.1/24"}}
	got := s.Without("vabc", "10.244.1.2/24")
	want := Snapshot{Ports: []string{"br-int fabric0 uuid=2"}, Links: []string{"fabric0 kind=tun"}, Addrs: []string{"fabric0 10.244.1.1/24"}}
	if d := want.Diff(got); d != "" {
		t.Fatalf("Without:\n%s", d)
	}
}

func TestOVSDBValue(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`"br-int"`, "br-int"},
		{`5`, "5"},
		{`["uuid","1234"]`, "1234"},
		{`["set",[]]`, "[]"},
		{`["set",[["uuid","b"],["uuid","a"]]]`, "[a b]"},
		{`["map",[["z","1"],["a","2"]]]`, "{a=2 z=1}"},
	} {
		if got := ovsdbText(json.RawMessage(tc.in)); got != tc.want {
			t.Errorf("ovsdbText(%s) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestParseStream(t *testing.T) {
	const iv = 10 * time.Millisecond
	start := time.Unix(100, 0)
	line := func(seq int, at time.Time, rtt string) string {
		return fmt.Sprintf("[%d.%06d] 64 bytes from 10.0.0.2: icmp_seq=%d ttl=64 time=%s ms", at.Unix(), at.Nanosecond()/1000, seq, rtt)
	}
	for _, tc := range []struct {
		name       string
		lost       map[int]bool
		late       int // sequence number answered 1 s late (0: none)
		sent       int // as ping's summary says
		wantSent   int
		wantLost   int
		wantOutage time.Duration
	}{
		{"clean", nil, 0, 200, 200, 0, 0},
		{"echo in flight at the stop", nil, 0, 201, 200, 0, 0},
		{"cut of 3 echoes", map[int]bool{50: true, 51: true, 52: true}, 0, 200, 200, 3, 30 * time.Millisecond},
		// An echo held up for a second (queued for ARP) while later ones pass: the replies
		// never stop for long, so the outage is that of the three lost ones only.
		{"cut and a late echo", map[int]bool{50: true, 51: true, 52: true}, 53, 200, 200, 3, 40 * time.Millisecond},
		{"lost until the end", lostFrom(200-inFlight(iv)-2, 200), 0, 200, 200, 4, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			lines := []string{"PING 10.0.0.2 (10.0.0.2) 56(84) bytes of data."}
			received := 0
			var late string
			for seq := 1; seq <= 200; seq++ {
				at := start.Add(time.Duration(seq) * iv)
				switch {
				case tc.lost[seq]:
				case seq == tc.late:
					late = line(seq, at.Add(time.Second), "1000")
					received++
				default:
					lines = append(lines, line(seq, at, "0.2"))
					received++
				}
			}
			if late != "" {
				lines = append(lines, late)
			}
			lines = append(lines, "", "--- 10.0.0.2 ping statistics ---",
				fmt.Sprintf("%d packets transmitted, %d received, 0%% packet loss, time 2000ms", tc.sent, received))
			stopped := start.Add(2100 * time.Millisecond)
			r, err := parseStream(strings.Join(lines, "\n"), iv, stopped)
			if err != nil {
				t.Fatal(err)
			}
			if tc.name == "lost until the end" {
				// The last inFlight unanswered echoes count as in flight; the three before
				// them are a loss lasting until the stop.
				last := 200 - inFlight(iv) - 3 // the last reply
				wantOutage := stopped.Sub(start.Add(time.Duration(last) * iv))
				if r.Sent != last+3 || r.Lost() != 3 || r.Outage != wantOutage {
					t.Errorf("sent %d lost %d outage %s, want %d, 3, %s (from the last reply to the stop)", r.Sent, r.Lost(), r.Outage, last+3, wantOutage)
				}
				return
			}
			if r.Sent != tc.wantSent || r.Lost() != tc.wantLost {
				t.Errorf("sent %d lost %d, want %d, %d", r.Sent, r.Lost(), tc.wantSent, tc.wantLost)
			}
			if d := r.Outage - tc.wantOutage; d < -time.Millisecond || d > time.Millisecond {
				t.Errorf("outage %s, want %s", r.Outage, tc.wantOutage)
			}
		})
	}
}

// lostFrom marks the sequence numbers from..to (inclusive) as lost.
func lostFrom(from, to int) map[int]bool {
	m := map[int]bool{}
	for seq := from; seq <= to; seq++ {
		m[seq] = true
	}
	return m
}

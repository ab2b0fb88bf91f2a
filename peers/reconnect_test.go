package peers

import (
	"testing"
	"time"
)

func TestReconnectDue(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	recent := func(name string) Peer { return Peer{Name: name, State: StateDead, Since: now.Add(-5 * time.Second)} }
	old := func(name string) Peer { return Peer{Name: name, State: StateDead, Since: now.Add(-10 * time.Minute)} }
	for _, tc := range []struct {
		name  string
		dead  []Peer
		tried map[string]time.Duration // ago
		want  string                   // "" = none due
	}{
		{"nothing dead", nil, nil, ""},
		{"never tried", []Peer{recent("b"), recent("a")}, nil, "a"},
		{"recently dead retried after a tick", []Peer{recent("a")}, map[string]time.Duration{"a": reconnectTick}, "a"},
		{"recently dead not before a tick", []Peer{recent("a")}, map[string]time.Duration{"a": reconnectTick / 2}, ""},
		{"long dead waits reconnectEvery", []Peer{old("a")}, map[string]time.Duration{"a": 5 * time.Second}, ""},
		{"long dead due after reconnectEvery", []Peer{old("a")}, map[string]time.Duration{"a": reconnectEvery}, "a"},
		{"least recently tried first", []Peer{recent("a"), recent("b")}, map[string]time.Duration{"a": 2 * time.Second, "b": 3 * time.Second}, "b"},
		{"a long-dead peer does not starve a partition's", []Peer{old("a"), recent("b")}, map[string]time.Duration{"a": time.Second, "b": time.Second}, "b"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tried := map[string]time.Time{"gone": now.Add(-time.Hour)}
			for n, ago := range tc.tried {
				tried[n] = now.Add(-ago)
			}
			p, ok := reconnectDue(tc.dead, tried, now)
			if got := map[bool]string{true: p.Name, false: ""}[ok]; got != tc.want {
				t.Fatalf("picked %q, want %q", got, tc.want)
			}
			if _, kept := tried["gone"]; kept {
				t.Error("tried keeps a peer that is no longer dead")
			}
		})
	}
}

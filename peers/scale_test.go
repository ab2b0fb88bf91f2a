package peers

import (
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestScale100 runs 100 members in this process on loopback with the default timings and
// logs how long they take to reach a full view and to all see one killed member dead.
func TestScale100(t *testing.T) {
	if testing.Short() {
		t.Skip("100 members take a while; run without -short")
	}
	if raceEnabled {
		t.Skip("100 members are too slow under the race detector")
	}
	const n = 100
	sink, _ := newSink(t)
	log := slog.New(slog.NewTextHandler(sink, &slog.HandlerOptions{Level: slog.LevelWarn}))

	begin := time.Now()
	ms := make([]*Membership, n)
	for i := range n {
		cfg := testConfig(fmt.Sprintf("s%03d", i), i+1, log)
		if i > 0 {
			cfg.Join = []string{addr(ms[rand.IntN(i)])} // a random earlier member
		}
		ms[i] = start(t, cfg)
	}
	started := time.Since(begin)
	fullView := func(m *Membership, want int) bool {
		alive := 0
		for _, p := range m.Peers() {
			if p.State == StateAlive {
				alive++
			}
		}
		return alive == want
	}
	reached := make([]time.Duration, n) // when each member first had the full view
	explained := false
	waitFor(t, 60*time.Second, "a full view on all 100 members", func() bool {
		done := true
		for i, m := range ms {
			if reached[i] == 0 {
				if !fullView(m, n-1) {
					done = false
					continue
				}
				reached[i] = time.Since(begin)
			}
		}
		if !done && !explained && time.Since(begin) > 10*time.Second {
			explained = true
			for i, m := range ms {
				if reached[i] == 0 {
					t.Logf("after 10 s, %s lacks: %s", m.cfg.Name, missing(m, ms))
				}
			}
		}
		return done
	})
	slices.Sort(reached)
	t.Logf("100 members: all started (joined sequentially) in %s; members had all 99 others alive after (from the first start): median %s, 90th percentile %s, last %s",
		started, reached[n/2].Round(time.Millisecond), reached[n*9/10].Round(time.Millisecond), reached[n-1].Round(time.Millisecond))

	time.Sleep(2 * time.Second) // steady state
	victim := ms[n/2]
	others := append(append([]*Membership(nil), ms[:n/2]...), ms[n/2+1:]...)
	kill := time.Now()
	if err := victim.Shutdown(); err != nil {
		t.Fatal(err)
	}
	var first time.Duration
	took := waitFor(t, 60*time.Second, "all 99 to see the killed member dead", func() bool {
		dead := 0
		for _, m := range others {
			if peerState(m, victim.cfg.Name) == StateDead {
				dead++
			}
		}
		if first == 0 && dead > 0 {
			first = time.Since(kill)
		}
		return dead == len(others)
	})
	t.Logf("100 members: killed %s without Leave; first member saw it dead after %s, all 99 after %s", victim.cfg.Name, first, took)
}

// missing describes the members m does not see alive.
func missing(m *Membership, ms []*Membership) string {
	var out []string
	for _, o := range ms {
		if o != m {
			if st := peerState(m, o.cfg.Name); st != StateAlive {
				out = append(out, fmt.Sprintf("%s(%q)", o.cfg.Name, st))
			}
		}
	}
	return strings.Join(out, " ")
}

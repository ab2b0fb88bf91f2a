package peers

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestDuplicateNameRefused starts a node under the name of a live member, joining through
// that member itself and through another one: the newcomer's Start fails naming the
// member's address, and the fabric's view does not change at all.
func TestDuplicateNameRefused(t *testing.T) {
	for _, tc := range []struct {
		name string
		via  int // index of the member the newcomer joins through
	}{
		{"join through the namesake", 0},
		{"join through another member", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sink, log := newSink(t)
			a := start(t, testConfig("a", 1, log))
			b := start(t, testConfig("b", 2, log, addr(a)))
			ms := []*Membership{a, b}
			waitFor(t, 5*time.Second, "a and b", func() bool { return allSee(ms) })
			before := map[string][]Peer{"a": a.Peers(), "b": b.Peers()}

			_, logX := newSink(t)
			dup := testConfig("a", 3, logX, addr(ms[tc.via]))
			x, err := Start(context.Background(), dup)
			if err == nil {
				_ = x.Shutdown()
				t.Fatal("a second node named a joined")
			}
			if !errors.Is(err, ErrNameConflict) || !strings.Contains(err.Error(), addr(a)) {
				t.Fatalf("Start error = %v, want ErrNameConflict naming %s", err, addr(a))
			}
			t.Logf("newcomer's error: %v", err)
			// The member that saw the newcomer logs it and lists it as rejected.
			seer := ms[tc.via]
			waitFor(t, 2*time.Second, "the refusal to be listed", func() bool {
				rej := seer.Rejected()
				return len(rej) == 1 && rej[0].Name == "a" && strings.Contains(rej[0].Reason, "name already used by the member at "+addr(a))
			})
			if !sink.contains("refusing node a: name already used") {
				t.Error("the member did not log the refusal")
			}
			// Nothing changes for a or b, not even briefly: same members, same addresses,
			// same metadata, all alive.
			for range 20 {
				for _, m := range ms {
					got := m.Peers()
					want := before[m.cfg.Name]
					if m.NumMembers() != 2 || len(got) != 1 || got[0].State != StateAlive ||
						got[0].Gossip != want[0].Gossip || !got[0].Meta.Equal(want[0].Meta) || !got[0].Since.Equal(want[0].Since) {
						t.Fatalf("%s's view changed: %+v, was %+v", m.cfg.Name, got, want)
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestDuplicateNameFatalInBackground covers a newcomer that found no member at Start and
// joins later in the background: Fatal reports the conflict and the joins stop.
func TestDuplicateNameFatalInBackground(t *testing.T) {
	_, log := newSink(t)
	a := start(t, testConfig("a", 1, log))
	port := freePort(t)
	cAddr := "127.0.0.1:" + itoa(port)
	_, logX := newSink(t)
	x := start(t, testConfig("a", 3, logX, cAddr)) // nobody there yet: Start succeeds
	time.Sleep(700 * time.Millisecond)
	cfg := testConfig("c", 2, log, addr(a))
	cfg.Port = port
	c := start(t, cfg)
	waitFor(t, 5*time.Second, "a and c", func() bool { return allSee([]*Membership{a, c}) })
	select {
	case err := <-x.Fatal():
		if !errors.Is(err, ErrNameConflict) || !strings.Contains(err.Error(), addr(a)) {
			t.Fatalf("Fatal = %v", err)
		}
		t.Logf("fatal: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("no fatal error from the background join")
	}
	if peerState(a, "c") != StateAlive || peerState(c, "a") != StateAlive || a.NumMembers() != 2 {
		t.Fatalf("fabric changed: a sees %v, c sees %v", a.Peers(), c.Peers())
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

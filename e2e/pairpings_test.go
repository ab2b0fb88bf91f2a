package e2e

import (
	"context"
	"sync"
	"testing"

	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

// pairPings pings between every ordered pair of cs every 100 ms (pingUntil) from its start
// until check, which stops them and fails t for a pair that lost more than the one probe the
// stop cuts short, or sent fewer than 20. during names the phase in the messages, e.g. "the
// upgrade".
func pairPings(ctx context.Context, cs []*fabriclab.Container) (check func(t *testing.T, during string)) {
	pingCtx, stop := context.WithCancel(ctx)
	type result struct {
		from, to       string
		sent, received int
		err            error
	}
	var mu sync.Mutex
	var results []result
	var wg sync.WaitGroup
	for _, a := range cs {
		for _, b := range cs {
			if a == b {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				sent, got, err := pingUntil(pingCtx, a.NetNS, b.IP)
				mu.Lock()
				results = append(results, result{a.Name, b.Name, sent, got, err})
				mu.Unlock()
			}()
		}
	}
	return func(t *testing.T, during string) {
		t.Helper()
		stop()
		wg.Wait()
		for _, r := range results {
			t.Logf("%s → %s during %s: %d sent, %d received", r.from, r.to, during, r.sent, r.received)
			if r.err != nil || r.sent < 20 || r.received < r.sent-1 {
				// ping counts the last probe, cut by the stop, as lost: one is allowed.
				t.Errorf("%s → %s during %s: %d sent, %d received (%v)", r.from, r.to, during, r.sent, r.received, r.err)
			}
		}
	}
}

package ovsdb

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// tunnels returns n distinct tunnel specs; shift changes every remote IP.
func tunnels(n, shift int) []TunnelSpec {
	out := make([]TunnelSpec, n)
	for i := range out {
		j := i + shift
		out[i] = tun(fmt.Sprintf("vxl-%05d", i), fmt.Sprintf("172.16.%d.%d", j/250, j%250+1))
	}
	return out
}

// TestReconcile1000 reconciles a thousand tunnels: each change is one transaction, and a
// reconcile with nothing to change sends none.
func TestReconcile1000(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	eachBackend(t, func(t *testing.T, ep string) {
		ctx := context.Background()
		c := dial(t, ep)
		ensureBridge(t, c, "br-int", "h1")
		ds := tunnels(1000, 0)
		churn := append([]TunnelSpec(nil), ds...)
		for i := 0; i < 10; i++ {
			churn[i*100].RemoteIP = netip.MustParseAddr(fmt.Sprintf("172.20.0.%d", i+1))
		}
		steps := []struct {
			name                    string
			desired                 []TunnelSpec
			added, updated, removed int
		}{
			{"add 1000", ds, 1000, 0, 0},
			{"no change", ds, 0, 0, 0},
			{"10 remote IPs change", churn, 0, 10, 0},
			{"500 go, 500 come", append(tunnels(1500, 0)[1000:], churn[:500]...), 500, 0, 500},
			{"all removed", nil, 0, 0, 1000},
		}
		for _, st := range steps {
			n := c.Transactions()
			start := time.Now()
			res, err := c.ReconcileTunnels(ctx, "br-int", "h1", st.desired)
			d := time.Since(start)
			if err != nil {
				t.Fatalf("%s: %v", st.name, err)
			}
			if len(res.Added) != st.added || len(res.Updated) != st.updated || len(res.Removed) != st.removed {
				t.Errorf("%s: +%d ~%d -%d, want +%d ~%d -%d", st.name, len(res.Added), len(res.Updated), len(res.Removed), st.added, st.updated, st.removed)
			}
			want := uint64(1)
			if st.added+st.updated+st.removed == 0 {
				want = 0
			}
			if sent := c.Transactions() - n; sent != want {
				t.Errorf("%s: %d transactions, want %d", st.name, sent, want)
			}
			t.Logf("%-22s %8.1f ms, %d transaction(s)", st.name, float64(d.Microseconds())/1000, c.Transactions()-n)
		}
	})
}

// BenchmarkReconcileTunnels measures, per backend, a reconcile that creates 1000 tunnels and
// one that deletes them (one transaction each), and a reconcile of 1000 unchanged tunnels
// (no transaction).
func BenchmarkReconcileTunnels(b *testing.B) {
	for _, be := range backends {
		b.Run(be.name, func(b *testing.B) {
			ctx := context.Background()
			c := dial(b, be.start(b))
			ensureBridge(b, c, "br-int", "h1")
			ds := tunnels(1000, 0)
			b.Run("add-remove-1000", func(b *testing.B) {
				for b.Loop() {
					if _, err := c.ReconcileTunnels(ctx, "br-int", "h1", ds); err != nil {
						b.Fatal(err)
					}
					if _, err := c.ReconcileTunnels(ctx, "br-int", "h1", nil); err != nil {
						b.Fatal(err)
					}
				}
			})
			if _, err := c.ReconcileTunnels(ctx, "br-int", "h1", ds); err != nil {
				b.Fatal(err)
			}
			b.Run("unchanged-1000", func(b *testing.B) {
				n := c.Transactions()
				for b.Loop() {
					if _, err := c.ReconcileTunnels(ctx, "br-int", "h1", ds); err != nil {
						b.Fatal(err)
					}
				}
				if c.Transactions() != n {
					b.Fatalf("%d transactions for unchanged input", c.Transactions()-n)
				}
			})
		})
	}
}

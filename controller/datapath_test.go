package controller

import (
	"context"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/peers"
)

// TestDatapathPlan: the datapath choice reaches the bridge (datapath_type), the status, and
// every container attach (which steps it takes is netplumb's, per fabric.Datapath), for the
// kernel datapath as for the userspace one.
func TestDatapathPlan(t *testing.T) {
	for _, dp := range []fabric.Datapath{fabric.DatapathSystem, fabric.DatapathNetdev} {
		t.Run(dp.String(), func(t *testing.T) {
			ctx := context.Background()
			ep := startOVSDB(t)
			s := settings(t, "10.244.1.0/24")
			s.DatapathType = dp
			m := &fakeMembers{ch: make(chan struct{})}
			m.set(peer("h2", "172.30.0.12", "10.244.2.0/24", peers.StateAlive, time.Now()))
			c, sw, k := newController(t, ep, s, m)
			if err := c.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			inv, err := sw.Owned(ctx, s.Name)
			if err != nil {
				t.Fatal(err)
			}
			if len(inv.Bridges) != 1 || inv.Bridges[0].DatapathType != dp.String() {
				t.Errorf("bridges %+v, want one with datapath_type %s", inv.Bridges, dp)
			}
			if st := c.Status(); st.Datapath != dp.String() {
				t.Errorf("status datapath %q, want %s", st.Datapath, dp)
			}
			ns := t.TempDir() // the fake kernel only checks that the namespace path exists
			if _, err := endpoints(c).Attach(ctx, attachReq(ns, "", "")); err != nil {
				t.Fatal(err)
			}
			k.mu.Lock()
			got := k.attached
			k.mu.Unlock()
			if len(got) != 1 || got[0].Datapath != dp {
				t.Errorf("attachments %+v, want one for datapath %s", got, dp)
			}
		})
	}
}

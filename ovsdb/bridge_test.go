package ovsdb

import (
	"context"
	"slices"
	"testing"

	"github.com/ovn-org/libovsdb/model"
	libovsdb "github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovsfabric/ovsfabric/ovsdb/ovsdbtest"
	"github.com/ovsfabric/ovsfabric/ovsdb/vswitchd"
)

func TestEnsureBridge(t *testing.T) {
	eachBackend(t, func(t *testing.T, ep string) {
		ctx := context.Background()
		c, raw := dial(t, ep), rawClient(t, ep)
		spec := BridgeSpec{Name: "br-int", DatapathType: "netdev", FailMode: "standalone", Owner: "h1"}

		expectOneWrite(t, c, "create", func() {
			if err := c.EnsureBridge(ctx, spec); err != nil {
				t.Fatal(err)
			}
		})
		// As ovs-vsctl add-br: the local internal port, owner and role on all three rows, and
		// the bridge in Open_vSwitch.bridges. The cache shows it as soon as EnsureBridge returns.
		inv, err := c.Owned(ctx, "h1")
		if err != nil {
			t.Fatal(err)
		}
		if len(inv.Bridges) != 1 || inv.Bridges[0].Name != "br-int" || inv.Bridges[0].DatapathType != "netdev" ||
			inv.Bridges[0].FailMode != "standalone" || inv.Bridges[0].ExternalIDs[KeyRole] != RoleBridge {
			t.Fatalf("bridges = %+v", inv.Bridges)
		}
		if len(inv.Ports) != 1 {
			t.Fatalf("ports = %+v", inv.Ports)
		}
		lp := inv.Ports[0]
		if lp.Name != "br-int" || lp.Type != "internal" || lp.Owner() != "h1" || lp.Role() != RoleBridge ||
			lp.IfaceExternalIDs[KeyOwner] != "h1" || lp.IfaceExternalIDs[KeyRole] != RoleBridge {
			t.Errorf("local port = %+v", lp)
		}
		s, _ := c.snapshot(ctx)
		if !slices.Contains(s.root.Bridges, s.bridges["br-int"].UUID) {
			t.Error("bridge not in Open_vSwitch.bridges")
		}

		expectNoWrite(t, c, "same spec again", func() {
			if err := c.EnsureBridge(ctx, spec); err != nil {
				t.Fatal(err)
			}
		})

		// Someone adds a key of their own; fabricd's updates leave it alone.
		b := rawBridge(t, raw, "br-int")
		brRow := &vswitchd.Bridge{UUID: b.UUID}
		rawTransact(t, raw, mustOps(raw.Where(brRow).Mutate(brRow, model.Mutation{Field: &brRow.ExternalIDs,
			Mutator: libovsdb.MutateOperationInsert, Value: map[string]string{"operator-note": "keep me"}})))
		waitFor(t, "operator key", func() bool {
			s, _ := c.snapshot(ctx)
			return s.bridges["br-int"].ExternalIDs["operator-note"] != ""
		})

		steps := []struct {
			name   string
			mutate func(*BridgeSpec)
			check  func(BridgeInfo) bool
		}{
			{"datapath type", func(s *BridgeSpec) { s.DatapathType = "system" }, func(b BridgeInfo) bool { return b.DatapathType == "system" }},
			{"fail mode", func(s *BridgeSpec) { s.FailMode = "secure" }, func(b BridgeInfo) bool { return b.FailMode == "secure" }},
			{"fail mode cleared", func(s *BridgeSpec) { s.FailMode = "" }, func(b BridgeInfo) bool { return b.FailMode == "" }},
			{"protocols", func(s *BridgeSpec) { s.Protocols = []string{"OpenFlow15", "OpenFlow13"} },
				func(b BridgeInfo) bool { return slices.Equal(b.Protocols, []string{"OpenFlow13", "OpenFlow15"}) }},
			{"external id added", func(s *BridgeSpec) { s.ExternalIDs = map[string]string{"ovsfabric-cluster": "lab"} },
				func(b BridgeInfo) bool { return b.ExternalIDs["ovsfabric-cluster"] == "lab" }},
			{"own external id dropped", func(s *BridgeSpec) { s.ExternalIDs = nil },
				func(b BridgeInfo) bool { _, ok := b.ExternalIDs["ovsfabric-cluster"]; return !ok }},
		}
		for _, st := range steps {
			st.mutate(&spec)
			expectOneWrite(t, c, st.name, func() {
				if err := c.EnsureBridge(ctx, spec); err != nil {
					t.Fatalf("%s: %v", st.name, err)
				}
			})
			inv, _ := c.Owned(ctx, "h1")
			if b := inv.Bridges[0]; !st.check(b) || b.ExternalIDs["operator-note"] != "keep me" || b.ExternalIDs[KeyOwner] != "h1" {
				t.Errorf("%s: bridge is %+v", st.name, b)
			}
			expectNoWrite(t, c, st.name+" again", func() {
				if err := c.EnsureBridge(ctx, spec); err != nil {
					t.Fatal(err)
				}
			})
		}

		// The local port deleted by hand comes back.
		rawDelPort(t, raw, "br-int", "br-int")
		waitFor(t, "local port gone", func() bool { _, ok := port(t, c, "br-int", "br-int"); return !ok })
		expectOneWrite(t, c, "restore local port", func() {
			if err := c.EnsureBridge(ctx, spec); err != nil {
				t.Fatal(err)
			}
		})
		if p, ok := port(t, c, "br-int", "br-int"); !ok || p.Type != "internal" {
			t.Errorf("local port not restored: %+v", p)
		}

		// A bridge someone else made: not touched, until handed over.
		other := BridgeSpec{Name: "br-other", Owner: "h2"}
		if err := c.EnsureBridge(ctx, other); err != nil {
			t.Fatal(err)
		}
		expectNoWrite(t, c, "foreign bridge", func() {
			err := c.EnsureBridge(ctx, BridgeSpec{Name: "br-other", DatapathType: "netdev", Owner: "h1"})
			if !isErr(err, ErrNotOwned) {
				t.Errorf("EnsureBridge of h2's bridge as h1: %v, want ErrNotOwned", err)
			}
		})
		// A port name is no bridge name.
		expectNoWrite(t, c, "bridge named like a port", func() {
			rawAddPort(t, raw, "br-int", "veth-x", "", nil)
			waitFor(t, "veth-x in the cache", func() bool { _, ok := port(t, c, "br-int", "veth-x"); return ok })
			n := c.Transactions()
			if err := c.EnsureBridge(ctx, BridgeSpec{Name: "veth-x", Owner: "h1"}); !isErr(err, ErrConflict) {
				t.Errorf("EnsureBridge over a port's name: %v, want ErrConflict", err)
			}
			if c.Transactions() != n {
				t.Error("sent a transaction")
			}
			rawDelPort(t, raw, "br-int", "veth-x")
			waitFor(t, "veth-x gone", func() bool { _, ok := port(t, c, "br-int", "veth-x"); return !ok })
		})
	})
}

func TestEnsureBridgeRejects(t *testing.T) {
	c := dial(t, ovsdbtest.Start(t))
	for _, tc := range []struct {
		name string
		spec BridgeSpec
	}{
		{"empty name", BridgeSpec{Owner: "h1"}},
		{"16 bytes", BridgeSpec{Name: "br-0123456789abc", Owner: "h1"}},
		{"slash", BridgeSpec{Name: "br/int", Owner: "h1"}},
		{"empty owner", BridgeSpec{Name: "br-int"}},
		{"datapath", BridgeSpec{Name: "br-int", Owner: "h1", DatapathType: "dpdk"}},
		{"fail mode", BridgeSpec{Name: "br-int", Owner: "h1", FailMode: "open"}},
		{"protocol", BridgeSpec{Name: "br-int", Owner: "h1", Protocols: []string{"OpenFlow16"}}},
		{"owner in ids", BridgeSpec{Name: "br-int", Owner: "h1", ExternalIDs: map[string]string{KeyOwner: "h2"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectNoWrite(t, c, tc.name, func() {
				if err := c.EnsureBridge(context.Background(), tc.spec); !isErr(err, ErrInvalid) {
					t.Errorf("err = %v, want ErrInvalid", err)
				}
			})
		})
	}
}

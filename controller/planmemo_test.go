package controller

import (
	"fmt"
	"net/netip"
	"reflect"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/fabric"
)

// TestPlanMemo: the remembered plan is used exactly when the facts plan the same, and what
// plan returns is always what fabric.Plan returns.
func TestPlanMemo(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	cluster := netip.MustParsePrefix("10.244.0.0/16")
	base := func() fabric.Facts {
		f := fabric.Facts{Node: "n0", Underlay: netip.MustParseAddr("172.31.0.1"), UnderlayMTU: 1500, Subnet: fabric.NthSubnet(cluster, 24, 0),
			SubnetSince: 1, ClusterCIDR: cluster, Tunnel: fabric.TunnelVXLAN, TunnelMode: fabric.TunnelFlow, Bridge: "br-int", GatewayPort: "fabric0",
			Datapath: "netdev", Now: t0, DeadPeerGrace: time.Minute}
		for i := 1; i <= 3; i++ {
			f.Peers = append(f.Peers, fabric.Peer{Name: fmt.Sprintf("n%d", i), Underlay: netip.AddrFrom4([4]byte{172, 31, 0, byte(i + 1)}),
				Subnet: fabric.NthSubnet(cluster, 24, i), SubnetSince: 1, State: fabric.PeerAlive, StateSince: t0})
		}
		// n3 died 30 s before t0: within the grace until t0+30s.
		f.Peers[2].State, f.Peers[2].StateSince = fabric.PeerDead, t0.Add(-30*time.Second)
		f.Networks = []fabric.NetworkFacts{{Name: "blue", Key: 7, CIDR: netip.MustParsePrefix("10.9.0.0/16"), Slice: netip.MustParsePrefix("10.9.0.0/24"),
			PeerSlices: []fabric.PeerSlice{{Peer: "n1", Slice: netip.MustParsePrefix("10.9.1.0/24")}}}}
		return f
	}
	for _, tc := range []struct {
		name   string
		change func(*fabric.Facts)
		reuse  bool
	}{
		{"nothing changed", func(*fabric.Facts) {}, true},
		{"later, no grace ends", func(f *fabric.Facts) { f.Now = t0.Add(10 * time.Second) }, true},
		{"later, a dead peer's grace ended", func(f *fabric.Facts) { f.Now = t0.Add(31 * time.Second) }, false},
		{"a peer died", func(f *fabric.Facts) { f.Peers[0].State = fabric.PeerDead }, false},
		{"a peer's subnet changed", func(f *fabric.Facts) { f.Peers[1].Subnet = fabric.NthSubnet(cluster, 24, 9) }, false},
		{"a peer's underlay changed", func(f *fabric.Facts) { f.Peers[1].Underlay = netip.MustParseAddr("172.31.9.9") }, false},
		{"a peer joined", func(f *fabric.Facts) {
			f.Peers = append(f.Peers, fabric.Peer{Name: "n4", Underlay: netip.MustParseAddr("172.31.0.5"), Subnet: fabric.NthSubnet(cluster, 24, 4), SubnetSince: 1, State: fabric.PeerAlive, StateSince: t0})
		}, false},
		{"a network's peer slice changed", func(f *fabric.Facts) { f.Networks[0].PeerSlices[0].Slice = netip.MustParsePrefix("10.9.2.0/24") }, false},
		{"a network's key changed", func(f *fabric.Facts) { f.Networks[0].Key = 8 }, false},
		{"a network went", func(f *fabric.Facts) { f.Networks = nil }, false},
		{"the underlay MTU changed", func(f *fabric.Facts) { f.UnderlayMTU = 9000 }, false},
		{"the tunnel mode changed", func(f *fabric.Facts) { f.TunnelMode = fabric.TunnelPerPeer }, false},
		{"the local subnet changed", func(f *fabric.Facts) { f.Subnet = fabric.NthSubnet(cluster, 24, 10) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m planMemo
			first := base()
			d0, err := m.plan(first)
			if err != nil {
				t.Fatal(err)
			}
			// The caller's slices change after the plan (the memo keeps its own).
			first.Peers[0].Name, first.Networks[0].PeerSlices[0].Peer = "changed", "changed"
			f := base()
			tc.change(&f)
			got, err := m.plan(f)
			if err != nil {
				t.Fatal(err)
			}
			want, err := fabric.Plan(f)
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("plan %+v\nwant %+v", got, want)
			}
			reused := len(d0.Routes) > 0 && len(got.Routes) > 0 && &d0.Routes[0] == &got.Routes[0]
			if reused != tc.reuse {
				t.Fatalf("remembered plan used: %v, want %v", reused, tc.reuse)
			}
		})
	}
	// A failed plan is not remembered: the same facts fail again.
	var m planMemo
	bad := base()
	bad.Bridge = ""
	if _, err := m.plan(bad); err == nil {
		t.Fatal("plan without a bridge succeeded")
	}
	if _, err := m.plan(bad); err == nil {
		t.Fatal("a failed plan was remembered")
	}
}

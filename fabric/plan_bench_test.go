package fabric

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// syntheticFacts is a host with n alive peers, each with its own /24 out of a /8.
func syntheticFacts(n int) Facts {
	now := time.Unix(1_800_000_000, 0)
	big := netip.MustParsePrefix("10.0.0.0/8")
	f := Facts{
		Node: "n0", Underlay: netip.MustParseAddr("172.31.255.254"), UnderlayMTU: 1500,
		Subnet: NthSubnet(big, 24, 0), SubnetSince: 1, ClusterCIDR: big, Tunnel: TunnelVXLAN,
		Bridge: "br-int", GatewayPort: "fabric0", Datapath: "netdev", Now: now, DeadPeerGrace: time.Minute,
	}
	for i := 1; i <= n; i++ {
		ip := netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)})
		f.Peers = append(f.Peers, Peer{Name: fmt.Sprintf("n%d", i), Underlay: ip, Subnet: NthSubnet(big, 24, i), SubnetSince: 1, State: PeerAlive, StateSince: now})
	}
	return f
}

// BenchmarkPlan shows how planning cost grows with the number of peers.
func BenchmarkPlan(b *testing.B) {
	for _, n := range []int{10, 100, 1000, 10000} {
		f := syntheticFacts(n)
		b.Run(fmt.Sprintf("peers=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				d, err := Plan(f)
				if err != nil || len(d.Tunnels) != n {
					b.Fatalf("plan: %v, %d tunnels", err, len(d.Tunnels))
				}
			}
		})
	}
}

package bench

import (
	"context"
	"log/slog"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/peers"
)

// TestSwarmMembersArePeers runs a real peers.Membership (as in fabricd) and three synthetic
// members on loopback: the real member must accept them as alive peers with the metadata
// they announce, and the synthetic members must keep each other out of their views.
func TestSwarmMembersArePeers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lo := netip.MustParseAddr("127.0.0.1")
	cidr := netip.MustParsePrefix("10.64.0.0/12")
	real, err := peers.Start(ctx, peers.Config{
		Name: "h1", BindAddr: lo, Logger: slog.New(slog.DiscardHandler),
		Meta: peers.Meta{Proto: peers.ProtocolVersion, Addr: netip.MustParseAddr("192.0.2.1"), Subnet: fabric.NthSubnet(cidr, 24, 0), SubnetSince: 1, Tunnel: peers.TunnelVXLAN, ClusterCIDR: cidr, MTU: 1450},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer real.Shutdown()
	sw, err := StartSwarm(ctx, SwarmConfig{Members: 3, Bind: lo, Join: real.Local().Gossip.String(), ClusterCIDR: cidr, Tunnel: peers.TunnelVXLAN})
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()

	// Wait (without a time limit of its own: the test's context bounds it) until the real
	// member has all three alive, then check what it knows of them.
	var ps []peers.Peer
	for {
		ps = real.Peers()
		alive := 0
		for _, p := range ps {
			if p.State == peers.StateAlive {
				alive++
			}
		}
		if alive == 3 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the real member sees %+v; rejected: %v", ps, real.Rejected())
		}
		time.Sleep(20 * time.Millisecond)
	}
	for i, p := range ps {
		wantSubnet := fabric.NthSubnet(cidr, 24, i+1)
		wantAddr := netip.AddrFrom4([4]byte{198, 18, 0, byte(i + 1)})
		if p.Name != "syn0000"+string(rune('0'+i)) || p.Meta.Subnet != wantSubnet || p.Meta.Addr != wantAddr || p.Meta.Tunnel != peers.TunnelVXLAN || p.Meta.ClusterCIDR != cidr {
			t.Errorf("peer %d: %+v, want subnet %s addr %s", i, p, wantSubnet, wantAddr)
		}
	}
	if v := sw.MaxView(); v != 2 {
		t.Errorf("a synthetic member's view has %d members, want 2 (itself and the real one)", v)
	}
}

// TestSwarmSeeds joins most members through seed members: the real member must still learn
// every one of them (from the alive message each gossips to it) with its metadata.
func TestSwarmSeeds(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	lo := netip.MustParseAddr("127.0.0.1")
	cidr := netip.MustParsePrefix("10.64.0.0/12")
	real, err := peers.Start(ctx, peers.Config{
		Name: "h1", BindAddr: lo, Logger: slog.New(slog.DiscardHandler),
		Meta: peers.Meta{Proto: peers.ProtocolVersion, Addr: netip.MustParseAddr("192.0.2.1"), Subnet: fabric.NthSubnet(cidr, 24, 0), SubnetSince: 1, Tunnel: peers.TunnelVXLAN, ClusterCIDR: cidr, MTU: 1450},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer real.Shutdown()
	const members = 8
	if _, err := StartSwarm(ctx, SwarmConfig{Members: members, Bind: lo, Seeds: 2, Join: real.Local().Gossip.String(), ClusterCIDR: cidr, Tunnel: peers.TunnelVXLAN}); err == nil {
		t.Fatal("seeds without a base port were accepted")
	}
	sw, err := StartSwarm(ctx, SwarmConfig{Members: members, Bind: lo, BasePort: 40000 + rand.IntN(20000), Seeds: 2, Join: real.Local().Gossip.String(), ClusterCIDR: cidr, Tunnel: peers.TunnelVXLAN})
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	for {
		subnets := map[netip.Prefix]bool{}
		for _, p := range real.Peers() {
			if p.State == peers.StateAlive {
				subnets[p.Meta.Subnet] = true
			}
		}
		all := len(subnets) == members
		for i := range members {
			all = all && subnets[fabric.NthSubnet(cidr, 24, i+1)]
		}
		if all {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the real member sees %d of %d members alive: %+v", len(subnets), members, real.Peers())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if v := sw.MaxView(); v != 2 {
		t.Errorf("a synthetic member's view has %d members, want 2 (itself and the real one)", v)
	}
}

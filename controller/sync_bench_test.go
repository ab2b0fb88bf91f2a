package controller

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/config"
	"github.com/ovsfabric/ovsfabric/endpoint"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/flows/flowstest"
	"github.com/ovsfabric/ovsfabric/ovsdb"
	"github.com/ovsfabric/ovsfabric/ovsdb/ovsdbtest"
	"github.com/ovsfabric/ovsfabric/peers"
)

// scaleCluster holds a /24 for each of thousands of hosts (lab/bench's scale-peers uses it).
const scaleCluster = "10.128.0.0/9"

// scaleMembers is a gossip view of n alive peers in scaleCluster, host i on subnet i.
func scaleMembers(n int, since time.Time) *fakeMembers {
	cluster := netip.MustParsePrefix(scaleCluster)
	ps := make([]peers.Peer, 0, n)
	for i := 1; i <= n; i++ {
		ps = append(ps, peers.Peer{Name: fmt.Sprintf("p%05d", i), State: peers.StateAlive, Since: since, Meta: peers.Meta{
			Proto: peers.ProtocolVersion, Addr: netip.AddrFrom4([4]byte{172, 16, byte(i >> 8), byte(i)}),
			Subnet: fabric.NthSubnet(cluster, 24, i), SubnetSince: 1, Tunnel: "vxlan", ClusterCIDR: cluster,
		}})
	}
	m := &fakeMembers{ch: make(chan struct{})}
	m.set(ps...)
	return m
}

// newScaleController is host h1 (subnet 0 of scaleCluster) of a fabric of peers+1 hosts in
// tunnel mode over an in-memory OVSDB, fake host plumbing and flows, after the sync that
// built everything: every sync after it finds nothing to change.
func newScaleController(tb testing.TB, peerCount int, mode fabric.TunnelMode) (*Controller, *fakeKernel, *flowstest.Switch) {
	tb.Helper()
	ctx := context.Background()
	ep := ovsdbtest.Start(tb)
	ovsdbtest.Vswitchd(tb, ep)
	cfg := config.DefaultConfig()
	cfg.Name, cfg.AdvertiseAddr = "h1", "172.30.0.11"
	cfg.ClusterCIDR, cfg.Subnet = scaleCluster, fabric.NthSubnet(netip.MustParsePrefix(scaleCluster), 24, 0).String()
	cfg.DeadPeerGrace = time.Minute
	s, err := cfg.Validate()
	if err != nil {
		tb.Fatal(err)
	}
	s.UnderlayMTU, s.DatapathType = 1500, "netdev"
	s.TunnelMode, s.TunnelModeValue = string(mode), mode
	s.Resync = time.Hour // every sync below is event-woken: none is the periodic resync pass
	sw, err := ovsdb.Dial(ctx, ep)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(sw.Close)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		if _, err := sw.SystemExternalIDs(ctx); err == nil || time.Now().After(deadline) {
			break
		}
	}
	k, of, log := &fakeKernel{}, flowstest.New(), slog.New(slog.DiscardHandler)
	eps := endpoint.New(s, sw, k, log)
	c := New(s, sw, k, of, eps, log)
	eps.SetLoop(c)
	if err := c.Init(ctx); err != nil {
		tb.Fatal(err)
	}
	c.SetMembership(scaleMembers(peerCount, time.Now()))
	c.settledOnce = true
	// Until the stand-in for ovs-vswitchd has numbered the tunnel ports, a sync leaves their
	// flows for the next one.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if err := c.Sync(ctx); err != nil {
			tb.Fatal(err)
		}
		c.pipeMu.Lock()
		ready := len(c.tunnelsInFlows) > 0 && c.flowsApplied != nil
		c.pipeMu.Unlock()
		if ready {
			break
		}
		if time.Now().After(deadline) {
			tb.Fatal("the pipeline never used a tunnel port")
		}
	}
	return c, k, of
}

// TestScaleControllerConverged checks the input of BenchmarkSyncNoChange: after setup every
// peer has its route and its flow, and a further sync writes nothing.
func TestScaleControllerConverged(t *testing.T) {
	const n = 200
	ctx := context.Background()
	c, k, of := newScaleController(t, n, fabric.TunnelFlow)
	if len(k.routes) < n {
		t.Fatalf("%d routes, want at least one per peer (%d)", len(k.routes), n)
	}
	writes, applies := k.writes, of.Applies()
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if k.writes != writes || of.Applies() != applies {
		t.Fatalf("a no-change sync wrote: host writes %d -> %d, flow applies %d -> %d", writes, k.writes, applies, of.Applies())
	}
}

// BenchmarkSyncNoChange times Controller.Sync that finds nothing to change (an event-woken
// reconcile: not the periodic resync pass), for 5000 peers in each tunnel mode, over the
// in-memory OVSDB and fake host plumbing and flows. Besides ns/op it reports the median.
func BenchmarkSyncNoChange(b *testing.B) {
	for _, bc := range []struct {
		peers int
		mode  fabric.TunnelMode
	}{{5000, fabric.TunnelFlow}} {
		b.Run(fmt.Sprintf("peers=%d/mode=%s", bc.peers, bc.mode), func(b *testing.B) {
			ctx := context.Background()
			c, _, _ := newScaleController(b, bc.peers, bc.mode)
			b.ReportAllocs()
			var took []time.Duration
			for b.Loop() {
				start := time.Now()
				if err := c.Sync(ctx); err != nil {
					b.Fatal(err)
				}
				took = append(took, time.Since(start))
			}
			slices.Sort(took)
			b.ReportMetric(float64(took[len(took)/2].Nanoseconds()), "median-ns")
		})
	}
}

package controller

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/endpoint"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/ovsdb/ovsdbtest"
	"github.com/ovsfabric/ovsfabric/peers"
	"github.com/ovsfabric/ovsfabric/registry"
)

// TestSharedSizeIsRegistryLimit: an endpoint record fits a registry value.
func TestSharedSizeIsRegistryLimit(t *testing.T) {
	if endpoint.MaxSharedSize != registry.MaxValueSize {
		t.Errorf("endpoint.MaxSharedSize %d, registry.MaxValueSize %d", endpoint.MaxSharedSize, registry.MaxValueSize)
	}
}

// registryHost is a membership on loopback whose gossip carries a registry, as fabricd
// wires them.
func registryHost(t *testing.T, name string, i int, join ...string) (*peers.Membership, *registry.Registry) {
	t.Helper()
	var send peers.Sender
	reg, err := registry.New(registry.Config{Origin: name, Incarnation: 1, Sender: &send, NumNodes: send.NumNodes, RetransmitMult: peers.RetransmitMult, GapDelay: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = reg.Run(ctx) }()
	m, err := peers.Start(context.Background(), peers.Config{
		Name: name, BindAddr: netip.MustParseAddr("127.0.0.1"), Join: join, Registry: reg,
		Logger:  slog.New(slog.DiscardHandler),
		Timings: peers.Timings{PushPullInterval: time.Second},
		Meta: peers.Meta{Proto: peers.ProtocolVersion, Addr: netip.AddrFrom4([4]byte{172, 30, 0, byte(10 + i)}),
			Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i), 0}), 24), SubnetSince: 1, SubnetSeq: uint64(i),
			Tunnel: "vxlan", ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"), MTU: 1450},
	})
	if err != nil {
		t.Fatal(err)
	}
	send.Set(m)
	t.Cleanup(func() { _ = m.Shutdown(); cancel(); <-done })
	return m, reg
}

// manyEndpoints are n endpoints as a host's port snapshot decodes them.
func manyEndpoints(n int) []endpoint.Record {
	rs := make([]endpoint.Record, n)
	for i := range rs {
		mac := net.HardwareAddr{2, 0, 10, 244, byte(i >> 8), byte(i)}
		rs[i] = endpoint.Record{Port: fmt.Sprintf("fab%05d", i), Network: endpoint.DefaultNetwork, Container: fmt.Sprintf("container-%05d", i),
			ID: fmt.Sprintf("%064x", i), IfName: "eth0", Addr: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, 1 + byte(i/250), byte(2 + i%250)}), 16), MAC: mac}
	}
	return rs
}

// TestEndpointsThroughRegistry: 2000 endpoints of one host (about 30 times what the 8 KiB
// attachment blob held) reach the other host's `ls --all` whole, over two real memberlist
// instances; a detach disappears there; a host gone past the grace is forgotten.
func TestEndpointsThroughRegistry(t *testing.T) {
	const n = 2000
	ma, ra := registryHost(t, "h2", 2)
	mb, rb := registryHost(t, "h1", 1, ma.Local().Gossip.String())

	s := settings(t, "")
	s.Cluster = netip.MustParsePrefix("10.244.0.0/16")
	pub := New(s, nil, nil, nil, nil, slog.New(slog.DiscardHandler))
	pub.SetRegistry(ra)
	rs := manyEndpoints(n)
	size := 0
	for _, r := range rs {
		size += len(endpoint.EncodeShared(r))
	}
	pub.publishEndpoints(rs)
	if got := ra.Count(registry.KindEndpoint)["h2"]; got != n {
		t.Fatalf("h2 published %d records", got)
	}

	c := New(s, nil, nil, nil, nil, slog.New(slog.DiscardHandler))
	c.SetRegistry(rb)
	c.SetMembership(mb)
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	for len(c.RemoteAttachments()) != n {
		if time.Now().After(deadline) {
			t.Fatalf("h1 lists %d of h2's %d endpoints", len(c.RemoteAttachments()), n)
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Logf("%d endpoints (%d KiB of values) listed on the other host %s after publishing", n, size>>10, time.Since(start).Round(time.Millisecond))
	got := c.RemoteAttachments()
	if a := got[n-1]; a.Host != "h2" || a.Container != "container-01999" || a.IP != "10.244.8.251/16" || a.MAC != "02:00:0a:f4:07:cf" || a.Gateway != "10.244.0.1" {
		t.Errorf("last endpoint listed as %+v", a)
	}

	// Detach one, change one: only those two records are written.
	rs[5].Container = "renamed"
	pub.publishEndpoints(append(rs[:7:7], rs[8:]...))
	waitRemote(t, c, func(as map[string]string) bool {
		_, still := as["container-00007"]
		return !still && as["renamed"] != "" && len(as) == n-1
	})

	// A host that is gone (left, or dead past the grace) is forgotten.
	c.forgetGone([]fabric.Peer{{Name: "h2", State: fabric.PeerLeft, StateSince: time.Now()}}, time.Now())
	if got := rb.Count(registry.KindEndpoint)["h2"]; got != 0 {
		t.Fatalf("after forgetting h2, h1 holds %d of its records", got)
	}
	// Dead within the grace: kept.
	c.forgetGone([]fabric.Peer{{Name: "h3", State: fabric.PeerDead, StateSince: time.Now()}}, time.Now())
	// h2 alive again without a restart (a partition longer than the grace): its records,
	// never withdrawn on its side, come back without any new write.
	c.forgetGone([]fabric.Peer{{Name: "h2", State: fabric.PeerAlive, StateSince: time.Now()}}, time.Now())
	waitRemote(t, c, func(as map[string]string) bool { return len(as) == n-1 })
}

func waitRemote(t *testing.T, c *Controller, cond func(map[string]string) bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		as := map[string]string{}
		for _, a := range c.RemoteAttachments() {
			as[a.Container] = a.IP
		}
		if cond(as) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("remote endpoints: %d, condition not met", len(as))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestIncarnation: the counter starts at 1, rises by one at each start, is saved again as
// the registry reports it, and a bad value is an error that changes nothing.
func TestIncarnation(t *testing.T) {
	ctx := context.Background()
	sw := dialOVSDB(t, ovsdbtest.Start(t))
	for want := uint32(1); want <= 3; want++ {
		got, err := NextIncarnation(ctx, sw)
		if err != nil || got != want {
			t.Fatalf("start %d: incarnation %d, %v", want, got, err)
		}
	}
	if err := SaveIncarnation(ctx, sw, 40); err != nil {
		t.Fatal(err)
	}
	if got, err := NextIncarnation(ctx, sw); err != nil || got != 41 {
		t.Fatalf("after the registry moved to 40: %d, %v", got, err)
	}
	for _, bad := range []string{"x", "-1", "4294967296", "4294967295"} {
		if err := sw.SetSystemExternalIDs(ctx, map[string]string{KeyIncarnation: bad}, nil); err != nil {
			t.Fatal(err)
		}
		if got, err := NextIncarnation(ctx, sw); err == nil {
			t.Errorf("%q: incarnation %d", bad, got)
		}
		ids, _ := sw.SystemExternalIDs(ctx)
		if ids[KeyIncarnation] != bad {
			t.Errorf("%q became %q", bad, ids[KeyIncarnation])
		}
	}
}

package controller

import (
	"context"
	"log/slog"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/endpoint"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/fabricdns"
	"github.com/ovsfabric/ovsfabric/peers"
)

// TestDNSFromRegistry: the DNS table holds this host's named endpoints and those another
// host publishes, as soon as the registry brings them (WatchDNS), and drops the names of a
// host that left; dns ls lists them with their origin.
func TestDNSFromRegistry(t *testing.T) {
	m2, r2 := registryHost(t, "h2", 2)
	_, r1 := registryHost(t, "h1", 1, m2.Local().Gossip.String())
	s := settings(t, "")
	s.Cluster = netip.MustParsePrefix("10.244.0.0/16")

	other := New(s, nil, nil, nil, nil, slog.New(slog.DiscardHandler))
	other.SetRegistry(r2)
	other.publishEndpoints([]endpoint.Record{
		{Port: "p1", Network: endpoint.DefaultNetwork, Container: "db", Addr: netip.MustParsePrefix("10.244.2.2/24"), Name: "db", Aliases: []string{"api"}},
		{Port: "p2", Network: endpoint.DefaultNetwork, Container: "pid:7", Addr: netip.MustParsePrefix("10.244.2.3/24")}, // nameless
	})

	members := &fakeMembers{ch: make(chan struct{})}
	members.set(peer("h2", "172.30.0.12", "10.244.2.0/24", peers.StateAlive, time.Now()))
	c := New(s, nil, nil, nil, nil, slog.New(slog.DiscardHandler))
	c.SetRegistry(r1)
	c.SetMembership(members)
	tab := fabricdns.NewTable()
	c.SetDNS(tab, nil)
	c.syncDNS(fabric.Desired{Gateway: netip.MustParsePrefix("10.244.1.1/24")})
	c.publishEndpoints([]endpoint.Record{
		{Port: "p1", Network: endpoint.DefaultNetwork, Container: "web", Addr: netip.MustParsePrefix("10.244.1.2/24"), Name: "web", Aliases: []string{"api"}},
	})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	changes, stop := r1.Subscribe()
	defer stop()
	go c.WatchDNS(ctx, changes)

	want := []netip.Addr{netip.MustParseAddr("10.244.1.2"), netip.MustParseAddr("10.244.2.2")}
	deadline := time.Now().Add(15 * time.Second)
	for !slices.Equal(tab.Lookup("default", "api"), want) {
		if time.Now().After(deadline) {
			t.Fatalf("api resolves to %v, want %v", tab.Lookup("default", "api"), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	recs := c.DNSRecords("")
	if len(recs) != 2 || recs[0].Name != "db" || recs[0].Host != "h2" || recs[1].Name != "web" || recs[1].Host != "h1" {
		t.Errorf("DNSRecords: %+v", recs)
	}
	if got := c.DNSRecords("blue"); len(got) != 0 {
		t.Errorf("DNSRecords(blue): %+v", got)
	}
	// h2 left: its names go at the next refresh.
	members.set(peer("h2", "172.30.0.12", "10.244.2.0/24", peers.StateLeft, time.Now()))
	c.RefreshDNS()
	if got := tab.Lookup("default", "db"); len(got) != 0 {
		t.Errorf("db after h2 left: %v", got)
	}
	if got := tab.Lookup("default", "api"); !slices.Equal(got, want[:1]) {
		t.Errorf("api after h2 left: %v", got)
	}
}

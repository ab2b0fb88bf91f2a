package controller

import (
	"context"
	"log/slog"
	"net/netip"
	"reflect"
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
	c.syncDNS(fabric.Desired{Gateway: netip.MustParsePrefix("10.244.1.1/24")}, members.Peers)
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

// TestDNSWellKnown: the fabric DNS also listens on its address shared by every network, the
// gateway port holds it as a /32 in a scope of its own (so the level-triggered Set keeps it
// and never takes it for a stale gateway address), and the pipeline lets every network reach
// it.
func TestDNSWellKnown(t *testing.T) {
	wk := fabricdns.WellKnown()
	c := New(settings(t, ""), nil, nil, nil, nil, slog.New(slog.DiscardHandler))
	d := fabric.Desired{
		GatewayPort: "fabric0",
		Gateway:     netip.MustParsePrefix("10.244.1.1/24"),
		Networks: []fabric.NetworkPlan{
			{Name: "default", CIDR: netip.MustParsePrefix("10.244.0.0/16"), Gateway: netip.MustParsePrefix("10.244.1.1/24")},
			{Name: "blue", Key: 100, Internal: true, CIDR: netip.MustParsePrefix("10.50.0.0/16"), Gateway: netip.MustParsePrefix("10.50.1.1/24")},
		},
	}
	_, ls := c.dnsNetworks(d)
	want := []fabricdns.Listener{
		{Network: "default", Addr: netip.MustParseAddr("10.244.1.1")},
		{Network: "blue", Addr: netip.MustParseAddr("10.50.1.1")},
		{Network: fabricdns.AnyNetwork, Addr: wk},
	}
	if !slices.Equal(ls, want) {
		t.Errorf("listeners %v, want %v", ls, want)
	}
	if _, ls := c.dnsNetworks(fabric.Desired{}); len(ls) != 0 {
		t.Errorf("no network served, listeners %v", ls)
	}
	scopes := make([]netip.Prefix, 2, 3) // room to append: hostState must not write into it
	scopes[0], scopes[1] = netip.MustParsePrefix("10.244.0.0/16"), netip.MustParsePrefix("10.50.0.0/16")
	hs := hostState(d, scopes, true)
	wk32 := netip.PrefixFrom(wk, 32)
	if !slices.Contains(hs.Addrs, wk32) || !slices.Contains(hs.Scopes, wk32) {
		t.Errorf("host state addrs %v scopes %v, want %s in both", hs.Addrs, hs.Scopes, wk32)
	}
	if extra := scopes[:3][2]; extra.IsValid() {
		t.Errorf("hostState wrote %s into its caller's scopes", extra)
	}
	p := &routedPipeline{node: "h1", dns: true}
	if in := p.input(d, nil); in.DNS != wk {
		t.Errorf("pipeline input DNS %v, want %v", in.DNS, wk)
	}
	// Without the fabric DNS: no shared address on the gateway (its scope stays, so a left-over
	// one goes) and no flows toward it.
	hs = hostState(d, scopes, false)
	if slices.Contains(hs.Addrs, wk32) || !slices.Contains(hs.Scopes, wk32) {
		t.Errorf("--dns=false: host state addrs %v scopes %v, want %s in scopes only", hs.Addrs, hs.Scopes, wk32)
	}
	if in := (&routedPipeline{node: "h1"}).input(d, nil); in.DNS.IsValid() {
		t.Errorf("--dns=false: pipeline input DNS %v, want none", in.DNS)
	}
}

func TestAlsoNetworks(t *testing.T) {
	ep := func(ns, network, addr string) endpoint.Record {
		return endpoint.Record{NetNS: ns, Network: network, Addr: netip.MustParsePrefix(addr)}
	}
	got := alsoNetworks([]endpoint.Record{
		ep("/n/a", "default", "10.244.1.2/24"), ep("/n/a", "blue", "10.50.1.2/24"), ep("/n/a", "red", "10.60.1.2/24"),
		ep("/n/b", "blue", "10.50.1.3/24"), // on one network: nothing
	})
	want := map[netip.Addr][]string{
		netip.MustParseAddr("10.244.1.2"): {"blue", "red"},
		netip.MustParseAddr("10.50.1.2"):  {"default", "red"},
		netip.MustParseAddr("10.60.1.2"):  {"default", "blue"},
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("alsoNetworks = %v, want %v", got, want)
	}
}

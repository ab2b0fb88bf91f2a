package netplumb

import (
	"context"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// TestHostNetSet: one Set brings the gateway up with its MTU and address, turns forwarding
// on and installs the routes; the same Set again changes nothing; a Set without the gateway
// (a withdrawal) removes the routes and leaves the gateway as it is.
func TestHostNetSet(t *testing.T) {
	hn := nlIn(t, newHost(t))
	addVethPair(t, hn, "gw0", "gw0p", netip.Prefix{})
	cluster := netip.MustParsePrefix("10.244.0.0/16")
	want := HostState{
		GatewayDev: "gw0", MTU: 1450,
		Addrs: []netip.Prefix{netip.MustParsePrefix("10.244.1.1/24")}, Scopes: []netip.Prefix{cluster},
		Routes: []Route{{Dst: netip.MustParsePrefix("10.244.2.0/24"), Gateway: netip.MustParseAddr("10.244.2.1"), Dev: "gw0", OnLink: true}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, err := HostNet{}.Set(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if !ch.Link || !slices.Equal(ch.Addrs.Added, want.Addrs) || len(ch.Addrs.Removed) != 0 || len(ch.Routes.Added) != 1 {
		t.Errorf("first Set: %+v", ch)
	}
	info, err := HostLink("gw0")
	if err != nil || !info.Up || info.MTU != 1450 {
		t.Errorf("gateway: %+v %v", info, err)
	}
	if got := addrList(t, hn, "gw0"); !slices.Equal(got, want.Addrs) {
		t.Errorf("gateway addresses %v", got)
	}
	if on, err := Forwarding(); err != nil || !on {
		t.Errorf("forwarding %v %v", on, err)
	}
	expectNoWrites(t, "the same Set", func() {
		if ch, err := (HostNet{}).Set(ctx, want); err != nil || ch.Link || !ch.Addrs.Empty() || !ch.Routes.Empty() {
			t.Errorf("second Set: %+v %v", ch, err)
		}
	})
	ch, err = HostNet{}.Set(ctx, HostState{})
	if err != nil || len(ch.Routes.Removed) != 1 {
		t.Errorf("withdraw: %+v %v", ch, err)
	}
	if got := addrList(t, hn, "gw0"); !slices.Equal(got, want.Addrs) {
		t.Errorf("withdraw touched the gateway: %v", got)
	}
}

// TestHostNetSetNetworks: the gateway holds one address per network. Two networks' addresses
// are added together; when one network goes its address goes and the other stays; an
// operator's address outside every network is never touched; a slice that moves replaces its
// address; the same Set twice writes nothing; an address outside every network is refused
// before anything changes.
func TestHostNetSetNetworks(t *testing.T) {
	hn := nlIn(t, newHost(t))
	operator := netip.MustParsePrefix("192.168.50.1/24")
	addVethPair(t, hn, "gw0", "gw0p", operator)
	var (
		def     = netip.MustParsePrefix("10.244.0.0/16")
		blue    = netip.MustParsePrefix("10.50.0.0/16")
		defGW   = netip.MustParsePrefix("10.244.1.1/24")
		blueGW  = netip.MustParsePrefix("10.50.3.1/24")
		blueGW2 = netip.MustParsePrefix("10.50.7.1/26")
	)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	steps := []struct {
		name           string
		addrs, scopes  []netip.Prefix
		added, removed []netip.Prefix
		want           []netip.Prefix // addresses of gw0 afterwards, sorted
	}{
		{"two networks", []netip.Prefix{defGW, blueGW}, []netip.Prefix{def, blue},
			[]netip.Prefix{defGW, blueGW}, nil, []netip.Prefix{blueGW, defGW, operator}},
		{"same again", []netip.Prefix{blueGW, defGW}, []netip.Prefix{blue, def},
			nil, nil, []netip.Prefix{blueGW, defGW, operator}},
		{"blue slice moves", []netip.Prefix{defGW, blueGW2}, []netip.Prefix{def, blue},
			[]netip.Prefix{blueGW2}, []netip.Prefix{blueGW}, []netip.Prefix{blueGW2, defGW, operator}},
		{"blue goes", []netip.Prefix{defGW}, []netip.Prefix{def, blue},
			nil, []netip.Prefix{blueGW2}, []netip.Prefix{defGW, operator}},
		{"blue comes back", []netip.Prefix{defGW, blueGW}, []netip.Prefix{def, blue},
			[]netip.Prefix{blueGW}, nil, []netip.Prefix{blueGW, defGW, operator}},
		{"default goes, scope only blue", []netip.Prefix{blueGW}, []netip.Prefix{blue},
			nil, nil, []netip.Prefix{blueGW, defGW, operator}},
		{"no network at all", nil, []netip.Prefix{def, blue},
			nil, []netip.Prefix{blueGW, defGW}, []netip.Prefix{operator}},
	}
	for _, s := range steps {
		want := HostState{GatewayDev: "gw0", MTU: 1450, Addrs: s.addrs, Scopes: s.scopes}
		var ch HostChanges
		var err error
		if len(s.added)+len(s.removed) == 0 {
			expectNoWrites(t, s.name, func() { ch, err = HostNet{}.Set(ctx, want) })
		} else {
			ch, err = HostNet{}.Set(ctx, want)
		}
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if !samePrefixes(ch.Addrs.Added, s.added) || !samePrefixes(ch.Addrs.Removed, s.removed) {
			t.Errorf("%s: changes %+v, want added %v removed %v", s.name, ch.Addrs, s.added, s.removed)
		}
		if got := addrList(t, hn, "gw0"); !samePrefixes(got, s.want) {
			t.Errorf("%s: gateway addresses %v, want %v", s.name, got, s.want)
		}
	}
	for _, bad := range []HostState{
		{GatewayDev: "gw0", Addrs: []netip.Prefix{netip.MustParsePrefix("10.99.0.1/24")}, Scopes: []netip.Prefix{def}},
		{GatewayDev: "gw0", Addrs: []netip.Prefix{defGW}, Scopes: []netip.Prefix{def, {}}},
		{GatewayDev: "gw0", Addrs: []netip.Prefix{{}}, Scopes: []netip.Prefix{def}},
	} {
		expectNoWrites(t, "bad state", func() {
			if _, err := (HostNet{}).Set(ctx, bad); !IsInvalid(err) {
				t.Errorf("Set(%+v) = %v, want an invalid-input error", bad, err)
			}
		})
	}
	if got := addrList(t, hn, "gw0"); !samePrefixes(got, []netip.Prefix{operator}) {
		t.Errorf("refused Sets changed the gateway: %v", got)
	}
}

// samePrefixes compares two lists of prefixes as sets.
func samePrefixes(a, b []netip.Prefix) bool {
	sa, sb := slices.Clone(a), slices.Clone(b)
	slices.SortFunc(sa, comparePrefix)
	slices.SortFunc(sb, comparePrefix)
	return slices.Equal(sa, sb)
}

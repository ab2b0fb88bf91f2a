package netplumb

import (
	"context"
	"net/netip"
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
		GatewayDev: "gw0", MTU: 1450, Addr: netip.MustParsePrefix("10.244.1.1/24"), Scope: cluster,
		Routes: []Route{{Dst: netip.MustParsePrefix("10.244.2.0/24"), Gateway: netip.MustParseAddr("10.244.2.1"), Dev: "gw0", OnLink: true}},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ch, err := HostNet{}.Set(ctx, want)
	if err != nil {
		t.Fatal(err)
	}
	if !ch.Link || !ch.Addr || len(ch.Routes.Added) != 1 {
		t.Errorf("first Set: %+v", ch)
	}
	info, err := HostLink("gw0")
	if err != nil || !info.Up || info.MTU != 1450 {
		t.Errorf("gateway: %+v %v", info, err)
	}
	if got := addrList(t, hn, "gw0"); len(got) != 1 || got[0] != want.Addr {
		t.Errorf("gateway addresses %v", got)
	}
	if on, err := Forwarding(); err != nil || !on {
		t.Errorf("forwarding %v %v", on, err)
	}
	expectNoWrites(t, "the same Set", func() {
		if ch, err := (HostNet{}).Set(ctx, want); err != nil || ch.Link || ch.Addr || !ch.Routes.Empty() {
			t.Errorf("second Set: %+v %v", ch, err)
		}
	})
	ch, err = HostNet{}.Set(ctx, HostState{})
	if err != nil || len(ch.Routes.Removed) != 1 {
		t.Errorf("withdraw: %+v %v", ch, err)
	}
	if got := addrList(t, hn, "gw0"); len(got) != 1 || got[0] != want.Addr {
		t.Errorf("withdraw touched the gateway: %v", got)
	}
}

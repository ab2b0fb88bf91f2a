package controller

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/netplumb"
	"github.com/ovsfabric/ovsfabric/peers"
)

// TestHostMemoSkip: a Set is skipped only for the state the last successful Set left, by the
// same ovs-vswitchd, within the period, outside the resync pass.
func TestHostMemoSkip(t *testing.T) {
	t0 := time.Unix(1_800_000_000, 0)
	route := func(dst string) netplumb.Route {
		return netplumb.Route{Dst: netip.MustParsePrefix(dst), Gateway: netip.MustParseAddr("10.244.1.1"), Dev: "fabric0"}
	}
	base := netplumb.HostState{GatewayDev: "fabric0", MTU: 1450, Addrs: []netip.Prefix{netip.MustParsePrefix("10.244.1.1/24")},
		Scopes: []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}, Routes: []netplumb.Route{route("10.244.2.0/24"), route("10.244.3.0/24")}}
	with := func(f func(*netplumb.HostState)) netplumb.HostState {
		s := base
		s.Addrs, s.Scopes, s.Routes = append([]netip.Prefix(nil), base.Addrs...), append([]netip.Prefix(nil), base.Scopes...), append([]netplumb.Route(nil), base.Routes...)
		f(&s)
		return s
	}
	const period = 5 * time.Second
	for _, tc := range []struct {
		name   string
		setup  func(*hostMemo)
		want   netplumb.HostState
		served string
		now    time.Time
		verify bool
		skip   bool
	}{
		{name: "nothing set yet", setup: func(*hostMemo) {}, want: base, served: "a", now: t0, skip: false},
		{name: "same state", want: base, served: "a", now: t0.Add(time.Second), skip: true},
		{name: "same state, resync pass", want: base, served: "a", now: t0.Add(time.Second), verify: true, skip: false},
		{name: "same state, period passed", want: base, served: "a", now: t0.Add(period), skip: false},
		{name: "same state, clock went back", want: base, served: "a", now: t0.Add(-time.Second), skip: false},
		{name: "same state, new ovs-vswitchd", want: base, served: "b", now: t0.Add(time.Second), skip: false},
		{name: "route added", want: with(func(s *netplumb.HostState) { s.Routes = append(s.Routes, route("10.244.4.0/24")) }), served: "a", now: t0.Add(time.Second), skip: false},
		{name: "route removed", want: with(func(s *netplumb.HostState) { s.Routes = s.Routes[:1] }), served: "a", now: t0.Add(time.Second), skip: false},
		{name: "route's gateway changed", want: with(func(s *netplumb.HostState) { s.Routes[1].Gateway = netip.MustParseAddr("10.244.1.2") }), served: "a", now: t0.Add(time.Second), skip: false},
		{name: "mtu changed", want: with(func(s *netplumb.HostState) { s.MTU = 1400 }), served: "a", now: t0.Add(time.Second), skip: false},
		{name: "address added", want: with(func(s *netplumb.HostState) { s.Addrs = append(s.Addrs, netip.MustParsePrefix("10.5.1.1/24")) }), served: "a", now: t0.Add(time.Second), skip: false},
		{name: "scope changed", want: with(func(s *netplumb.HostState) { s.Scopes[0] = netip.MustParsePrefix("10.244.0.0/15") }), served: "a", now: t0.Add(time.Second), skip: false},
		{name: "gateway left alone", want: with(func(s *netplumb.HostState) { s.GatewayDev = "" }), served: "a", now: t0.Add(time.Second), skip: false},
		{name: "last set failed", setup: func(m *hostMemo) { m.record(base, "a", t0, errors.New("netlink: busy")) }, want: base, served: "a", now: t0.Add(time.Second), skip: false},
		{name: "forgotten (withdraw)", setup: func(m *hostMemo) { m.record(base, "a", t0, nil); m.forget() }, want: base, served: "a", now: t0.Add(time.Second), skip: false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var m hostMemo
			if tc.setup != nil {
				tc.setup(&m)
			} else {
				m.record(base, "a", t0, nil)
			}
			if got := m.skip(tc.want, tc.served, tc.now, period, tc.verify); got != tc.skip {
				t.Fatalf("skip = %v, want %v", got, tc.skip)
			}
		})
	}
	// The memo holds its own copy: the caller reusing its slices changes nothing.
	var m hostMemo
	st := with(func(*netplumb.HostState) {})
	m.record(st, "a", t0, nil)
	st.Routes[0].Dst = netip.MustParsePrefix("10.244.9.0/24")
	if m.skip(st, "a", t0.Add(time.Second), period, false) {
		t.Fatal("a state changed in place after record was skipped")
	}
}

// TestResyncPassRepairsHost: a sync that wants what the last one set leaves the host network
// alone; the resync pass puts back a route deleted behind fabricd's back, and so does the sync
// after the gateway device was made anew (or could not be looked up); a peer that joins gets
// its route at once.
func TestResyncPassRepairsHost(t *testing.T) {
	ctx := context.Background()
	ep := startOVSDB(t)
	now := time.Now()
	m := &fakeMembers{ch: make(chan struct{})}
	m.set(peer("h2", "172.30.0.12", "10.244.2.0/24", peers.StateAlive, now))
	s := settings(t, "10.244.1.0/24")
	s.Resync = time.Hour
	c, _, k := newController(t, ep, s, m)
	hasRoute := func(dst string) bool {
		k.mu.Lock()
		defer k.mu.Unlock()
		for _, r := range k.routes {
			if r.Dst == netip.MustParsePrefix(dst) {
				return true
			}
		}
		return false
	}
	sync := func(resync bool) {
		t.Helper()
		c.resyncDue.Store(resync)
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	sync(false)
	if !hasRoute("10.244.2.0/24") {
		t.Fatal("no route to h2 after the first sync")
	}
	// An operator deletes the route.
	k.mu.Lock()
	k.routes = nil
	k.mu.Unlock()
	sync(false)
	if hasRoute("10.244.2.0/24") {
		t.Fatal("an event-woken sync that wants no change set the host network (the memo did not work)")
	}
	sync(true)
	if !hasRoute("10.244.2.0/24") {
		t.Fatal("the resync pass did not repair the deleted route")
	}
	// The gateway port made anew (a new interface index): the next sync sets it up again.
	k.mu.Lock()
	k.routes, k.ifindex = nil, k.ifindex+1
	k.mu.Unlock()
	sync(false)
	if !hasRoute("10.244.2.0/24") {
		t.Fatal("a sync after the gateway device was made anew did not set the host network")
	}
	// A gateway device that cannot be looked up: nothing is skipped.
	k.mu.Lock()
	k.routes, k.ifindexErr = nil, errors.New("no such device")
	k.mu.Unlock()
	sync(false)
	if !hasRoute("10.244.2.0/24") {
		t.Fatal("a sync that could not identify the gateway device trusted the memo")
	}
	k.mu.Lock()
	k.ifindexErr = nil
	k.mu.Unlock()
	// A change of the plan is applied by the next event-woken sync.
	m.set(peer("h2", "172.30.0.12", "10.244.2.0/24", peers.StateAlive, now), peer("h3", "172.30.0.13", "10.244.3.0/24", peers.StateAlive, now))
	sync(false)
	if !hasRoute("10.244.3.0/24") {
		t.Fatal("the route to a new peer waited for the resync pass")
	}
	// Once --resync has passed since the last Set, any sync checks the real state.
	k.mu.Lock()
	k.routes = nil
	k.mu.Unlock()
	c.s.Resync = time.Nanosecond
	sync(false)
	if !hasRoute("10.244.3.0/24") {
		t.Fatal("a sync after --resync passed did not repair the deleted route")
	}
}

// TestRunResyncRepairsHost: with the loop running and no event at all, the periodic resync
// pass puts back a route deleted behind fabricd's back.
func TestRunResyncRepairsHost(t *testing.T) {
	ep := startOVSDB(t)
	m := &fakeMembers{ch: make(chan struct{})}
	m.set(peer("h2", "172.30.0.12", "10.244.2.0/24", peers.StateAlive, time.Now()))
	s := settings(t, "10.244.1.0/24")
	s.Resync = 300 * time.Millisecond
	c, _, k := newController(t, ep, s, m)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	routes := func() int {
		k.mu.Lock()
		defer k.mu.Unlock()
		return len(k.routes)
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); !ok(); time.Sleep(20 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("timed out waiting for %s", what)
			}
		}
	}
	waitFor("the route to h2", func() bool { return routes() > 0 })
	time.Sleep(time.Second) // the OVSDB changes of the start (ports numbered) have passed
	k.mu.Lock()
	k.routes = nil
	k.mu.Unlock()
	waitFor("the resync pass to put the route back", func() bool { return routes() > 0 })
}

// TestHostIdentityRouteDevices: the identity the host memo keys on changes when a device a
// route names is made anew (the WireGuard device process restarted: its routes went with the
// old TUN), not only the gateway device.
func TestHostIdentityRouteDevices(t *testing.T) {
	k := &fakeKernel{ifindex: 5, devIndex: map[string]int{"wg0": 9}}
	c := &Controller{host: k}
	want := netplumb.HostState{GatewayDev: "fabric0", Routes: []netplumb.Route{
		{Dst: netip.MustParsePrefix("10.244.2.0/24"), Dev: "wg0"},
		{Dst: netip.MustParsePrefix("10.244.3.0/24"), Dev: "wg0"},
		{Dst: netip.MustParsePrefix("10.244.0.0/16"), Unreachable: true},
	}}
	before, known := c.hostIdentity(want)
	if !known {
		t.Fatal("identity unknown")
	}
	k.mu.Lock()
	k.devIndex["wg0"] = 10
	k.mu.Unlock()
	if after, _ := c.hostIdentity(want); after == before {
		t.Errorf("identity %q unchanged after the route device was made anew", after)
	}
	k.mu.Lock()
	k.ifindex = 6
	k.mu.Unlock()
	if again, _ := c.hostIdentity(want); again == before {
		t.Errorf("identity %q unchanged after the gateway device was made anew", again)
	}
}

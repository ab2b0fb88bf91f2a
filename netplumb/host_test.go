package netplumb

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// routeTable reads every main-table IPv4 route of h as "dst via gw proto N" strings.
func routeTable(t *testing.T, h *netlink.Handle) []string {
	t.Helper()
	rs, err := dump(func() ([]netlink.Route, error) { return h.RouteList(nil, netlink.FAMILY_V4) })
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, r := range rs {
		s := "default"
		if r.Dst != nil {
			s = r.Dst.String()
		}
		if r.Gw != nil {
			s += " via " + r.Gw.String()
		}
		out = append(out, s+" proto "+r.Protocol.String())
	}
	slices.Sort(out)
	return out
}

func TestReconcileRoutes(t *testing.T) {
	host := newHost(t)
	hn := nlIn(t, host)
	gw := addVethPair(t, hn, "fabric0", "fabric0p", mustPrefix("10.244.3.1/24"))
	// A route someone else owns (proto static), in the same cluster range.
	foreign := &netlink.Route{Dst: ipNetOf(mustPrefix("10.244.9.0/24")), Gw: net.ParseIP("10.244.9.1"),
		LinkIndex: gw.Attrs().Index, Flags: int(netlink.FLAG_ONLINK), Protocol: unix.RTPROT_STATIC}
	if err := hn.RouteAdd(foreign); err != nil {
		t.Fatal(err)
	}
	foreignLine := "10.244.9.0/24 via 10.244.9.1 proto static"
	peer := func(m int) Route {
		p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(m), 0}), 24)
		return Route{Dst: p, Gateway: netip.AddrFrom4([4]byte{10, 244, byte(m), 1}), Dev: "fabric0", OnLink: true}
	}
	r5mtu := peer(5)
	r5mtu.MTU = 1400

	steps := []struct {
		name                     string
		desired                  []Route
		added, replaced, removed int
		errHas                   string
		want                     []Route // ListRoutes afterwards
		quiet                    bool    // must not write to the kernel
	}{
		{name: "add two", desired: []Route{peer(5), peer(6)}, added: 2, want: []Route{peer(5), peer(6)}},
		{name: "same again: no change", desired: []Route{peer(6), peer(5)}, want: []Route{peer(5), peer(6)}, quiet: true},
		{name: "replace, add, remove", desired: []Route{r5mtu, peer(7)}, added: 1, replaced: 1, removed: 1, want: []Route{r5mtu, peer(7)}},
		{name: "same again: no change", desired: []Route{r5mtu, peer(7)}, want: []Route{r5mtu, peer(7)}, quiet: true},
		{name: "foreign destination is not taken over", desired: []Route{r5mtu, peer(7), peer(9), peer(8)}, added: 1,
			errHas: "does not own", want: []Route{r5mtu, peer(7), peer(8)}},
		{name: "invalid input changes nothing", desired: []Route{peer(5), peer(5)}, errHas: "twice", want: []Route{r5mtu, peer(7), peer(8)}},
		{name: "missing device changes nothing", desired: []Route{{Dst: mustPrefix("10.244.10.0/24"), Dev: "nosuch0"}},
			errHas: "link not found", want: []Route{r5mtu, peer(7), peer(8)}},
		{name: "withdraw all", desired: nil, removed: 3, want: nil},
		{name: "nothing to withdraw", desired: nil, want: nil, quiet: true},
	}
	for _, s := range steps {
		var ch RouteChanges
		var err error
		if s.quiet {
			expectNoWrites(t, s.name, func() { ch, err = ReconcileRoutes(s.desired) })
		} else {
			ch, err = ReconcileRoutes(s.desired)
		}
		if err != nil {
			t.Logf("%s: %v", s.name, err)
		}
		switch {
		case s.errHas == "" && err != nil:
			t.Fatalf("%s: %v", s.name, err)
		case s.errHas != "" && (err == nil || !strings.Contains(err.Error(), s.errHas)):
			t.Fatalf("%s: error %v, want one mentioning %q", s.name, err, s.errHas)
		}
		if len(ch.Added) != s.added || len(ch.Replaced) != s.replaced || len(ch.Removed) != s.removed {
			t.Errorf("%s: changes %+v, want %d added %d replaced %d removed", s.name, ch, s.added, s.replaced, s.removed)
		}
		got, err := ListRoutes()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(got, s.want) {
			t.Errorf("%s: ListRoutes = %v, want %v", s.name, got, s.want)
		}
		if table := routeTable(t, hn); !slices.Contains(table, foreignLine) {
			t.Fatalf("%s: foreign route gone; table %v", s.name, table)
		}
	}

	// What an operator sees.
	if _, err := ReconcileRoutes([]Route{peer(5), peer(6)}); err != nil {
		t.Fatal(err)
	}
	out, err := runIn(t, host, "ip", "-4", "route", "show", "proto", "147")
	if err != nil {
		t.Fatal(err)
	}
	want := "10.244.5.0/24 via 10.244.5.1 dev fabric0 onlink \n10.244.6.0/24 via 10.244.6.1 dev fabric0 onlink \n"
	if out != want {
		t.Errorf("ip route show proto 147:\n%q\nwant\n%q", out, want)
	}
	t.Logf("ip route show proto 147:\n%s", out)
}

// expectNoWrites runs fn and fails the test if the kernel announces a route change with
// RouteProtocol or a change of a non-link-local address in the current netns meanwhile.
func expectNoWrites(t *testing.T, what string, fn func()) {
	t.Helper()
	done := make(chan struct{})
	routes := make(chan netlink.RouteUpdate, 64)
	addrs := make(chan netlink.AddrUpdate, 64)
	// Namespace unset: the subscription sockets open in this (locked) thread's netns.
	if err := netlink.RouteSubscribeWithOptions(routes, done, netlink.RouteSubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := netlink.AddrSubscribeWithOptions(addrs, done, netlink.AddrSubscribeOptions{}); err != nil {
		t.Fatal(err)
	}
	defer close(done)
	// Let the kernel's own follow-ups of earlier steps pass (an IPv6 address is announced
	// again when its DAD work completes, even with NODAD).
	settle := time.After(300 * time.Millisecond)
	for waiting := true; waiting; {
		select {
		case <-routes:
		case <-addrs:
		case <-settle:
			waiting = false
		}
	}
	fn()
	timeout := time.After(200 * time.Millisecond)
	for {
		select {
		case u := <-routes:
			if u.Protocol == RouteProtocol {
				t.Errorf("%s: route write %v", what, u.Route)
			}
		case u := <-addrs:
			if a, ok := addrOf(u.LinkAddress.IP); ok && !a.IsLinkLocalUnicast() {
				t.Errorf("%s: address write %v (new=%v)", what, u.LinkAddress.String(), u.NewAddr)
			}
		case <-timeout:
			return
		}
	}
}

func TestReconcileRoutesIPv6(t *testing.T) {
	hn := nlIn(t, newHost(t))
	addVethPair(t, hn, "fabric0", "fabric0p", mustPrefix("fd00:244:3::1/64"))
	desired := []Route{
		{Dst: mustPrefix("fd00:244:5::/64"), Gateway: mustAddr("fd00:244:5::1"), Dev: "fabric0", OnLink: true},
		{Dst: mustPrefix("fd00:244:6::/64"), Gateway: mustAddr("fd00:244:3::6"), Dev: "fabric0", MTU: 1400},
	}
	ch, err := ReconcileRoutes(desired)
	if err != nil || len(ch.Added) != 2 {
		t.Fatalf("changes %+v, err %v", ch, err)
	}
	got, err := ListRoutes()
	if err != nil || !slices.Equal(got, desired) {
		t.Fatalf("ListRoutes = %v %v, want %v", got, err, desired)
	}
	expectNoWrites(t, "ipv6 again", func() { ch, err = ReconcileRoutes(desired) })
	if err != nil || !ch.Empty() {
		t.Fatalf("second pass: %+v %v", ch, err)
	}
	if ch, err = ReconcileRoutes(desired[:1]); err != nil || len(ch.Removed) != 1 {
		t.Fatalf("withdraw one: %+v %v", ch, err)
	}
}

func TestReconcileRoutesGatewayChangeIsReplace(t *testing.T) {
	hn := nlIn(t, newHost(t))
	addVethPair(t, hn, "fabric0", "fabric0p", mustPrefix("10.244.3.1/24"))
	addVethPair(t, hn, "alt0", "alt0p", mustPrefix("10.250.0.1/24"))
	r := Route{Dst: mustPrefix("10.244.5.0/24"), Gateway: mustAddr("10.244.5.1"), Dev: "fabric0", OnLink: true}
	if _, err := ReconcileRoutes([]Route{r}); err != nil {
		t.Fatal(err)
	}
	r2 := Route{Dst: r.Dst, Gateway: mustAddr("10.250.0.9"), Dev: "alt0", Src: mustAddr("10.250.0.1")}
	ch, err := ReconcileRoutes([]Route{r2})
	if err != nil || len(ch.Replaced) != 1 || len(ch.Added)+len(ch.Removed) != 0 {
		t.Fatalf("changes %+v, err %v: want one replacement", ch, err)
	}
	got, _ := ListRoutes()
	if !slices.Equal(got, []Route{r2}) {
		t.Errorf("got %v, want %v", got, []Route{r2})
	}
}

func TestReconcileAddrs(t *testing.T) {
	hn := nlIn(t, newHost(t))
	addVethPair(t, hn, "fabric0", "fabric0p", mustPrefix("192.168.50.1/24"))
	cluster := mustPrefix("10.244.0.0/16")
	steps := []struct {
		name    string
		do      func() (bool, error)
		changed bool
		want    []string
	}{
		{"ensure", func() (bool, error) { return EnsureAddr("fabric0", mustPrefix("10.244.3.1/24")) }, true,
			[]string{"10.244.3.1/24", "192.168.50.1/24"}},
		{"ensure again", func() (bool, error) { return EnsureAddr("fabric0", mustPrefix("10.244.3.1/24")) }, false,
			[]string{"10.244.3.1/24", "192.168.50.1/24"}},
		{"new subnet replaces old gateway inside scope only", func() (bool, error) {
			return ReconcileAddrs("fabric0", []netip.Prefix{mustPrefix("10.244.4.1/24")}, cluster)
		}, true, []string{"10.244.4.1/24", "192.168.50.1/24"}},
		{"reconcile again", func() (bool, error) {
			return ReconcileAddrs("fabric0", []netip.Prefix{mustPrefix("10.244.4.1/24")}, cluster)
		}, false, []string{"10.244.4.1/24", "192.168.50.1/24"}},
		{"prefix length change", func() (bool, error) { return EnsureAddr("fabric0", mustPrefix("10.244.4.1/23")) }, true,
			[]string{"10.244.4.1/23", "192.168.50.1/24"}},
		{"same subnet, other address", func() (bool, error) {
			return ReconcileAddrs("fabric0", []netip.Prefix{mustPrefix("10.244.4.9/23")}, cluster)
		}, true, []string{"10.244.4.9/23", "192.168.50.1/24"}},
		{"ipv6", func() (bool, error) { return EnsureAddr("fabric0", mustPrefix("fd00:244::1/64")) }, true,
			[]string{"10.244.4.9/23", "192.168.50.1/24", "fd00:244::1/64"}},
		{"ipv6 again", func() (bool, error) { return EnsureAddr("fabric0", mustPrefix("fd00:244::1/64")) }, false,
			[]string{"10.244.4.9/23", "192.168.50.1/24", "fd00:244::1/64"}},
		{"empty want clears the scope", func() (bool, error) { return ReconcileAddrs("fabric0", nil, cluster) }, true,
			[]string{"192.168.50.1/24", "fd00:244::1/64"}},
	}
	for _, s := range steps {
		var changed bool
		var err error
		if s.changed {
			changed, err = s.do()
		} else {
			expectNoWrites(t, s.name, func() { changed, err = s.do() })
		}
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if changed != s.changed {
			t.Errorf("%s: changed = %v, want %v", s.name, changed, s.changed)
		}
		var got []string
		for _, p := range addrList(t, hn, "fabric0") {
			got = append(got, p.String())
		}
		if !slices.Equal(got, s.want) {
			t.Errorf("%s: addresses %v, want %v", s.name, got, s.want)
		}
	}
	if _, err := EnsureAddr("nosuch0", mustPrefix("10.0.0.1/24")); !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("EnsureAddr on a missing link: %v", err)
	}
}

func TestSetLinkUp(t *testing.T) {
	hn := nlIn(t, newHost(t))
	addVethPair(t, hn, "up0", "up0p", netip.Prefix{})
	l, _ := hn.LinkByName("up0")
	if err := hn.LinkSetDown(l); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		mtu     int
		changed bool
		wantMTU int
	}{{1400, true, 1400}, {1400, false, 1400}, {0, false, 1400}, {1450, true, 1450}}
	for _, s := range steps {
		changed, err := SetLinkUp("up0", s.mtu)
		if err != nil {
			t.Fatal(err)
		}
		info, err := HostLink("up0")
		if err != nil {
			t.Fatal(err)
		}
		if changed != s.changed || !info.Up || info.MTU != s.wantMTU {
			t.Errorf("SetLinkUp(up0, %d): changed %v up %v mtu %d; want changed %v, up, mtu %d", s.mtu, changed, info.Up, info.MTU, s.changed, s.wantMTU)
		}
	}
	if _, err := SetLinkUp("nosuch0", 0); !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("SetLinkUp on a missing link: %v", err)
	}
}

func TestWaitLink(t *testing.T) {
	hn := nlIn(t, newHost(t)) // a socket pinned to the host netns, usable from any goroutine
	go func() {
		time.Sleep(150 * time.Millisecond)
		la := netlink.NewLinkAttrs()
		la.Name = "late0"
		v := netlink.NewVeth(la)
		v.PeerName = "late0p"
		_ = hn.LinkAdd(v)
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := WaitLink(ctx, "late0"); err != nil {
		t.Fatalf("WaitLink: %v", err)
	}
	ctx2, cancel2 := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel2()
	if err := WaitLink(ctx2, "never0"); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("WaitLink for a link that never comes: %v", err)
	}
}

func TestDefaultRoute(t *testing.T) {
	hn := nlIn(t, newHost(t))
	// Nothing but lo: no candidate.
	if _, _, _, err := DefaultRoute(); !errors.Is(err, ErrLinkNotFound) {
		t.Fatalf("empty netns: %v, want ErrLinkNotFound", err)
	}
	cluster := mustPrefix("10.244.0.0/16")
	// The gateway port comes first in ifindex order, as after a restart.
	addVethPair(t, hn, "fabric0", "fabric0p", mustPrefix("10.244.3.1/24"))
	under := addVethPair(t, hn, "under0", "under0p", mustPrefix("192.168.77.2/24"))
	if err := hn.LinkSetMTU(under, 9000); err != nil {
		t.Fatal(err)
	}
	l, _ := hn.LinkByName("under0")
	if err := hn.AddrAdd(l, &netlink.Addr{IPNet: ipNetOf(mustPrefix("192.168.77.3/24"))}); err != nil { // secondary
		t.Fatal(err)
	}

	check := func(name string, exclude []netip.Prefix, wantDev, wantSrc string, wantMTU int) {
		t.Helper()
		dev, src, mtu, err := DefaultRoute(exclude...)
		if err != nil || dev != wantDev || src != mustAddr(wantSrc) || mtu != wantMTU {
			t.Errorf("%s: DefaultRoute = %s %s %d %v, want %s %s %d", name, dev, src, mtu, err, wantDev, wantSrc, wantMTU)
		}
	}
	check("fallback, no exclusion", nil, "fabric0", "10.244.3.1", 1500)
	check("fallback, cluster excluded", []netip.Prefix{cluster}, "under0", "192.168.77.2", 9000)

	if err := hn.RouteAdd(&netlink.Route{Gw: net.ParseIP("192.168.77.1"), LinkIndex: under.Attrs().Index}); err != nil {
		t.Fatal(err)
	}
	check("default route", nil, "under0", "192.168.77.2", 9000)
	if err := hn.RouteReplace(&netlink.Route{Gw: net.ParseIP("192.168.77.1"), LinkIndex: under.Attrs().Index, MTU: 1400,
		Src: net.ParseIP("192.168.77.3")}); err != nil {
		t.Fatal(err)
	}
	check("default route with mtu and src", nil, "under0", "192.168.77.3", 1400)

	dev, mtu, err := LinkByAddr(mustAddr("192.168.77.3"))
	if err != nil || dev != "under0" || mtu != 9000 {
		t.Errorf("LinkByAddr: %s %d %v", dev, mtu, err)
	}
	if _, _, err := LinkByAddr(mustAddr("192.168.78.3")); !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("LinkByAddr of an unknown address: %v", err)
	}
}

func TestSetForwarding(t *testing.T) {
	newHost(t)
	for _, want := range []bool{true, true, false, false, true} {
		if err := SetForwarding(want); err != nil {
			t.Fatal(err)
		}
		if got, err := Forwarding(); err != nil || got != want {
			t.Fatalf("Forwarding() = %v %v, want %v", got, err, want)
		}
	}
}

func TestNetNSExists(t *testing.T) {
	n := newNS(t, "exists")
	if !NetNSExists(n.Path()) {
		t.Errorf("NetNSExists(%s) = false", n.Path())
	}
}

// TestReconcileRoutesUnreachable: the guard of an encrypted fabric, an unreachable route for
// the network's CIDR, lives beside the more specific routes, reads back as itself, is left
// alone by the next pass and turns into a normal route (and back) by replacement.
func TestReconcileRoutesUnreachable(t *testing.T) {
	hn := nlIn(t, newHost(t))
	addVethPair(t, hn, "fabric0", "fabric0p", mustPrefix("10.244.3.1/24"))
	guard := Route{Dst: mustPrefix("10.244.0.0/16"), Unreachable: true}
	slice := Route{Dst: mustPrefix("10.244.5.0/24"), Dev: "fabric0", Src: mustAddr("10.244.3.1")}
	desired := []Route{guard, slice}
	ch, err := ReconcileRoutes(desired)
	if err != nil || len(ch.Added) != 2 {
		t.Fatalf("changes %+v, err %v", ch, err)
	}
	got, err := ListRoutes()
	if err != nil || !slices.Equal(got, desired) {
		t.Fatalf("ListRoutes = %v %v, want %v", got, err, desired)
	}
	if got[0].String() != "unreachable 10.244.0.0/16" {
		t.Errorf("String = %q", got[0].String())
	}
	expectNoWrites(t, "guard again", func() { ch, err = ReconcileRoutes(desired) })
	if err != nil || !ch.Empty() {
		t.Fatalf("second pass: %+v %v", ch, err)
	}
	normal := Route{Dst: guard.Dst, Dev: "fabric0"}
	if ch, err = ReconcileRoutes([]Route{normal, slice}); err != nil || len(ch.Replaced) != 1 {
		t.Fatalf("unreachable to normal: %+v %v", ch, err)
	}
	if ch, err = ReconcileRoutes(desired); err != nil || len(ch.Replaced) != 1 {
		t.Fatalf("normal to unreachable: %+v %v", ch, err)
	}
	for _, bad := range []Route{
		{Dst: guard.Dst, Unreachable: true, Dev: "fabric0"},
		{Dst: guard.Dst, Unreachable: true, Gateway: mustAddr("10.244.3.9")},
	} {
		if _, err := ReconcileRoutes([]Route{bad}); err == nil {
			t.Errorf("ReconcileRoutes accepted %+v", bad)
		}
	}
}

// TestLinkIndex: LinkIndex names the device there now: a device deleted and made again has
// another index; a missing one is an error.
func TestLinkIndex(t *testing.T) {
	host := newHost(t)
	hn := nlIn(t, host)
	gw := addVethPair(t, hn, "fabric0", "fabric0p", mustPrefix("10.244.3.1/24"))
	idx, err := (HostNet{}).LinkIndex("fabric0")
	if err != nil || idx != gw.Attrs().Index {
		t.Fatalf("LinkIndex = %d, %v; want %d", idx, err, gw.Attrs().Index)
	}
	if err := hn.LinkDel(gw); err != nil {
		t.Fatal(err)
	}
	if _, err := (HostNet{}).LinkIndex("fabric0"); err == nil {
		t.Fatal("LinkIndex of a deleted device succeeded")
	}
	again := addVethPair(t, hn, "fabric0", "fabric0p", mustPrefix("10.244.3.1/24"))
	if idx2, err := (HostNet{}).LinkIndex("fabric0"); err != nil || idx2 == idx || idx2 != again.Attrs().Index {
		t.Fatalf("LinkIndex of the device made again = %d, %v; want %d, not %d", idx2, err, again.Attrs().Index, idx)
	}
	if _, err := (HostNet{}).LinkIndex("bad name!"); err == nil {
		t.Fatal("LinkIndex accepted a bad name")
	}
}

package netplumb

import (
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// checkAddr validates an interface address: a unicast host address with a prefix length.
func checkAddr(what string, p netip.Prefix) error {
	a := p.Addr()
	switch {
	case !p.IsValid():
		return invalidf("%s: no address (want e.g. 10.244.3.5/24)", what)
	case a.Zone() != "":
		return invalidf("%s %s: zoned addresses are not supported", what, p)
	case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback():
		return invalidf("%s %s is not a unicast host address", what, p)
	case a.Is4In6():
		return invalidf("%s %s: use the plain IPv4 form", what, p)
	}
	return nil
}

// EnsureAddr makes sure dev in the current netns holds addr (address and prefix length). It
// reports whether it changed anything; an address with the same IP but another prefix length
// is replaced. Other addresses are left alone; see ReconcileAddrs.
func EnsureAddr(dev string, addr netip.Prefix) (changed bool, err error) {
	return ReconcileAddrs(dev, []netip.Prefix{addr}, netip.Prefix{})
}

// ReconcileAddrs makes the addresses of dev in the current netns that fall inside scope equal
// want: it removes those inside scope that are not wanted (say, the gateway address of a
// subnet this host used to own) and adds the wanted ones that are missing. Addresses outside
// scope are never touched; an invalid (zero) scope removes nothing, except an address that
// holds a wanted IP with another prefix length, which is always replaced. Stale addresses are
// removed before new ones are added, so that a new address in the same subnet does not become
// a secondary that the kernel would delete together with the old primary. It reports whether
// it changed anything; no difference means no netlink writes.
func ReconcileAddrs(dev string, want []netip.Prefix, scope netip.Prefix) (changed bool, err error) {
	if err := checkIfName("link", dev); err != nil {
		return false, err
	}
	wantIP := map[netip.Addr]netip.Prefix{}
	for _, p := range want {
		if err := checkAddr("address", p); err != nil {
			return false, fmt.Errorf("link %s: %w", dev, err)
		}
		if q, dup := wantIP[p.Addr()]; dup && q != p {
			return false, invalidf("link %s: address %s wanted as both %s and %s", dev, p.Addr(), q, p)
		}
		wantIP[p.Addr()] = p
	}
	h, err := hostHandle()
	if err != nil {
		return false, err
	}
	defer h.Close()
	l, err := h.LinkByName(dev)
	if err != nil {
		return false, linkErr(dev, err)
	}
	addrs, err := dump(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_ALL) })
	if err != nil {
		return false, fmt.Errorf("list addresses of %s: %w", dev, err)
	}
	var have []netip.Prefix
	for _, ad := range addrs {
		p, ok := prefixOf(ad.IPNet)
		if !ok {
			continue
		}
		w, wanted := wantIP[p.Addr()]
		stale := (wanted && w != p) || (!wanted && scope.IsValid() && scope.Contains(p.Addr()))
		if !stale {
			have = append(have, p)
			continue
		}
		del := ad
		if err := h.AddrDel(l, &del); err != nil && !errIsNotExist(err) {
			return changed, fmt.Errorf("remove address %s from %s: %w", p, dev, err)
		}
		changed = true
	}
	for _, p := range want {
		if slices.Contains(have, p) {
			continue
		}
		na := &netlink.Addr{IPNet: ipNetOf(p)}
		if p.Addr().Is6() {
			// Our addresses are assigned, not negotiated: skip duplicate address detection
			// so the address is usable at once instead of "tentative".
			na.Flags = unix.IFA_F_NODAD
		}
		if err := h.AddrAdd(l, na); err != nil {
			return changed, fmt.Errorf("add address %s to %s: %w", p, dev, err)
		}
		have = append(have, p)
		changed = true
	}
	return changed, nil
}

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
	return ReconcileAddrs(dev, []netip.Prefix{addr})
}

// AddrChanges is what a reconcile of a device's addresses did.
type AddrChanges struct {
	Added, Removed []netip.Prefix
}

// Empty reports whether nothing was changed.
func (c AddrChanges) Empty() bool { return len(c.Added) == 0 && len(c.Removed) == 0 }

// ReconcileAddrs makes the addresses of dev in the current netns that fall inside any of
// scopes equal want: it removes those inside a scope that are not wanted (say, the gateway
// address of a subnet this host used to own, or of a network it no longer serves) and adds
// the wanted ones that are missing. Addresses outside every scope are never touched; invalid
// (zero) scopes are ignored, so no scope removes nothing, except an address that holds a
// wanted IP with another prefix length, which is always replaced. It reports whether it
// changed anything; no difference means no netlink writes. See ReconcileAddrsIn for the
// details of what changed.
func ReconcileAddrs(dev string, want []netip.Prefix, scopes ...netip.Prefix) (changed bool, err error) {
	ch, err := ReconcileAddrsIn(dev, want, scopes)
	return !ch.Empty(), err
}

// ReconcileAddrsIn is ReconcileAddrs reporting which addresses it added and removed. Stale
// addresses are removed before new ones are added, so that a new address in the same subnet
// does not become a secondary that the kernel would delete together with the old primary;
// after a removal the addresses are listed again, so that a wanted secondary the kernel
// dropped with its primary is put back in the same call.
func ReconcileAddrsIn(dev string, want, scopes []netip.Prefix) (AddrChanges, error) {
	var ch AddrChanges
	if err := checkIfName("link", dev); err != nil {
		return ch, err
	}
	wantIP := map[netip.Addr]netip.Prefix{}
	for _, p := range want {
		if err := checkAddr("address", p); err != nil {
			return ch, fmt.Errorf("link %s: %w", dev, err)
		}
		if q, dup := wantIP[p.Addr()]; dup && q != p {
			return ch, invalidf("link %s: address %s wanted as both %s and %s", dev, p.Addr(), q, p)
		}
		wantIP[p.Addr()] = p
	}
	inScope := func(a netip.Addr) bool {
		return slices.ContainsFunc(scopes, func(s netip.Prefix) bool { return s.IsValid() && s.Contains(a) })
	}
	h, err := hostHandle()
	if err != nil {
		return ch, err
	}
	defer h.Close()
	l, err := h.LinkByName(dev)
	if err != nil {
		return ch, linkErr(dev, err)
	}
	list := func() ([]netlink.Addr, error) {
		addrs, err := dump(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_ALL) })
		if err != nil {
			return nil, fmt.Errorf("list addresses of %s: %w", dev, err)
		}
		return addrs, nil
	}
	addrs, err := list()
	if err != nil {
		return ch, err
	}
	for _, ad := range addrs {
		p, ok := prefixOf(ad.IPNet)
		if !ok {
			continue
		}
		w, wanted := wantIP[p.Addr()]
		if !(wanted && w != p) && (wanted || !inScope(p.Addr())) {
			continue
		}
		del := ad
		if err := h.AddrDel(l, &del); err != nil && !errIsNotExist(err) {
			return ch, fmt.Errorf("remove address %s from %s: %w", p, dev, err)
		}
		ch.Removed = append(ch.Removed, p)
	}
	if len(ch.Removed) > 0 {
		if addrs, err = list(); err != nil {
			return ch, err
		}
	}
	var have []netip.Prefix
	for _, ad := range addrs {
		if p, ok := prefixOf(ad.IPNet); ok {
			have = append(have, p)
		}
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
			return ch, fmt.Errorf("add address %s to %s: %w", p, dev, err)
		}
		have = append(have, p)
		ch.Added = append(ch.Added, p)
	}
	return ch, nil
}

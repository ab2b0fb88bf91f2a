package netplumb

import (
	"cmp"
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// RouteProtocol is the rtnetlink protocol number ("proto") of every route ovsfabric installs.
// ReconcileRoutes lists, replaces and deletes only routes with this protocol, so others'
// routes are never touched. 147 is not assigned by the kernel (include/uapi/linux/rtnetlink.h)
// nor used by the well-known routing daemons and CNIs (BIRD 12, Zebra 11, Babel 42, OpenR
// 99, BGP 186, ISIS 187, OSPF 188, RIP 189, EIGRP 192).
//
// Operators list fabricd's routes with
//
//	ip route show proto 147
//
// and can give the number a name with a line "147 ovsfabric" in
// /etc/iproute2/rt_protos.d/ovsfabric.conf, after which iproute2 prints "proto ovsfabric".
const RouteProtocol netlink.RouteProtocol = 147

// Route is one route owned by ovsfabric, in the main table of the current netns.
type Route struct {
	// Dst is the destination network, with no host bits set (10.244.5.0/24).
	Dst netip.Prefix
	// Gateway is the next hop; invalid for a route straight out of Dev.
	Gateway netip.Addr
	// Dev is the output device (fabric0). It must exist. Required with OnLink.
	Dev string
	// OnLink tells the kernel the gateway is reachable on Dev even though no address of Dev
	// covers it (the L2 mode's route to a peer's gateway).
	OnLink bool
	// MTU is the route's path MTU (ip route ... mtu N); 0 for none.
	MTU int
	// Src is the preferred source address (ip route ... src A); invalid for none.
	Src netip.Addr
	// Unreachable makes it an `unreachable` route (no Gateway, no Dev): packets to Dst are
	// refused with ICMP host unreachable instead of following a less specific route.
	Unreachable bool
}

// String renders r the way `ip route` does.
func (r Route) String() string {
	s := r.Dst.String()
	if r.Unreachable {
		s = "unreachable " + s
	}
	if r.Gateway.IsValid() {
		s += " via " + r.Gateway.String()
	}
	if r.Dev != "" {
		s += " dev " + r.Dev
	}
	if r.OnLink {
		s += " onlink"
	}
	if r.Src.IsValid() {
		s += " src " + r.Src.String()
	}
	if r.MTU != 0 {
		s += fmt.Sprintf(" mtu %d", r.MTU)
	}
	return s
}

// RouteChanges is what ReconcileRoutes did. Replaced holds the new versions of changed routes.
type RouteChanges struct {
	Added, Replaced, Removed []Route
}

// Empty reports whether nothing was changed.
func (c RouteChanges) Empty() bool {
	return len(c.Added) == 0 && len(c.Replaced) == 0 && len(c.Removed) == 0
}

// checkRoutes validates desired routes and indexes them by destination.
func checkRoutes(desired []Route) (map[netip.Prefix]Route, error) {
	byDst := make(map[netip.Prefix]Route, len(desired))
	for _, r := range desired {
		switch {
		case !r.Dst.IsValid():
			return nil, invalidf("route %s: no destination", r)
		case r.Dst != r.Dst.Masked():
			return nil, invalidf("route %s: destination has host bits set (want %s)", r, r.Dst.Masked())
		case r.Gateway.IsValid() && r.Gateway.Is4() != r.Dst.Addr().Is4():
			return nil, invalidf("route %s: gateway and destination are of different IP families", r)
		case r.Src.IsValid() && r.Src.Is4() != r.Dst.Addr().Is4():
			return nil, invalidf("route %s: source and destination are of different IP families", r)
		case r.Unreachable && (r.Gateway.IsValid() || r.Dev != "" || r.OnLink || r.Src.IsValid()):
			return nil, invalidf("route %s: an unreachable route has no gateway, device or source", r)
		case !r.Unreachable && !r.Gateway.IsValid() && r.Dev == "":
			return nil, invalidf("route %s: needs a gateway or a device", r)
		case r.OnLink && (r.Dev == "" || !r.Gateway.IsValid()):
			return nil, invalidf("route %s: onlink needs a gateway and a device", r)
		}
		if r.Dev != "" {
			if err := checkIfName("route "+r.String(), r.Dev); err != nil {
				return nil, err
			}
		}
		if err := checkMTU(r.MTU, true); err != nil {
			return nil, fmt.Errorf("route %s: %w", r, err)
		}
		if _, dup := byDst[r.Dst]; dup {
			return nil, invalidf("route %s: destination %s given twice", r, r.Dst)
		}
		byDst[r.Dst] = r
	}
	return byDst, nil
}

// ourRoutes lists the main table's routes with RouteProtocol, both families, each with its
// kernel form (for deletion) and its Route form (for comparison).
func ourRoutes(h *netlink.Handle) ([]netlink.Route, []Route, error) {
	filter := &netlink.Route{Table: unix.RT_TABLE_MAIN, Protocol: RouteProtocol}
	kr, err := dump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_ALL, filter, netlink.RT_FILTER_TABLE|netlink.RT_FILTER_PROTOCOL)
	})
	if err != nil {
		return nil, nil, fmt.Errorf("list routes: %w", err)
	}
	names := map[int]string{}
	out := make([]Route, 0, len(kr))
	for _, k := range kr {
		r := Route{MTU: k.MTU, OnLink: k.Flags&int(netlink.FLAG_ONLINK) != 0, Unreachable: k.Type == unix.RTN_UNREACHABLE}
		if k.Dst != nil {
			p, _ := prefixOf(k.Dst)
			r.Dst = p
		} else if k.Family == unix.AF_INET6 {
			r.Dst = netip.MustParsePrefix("::/0")
		} else {
			r.Dst = netip.MustParsePrefix("0.0.0.0/0")
		}
		r.Gateway, _ = addrOf(k.Gw)
		r.Src, _ = addrOf(k.Src)
		if k.LinkIndex > 0 && !r.Unreachable {
			name, ok := names[k.LinkIndex]
			if !ok {
				l, err := h.LinkByIndex(k.LinkIndex)
				if err != nil {
					return nil, nil, fmt.Errorf("route %s: link %d: %w", r.Dst, k.LinkIndex, err)
				}
				name = l.Attrs().Name
				names[k.LinkIndex] = name
			}
			r.Dev = name
		}
		out = append(out, r)
	}
	return kr, out, nil
}

// ListRoutes lists ovsfabric's routes (protocol RouteProtocol, main table, IPv4 and IPv6) in
// the current netns, sorted by destination.
func ListRoutes() ([]Route, error) {
	h, err := hostHandle()
	if err != nil {
		return nil, err
	}
	defer h.Close()
	_, rs, err := ourRoutes(h)
	if err != nil {
		return nil, err
	}
	slices.SortFunc(rs, func(a, b Route) int { return comparePrefix(a.Dst, b.Dst) })
	return rs, nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return cmp.Compare(a.Bits(), b.Bits())
}

// sameRoute compares a desired route with one read back from the kernel. A desired route
// without Dev matches whatever device the kernel resolved the gateway to.
func sameRoute(want, have Route) bool {
	return want.Dst == have.Dst && want.Unreachable == have.Unreachable && want.Gateway == have.Gateway && want.OnLink == have.OnLink &&
		want.MTU == have.MTU && want.Src == have.Src && (want.Dev == "" || want.Dev == have.Dev)
}

// ReconcileRoutes makes ovsfabric's routes in the main table of the current netns equal
// desired: it replaces those whose gateway, device, onlink flag, MTU or source differ
// (atomically, with NLM_F_REPLACE, so traffic keeps flowing), adds the missing ones and
// deletes ours that are no longer desired. Routes with another protocol are never changed; a
// desired destination already taken by such a route (same destination, metric 0) fails with
// an error naming it instead of overwriting it. When nothing differs it makes no netlink
// writes. Destinations must be unique and devices must exist.
//
// Invalid input is refused before any change. Kernel errors do not stop the pass: every route
// is tried, the changes that were made are returned together with all errors joined, and the
// next call picks up what is left.
func ReconcileRoutes(desired []Route) (RouteChanges, error) {
	var ch RouteChanges
	want, err := checkRoutes(desired)
	if err != nil {
		return ch, err
	}
	h, err := hostHandle()
	if err != nil {
		return ch, err
	}
	defer h.Close()
	idx := map[string]int{}
	for _, r := range desired {
		if r.Dev == "" {
			continue
		}
		if _, ok := idx[r.Dev]; ok {
			continue
		}
		l, err := h.LinkByName(r.Dev)
		if err != nil {
			return ch, fmt.Errorf("route %s: %w", r, linkErr(r.Dev, err))
		}
		idx[r.Dev] = l.Attrs().Index
	}
	kernel, have, err := ourRoutes(h)
	if err != nil {
		return ch, err
	}
	haveByDst := map[netip.Prefix]int{}
	for i, r := range have {
		haveByDst[r.Dst] = i
	}
	var errs []error
	// Replace and add first, remove last: a route that moves never leaves a gap.
	for _, r := range desired {
		i, ok := haveByDst[r.Dst]
		if ok && sameRoute(r, have[i]) {
			continue
		}
		nr := toKernelRoute(r, idx[r.Dev])
		if ok {
			if err := h.RouteReplace(nr); err != nil {
				errs = append(errs, fmt.Errorf("replace route %s with %s: %w", have[i], r, err))
				continue
			}
			ch.Replaced = append(ch.Replaced, r)
			continue
		}
		if err := h.RouteAdd(nr); err != nil {
			if errors.Is(err, unix.EEXIST) {
				err = fmt.Errorf("%w (a route to %s that ovsfabric does not own is in the way: see `ip route show %s`)", err, r.Dst, r.Dst)
			}
			errs = append(errs, fmt.Errorf("add route %s: %w", r, err))
			continue
		}
		ch.Added = append(ch.Added, r)
	}
	for i, r := range have {
		if _, ok := want[r.Dst]; ok {
			continue
		}
		k := kernel[i]
		if err := h.RouteDel(&k); err != nil && !errIsNotExist(err) {
			errs = append(errs, fmt.Errorf("delete route %s: %w", r, err))
			continue
		}
		ch.Removed = append(ch.Removed, r)
	}
	return ch, errors.Join(errs...)
}

// toKernelRoute builds the netlink form of r; linkIndex is r.Dev's index (0 for no Dev).
func toKernelRoute(r Route, linkIndex int) *netlink.Route {
	nr := &netlink.Route{
		Dst:       ipNetOf(r.Dst),
		Gw:        ipOf(r.Gateway),
		Src:       ipOf(r.Src),
		LinkIndex: linkIndex,
		MTU:       r.MTU,
		Table:     unix.RT_TABLE_MAIN,
		Protocol:  RouteProtocol,
		Type:      unix.RTN_UNICAST,
		Scope:     netlink.SCOPE_UNIVERSE,
	}
	if r.Unreachable {
		nr.Type = unix.RTN_UNREACHABLE
		return nr
	}
	if !r.Gateway.IsValid() && r.Dst.Addr().Is4() {
		nr.Scope = netlink.SCOPE_LINK
	}
	if r.OnLink {
		nr.Flags = int(netlink.FLAG_ONLINK)
	}
	return nr
}

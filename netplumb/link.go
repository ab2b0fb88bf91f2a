package netplumb

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// MinMTU and MaxMTU bound the MTUs accepted here: the IPv4 minimum (RFC 791) and the largest
// a veth takes. IPv6 addresses need at least 1280.
const (
	MinMTU = 68
	MaxMTU = 65535
)

// checkMTU validates an MTU; 0 is allowed only when zeroOK.
func checkMTU(mtu int, zeroOK bool) error {
	if mtu == 0 && zeroOK {
		return nil
	}
	if mtu < MinMTU || mtu > MaxMTU {
		return invalidf("MTU %d is outside %d..%d", mtu, MinMTU, MaxMTU)
	}
	return nil
}

// SetLinkUp sets dev administratively up and, when mtu is not 0, its MTU, in the current
// netns. It writes only what differs and reports whether it wrote anything.
func SetLinkUp(dev string, mtu int) (changed bool, err error) {
	if err := checkIfName("link", dev); err != nil {
		return false, err
	}
	if err := checkMTU(mtu, true); err != nil {
		return false, fmt.Errorf("link %s: %w", dev, err)
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
	if mtu != 0 && l.Attrs().MTU != mtu {
		if err := h.LinkSetMTU(l, mtu); err != nil {
			return changed, fmt.Errorf("set MTU of %s to %d: %w", dev, mtu, err)
		}
		changed = true
	}
	if l.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(l); err != nil {
			return changed, fmt.Errorf("set %s up: %w", dev, err)
		}
		changed = true
	}
	return changed, nil
}

// WaitLink waits until dev exists in the current netns (OVS creates internal ports such as
// the gateway port asynchronously, after the OVSDB transaction that asks for them). It polls
// with a short, growing interval and returns ctx's error, wrapped, when ctx ends first.
func WaitLink(ctx context.Context, dev string) error {
	if err := checkIfName("link", dev); err != nil {
		return err
	}
	h, err := hostHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	wait := 10 * time.Millisecond
	for {
		_, err := h.LinkByName(dev)
		if err == nil {
			return nil
		}
		if !isLinkNotFound(err) {
			return linkErr(dev, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("wait for link %s: %w", dev, ctx.Err())
		case <-t.C:
		}
		wait = min(2*wait, 250*time.Millisecond)
	}
}

// LinkInfo is what ContainerLink and HostLink read back about a device.
type LinkInfo struct {
	Name  string
	Index int
	// Kind is the rtnetlink link kind: "veth", "tun", "openvswitch", "" for a physical NIC.
	Kind string
	MAC  net.HardwareAddr
	MTU  int
	// Up is the administrative state (IFF_UP), which is what SetLinkUp and Attach set.
	Up bool
	// Addrs are the device's IPv4 and IPv6 addresses, without IPv6 link-local ones.
	Addrs []netip.Prefix
	// Gateway is the gateway of the main table's IPv4 default route through this device, or
	// of the IPv6 one when there is no IPv4 one; invalid when there is none.
	Gateway netip.Addr
	// Routes are the main table's routes through this device that have a gateway (IPv4
	// and IPv6, default routes included), with Dev set to its name: what CNI CHECK compares
	// with the routes an endpoint was given.
	Routes []Route
	// PeerIndex is, for a veth, the ifindex of its peer in the peer's namespace; 0 otherwise.
	// HostLink(hostIf).Index == ContainerLink(...).PeerIndex proves the two ends belong
	// together.
	PeerIndex int
	// TxChecksum is true when any TX checksum offload feature is on (ethtool -k "tx-checksum-*").
	TxChecksum bool
}

// HostLink reads back dev in the current netns.
func HostLink(dev string) (LinkInfo, error) {
	if err := checkIfName("link", dev); err != nil {
		return LinkInfo{}, err
	}
	h, err := hostHandle()
	if err != nil {
		return LinkInfo{}, err
	}
	defer h.Close()
	info, err := readLink(h, dev)
	if err != nil {
		return LinkInfo{}, err
	}
	if info.TxChecksum, err = txChecksumOn(dev); err != nil {
		return LinkInfo{}, err
	}
	return info, nil
}

// ContainerLink reads back ifName inside the network namespace at netnsPath: MAC, addresses,
// MTU, state, default gateway, veth peer and TX checksum offload. The controller uses it to
// verify or adopt attachments after a restart.
func ContainerLink(netnsPath, ifName string) (LinkInfo, error) {
	if err := checkIfName("container interface", ifName); err != nil {
		return LinkInfo{}, err
	}
	target, err := openNetNS(netnsPath)
	if err != nil {
		return LinkInfo{}, err
	}
	defer target.Close()
	h, err := handleAt(target)
	if err != nil {
		return LinkInfo{}, err
	}
	defer h.Close()
	info, err := readLink(h, ifName)
	if err != nil {
		return LinkInfo{}, fmt.Errorf("netns %s: %w", netnsPath, err)
	}
	err = target.Do(func(ns.NetNS) error {
		var err error
		info.TxChecksum, err = txChecksumOn(ifName)
		return err
	})
	if err != nil {
		return LinkInfo{}, fmt.Errorf("netns %s: %w", netnsPath, err)
	}
	return info, nil
}

// readLink fills a LinkInfo except TxChecksum through h.
func readLink(h *netlink.Handle, dev string) (LinkInfo, error) {
	l, err := h.LinkByName(dev)
	if err != nil {
		return LinkInfo{}, linkErr(dev, err)
	}
	a := l.Attrs()
	info := LinkInfo{
		Name: a.Name, Index: a.Index, Kind: l.Type(), MAC: a.HardwareAddr, MTU: a.MTU,
		Up: a.Flags&net.FlagUp != 0,
	}
	if l.Type() == "veth" {
		info.PeerIndex = a.ParentIndex
	}
	addrs, err := dump(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_ALL) })
	if err != nil {
		return LinkInfo{}, fmt.Errorf("list addresses of %s: %w", dev, err)
	}
	for _, ad := range addrs {
		p, ok := prefixOf(ad.IPNet)
		if !ok || (p.Addr().Is6() && p.Addr().IsLinkLocalUnicast()) {
			continue
		}
		info.Addrs = append(info.Addrs, p)
	}
	for _, fam := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		gw, routes, err := linkRoutes(h, fam, a.Index)
		if err != nil {
			return LinkInfo{}, fmt.Errorf("routes of %s: %w", dev, err)
		}
		if gw.IsValid() && !info.Gateway.IsValid() {
			info.Gateway = gw
		}
		for k := range routes {
			routes[k].Dev = a.Name
		}
		info.Routes = append(info.Routes, routes...)
	}
	return info, nil
}

// linkRoutes reads the main table's routes of family fam through the link with index idx:
// the gateway of its default route (lowest metric first; invalid when there is none), and
// every route with a gateway (Dst and Gateway set).
func linkRoutes(h *netlink.Handle, fam, idx int) (netip.Addr, []Route, error) {
	routes, err := dump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return netip.Addr{}, nil, err
	}
	var gw netip.Addr
	var best *netlink.Route
	var out []Route
	for i, r := range routes {
		if r.LinkIndex != idx || r.Gw == nil {
			continue
		}
		via, ok := addrOf(r.Gw)
		if !ok {
			continue
		}
		if isDefault(r) && (best == nil || r.Priority < best.Priority) {
			best, gw = &routes[i], via
		}
		dst := netip.PrefixFrom(netip.IPv4Unspecified(), 0)
		if fam == netlink.FAMILY_V6 {
			dst = netip.PrefixFrom(netip.IPv6Unspecified(), 0)
		}
		if r.Dst != nil {
			p, ok := prefixOf(r.Dst)
			if !ok {
				continue
			}
			dst = p.Masked()
		}
		out = append(out, Route{Dst: dst, Gateway: via})
	}
	return gw, out, nil
}

// defaultGateway is the gateway of the main table's default route of family fam through the
// link with index idx (lowest metric first); invalid when there is none.
func defaultGateway(h *netlink.Handle, fam, idx int) (netip.Addr, error) {
	gw, _, err := linkRoutes(h, fam, idx)
	return gw, err
}

// isDefault reports whether r is a default route (no destination, or a /0).
func isDefault(r netlink.Route) bool {
	if r.Dst == nil {
		return true
	}
	ones, _ := r.Dst.Mask.Size()
	return ones == 0
}

// addrOf converts a net.IP, unmapping IPv4-in-IPv6.
func addrOf(ip net.IP) (netip.Addr, bool) {
	a, ok := netip.AddrFromSlice(ip)
	return a.Unmap(), ok
}

// prefixOf converts a *net.IPNet, keeping the host bits (an address, not a network).
func prefixOf(n *net.IPNet) (netip.Prefix, bool) {
	if n == nil {
		return netip.Prefix{}, false
	}
	a, ok := addrOf(n.IP)
	if !ok {
		return netip.Prefix{}, false
	}
	ones, bits := n.Mask.Size()
	if bits == 0 {
		return netip.Prefix{}, false
	}
	if a.Is4() && bits == 128 {
		ones -= 96
	}
	return netip.PrefixFrom(a, ones), true
}

// ipNetOf converts a prefix to a *net.IPNet, keeping the host bits.
func ipNetOf(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// ipOf converts an address to a net.IP; nil for the zero Addr.
func ipOf(a netip.Addr) net.IP {
	if !a.IsValid() {
		return nil
	}
	return net.IP(a.AsSlice())
}

// LinkByAddr finds the device in the current netns that holds ip and returns its name and
// MTU. fabricd uses it to learn the underlay MTU from the advertise address. An address held
// by no device gives an error matching ErrLinkNotFound.
func LinkByAddr(ip netip.Addr) (dev string, mtu int, err error) {
	ip = ip.Unmap()
	if !ip.IsValid() {
		return "", 0, invalidf("no address given")
	}
	h, err := hostHandle()
	if err != nil {
		return "", 0, err
	}
	defer h.Close()
	fam := netlink.FAMILY_V4
	if ip.Is6() {
		fam = netlink.FAMILY_V6
	}
	addrs, err := dump(func() ([]netlink.Addr, error) { return h.AddrList(nil, fam) })
	if err != nil {
		return "", 0, fmt.Errorf("list addresses: %w", err)
	}
	for _, ad := range addrs {
		if a, ok := addrOf(ad.IP); ok && a == ip {
			l, err := h.LinkByIndex(ad.LinkIndex)
			if err != nil {
				return "", 0, fmt.Errorf("link %d holding %s: %w", ad.LinkIndex, ip, err)
			}
			return l.Attrs().Name, l.Attrs().MTU, nil
		}
	}
	return "", 0, fmt.Errorf("no link has address %s: %w", ip, ErrLinkNotFound)
}

// DefaultRoute detects the underlay in the current netns: the device of the main table's
// IPv4 default route (lowest metric), its address (the route's preferred source, else the
// device's first primary global-scope IPv4 address, preferring one whose subnet holds the
// gateway) and its MTU (the route's MTU when that is set and lower).
//
// Without a default route, for example in the lab where hosts share only a connected
// underlay prefix, it falls back to the first global-scope primary IPv4 address, in ifindex
// order, on a device that is administratively up and not loopback. Addresses inside any of
// the exclude prefixes are skipped in both cases: pass the cluster CIDR so that the gateway
// port's address (also global scope, on an up device) is never taken for the underlay after a
// restart. The fallback is a guess; an operator who has more than one candidate should set the
// advertise address explicitly.
func DefaultRoute(exclude ...netip.Prefix) (dev string, src netip.Addr, mtu int, err error) {
	h, err := hostHandle()
	if err != nil {
		return "", netip.Addr{}, 0, err
	}
	defer h.Close()
	excluded := func(a netip.Addr) bool {
		for _, p := range exclude {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	routes, err := dump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return "", netip.Addr{}, 0, fmt.Errorf("list routes: %w", err)
	}
	var best *netlink.Route
	for i, r := range routes {
		if !isDefault(r) || r.Type != unix.RTN_UNICAST {
			continue
		}
		if r.LinkIndex == 0 && len(r.MultiPath) == 0 {
			continue
		}
		if best == nil || r.Priority < best.Priority {
			best = &routes[i]
		}
	}
	if best != nil {
		idx, gw := best.LinkIndex, best.Gw
		if idx == 0 {
			idx, gw = best.MultiPath[0].LinkIndex, best.MultiPath[0].Gw
		}
		l, err := h.LinkByIndex(idx)
		if err != nil {
			return "", netip.Addr{}, 0, fmt.Errorf("link %d of the default route: %w", idx, err)
		}
		dev, mtu = l.Attrs().Name, l.Attrs().MTU
		if best.MTU > 0 && best.MTU < mtu {
			mtu = best.MTU
		}
		if s, ok := addrOf(best.Src); ok && !excluded(s) {
			return dev, s, mtu, nil
		}
		cands, err := primaryV4(h, l)
		if err != nil {
			return "", netip.Addr{}, 0, err
		}
		g, _ := addrOf(gw)
		var first netip.Addr
		for _, p := range cands {
			if excluded(p.Addr()) {
				continue
			}
			if g.IsValid() && p.Masked().Contains(g) {
				return dev, p.Addr(), mtu, nil
			}
			if !first.IsValid() {
				first = p.Addr()
			}
		}
		if first.IsValid() {
			return dev, first, mtu, nil
		}
		return "", netip.Addr{}, 0, fmt.Errorf("default route device %s has no global IPv4 address: %w", dev, ErrLinkNotFound)
	}
	links, err := dump(h.LinkList)
	if err != nil {
		return "", netip.Addr{}, 0, fmt.Errorf("list links: %w", err)
	}
	// LinkList returns links in ifindex order.
	for _, l := range links {
		f := l.Attrs().Flags
		if f&net.FlagLoopback != 0 || f&net.FlagUp == 0 {
			continue
		}
		cands, err := primaryV4(h, l)
		if err != nil {
			return "", netip.Addr{}, 0, err
		}
		for _, p := range cands {
			if !excluded(p.Addr()) {
				return l.Attrs().Name, p.Addr(), l.Attrs().MTU, nil
			}
		}
	}
	return "", netip.Addr{}, 0, fmt.Errorf("no IPv4 default route and no global IPv4 address on an up link: %w", ErrLinkNotFound)
}

// primaryV4 lists l's primary (not secondary), global-scope IPv4 addresses.
func primaryV4(h *netlink.Handle, l netlink.Link) ([]netip.Prefix, error) {
	addrs, err := dump(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_V4) })
	if err != nil {
		return nil, fmt.Errorf("list addresses of %s: %w", l.Attrs().Name, err)
	}
	var out []netip.Prefix
	for _, ad := range addrs {
		if ad.Scope != unix.RT_SCOPE_UNIVERSE || ad.Flags&unix.IFA_F_SECONDARY != 0 {
			continue
		}
		if p, ok := prefixOf(ad.IPNet); ok {
			out = append(out, p)
		}
	}
	return out, nil
}

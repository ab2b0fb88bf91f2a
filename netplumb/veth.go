package netplumb

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovsfabric/ovsfabric/fabric"
)

// DefaultIfName is the container-side interface name when Attachment.IfName is empty.
const DefaultIfName = "eth0"

// Attachment describes a container's connection: a veth pair whose host end stays in the
// current netns (to be added to br-int as an OVS port by the caller) and whose other end
// lives in the container's network namespace.
type Attachment struct {
	// NetNS is the container's network namespace path: /var/run/netns/NAME or
	// /proc/PID/ns/net. It must not be the current netns.
	NetNS string
	// IfName is the interface name inside the container; DefaultIfName ("eth0") if empty.
	IfName string
	// HostIf is the host-side veth name (≤ 15 bytes), chosen by the caller and stable for the
	// container (e.g. "vf" + short hash), so that Detach and OVS find it again.
	HostIf string
	// Addr is the container's address with the subnet's prefix length, e.g. 10.244.3.5/24.
	Addr netip.Prefix
	// Gateway is the next hop of the container's routes; it must lie inside Addr's subnet.
	Gateway netip.Addr
	// Routes are the destinations routed via Gateway. Empty means a default route
	// (0.0.0.0/0 or ::/0), which Attach refuses to add when the container already has one of
	// that family (say, a Docker container on its own bridge network): pass the cluster CIDR
	// here for such a container.
	Routes []netip.Prefix
	// MAC is the container interface's MAC; a random locally administered unicast one if nil.
	MAC net.HardwareAddr
	// GatewayMAC, when set, is written into the container's neighbour table as the gateway's
	// permanent entry, so that its first packet needs no ARP: a request sent before the bridge
	// has taken the new port would go unanswered, and Linux repeats it only after a second.
	// Only for a gateway whose MAC never changes (fabricd pins it).
	GatewayMAC net.HardwareAddr
	// MTU of both ends, MinMTU..MaxMTU (at least 1280 for IPv6).
	MTU int
	// Datapath is the datapath of the bridge the host end goes on: it decides the steps only
	// the userspace one needs (TX checksum offload off on both ends, arp_ignore on the host
	// end; see fabric.Datapath).
	Datapath fabric.Datapath
}

// AttachResult is what Attach made.
type AttachResult struct {
	// MAC is the container interface's MAC (the given one or the generated one).
	MAC net.HardwareAddr
	// HostIf is the host-side veth's name.
	HostIf string
	// HostIndex is the host-side veth's ifindex in the current netns.
	HostIndex int
}

// normalize fills defaults and validates a; it touches nothing outside the process.
func (a Attachment) normalize() (Attachment, error) {
	if a.IfName == "" {
		a.IfName = DefaultIfName
	}
	if err := checkIfName("container interface", a.IfName); err != nil {
		return a, err
	}
	if err := checkIfName("host interface", a.HostIf); err != nil {
		return a, err
	}
	if a.NetNS == "" {
		return a, invalidf("no netns path given")
	}
	if _, err := fabric.ParseDatapath(string(a.Datapath)); err != nil {
		return a, invalidf("bridge datapath: %v", err)
	}
	if err := checkAddr("container address", a.Addr); err != nil {
		return a, err
	}
	subnet := a.Addr.Masked()
	is4 := a.Addr.Addr().Is4()
	hostPart := is4 && a.Addr.Bits() <= 30
	if hostPart && (a.Addr.Addr() == subnet.Addr() || a.Addr.Addr() == lastAddr(subnet)) {
		return a, invalidf("container address %s is the network or broadcast address of %s", a.Addr, subnet)
	}
	g := a.Gateway
	switch {
	case !g.IsValid():
		return a, invalidf("no gateway given")
	case g.Zone() != "" || g.Is4In6():
		return a, invalidf("gateway %s: use a plain address", g)
	case g.Is4() != is4:
		return a, invalidf("gateway %s and address %s are of different IP families", g, a.Addr)
	case !subnet.Contains(g):
		return a, invalidf("gateway %s is outside the container's subnet %s", g, subnet)
	case g == a.Addr.Addr():
		return a, invalidf("gateway %s is the container's own address", g)
	case hostPart && (g == subnet.Addr() || g == lastAddr(subnet)):
		return a, invalidf("gateway %s is the network or broadcast address of %s", g, subnet)
	}
	if m := a.GatewayMAC; m != nil && (len(m) != 6 || m[0]&1 == 1) {
		return a, invalidf("gateway MAC %s is not a unicast Ethernet address", m)
	}
	for _, r := range a.Routes {
		switch {
		case !r.IsValid():
			return a, invalidf("route: invalid destination")
		case r != r.Masked():
			return a, invalidf("route %s has host bits set (want %s)", r, r.Masked())
		case r.Addr().Is4() != is4:
			return a, invalidf("route %s and address %s are of different IP families", r, a.Addr)
		}
	}
	if err := checkMTU(a.MTU, false); err != nil {
		return a, err
	}
	if !is4 && a.MTU < 1280 {
		return a, invalidf("MTU %d is below IPv6's minimum 1280", a.MTU)
	}
	if a.MAC == nil {
		mac, err := randomMAC()
		if err != nil {
			return a, err
		}
		a.MAC = mac
	} else {
		if len(a.MAC) != 6 {
			return a, invalidf("MAC %s is not a 6-byte Ethernet address", a.MAC)
		}
		if a.MAC[0]&1 != 0 || [6]byte(a.MAC) == [6]byte{} {
			return a, invalidf("MAC %s is not a unicast address", a.MAC)
		}
	}
	return a, nil
}

// lastAddr is the last address of p (the IPv4 broadcast address).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

// randomMAC returns a random locally administered unicast MAC.
func randomMAC() (net.HardwareAddr, error) {
	m := make(net.HardwareAddr, 6)
	if _, err := rand.Read(m); err != nil {
		return nil, fmt.Errorf("random MAC: %w", err)
	}
	m[0] = (m[0] | 0x02) &^ 0x01
	return m, nil
}

// routeDsts is where the container routes via the gateway.
func (a Attachment) routeDsts() []netip.Prefix {
	if len(a.Routes) > 0 {
		return a.Routes
	}
	if a.Addr.Addr().Is4() {
		return []netip.Prefix{netip.MustParsePrefix("0.0.0.0/0")}
	}
	return []netip.Prefix{netip.MustParsePrefix("::/0")}
}

// Attach connects a container. It creates a veth pair with the host end HostIf in the
// current netns and the other end created directly inside the container's namespace under
// its final name IfName (one netlink request, as CNI's ip.SetupVeth does in the other
// direction, so no temporary name ever exists and nothing can collide on the host), with the
// MAC and MTU set at creation. Then, inside the container: the address, the interface and
// lo up, the routes via Gateway (a default route unless Routes says otherwise; marked with
// RouteProtocol), and TX checksum offload off if asked. On the host: HostIf up with the same
// MTU, IPv6 disabled on it (it is a pure L2 port of the bridge and should not send router
// solicitations or MLD reports into the fabric), TX checksum offload off if asked.
//
// It is all or nothing: when any step fails, it deletes the veth (the container end dies
// with it) and returns the step's error. Before creating anything it refuses, with an error
// matching ErrInvalid, bad names (over 15 bytes, '/', ':', spaces), a bad address, gateway,
// route, MAC or MTU, a netns path that is missing, not a network namespace or the current
// one, IfName already present in the container, HostIf already present on the host (these two
// also match ErrExists), and a default route the container already has.
//
// Attach is not idempotent: calling it again for the same container fails with ErrExists.
// Callers verify an existing attachment with ContainerLink and HostLink.
func Attach(a Attachment) (res AttachResult, err error) {
	a, err = a.normalize()
	if err != nil {
		return res, err
	}
	target, err := openNetNS(a.NetNS)
	if err != nil {
		return res, err
	}
	defer target.Close()
	if same, err := sameAsCurrentNetNS(target); err != nil {
		return res, err
	} else if same {
		return res, invalidf("netns %s is the host's own network namespace", a.NetNS)
	}
	host, err := hostHandle()
	if err != nil {
		return res, err
	}
	defer host.Close()
	cont, err := handleAt(target)
	if err != nil {
		return res, err
	}
	defer cont.Close()
	if err := checkFree(host, a.HostIf, ""); err != nil {
		return res, err
	}
	if err := checkFree(cont, a.IfName, a.NetNS); err != nil {
		return res, err
	}
	dsts := a.routeDsts()
	if len(a.Routes) == 0 {
		if err := checkNoDefault(cont, dsts[0], a.NetNS); err != nil {
			return res, err
		}
	}

	la := netlink.NewLinkAttrs()
	la.Name = a.HostIf
	la.MTU = a.MTU
	la.Flags = net.FlagUp
	veth := netlink.NewVeth(la)
	veth.PeerName = a.IfName
	veth.PeerHardwareAddr = a.MAC
	veth.PeerMTU = uint32(a.MTU)
	veth.PeerNamespace = netlink.NsFd(int(target.Fd()))
	if err := host.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			// Someone took one of the names since the checks above.
			if e := checkFree(host, a.HostIf, ""); e != nil {
				return res, e
			}
			if e := checkFree(cont, a.IfName, a.NetNS); e != nil {
				return res, e
			}
		}
		return res, fmt.Errorf("create veth %s (peer %s in netns %s): %w", a.HostIf, a.IfName, a.NetNS, err)
	}
	hostIndex := 0
	defer func() {
		if err == nil {
			return
		}
		if rerr := rollbackVeth(host, cont, a, hostIndex); rerr != nil {
			slog.Error("netplumb: rolling back a failed attach left links behind",
				"hostIf", a.HostIf, "netns", a.NetNS, "ifname", a.IfName, "err", rerr)
			err = errors.Join(err, fmt.Errorf("roll back: %w", rerr))
		}
	}()
	hl, err := host.LinkByName(a.HostIf)
	if err != nil {
		return res, fmt.Errorf("created veth %s: %w", a.HostIf, linkErr(a.HostIf, err))
	}
	hostIndex = hl.Attrs().Index
	if err := configureContainer(cont, target, a, dsts); err != nil {
		return res, fmt.Errorf("netns %s: %w", a.NetNS, err)
	}
	disableIPv6(a.HostIf)
	// The host end is a bridge port without an address: with the userspace datapath the host
	// kernel sees its frames too and must not answer ARP on it (it would hand out the veth's
	// MAC for the gateway and then forward a second copy of every frame the datapath also
	// switches).
	if a.Datapath.VethARPIgnore() {
		if err := setSysctl("/proc/sys/net/ipv4/conf/"+a.HostIf+"/arp_ignore", "1"); err != nil {
			return res, err
		}
	}
	if a.Datapath.VethTxChecksumOff() {
		if err := TxChecksumOff(a.HostIf); err != nil {
			return res, err
		}
	}
	cl, err := cont.LinkByName(a.IfName)
	if err != nil {
		return res, fmt.Errorf("netns %s: %w", a.NetNS, linkErr(a.IfName, err))
	}
	return AttachResult{MAC: cl.Attrs().HardwareAddr, HostIf: a.HostIf, HostIndex: hostIndex}, nil
}

// checkFree fails with ErrExists when name exists on h; netnsPath is where h is, "" for the
// host.
func checkFree(h *netlink.Handle, name, netnsPath string) error {
	_, err := h.LinkByName(name)
	if err == nil {
		if netnsPath == "" {
			return existsf("host interface %s already exists", name)
		}
		return existsf("interface %s already exists in netns %s", name, netnsPath)
	}
	if !isLinkNotFound(err) {
		return linkErr(name, err)
	}
	return nil
}

// checkNoDefault fails with ErrExists when the container already has a default route of
// dst's family in its main table.
func checkNoDefault(h *netlink.Handle, dst netip.Prefix, where string) error {
	fam := netlink.FAMILY_V4
	if dst.Addr().Is6() {
		fam = netlink.FAMILY_V6
	}
	routes, err := dump(func() ([]netlink.Route, error) {
		return h.RouteListFiltered(fam, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	})
	if err != nil {
		return fmt.Errorf("list routes in netns %s: %w", where, err)
	}
	for _, r := range routes {
		if isDefault(r) && r.Type == unix.RTN_UNICAST {
			return existsf("netns %s already has a default route (%s); pass Routes (e.g. the cluster CIDR) to route only the fabric through this interface", where, r)
		}
	}
	return nil
}

// configureContainer sets up the container end through h (a netlink socket in target).
func configureContainer(h *netlink.Handle, target ns.NetNS, a Attachment, dsts []netip.Prefix) error {
	l, err := h.LinkByName(a.IfName)
	if err != nil {
		return linkErr(a.IfName, err)
	}
	if got := l.Attrs().HardwareAddr; got.String() != a.MAC.String() {
		if err := h.LinkSetHardwareAddr(l, a.MAC); err != nil {
			return fmt.Errorf("set MAC of %s to %s: %w", a.IfName, a.MAC, err)
		}
	}
	na := &netlink.Addr{IPNet: ipNetOf(a.Addr)}
	if a.Addr.Addr().Is6() {
		na.Flags = unix.IFA_F_NODAD
	}
	if err := h.AddrAdd(l, na); err != nil {
		return fmt.Errorf("add address %s to %s: %w", a.Addr, a.IfName, err)
	}
	lo, err := h.LinkByName("lo")
	if err != nil {
		return linkErr("lo", err)
	}
	if lo.Attrs().Flags&net.FlagUp == 0 {
		if err := h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("set lo up: %w", err)
		}
	}
	if err := h.LinkSetUp(l); err != nil {
		return fmt.Errorf("set %s up: %w", a.IfName, err)
	}
	if a.GatewayMAC != nil {
		fam := unix.AF_INET
		if a.Gateway.Is6() {
			fam = unix.AF_INET6
		}
		n := &netlink.Neigh{LinkIndex: l.Attrs().Index, Family: fam, State: netlink.NUD_PERMANENT,
			IP: ipOf(a.Gateway), HardwareAddr: a.GatewayMAC}
		if err := h.NeighSet(n); err != nil {
			return fmt.Errorf("set gateway neighbour %s lladdr %s dev %s: %w", a.Gateway, a.GatewayMAC, a.IfName, err)
		}
	}
	for _, d := range dsts {
		r := &netlink.Route{
			Dst: ipNetOf(d), Gw: ipOf(a.Gateway), LinkIndex: l.Attrs().Index,
			Table: unix.RT_TABLE_MAIN, Protocol: RouteProtocol, Type: unix.RTN_UNICAST,
		}
		if err := h.RouteAdd(r); err != nil {
			return fmt.Errorf("add route %s via %s dev %s: %w", d, a.Gateway, a.IfName, err)
		}
	}
	if a.Datapath.VethTxChecksumOff() {
		if err := target.Do(func(ns.NetNS) error { return TxChecksumOff(a.IfName) }); err != nil {
			return err
		}
	}
	return nil
}

// disableIPv6 turns IPv6 off on a host-side veth, best effort: without IPv6 in the kernel
// (no /proc/sys/net/ipv6) there is nothing to turn off.
func disableIPv6(dev string) {
	p := "/proc/sys/net/ipv6/conf/" + dev + "/disable_ipv6"
	if err := os.WriteFile(p, []byte("1\n"), 0o644); err != nil && !errors.Is(err, os.ErrNotExist) {
		slog.Debug("netplumb: disable IPv6 on host veth", "dev", dev, "err", err)
	}
}

// rollbackVeth deletes what Attach created: the host end (by index when known), which takes
// the container end with it, then checks that the container end is really gone.
func rollbackVeth(host, cont *netlink.Handle, a Attachment, hostIndex int) error {
	var l netlink.Link
	var err error
	if hostIndex > 0 {
		l, err = host.LinkByIndex(hostIndex)
	} else {
		l, err = host.LinkByName(a.HostIf)
	}
	switch {
	case err == nil && l.Type() == "veth":
		if err := host.LinkDel(l); err != nil && !errIsNotExist(err) {
			return fmt.Errorf("delete veth %s: %w", a.HostIf, err)
		}
	case err != nil && !isLinkNotFound(err):
		return fmt.Errorf("look up veth %s: %w", a.HostIf, err)
	}
	// The container end normally died with its peer. If the host end was already gone (or
	// never found), delete a veth with our name and MAC in the container.
	cl, err := cont.LinkByName(a.IfName)
	if err != nil {
		if isLinkNotFound(err) {
			return nil
		}
		return fmt.Errorf("look up %s in netns %s: %w", a.IfName, a.NetNS, err)
	}
	if cl.Type() == "veth" && cl.Attrs().HardwareAddr.String() == a.MAC.String() {
		if err := cont.LinkDel(cl); err != nil && !errIsNotExist(err) {
			return fmt.Errorf("delete %s in netns %s: %w", a.IfName, a.NetNS, err)
		}
	}
	return nil
}

// Detach deletes the host end of a container's veth in the current netns; the container end
// dies with it (and with it the container's address and routes). A missing device is not an
// error (the container's namespace may be gone, which destroys the pair). It refuses to
// delete a device that is not a veth.
func Detach(hostIf string) error {
	if err := checkIfName("host interface", hostIf); err != nil {
		return err
	}
	h, err := hostHandle()
	if err != nil {
		return err
	}
	defer h.Close()
	l, err := h.LinkByName(hostIf)
	if err != nil {
		if isLinkNotFound(err) {
			return nil
		}
		return linkErr(hostIf, err)
	}
	if l.Type() != "veth" {
		return invalidf("%s is a %q device, not a veth: not deleting it", hostIf, l.Type())
	}
	if err := h.LinkDel(l); err != nil && !errIsNotExist(err) {
		return fmt.Errorf("delete veth %s: %w", hostIf, err)
	}
	return nil
}

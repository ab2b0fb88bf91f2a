package flows

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
)

// The tables of the pipeline (docs/pipeline.md).
const (
	// TableClassifier (0) sends each known in_port on: local ports (containers, gateway) to
	// TableFromLocal, tunnels to TableFromTunnel; anything else is dropped.
	TableClassifier = 0
	// TableFromLocal (10) handles what local ports send: the ARP responder, routing to peers,
	// the way out through the gateway, and the hand-off to TableLocal for on-host traffic.
	TableFromLocal = 10
	// TableFromTunnel (20) accepts only IPv4 for a local address from a tunnel.
	TableFromTunnel = 20
	// TableLocal (30) switches among local ports by destination MAC and replicates local
	// broadcasts and multicasts to the local ports (never to a tunnel).
	TableLocal = 30
)

// RouterMAC is the MAC of the fabric's virtual router: the Ethernet destination of routed
// frames sent into a tunnel (the receiving host rewrites it anyway), the source of frames a
// tunnel delivers to the gateway port, and the address the ARP responder gives for addresses
// in peer subnets (the host kernel's next hop toward them). Locally administered, unicast.
const RouterMAC = "02:0f:ab:00:00:01"

// ofportMax is the highest OpenFlow number of a physical port (OFPP_MAX in OpenFlow 1.0).
const ofportMax = 0xff00 - 1

// Errors of Plan; every error Plan returns wraps one of them.
var (
	// ErrInvalid: the input is inconsistent (bad or overlapping subnets, duplicate addresses
	// or ports, malformed MACs…). Nothing should be applied.
	ErrInvalid = errors.New("invalid pipeline input")
	// ErrNotReady: the gateway port has no OpenFlow port number yet (ovs-vswitchd has not
	// finished setting it up). Keep the flows as they are and plan again on the next change.
	ErrNotReady = errors.New("gateway port not ready")
)

// Port is a local port of br-int: the gateway (fabric0) or a container's veth.
type Port struct {
	// Name is the OVS port name (for errors and docs only).
	Name string
	// OFPort is the OpenFlow port number, OVSDB Interface.ofport. 0 (not assigned yet) or -1
	// (failed): the port is skipped (for the gateway: ErrNotReady).
	OFPort int
	// MAC is the address frames to this port must carry: for the gateway the internal port's
	// own MAC (Interface.mac_in_use); for a container the MAC of its interface inside the
	// container (external_ids:ovsfabric-mac), not the host end of the veth.
	MAC net.HardwareAddr
	// IP is the port's IPv4 address: the gateway address, or the container's.
	IP netip.Addr
}

// Tunnel is the tunnel port toward one peer and the subnet that peer owns.
type Tunnel struct {
	// Peer is the peer node's name (for errors and docs only).
	Peer string
	// Port is the OVS port name (for errors and docs only).
	Port string
	// OFPort is the OpenFlow port number, OVSDB Interface.ofport; 0 or -1: skipped.
	OFPort int
	// Subnet is the peer's container subnet, e.g. 10.244.7.0/24.
	Subnet netip.Prefix
}

// Input is everything Plan needs about one host.
type Input struct {
	// Gateway is the gateway port (fabric0) with the host subnet's gateway address.
	Gateway Port
	// Subnet is this host's container subnet, e.g. 10.244.3.0/24.
	Subnet netip.Prefix
	// ClusterCIDR holds every host's subnet, e.g. 10.244.0.0/16. IPv4 to addresses in it
	// that no local port or tunnel covers is dropped; beyond it, IPv4 goes to the gateway.
	ClusterCIDR netip.Prefix
	// Containers are the local containers' ports.
	Containers []Port
	// Tunnels are the tunnels to the peers, one per peer subnet.
	Tunnels []Tunnel
}

// Plan returns every flow ovsfabric wants on br-int for in, sorted by table, descending
// priority and match (the order `ovs-ofctl dump-flows` roughly shows). It is pure and
// deterministic: the order of in's slices does not matter. Containers and tunnels without an
// OpenFlow port yet are left out; a gateway without one is ErrNotReady.
func Plan(in Input) ([]Flow, error) {
	p, err := validate(in)
	if err != nil {
		return nil, err
	}
	var out []Flow
	add := func(table, prio int, purpose Purpose, match, actions string) {
		out = append(out, Flow{Table: table, Priority: prio, Cookie: makeCookie(purpose, table, prio, match), Match: match, Actions: actions})
	}
	gw := p.gw
	gwMAC := gw.MAC.String()
	resubmit := func(t int) string { return "resubmit(," + strconv.Itoa(t) + ")" }
	output := func(ofport int) string { return "output:" + strconv.Itoa(ofport) }
	const multicast = "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00"

	// Table 0: classify by in_port.
	add(TableClassifier, 100, PurposeClassifier, "in_port="+strconv.Itoa(gw.OFPort), resubmit(TableFromLocal))
	for _, c := range p.containers {
		add(TableClassifier, 100, PurposeClassifier, "in_port="+strconv.Itoa(c.OFPort), resubmit(TableFromLocal))
	}
	for _, t := range p.tunnels {
		add(TableClassifier, 100, PurposeClassifier, "in_port="+strconv.Itoa(t.OFPort), resubmit(TableFromTunnel))
	}
	// Priority 1, not 0: table 0 priority 0 with an empty match is the bridge's own NORMAL
	// flow in fail_mode standalone, which must stay the bridge's.
	add(TableClassifier, 1, PurposeDefault, "", "drop")

	// Table 10: from local ports.
	// The gateway's own gratuitous ARP is switched, never answered.
	add(TableFromLocal, 310, PurposeLocalDelivery, "arp,arp_spa="+gw.IP.String()+",arp_tpa="+gw.IP.String(), resubmit(TableLocal))
	add(TableFromLocal, 300, PurposeARPResponder, "arp,arp_tpa="+gw.IP.String()+",arp_op=1", arpReply(gw.MAC, gw.IP))
	for _, t := range p.tunnels {
		add(TableFromLocal, 300, PurposeARPResponder, "arp,arp_tpa="+prefixString(t.Subnet)+",arp_op=1", arpReply(routerMAC, netip.Addr{}))
	}
	add(TableFromLocal, 250, PurposeLocalDelivery, multicast, resubmit(TableLocal))
	for _, t := range p.tunnels {
		add(TableFromLocal, 200, PurposeToPeer, "ip,nw_dst="+prefixString(t.Subnet),
			"mod_dl_src:"+gwMAC+",mod_dl_dst:"+RouterMAC+",dec_ttl,"+output(t.OFPort))
	}
	add(TableFromLocal, 150, PurposeLocalDelivery, "ip,nw_dst="+prefixString(p.subnet), resubmit(TableLocal))
	add(TableFromLocal, 100, PurposeDefault, "ip,nw_dst="+prefixString(p.cluster), "drop")
	add(TableFromLocal, 50, PurposeToGateway, "ip", "mod_dl_dst:"+gwMAC+","+output(gw.OFPort))
	add(TableFromLocal, 0, PurposeLocalDelivery, "", resubmit(TableLocal))

	// Table 20: from tunnels, only IPv4 for local addresses.
	for _, c := range p.containers {
		add(TableFromTunnel, 100, PurposeFromTunnel, "ip,nw_dst="+c.IP.String(),
			"mod_dl_src:"+gwMAC+",mod_dl_dst:"+c.MAC.String()+","+output(c.OFPort))
	}
	add(TableFromTunnel, 100, PurposeFromTunnel, "ip,nw_dst="+gw.IP.String(),
		"mod_dl_src:"+RouterMAC+",mod_dl_dst:"+gwMAC+","+output(gw.OFPort))
	add(TableFromTunnel, 0, PurposeDefault, "", "drop")

	// Table 30: on-host switching by destination MAC.
	flood := []string{output(gw.OFPort)}
	add(TableLocal, 100, PurposeLocalDelivery, "dl_dst="+gwMAC, output(gw.OFPort))
	for _, c := range p.containers {
		add(TableLocal, 100, PurposeLocalDelivery, "dl_dst="+c.MAC.String(), output(c.OFPort))
		flood = append(flood, output(c.OFPort))
	}
	// OpenFlow never outputs a packet to its in_port, so one list serves every sender.
	add(TableLocal, 50, PurposeLocalDelivery, multicast, strings.Join(flood, ","))
	add(TableLocal, 0, PurposeDefault, "", "drop")

	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		if a.Priority != b.Priority {
			return a.Priority > b.Priority
		}
		return a.Match < b.Match
	})
	if err := checkUnique(out); err != nil {
		return nil, err
	}
	return out, nil
}

var routerMAC = mustMAC(RouterMAC)

func mustMAC(s string) net.HardwareAddr {
	m, err := net.ParseMAC(s)
	if err != nil {
		panic(err)
	}
	return m
}

// arpReply turns an ARP request into the reply from mac (the standard OVS ARP responder):
// the request's sender becomes the target, mac the sender, and the sender protocol address
// ip, or the address asked for when ip is invalid. The reply goes back out of in_port.
func arpReply(mac net.HardwareAddr, ip netip.Addr) string {
	a := []string{
		"move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[]",
		"mod_dl_src:" + mac.String(),
		"load:0x2->NXM_OF_ARP_OP[]",
		"move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[]",
	}
	if ip.IsValid() {
		a = append(a,
			"move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]",
			"load:"+hexMAC(mac)+"->NXM_NX_ARP_SHA[]",
			"load:"+hexIPv4(ip)+"->NXM_OF_ARP_SPA[]")
	} else {
		// Swap SPA and TPA through reg0: the reply comes from the address asked for.
		a = append(a,
			"move:NXM_OF_ARP_TPA[]->NXM_NX_REG0[]",
			"move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]",
			"move:NXM_NX_REG0[]->NXM_OF_ARP_SPA[]",
			"load:"+hexMAC(mac)+"->NXM_NX_ARP_SHA[]")
	}
	return strings.Join(append(a, "IN_PORT"), ",")
}

// hexMAC is mac as the number ovs-ofctl prints in load actions, e.g. 0x20fab000001.
func hexMAC(mac net.HardwareAddr) string {
	var v uint64
	for _, b := range mac {
		v = v<<8 | uint64(b)
	}
	return "0x" + strconv.FormatUint(v, 16)
}

// hexIPv4 is ip as the number ovs-ofctl prints in load actions, e.g. 0xaf40301.
func hexIPv4(ip netip.Addr) string {
	b := ip.As4()
	v := uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3])
	return "0x" + strconv.FormatUint(v, 16)
}

// prefixString is p as ovs-ofctl prints it: a bare address for a /32.
func prefixString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// plan is validated input: ports without an ofport removed, slices sorted.
type plan struct {
	gw              Port
	subnet, cluster netip.Prefix
	containers      []Port
	tunnels         []Tunnel
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// validate checks in and returns it ready to plan.
func validate(in Input) (plan, error) {
	var p plan
	if !in.ClusterCIDR.IsValid() || !in.ClusterCIDR.Addr().Is4() || in.ClusterCIDR != in.ClusterCIDR.Masked() {
		return p, invalid("cluster CIDR %q: want an IPv4 network address such as 10.244.0.0/16", in.ClusterCIDR)
	}
	if !in.Subnet.IsValid() || !in.Subnet.Addr().Is4() || in.Subnet != in.Subnet.Masked() {
		return p, invalid("subnet %q: want an IPv4 network address such as 10.244.3.0/24", in.Subnet)
	}
	if !within(in.ClusterCIDR, in.Subnet) {
		return p, invalid("subnet %s is not inside the cluster CIDR %s", in.Subnet, in.ClusterCIDR)
	}
	gw := in.Gateway
	if gw.OFPort == 0 || gw.OFPort == -1 {
		return p, fmt.Errorf("%w: gateway port %q has ofport %d", ErrNotReady, gw.Name, gw.OFPort)
	}
	if err := checkPort("gateway", gw, in.Subnet); err != nil {
		return p, err
	}
	p.gw, p.subnet, p.cluster = gw, in.Subnet, in.ClusterCIDR

	ofports := map[int]string{gw.OFPort: "gateway port " + strconv.Quote(gw.Name)}
	ips := map[netip.Addr]string{gw.IP: ofports[gw.OFPort]}
	macs := map[string]string{gw.MAC.String(): ofports[gw.OFPort]}
	for _, c := range in.Containers {
		if c.OFPort == 0 || c.OFPort == -1 {
			continue // not set up by ovs-vswitchd yet
		}
		what := "container port " + strconv.Quote(c.Name)
		if err := checkPort(what, c, in.Subnet); err != nil {
			return p, err
		}
		if o, dup := ofports[c.OFPort]; dup {
			return p, invalid("%s: ofport %d already belongs to %s", what, c.OFPort, o)
		}
		if o, dup := ips[c.IP]; dup {
			return p, invalid("%s: address %s already belongs to %s", what, c.IP, o)
		}
		if o, dup := macs[c.MAC.String()]; dup {
			return p, invalid("%s: MAC %s already belongs to %s", what, c.MAC, o)
		}
		ofports[c.OFPort], ips[c.IP], macs[c.MAC.String()] = what, what, what
		p.containers = append(p.containers, c)
	}
	for _, t := range in.Tunnels {
		if t.OFPort == 0 || t.OFPort == -1 {
			continue
		}
		what := fmt.Sprintf("tunnel port %q (peer %q)", t.Port, t.Peer)
		if t.OFPort < 1 || t.OFPort > ofportMax {
			return p, invalid("%s: ofport %d out of range 1-%d", what, t.OFPort, ofportMax)
		}
		if o, dup := ofports[t.OFPort]; dup {
			return p, invalid("%s: ofport %d already belongs to %s", what, t.OFPort, o)
		}
		if !t.Subnet.IsValid() || !t.Subnet.Addr().Is4() || t.Subnet != t.Subnet.Masked() {
			return p, invalid("%s: subnet %q: want an IPv4 network address", what, t.Subnet)
		}
		if !within(in.ClusterCIDR, t.Subnet) {
			return p, invalid("%s: subnet %s is not inside the cluster CIDR %s", what, t.Subnet, in.ClusterCIDR)
		}
		if t.Subnet.Overlaps(in.Subnet) {
			return p, invalid("%s: subnet %s overlaps the local subnet %s", what, t.Subnet, in.Subnet)
		}
		for _, o := range p.tunnels {
			if t.Subnet.Overlaps(o.Subnet) {
				return p, invalid("%s: subnet %s overlaps %s of tunnel port %q (peer %q)", what, t.Subnet, o.Subnet, o.Port, o.Peer)
			}
		}
		ofports[t.OFPort] = what
		p.tunnels = append(p.tunnels, t)
	}
	sort.Slice(p.containers, func(i, j int) bool { return p.containers[i].OFPort < p.containers[j].OFPort })
	sort.Slice(p.tunnels, func(i, j int) bool { return p.tunnels[i].OFPort < p.tunnels[j].OFPort })
	return p, nil
}

// checkPort checks a local port's ofport, MAC and address.
func checkPort(what string, pt Port, subnet netip.Prefix) error {
	if pt.OFPort < 1 || pt.OFPort > ofportMax {
		return invalid("%s: ofport %d out of range 1-%d", what, pt.OFPort, ofportMax)
	}
	if len(pt.MAC) != 6 || pt.MAC[0]&1 != 0 || isZero(pt.MAC) {
		return invalid("%s: MAC %q: want a unicast Ethernet address", what, pt.MAC)
	}
	if !pt.IP.Is4() || !subnet.Contains(pt.IP) {
		return invalid("%s: address %q is not an IPv4 address in %s", what, pt.IP, subnet)
	}
	if pt.IP == subnet.Addr() {
		return invalid("%s: address %s is the subnet's network address", what, pt.IP)
	}
	return nil
}

func isZero(b []byte) bool {
	for _, x := range b {
		if x != 0 {
			return false
		}
	}
	return true
}

// within reports whether inner lies entirely inside outer.
func within(outer, inner netip.Prefix) bool {
	return outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// checkUnique makes sure no two flows share a table, priority and match (one would replace
// the other) or a table and cookie (Reconcile deletes by cookie).
func checkUnique(fs []Flow) error {
	type key struct {
		table, prio int
		match       string
	}
	type ckey struct {
		table  int
		cookie uint64
	}
	seen := map[key]bool{}
	cookies := map[ckey]Flow{}
	for _, f := range fs {
		k := key{f.Table, f.Priority, sortedFields(f.Match)}
		if seen[k] {
			return invalid("two flows in table %d at priority %d match %q", f.Table, f.Priority, f.Match)
		}
		seen[k] = true
		ck := ckey{f.Table, f.Cookie}
		if o, dup := cookies[ck]; dup {
			return invalid("cookie collision in table %d between %q and %q", f.Table, o.Match, f.Match)
		}
		cookies[ck] = f
	}
	return nil
}

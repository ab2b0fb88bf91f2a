package flows

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// The tables of the pipeline (docs/pipeline.md).
const (
	// TableClassifier (0) admits what each known in_port may send: a container port only
	// IPv4 and ARP from its own address and MAC (port security), the gateway port only what is
	// addressed into a network; both get their network in RegNetwork and go on to
	// TableFromLocal. Tunnels go to TableFromTunnel; anything else is dropped.
	TableClassifier = 0
	// TableFromLocal (10) handles what local ports send, per network: the ARP responder,
	// routing to the network's peers, the way out through the gateway, and the hand-off to
	// TableLocal for on-host traffic. Addresses of other networks are dropped.
	TableFromLocal = 10
	// TableFromTunnel (20) accepts only IPv4 with a network's tunnel key for a local address
	// of that network.
	TableFromTunnel = 20
	// TableLocal (30) switches among the local ports of the packet's network (and the
	// gateway) by destination MAC, and replicates broadcasts and multicasts to them only.
	TableLocal = 30
)

// RegNetwork is the OpenFlow register (as a match field) that carries a packet's network
// from TableClassifier through TableFromLocal and TableLocal: the network's tunnel key. Key 0
// (the default network) is a network like any other: every path into tables 10 and 30 passes
// a table-0 flow that loads the register explicitly, and nothing else reaches them.
const RegNetwork = "reg6"

// regNetworkField is RegNetwork as the field of load actions.
const regNetworkField = "NXM_NX_REG6[]"

// RouterMAC is the MAC of the fabric's virtual router: the Ethernet destination of routed
// frames sent into a tunnel (the receiving host rewrites it anyway), the source of frames a
// tunnel delivers to the gateway port, and the address the ARP responder gives for addresses
// of a network outside this host's slice (the host kernel's next hop toward peers).
// Locally administered, unicast.
const RouterMAC = "02:0f:ab:00:00:01"

// ofportMax is the highest OpenFlow number of a physical port (OFPP_MAX in OpenFlow 1.0).
const ofportMax = 0xff00 - 1

// Errors of Plan; every error Plan returns wraps one of them.
var (
	// ErrInvalid: the input is inconsistent (bad or overlapping networks or slices,
	// duplicate addresses, keys or ports, malformed MACs…). Nothing should be applied.
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
	// MAC is the address frames to this port must carry, and the only source a container
	// may send from: for the gateway the internal port's own MAC (Interface.mac_in_use); for
	// a container the MAC of its interface inside the container (external_ids:ovsfabric-mac),
	// not the host end of the veth.
	MAC net.HardwareAddr
	// IP is a container's IPv4 address, the only source it may send from. Unused for the
	// gateway port, whose addresses are the networks' Network.Gateway.
	IP netip.Addr
}

// Tunnel is the tunnel port toward one peer and the slice of a network that peer owns.
type Tunnel struct {
	// Peer is the peer node's name (for errors and docs only).
	Peer string
	// Port is the OVS port name (for errors and docs only).
	Port string
	// OFPort is the OpenFlow port number, OVSDB Interface.ofport; 0 or -1: skipped. A peer
	// has one tunnel port for all networks: the same OFPort appears in the Tunnels of every
	// network the peer serves.
	OFPort int
	// Subnet is the peer's slice of the network, e.g. 10.50.7.0/24.
	Subnet netip.Prefix
	// Remote is the peer's IPv4 underlay address when OFPort is a flow-based tunnel port
	// (options:remote_ip=flow) that every peer shares: packets to the peer set tun_dst to it,
	// and that port admits only packets whose tun_src is one of its tunnels' Remotes. The
	// flows naming a peer then carry PeerCookie's bits. Invalid: OFPort leads to Peer only.
	Remote netip.Addr
}

// Network is one network this host serves.
type Network struct {
	// Name is the network's name (for errors and docs only), e.g. "default".
	Name string
	// Key is the network's tunnel key (VXLAN VNI or GRE key), unique among networks; the
	// network "default" has key 0, which is what hosts without networks send. It is also the
	// value of RegNetwork for the network's packets.
	Key uint32
	// CIDR is the whole network, e.g. 10.50.0.0/16; networks never overlap. IPv4 to an
	// address in it that no local port or peer slice covers is dropped.
	CIDR netip.Prefix
	// Subnet is this host's slice of CIDR, e.g. 10.50.3.0/24.
	Subnet netip.Prefix
	// Gateway is this host's gateway address in Subnet, one of the addresses of the shared
	// gateway port.
	Gateway netip.Addr
	// Internal networks have no way out: nothing leaves through the gateway port except to
	// the gateway address itself.
	Internal bool
	// Containers are the local container ports on this network; their IPs lie in Subnet.
	Containers []Port
	// Tunnels are the peers' slices of this network, each with the peer's tunnel port.
	Tunnels []Tunnel
}

// Input is everything Plan needs about one host.
type Input struct {
	// Gateway is the gateway port (fabric0) all networks share: Name, OFPort and MAC (its IP
	// field is unused; each network names its own gateway address).
	Gateway Port
	// Networks are the networks this host serves, in any order.
	Networks []Network
	// PeersViaGateway hands routed packets for the peers' slices to the host kernel through
	// the gateway port instead of a tunnel port (encryption: the kernel routes each slice into
	// WireGuard). Tunnels then need no OFPort (it is ignored), and no tunnel port is
	// classified or delivered from.
	PeersViaGateway bool
	// DNS is the fabric DNS's address shared by every network (fabricdns.WellKnownAddr, on
	// the gateway port): UDP and TCP to its port 53 go to the gateway port from every
	// network, internal ones too, and nothing else to it does from an internal network.
	// Invalid: no such flows. It must lie outside every network's CIDR.
	DNS netip.Addr
	// Retiring are tunnel ports still on the bridge that no route uses any more (the other
	// tunnel mode's, while a host switches --tunnel-mode): what they bring in is still
	// admitted (a port per peer by in_port, a flow-based one by each Remote as tun_src), so a
	// peer that sends through them loses nothing until they are gone. Ports a network's
	// Tunnels use already, and ports without an OFPort, are left out.
	Retiring []Tunnel
}

// Plan returns every flow ovsfabric wants on br-int for in, sorted by table and descending
// priority, and within one priority in an order fixed by the input's content (by network
// key, then port number or address). It is pure and deterministic: the order of in's slices
// does not matter. Containers and tunnels without an OpenFlow port yet are left out; a
// gateway without one is ErrNotReady.
//
// Plan is linear in the number of flows it returns (about one per network and peer slice,
// plus a few per network and per container), with no sort of the flows.
func Plan(in Input) ([]Flow, error) {
	p, err := validate(in)
	if err != nil {
		return nil, err
	}
	var b builder
	gw := p.gw
	gwMAC := gw.MAC.String()
	gwPort := strconv.Itoa(gw.OFPort)
	const multicast = "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00"
	routerGW := arpReply(routerMAC, netip.Addr{}) // the same actions for every network

	// Table 0: what each in_port may send, and its network.
	for _, n := range p.networks {
		goOn := "load:" + n.key + "->" + regNetworkField + ",resubmit(,10)"
		cidr := prefixString(n.CIDR)
		b.add(TableClassifier, 100, PurposeClassifier, "ip,in_port="+gwPort+",nw_dst="+cidr, goOn)
		b.add(TableClassifier, 100, PurposeClassifier, "arp,in_port="+gwPort+",arp_tpa="+cidr, goOn)
		for _, c := range n.containers {
			port, mac, ip := strconv.Itoa(c.OFPort), c.MAC.String(), c.IP.String()
			b.add(TableClassifier, 100, PurposeClassifier, "ip,in_port="+port+",dl_src="+mac+",nw_src="+ip, goOn)
			b.add(TableClassifier, 100, PurposeClassifier, "arp,in_port="+port+",dl_src="+mac+",arp_spa="+ip+",arp_sha="+mac, goOn)
			b.add(TableClassifier, 50, PurposePortSecurity, "in_port="+port, "drop")
		}
	}
	b.add(TableClassifier, 50, PurposePortSecurity, "in_port="+gwPort, "drop")
	for _, t := range p.tunnelPorts {
		b.add(TableClassifier, 100, PurposeClassifier, "in_port="+strconv.Itoa(t), "resubmit(,20)")
	}
	for _, t := range p.retiringPorts {
		b.add(TableClassifier, 100, PurposeClassifier, "in_port="+strconv.Itoa(t), "resubmit(,20)")
	}
	for _, fp := range p.retiringPeers {
		b.addPeer(TableClassifier, 100, PurposeFromPeer, "in_port="+strconv.Itoa(fp.OFPort)+",tun_src="+fp.Remote.String(), "resubmit(,20)", fp.Peer)
	}
	// A flow-based port accepts from anyone: only the known peers' underlay addresses are
	// admitted, as a port per peer admits only its remote_ip.
	for _, fp := range p.flowPeers {
		b.addPeer(TableClassifier, 100, PurposeFromPeer, "in_port="+strconv.Itoa(fp.OFPort)+",tun_src="+fp.Remote.String(), "resubmit(,20)", fp.Peer)
	}
	// Priority 1, not 0: table 0 priority 0 with an empty match is the bridge's own NORMAL
	// flow in fail_mode standalone, which must stay the bridge's.
	b.add(TableClassifier, 1, PurposeDefault, "", "drop")

	// Table 10: from local ports, by network (RegNetwork).
	peers := make(map[Tunnel]string, len(p.tunnelPorts)+len(p.flowPeers)) // toPeer of each tunnel
	// Via the gateway (encrypted): the host kernel routes the packet (and decrements its TTL).
	toGateway := "mod_dl_dst:" + gwMAC + ",output:" + gwPort
	b.grow(TableFromLocal, 200, p.routes)
	for _, n := range p.networks {
		reg := RegNetwork + "=" + n.key
		gwIP := n.Gateway.String()
		// The gateway's own gratuitous ARP is switched, never answered.
		b.add(TableFromLocal, 310, PurposeLocalDelivery, "arp,"+reg+",arp_spa="+gwIP+",arp_tpa="+gwIP, "resubmit(,30)")
		b.add(TableFromLocal, 300, PurposeARPResponder, "arp,"+reg+",arp_tpa="+gwIP+",arp_op=1", arpReply(gw.MAC, n.Gateway))
		b.add(TableFromLocal, 290, PurposeLocalDelivery, "arp,"+reg+",arp_tpa="+prefixString(n.Subnet), "resubmit(,30)")
		if n.CIDR != n.Subnet {
			// Peer slices (the host kernel's next hops) and addresses no host owns yet, whose
			// IPv4 the drop at 100 ends.
			b.add(TableFromLocal, 280, PurposeARPResponder, "arp,"+reg+",arp_tpa="+prefixString(n.CIDR)+",arp_op=1", routerGW)
		}
		// Broadcasts and multicasts stay on the host, in the network; a directed broadcast
		// only within the sender's own network.
		b.add(TableFromLocal, 250, PurposeLocalDelivery, "ip,"+reg+","+multicast+",nw_dst="+prefixString(n.CIDR), "resubmit(,30)")
		// The bulk of the flows (one per network and peer slice): built with one allocation for
		// the match and one for the actions.
		matchTo := "ip," + reg + ",nw_dst="
		route := "load:" + n.key + "->NXM_NX_TUN_ID[],mod_dl_src:" + gwMAC + ",mod_dl_dst:" + RouterMAC + ",dec_ttl,"
		for _, t := range n.tunnels {
			var buf [len("255.255.255.255/32")]byte
			if p.viaGateway {
				b.add(TableFromLocal, 200, PurposeToPeer, matchTo+string(appendPrefix(buf[:0], t.Subnet)), toGateway)
				continue
			}
			k := Tunnel{OFPort: t.OFPort, Remote: t.Remote}
			out, ok := peers[k]
			if !ok {
				out = toPeer(t)
				peers[k] = out
			}
			if t.Remote.IsValid() {
				b.addPeer(TableFromLocal, 200, PurposeToPeer, matchTo+string(appendPrefix(buf[:0], t.Subnet)), route+out, t.Peer)
				continue
			}
			b.add(TableFromLocal, 200, PurposeToPeer, matchTo+string(appendPrefix(buf[:0], t.Subnet)), route+out)
		}
		b.add(TableFromLocal, 150, PurposeLocalDelivery, "ip,"+reg+",nw_dst="+prefixString(n.Subnet), "resubmit(,30)")
		// Any network's addresses the flows above did not route: other networks' (isolation)
		// and this network's that no host owns.
		b.add(TableFromLocal, 100, PurposeDefault, "ip,nw_dst="+prefixString(n.CIDR), "drop")
		if n.Internal {
			b.add(TableFromLocal, 60, PurposeDefault, "ip,"+reg, "drop")
		}
	}
	if p.dns.IsValid() {
		// Above the internal networks' drop at 60; no CIDR holds it (validate), so the drops
		// at 100 never apply.
		dns := ",nw_dst=" + p.dns.String() + ",tp_dst=53"
		b.add(TableFromLocal, 70, PurposeToGateway, "udp"+dns, toGateway)
		b.add(TableFromLocal, 70, PurposeToGateway, "tcp"+dns, toGateway)
	}
	// A container's ARP reply to the host kernel, which asks from whatever address it sends
	// from (the underlay address, for replies to a container's packets from outside).
	b.add(TableFromLocal, 275, PurposeLocalDelivery, "arp,dl_dst="+gwMAC+",arp_op=2", "resubmit(,30)")
	// Every other ARP: for another network's address, or for no network's.
	b.add(TableFromLocal, 270, PurposeDefault, "arp", "drop")
	b.add(TableFromLocal, 240, PurposeLocalDelivery, "ip,"+multicast+",nw_dst=224.0.0.0/4", "resubmit(,30)")
	b.add(TableFromLocal, 240, PurposeLocalDelivery, "ip,"+multicast+",nw_dst=255.255.255.255", "resubmit(,30)")
	b.add(TableFromLocal, 50, PurposeToGateway, "ip", "mod_dl_dst:"+gwMAC+",output:"+gwPort)
	b.add(TableFromLocal, 0, PurposeDefault, "", "drop")

	// Table 20: from tunnels, only IPv4 with a network's key for that network's local
	// addresses (none via the gateway: what the kernel routes in takes local delivery).
	for _, n := range p.networks {
		if p.viaGateway {
			break
		}
		tun := "ip,tun_id=" + n.key + ",nw_dst="
		for _, c := range n.containers {
			b.add(TableFromTunnel, 100, PurposeFromTunnel, tun+c.IP.String(),
				"mod_dl_src:"+gwMAC+",mod_dl_dst:"+c.MAC.String()+",output:"+strconv.Itoa(c.OFPort))
		}
		b.add(TableFromTunnel, 100, PurposeFromTunnel, tun+n.Gateway.String(),
			"mod_dl_src:"+RouterMAC+",mod_dl_dst:"+gwMAC+",output:"+gwPort)
	}
	b.add(TableFromTunnel, 0, PurposeDefault, "", "drop")

	// Table 30: on-host switching by network and destination MAC.
	for _, n := range p.networks {
		reg := RegNetwork + "=" + n.key
		flood := make([]string, 0, 1+len(n.containers))
		flood = append(flood, "output:"+gwPort)
		b.add(TableLocal, 100, PurposeLocalDelivery, reg+",dl_dst="+gwMAC, "output:"+gwPort)
		for _, c := range n.containers {
			out := "output:" + strconv.Itoa(c.OFPort)
			b.add(TableLocal, 100, PurposeLocalDelivery, reg+",dl_dst="+c.MAC.String(), out)
			flood = append(flood, out)
		}
		// OpenFlow never outputs a packet to its in_port, so one list serves every sender.
		b.add(TableLocal, 50, PurposeLocalDelivery, reg+","+multicast, strings.Join(flood, ","))
	}
	b.add(TableLocal, 0, PurposeDefault, "", "drop")

	return b.flows()
}

// toPeer is the action that sends a routed packet to tunnel t's peer: the one place that
// chooses the peer. A port per peer leads there by itself; on a flow-based port
// (options:remote_ip=flow) the packet's tun_dst names the peer, written as the load that
// ovs-ofctl prints for set_field:<Remote>->tun_dst.
func toPeer(t Tunnel) string {
	if t.Remote.IsValid() {
		return "load:" + hexIPv4(t.Remote) + "->NXM_NX_TUN_IPV4_DST[],output:" + strconv.Itoa(t.OFPort)
	}
	return "output:" + strconv.Itoa(t.OFPort)
}

// builder collects flows in buckets by table and priority, so that Plan's result comes out
// sorted without sorting it: within a bucket flows keep the order Plan added them in.
type builder struct {
	buckets map[int]*[]Flow // by table<<16 | priority
}

// bucket is the flows at table and prio.
func (b *builder) bucket(table, prio int) *[]Flow {
	if b.buckets == nil {
		b.buckets = map[int]*[]Flow{}
	}
	k := table<<16 | prio
	fs := b.buckets[k]
	if fs == nil {
		fs = new([]Flow)
		b.buckets[k] = fs
	}
	return fs
}

// grow makes room for n more flows at table and prio.
func (b *builder) grow(table, prio, n int) {
	fs := b.bucket(table, prio)
	*fs = slices.Grow(*fs, n)
}

func (b *builder) add(table, prio int, purpose Purpose, match, actions string) {
	fs := b.bucket(table, prio)
	*fs = append(*fs, Flow{Table: table, Priority: prio, Cookie: makeCookie(purpose, table, prio, match), Match: match, Actions: actions})
}

// addPeer adds a flow that names peer (flow-based tunnels): its cookie carries PeerCookie's
// bits, so that `ovs-ofctl dump-flows --cookie` finds a peer's flows.
func (b *builder) addPeer(table, prio int, purpose Purpose, match, actions, peer string) {
	fs := b.bucket(table, prio)
	*fs = append(*fs, Flow{Table: table, Priority: prio, Cookie: makePeerCookie(purpose, table, prio, match, peer), Match: match, Actions: actions})
}

// flows concatenates the buckets by table, then descending priority, and makes the cookies
// unique within each table: a flow whose ID another flow of its table already has (two
// hashes colliding, likely among thousands of flows) takes the next free ID, in that order,
// so the result stays deterministic. Two flows with the same table, priority and match are
// ErrInvalid: one would replace the other on the bridge.
func (b *builder) flows() ([]Flow, error) {
	keys := make([]int, 0, len(b.buckets))
	n := 0
	for k, fs := range b.buckets {
		keys = append(keys, k)
		n += len(*fs)
	}
	slices.SortFunc(keys, func(x, y int) int {
		if tx, ty := x>>16, y>>16; tx != ty {
			return tx - ty
		}
		return y&0xffff - x&0xffff
	})
	seen := newCookieSet(n)
	out := make([]Flow, 0, n)
	for _, k := range keys {
		for _, f := range *b.buckets[k] {
			for {
				o, dup := seen.get(f.Table, f.Cookie)
				if !dup {
					break
				}
				if g := out[o]; g.Priority == f.Priority && g.Match == f.Match {
					return nil, invalid("two flows in table %d at priority %d match %q", f.Table, f.Priority, f.Match)
				}
				f.Cookie = f.Cookie&^IDMask | (f.Cookie+1)&IDMask
			}
			seen.put(f.Table, f.Cookie, len(out))
			out = append(out, f)
		}
	}
	return out, nil
}

// cookieSet maps (table, cookie) to a flow's index: an open-addressing hash table, several
// times faster than a Go map for the thousands of flows Plan makes.
type cookieSet struct {
	keys []uint64 // table in the top 16 bits (where every cookie has CookieBase), 0: empty
	idx  []int
	mask uint64
}

func newCookieSet(n int) *cookieSet {
	size := 16
	for size < 2*n {
		size <<= 1
	}
	return &cookieSet{keys: make([]uint64, size), idx: make([]int, size), mask: uint64(size - 1)}
}

func cookieSetKey(table int, cookie uint64) uint64 {
	return cookie&^CookieMask | uint64(table+1)<<48
}

// slot is where key is, or the empty slot where it would go.
func (s *cookieSet) slot(key uint64) uint64 {
	h := (key * 0x9e3779b97f4a7c15) >> 32
	for i := h & s.mask; ; i = (i + 1) & s.mask {
		if s.keys[i] == key || s.keys[i] == 0 {
			return i
		}
	}
}

func (s *cookieSet) get(table int, cookie uint64) (int, bool) {
	k := cookieSetKey(table, cookie)
	i := s.slot(k)
	return s.idx[i], s.keys[i] == k
}

func (s *cookieSet) put(table int, cookie uint64, idx int) {
	k := cookieSetKey(table, cookie)
	i := s.slot(k)
	s.keys[i], s.idx[i] = k, idx
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
	return hexNum(v)
}

// hexIPv4 is ip as the number ovs-ofctl prints in load actions, e.g. 0xaf40301.
func hexIPv4(ip netip.Addr) string {
	b := ip.As4()
	return hexNum(uint64(b[0])<<24 | uint64(b[1])<<16 | uint64(b[2])<<8 | uint64(b[3]))
}

// hexNum is v as ovs-ofctl prints numbers in load actions and register and tun_id matches
// (C's %#x): 0x-prefixed hex, but a bare 0 for zero.
func hexNum(v uint64) string {
	if v == 0 {
		return "0"
	}
	return "0x" + strconv.FormatUint(v, 16)
}

// appendPrefix appends p as prefixString writes it to b.
func appendPrefix(b []byte, p netip.Prefix) []byte {
	if p.IsSingleIP() {
		return p.Addr().AppendTo(b)
	}
	return p.AppendTo(b)
}

// prefixString is p as ovs-ofctl prints it: a bare address for a /32.
func prefixString(p netip.Prefix) string {
	if p.IsSingleIP() {
		return p.Addr().String()
	}
	return p.String()
}

// Equal reports whether in and o are the same input, in the same order: Plan would return
// the same flows for both. It lets a caller skip planning when nothing changed.
func (in Input) Equal(o Input) bool {
	if in.PeersViaGateway != o.PeersViaGateway || in.DNS != o.DNS || !in.Gateway.equal(o.Gateway) || len(in.Networks) != len(o.Networks) ||
		!slices.Equal(in.Retiring, o.Retiring) {
		return false
	}
	for k, a := range in.Networks {
		b := o.Networks[k]
		if a.Name != b.Name || a.Key != b.Key || a.CIDR != b.CIDR || a.Subnet != b.Subnet || a.Gateway != b.Gateway || a.Internal != b.Internal ||
			!slices.Equal(a.Tunnels, b.Tunnels) || !slices.EqualFunc(a.Containers, b.Containers, Port.equal) {
			return false
		}
	}
	return true
}

func (p Port) equal(o Port) bool {
	return p.Name == o.Name && p.OFPort == o.OFPort && p.IP == o.IP && bytes.Equal(p.MAC, o.MAC)
}

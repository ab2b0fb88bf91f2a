package flows

import (
	"fmt"
	"strconv"
)

// Cookie layout, as `ovs-ofctl dump-flows` shows it (leading zeros dropped):
//
//	0x0fab PPPP HHHHHHHH
//	  │    │    └ flow ID: FNV-1a hash of table, priority and match
//	  │    └ Purpose
//	  └ CookieBase: ovsfabric
const (
	// CookieBase marks a flow as ovsfabric's: the cookie's top 16 bits are 0x0fab.
	CookieBase uint64 = 0x0fab_0000_0000_0000
	// CookieMask selects the bits that CookieBase sets: a flow is ovsfabric's when
	// cookie&CookieMask == CookieBase (ovs-ofctl: cookie=0x0fab000000000000/0xffff000000000000).
	CookieMask uint64 = 0xffff_0000_0000_0000
	// PurposeMask selects the Purpose bits of a cookie.
	PurposeMask uint64 = 0x0000_ffff_0000_0000
	// IDMask selects a cookie's flow ID bits.
	IDMask uint64 = 0x0000_0000_ffff_ffff

	purposeShift = 32
)

// Purpose says what an ovsfabric flow is for; it is bits 32-47 of the flow's cookie.
type Purpose uint16

// The purposes of ovsfabric's flows.
const (
	// PurposeNone is the Purpose of a cookie that is not ovsfabric's.
	PurposeNone Purpose = 0
	// PurposeClassifier: table 0, which sends each known in_port to the table for its kind
	// (local port or tunnel).
	PurposeClassifier Purpose = 1
	// PurposeARPResponder: answers ARP requests for the gateway and for peer subnets.
	PurposeARPResponder Purpose = 2
	// PurposeToPeer: routes IPv4 for a peer's subnet into that peer's tunnel.
	PurposeToPeer Purpose = 3
	// PurposeFromTunnel: delivers IPv4 arriving from a tunnel to a local address.
	PurposeFromTunnel Purpose = 4
	// PurposeLocalDelivery: switching among the host's own ports (containers and gateway),
	// by destination MAC, and replication of local broadcasts to local ports only.
	PurposeLocalDelivery Purpose = 5
	// PurposeToGateway: IPv4 for destinations outside the cluster CIDR goes to the gateway
	// port (the host kernel routes and NATs it).
	PurposeToGateway Purpose = 6
	// PurposeDefault: the explicit drops that end each table (unknown in_port, non-IPv4
	// from tunnels, unknown unicast, unreachable or other networks' addresses, the way out
	// of an internal network).
	PurposeDefault Purpose = 7
	// PurposePortSecurity: table 0's drop of whatever a local port sends that its admitting
	// flows did not take: a container's packets from another address or MAC, or non-IPv4
	// non-ARP; the gateway's packets for no network.
	PurposePortSecurity Purpose = 8
	// PurposeFromPeer: table 0, flow-based tunnel port: admits what a known peer sends (its
	// underlay address as tun_src) to TableFromTunnel.
	PurposeFromPeer Purpose = 9
)

var purposeNames = map[Purpose]string{
	PurposeNone:          "not-ovsfabric",
	PurposeClassifier:    "classifier",
	PurposeARPResponder:  "arp-responder",
	PurposeToPeer:        "to-peer",
	PurposeFromTunnel:    "from-tunnel",
	PurposeLocalDelivery: "local-delivery",
	PurposeToGateway:     "to-gateway",
	PurposeDefault:       "default",
	PurposePortSecurity:  "port-security",
	PurposeFromPeer:      "from-peer",
}

// String is the purpose's name as docs/pipeline.md uses it, e.g. "to-peer".
func (p Purpose) String() string {
	if s, ok := purposeNames[p]; ok {
		return s
	}
	return fmt.Sprintf("unknown(%#04x)", uint16(p))
}

// PurposeOf reads the Purpose out of a flow's cookie; PurposeNone when the cookie is not
// ovsfabric's. PurposeOf(c).String() tells an operator what a dumped flow is for.
func PurposeOf(cookie uint64) Purpose {
	if !IsOurs(cookie) {
		return PurposeNone
	}
	return Purpose((cookie & PurposeMask) >> purposeShift)
}

// IsOurs reports whether cookie marks a flow as ovsfabric's.
func IsOurs(cookie uint64) bool { return cookie&CookieMask == CookieBase }

// makeCookie is the cookie of the ovsfabric flow with the given purpose, table, priority and
// match (in ovs-ofctl syntax, as the flow is written): CookieBase, the purpose, and an FNV-1a
// hash of "table/priority/match" as the flow's ID (Plan moves a colliding ID to the next free
// one). It allocates nothing: Plan calls it for every flow.
func makeCookie(p Purpose, table, priority int, match string) uint64 {
	const offset32, prime32 = 2166136261, 16777619
	h := uint32(offset32)
	var buf [24]byte
	num := strconv.AppendInt(buf[:0], int64(table), 10)
	num = append(num, '/')
	num = strconv.AppendInt(num, int64(priority), 10)
	num = append(num, '/')
	for _, c := range num {
		h = (h ^ uint32(c)) * prime32
	}
	for i := 0; i < len(match); i++ {
		h = (h ^ uint32(match[i])) * prime32
	}
	return CookieBase | uint64(p)<<purposeShift | uint64(h)
}

// PeerIDMask selects the peer bits of the flow ID of a flow that names a peer on a
// flow-based tunnel port (PurposeToPeer and PurposeFromPeer flows whose Tunnel has a
// Remote): bits 31-16 are a hash of the peer's name, bits 15-0 the flow's own.
const PeerIDMask uint64 = 0x0000_0000_ffff_0000

// peerHash is the 16-bit hash of a peer's name that its flows' cookies carry.
func peerHash(peer string) uint64 {
	const offset32, prime32 = 2166136261, 16777619
	h := uint32(offset32)
	for i := 0; i < len(peer); i++ {
		h = (h ^ uint32(peer[i])) * prime32
	}
	return uint64(h>>16^h&0xffff) << 16
}

// makePeerCookie is makeCookie for a flow that names peer: the ID's top 16 bits are the
// peer's hash (see PeerCookie).
func makePeerCookie(p Purpose, table, priority int, match, peer string) uint64 {
	c := makeCookie(p, table, priority, match)
	return c&^PeerIDMask | peerHash(peer)
}

// PeerCookie is the cookie and mask that select the flows of purpose p naming peer on a
// flow-based tunnel port, e.g. for ovs-ofctl:
//
//	ovs-ofctl dump-flows br-int cookie=0x0fab0003c0de0000/0xffffffffffff0000
//
// (PurposeToPeer: where packets to peer go; PurposeFromPeer: what is admitted from it). Two
// peers' hashes may collide (16 bits): the flows' tun_dst and tun_src tell them apart.
func PeerCookie(p Purpose, peer string) (cookie, mask uint64) {
	return CookieBase | uint64(p)<<purposeShift | peerHash(peer), CookieMask | PurposeMask | PeerIDMask
}

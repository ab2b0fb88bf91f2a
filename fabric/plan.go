package fabric

import (
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"
)

// PeerState is a peer's membership state as gossip reports it.
type PeerState string

// Membership states; they mirror memberlist's.
const (
	PeerAlive   PeerState = "alive"
	PeerSuspect PeerState = "suspect"
	PeerDead    PeerState = "dead"
	PeerLeft    PeerState = "left"
)

// Peer is what this host knows of another fabric node.
type Peer struct {
	Name     string
	Underlay netip.Addr
	Subnet   netip.Prefix
	// SubnetSince and SubnetSeq order competing subnet claims (see Claim).
	SubnetSince int64
	SubnetSeq   uint64
	State       PeerState
	// StateSince is when the peer entered State.
	StateSince time.Time
	// WireGuardKey and WireGuardPort are the peer's WireGuard public key (base64) and UDP
	// port as gossip announced them (with Facts.Encryption wireguard).
	WireGuardKey  string
	WireGuardPort int
}

// Claim is the peer's subnet claim.
func (p Peer) Claim() Claim {
	return Claim{Node: p.Name, Subnet: p.Subnet, Since: p.SubnetSince, Seq: p.SubnetSeq}
}

// Gone reports whether p no longer holds its subnet actively at now: it left, or has been
// dead for grace or longer. A gone peer gets no tunnel or route and its claim contests no
// one's; it may still be retained (see Retained).
func (p Peer) Gone(now time.Time, grace time.Duration) bool {
	return p.State == PeerLeft || p.State == PeerDead && now.Sub(p.StateSince) >= grace
}

// Facts is everything Plan needs: this host's configuration and identity, and its view of
// the other nodes.
type Facts struct {
	Node        string
	Underlay    netip.Addr
	UnderlayMTU int
	Subnet      netip.Prefix
	SubnetSince int64
	SubnetSeq   uint64
	ClusterCIDR netip.Prefix
	Tunnel      TunnelType
	TunnelMode  TunnelMode
	Bridge      string
	GatewayPort string
	Datapath    Datapath
	Peers       []Peer
	Now         time.Time
	// DeadPeerGrace is how long a failed (dead, not left) peer keeps its tunnel and route, so
	// that a restarting fabricd never disturbs anyone.
	DeadPeerGrace time.Duration
	// Networks are the networks besides the default one (the cluster CIDR, whose slices are
	// the subnet claims above), as the registry shows them.
	Networks []NetworkFacts
	// Encryption is the fabric's encryption mode; with EncryptionWireGuard Plan builds no
	// tunnels but WireGuard peers and routes into WireGuard.Interface.
	Encryption Encryption
	WireGuard  WireGuardFacts
	// TunnelMode (above) is per-peer ("" too) or flow: with flow every Tunnel is named
	// FlowTunnelPortName(Tunnel), the one port they share.
}

// DefaultNetwork is the name of the network of the cluster CIDR.
const DefaultNetwork = "default"

// NetworkFacts is one network besides the default one, as this host knows it.
type NetworkFacts struct {
	Name string
	// Key is the network's tunnel key.
	Key      uint32
	CIDR     netip.Prefix
	Internal bool
	// Slice is this host's slice (invalid: this host has none and serves no endpoint of it).
	Slice netip.Prefix
	// PeerSlices are the other hosts' winning slices.
	PeerSlices []PeerSlice
}

// PeerSlice is a peer's slice of a network.
type PeerSlice struct {
	Peer  string
	Slice netip.Prefix
}

// NetworkPlan is one network this host serves: the default one (key 0, the cluster CIDR,
// this host's subnet) first, then the others by name.
type NetworkPlan struct {
	Name     string
	Key      uint32
	CIDR     netip.Prefix
	Internal bool
	// Gateway is this host's gateway address in the network with its slice's prefix length
	// (Gateway.Masked() is the slice); every network's gateway lives on the one gateway port.
	Gateway netip.Prefix
	// Peers are the peers' slices this host routes to: only peers it has a tunnel toward.
	Peers []NetworkPeer
}

// NetworkPeer is a peer's slice of a network and the tunnel port that leads there ("" when
// encrypted: the host kernel routes it into WireGuard). With TunnelFlow every peer's Tunnel
// is the one flow-based port and Remote, the peer's underlay address, picks the peer.
type NetworkPeer struct {
	Peer   string
	Tunnel string
	Slice  netip.Prefix
	Remote netip.Addr
}

// Tunnel is one desired tunnel port toward a peer, with what Plan knew of the peer's subnet
// claim: the subnet the tunnel leads to (routes and flows use it) and its order (persisted
// on the port, so a restart adopts the peer). With TunnelFlow there is still one Tunnel per
// peer, but all of them name the one flow-based port (Desired.FlowTunnel).
type Tunnel struct {
	Name   string
	Type   TunnelType
	Remote netip.Addr
	Peer   string
	// Claim is the peer's subnet claim; Claim.Subnet is where the tunnel leads.
	Claim Claim
}

// Route is one desired host route: a peer's subnet via its gateway, on the gateway port.
type Route struct {
	Dst netip.Prefix
	Via netip.Addr
	// Src is the source the host uses toward Dst: its gateway address in Dst's network, for
	// networks besides the default one (the gateway port holds one address per network, and
	// a reply to another network's address would be dropped as crossing networks).
	Src    netip.Addr
	Dev    string
	OnLink bool
	Peer   string
	// Unreachable makes the route an `unreachable` one (no Via, no Dev): the guard that keeps
	// an encrypted fabric's traffic from leaving by another route when a peer is missing.
	Unreachable bool
}

// Skipped is a peer Plan builds nothing toward, and why.
type Skipped struct {
	Peer   string
	Reason string
}

// Desired is the state one host should converge to.
type Desired struct {
	Bridge      string
	Datapath    Datapath
	GatewayPort string
	// Gateway is the gateway address with the subnet's prefix length, e.g. 10.244.3.1/24.
	Gateway netip.Prefix
	MTU     int
	Tunnels []Tunnel
	Routes  []Route
	Skipped []Skipped
	// Networks are the networks this host serves, default first.
	Networks []NetworkPlan
	// Encryption is the mode the plan was made for; WireGuard are the WireGuard peers (with
	// EncryptionWireGuard, when Tunnels is empty), by peer name.
	Encryption Encryption
	WireGuard  []WireGuardPeer
	// TunnelMode is the mode the plan was made for (never ""). FlowTunnel is, with
	// TunnelFlow, the name of the one flow-based tunnel port ("" otherwise).
	TunnelMode TunnelMode
	FlowTunnel string
}

// Plan computes the desired state of this host from facts. It is pure: the same facts always
// give the same result, sorted by name, so applying it twice changes nothing the second time.
func Plan(f Facts) (Desired, error) {
	if err := ValidIfName(f.Bridge); err != nil {
		return Desired{}, fmt.Errorf("bridge: %w", err)
	}
	if err := ValidIfName(f.GatewayPort); err != nil {
		return Desired{}, fmt.Errorf("gateway port: %w", err)
	}
	if _, err := ParseDatapath(string(f.Datapath)); err != nil {
		return Desired{}, err
	}
	mode, err := ParseTunnelMode(string(f.TunnelMode))
	if err != nil {
		return Desired{}, err
	}
	if err := ValidateSubnet(f.ClusterCIDR, f.Subnet.Bits(), f.Subnet); err != nil {
		return Desired{}, fmt.Errorf("local subnet: %w", err)
	}
	if f.Encryption == "" {
		f.Encryption = EncryptionNone
	}
	if f.Encryption.Encrypted() {
		if err := ValidIfName(f.WireGuard.Interface); err != nil {
			return Desired{}, fmt.Errorf("wireguard interface: %w", err)
		}
	}
	mtu, err := FabricMTU(f.UnderlayMTU, f.Tunnel, f.Encryption, f.Underlay.Is6())
	if err != nil {
		return Desired{}, err
	}
	d := Desired{
		Bridge:      f.Bridge,
		Datapath:    f.Datapath,
		GatewayPort: f.GatewayPort,
		Gateway:     netip.PrefixFrom(Gateway(f.Subnet), f.Subnet.Bits()),
		MTU:         mtu,
		Encryption:  f.Encryption,
		TunnelMode:  mode,
	}
	if mode.Flow() && !f.Encryption.Encrypted() {
		d.FlowTunnel = FlowTunnelPortName(f.Tunnel)
	}

	// Sized up front: at thousands of peers, regrowing these slices costs more than planning.
	d.Tunnels = make([]Tunnel, 0, len(f.Peers))
	d.Routes = make([]Route, 0, len(f.Peers))
	claims := make([]Claim, 0, len(f.Peers)+1)
	claims = append(claims, Claim{Node: f.Node, Subnet: f.Subnet, Since: f.SubnetSince, Seq: f.SubnetSeq})
	for _, p := range f.Peers {
		if p.Subnet.IsValid() && !p.Gone(f.Now, f.DeadPeerGrace) {
			claims = append(claims, p.Claim())
		}
	}
	ix := newClaimIndex(claims)
	peers := slices.Clone(f.Peers)
	sort.Slice(peers, func(i, j int) bool { return peers[i].Name < peers[j].Name })
	for _, p := range peers {
		if p.Name == f.Node {
			continue
		}
		if reason := skipReason(f, p, ix); reason != "" {
			d.Skipped = append(d.Skipped, Skipped{Peer: p.Name, Reason: reason})
			continue
		}
		if f.Encryption.Encrypted() {
			d.WireGuard = append(d.WireGuard, WireGuardPeer{Peer: p.Name, Key: p.WireGuardKey,
				Endpoint: netip.AddrPortFrom(p.Underlay, uint16(p.WireGuardPort)), AllowedIPs: []netip.Prefix{p.Subnet}})
			d.Routes = append(d.Routes, Route{Dst: p.Subnet, Src: d.Gateway.Addr(), Dev: f.WireGuard.Interface, Peer: p.Name})
			continue
		}
		name := d.FlowTunnel
		if name == "" {
			name = TunnelPortName(f.Tunnel, p.Name)
		}
		d.Tunnels = append(d.Tunnels, Tunnel{Name: name, Type: f.Tunnel, Remote: p.Underlay, Peer: p.Name, Claim: p.Claim()})
		d.Routes = append(d.Routes, Route{Dst: p.Subnet, Via: Gateway(p.Subnet), Dev: f.GatewayPort, OnLink: true, Peer: p.Name})
	}
	planNetworks(f, &d)
	if f.Encryption.Encrypted() {
		planGuards(f, &d)
	}
	return d, nil
}

// planGuards adds the guard routes of an encrypted fabric: `unreachable <CIDR>` for every
// network, so that a packet for a peer slice without its route into WireGuard (a peer not
// known yet, the interface gone) is refused instead of leaving in clear by another route
// (the default one). The routes to slices are more specific and win.
func planGuards(f Facts, d *Desired) {
	seen := map[netip.Prefix]bool{}
	cidrs := []netip.Prefix{f.ClusterCIDR}
	for _, n := range f.Networks {
		cidrs = append(cidrs, n.CIDR)
	}
	for _, c := range cidrs {
		if !c.IsValid() || seen[c.Masked()] {
			continue
		}
		seen[c.Masked()] = true
		d.Routes = append(d.Routes, Route{Dst: c.Masked(), Unreachable: true})
	}
}

// planNetworks adds to d the networks this host serves, and the routes to the peers'
// slices of those besides the default one: only toward peers d has a tunnel to, and never
// to a slice outside its network or overlapping this host's own (the network's slice
// rules settle that; the route waits).
func planNetworks(f Facts, d *Desired) {
	tunnels := make(map[string]Tunnel, len(d.Tunnels)+len(d.WireGuard))
	wg := make(map[string]int, len(d.WireGuard))
	def := NetworkPlan{Name: DefaultNetwork, CIDR: f.ClusterCIDR, Gateway: d.Gateway, Peers: make([]NetworkPeer, 0, len(d.Tunnels)+len(d.WireGuard))}
	for _, t := range d.Tunnels {
		tunnels[t.Peer] = t
		def.Peers = append(def.Peers, NetworkPeer{Peer: t.Peer, Tunnel: t.Name, Slice: t.Claim.Subnet, Remote: t.Remote})
	}
	for i, w := range d.WireGuard {
		tunnels[w.Peer], wg[w.Peer] = Tunnel{}, i
		def.Peers = append(def.Peers, NetworkPeer{Peer: w.Peer, Slice: w.AllowedIPs[0]})
	}
	// Sized up front, sorted only when not sorted already (the book hands them sorted): at
	// 100 networks × 100 peers, copying and regrowing cost more than planning.
	routes := len(d.Routes)
	for _, n := range f.Networks {
		routes += len(n.PeerSlices)
	}
	d.Routes = slices.Grow(d.Routes, routes-len(d.Routes))
	d.Networks = make([]NetworkPlan, 0, len(f.Networks)+1)
	d.Networks = append(d.Networks, def)
	byName := func(a, b NetworkFacts) int { return strings.Compare(a.Name, b.Name) }
	nets := f.Networks
	if !slices.IsSortedFunc(nets, byName) {
		nets = slices.Clone(nets)
		slices.SortFunc(nets, byName)
	}
	byPeer := func(a, b PeerSlice) int { return strings.Compare(a.Peer, b.Peer) }
	for _, n := range nets {
		if n.Name == DefaultNetwork || !n.Slice.IsValid() || !within(n.CIDR, n.Slice) {
			continue
		}
		np := NetworkPlan{Name: n.Name, Key: n.Key, CIDR: n.CIDR, Internal: n.Internal, Gateway: netip.PrefixFrom(Gateway(n.Slice), n.Slice.Bits()),
			Peers: make([]NetworkPeer, 0, len(n.PeerSlices))}
		peers := n.PeerSlices
		if !slices.IsSortedFunc(peers, byPeer) {
			peers = slices.Clone(peers)
			slices.SortFunc(peers, byPeer)
		}
		src := np.Gateway.Addr()
		for _, p := range peers {
			t, ok := tunnels[p.Peer]
			if !ok || p.Peer == f.Node || !p.Slice.IsValid() || !within(n.CIDR, p.Slice) || p.Slice.Overlaps(n.Slice) {
				continue
			}
			np.Peers = append(np.Peers, NetworkPeer{Peer: p.Peer, Tunnel: t.Name, Slice: p.Slice, Remote: t.Remote})
			if i, ok := wg[p.Peer]; ok {
				d.WireGuard[i].AllowedIPs = append(d.WireGuard[i].AllowedIPs, p.Slice)
				d.Routes = append(d.Routes, Route{Dst: p.Slice, Src: src, Dev: f.WireGuard.Interface, Peer: p.Peer})
				continue
			}
			d.Routes = append(d.Routes, Route{Dst: p.Slice, Via: Gateway(p.Slice), Src: src, Dev: f.GatewayPort, OnLink: true, Peer: p.Peer})
		}
		d.Networks = append(d.Networks, np)
	}
}

// within reports whether inner lies entirely inside outer.
func within(outer, inner netip.Prefix) bool {
	return outer.IsValid() && inner.IsValid() && outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// skipReason says why Plan builds nothing toward p, or "" when it builds a tunnel and a route.
func skipReason(f Facts, p Peer, ix claimIndex) string {
	switch {
	case p.State == PeerLeft:
		return "left the fabric"
	case p.State == PeerDead && f.Now.Sub(p.StateSince) >= f.DeadPeerGrace:
		return fmt.Sprintf("dead for more than %s", f.DeadPeerGrace)
	case !p.Underlay.IsValid() || p.Underlay.IsUnspecified():
		return "no underlay address"
	case p.Underlay == f.Underlay:
		return fmt.Sprintf("same underlay address %s as this host", p.Underlay)
	case !p.Subnet.IsValid():
		return "no subnet claimed yet"
	case f.Encryption.Encrypted() && p.WireGuardKey == "":
		return "no WireGuard key announced (carries no traffic)"
	case f.Encryption.Encrypted() && (p.WireGuardPort <= 0 || p.WireGuardPort > 65535):
		return "no WireGuard port announced (carries no traffic)"
	case !f.ClusterCIDR.Contains(p.Subnet.Addr()) || p.Subnet.Bits() < f.ClusterCIDR.Bits():
		return fmt.Sprintf("subnet %s outside cluster CIDR %s", p.Subnet, f.ClusterCIDR)
	case p.Subnet.Overlaps(f.Subnet):
		// Whoever wins, a route to our own subnet must never point away from this host; the
		// controller re-picks or refuses the local claim when it loses.
		return fmt.Sprintf("subnet %s overlaps this host's subnet %s", p.Subnet, f.Subnet)
	}
	if w, lost := ix.conflict(p.Claim()); lost {
		return fmt.Sprintf("subnet %s conflicts with the earlier claim of %s", p.Subnet, w.Node)
	}
	return ""
}

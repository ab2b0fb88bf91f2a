package flows

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
)

// plan is validated input: ports without an ofport removed, everything sorted.
type plan struct {
	gw Port
	// networks by key.
	networks []network
	// tunnelPorts are the distinct ofports of tunnels without a Remote (a port per peer),
	// ascending.
	tunnelPorts []int
	// flowPeers are the distinct (OFPort, Remote, Peer) of tunnels with a Remote (flow-based
	// ports), by ofport and address.
	flowPeers []Tunnel
	// retiringPorts and retiringPeers are Input.Retiring's ports per peer (ofports) and
	// flow-based ports' peers, sorted, without those the tunnels use.
	retiringPorts []int
	retiringPeers []Tunnel
	// routes counts the networks' peer slices.
	routes int
	// viaGateway is Input.PeersViaGateway.
	viaGateway bool
	// dns is Input.DNS.
	dns netip.Addr
}

// network is a validated Network; Plan uses its containers and tunnels, not the embedded
// Network's (which still hold the ports without an ofport).
type network struct {
	Network
	// key is Key as ovs-ofctl prints it in matches and load actions.
	key string
	// containers with an ofport, by ofport.
	containers []Port
	// tunnels with an ofport, by slice.
	tunnels []Tunnel
}

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

// notUnicast are the IPv4 ranges no network may overlap: "this network", loopback,
// multicast, reserved and the limited broadcast address (the pipeline treats 224.0.0.0/4 and
// 255.255.255.255 as multicast).
var notUnicast = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("224.0.0.0/3"),
}

// validate checks in and returns it ready to plan. It is O(n log n) in the size of in.
func validate(in Input) (plan, error) {
	p := plan{viaGateway: in.PeersViaGateway}
	gw := in.Gateway
	if gw.OFPort == 0 || gw.OFPort == -1 {
		return p, fmt.Errorf("%w: gateway port %q has ofport %d", ErrNotReady, gw.Name, gw.OFPort)
	}
	what := "gateway port " + strconv.Quote(gw.Name)
	if err := checkOFPortMAC(what, gw); err != nil {
		return p, err
	}
	p.gw = gw

	// Who owns each ofport, address and MAC, across all networks.
	ofports := map[int]string{gw.OFPort: what}
	macs := map[string]string{gw.MAC.String(): what}
	ips := map[netip.Addr]string{}
	names := map[string]bool{}
	keys := map[uint32]string{}
	p.networks = make([]network, 0, len(in.Networks))
	for _, n := range in.Networks {
		nw := network{Network: n, key: hexNum(uint64(n.Key))}
		if err := checkNetwork(n); err != nil {
			return p, err
		}
		if names[n.Name] {
			return p, invalid("two networks are named %q", n.Name)
		}
		names[n.Name] = true
		if o, dup := keys[n.Key]; dup {
			return p, invalid("network %q: key %d already belongs to network %q", n.Name, n.Key, o)
		}
		keys[n.Key] = n.Name
		ips[n.Gateway] = fmt.Sprintf("the gateway of network %q", n.Name)
		for _, c := range n.Containers {
			if c.OFPort == 0 || c.OFPort == -1 {
				continue // not set up by ovs-vswitchd yet
			}
			what := fmt.Sprintf("container port %q (network %q)", c.Name, n.Name)
			if err := checkContainer(what, c, n); err != nil {
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
			nw.containers = append(nw.containers, c)
		}
		slices.SortFunc(nw.containers, func(a, b Port) int { return a.OFPort - b.OFPort })
		p.networks = append(p.networks, nw)
	}
	if err := checkDisjoint(p.networks); err != nil {
		return p, err
	}

	// Tunnels, once every local port's ofport is known. One tunnel port serves every network
	// its peer has a slice of.
	tunnels := map[int]Tunnel{}
	// On flow-based ports: the peer of each remote, and the remote of each peer.
	remotes := map[netip.Addr]Tunnel{}
	peerRemote := map[string]netip.Addr{}
	for i := range p.networks {
		n := &p.networks[i]
		n.tunnels = make([]Tunnel, 0, len(n.Tunnels))
		for _, t := range n.Tunnels {
			if p.viaGateway {
				t.OFPort = 0 // no tunnel port: only the slice matters
				if err := checkSlice(t, n.Network); err != nil {
					return p, err
				}
				n.tunnels = append(n.tunnels, t)
				continue
			}
			if t.OFPort == 0 || t.OFPort == -1 {
				continue
			}
			// Only an error needs the tunnel's description: there are thousands of them.
			what := func() string { return fmt.Sprintf("tunnel port %q (peer %q, network %q)", t.Port, t.Peer, n.Name) }
			if t.OFPort < 1 || t.OFPort > ofportMax {
				return p, invalid("%s: ofport %d out of range 1-%d", what(), t.OFPort, ofportMax)
			}
			o, seen := tunnels[t.OFPort]
			if !seen {
				if o, dup := ofports[t.OFPort]; dup {
					return p, invalid("%s: ofport %d already belongs to %s", what(), t.OFPort, o)
				}
				tunnels[t.OFPort] = t
			} else if o.Port != t.Port || (o.Peer != t.Peer && !(o.Remote.IsValid() && t.Remote.IsValid())) {
				return p, invalid("%s: ofport %d already belongs to tunnel port %q (peer %q)", what(), t.OFPort, o.Port, o.Peer)
			}
			if t.Remote.IsValid() {
				if seen && !o.Remote.IsValid() {
					return p, invalid("%s: ofport %d is a port per peer, not a flow-based one", what(), t.OFPort)
				}
				if err := checkRemote(t, remotes, peerRemote, what); err != nil {
					return p, err
				}
			} else if o.Remote.IsValid() {
				return p, invalid("%s: ofport %d is a flow-based port and needs the peer's remote address", what(), t.OFPort)
			}
			if err := checkSlice(t, n.Network); err != nil {
				return p, err
			}
			n.tunnels = append(n.tunnels, t)
		}
		slices.SortFunc(n.tunnels, func(a, b Tunnel) int { return comparePrefix(a.Subnet, b.Subnet) })
		p.routes += len(n.tunnels)
		for j := 1; j < len(n.tunnels); j++ {
			// Sorted by address: if any two slices overlap, two neighbours do.
			if a, b := n.tunnels[j-1], n.tunnels[j]; a.Subnet.Overlaps(b.Subnet) {
				return p, invalid("network %q: slice %s of tunnel port %q (peer %q) overlaps slice %s of tunnel port %q (peer %q)",
					n.Name, b.Subnet, b.Port, b.Peer, a.Subnet, a.Port, a.Peer)
			}
		}
	}
	p.tunnelPorts = make([]int, 0, len(tunnels))
	for o, t := range tunnels {
		if !t.Remote.IsValid() {
			p.tunnelPorts = append(p.tunnelPorts, o)
		}
	}
	slices.Sort(p.tunnelPorts)
	p.flowPeers = make([]Tunnel, 0, len(remotes))
	for _, t := range remotes {
		p.flowPeers = append(p.flowPeers, Tunnel{Peer: t.Peer, Port: t.Port, OFPort: t.OFPort, Remote: t.Remote})
	}
	slices.SortFunc(p.flowPeers, func(a, b Tunnel) int {
		if a.OFPort != b.OFPort {
			return a.OFPort - b.OFPort
		}
		return a.Remote.Compare(b.Remote)
	})
	if err := p.retiring(in.Retiring, tunnels, ofports); err != nil {
		return p, err
	}
	slices.SortFunc(p.networks, func(a, b network) int { return cmp.Compare(a.Key, b.Key) })
	if d := in.DNS; d.IsValid() {
		if !d.Is4() || slices.ContainsFunc(notUnicast, func(r netip.Prefix) bool { return r.Contains(d) }) {
			return p, invalid("DNS address %s is not unicast IPv4", d)
		}
		for _, n := range p.networks {
			if n.CIDR.Contains(d) {
				return p, invalid("DNS address %s lies in network %q (%s)", d, n.Name, n.CIDR)
			}
		}
		p.dns = d
	}
	return p, nil
}

// retiring fills p's retiring ports from rs: ports the tunnels do not use, whose ofport no
// local port has.
func (p *plan) retiring(rs []Tunnel, tunnels map[int]Tunnel, ofports map[int]string) error {
	if p.viaGateway {
		return nil
	}
	ports := map[int]bool{}
	seen := map[netip.Addr]bool{}
	for _, t := range rs {
		if t.OFPort == 0 || t.OFPort == -1 {
			continue
		}
		if _, used := tunnels[t.OFPort]; used {
			continue
		}
		if t.OFPort < 1 || t.OFPort > ofportMax {
			return invalid("retiring tunnel port %q: ofport %d out of range 1-%d", t.Port, t.OFPort, ofportMax)
		}
		if o, dup := ofports[t.OFPort]; dup {
			return invalid("retiring tunnel port %q: ofport %d already belongs to %s", t.Port, t.OFPort, o)
		}
		if !t.Remote.IsValid() {
			if !ports[t.OFPort] {
				ports[t.OFPort] = true
				p.retiringPorts = append(p.retiringPorts, t.OFPort)
			}
			continue
		}
		if !t.Remote.Is4() {
			return invalid("retiring tunnel port %q: remote %s: want IPv4", t.Port, t.Remote)
		}
		if !seen[t.Remote] {
			seen[t.Remote] = true
			p.retiringPeers = append(p.retiringPeers, Tunnel{Peer: t.Peer, Port: t.Port, OFPort: t.OFPort, Remote: t.Remote})
		}
	}
	slices.Sort(p.retiringPorts)
	slices.SortFunc(p.retiringPeers, func(a, b Tunnel) int {
		if a.OFPort != b.OFPort {
			return a.OFPort - b.OFPort
		}
		return a.Remote.Compare(b.Remote)
	})
	return nil
}

// checkRemote checks the Remote of tunnel t on a flow-based port: a unicast IPv4 address
// (tun_dst and tun_src name the peer), one per peer and one peer per address.
func checkRemote(t Tunnel, remotes map[netip.Addr]Tunnel, peerRemote map[string]netip.Addr, what func() string) error {
	r := t.Remote
	if !r.Is4() || r.IsUnspecified() || r.IsMulticast() || r.IsLoopback() || r == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return invalid("%s: remote %s: want a unicast IPv4 underlay address (flow-based tunnels carry IPv4 only)", what(), r)
	}
	if o, dup := remotes[r]; dup && (o.Peer != t.Peer || o.OFPort != t.OFPort) {
		return invalid("%s: remote %s already belongs to peer %q (ofport %d)", what(), r, o.Peer, o.OFPort)
	}
	if o, dup := peerRemote[t.Peer]; dup && o != r {
		return invalid("%s: peer %q already has remote %s", what(), t.Peer, o)
	}
	remotes[r], peerRemote[t.Peer] = t, r
	return nil
}

// checkSlice checks the peer slice of tunnel t in network n.
func checkSlice(t Tunnel, n Network) error {
	what := func() string { return fmt.Sprintf("tunnel port %q (peer %q, network %q)", t.Port, t.Peer, n.Name) }
	if !isIPv4Net(t.Subnet) {
		return invalid("%s: slice %q: want an IPv4 network address", what(), t.Subnet)
	}
	if !within(n.CIDR, t.Subnet) {
		return invalid("%s: slice %s is not inside the network's CIDR %s", what(), t.Subnet, n.CIDR)
	}
	if t.Subnet.Overlaps(n.Subnet) {
		return invalid("%s: slice %s overlaps the local slice %s", what(), t.Subnet, n.Subnet)
	}
	return nil
}

// checkNetwork checks one network's own prefixes and gateway.
func checkNetwork(n Network) error {
	what := "network " + strconv.Quote(n.Name)
	if n.Name == "" {
		return invalid("a network has no name (CIDR %s)", n.CIDR)
	}
	if !isIPv4Net(n.CIDR) {
		return invalid("%s: CIDR %q: want an IPv4 network address such as 10.50.0.0/16", what, n.CIDR)
	}
	for _, r := range notUnicast {
		if n.CIDR.Overlaps(r) {
			return invalid("%s: CIDR %s overlaps %s, which is not unicast", what, n.CIDR, r)
		}
	}
	if !isIPv4Net(n.Subnet) {
		return invalid("%s: slice %q: want an IPv4 network address such as 10.50.3.0/24", what, n.Subnet)
	}
	if !within(n.CIDR, n.Subnet) {
		return invalid("%s: slice %s is not inside the CIDR %s", what, n.Subnet, n.CIDR)
	}
	if !n.Gateway.Is4() || !n.Subnet.Contains(n.Gateway) || n.Gateway == n.Subnet.Addr() {
		return invalid("%s: gateway %q is not a host address in the slice %s", what, n.Gateway, n.Subnet)
	}
	return nil
}

// checkDisjoint makes sure no two networks overlap (ns in any order; it sorts a copy).
func checkDisjoint(ns []network) error {
	byAddr := slices.Clone(ns)
	slices.SortFunc(byAddr, func(a, b network) int { return comparePrefix(a.CIDR, b.CIDR) })
	for i := 1; i < len(byAddr); i++ {
		// Sorted by address: if any two prefixes overlap, two neighbours do.
		if a, b := byAddr[i-1], byAddr[i]; a.CIDR.Overlaps(b.CIDR) {
			return invalid("network %q: CIDR %s overlaps network %q's %s", b.Name, b.CIDR, a.Name, a.CIDR)
		}
	}
	return nil
}

// checkOFPortMAC checks a local port's ofport and MAC.
func checkOFPortMAC(what string, pt Port) error {
	if pt.OFPort < 1 || pt.OFPort > ofportMax {
		return invalid("%s: ofport %d out of range 1-%d", what, pt.OFPort, ofportMax)
	}
	if len(pt.MAC) != 6 || pt.MAC[0]&1 != 0 || isZero(pt.MAC) {
		return invalid("%s: MAC %q: want a unicast Ethernet address", what, pt.MAC)
	}
	return nil
}

// checkContainer checks a container port of network n.
func checkContainer(what string, c Port, n Network) error {
	if err := checkOFPortMAC(what, c); err != nil {
		return err
	}
	if !c.IP.Is4() || !n.Subnet.Contains(c.IP) {
		return invalid("%s: address %q is not an IPv4 address in the slice %s", what, c.IP, n.Subnet)
	}
	if c.IP == n.Subnet.Addr() {
		return invalid("%s: address %s is the slice's network address", what, c.IP)
	}
	return nil
}

func isIPv4Net(p netip.Prefix) bool { return p.IsValid() && p.Addr().Is4() && p == p.Masked() }

// comparePrefix orders prefixes by address, then length.
func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
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

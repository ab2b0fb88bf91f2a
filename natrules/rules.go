package natrules

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
	"strings"
)

// DefaultTable is the name of the nftables table (family ip) that fabricd owns
// when Rules.Table is empty.
const DefaultTable = "ovsfabric"

// Protocols accepted in Publish.Proto.
const (
	ProtoTCP = "tcp"
	ProtoUDP = "udp"
)

// ErrInvalid is wrapped by every error Validate returns, so callers can tell
// bad input (errors.Is(err, ErrInvalid)) from kernel failures.
var ErrInvalid = errors.New("invalid NAT rules")

// Publish is one published port: connections to HostAddr:HostPort/Proto on
// this host are DNATed to ContainerIP:ContainerPort.
type Publish struct {
	// Proto is "tcp" or "udp".
	Proto string
	// HostAddr is the host address to match (normally the host's underlay
	// address). The zero value or 0.0.0.0 means any address local to the host.
	HostAddr netip.Addr
	// HostPort is the port on the host, 1..65535.
	HostPort uint16
	// ContainerIP is the container's address; it must be inside the CIDR of one of
	// Rules.Networks, and that network must not be internal.
	ContainerIP netip.Addr
	// ContainerPort is the port in the container, 1..65535.
	ContainerPort uint16
	// Container names the container in rule comments and logs only. It is
	// sanitized (printable ASCII without spaces and quotes) and may be
	// shortened to keep the comment within nft's 128-byte limit.
	Container string
}

// Network is one of the fabric's networks as the NAT and filter rules see it.
type Network struct {
	// Name names the network in rule comments: a letter or digit followed by up to
	// MaxNetworkName-1 letters, digits, '.', '_' or '-'. Unique among Rules.Networks.
	Name string
	// CIDR is the network's address space (e.g. 10.244.0.0/16), IPv4. Host bits, if any,
	// are ignored. The CIDRs of two networks never overlap.
	CIDR netip.Prefix
	// Slice is this host's slice of CIDR (e.g. 10.244.3.0/24): the source of the traffic
	// this host masquerades. Zero when this host serves no slice of the network; its
	// isolation rules apply all the same. Host bits, if any, are ignored.
	Slice netip.Prefix
	// Internal networks have no egress: no masquerade, no published ports, and the host
	// forwards nothing out of the network nor into it from outside.
	Internal bool
}

// MaxNetworkName is the longest Network.Name (network.MaxNameLen).
const MaxNetworkName = 32

var networkNameRE = regexp.MustCompile(fmt.Sprintf(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,%d}$`, MaxNetworkName-1))

// Rules is the complete desired content of fabricd's table: NAT and the isolation of the
// networks in the host's forwarding path.
type Rules struct {
	// Table is the nftables table name (family ip); empty means DefaultTable.
	Table string
	// Networks are the fabric's networks. Forwarding between two of them is dropped,
	// whatever the routes say; an internal one forwards only within itself. Order does
	// not matter.
	Networks []Network
	// Masquerade enables SNAT (masquerade) of traffic from the slice of each non-internal
	// network to destinations outside every network's CIDR (a host-wide switch: off when
	// the underlay routes container addresses). Traffic between networks' addresses keeps
	// its source address.
	Masquerade bool
	// Publish lists the published ports. Order does not matter.
	Publish []Publish
	// WireGuard is the WireGuard interface of an encrypted fabric ("" for none). What
	// arrives on it, forwarded or for the host itself, must go from one address of a network
	// to another of the same network: WireGuard authenticates the sending host (its source
	// lies in that host's slices) but not the network the destination belongs to, which is
	// what the tunnel key checked without encryption.
	WireGuard string
}

var ifNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

var tableNameRE = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_]{0,63}$`)

// tableName returns the effective table name.
func (r Rules) tableName() string {
	if r.Table == "" {
		return DefaultTable
	}
	return r.Table
}

func validateTableName(name string) error {
	if !tableNameRE.MatchString(name) {
		return fmt.Errorf("%w: table name %q: want a letter followed by up to 63 letters, digits or underscores", ErrInvalid, name)
	}
	return nil
}

// hostAddr returns the normalized host address of p: invalid (any local
// address) for the zero value and 0.0.0.0, the unmapped address otherwise.
func (p Publish) hostAddr() netip.Addr {
	a := p.HostAddr.Unmap()
	if a.IsValid() && a.Is4() && a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

func (p Publish) hostString() string {
	if a := p.hostAddr(); a.IsValid() {
		return fmt.Sprintf("%s:%d", a, p.HostPort)
	}
	return fmt.Sprintf("*:%d", p.HostPort)
}

// String describes p the way rule comments do, e.g.
// "tcp *:8080 -> web1 10.244.3.2:80".
func (p Publish) String() string {
	target := fmt.Sprintf("%s:%d", p.ContainerIP.Unmap(), p.ContainerPort)
	if name := sanitizeName(p.Container); name != "" {
		target = name + " " + target
	}
	return fmt.Sprintf("%s %s -> %s", p.Proto, p.hostString(), target)
}

// Validate checks r without touching the kernel. It reports every problem
// found, joined; the returned error wraps ErrInvalid. Checked: the table name;
// each network's name (well-formed, unique), CIDR (valid IPv4 prefix, not /0,
// overlapping no other network's) and slice (IPv4, inside the CIDR); for each
// published port the protocol ("tcp" or "udp"), host and container ports
// (1..65535), host address (IPv4, not loopback or multicast), container IP
// (IPv4 inside the CIDR of a network that is not internal); and that no two
// entries claim the same (proto, host address, host port), where "any address"
// overlaps every specific address.
func (r Rules) Validate() error {
	_, err := r.validate()
	return err
}

// validate is Validate, returning the normalized networks as well.
func (r Rules) validate() ([]Network, error) {
	var errs []error
	if err := validateTableName(r.tableName()); err != nil {
		errs = append(errs, err)
	}
	nets, netErrs := r.networks()
	errs = append(errs, netErrs...)
	if w := r.WireGuard; w != "" && !ifNameRE.MatchString(w) {
		errs = append(errs, fmt.Errorf("%w: WireGuard interface %q: want 1-15 letters, digits, '.', '_' or '-'", ErrInvalid, w))
	}
	type key struct {
		proto string
		port  uint16
	}
	seen := map[key][]int{} // indexes of earlier entries with the same proto and port
	for i, p := range r.Publish {
		bad := func(format string, args ...any) {
			where := fmt.Sprintf("publish[%d]", i)
			if p.Container != "" {
				where += fmt.Sprintf(" (%s)", p.Container)
			}
			errs = append(errs, fmt.Errorf("%s: "+format, append([]any{where}, args...)...))
		}
		if p.Proto != ProtoTCP && p.Proto != ProtoUDP {
			bad("proto %q: must be %q or %q", p.Proto, ProtoTCP, ProtoUDP)
		}
		if p.HostPort == 0 {
			bad("host port 0: must be 1..65535")
		}
		if p.ContainerPort == 0 {
			bad("container port 0: must be 1..65535")
		}
		if a := p.hostAddr(); a.IsValid() {
			switch {
			case !a.Is4():
				bad("host address %s: must be IPv4 (the table is family ip)", a)
			case a.IsLoopback():
				bad("host address %s: loopback cannot be published (DNAT from loopback to a container is not routable)", a)
			case a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
				bad("host address %s: must be a unicast address of the host", a)
			}
		}
		c := p.ContainerIP.Unmap()
		switch n, found := networkOf(nets, c); {
		case !c.IsValid():
			bad("container IP is missing")
		case !c.Is4():
			bad("container IP %s: must be IPv4 (the table is family ip)", c)
		case c.IsUnspecified():
			bad("container IP %s: must be a container address", c)
		case len(netErrs) > 0:
			// The networks are broken; which one c is on is not known.
		case !found:
			bad("container IP %s: not inside any network (%s)", c, cidrList(nets))
		case n.Internal:
			bad("container IP %s is on the internal network %s: internal networks have no published ports", c, n.Name)
		}
		k := key{p.Proto, p.HostPort}
		for _, j := range seen[k] {
			q := r.Publish[j]
			if a, b := p.hostAddr(), q.hostAddr(); a == b || !a.IsValid() || !b.IsValid() {
				bad("%s %s conflicts with publish[%d] (%s)", p.Proto, p.hostString(), j, q.String())
				break
			}
		}
		seen[k] = append(seen[k], i)
	}
	if len(errs) > 0 {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return nets, nil
}

// networks validates r.Networks and returns them normalized (CIDR and slice masked and
// unmapped) and sorted by CIDR, with every problem found.
func (r Rules) networks() ([]Network, []error) {
	var errs []error
	out := make([]Network, 0, len(r.Networks))
	names := map[string]bool{}
	for i, n := range r.Networks {
		bad := func(format string, args ...any) {
			where := fmt.Sprintf("network[%d]", i)
			if n.Name != "" {
				where = fmt.Sprintf("network %q", n.Name)
			}
			errs = append(errs, fmt.Errorf("%s: "+format, append([]any{where}, args...)...))
		}
		switch {
		case !networkNameRE.MatchString(n.Name):
			bad("name: want a letter or digit followed by up to %d letters, digits, '.', '_' or '-'", MaxNetworkName-1)
		case names[n.Name]:
			bad("name given twice")
		}
		names[n.Name] = true
		cidr, err := ipv4Prefix("CIDR", n.CIDR)
		if err != nil {
			bad("%v", err)
			continue
		}
		if cidr.Bits() == 0 {
			bad("CIDR %s: /0 would make every destination part of the network", cidr)
			continue
		}
		n.CIDR = cidr
		if n.Slice.IsValid() {
			slice, err := ipv4Prefix("slice", n.Slice)
			switch {
			case err != nil:
				bad("%v", err)
			case slice.Bits() < cidr.Bits() || !cidr.Contains(slice.Addr()):
				bad("slice %s is not inside the CIDR %s", slice, cidr)
			}
			n.Slice = slice
		}
		out = append(out, n)
	}
	slices.SortFunc(out, func(a, b Network) int { return comparePrefix(a.CIDR, b.CIDR) })
	// Prefixes nest or are disjoint, and sorted by address an overlapping pair
	// has the earlier one holding the later one's first address; of the earlier
	// ones, the one reaching furthest holds it if any does.
	reach := -1
	for i, n := range out {
		if reach >= 0 && out[reach].CIDR.Contains(n.CIDR.Addr()) {
			errs = append(errs, fmt.Errorf("network %q: CIDR %s overlaps %s of network %q", n.Name, n.CIDR, out[reach].CIDR, out[reach].Name))
		}
		if reach < 0 || lastAddr(n.CIDR) > lastAddr(out[reach].CIDR) {
			reach = i
		}
	}
	return out, errs
}

// ipv4Prefix validates and normalizes an IPv4 prefix (v4-mapped forms are unmapped, host
// bits cleared).
func ipv4Prefix(what string, p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("%s is missing", what)
	}
	if !p.Addr().Is4() && !p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("%s %s: must be IPv4 (the table is family ip)", what, p)
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("%s %s: must be IPv4 (the table is family ip)", what, p)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	return p.Masked(), nil
}

func comparePrefix(a, b netip.Prefix) int {
	if c := a.Addr().Compare(b.Addr()); c != 0 {
		return c
	}
	return a.Bits() - b.Bits()
}

// lastAddr is the last address of IPv4 prefix p as a number.
func lastAddr(p netip.Prefix) uint32 {
	a := p.Addr().As4()
	return binary.BigEndian.Uint32(a[:]) | uint32(uint64(1)<<(32-p.Bits())-1)
}

// networkOf finds the network whose CIDR holds a among nets, sorted by CIDR
// and not overlapping.
func networkOf(nets []Network, a netip.Addr) (Network, bool) {
	// The last network starting at or before a is the only one that can hold it.
	i, found := slices.BinarySearchFunc(nets, a, func(n Network, a netip.Addr) int { return n.CIDR.Addr().Compare(a) })
	if !found {
		i--
	}
	if i >= 0 && nets[i].CIDR.Contains(a) {
		return nets[i], true
	}
	return Network{}, false
}

func cidrList(nets []Network) string {
	if len(nets) == 0 {
		return "no networks given"
	}
	var b strings.Builder
	for i, n := range nets {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "%s %s", n.Name, n.CIDR)
	}
	return b.String()
}

// normalized returns a validated copy of r with the table name filled in, the
// prefixes masked, addresses unmapped, Networks sorted by CIDR and Publish sorted, so that equal rule sets
// produce identical tables regardless of input order.
func (r Rules) normalized() (Rules, error) {
	nets, err := r.validate()
	if err != nil {
		return Rules{}, err
	}
	out := Rules{Table: r.tableName(), Masquerade: r.Masquerade, WireGuard: r.WireGuard}
	if len(nets) > 0 {
		out.Networks = nets
	}
	for _, p := range r.Publish {
		p.HostAddr = p.hostAddr()
		p.ContainerIP = p.ContainerIP.Unmap()
		out.Publish = append(out.Publish, p)
	}
	slices.SortFunc(out.Publish, comparePublish)
	return out, nil
}

func comparePublish(a, b Publish) int {
	if a.Proto != b.Proto {
		if a.Proto < b.Proto {
			return -1
		}
		return 1
	}
	if a.HostPort != b.HostPort {
		return int(a.HostPort) - int(b.HostPort)
	}
	return a.HostAddr.Compare(b.HostAddr)
}

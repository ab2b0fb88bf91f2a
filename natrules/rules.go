package natrules

import (
	"errors"
	"fmt"
	"net/netip"
	"regexp"
	"slices"
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
	// ContainerIP is the container's address; it must be in the cluster CIDR.
	ContainerIP netip.Addr
	// ContainerPort is the port in the container, 1..65535.
	ContainerPort uint16
	// Container names the container in rule comments and logs only. It is
	// sanitized (printable ASCII without spaces and quotes) and may be
	// shortened to keep the comment within nft's 128-byte limit.
	Container string
}

// Rules is the complete desired content of fabricd's NAT table.
type Rules struct {
	// Table is the nftables table name (family ip); empty means DefaultTable.
	Table string
	// ClusterCIDR is the container address space (e.g. 10.244.0.0/16). Host
	// bits, if any, are ignored. Required.
	ClusterCIDR netip.Prefix
	// Masquerade enables SNAT (masquerade) of traffic from ClusterCIDR to
	// destinations outside ClusterCIDR. Traffic between cluster addresses keeps
	// its source address.
	Masquerade bool
	// Publish lists the published ports. Order does not matter.
	Publish []Publish
}

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
// the cluster CIDR (valid IPv4 prefix, not /0); for each published port the
// protocol ("tcp" or "udp"), host and container ports (1..65535), host address
// (IPv4, not loopback or multicast), container IP (IPv4 inside the cluster
// CIDR); and that no two entries claim the same (proto, host address, host
// port), where "any address" overlaps every specific address.
func (r Rules) Validate() error {
	var errs []error
	if err := validateTableName(r.tableName()); err != nil {
		errs = append(errs, err)
	}
	cidr, cidrErr := clusterCIDR(r.ClusterCIDR)
	if cidrErr != nil {
		errs = append(errs, cidrErr)
	}
	type key struct {
		proto string
		port  uint16
	}
	seen := map[key][]int{} // indexes of earlier entries with the same proto and port
	for i, p := range r.Publish {
		where := fmt.Sprintf("publish[%d]", i)
		if p.Container != "" {
			where += fmt.Sprintf(" (%s)", p.Container)
		}
		bad := func(format string, args ...any) {
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
		switch {
		case !c.IsValid():
			bad("container IP is missing")
		case !c.Is4():
			bad("container IP %s: must be IPv4 (the table is family ip)", c)
		case c.IsUnspecified():
			bad("container IP %s: must be a container address", c)
		case cidrErr == nil && !cidr.Contains(c):
			bad("container IP %s: not inside the cluster CIDR %s", c, cidr)
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
		return fmt.Errorf("%w: %w", ErrInvalid, errors.Join(errs...))
	}
	return nil
}

// clusterCIDR validates and normalizes the cluster CIDR.
func clusterCIDR(p netip.Prefix) (netip.Prefix, error) {
	if !p.IsValid() {
		return netip.Prefix{}, fmt.Errorf("cluster CIDR is missing")
	}
	if !p.Addr().Is4() && !p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("cluster CIDR %s: must be IPv4 (the table is family ip)", p)
	}
	if p.Addr().Is4In6() {
		if p.Bits() < 96 {
			return netip.Prefix{}, fmt.Errorf("cluster CIDR %s: must be IPv4 (the table is family ip)", p)
		}
		p = netip.PrefixFrom(p.Addr().Unmap(), p.Bits()-96)
	}
	if p.Bits() == 0 {
		return netip.Prefix{}, fmt.Errorf("cluster CIDR %s: /0 would make every destination part of the cluster", p)
	}
	return p.Masked(), nil
}

// normalized returns a validated copy of r with the table name filled in, the
// CIDR masked, addresses unmapped and Publish sorted, so that equal rule sets
// produce identical tables regardless of input order.
func (r Rules) normalized() (Rules, error) {
	if err := r.Validate(); err != nil {
		return Rules{}, err
	}
	out := Rules{Table: r.tableName(), Masquerade: r.Masquerade}
	out.ClusterCIDR, _ = clusterCIDR(r.ClusterCIDR)
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

package network

import (
	"fmt"
	"hash/fnv"
	"net/netip"

	"github.com/ovsfabric/ovsfabric/api"
)

// Limits of host slices.
const (
	// MaxHostBits is the longest slice prefix: a /30 holds a gateway and one container.
	MaxHostBits = 30
	// maxSlicesBits bounds the slices of one network to 2^20 (as fabric bounds the
	// cluster CIDR's subnets), so that picking a slice stays cheap.
	maxSlicesBits = 20
)

// reserved are IPv4 ranges no network may use: "this network", loopback, link-local,
// multicast and the reserved class E (with the limited broadcast).
var reserved = []netip.Prefix{
	netip.MustParsePrefix("0.0.0.0/8"),
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("224.0.0.0/3"),
}

// DefaultHostBits is the slice length chosen when a Spec leaves HostBits 0: a /24 per host
// for subnets of a /20 or larger (at least 16 slices of 253 containers), else the subnet's
// own length + 4 (16 slices), at most MaxHostBits.
func DefaultHostBits(subnet netip.Prefix) int {
	if subnet.Bits() <= 20 {
		return 24
	}
	return min(subnet.Bits()+4, MaxHostBits)
}

// ValidName checks a network name: a DNS label (lower case letters, digits and '-', not
// starting or ending with '-') of at most MaxNameLen bytes. Default is a valid name (it is
// the cluster CIDR's network), which Spec.Validate refuses separately.
func ValidName(name string) error {
	if name == "" || len(name) > MaxNameLen {
		return fmt.Errorf("network name %q must be 1 to %d characters", name, MaxNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' && i > 0 && i < len(name)-1:
		default:
			return fmt.Errorf("network name %q is not a DNS label (lower case letters, digits, '-' inside)", name)
		}
	}
	return nil
}

// checkParams checks the parameters of a network that need no other network: an IPv4
// network address outside the reserved ranges, a slice length in (subnet bits,
// MaxHostBits] giving at most 2^20 slices, and a key in 1..MaxKey (0 when key0 is set,
// for a spec that lets the key be chosen).
func checkParams(subnet netip.Prefix, hostBits int, key uint32, key0 bool) error {
	if !subnet.IsValid() {
		return fmt.Errorf("no subnet")
	}
	if !subnet.Addr().Is4() {
		return fmt.Errorf("subnet %s: only IPv4 is supported", subnet)
	}
	if m := subnet.Masked(); m != subnet {
		return fmt.Errorf("subnet %s is not a network address: did you mean %s?", subnet, m)
	}
	for _, r := range reserved {
		if r.Overlaps(subnet) {
			return fmt.Errorf("subnet %s overlaps the reserved range %s", subnet, r)
		}
	}
	if hostBits <= subnet.Bits() || hostBits > MaxHostBits {
		return fmt.Errorf("host prefix /%d must be longer than the subnet %s and at most /%d", hostBits, subnet, MaxHostBits)
	}
	if hostBits-subnet.Bits() > maxSlicesBits {
		return fmt.Errorf("host prefix /%d splits %s into more than 2^%d slices", hostBits, subnet, maxSlicesBits)
	}
	if key > MaxKey || (key == 0 && !key0) {
		return fmt.Errorf("tunnel key %d not in 1-%d", key, MaxKey)
	}
	return nil
}

// Validate checks s against the networks that exist (Default's cluster CIDR among them,
// as the caller passes it): it returns an error wrapping api.ErrInvalid for a bad name,
// subnet, host prefix or key, and one wrapping api.ErrConflict, naming the other network,
// when the name exists, the subnet overlaps another network's or the key is taken.
// HostBits 0 and Key 0 are valid (they are chosen: see Complete).
func (s Spec) Validate(existing []Network) error {
	if err := ValidName(s.Name); err != nil {
		return api.Errorf(api.ErrInvalid, "%w", err)
	}
	if s.Name == Default {
		return api.Errorf(api.ErrInvalid, "network %q is the cluster CIDR's and cannot be created", Default)
	}
	hb := s.HostBits
	if hb == 0 && s.Subnet.IsValid() {
		hb = DefaultHostBits(s.Subnet)
	}
	if err := checkParams(s.Subnet, hb, s.Key, true); err != nil {
		return api.Errorf(api.ErrInvalid, "network %s: %w", s.Name, err)
	}
	for _, n := range existing {
		switch {
		case n.Name == s.Name:
			return api.Errorf(api.ErrConflict, "network %s already exists (subnet %s, created by %s)", s.Name, n.Subnet, n.Origin)
		case n.Subnet.Overlaps(s.Subnet):
			return api.Errorf(api.ErrConflict, "network %s: subnet %s overlaps network %s (%s)", s.Name, s.Subnet, n.Name, n.Subnet)
		case s.Key != 0 && n.Key == s.Key:
			return api.Errorf(api.ErrConflict, "network %s: tunnel key %d is network %s's", s.Name, s.Key, n.Name)
		}
	}
	return nil
}

// Complete validates s against existing (see Validate) and returns it with HostBits and
// Key chosen when 0: DefaultHostBits, and AutoKey avoiding the keys in used (every key the
// fabric knows of, also those of networks not served) and those of existing.
func (s Spec) Complete(existing []Network, used map[uint32]bool) (Spec, error) {
	if err := s.Validate(existing); err != nil {
		return Spec{}, err
	}
	if s.HostBits == 0 {
		s.HostBits = DefaultHostBits(s.Subnet)
	}
	if s.Key == 0 {
		taken := func(k uint32) bool {
			if used[k] {
				return true
			}
			for _, n := range existing {
				if n.Key == k {
					return true
				}
			}
			return false
		}
		k, err := AutoKey(s.Name, taken)
		if err != nil {
			return Spec{}, api.Errorf(api.ErrConflict, "network %s: %w", s.Name, err)
		}
		s.Key = k
	}
	return s, nil
}

// AutoKey chooses a tunnel key for a network named name: a slot derived from the name by
// FNV-1a, then the next free one (linear probing over taken). Deriving it from the name
// keeps two hosts creating different networks at once from picking the same key unless
// their names collide on the hash (about one chance in 16 million); the resolution rules
// then decide.
func AutoKey(name string, taken func(uint32) bool) (uint32, error) {
	h := fnv.New32a()
	h.Write([]byte(name))
	start := h.Sum32() % MaxKey
	for i := uint32(0); i < MaxKey; i++ {
		k := (start+i)%MaxKey + 1
		if !taken(k) {
			return k, nil
		}
	}
	return 0, fmt.Errorf("every tunnel key is taken")
}

// Network is the definition of s created by origin at Lamport time created; s must be
// complete (see Complete).
func (s Spec) Network(origin string, created uint64) Network {
	return Network{Name: s.Name, Subnet: s.Subnet, HostBits: s.HostBits, Key: s.Key, Internal: s.Internal, Origin: origin, Created: created}
}

// Matches reports whether n is what s asks for: same subnet and internal flag, and same
// host prefix and key unless s leaves them to be chosen. A create that matches an existing
// network is answered with it (creates are idempotent).
func (s Spec) Matches(n Network) bool {
	hb := s.HostBits
	if hb == 0 {
		hb = DefaultHostBits(s.Subnet)
	}
	return s.Name == n.Name && s.Subnet == n.Subnet && hb == n.HostBits && (s.Key == 0 || s.Key == n.Key) && s.Internal == n.Internal
}

// Precedes reports whether definition a comes before b in the fabric-wide creation order:
// the lower Created, then the lower Origin (as registry.Precedes orders records).
func (n Network) Precedes(b Network) bool {
	if n.Created != b.Created {
		return n.Created < b.Created
	}
	return n.Origin < b.Origin
}

// Same reports whether a and b are the same definition: same name, origin and creation
// time (a copy of a definition held by another host is the same definition).
func (n Network) Same(b Network) bool {
	return n.Name == b.Name && n.Origin == b.Origin && n.Created == b.Created
}

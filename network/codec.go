package network

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// The one codec of networks: the same compact JSON is a registry record's value and an
// OVSDB external_ids value. Versioning is by adding keys only: decoders ignore keys they
// do not know, and reject missing or bad values of the keys they do.
//
//	network definition  {"s":"10.50.0.0/16","h":24,"k":4242,"i":true,"o":"h1","c":17}
//	slice               {"p":"10.50.3.0/24","q":21}
//	removal             {"o":"h1","c":17}
//
// The name is the record's key (or the external_ids key's suffix), the slice's node its
// record's origin. A definition carries its creator (o) and creation time (c) because
// every host that serves the network holds a copy of it under its own origin.

// External_ids keys of the Open_vSwitch row that persist this host's records; the suffix
// is the network's name.
const (
	// KeyNetPrefix + NAME is this host's copy of network NAME's definition.
	KeyNetPrefix = "ovsfabric-net."
	// KeySlicePrefix + NAME is this host's slice of network NAME.
	KeySlicePrefix = "ovsfabric-slice."
	// KeyRemovedPrefix + NAME is this host's record that network NAME was removed.
	KeyRemovedPrefix = "ovsfabric-net-removed."
)

// maxValueLen bounds encoded values; real ones are below 150 bytes.
const maxValueLen = 1024

// maxOriginLen bounds node names (as the registry does).
const maxOriginLen = 256

// netJSON is the wire form of a definition.
type netJSON struct {
	Subnet   string `json:"s"`
	HostBits int    `json:"h"`
	Key      uint32 `json:"k"`
	Internal bool   `json:"i,omitempty"`
	Origin   string `json:"o"`
	Created  uint64 `json:"c"`
}

// Encode returns n's value (its name is the key).
func (n Network) Encode() []byte {
	b, _ := json.Marshal(netJSON{Subnet: n.Subnet.String(), HostBits: n.HostBits, Key: n.Key, Internal: n.Internal, Origin: n.Origin, Created: n.Created})
	return b
}

// DecodeNetwork decodes the definition of network name from its value, checking every
// field (it decodes gossip from other hosts).
func DecodeNetwork(name string, value []byte) (Network, error) {
	if err := ValidName(name); err != nil {
		return Network{}, err
	}
	if name == Default {
		return Network{}, fmt.Errorf("network %q cannot be defined", Default)
	}
	var j netJSON
	if err := decode(value, &j); err != nil {
		return Network{}, fmt.Errorf("network %s: %w", name, err)
	}
	subnet, err := parsePrefix(j.Subnet)
	if err != nil {
		return Network{}, fmt.Errorf("network %s: %w", name, err)
	}
	if err := checkParams(subnet, j.HostBits, j.Key, false); err != nil {
		return Network{}, fmt.Errorf("network %s: %w", name, err)
	}
	if err := checkOrigin(j.Origin); err != nil {
		return Network{}, fmt.Errorf("network %s: %w", name, err)
	}
	if j.Created == 0 || j.Created >= maxStamp {
		return Network{}, fmt.Errorf("network %s: creation time %d out of range", name, j.Created)
	}
	return Network{Name: name, Subnet: subnet, HostBits: j.HostBits, Key: j.Key, Internal: j.Internal, Origin: j.Origin, Created: j.Created}, nil
}

// sliceJSON is the wire form of a slice.
type sliceJSON struct {
	Prefix string `json:"p"`
	Seq    uint64 `json:"q"`
}

// Encode returns s's value (its network is the key, its node the record's origin).
func (s Slice) Encode() []byte {
	b, _ := json.Marshal(sliceJSON{Prefix: s.Prefix.String(), Seq: s.Seq})
	return b
}

// DecodeSlice decodes node's slice of network from its value. Whether the prefix is a
// slice of the network is checked against the definition (see Network.HasSlice).
func DecodeSlice(network, node string, value []byte) (Slice, error) {
	if err := ValidName(network); err != nil {
		return Slice{}, err
	}
	if err := checkOrigin(node); err != nil {
		return Slice{}, err
	}
	var j sliceJSON
	if err := decode(value, &j); err != nil {
		return Slice{}, fmt.Errorf("slice of %s: %w", network, err)
	}
	p, err := parsePrefix(j.Prefix)
	if err != nil {
		return Slice{}, fmt.Errorf("slice of %s: %w", network, err)
	}
	if !p.Addr().Is4() || p.Masked() != p || p.Bits() > MaxHostBits {
		return Slice{}, fmt.Errorf("slice of %s: %s is not an IPv4 network address of at most /%d", network, p, MaxHostBits)
	}
	if j.Seq == 0 || j.Seq >= maxStamp {
		return Slice{}, fmt.Errorf("slice of %s: sequence %d out of range", network, j.Seq)
	}
	return Slice{Network: network, Node: node, Prefix: p, Seq: j.Seq}, nil
}

// Removal says that network Name was removed: every definition of the name up to
// (Created, Origin) in the creation order is dead (see Resolve).
type Removal struct {
	Name    string
	Origin  string
	Created uint64
}

// Covers reports whether the removal kills definition n.
func (r Removal) Covers(n Network) bool {
	return n.Name == r.Name && !r.mark().Precedes(n)
}

// mark is the last definition the removal covers, as a Network for Precedes.
func (r Removal) mark() Network { return Network{Name: r.Name, Origin: r.Origin, Created: r.Created} }

type removalJSON struct {
	Origin  string `json:"o"`
	Created uint64 `json:"c"`
}

// Encode returns r's value (its name is the key).
func (r Removal) Encode() []byte {
	b, _ := json.Marshal(removalJSON{Origin: r.Origin, Created: r.Created})
	return b
}

// DecodeRemoval decodes the removal of network name from its value.
func DecodeRemoval(name string, value []byte) (Removal, error) {
	if err := ValidName(name); err != nil {
		return Removal{}, err
	}
	var j removalJSON
	if err := decode(value, &j); err != nil {
		return Removal{}, fmt.Errorf("removal of %s: %w", name, err)
	}
	if err := checkOrigin(j.Origin); err != nil {
		return Removal{}, fmt.Errorf("removal of %s: %w", name, err)
	}
	if j.Created == 0 || j.Created >= maxStamp {
		return Removal{}, fmt.Errorf("removal of %s: creation time %d out of range", name, j.Created)
	}
	return Removal{Name: name, Origin: j.Origin, Created: j.Created}, nil
}

// maxStamp bounds Lamport times (the registry's bound).
const maxStamp = 1 << 62

func decode(value []byte, v any) error {
	if len(value) == 0 || len(value) > maxValueLen {
		return fmt.Errorf("value of %d bytes not in 1-%d", len(value), maxValueLen)
	}
	if err := json.Unmarshal(value, v); err != nil {
		return fmt.Errorf("bad value: %w", err)
	}
	return nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("bad prefix %q", s)
	}
	return p, nil
}

func checkOrigin(o string) error {
	if o == "" || len(o) > maxOriginLen || !utf8.ValidString(o) {
		return fmt.Errorf("bad host name %q", o)
	}
	return nil
}

// Persisted is what the Open_vSwitch row's external_ids hold of this host's records.
type Persisted struct {
	// Networks are this host's copies of definitions, by name.
	Networks map[string]Network
	// Slices are this host's slices (Node left empty: the host's), by network.
	Slices map[string]Slice
	// Removals are this host's removal records, by name.
	Removals map[string]Removal
}

// ParsePersisted decodes this host's records from the Open_vSwitch external_ids (other
// keys are ignored); node is this host's name. Keys that do not decode are returned as
// errors (one per key) and left out: a damaged key loses that record, not the others.
func ParsePersisted(node string, ids map[string]string) (Persisted, []error) {
	p := Persisted{Networks: map[string]Network{}, Slices: map[string]Slice{}, Removals: map[string]Removal{}}
	var errs []error
	for k, v := range ids {
		switch {
		case strings.HasPrefix(k, KeyNetPrefix):
			n, err := DecodeNetwork(k[len(KeyNetPrefix):], []byte(v))
			if err != nil {
				errs = append(errs, fmt.Errorf("external_ids:%s: %w", k, err))
				continue
			}
			p.Networks[n.Name] = n
		case strings.HasPrefix(k, KeySlicePrefix):
			s, err := DecodeSlice(k[len(KeySlicePrefix):], node, []byte(v))
			if err != nil {
				errs = append(errs, fmt.Errorf("external_ids:%s: %w", k, err))
				continue
			}
			p.Slices[s.Network] = s
		case strings.HasPrefix(k, KeyRemovedPrefix):
			r, err := DecodeRemoval(k[len(KeyRemovedPrefix):], []byte(v))
			if err != nil {
				errs = append(errs, fmt.Errorf("external_ids:%s: %w", k, err))
				continue
			}
			p.Removals[r.Name] = r
		}
	}
	return p, errs
}

// Encode returns p as external_ids keys and values.
func (p Persisted) Encode() map[string]string {
	out := make(map[string]string, len(p.Networks)+len(p.Slices)+len(p.Removals))
	for name, n := range p.Networks {
		out[KeyNetPrefix+name] = string(n.Encode())
	}
	for name, s := range p.Slices {
		out[KeySlicePrefix+name] = string(s.Encode())
	}
	for name, r := range p.Removals {
		out[KeyRemovedPrefix+name] = string(r.Encode())
	}
	return out
}

// isOwnKey reports whether k is one of the keys Persisted encodes.
func isOwnKey(k string) bool {
	return strings.HasPrefix(k, KeyNetPrefix) || strings.HasPrefix(k, KeySlicePrefix) || strings.HasPrefix(k, KeyRemovedPrefix)
}

package registry

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"unicode/utf8"
)

// Kind says what a record describes. Kinds are small constants (1 to MaxKind); the value's
// typed codec lives with its concept, the registry stores encoded bytes.
type Kind uint8

// Kinds known today. Other values up to MaxKind are valid too, for later concepts.
const (
	// KindNetwork is a network definition, keyed by network name.
	KindNetwork Kind = 1
	// KindSlice is one host's slice of a network, keyed by network name.
	KindSlice Kind = 2
	// KindEndpoint is one container interface on one network.
	KindEndpoint Kind = 3
	// KindNetworkRemoved is a host's record that a network was removed, keyed by network
	// name (package network: every host that held the network writes one, so that the
	// removal outlives the host that ran it).
	KindNetworkRemoved Kind = 4
	// MaxKind is the largest valid kind (kinds fit a KindSet).
	MaxKind Kind = 63
)

// Valid reports whether k is a usable kind (1 to MaxKind).
func (k Kind) Valid() bool { return k >= 1 && k <= MaxKind }

// String names the known kinds and numbers the others.
func (k Kind) String() string {
	switch k {
	case KindNetwork:
		return "network"
	case KindSlice:
		return "slice"
	case KindEndpoint:
		return "endpoint"
	case KindNetworkRemoved:
		return "network-removed"
	}
	return fmt.Sprintf("kind%d", uint8(k))
}

// KindSet is a set of kinds, one bit per kind.
type KindSet uint64

// KindsOf returns the set of the given kinds (invalid ones are left out).
func KindsOf(kinds ...Kind) KindSet {
	var s KindSet
	for _, k := range kinds {
		if k.Valid() {
			s |= 1 << k
		}
	}
	return s
}

// Has reports whether k is in s.
func (s KindSet) Has(k Kind) bool { return k.Valid() && s&(1<<k) != 0 }

// String lists the kinds in s, e.g. "network,endpoint".
func (s KindSet) String() string {
	var names []string
	for k := Kind(1); k <= MaxKind; k++ {
		if s.Has(k) {
			names = append(names, k.String())
		}
	}
	return strings.Join(names, ",")
}

// Version orders the writes of one origin: the origin's incarnation (a counter the host
// persists and raises at every start) in the high 32 bits and a sequence number, starting
// at 1 in each incarnation and raised by one per write, in the low 32 bits. Versions of
// different origins are not comparable.
type Version uint64

// MakeVersion returns the version of write seq in incarnation inc.
func MakeVersion(inc, seq uint32) Version { return Version(uint64(inc)<<32 | uint64(seq)) }

// Incarnation is the origin incarnation that wrote v.
func (v Version) Incarnation() uint32 { return uint32(v >> 32) }

// Seq is v's sequence number within its incarnation (0 only in the zero version of an
// incarnation, which no record carries).
func (v Version) Seq() uint32 { return uint32(v) }

// String formats v as "incarnation.seq".
func (v Version) String() string { return fmt.Sprintf("%d.%d", v.Incarnation(), v.Seq()) }

// next is the version after v in the same incarnation; ok is false when the sequence is
// exhausted.
func (v Version) next() (Version, bool) {
	if v.Seq() == math.MaxUint32 {
		return 0, false
	}
	return v + 1, true
}

// Limits on records; the decoders enforce them on remote input too.
const (
	// MaxKeyLen is the longest key in bytes.
	MaxKeyLen = 256
	// MaxValueSize is the largest value in bytes.
	MaxValueSize = 4096
	// MaxOriginLen is the longest origin (host) name in bytes.
	MaxOriginLen = 256
	// MaxRecordsPerOrigin bounds the records (tombstones included) held per origin.
	MaxRecordsPerOrigin = 1 << 20
	// maxCreated bounds Lamport stamps, so that a hostile peer cannot run the clock out.
	maxCreated = 1 << 62
)

// Record is one entry of the registry: what Origin says about Key of Kind. Only Origin
// writes it; Version orders its writes; Created is the Lamport time of the key's creation
// by Origin, kept across updates, and orders concurrent creations of one key by different
// origins (see Winner). A deleted record is a tombstone: Deleted is set and Value is empty.
type Record struct {
	// Kind is what the record describes.
	Kind Kind
	// Key identifies the record among the origin's records of its kind.
	Key string
	// Origin is the host that wrote the record (its gossip node name).
	Origin string
	// Version is the origin's version of this write.
	Version Version
	// Created is the Lamport time at which Origin created the key.
	Created uint64
	// Deleted marks a tombstone.
	Deleted bool
	// Value is the encoded value (its codec lives with the concept of its kind).
	Value []byte
}

// String describes r without its value.
func (r Record) String() string {
	del := ""
	if r.Deleted {
		del = " deleted"
	}
	return fmt.Sprintf("%s %q from %s v%s created %d%s (%d bytes)", r.Kind, r.Key, r.Origin, r.Version, r.Created, del, len(r.Value))
}

// Errors returned for bad records; test with errors.Is.
var (
	// ErrInvalid is wrapped by errors about a bad kind, key, value or origin.
	ErrInvalid = errors.New("invalid record")
	// ErrFull is returned when an origin would hold more than MaxRecordsPerOrigin records.
	ErrFull = errors.New("registry full")
)

// checkKey validates a kind and key.
func checkKey(kind Kind, key string) error {
	if !kind.Valid() {
		return fmt.Errorf("%w: kind %d out of range 1-%d", ErrInvalid, kind, MaxKind)
	}
	if key == "" || len(key) > MaxKeyLen {
		return fmt.Errorf("%w: key length %d not in 1-%d", ErrInvalid, len(key), MaxKeyLen)
	}
	if !utf8.ValidString(key) {
		return fmt.Errorf("%w: key is not UTF-8", ErrInvalid)
	}
	return nil
}

// checkOrigin validates an origin name.
func checkOrigin(name string) error {
	if name == "" || len(name) > MaxOriginLen || !utf8.ValidString(name) {
		return fmt.Errorf("%w: origin name must be 1-%d bytes of UTF-8", ErrInvalid, MaxOriginLen)
	}
	return nil
}

// check validates a record received from a peer (or built locally).
func (r *Record) check() error {
	if err := checkKey(r.Kind, r.Key); err != nil {
		return err
	}
	if err := checkOrigin(r.Origin); err != nil {
		return err
	}
	if len(r.Value) > MaxValueSize {
		return fmt.Errorf("%w: value of %d bytes, more than %d", ErrInvalid, len(r.Value), MaxValueSize)
	}
	if r.Deleted && len(r.Value) > 0 {
		return fmt.Errorf("%w: tombstone with a value", ErrInvalid)
	}
	if r.Version.Seq() == 0 {
		return fmt.Errorf("%w: version %s has sequence 0", ErrInvalid, r.Version)
	}
	if r.Created == 0 || r.Created >= maxCreated {
		return fmt.Errorf("%w: creation time %d out of range", ErrInvalid, r.Created)
	}
	return nil
}

// Precedes reports whether a comes before b in the fabric-wide creation order: the lower
// Lamport creation time first, the lower origin name on a tie. Every host computes the
// same order from the same records, without consulting a clock.
func Precedes(a, b Record) bool {
	if a.Created != b.Created {
		return a.Created < b.Created
	}
	return a.Origin < b.Origin
}

// Winner returns the record that decides a key claimed by several origins (e.g. two hosts
// that created a network of the same name with different parameters): the first live
// record in the Precedes order. ok is false when every record is a tombstone or there is
// none. It is a pure function, so all hosts holding the same records agree.
func Winner(recs []Record) (w Record, ok bool) {
	for _, r := range recs {
		if r.Deleted {
			continue
		}
		if !ok || Precedes(r, w) {
			w, ok = r, true
		}
	}
	return w, ok
}

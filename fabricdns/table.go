package fabricdns

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Directory is what the server asks to answer a query. Names and networks are passed in
// lower case without a trailing dot. Implementations must be safe for concurrent use.
type Directory interface {
	// Contains reports whether addr lies inside network's subnets. A client asking on
	// network's gateway is answered only when its source address does (isolation), and a
	// reverse lookup of an unknown address inside them gets NXDOMAIN instead of leaving the
	// host.
	Contains(network string, addr netip.Addr) bool
	// Lookup returns the addresses of the endpoints on network whose name or alias is name.
	Lookup(network, name string) []netip.Addr
	// Reverse returns the names (without the network suffix) of the endpoints on network that
	// hold addr.
	Reverse(network string, addr netip.Addr) []string
	// IsNetwork reports whether network is one of the fabric's: NAME.NETWORK of any of them
	// is answered locally (another network's names get NXDOMAIN, as names nobody has),
	// never forwarded upstream.
	IsNetwork(network string) bool
	// Owned reports whether addr lies inside any network's subnets: a reverse lookup of it
	// is answered locally and never leaves the host.
	Owned(addr netip.Addr) bool
	// Also returns the other networks the container holding client is on (a container on
	// several networks resolves the names of each, as with Docker), none when it is on one.
	Also(client netip.Addr) []string
}

// Network is one network the table knows: its name and the subnets its clients come from
// (the network's whole CIDR, not only this host's slice).
type Network struct {
	Name    string
	Subnets []netip.Prefix
}

// Record is one endpoint's names on one network, as the registry carries it.
type Record struct {
	// Network is the network the endpoint is on.
	Network string
	// Name is the endpoint's own name (PTR answers carry it); it may be empty when the
	// endpoint has only aliases.
	Name string
	// Aliases are further names; several endpoints may share one, and then a lookup of it
	// returns all their addresses.
	Aliases []string
	// Addr is the endpoint's address on Network.
	Addr netip.Addr
	// Origin is the host the endpoint lives on (for listings only).
	Origin string
}

// Table is an in-memory [Directory]. Writers replace its whole content (level-triggered);
// readers see one consistent snapshot without locking.
type Table struct {
	// also is the other networks of each address of a multi-network container (SetAlso).
	also atomic.Pointer[map[netip.Addr][]string]
	mu   sync.Mutex // serialises writers; readers use snap alone
	snap atomic.Pointer[snapshot]
}

type nameKey struct{ network, name string }

type addrKey struct {
	network string
	addr    netip.Addr
}

type snapshot struct {
	networks map[string][]netip.Prefix
	names    map[nameKey][]netip.Addr
	reverse  map[addrKey][]string
	records  []Record
}

// NewTable returns an empty table.
func NewTable() *Table {
	t := &Table{}
	t.snap.Store(&snapshot{})
	return t
}

// SetNetworks replaces the set of networks. A network with a bad name or subnet is an error
// and changes nothing.
func (t *Table) SetNetworks(nets []Network) error {
	m := make(map[string][]netip.Prefix, len(nets))
	for _, n := range nets {
		name := canonical(n.Name)
		if err := checkName(name); err != nil {
			return fmt.Errorf("fabricdns: network %q: %w", n.Name, err)
		}
		for _, p := range n.Subnets {
			if !p.IsValid() {
				return fmt.Errorf("fabricdns: network %q: invalid subnet %v", n.Name, p)
			}
			m[name] = append(m[name], p.Masked())
		}
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.snap.Load()
	t.snap.Store(&snapshot{networks: m, names: old.names, reverse: old.reverse, records: old.records})
	return nil
}

// Replace replaces every record. Records come from many hosts, so one bad record must not
// blank the names of all the others: bad records are left out and reported in the returned
// error, and the rest are applied.
func (t *Table) Replace(records []Record) error {
	names := make(map[nameKey][]netip.Addr, len(records))
	reverse := make(map[addrKey][]string, len(records))
	kept := make([]Record, 0, len(records))
	var errs []error
	for _, r := range records {
		c, err := cleanRecord(r)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		kept = append(kept, c)
		for i, n := range append([]string{c.Name}, c.Aliases...) {
			if n == "" || (i > 0 && n == c.Name) {
				continue
			}
			k := nameKey{c.Network, n}
			if !slices.Contains(names[k], c.Addr) {
				names[k] = append(names[k], c.Addr)
			}
		}
		ptr := c.Name
		if ptr == "" && len(c.Aliases) > 0 {
			ptr = c.Aliases[0]
		}
		if ak := (addrKey{c.Network, c.Addr}); ptr != "" && !slices.Contains(reverse[ak], ptr) {
			reverse[ak] = append(reverse[ak], ptr)
		}
	}
	// Deterministic answers: addresses and names sorted.
	for k, v := range names {
		slices.SortFunc(v, func(a, b netip.Addr) int { return a.Compare(b) })
		names[k] = slices.Clip(v)
	}
	for _, v := range reverse {
		slices.Sort(v)
	}
	slices.SortFunc(kept, func(a, b Record) int {
		return cmpRecords(a, b)
	})
	t.mu.Lock()
	defer t.mu.Unlock()
	old := t.snap.Load()
	t.snap.Store(&snapshot{networks: old.networks, names: names, reverse: reverse, records: kept})
	if len(errs) > 0 {
		return fmt.Errorf("fabricdns: %d of %d records left out: %w", len(errs), len(records), errors.Join(errs...))
	}
	return nil
}

func cmpRecords(a, b Record) int {
	if c := strings.Compare(a.Network, b.Network); c != 0 {
		return c
	}
	if c := strings.Compare(a.Name, b.Name); c != 0 {
		return c
	}
	return a.Addr.Compare(b.Addr)
}

// Records returns the records the table holds (normalised, sorted by network, name, address),
// for listings such as `fabricctl dns ls`.
func (t *Table) Records() []Record {
	recs := t.snap.Load().records
	out := make([]Record, len(recs))
	for i, r := range recs {
		r.Aliases = slices.Clone(r.Aliases)
		out[i] = r
	}
	return out
}

// Contains implements [Directory].
func (t *Table) Contains(network string, addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range t.snap.Load().networks[canonical(network)] {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// IsNetwork implements [Directory].
func (t *Table) IsNetwork(network string) bool {
	_, ok := t.snap.Load().networks[canonical(network)]
	return ok
}

// Owned implements [Directory].
func (t *Table) Owned(addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, ps := range t.snap.Load().networks {
		for _, p := range ps {
			if p.Contains(addr) {
				return true
			}
		}
	}
	return false
}

// SetAlso replaces what Also answers: for each address of a container on several networks,
// the container's other networks.
func (t *Table) SetAlso(also map[netip.Addr][]string) { t.also.Store(&also) }

// Also returns the other networks of the container holding client (see Directory).
func (t *Table) Also(client netip.Addr) []string {
	m := t.also.Load()
	if m == nil {
		return nil
	}
	return (*m)[client.Unmap()]
}

// Lookup implements [Directory]. The returned slice must not be modified.
func (t *Table) Lookup(network, name string) []netip.Addr {
	return t.snap.Load().names[nameKey{canonical(network), canonical(name)}]
}

// Reverse implements [Directory]. The returned slice must not be modified.
func (t *Table) Reverse(network string, addr netip.Addr) []string {
	return t.snap.Load().reverse[addrKey{canonical(network), addr.Unmap()}]
}

// canonical is the form names are stored and compared in: lower case, no trailing dot.
func canonical(s string) string {
	s = strings.TrimSuffix(s, ".")
	for i := 0; i < len(s); i++ {
		if c := s[i]; c >= 'A' && c <= 'Z' {
			return strings.ToLower(s)
		}
	}
	return s
}

func cleanRecord(r Record) (Record, error) {
	c := Record{Network: canonical(r.Network), Name: canonical(r.Name), Addr: r.Addr.Unmap(), Origin: r.Origin}
	what := fmt.Sprintf("record %q on network %q", r.Name, r.Network)
	if err := checkName(c.Network); err != nil {
		return Record{}, fmt.Errorf("%s: network: %w", what, err)
	}
	if !c.Addr.IsValid() {
		return Record{}, fmt.Errorf("%s: no valid address", what)
	}
	if c.Name != "" {
		if err := checkName(c.Name); err != nil {
			return Record{}, fmt.Errorf("%s: %w", what, err)
		}
	}
	for _, a := range r.Aliases {
		a = canonical(a)
		if err := checkName(a); err != nil {
			return Record{}, fmt.Errorf("%s: alias %q: %w", what, a, err)
		}
		if !slices.Contains(c.Aliases, a) {
			c.Aliases = append(c.Aliases, a)
		}
	}
	if c.Name == "" && len(c.Aliases) == 0 {
		return Record{}, fmt.Errorf("%s: neither a name nor an alias", what)
	}
	return c, nil
}

// checkName accepts what Docker accepts in container names and network aliases, within DNS's
// limits: dot-separated labels of 1–63 letters, digits, '-' and '_', at most 253 bytes.
func checkName(s string) error {
	if s == "" {
		return errors.New("empty name")
	}
	if len(s) > 253 {
		return fmt.Errorf("name is %d bytes, over DNS's 253", len(s))
	}
	for label := range strings.SplitSeq(s, ".") {
		if label == "" {
			return fmt.Errorf("name %q has an empty label", s)
		}
		if len(label) > 63 {
			return fmt.Errorf("name %q has a label of %d bytes, over DNS's 63", s, len(label))
		}
		for i := 0; i < len(label); i++ {
			c := label[i]
			if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("name %q has the character %q (allowed: letters, digits, '-', '_', '.')", s, c)
			}
		}
	}
	return nil
}

package network

import (
	"cmp"
	"fmt"
	"net/netip"
	"slices"

	"github.com/ovsfabric/ovsfabric/fabric"
)

// Resolution is what the fabric's definitions and removals decide (see Resolve).
type Resolution struct {
	// Accepted are the networks served, sorted by name (Default is not among them).
	Accepted []Network
	// Conflicted are the networks that won their name but are not served, sorted by name,
	// with the reason.
	Conflicted []Conflict
	// Lost are the definitions that lost their name to another (sorted by name, then
	// creation order).
	Lost []Network
	// Removed are the marks of the removals, by name.
	Removed map[string]Removal
}

// Conflict is a network not served, and why.
type Conflict struct {
	Network Network
	Reason  string
}

// Winner returns the definition that holds name (accepted or conflicted).
func (r Resolution) Winner(name string) (Network, bool) {
	if i, ok := slices.BinarySearchFunc(r.Accepted, name, func(n Network, s string) int { return cmp.Compare(n.Name, s) }); ok {
		return r.Accepted[i], true
	}
	if i, ok := slices.BinarySearchFunc(r.Conflicted, name, func(c Conflict, s string) int { return cmp.Compare(c.Network.Name, s) }); ok {
		return r.Conflicted[i].Network, true
	}
	return Network{}, false
}

// Accepts reports whether the network is served and returns it.
func (r Resolution) Accepts(name string) (Network, bool) {
	i, ok := slices.BinarySearchFunc(r.Accepted, name, func(n Network, s string) int { return cmp.Compare(n.Name, s) })
	if !ok {
		return Network{}, false
	}
	return r.Accepted[i], true
}

// ConflictOf returns the reason network name is not served ("" when it is or is unknown).
func (r Resolution) ConflictOf(name string) string {
	if i, ok := slices.BinarySearchFunc(r.Conflicted, name, func(c Conflict, s string) int { return cmp.Compare(c.Network.Name, s) }); ok {
		return r.Conflicted[i].Reason
	}
	return ""
}

// Resolve decides, from every definition and removal the registry holds, which networks
// the fabric serves. It is a pure function of the sets given (their order does not
// matter), so every host holding the same records decides alike:
//
//  1. A removal of a name kills every definition of that name up to its mark in the
//     creation order ((Created, Origin), the lower first); of several removals of a name
//     the latest mark counts.
//  2. Of the live definitions of a name, the first in the creation order wins the name;
//     the others are Lost. Copies of one definition (same name, origin and creation
//     time, held by several hosts) count once.
//  3. The winners are taken in (Created, Origin, Name) order, after def (the cluster
//     CIDR's network, taken first): one whose subnet overlaps a network taken before or
//     whose key equals one's is conflicted, with a reason naming that network; the others
//     are accepted.
func Resolve(def Network, defs []Network, removals []Removal) Resolution {
	res := Resolution{Removed: map[string]Removal{}}
	for _, r := range removals {
		if m, ok := res.Removed[r.Name]; !ok || m.mark().Precedes(r.mark()) {
			res.Removed[r.Name] = r
		}
	}
	// Per name, the definitions in creation order, copies merged.
	byName := map[string][]Network{}
	for _, n := range defs {
		if n.Name == Default {
			continue
		}
		if r, ok := res.Removed[n.Name]; ok && r.Covers(n) {
			continue
		}
		byName[n.Name] = append(byName[n.Name], n)
	}
	var winners []Network
	for _, ns := range byName {
		slices.SortFunc(ns, compareDefs)
		ns = slices.CompactFunc(ns, func(a, b Network) bool { return a.Same(b) })
		winners = append(winners, ns[0])
		res.Lost = append(res.Lost, ns[1:]...)
	}
	slices.SortFunc(res.Lost, func(a, b Network) int { return cmp.Or(cmp.Compare(a.Name, b.Name), compareDefs(a, b)) })
	slices.SortFunc(winners, func(a, b Network) int { return cmp.Or(compareDefs(a, b), cmp.Compare(a.Name, b.Name)) })
	taken := []Network{def}
	keys := map[uint32]string{}
	for _, n := range winners {
		if reason := conflictWith(n, taken, keys); reason != "" {
			res.Conflicted = append(res.Conflicted, Conflict{Network: n, Reason: reason})
			continue
		}
		taken = append(taken, n)
		keys[n.Key] = n.Name
		res.Accepted = append(res.Accepted, n)
	}
	slices.SortFunc(res.Accepted, func(a, b Network) int { return cmp.Compare(a.Name, b.Name) })
	slices.SortFunc(res.Conflicted, func(a, b Conflict) int { return cmp.Compare(a.Network.Name, b.Network.Name) })
	return res
}

// compareDefs orders definitions by (Created, Origin), then (for copies of one definition
// whose values differ, which a correct host never writes) by their parameters, so that the
// choice between them does not depend on the input order either.
func compareDefs(a, b Network) int {
	if c := cmp.Or(cmp.Compare(a.Created, b.Created), cmp.Compare(a.Origin, b.Origin)); c != 0 {
		return c
	}
	return cmp.Or(a.Subnet.Addr().Compare(b.Subnet.Addr()), cmp.Compare(a.Subnet.Bits(), b.Subnet.Bits()),
		cmp.Compare(a.HostBits, b.HostBits), cmp.Compare(a.Key, b.Key), cmp.Compare(btoi(a.Internal), btoi(b.Internal)))
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// conflictWith says why n cannot be served beside the networks taken ("" when it can).
func conflictWith(n Network, taken []Network, keys map[uint32]string) string {
	for _, t := range taken {
		if t.Subnet.Overlaps(n.Subnet) {
			return fmt.Sprintf("subnet %s overlaps network %s (%s), created before it", n.Subnet, t.Name, t.Subnet)
		}
	}
	if other, ok := keys[n.Key]; ok {
		return fmt.Sprintf("tunnel key %d is network %s's, created before it", n.Key, other)
	}
	return ""
}

// HasSlice reports whether p is a slice of n: a /HostBits inside its subnet.
func (n Network) HasSlice(p netip.Prefix) bool {
	return p.IsValid() && p.Bits() == n.HostBits && p.Masked() == p && n.Subnet.Contains(p.Addr())
}

// claim is s as the fabric's subnet claim it is, for the claim rules.
func (s Slice) claim() fabric.Claim { return fabric.Claim{Node: s.Node, Subnet: s.Prefix, Seq: s.Seq} }

// WinningSlices returns, of the slices claimed of network n, those that hold their prefix:
// claims that are not a slice of n are ignored, and of several claims of one prefix the
// lower (Seq, Node) wins (fabric.Claim.Wins), as with the cluster CIDR's subnets. The
// result is sorted by node. Pure: every host decides alike.
func WinningSlices(n Network, claims []Slice) []Slice {
	best := map[netip.Prefix]Slice{}
	for _, s := range claims {
		if s.Network != n.Name || !n.HasSlice(s.Prefix) {
			continue
		}
		if b, ok := best[s.Prefix]; !ok || s.claim().Wins(b.claim()) {
			best[s.Prefix] = s
		}
	}
	out := make([]Slice, 0, len(best))
	for _, s := range best {
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b Slice) int {
		return cmp.Or(cmp.Compare(a.Node, b.Node), a.Prefix.Addr().Compare(b.Prefix.Addr()))
	})
	return out
}

// PickSlice chooses node's slice of n, avoiding the prefixes of others (the other hosts'
// claims): it starts at a slot derived from the node and network names, so that a host
// tends to get the same slice of a network every time, and probes past taken ones
// (fabric.PickSubnet). An exhausted network is an error saying so.
func PickSlice(n Network, node string, others []Slice) (netip.Prefix, error) {
	taken := map[netip.Prefix]bool{}
	for _, s := range others {
		if s.Node != node && n.HasSlice(s.Prefix) {
			taken[s.Prefix] = true
		}
	}
	p, err := fabric.PickSubnet(node+"/"+n.Name, n.Subnet, n.HostBits, func(p netip.Prefix) bool { return taken[p] })
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("network %s is exhausted: all %d /%d slices of %s are claimed by other hosts", n.Name, len(taken), n.HostBits, n.Subnet)
	}
	return p, nil
}

package controller

import (
	"reflect"
	"slices"

	"github.com/ovsfabric/ovsfabric/fabric"
)

// planMemo is the last plan and the facts it was made from: fabric.Plan is pure, and the
// facts of a sync that changes nothing (gossip, the claim, the network book all as before)
// plan the same, which with thousands of peers cost milliseconds and megabytes a sync. The
// clock is the one fact that moves every time: Plan reads it only to tell whether a dead
// peer's grace is over (fabric.Peer.Gone), so facts that differ only in Now plan the same
// when every peer is gone at both times or at neither. Loop only.
type planMemo struct {
	ok    bool
	facts fabric.Facts
	d     fabric.Desired
}

// plan is fabric.Plan(f), the remembered plan when f plans the same as its facts. The
// Desired returned is shared with later calls: callers must not change it.
func (m *planMemo) plan(f fabric.Facts) (fabric.Desired, error) {
	if m.ok && samePlanFacts(f, m.facts) {
		return m.d, nil
	}
	d, err := fabric.Plan(f)
	if err != nil {
		m.ok = false
		return d, err
	}
	m.ok, m.d = true, d
	m.facts = f
	m.facts.Peers = slices.Clone(f.Peers)
	m.facts.Networks = slices.Clone(f.Networks)
	for k := range m.facts.Networks {
		m.facts.Networks[k].PeerSlices = slices.Clone(f.Networks[k].PeerSlices)
	}
	return d, nil
}

// samePlanFacts reports whether a and b plan the same: equal but for Now, with every peer
// gone (fabric.Peer.Gone) at both times or at neither.
func samePlanFacts(a, b fabric.Facts) bool {
	x, y := a, b
	x.Now, y.Now = b.Now, b.Now
	x.Peers, y.Peers, x.Networks, y.Networks = nil, nil, nil, nil
	// Every other fact, whatever they are now or become, compared as a whole (the peers and
	// networks, thousands of entries, below without reflection).
	if !reflect.DeepEqual(x, y) || len(a.Peers) != len(b.Peers) || len(a.Networks) != len(b.Networks) {
		return false
	}
	for k, p := range a.Peers {
		if p != b.Peers[k] || p.Gone(a.Now, a.DeadPeerGrace) != p.Gone(b.Now, b.DeadPeerGrace) {
			return false
		}
	}
	for k, n := range a.Networks {
		o := b.Networks[k]
		if !slices.Equal(n.PeerSlices, o.PeerSlices) {
			return false
		}
		n.PeerSlices, o.PeerSlices = nil, nil
		if !reflect.DeepEqual(n, o) {
			return false
		}
	}
	return true
}

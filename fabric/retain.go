package fabric

import (
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Retained is the subnet claim of a node that went (died or left), kept reserved for it so
// that it gets its own subnet back when it returns and none of its containers is renumbered.
// A retained claim keeps new nodes from picking the subnet while any other is free; it never
// contests a live node's claim.
type Retained struct {
	Claim
	// State is how the node went: PeerDead or PeerLeft.
	State PeerState
	// Underlay is the node's last known underlay address; invalid when unknown.
	Underlay netip.Addr
	// Gone is when this host saw the node go, by this host's own clock: the retention counts
	// from it. The zero time means unknown (a claim another host announced as retained).
	Gone time.Time
}

// Until is when r's retention ends after retention, or the zero time when Gone is unknown.
func (r Retained) Until(retention time.Duration) time.Time {
	if r.Gone.IsZero() {
		return time.Time{}
	}
	return r.Gone.Add(retention)
}

// Retain updates the claims this host retains, given its view of the peers at now. The
// claim of a peer that is gone (left, or dead for grace or longer) is added, keeping the earliest Gone seen for the same subnet (so a
// fabricd restart, which sees remembered peers go anew, does not extend the retention). A
// claim is dropped when its node is alive again (its own announcement speaks for it), when
// another node's active claim overlaps it (that node took the subnet), and when it has been
// retained for retention or longer; the latter are also returned as expired. next is sorted
// by node name.
func Retain(prev []Retained, peers []Peer, now time.Time, grace, retention time.Duration) (next, expired []Retained) {
	byName := make(map[string]Retained, len(prev))
	for _, r := range prev {
		byName[r.Node] = r
	}
	active := make([]Claim, 0, len(peers))
	for _, p := range peers {
		switch {
		case p.State == PeerAlive || p.State == PeerSuspect:
			delete(byName, p.Name)
		case p.Subnet.IsValid() && p.Gone(now, grace):
			r := Retained{Claim: p.Claim(), State: p.State, Underlay: p.Underlay, Gone: p.StateSince}
			if old, ok := byName[p.Name]; ok && old.Subnet == p.Subnet {
				if !old.Gone.IsZero() && old.Gone.Before(r.Gone) {
					r.Gone = old.Gone
				}
				if !r.Underlay.IsValid() {
					r.Underlay = old.Underlay
				}
			}
			byName[p.Name] = r
		}
		if p.Subnet.IsValid() && !p.Gone(now, grace) {
			active = append(active, p.Claim())
		}
	}
	for name, r := range byName {
		taken := slices.ContainsFunc(active, func(c Claim) bool { return c.Node != name && c.Subnet.Overlaps(r.Subnet) })
		switch {
		case taken:
			delete(byName, name)
		case !r.Gone.IsZero() && now.Sub(r.Gone) >= retention:
			delete(byName, name)
			expired = append(expired, r)
		}
	}
	next = make([]Retained, 0, len(byName))
	for _, r := range byName {
		next = append(next, r)
	}
	slices.SortFunc(next, func(a, b Retained) int { return strings.Compare(a.Node, b.Node) })
	slices.SortFunc(expired, func(a, b Retained) int { return strings.Compare(a.Node, b.Node) })
	return next, expired
}

// OldestRetained picks the retained claim a new claim may take when the cluster CIDR has no
// free subnet left: the one gone longest (claims with an unknown Gone come last), then the
// oldest claim, then the lowest name, among those whose subnet free reports usable.
func OldestRetained(rs []Retained, free func(netip.Prefix) bool) (Retained, bool) {
	cands := slices.Clone(rs)
	slices.SortFunc(cands, func(a, b Retained) int {
		switch {
		case a.Gone.IsZero() != b.Gone.IsZero():
			if a.Gone.IsZero() {
				return 1
			}
			return -1
		case !a.Gone.Equal(b.Gone):
			return a.Gone.Compare(b.Gone)
		case a.Wins(b.Claim):
			return -1
		case b.Wins(a.Claim):
			return 1
		}
		return strings.Compare(a.Node, b.Node)
	})
	for _, r := range cands {
		if free(r.Subnet) {
			return r, true
		}
	}
	return Retained{}, false
}

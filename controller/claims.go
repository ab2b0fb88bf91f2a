package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/peers"
)

// More keys of the Open_vSwitch table's external_ids (KeySubnetSeq also on tunnel ports).
const (
	// KeySubnetSeq is the claim's logical time (fabric.Claim.Seq).
	KeySubnetSeq = "ovsfabric-subnet-seq"
	// KeySubnetSeen is when this node last held its claim while running (Unix ms, this
	// host's clock): a claim not held for longer than the retention is not reused.
	KeySubnetSeen = "ovsfabric-subnet-seen"
	// KeyRetained holds the claims this node retains for nodes that went (JSON).
	KeyRetained = "ovsfabric-retained"
)

// retainedRecord is one retained claim as persisted under KeyRetained.
type retainedRecord struct {
	Node     string       `json:"n"`
	Subnet   netip.Prefix `json:"s"`
	Seq      uint64       `json:"q,omitempty"`
	Since    int64        `json:"t,omitempty"`
	State    string       `json:"st,omitempty"`
	Underlay netip.Addr   `json:"a,omitzero"`
	Gone     int64        `json:"g"`
}

func encodeRetained(rs []fabric.Retained) string {
	recs := make([]retainedRecord, 0, len(rs))
	for _, r := range rs {
		recs = append(recs, retainedRecord{Node: r.Node, Subnet: r.Subnet, Seq: r.Seq, Since: r.Since, State: string(r.State), Underlay: r.Underlay, Gone: r.Gone.UnixMilli()})
	}
	b, _ := json.Marshal(recs) // plain values: cannot fail
	return string(b)
}

// decodeRetained parses what encodeRetained wrote, keeping only claims of other nodes on
// subnets of the configured shape.
func decodeRetained(s, self string, cluster netip.Prefix, bits int) ([]fabric.Retained, error) {
	if s == "" {
		return nil, nil
	}
	var recs []retainedRecord
	if err := json.Unmarshal([]byte(s), &recs); err != nil {
		return nil, fmt.Errorf("retained claims: %w", err)
	}
	out := make([]fabric.Retained, 0, len(recs))
	for _, r := range recs {
		if r.Node == "" || r.Node == self || fabric.ValidateSubnet(cluster, bits, r.Subnet) != nil || r.Gone <= 0 {
			continue
		}
		st := fabric.PeerState(r.State)
		if st != fabric.PeerLeft {
			st = fabric.PeerDead
		}
		out = append(out, fabric.Retained{
			Claim: fabric.Claim{Node: r.Node, Subnet: r.Subnet, Seq: r.Seq, Since: r.Since},
			State: st, Underlay: r.Underlay, Gone: time.UnixMilli(r.Gone),
		})
	}
	return out, nil
}

// claimWindow is how long a gone node's claim stays reserved by the others: the retention,
// and at least the dead-peer grace (before which the claim is still active).
func (c *Controller) claimWindow() time.Duration { return max(c.s.ClaimRetention, c.s.DeadPeerGrace) }

// loadClaimLocked reads this node's persisted claim and retained claims from ids (Init).
func (c *Controller) loadClaimLocked(ids map[string]string) {
	c.claim = fabric.Claim{Node: c.s.Name}
	if sub, err := netip.ParsePrefix(ids[KeySubnet]); err == nil && ids[KeyNode] == c.s.Name &&
		fabric.ValidateSubnet(c.s.Cluster, c.s.SubnetPrefix, sub) == nil {
		since, _ := strconv.ParseInt(ids[KeySubnetSince], 10, 64)
		seq, _ := strconv.ParseUint(ids[KeySubnetSeq], 10, 64)
		if seq == 0 {
			seq = 1 // a claim of the previous version: among the oldest
		}
		c.claim.Subnet, c.claim.Since, c.claim.Seq = sub, since, seq
		// The others keep the claim reserved for the claim window after this node went; past
		// it (by this host's own clock) the subnet may have been taken: claim anew.
		if seen, err := strconv.ParseInt(ids[KeySubnetSeen], 10, 64); err == nil && !c.s.StaticSubnet.IsValid() {
			c.seenSaved = time.UnixMilli(seen)
			if away := c.now().Sub(time.UnixMilli(seen)); away > c.claimWindow() {
				c.log.Warn("persisted subnet claim is older than the claim retention; claiming anew", "subnet", sub, "away", away.Round(time.Second), "retention", c.claimWindow())
				c.claim = fabric.Claim{Node: c.s.Name, Seq: seq}
			}
		}
	}
	if ids[KeyNode] == c.s.Name {
		rs, err := decodeRetained(ids[KeyRetained], c.s.Name, c.s.Cluster, c.s.SubnetPrefix)
		if err != nil {
			c.log.Warn("ignoring unreadable retained claims", "err", err)
		}
		c.retained = rs
		if len(rs) > 0 {
			c.log.Info("retained subnet claims of nodes that went", "claims", len(rs))
		}
	}
}

// claimIDsLocked is what persists this node's claim, with seenSaved (set to now when zero).
func (c *Controller) claimIDsLocked() map[string]string {
	if c.seenSaved.IsZero() {
		c.seenSaved = c.now()
	}
	return map[string]string{
		KeyNode:        c.s.Name,
		KeySubnet:      c.claim.Subnet.String(),
		KeySubnetSince: strconv.FormatInt(c.claim.Since, 10),
		KeySubnetSeq:   strconv.FormatUint(c.claim.Seq, 10),
		KeySubnetSeen:  strconv.FormatInt(c.seenSaved.UnixMilli(), 10),
		KeyCluster:     c.s.Cluster.String(),
		KeyRetained:    encodeRetained(c.retained),
	}
}

// seenEvery is how often a running node records that it still holds its claim.
func (c *Controller) seenEvery() time.Duration {
	return min(max(c.claimWindow()/4, 10*time.Second), time.Hour)
}

// announcedRetained is what live peers announce as retained, except claims of this node
// and of nodes that are alive again.
func (c *Controller) announcedRetained(view []fabric.Peer, members []peers.Peer) []fabric.Retained {
	if !slices.ContainsFunc(members, func(p peers.Peer) bool { return len(p.Meta.Retained) > 0 }) {
		return nil // the common case: nobody retains a claim, and the map below is for nothing
	}
	live := map[string]bool{c.s.Name: true}
	for _, p := range view {
		if p.State == fabric.PeerAlive || p.State == fabric.PeerSuspect {
			live[p.Name] = true
		}
	}
	var out []fabric.Retained
	for _, p := range members {
		if p.State != peers.StateAlive && p.State != peers.StateSuspect {
			continue
		}
		for _, r := range p.Meta.Retained {
			if !live[r.Node] {
				out = append(out, fabric.Retained{Claim: fabric.Claim{Node: r.Node, Subnet: r.Subnet, Seq: r.Seq}, State: fabric.PeerDead})
			}
		}
	}
	return out
}

// updateRetained brings the retained claims up to date with view, and persists and
// announces them when they changed; it also records now and then that this node still
// holds its claim.
func (c *Controller) updateRetained(ctx context.Context, view []fabric.Peer) error {
	now := c.now()
	c.mu.Lock()
	prev := c.retained
	next, expired := fabric.Retain(prev, view, now, c.s.DeadPeerGrace, c.s.ClaimRetention)
	changed := !slices.EqualFunc(prev, next, func(a, b fabric.Retained) bool {
		return a.Claim == b.Claim && a.State == b.State && a.Underlay == b.Underlay && a.Gone.Equal(b.Gone)
	})
	c.retained = next
	held := c.claim.Subnet.IsValid() && c.claim.Seq != 0 // a static claim is held once ordered
	seenDue := held && now.Sub(c.seenSaved) >= c.seenEvery()
	var ids map[string]string
	if changed || seenDue {
		if seenDue {
			c.seenSaved = now
		}
		if held {
			ids = c.claimIDsLocked()
		} else {
			ids = map[string]string{KeyNode: c.s.Name, KeyRetained: encodeRetained(next)}
		}
	}
	meta := c.metaLocked()
	c.mu.Unlock()
	for _, r := range next {
		if !slices.ContainsFunc(prev, func(o fabric.Retained) bool { return o.Node == r.Node && o.Subnet == r.Subnet }) {
			c.log.Info("subnet reserved for a node that went", "peer", r.Node, "subnet", r.Subnet, "state", r.State, "until", r.Until(c.s.ClaimRetention).UTC().Format(time.RFC3339))
		}
	}
	for _, r := range expired {
		c.log.Info("claim retention ended: subnet free again", "peer", r.Node, "subnet", r.Subnet, "gone_since", r.Gone.UTC().Format(time.RFC3339))
	}
	if ids == nil {
		return nil
	}
	if err := c.sw.SetSystemExternalIDs(ctx, ids, nil); err != nil {
		return fmt.Errorf("persist retained claims: %w", err)
	}
	if changed {
		if err := c.m.SetMeta(ctx, meta); err != nil {
			return fmt.Errorf("announce retained claims: %w", err)
		}
	}
	return nil
}

// retainedMeta is the retained claims to announce: the longest-gone first, as many as fit
// in the node metadata next to the rest of m.
func (c *Controller) retainedMetaLocked(m peers.Meta) []peers.RetainedClaim {
	if len(c.retained) == 0 {
		return nil
	}
	rs := slices.Clone(c.retained)
	slices.SortFunc(rs, func(a, b fabric.Retained) int { return a.Gone.Compare(b.Gone) })
	var out []peers.RetainedClaim
	for _, r := range rs {
		m.Retained = append(out, peers.RetainedClaim{Node: r.Node, Subnet: r.Subnet, Seq: r.Seq})
		if _, err := peers.EncodeMeta(m); err != nil {
			break
		}
		out = m.Retained
	}
	return out
}

// resolveClaim makes sure this node holds a subnet no other active claim contests: it picks
// one when it has none, re-picks when a dynamic claim loses, and refuses when a static one
// loses. Competing claims are ordered by their logical time (fabric.Claim.Wins), so a host
// whose clock is off never takes a subnet from a live host. A new pick avoids subnets
// retained for nodes that went, unless the cluster CIDR has no other: then it takes the one
// retained longest, and says so.
func (c *Controller) resolveClaim(ctx context.Context, view []fabric.Peer, members []peers.Peer) error {
	now := c.now()
	// Sized up front: with thousands of peers regrowing them cost more than the check.
	active := make([]fabric.Claim, 0, len(view))
	taken := make([]netip.Prefix, 0, len(view))
	seqs := make([]uint64, 0, len(view)+1)
	for _, p := range view {
		seqs = append(seqs, p.SubnetSeq)
		if p.Subnet.IsValid() && !p.Gone(now, c.s.DeadPeerGrace) {
			active = append(active, p.Claim())
			taken = append(taken, p.Subnet)
		}
	}
	announced := c.announcedRetained(view, members)
	c.mu.Lock()
	defer c.mu.Unlock()
	reserved := append(slices.Clone(c.retained), announced...)
	for _, r := range reserved {
		seqs = append(seqs, r.Seq)
	}
	seqs = append(seqs, c.claim.Seq)
	if c.claim.Subnet.IsValid() {
		fresh := c.claim.Seq == 0 // a new static claim, ordered only now that the others are known
		if fresh {
			c.claim.Seq = fabric.NextSeq(seqs...)
		}
		w, lost := fabric.Conflict(c.claim, active)
		switch {
		case !lost && !fresh:
			return nil
		case !lost:
			return c.announceClaimLocked(ctx)
		case c.static:
			return fmt.Errorf("%w: static subnet %s is already claimed by %s (an earlier claim); choose another --subnet",
				ErrSubnetConflict, c.claim.Subnet, w.Node)
		}
		c.log.Warn("subnet conflict: an earlier claim wins, picking another subnet", "subnet", c.claim.Subnet, "winner", w.Node)
	}
	reservedSubnets := make([]netip.Prefix, 0, len(reserved))
	for _, r := range reserved {
		reservedSubnets = append(reservedSubnets, r.Subnet)
	}
	sub, err := fabric.PickSubnet(c.s.Name, c.s.Cluster, c.s.SubnetPrefix, fabric.TakenBy(append(slices.Clone(taken), reservedSubnets...)))
	if err != nil {
		inUse := fabric.TakenBy(taken)
		r, ok := fabric.OldestRetained(reserved, func(p netip.Prefix) bool {
			return !inUse(p) && fabric.ValidateSubnet(c.s.Cluster, c.s.SubnetPrefix, p) == nil
		})
		if !ok {
			return err
		}
		c.log.Warn("cluster CIDR exhausted: taking the subnet retained for a node that went", "subnet", r.Subnet, "retained_for", r.Node, "cluster_cidr", c.s.Cluster)
		sub = r.Subnet
		c.retained = slices.DeleteFunc(c.retained, func(o fabric.Retained) bool { return o.Node == r.Node })
	}
	c.claim = fabric.Claim{Node: c.s.Name, Subnet: sub, Since: now.UnixMilli(), Seq: fabric.NextSeq(seqs...)}
	c.log.Info("claimed subnet", "subnet", sub, "seq", c.claim.Seq)
	return c.announceClaimLocked(ctx)
}

// announceClaimLocked persists and announces the current claim.
func (c *Controller) announceClaimLocked(ctx context.Context) error {
	c.seenSaved = c.now()
	if err := c.persistClaimLocked(ctx); err != nil {
		return err
	}
	if err := c.m.SetMeta(ctx, c.metaLocked()); err != nil {
		return fmt.Errorf("announce subnet: %w", err)
	}
	return nil
}

// retainedStatusLocked adds the retained claims to a status's peers: a note on peers in
// view, and an entry of their own for nodes gossip has forgotten.
func (c *Controller) retainedStatusLocked(ps []api.Peer) []api.Peer {
	for _, r := range c.retained {
		note := "subnet retained until " + r.Until(c.s.ClaimRetention).UTC().Format(time.RFC3339)
		i := slices.IndexFunc(ps, func(p api.Peer) bool { return p.Name == r.Node })
		if i < 0 {
			ps = append(ps, api.Peer{Name: r.Node, Addr: addrString(r.Underlay), Subnet: r.Subnet.String(), State: string(r.State), Since: r.Gone, Note: note})
			continue
		}
		if ps[i].Note != "" {
			note = ps[i].Note + "; " + note
		}
		ps[i].Note = note
	}
	slices.SortFunc(ps, func(a, b api.Peer) int {
		switch {
		case a.Name < b.Name:
			return -1
		case a.Name > b.Name:
			return 1
		}
		return 0
	})
	return ps
}

package controller

import (
	"context"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/endpoint"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/peers"
	"github.com/ovsfabric/ovsfabric/registry"
)

// KeyIncarnation (Open_vSwitch external_ids) is this host's start counter for the
// registry's versions (registry.Config.Incarnation): raised at every start and saved again
// when the registry had to move past it.
const KeyIncarnation = "ovsfabric-incarnation"

// Registry is what the loop needs of the replicated registry (registry.Registry): it
// publishes this host's endpoints, reads the others', and forgets hosts that are gone.
type Registry interface {
	Set(kind registry.Kind, key string, value []byte) (registry.Record, error)
	Delete(kind registry.Kind, key string) (bool, error)
	List(kind registry.Kind) []registry.Record
	Forget(origin string) bool
	Unforget(origin string) bool
	Origins() []registry.OriginStatus
}

// registryHeard reports whether the registry holds records of every live peer: after a
// restart, the networks' peer slices (routes and flows toward the other hosts) come only
// from there, so the first sync waits for them rather than withdrawing what the previous
// run left and adding it back a moment later.
func (c *Controller) registryHeard() bool {
	c.pubMu.Lock()
	reg := c.reg
	c.pubMu.Unlock()
	// Before the first sync the book's view is empty: what it loaded from OVSDB tells
	// whether this host had networks.
	if reg == nil || c.nets == nil || len(c.nets.View().Networks) == 0 && c.nets.LoadedClock() == 0 {
		return true
	}
	heard := map[string]bool{}
	for _, o := range reg.Origins() {
		if o.Watermark > 0 && !o.Syncing {
			heard[o.Name] = true
		}
	}
	for _, p := range c.m.Peers() {
		if p.Name != c.s.Name && p.State == peers.StateAlive && !heard[p.Name] {
			return false
		}
	}
	return true
}

// SetRegistry attaches the registry that carries this host's endpoints fabric-wide. Call
// it before Init, which publishes the endpoints a previous run left, so that this run does
// not announce an empty set when it joins.
func (c *Controller) SetRegistry(r Registry) {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	c.reg = r
	c.published = map[string]string{}
}

// NextIncarnation reads this host's registry incarnation from OVSDB, raises it by one and
// persists it, and returns the new one (1 on the first start).
func NextIncarnation(ctx context.Context, sw Switch) (uint32, error) {
	ids, err := sw.SystemExternalIDs(ctx)
	if err != nil {
		return 0, fmt.Errorf("read the registry incarnation: %w", err)
	}
	var inc uint64
	if v, ok := ids[KeyIncarnation]; ok {
		if inc, err = strconv.ParseUint(v, 10, 32); err != nil {
			return 0, fmt.Errorf("external_ids:%s=%q: %w", KeyIncarnation, v, err)
		}
	}
	if inc >= math.MaxUint32 {
		return 0, fmt.Errorf("external_ids:%s=%d: no incarnation left", KeyIncarnation, inc)
	}
	inc++
	if err := SaveIncarnation(ctx, sw, uint32(inc)); err != nil {
		return 0, err
	}
	return uint32(inc), nil
}

// SaveIncarnation persists inc (registry.Config.OnIncarnation).
func SaveIncarnation(ctx context.Context, sw Switch, inc uint32) error {
	if err := sw.SetSystemExternalIDs(ctx, map[string]string{KeyIncarnation: strconv.FormatUint(uint64(inc), 10)}, nil); err != nil {
		return fmt.Errorf("persist the registry incarnation: %w", err)
	}
	return nil
}

// publishEndpoints makes this host's endpoint records in the registry match rs: one record
// per endpoint (kind endpoint, keyed by port), written only when it changed, deleted when
// the endpoint is gone.
func (c *Controller) publishEndpoints(rs []endpoint.Record) {
	c.pubMu.Lock()
	defer c.pubMu.Unlock()
	if c.reg == nil {
		return
	}
	want := make(map[string][]byte, len(rs))
	for _, r := range rs {
		want[endpoint.SharedKey(r)] = endpoint.EncodeShared(r)
	}
	var failed error
	for k, v := range want {
		if cur, ok := c.published[k]; ok && cur == string(v) {
			continue
		}
		if _, err := c.reg.Set(registry.KindEndpoint, k, v); err != nil {
			failed = fmt.Errorf("endpoint %s: %w", k, err)
			continue
		}
		c.published[k] = string(v)
	}
	for k := range c.published {
		if _, ok := want[k]; ok {
			continue
		}
		if _, err := c.reg.Delete(registry.KindEndpoint, k); err != nil {
			failed = fmt.Errorf("endpoint %s: %w", k, err)
			continue
		}
		delete(c.published, k)
	}
	if failed != nil {
		c.log.Warn("publish endpoints in the registry", "err", failed)
	}
}

// forgetGone drops from the registry the records of peers that left or are dead past the
// grace period (the peers Plan removes the tunnels of), so that none of their endpoints
// is listed any more, and lifts that for a peer alive again.
func (c *Controller) forgetGone(view []fabric.Peer, now time.Time) {
	c.pubMu.Lock()
	reg := c.reg
	c.pubMu.Unlock()
	if reg == nil {
		return
	}
	for _, p := range view {
		if p.Name == c.s.Name {
			continue
		}
		if p.Gone(now, c.s.DeadPeerGrace) {
			if reg.Forget(p.Name) {
				c.log.Info("forgot the registry records of a peer that is gone", "peer", p.Name, "state", p.State)
			}
		} else if p.State == fabric.PeerAlive && reg.Unforget(p.Name) {
			// Back from a partition longer than the grace, without a restart: its records
			// were never withdrawn, take them again.
			c.log.Info("peer is back; taking its registry records again", "peer", p.Name)
		}
	}
}

// RemoteAttachments are the other hosts' endpoints, as the registry spread them (hosts
// that left excluded).
func (c *Controller) RemoteAttachments() []api.Attachment {
	c.pubMu.Lock()
	reg := c.reg
	c.pubMu.Unlock()
	if reg == nil {
		return nil
	}
	alive := map[string]bool{}
	for _, p := range c.m.Peers() {
		if p.State != peers.StateLeft {
			alive[p.Name] = true
		}
	}
	var out []api.Attachment
	bad := map[string]error{}
	for _, r := range reg.List(registry.KindEndpoint) {
		if r.Origin == c.s.Name || !alive[r.Origin] {
			continue
		}
		a, err := endpoint.DecodeShared(r.Origin, r.Value, c.networkCIDR)
		if err != nil {
			bad[r.Origin] = fmt.Errorf("endpoint %s: %w", r.Key, err)
			continue
		}
		out = append(out, a)
	}
	for host, err := range bad {
		c.log.Warn("ignoring endpoints a peer shares", "peer", host, "err", err)
	}
	return out
}

package controller

import (
	"context"
	"encoding/json"
	"net/netip"
	"sort"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/peers"
)

// spreadEntry is one attachment as gossip carries it: just enough for `fabricctl ls --all`.
type spreadEntry struct {
	C  string `json:"c"`
	IP string `json:"ip"`
	M  string `json:"m,omitempty"`
}

// spreadAttachments publishes this host's attachments through gossip when they changed. When
// they do not fit in a gossip state, the list is cut and the rest is not spread.
func (c *Controller) spreadAttachments(ctx context.Context) {
	all, err := c.Attachments(ctx)
	if err != nil {
		return
	}
	entries := make([]spreadEntry, 0, len(all))
	for _, a := range all {
		entries = append(entries, spreadEntry{C: a.Container, IP: a.IP, M: a.MAC})
	}
	var b []byte
	for {
		b, _ = json.Marshal(entries)
		if len(b) <= peers.MaxStateSize || len(entries) == 0 {
			break
		}
		entries = entries[:len(entries)*3/4]
	}
	c.mu.Lock()
	same := string(b) == string(c.spread)
	c.mu.Unlock()
	if same {
		return
	}
	if err := c.m.SetLocalState(b); err != nil {
		c.log.Warn("spread attachments by gossip", "err", err)
		return
	}
	c.mu.Lock()
	c.spread = b
	c.mu.Unlock()
}

// FabricAttachments is every attachment of the fabric: this host's from OVSDB, the others'
// as gossip spread them.
func (c *Controller) FabricAttachments(ctx context.Context) ([]api.Attachment, error) {
	out, err := c.Attachments(ctx)
	if err != nil {
		return nil, err
	}
	alive := map[string]bool{}
	for _, p := range c.m.Peers() {
		if p.State != peers.StateLeft {
			alive[p.Name] = true
		}
	}
	for host, b := range c.m.RemoteStates() {
		if !alive[host] {
			continue
		}
		entries, err := decodeSpread(b, c.s.Cluster)
		if err != nil {
			c.log.Warn("ignoring the attachments a peer gossiped", "peer", host, "err", err)
			continue
		}
		for _, e := range entries {
			a := api.Attachment{Host: host, Container: e.C, IP: e.IP, MAC: e.M}
			if p, err := netip.ParsePrefix(e.IP); err == nil {
				a.Gateway = fabric.Gateway(p.Masked()).String()
			}
			out = append(out, a)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Host != out[j].Host {
			return out[i].Host < out[j].Host
		}
		return out[i].IP < out[j].IP
	})
	return out, nil
}

package controller

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/flows"
	"github.com/ovsfabric/ovsfabric/ovsdb"
)

// tunnelSpecs are the tunnel ports plan d asks for: one per peer, or (TunnelFlow) the one
// flow-based port, kept also without peers so that the first peer costs no OVSDB work.
func (c *Controller) tunnelSpecs(d fabric.Desired) []ovsdb.TunnelSpec {
	if d.FlowTunnel != "" {
		return []ovsdb.TunnelSpec{{
			Name: d.FlowTunnel, Type: string(c.s.TunnelType), RemoteFlow: true, Key: "flow", Protected: true,
		}}
	}
	tunnels := make([]ovsdb.TunnelSpec, 0, len(d.Tunnels))
	for _, t := range d.Tunnels {
		tunnels = append(tunnels, ovsdb.TunnelSpec{
			Name: t.Name, Type: string(t.Type), RemoteIP: t.Remote, Peer: t.Peer,
			// The pipeline sets and matches each network's key (the default network's is 0,
			// what a host without networks sends on a port without a key).
			Key: "flow",
			// Split horizon: a frame from one tunnel is never flooded into another.
			Protected: true,
			ExternalIDs: map[string]string{
				KeySubnet:      t.Claim.Subnet.String(),
				KeySubnetSince: strconv.FormatInt(t.Claim.Since, 10),
				KeySubnetSeq:   strconv.FormatUint(t.Claim.Seq, 10),
			},
		})
	}
	return tunnels
}

// retiredTunnels are the tunnel ports of the other tunnel mode (a previous run's, or this
// run's before the switch) that must stay one sync longer: the flows on the bridge still
// send to them, until a pipeline with the new ports is applied. Without them a switch of
// --tunnel-mode would drop packets between the OVSDB transaction and the flow bundle. Only
// ports toward peers d still has are kept (a gone peer's port goes as always).
func (c *Controller) retiredTunnels(ctx context.Context, d fabric.Desired, want []ovsdb.TunnelSpec) ([]ovsdb.TunnelSpec, error) {
	if c.tunnelsSettled || len(d.Tunnels) == 0 {
		return nil, nil
	}
	have, err := c.sw.Ports(ctx, d.Bridge)
	if err != nil {
		return nil, fmt.Errorf("read tunnel ports of %s: %w", d.Bridge, err)
	}
	wanted := make(map[string]bool, len(want))
	for _, t := range want {
		wanted[t.Name] = true
	}
	peers := make(map[string]bool, len(d.Tunnels))
	for _, t := range d.Tunnels {
		peers[t.Peer] = true
	}
	c.pipeMu.Lock()
	inFlows := c.tunnelsInFlows
	c.pipeMu.Unlock()
	var out []ovsdb.TunnelSpec
	for _, p := range have {
		if p.Owner() != c.s.Name || p.Role() != ovsdb.RoleTunnel || wanted[p.Name] {
			continue
		}
		if inFlows != nil && !inFlows[p.Name] {
			continue // the applied flows no longer use it
		}
		flowPort := p.Options["remote_ip"] == "flow"
		if !flowPort && !peers[p.ExternalIDs[ovsdb.KeyPeer]] {
			continue
		}
		if s, ok := specOf(p, flowPort); ok {
			out = append(out, s)
		}
	}
	return out, nil
}

// specOf is the TunnelSpec that leaves tunnel port p exactly as it is.
func specOf(p ovsdb.PortInfo, flowPort bool) (ovsdb.TunnelSpec, bool) {
	s := ovsdb.TunnelSpec{Name: p.Name, Type: p.Type, RemoteFlow: flowPort, Key: p.Options["key"], Peer: p.ExternalIDs[ovsdb.KeyPeer], Protected: p.Protected}
	if !flowPort {
		a, err := netip.ParseAddr(p.Options["remote_ip"])
		if err != nil {
			return s, false
		}
		s.RemoteIP = a
	}
	for k, v := range p.Options {
		if k != "remote_ip" && k != "key" {
			if s.Options == nil {
				s.Options = map[string]string{}
			}
			s.Options[k] = v
		}
	}
	for k, v := range p.ExternalIDs {
		if k != ovsdb.KeyOwner && k != ovsdb.KeyRole && k != ovsdb.KeyPeer && strings.HasPrefix(k, ovsdb.KeyPrefix) {
			if s.ExternalIDs == nil {
				s.ExternalIDs = map[string]string{}
			}
			s.ExternalIDs[k] = v
		}
	}
	return s, true
}

// settleTunnels runs after the pipeline was applied: retired ports the flows no longer use go
// on the next sync (kicked now); with none kept, the switch is over and later syncs read
// nothing more for it.
func (c *Controller) settleTunnels(kept []ovsdb.TunnelSpec, flowsIn bool) {
	if !flowsIn {
		return
	}
	if len(kept) == 0 {
		c.tunnelsSettled = true
		return
	}
	c.pipeMu.Lock()
	inFlows := maps.Clone(c.tunnelsInFlows)
	c.pipeMu.Unlock()
	for _, s := range kept {
		if inFlows[s.Name] {
			return // still in use: the new port has no OpenFlow number yet
		}
	}
	c.log.Info("tunnel ports of the previous tunnel mode unused now; removing them", "ports", len(kept))
	c.Kick()
}

// rememberFlowPeers reads, from the flows a previous run left on the bridge, the peers its
// flow-based tunnel port admitted (their tun_src): a flow-based port records no peer in
// OVSDB, and without them a restarted fabricd started without --join (the seed) would start
// alone, plan no peer and drop their routes until gossip found it again. Init calls it (with
// c.mu held) when this node has a flow-based port; a bridge without flows leaves nothing.
func (c *Controller) rememberFlowPeers(ctx context.Context) {
	if c.of == nil {
		return
	}
	fs, err := c.of.Flows(ctx)
	if err != nil {
		c.log.Debug("no flows of a previous run to read peers from", "err", err)
		return
	}
	for _, f := range fs {
		if flows.PurposeOf(f.Cookie) != flows.PurposeFromPeer {
			continue
		}
		for _, field := range strings.Split(f.Match, ",") {
			// go-openvswitch reads a dumped tun_src back as nw_src (both are an IPv4
			// source to it); a from-peer flow matches no inner address.
			v, ok := strings.CutPrefix(field, "tun_src=")
			if !ok {
				v, ok = strings.CutPrefix(field, "nw_src=")
			}
			if ok {
				if a, err := netip.ParseAddr(v); err == nil && !slices.Contains(c.flowPeers, a) {
					c.flowPeers = append(c.flowPeers, a)
				}
			}
		}
	}
	if len(c.flowPeers) > 0 {
		c.log.Info("peers of a previous run's flow-based tunnel", "peers", len(c.flowPeers))
	}
}

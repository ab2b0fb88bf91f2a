package controller

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/ovsfabric/ovsfabric/config"
	"github.com/ovsfabric/ovsfabric/endpoint"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/fabricdns"
	"github.com/ovsfabric/ovsfabric/flows"
	"github.com/ovsfabric/ovsfabric/ovsdb"
)

// pipeline is a data-path mode (--pipeline): the OpenFlow flows it wants on the bridge.
type pipeline interface {
	// name is the mode's name, as --pipeline takes it.
	name() string
	// flows are the flows the mode wants for plan d and the bridge's ports as OVSDB shows
	// them now (flows.ErrNotReady while the gateway port has no OpenFlow number).
	flows(d fabric.Desired, ports []ovsdb.PortInfo) ([]flows.Flow, error)
	// tunnelPorts are the names of the tunnel ports the flows of the last successful call
	// send to or admit from (never nil).
	tunnelPorts() map[string]bool
}

// newPipeline is the pipeline s asks for (Validate accepted only these two).
func newPipeline(s config.Settings) pipeline {
	if s.Pipeline == config.PipelineL2 {
		return l2Pipeline{}
	}
	return &routedPipeline{node: s.Name, dns: s.DNS}
}

// l2Pipeline is the flood-and-learn baseline: br-int runs NORMAL (standalone fail mode) and
// the host kernel routes between subnets through the gateway port. It wants no flows of
// ovsfabric's, so switching from routed cleans up.
type l2Pipeline struct{}

func (l2Pipeline) name() string                                                 { return config.PipelineL2 }
func (l2Pipeline) flows(fabric.Desired, []ovsdb.PortInfo) ([]flows.Flow, error) { return nil, nil }
func (l2Pipeline) tunnelPorts() map[string]bool                                 { return map[string]bool{} }

// routedPipeline routes cross-host traffic inside OVS with an explicit OpenFlow pipeline
// (package flows): no hairpin through the host kernel, no broadcast across tunnels.
type routedPipeline struct {
	node string
	// dns: the fabric DNS runs, so every network may reach its shared address.
	dns bool
	// last is the input of the last successful plan and lastFlows its flows: a sync that
	// changed nothing (the common case, every --resync) reuses them rather than planning
	// thousands of flows again. Callers hold the controller's pipeMu.
	last      flows.Input
	lastFlows []flows.Flow
	// used are the tunnel ports last's flows use.
	used map[string]bool
}

func (p *routedPipeline) tunnelPorts() map[string]bool {
	if p.used == nil {
		return map[string]bool{}
	}
	return p.used
}

func (*routedPipeline) name() string { return config.PipelineRouted }

func (p *routedPipeline) flows(d fabric.Desired, ports []ovsdb.PortInfo) ([]flows.Flow, error) {
	in := p.input(d, ports)
	if p.lastFlows != nil && in.Equal(p.last) {
		return p.lastFlows, nil
	}
	fs, err := flows.Plan(in)
	if err != nil && !errors.Is(err, flows.ErrNotReady) {
		return nil, fmt.Errorf("plan flows: %w", err)
	}
	if err == nil {
		p.last, p.lastFlows = in, fs
		p.used = map[string]bool{}
		for _, n := range in.Networks {
			for _, t := range n.Tunnels {
				if t.Port != "" && t.OFPort > 0 {
					p.used[t.Port] = true
				}
			}
		}
	}
	return fs, err
}

// input is what flows.Plan needs: every network the plan serves with its peers' slices
// (each behind the tunnel port toward that peer), and the ports' OpenFlow numbers and MACs,
// each container in its endpoint's network. A container of a network this host does not
// serve (removed with --force) gets no flow: its port security drops all it sends.
func (p *routedPipeline) input(d fabric.Desired, ports []ovsdb.PortInfo) flows.Input {
	var in flows.Input
	index := make(map[string]int, len(d.Networks))
	for _, n := range d.Networks {
		index[n.Name] = len(in.Networks)
		in.Networks = append(in.Networks, flows.Network{Name: n.Name, Key: n.Key, CIDR: n.CIDR, Subnet: n.Gateway.Masked(), Gateway: n.Gateway.Addr(), Internal: n.Internal})
	}
	ofports := make(map[string]int, len(d.Tunnels))
	// While a switch of --tunnel-mode is under way: the other mode's ports, which the
	// pipeline uses for a peer until the new port has an OpenFlow number (see retiredTunnels).
	legacy := map[string]flows.Tunnel{} // by peer: its own port
	var flowPort flows.Tunnel           // a flow-based port
	for _, port := range ports {
		switch {
		case port.Name == d.GatewayPort:
			mac, _ := net.ParseMAC(port.MACInUse)
			in.Gateway = flows.Port{Name: port.Name, OFPort: port.Ofport, MAC: mac}
		case port.Owner() != p.node:
		case port.Role() == ovsdb.RoleContainer:
			r, _ := endpoint.Decode(port, p.node)
			k, ok := index[r.Network]
			if !ok || r.MAC == nil || !r.Addr.IsValid() || !in.Networks[k].Subnet.Contains(r.Addr.Addr()) {
				continue
			}
			in.Networks[k].Containers = append(in.Networks[k].Containers, flows.Port{Name: port.Name, OFPort: containerOfport(port), MAC: r.MAC, IP: r.Addr.Addr()})
		case port.Role() == ovsdb.RoleTunnel:
			ofports[port.Name] = port.Ofport
			switch {
			case port.Ofport <= 0:
			case port.Options["remote_ip"] == "flow":
				flowPort = flows.Tunnel{Port: port.Name, OFPort: port.Ofport}
			case port.ExternalIDs[ovsdb.KeyPeer] != "":
				legacy[port.ExternalIDs[ovsdb.KeyPeer]] = flows.Tunnel{Port: port.Name, OFPort: port.Ofport}
			}
		}
	}
	in.PeersViaGateway = d.Encryption.Encrypted()
	// Every network reaches the fabric DNS on its shared address (on the gateway port), when
	// it runs.
	if p.dns {
		in.DNS = fabricdns.WellKnown()
	}
	for k, n := range d.Networks {
		for _, peer := range n.Peers {
			if in.PeersViaGateway {
				// No tunnel port: the host kernel routes the slice into WireGuard.
				in.Networks[k].Tunnels = append(in.Networks[k].Tunnels, flows.Tunnel{Peer: peer.Peer, Subnet: peer.Slice})
				continue
			}
			t := flows.Tunnel{Peer: peer.Peer, Port: peer.Tunnel, OFPort: ofports[peer.Tunnel], Subnet: peer.Slice}
			if d.FlowTunnel != "" {
				t.Remote = peer.Remote
			}
			if t.OFPort <= 0 {
				// Not numbered yet: the other mode's port to that peer, if one is left.
				if l, ok := legacy[peer.Peer]; ok && d.FlowTunnel != "" {
					t.Port, t.OFPort, t.Remote = l.Port, l.OFPort, netip.Addr{}
				} else if flowPort.OFPort > 0 && d.FlowTunnel == "" {
					t.Port, t.OFPort, t.Remote = flowPort.Port, flowPort.OFPort, peer.Remote
				}
			}
			if t.OFPort > 0 {
				in.Networks[k].Tunnels = append(in.Networks[k].Tunnels, t)
			}
		}
	}
	// The other mode's ports still there: admitted from until they go (flows.Plan leaves out
	// those the tunnels use).
	if !in.PeersViaGateway && (len(legacy) > 0 || flowPort.OFPort > 0) {
		for _, peer := range slices.Sorted(maps.Keys(legacy)) {
			if d.FlowTunnel != "" {
				in.Retiring = append(in.Retiring, flows.Tunnel{Peer: peer, Port: legacy[peer].Port, OFPort: legacy[peer].OFPort})
			}
		}
		if flowPort.OFPort > 0 && d.FlowTunnel == "" {
			for _, t := range d.Tunnels {
				in.Retiring = append(in.Retiring, flows.Tunnel{Peer: t.Peer, Port: flowPort.Port, OFPort: flowPort.OFPort, Remote: t.Remote})
			}
		}
	}
	return in
}

// containerOfport is the OpenFlow port number of a container port's flows: the number
// ovs-vswitchd gave it, or while it has none yet the number fabricd requested for it.
func containerOfport(p ovsdb.PortInfo) int {
	if p.Ofport == 0 && p.OfportRequest > 0 {
		return p.OfportRequest
	}
	return p.Ofport
}

// applyPipeline makes ovsfabric's OpenFlow flows on the bridge match the pipeline mode.
// Ports ovs-vswitchd has not numbered yet are left for the next sync, which their OVSDB
// update triggers.
// It reports whether the whole pipeline is now on the bridge.
func (c *Controller) applyPipeline(ctx context.Context, d fabric.Desired, ports []ovsdb.PortInfo) (bool, error) {
	c.pipeMu.Lock()
	defer c.pipeMu.Unlock()
	desired, err := c.pipe.flows(d, c.withPending(ports))
	if errors.Is(err, flows.ErrNotReady) {
		c.log.Debug("gateway port has no OpenFlow number yet; flows wait for the next sync")
		return false, nil
	}
	if err != nil {
		return false, err
	}
	// A sync that wants exactly the flows the bridge was left with (an OVSDB change that
	// changed no flow, such as ovs-vswitchd numbering a port whose flows an attach added)
	// does not dump the bridge: what only a dump shows (flows someone else changed) the
	// resync pass finds (the sync the --resync period wakes, or any after it passed).
	if c.flowsApplied != nil && !c.verifying && time.Since(c.flowsChecked) < c.s.Resync && sameFlows(desired, c.flowsApplied) {
		c.tunnelsInFlows = c.pipe.tunnelPorts()
		return true, nil
	}
	// While attaches are adding their flows (PortsAdded until PortsRecorded), a sync only
	// adds, as they do, without dumping the bridge: a full reconcile holds pipeMu for the
	// dump, and every attach waiting to end (PortsRecorded) waited for it. What is stale, the
	// first sync after them removes.
	if c.flowsApplied != nil && len(c.pending) > 0 && time.Since(c.flowsChecked) < c.s.Resync {
		n, err := flows.AddNew(ctx, c.of, desired, c.flowsApplied)
		if err != nil {
			c.flowsApplied = nil
			return false, fmt.Errorf("add flows on %s: %w", d.Bridge, err)
		}
		if n > 0 {
			c.flowsApplied = overlay(c.flowsApplied, desired)
			c.log.Info("flows added", "bridge", d.Bridge, "pipeline", c.pipe.name(), "added", n, "attaches_in_flight", len(c.pending))
		}
		return true, nil
	}
	c.metrics.flowDumps.Inc()
	res, err := c.norm.Reconcile(ctx, c.of, desired)
	if err != nil {
		c.flowsApplied = nil
		return false, fmt.Errorf("reconcile flows on %s: %w", d.Bridge, err)
	}
	c.flowsApplied, c.flowsChecked = desired, time.Now()
	c.tunnelsInFlows = c.pipe.tunnelPorts()
	if res.Changed() {
		c.log.Info("flows updated", "bridge", d.Bridge, "pipeline", c.pipe.name(), "result", res.String())
	}
	return true, nil
}

// PortsAdded programs the flows of container ports about to be recorded in OVSDB at once,
// in one bundle, rather than on the loop's next sync, so that a container can send the
// moment ovs-vswitchd has taken its port. The ports carry the OpenFlow port numbers they
// request (OVS accepts flows for a port that does not exist yet). Until PortsRecorded, every
// flow reconcile keeps their flows, so that one running before their OVSDB transaction does
// not remove them.
func (c *Controller) PortsAdded(ctx context.Context, ports []ovsdb.PortInfo) error {
	c.mu.Lock()
	d := c.desired
	c.mu.Unlock()
	c.pipeMu.Lock()
	defer c.pipeMu.Unlock()
	if c.pending == nil {
		c.pending = map[string]ovsdb.PortInfo{}
	}
	names := make([]string, len(ports))
	for k, p := range ports {
		c.pending[p.Name], names[k] = p, p.Name
	}
	if c.flowsApplied == nil {
		return nil // no reconcile has succeeded yet, or L2: the loop's next one does it all
	}
	have, err := c.sw.Ports(ctx, c.s.Bridge)
	if err != nil {
		return fmt.Errorf("read ports of %s: %w", c.s.Bridge, err)
	}
	desired, err := c.pipe.flows(d, c.withPending(have))
	if err != nil {
		return err
	}
	// Only adds (the new ports' flows), without dumping the bridge: the fast path.
	start := time.Now()
	n, err := flows.AddNew(ctx, c.of, desired, c.flowsApplied)
	c.log.Debug("new ports' flows", "ports", names, "took", time.Since(start).Round(time.Millisecond))
	if err != nil {
		c.flowsApplied = nil
		return fmt.Errorf("add flows for %v: %w", names, err)
	}
	if n > 0 {
		c.flowsApplied = overlay(c.flowsApplied, desired)
		c.log.Info("flows added", "bridge", d.Bridge, "ports", names, "added", n)
	}
	return nil
}

// overlay is what the bridge holds after flows.AddNew added desired to applied: desired, and
// the flows of applied it has no flow for (stale ones, which the next reconcile removes).
func overlay(applied, desired []flows.Flow) []flows.Flow {
	type key struct {
		table  int
		cookie uint64
	}
	have := make(map[key]bool, len(desired))
	for _, f := range desired {
		have[key{f.Table, f.Cookie}] = true
	}
	out := slices.Clone(desired)
	for _, f := range applied {
		if !have[key{f.Table, f.Cookie}] {
			out = append(out, f)
		}
	}
	return out
}

// sameFlows reports whether a and b hold the same flows, in any order.
func sameFlows(a, b []flows.Flow) bool {
	if len(a) != len(b) {
		return false
	}
	// Plan is deterministic: unchanged flows come in the same order, compared without a map.
	if slices.Equal(a, b) {
		return true
	}
	n := make(map[flows.Flow]int, len(a))
	for _, f := range a {
		n[f]++
	}
	for _, f := range b {
		if n[f] == 0 {
			return false
		}
		n[f]--
	}
	return true
}

// PortsRecorded ends what PortsAdded began: the recorded ports are in OVSDB now, the failed
// ones never will be, and their flows are removed at once (a full flow reconcile).
func (c *Controller) PortsRecorded(ctx context.Context, recorded, failed []string) error {
	c.mu.Lock()
	d := c.desired
	c.mu.Unlock()
	c.pipeMu.Lock()
	defer c.pipeMu.Unlock()
	// A recorded port stays pending until a port snapshot shows it (withPending): a sync
	// that read the ports before the transaction and plans after this call would otherwise
	// remove the new port's flows until its next sync.
	if c.recordedAt == nil {
		c.recordedAt = map[string]time.Time{}
	}
	for _, name := range recorded {
		if _, ok := c.pending[name]; ok {
			c.recordedAt[name] = time.Now()
		}
	}
	for _, name := range failed {
		delete(c.pending, name)
		delete(c.recordedAt, name)
	}
	if len(failed) == 0 || c.flowsApplied == nil {
		return nil
	}
	have, err := c.sw.Ports(ctx, c.s.Bridge)
	if err != nil {
		return fmt.Errorf("read ports of %s: %w", c.s.Bridge, err)
	}
	desired, err := c.pipe.flows(d, c.withPending(have))
	if err != nil {
		return err
	}
	res, err := c.norm.Reconcile(ctx, c.of, desired)
	if err != nil {
		c.flowsApplied = nil
		return fmt.Errorf("remove flows of %v: %w", failed, err)
	}
	c.flowsApplied, c.flowsChecked = desired, time.Now()
	c.log.Info("flows of failed attaches removed", "bridge", d.Bridge, "ports", failed, "result", res.String())
	return nil
}

// withPending is ports (as OVSDB shows them) with the ports PortsAdded announced that are
// not there yet. A port reported recorded leaves pending once ports shows it (or, should it
// be gone again before any snapshot showed it, after --resync). pipeMu must be held.
func (c *Controller) withPending(ports []ovsdb.PortInfo) []ovsdb.PortInfo {
	if len(c.pending) == 0 {
		return ports
	}
	out := slices.Clone(ports)
	for _, name := range slices.Sorted(maps.Keys(c.pending)) {
		at, recorded := c.recordedAt[name]
		switch {
		case slices.ContainsFunc(ports, func(p ovsdb.PortInfo) bool { return p.Name == name }):
			if recorded {
				delete(c.pending, name)
				delete(c.recordedAt, name)
			}
		case recorded && time.Since(at) > c.s.Resync:
			delete(c.pending, name)
			delete(c.recordedAt, name)
		default:
			out = append(out, c.pending[name])
		}
	}
	return out
}

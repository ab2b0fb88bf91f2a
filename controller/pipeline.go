package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"time"

	"github.com/ovsfabric/ovsfabric/config"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/flows"
	"github.com/ovsfabric/ovsfabric/ovsdb"
)

// applyPipeline makes ovsfabric's OpenFlow flows on the bridge match the pipeline mode: the
// routed pipeline's flows in routed mode, none in L2 mode (so switching modes cleans up).
// Ports ovs-vswitchd has not numbered yet are left for the next sync, which their OVSDB
// update triggers.
func (c *Controller) applyPipeline(ctx context.Context, d fabric.Desired, view []fabric.Peer) error {
	if c.of == nil {
		return nil
	}
	c.pipeMu.Lock()
	defer c.pipeMu.Unlock()
	var desired []flows.Flow
	if c.s.Pipeline == config.PipelineRouted {
		var err error
		desired, err = c.routedFlows(ctx, d, view)
		if errors.Is(err, flows.ErrNotReady) {
			c.log.Debug("gateway port has no OpenFlow number yet; flows wait for the next sync")
			return nil
		}
		if err != nil {
			return err
		}
	}
	res, err := flows.Reconcile(ctx, c.of, desired)
	if err != nil {
		c.flowsApplied = nil
		return fmt.Errorf("reconcile flows on %s: %w", d.Bridge, err)
	}
	c.flowsApplied = desired
	if res.Changed() {
		c.log.Info("flows updated", "bridge", d.Bridge, "pipeline", c.s.Pipeline, "result", res.String())
	}
	return nil
}

// routedFlows are the routed pipeline's flows for the bridge as OVSDB shows it now
// (flows.ErrNotReady while the gateway port has no OpenFlow number).
func (c *Controller) routedFlows(ctx context.Context, d fabric.Desired, view []fabric.Peer) ([]flows.Flow, error) {
	in, err := c.pipelineInput(ctx, d, view)
	if err != nil {
		return nil, err
	}
	fs, err := flows.Plan(in)
	if err != nil {
		return nil, fmt.Errorf("plan flows: %w", err)
	}
	return fs, nil
}

// pipelineInput gathers what flows.Plan needs from OVSDB: OpenFlow port numbers and MACs.
func (c *Controller) pipelineInput(ctx context.Context, d fabric.Desired, view []fabric.Peer) (flows.Input, error) {
	ports, err := c.sw.Ports(ctx, d.Bridge)
	if err != nil {
		return flows.Input{}, fmt.Errorf("read ports of %s: %w", d.Bridge, err)
	}
	in := flows.Input{Subnet: d.Gateway.Masked(), ClusterCIDR: c.s.Cluster}
	subnets := map[string]netip.Prefix{}
	for _, t := range d.Tunnels {
		for _, p := range view {
			if p.Name == t.Peer {
				subnets[t.Name] = p.Subnet
			}
		}
	}
	for _, p := range ports {
		switch {
		case p.Name == d.GatewayPort:
			mac, _ := net.ParseMAC(p.MACInUse)
			in.Gateway = flows.Port{Name: p.Name, OFPort: p.Ofport, MAC: mac, IP: d.Gateway.Addr()}
		case p.ExternalIDs[ovsdb.KeyOwner] != c.s.Name:
		case p.ExternalIDs[ovsdb.KeyRole] == ovsdb.RoleContainer:
			mac, err := net.ParseMAC(p.ExternalIDs[ovsdb.KeyMAC])
			ip, perr := netip.ParsePrefix(p.ExternalIDs[ovsdb.KeyIP])
			if err != nil || perr != nil {
				continue
			}
			in.Containers = append(in.Containers, flows.Port{Name: p.Name, OFPort: p.Ofport, MAC: mac, IP: ip.Addr()})
		case p.ExternalIDs[ovsdb.KeyRole] == ovsdb.RoleTunnel:
			if sub, ok := subnets[p.Name]; ok {
				in.Tunnels = append(in.Tunnels, flows.Tunnel{Peer: p.ExternalIDs[ovsdb.KeyPeer], Port: p.Name, OFPort: p.Ofport, Subnet: sub})
			}
		}
	}
	return in, nil
}

// portLiveWait bounds how long an attach waits for ovs-vswitchd to take its new port.
const portLiveWait = 3 * time.Second

// makeLive waits until ovs-vswitchd has numbered the new port (it is then in the datapath) and,
// in routed mode, programs its flows at once rather than on the loop's next sync, so that the
// container can send the moment attach returns.
func (c *Controller) makeLive(ctx context.Context, port string) error {
	if c.of == nil {
		return nil // no data path is driven (unit tests): no ovs-vswitchd to wait for
	}
	ctx, cancel := context.WithTimeout(ctx, portLiveWait)
	defer cancel()
	for {
		ports, err := c.sw.Ports(ctx, c.s.Bridge)
		if err != nil {
			return fmt.Errorf("read ports of %s: %w", c.s.Bridge, err)
		}
		if i := slices.IndexFunc(ports, func(p ovsdb.PortInfo) bool { return p.Name == port }); i >= 0 {
			if p := ports[i]; p.Ofport > 0 {
				break
			} else if p.Error != "" {
				return fmt.Errorf("ovs-vswitchd cannot add port %s: %s", port, p.Error)
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("port %s has no OpenFlow port number after %s: %w", port, portLiveWait, ctx.Err())
		case <-time.After(5 * time.Millisecond):
		}
	}
	if c.s.Pipeline != config.PipelineRouted {
		return nil
	}
	c.mu.Lock()
	d, view := c.desired, c.peerView
	c.mu.Unlock()
	c.pipeMu.Lock()
	defer c.pipeMu.Unlock()
	if c.flowsApplied == nil {
		return nil // no reconcile has succeeded yet: the loop's next one does it all
	}
	desired, err := c.routedFlows(ctx, d, view)
	if err != nil {
		return err
	}
	// Only adds (the new port's flows), without dumping the bridge: the fast path.
	start := time.Now()
	n, err := flows.AddNew(ctx, c.of, desired, c.flowsApplied)
	c.log.Debug("new port's flows", "port", port, "took", time.Since(start).Round(time.Millisecond))
	if err != nil {
		c.flowsApplied = nil
		return fmt.Errorf("add flows for %s: %w", port, err)
	}
	if n > 0 {
		c.flowsApplied = desired
		c.log.Info("flows added", "bridge", d.Bridge, "port", port, "added", n)
	}
	return nil
}

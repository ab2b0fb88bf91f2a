package controller

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/ovsfabric/ovsfabric/config"
	"github.com/ovsfabric/ovsfabric/endpoint"
	"github.com/ovsfabric/ovsfabric/fabric"
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
}

// newPipeline is the pipeline s asks for (Validate accepted only these two).
func newPipeline(s config.Settings) pipeline {
	if s.Pipeline == config.PipelineL2 {
		return l2Pipeline{}
	}
	return routedPipeline{node: s.Name, cluster: s.Cluster}
}

// l2Pipeline is the flood-and-learn baseline: br-int runs NORMAL (standalone fail mode) and
// the host kernel routes between subnets through the gateway port. It wants no flows of
// ovsfabric's, so switching from routed cleans up.
type l2Pipeline struct{}

func (l2Pipeline) name() string                                                 { return config.PipelineL2 }
func (l2Pipeline) flows(fabric.Desired, []ovsdb.PortInfo) ([]flows.Flow, error) { return nil, nil }

// routedPipeline routes cross-host traffic inside OVS with an explicit OpenFlow pipeline
// (package flows): no hairpin through the host kernel, no broadcast across tunnels.
type routedPipeline struct {
	node    string
	cluster netip.Prefix
}

func (routedPipeline) name() string { return config.PipelineRouted }

func (p routedPipeline) flows(d fabric.Desired, ports []ovsdb.PortInfo) ([]flows.Flow, error) {
	fs, err := flows.Plan(p.input(d, ports))
	if err != nil && !errors.Is(err, flows.ErrNotReady) {
		return nil, fmt.Errorf("plan flows: %w", err)
	}
	return fs, err
}

// input is what flows.Plan needs: the plan's tunnels (with the subnets they lead to) and
// the ports' OpenFlow numbers and MACs.
func (p routedPipeline) input(d fabric.Desired, ports []ovsdb.PortInfo) flows.Input {
	in := flows.Input{Subnet: d.Gateway.Masked(), ClusterCIDR: p.cluster}
	tunnels := make(map[string]fabric.Tunnel, len(d.Tunnels))
	for _, t := range d.Tunnels {
		tunnels[t.Name] = t
	}
	for _, port := range ports {
		switch {
		case port.Name == d.GatewayPort:
			mac, _ := net.ParseMAC(port.MACInUse)
			in.Gateway = flows.Port{Name: port.Name, OFPort: port.Ofport, MAC: mac, IP: d.Gateway.Addr()}
		case port.Owner() != p.node:
		case port.Role() == ovsdb.RoleContainer:
			r, _ := endpoint.Decode(port, p.node)
			if r.MAC == nil || !r.Addr.IsValid() {
				continue
			}
			in.Containers = append(in.Containers, flows.Port{Name: port.Name, OFPort: port.Ofport, MAC: r.MAC, IP: r.Addr.Addr()})
		case port.Role() == ovsdb.RoleTunnel:
			if t, ok := tunnels[port.Name]; ok {
				in.Tunnels = append(in.Tunnels, flows.Tunnel{Peer: t.Peer, Port: port.Name, OFPort: port.Ofport, Subnet: t.Claim.Subnet})
			}
		}
	}
	return in
}

// applyPipeline makes ovsfabric's OpenFlow flows on the bridge match the pipeline mode.
// Ports ovs-vswitchd has not numbered yet are left for the next sync, which their OVSDB
// update triggers.
// It reports whether the whole pipeline is now on the bridge.
func (c *Controller) applyPipeline(ctx context.Context, d fabric.Desired, ports []ovsdb.PortInfo) (bool, error) {
	c.pipeMu.Lock()
	defer c.pipeMu.Unlock()
	desired, err := c.pipe.flows(d, ports)
	if errors.Is(err, flows.ErrNotReady) {
		c.log.Debug("gateway port has no OpenFlow number yet; flows wait for the next sync")
		return false, nil
	}
	if err != nil {
		return false, err
	}
	res, err := flows.Reconcile(ctx, c.of, desired)
	if err != nil {
		c.flowsApplied = nil
		return false, fmt.Errorf("reconcile flows on %s: %w", d.Bridge, err)
	}
	c.flowsApplied = desired
	if res.Changed() {
		c.log.Info("flows updated", "bridge", d.Bridge, "pipeline", c.pipe.name(), "result", res.String())
	}
	return true, nil
}

// portLiveWait bounds how long an attach waits for ovs-vswitchd to take its new port.
const portLiveWait = 3 * time.Second

// PortAdded waits until ovs-vswitchd has numbered the new port (it is then in the datapath;
// woken by OVSDB change events) and programs its flows at once rather than on the loop's
// next sync, so that the container can send the moment attach returns.
func (c *Controller) PortAdded(ctx context.Context, port string) error {
	ctx, cancel := context.WithTimeout(ctx, portLiveWait)
	defer cancel()
	if _, err := c.sw.WaitPort(ctx, c.s.Bridge, port); err != nil {
		return err
	}
	c.mu.Lock()
	d := c.desired
	c.mu.Unlock()
	c.pipeMu.Lock()
	defer c.pipeMu.Unlock()
	if c.flowsApplied == nil {
		return nil // no reconcile has succeeded yet, or L2: the loop's next one does it all
	}
	ports, err := c.sw.Ports(ctx, c.s.Bridge)
	if err != nil {
		return fmt.Errorf("read ports of %s: %w", c.s.Bridge, err)
	}
	desired, err := c.pipe.flows(d, ports)
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

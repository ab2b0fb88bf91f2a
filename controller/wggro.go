package controller

import (
	"context"
	"fmt"
	"time"

	"github.com/ovsfabric/ovsfabric/config"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/netplumb"
	"github.com/ovsfabric/ovsfabric/ovsdb"
)

// The GRO veth pair of an encrypted host (docs/encryption.md): br-int outputs the packets for
// WireGuard peers to it instead of the gateway port, and the kernel's end coalesces them
// (GRO) before routing them into WireGuard, which encrypts a GSO packet several times cheaper
// than its segments one by one.
const (
	// groVethMTU is above any sensible container MTU, so an oversized packet reaches the
	// kernel and gets its "fragmentation needed", as through the gateway port.
	groVethMTU = 9000
	// groFlushTimeout lets GRO hold packets across NAPI polls: OVS sends one packet per
	// poll. 50 µs coalesced about 11 segments per GSO packet in the lab.
	groFlushTimeout = 50 * time.Microsecond
)

// wantGROVeth says whether plan d uses the GRO veth pair: with encryption in the routed
// pipeline (the L2 pipeline switches to the gateway's MAC by learning; a second device with
// that MAC would confuse it, so it keeps the gateway port).
func (c *Controller) wantGROVeth(d fabric.Desired) bool {
	return d.Encryption.Encrypted() && c.s.Pipeline != config.PipelineL2
}

// groVeth is the host state of the GRO veth pair for plan d: made or removed. Its kernel end
// has the gateway's pinned MAC, the destination the to-peer flows already write.
func (c *Controller) groVeth(d fabric.Desired) netplumb.GROVeth {
	kernel, port := fabric.GROVethNames(d.GatewayPort)
	return netplumb.GROVeth{KernelDev: kernel, SwitchDev: port, Enabled: c.wantGROVeth(d),
		MAC: fabric.GatewayMAC(c.s.Name), MTU: groVethMTU, FlushTimeout: groFlushTimeout}
}

// setGROUsable records whether the host could make the GRO veth pair the plan wants
// (netplumb.HostChanges.GROUnusable from the last host state) and logs a change.
func (c *Controller) setGROUsable(why string) {
	c.mu.Lock()
	was := c.groUnusable
	c.groUnusable = why
	c.mu.Unlock()
	if why != was && why != "" {
		c.log.Warn("GRO veth not used: packets for WireGuard take the gateway port (slower)", "why", why)
	}
}

// groPortWanted says whether br-int should have the GRO veth port: plan d uses the pair and
// the host could make it.
func (c *Controller) groPortWanted(d fabric.Desired) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.wantGROVeth(d) && c.groUnusable == ""
}

// ensureGROPort makes br-int's end of the GRO veth pair a port of the bridge (after the host
// state made the pair), marked with its role for `ovs-vsctl list port`.
func (c *Controller) ensureGROPort(ctx context.Context, d fabric.Desired) error {
	_, port := fabric.GROVethNames(d.GatewayPort)
	if err := c.sw.EnsurePort(ctx, d.Bridge, ovsdb.PortSpec{Name: port, Owner: c.s.Name, Role: ovsdb.RoleWireGuardGRO}); err != nil {
		return fmt.Errorf("ensure GRO veth port %s: %w", port, err)
	}
	return nil
}

// dropGROPort removes br-int's end of the GRO veth pair when ports has it and plan d does not
// use it (switched to --encryption none or to the L2 pipeline, or the host cannot use it; the
// host state removed the pair itself).
func (c *Controller) dropGROPort(ctx context.Context, d fabric.Desired, ports []ovsdb.PortInfo) error {
	if c.groPortWanted(d) {
		return nil
	}
	_, port := fabric.GROVethNames(d.GatewayPort)
	for _, p := range ports {
		if p.Name == port && p.Role() == ovsdb.RoleWireGuardGRO && p.Owner() == c.s.Name {
			if err := c.sw.DeletePort(ctx, d.Bridge, port, c.s.Name); err != nil {
				return fmt.Errorf("remove GRO veth port %s: %w", port, err)
			}
			c.log.Info("GRO veth port removed", "port", port)
		}
	}
	return nil
}

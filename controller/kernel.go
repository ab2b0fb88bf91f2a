package controller

import (
	"context"
	"net/netip"

	"github.com/ovsfabric/ovsfabric/natrules"
	"github.com/ovsfabric/ovsfabric/netplumb"
)

// HostKernel is the Kernel of the network namespace fabricd runs in, through netplumb.
type HostKernel struct{}

// WaitLink waits for dev to appear (OVS creates internal ports asynchronously).
func (HostKernel) WaitLink(ctx context.Context, dev string) error { return netplumb.WaitLink(ctx, dev) }

// SetLinkUp sets dev up with the given MTU.
func (HostKernel) SetLinkUp(dev string, mtu int) (bool, error) { return netplumb.SetLinkUp(dev, mtu) }

// ReconcileAddrs makes dev's addresses within scope equal want.
func (HostKernel) ReconcileAddrs(dev string, want []netip.Prefix, scope netip.Prefix) (bool, error) {
	return netplumb.ReconcileAddrs(dev, want, scope)
}

// ReconcileRoutes makes fabricd's routes equal desired.
func (HostKernel) ReconcileRoutes(desired []netplumb.Route) (netplumb.RouteChanges, error) {
	return netplumb.ReconcileRoutes(desired)
}

// SetForwarding switches IPv4 forwarding.
func (HostKernel) SetForwarding(enabled bool) error { return netplumb.SetForwarding(enabled) }

// Attach creates a container's veth and configures its end inside the container.
func (HostKernel) Attach(a netplumb.Attachment) (netplumb.AttachResult, error) {
	return netplumb.Attach(a)
}

// Detach deletes a container's veth by its host end.
func (HostKernel) Detach(hostIf string) error { return netplumb.Detach(hostIf) }

// NetNSExists reports whether path is a network namespace.
func (HostKernel) NetNSExists(path string) bool { return netplumb.NetNSExists(path) }

// ReconcileNAT makes fabricd's nftables table equal r.
func (HostKernel) ReconcileNAT(r natrules.Rules) (bool, error) { return natrules.Reconcile(r) }

// ForgetNeighbor drops the host's ARP entry for ip on dev.
func (HostKernel) ForgetNeighbor(dev string, ip netip.Addr) error {
	return netplumb.ForgetNeighbor(dev, ip)
}

// DisableRedirects stops ICMP redirects out of the gateway port.
func (HostKernel) DisableRedirects(dev string) error { return netplumb.DisableRedirects(dev) }

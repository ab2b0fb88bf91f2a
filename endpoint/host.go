package endpoint

import (
	"net/netip"

	"github.com/ovsfabric/ovsfabric/natrules"
	"github.com/ovsfabric/ovsfabric/netplumb"
)

// HostPlumbing is the Host of the network namespace fabricd runs in, through netplumb and
// natrules.
type HostPlumbing struct{}

// Attach creates a container's veth and configures its end inside the container.
func (HostPlumbing) Attach(a netplumb.Attachment) (netplumb.AttachResult, error) {
	return netplumb.Attach(a)
}

// Detach deletes a container's veth by its host end.
func (HostPlumbing) Detach(hostIf string) error { return netplumb.Detach(hostIf) }

// NetNSExists reports whether path is a network namespace.
func (HostPlumbing) NetNSExists(path string) bool { return netplumb.NetNSExists(path) }

// ForgetNeighbor drops the host's ARP entry for ip on dev.
func (HostPlumbing) ForgetNeighbor(dev string, ip netip.Addr) error {
	return netplumb.ForgetNeighbor(dev, ip)
}

// ReconcileNAT makes fabricd's nftables table equal r.
func (HostPlumbing) ReconcileNAT(r natrules.Rules) (bool, error) { return natrules.Reconcile(r) }

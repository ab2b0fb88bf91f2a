package netplumb

import (
	"errors"
	"fmt"
	"net/netip"
	"syscall"

	"github.com/vishvananda/netlink"
)

// ForgetNeighbor deletes the neighbour (ARP) entry for ip on dev, if any. When an address
// moves to a new container, the host must not keep sending to the old container's MAC until
// the stale entry times out.
func ForgetNeighbor(dev string, ip netip.Addr) error {
	link, err := netlink.LinkByName(dev)
	if err != nil {
		return fmt.Errorf("forget neighbour %s on %s: %w", ip, dev, err)
	}
	err = netlink.NeighDel(&netlink.Neigh{LinkIndex: link.Attrs().Index, IP: ip.AsSlice(), Family: netlink.FAMILY_V4})
	if err != nil && !errors.Is(err, syscall.ENOENT) && !errors.Is(err, syscall.ESRCH) {
		return fmt.Errorf("forget neighbour %s on %s: %w", ip, dev, err)
	}
	return nil
}

package fabric

import (
	"fmt"
	"net/netip"
)

// Gateway is the gateway address of a host subnet: its first host address (e.g. 10.244.3.1).
func Gateway(subnet netip.Prefix) netip.Addr {
	return subnet.Masked().Addr().Next()
}

// broadcast is the last address of an IPv4 subnet.
func broadcast(subnet netip.Prefix) netip.Addr {
	b := subnet.Masked().Addr().As4()
	host := uint32(1)<<(32-subnet.Bits()) - 1
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// CheckContainerIP reports why ip cannot be given to a container in subnet, or nil.
// used holds the addresses already attached.
func CheckContainerIP(subnet netip.Prefix, ip netip.Addr, used map[netip.Addr]bool) error {
	switch {
	case !ip.IsValid():
		return fmt.Errorf("invalid IP address")
	case !ip.Is4():
		return fmt.Errorf("%s is not an IPv4 address", ip)
	case !subnet.Contains(ip):
		return fmt.Errorf("%s is outside this host's subnet %s", ip, subnet)
	case ip == subnet.Masked().Addr():
		return fmt.Errorf("%s is the network address of %s", ip, subnet)
	case ip == broadcast(subnet):
		return fmt.Errorf("%s is the broadcast address of %s", ip, subnet)
	case ip == Gateway(subnet):
		return fmt.Errorf("%s is the gateway of %s", ip, subnet)
	case used[ip]:
		return fmt.Errorf("%s is already in use", ip)
	}
	return nil
}

// AllocateIP returns the lowest free container address of subnet.
func AllocateIP(subnet netip.Prefix, used map[netip.Addr]bool) (netip.Addr, error) {
	last := broadcast(subnet)
	for ip := Gateway(subnet).Next(); ip.IsValid() && ip.Less(last); ip = ip.Next() {
		if !used[ip] {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("subnet %s has no free address", subnet)
}

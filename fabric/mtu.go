package fabric

import "fmt"

// TunnelType is the encapsulation used between hosts.
type TunnelType string

// The tunnel types fabricd builds.
const (
	TunnelVXLAN TunnelType = "vxlan"
	TunnelGRE   TunnelType = "gre"
)

// ParseTunnelType validates s as a tunnel type.
func ParseTunnelType(s string) (TunnelType, error) {
	switch TunnelType(s) {
	case TunnelVXLAN, TunnelGRE:
		return TunnelType(s), nil
	}
	return "", fmt.Errorf("unknown tunnel type %q (want gre or vxlan)", s)
}

// Overhead is the number of bytes encapsulation adds to a container's IP packet. OVS carries
// Ethernet frames in both tunnel types, so the inner Ethernet header (14) counts too:
//   - VXLAN: outer IP (20 / 40) + UDP 8 + VXLAN 8 + inner Ethernet 14 = 50 / 70
//   - GRE (transparent Ethernet bridging, with the optional 4-byte key counted so that a later
//     keyed setup never needs a smaller MTU): outer IP (20 / 40) + GRE 8 + inner Ethernet 14 = 42 / 62
func (t TunnelType) Overhead(ipv6Underlay bool) int {
	outer := 20
	if ipv6Underlay {
		outer = 40
	}
	switch t {
	case TunnelGRE:
		return outer + 8 + 14
	default:
		return outer + 8 + 8 + 14
	}
}

// MinMTU is the smallest container MTU fabricd accepts (IPv4 needs 68; we want room for TCP).
const MinMTU = 576

// ContainerMTU is the MTU of container interfaces and the gateway: the underlay MTU less the
// tunnel overhead. It errors when the underlay is too small to carry a useful packet.
func ContainerMTU(underlayMTU int, t TunnelType, ipv6Underlay bool) (int, error) {
	mtu := underlayMTU - t.Overhead(ipv6Underlay)
	if mtu < MinMTU {
		return 0, fmt.Errorf("underlay MTU %d leaves %d for containers over %s, below %d", underlayMTU, mtu, t, MinMTU)
	}
	return mtu, nil
}

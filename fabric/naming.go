package fabric

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
)

// MaxIfNameLen is the longest interface name the kernel accepts (IFNAMSIZ - 1).
const MaxIfNameLen = 15

// hashLen is how many hex digits of a name's SHA-256 a port name carries: 10 digits (40 bits)
// keep a collision among a few thousand peers below one in a hundred million.
const hashLen = 10

func shortHash(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])[:hashLen]
}

// TunnelPortName is the OVS port (and interface) name of the tunnel toward peer: a prefix that
// says the tunnel type and a short hash of the peer's name, stable across restarts and at most
// 15 bytes, e.g. "vxl-3f9a1c0b2e".
func TunnelPortName(t TunnelType, peer string) string {
	prefix := "vxl-"
	if t == TunnelGRE {
		prefix = "gre-"
	}
	return prefix + shortHash(peer)
}

// ContainerPortName is the host-side veth (and OVS port) name of an attachment, derived from a
// stable key of the container (its netns path or container ID), e.g. "vf3f9a1c0b2e".
func ContainerPortName(key string) string {
	return "vf" + shortHash(key)
}

// ValidIfName reports whether name can be a Linux interface and OVS port name.
func ValidIfName(name string) error {
	if name == "" {
		return fmt.Errorf("interface name is empty")
	}
	if len(name) > MaxIfNameLen {
		return fmt.Errorf("interface name %q is %d bytes, more than %d", name, len(name), MaxIfNameLen)
	}
	for _, r := range name {
		if r == '/' || r == ':' || r <= ' ' || r > '~' {
			return fmt.Errorf("interface name %q contains %q", name, r)
		}
	}
	if name == "." || name == ".." {
		return fmt.Errorf("interface name %q is not allowed", name)
	}
	return nil
}

// GatewayMAC is the pinned MAC of a node's gateway port: locally administered, unicast, and
// derived from the node name so it is the same across restarts of OVS and fabricd.
func GatewayMAC(node string) net.HardwareAddr {
	sum := sha256.Sum256([]byte("gateway/" + node))
	return net.HardwareAddr{0x0a, sum[0], sum[1], sum[2], sum[3], sum[4]}
}

package fabric

import (
	"fmt"
	"net/netip"
)

// Encryption is how container traffic crosses the underlay between hosts (--encryption).
type Encryption string

// The encryption modes.
const (
	// EncryptionNone carries container traffic in OVS tunnels, in the clear.
	EncryptionNone Encryption = "none"
	// EncryptionWireGuard routes container traffic between hosts through a WireGuard
	// interface (docs/encryption.md): no tunnel ports; the to-peer flows hand packets to the
	// host kernel through the gateway port, and the kernel routes each peer slice into
	// WireGuard.
	EncryptionWireGuard Encryption = "wireguard"
)

// ParseEncryption validates s as an encryption mode; "" is EncryptionNone.
func ParseEncryption(s string) (Encryption, error) {
	switch Encryption(s) {
	case "", EncryptionNone:
		return EncryptionNone, nil
	case EncryptionWireGuard:
		return EncryptionWireGuard, nil
	}
	return "", fmt.Errorf("unknown encryption %q (want none or wireguard)", s)
}

// Encrypted reports whether e is a mode that encrypts.
func (e Encryption) Encrypted() bool { return e == EncryptionWireGuard }

// WireGuardOverhead is what WireGuard adds to a container's IP packet: outer IP (20 / 40) +
// UDP 8 + WireGuard header 16 + authentication tag 16 = 60 / 80. It carries IP packets, not
// Ethernet frames: no inner Ethernet header.
func WireGuardOverhead(ipv6Underlay bool) int {
	if ipv6Underlay {
		return 80
	}
	return 60
}

// FabricMTU is the MTU of container interfaces, the gateway and (when encrypted) the
// WireGuard interface: the underlay MTU less the overhead of the tunnel type, or of
// WireGuard when e encrypts (no tunnel is built then).
func FabricMTU(underlayMTU int, t TunnelType, e Encryption, ipv6Underlay bool) (int, error) {
	if !e.Encrypted() {
		return ContainerMTU(underlayMTU, t, ipv6Underlay)
	}
	mtu := underlayMTU - WireGuardOverhead(ipv6Underlay)
	if mtu < MinMTU {
		return 0, fmt.Errorf("underlay MTU %d leaves %d for containers over WireGuard, below %d", underlayMTU, mtu, MinMTU)
	}
	return mtu, nil
}

// WireGuardFacts is this host's WireGuard configuration, for Plan (Facts.WireGuard).
type WireGuardFacts struct {
	// Interface is the WireGuard interface the peer slices are routed into (wgfab0).
	Interface string
}

// WireGuardPeer is one desired WireGuard peer: a peer host with its public key, endpoint and
// every slice it owns, in every network this host routes to it.
type WireGuardPeer struct {
	Peer string
	// Key is the peer's public key as gossip announced it (base64).
	Key      string
	Endpoint netip.AddrPort
	// AllowedIPs are its slices, default network first, then by network name.
	AllowedIPs []netip.Prefix
}

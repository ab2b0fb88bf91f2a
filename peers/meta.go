package peers

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"

	"github.com/hashicorp/memberlist"
)

// ProtocolVersion is the version of what fabricd nodes announce and expect of each other.
// Nodes with different versions refuse each other (see DefaultCompatible).
const ProtocolVersion = 1

// Tunnel types a node may announce in Meta.Tunnel.
const (
	TunnelGRE   = "gre"
	TunnelVXLAN = "vxlan"
)

// Meta is what a node announces to the others in its memberlist node metadata. It is
// encoded as JSON with short keys and must fit memberlist.MetaMaxSize (512 bytes); a
// typical IPv4 node takes about 110 bytes, an IPv6 one about 190.
type Meta struct {
	// Proto is the announcing node's ProtocolVersion.
	Proto int
	// Addr is the underlay IP the others build their tunnels to.
	Addr netip.Addr
	// Subnet is the node's claimed container subnet; the zero Prefix while unclaimed.
	Subnet netip.Prefix
	// SubnetSince is when the claim was made (Unix milliseconds, the claimant's clock): shown
	// to operators, and what nodes of the previous version order competing claims by.
	SubnetSince int64
	// SubnetSeq is the claim's logical (Lamport) time, by which nodes of this version order
	// competing claims (fabric.Claim); 0 when the node is of the previous version.
	SubnetSeq uint64
	// Retained lists subnet claims the node keeps reserved for nodes that went (died or
	// left), so that a new node does not pick them; oldest first, as many as fit.
	Retained []RetainedClaim
	// Tunnel is the tunnel type, TunnelGRE or TunnelVXLAN.
	Tunnel string
	// ClusterCIDR is the network all subnets are carved from.
	ClusterCIDR netip.Prefix
	// MTU is the node's container MTU; 0 when not announced.
	MTU int
	// Encryption is the node's data-plane encryption: "" (none) or EncryptionWireGuard.
	Encryption string
	// WireGuardKey is the node's WireGuard public key (base64, 44 characters) and
	// WireGuardPort its WireGuard UDP port, with Encryption EncryptionWireGuard. Gossip's
	// key (--gossip-key-file) is what authenticates them.
	WireGuardKey  string
	WireGuardPort int
}

// EncryptionWireGuard is the Meta.Encryption of a node whose data plane runs over WireGuard.
const EncryptionWireGuard = "wireguard"

// RetainedClaim is a subnet claim a node keeps reserved for another node that went.
type RetainedClaim struct {
	// Node is the name of the node that went.
	Node string `json:"n"`
	// Subnet is its claimed subnet.
	Subnet netip.Prefix `json:"s"`
	// Seq is its claim's logical time (0: unknown).
	Seq uint64 `json:"q,omitempty"`
}

// Equal reports whether m and o announce the same (Meta holds a slice, so == does not
// compile; comparing the encodings also stays right as fields are added).
func (m Meta) Equal(o Meta) bool {
	a, err1 := json.Marshal(wireMeta(m))
	b, err2 := json.Marshal(wireMeta(o))
	return err1 == nil && err2 == nil && bytes.Equal(a, b)
}

// wireMeta is Meta's encoding: short keys keep it far below memberlist.MetaMaxSize.
//
// Compatibility: keys are only ever added, with omitempty, and decoders ignore keys they do
// not know, so nodes of adjacent versions read each other's metadata (Proto stays 1 as long
// as that holds). Version 1 had v, a, s, t, u, c and m; "q" (SubnetSeq) and "r" (Retained)
// were added later. A node of the first version ignores both and keeps ordering competing
// claims by "t"; a newer node orders a claim without "q" the same way (see fabric.Claim.Wins),
// so both agree on the winner during a rolling upgrade.
type wireMeta struct {
	Proto       int             `json:"v"`
	Addr        netip.Addr      `json:"a,omitzero"`
	Subnet      netip.Prefix    `json:"s,omitzero"`
	SubnetSince int64           `json:"t,omitempty"`
	SubnetSeq   uint64          `json:"q,omitempty"`
	Retained    []RetainedClaim `json:"r,omitempty"`
	Tunnel      string          `json:"u,omitempty"`
	ClusterCIDR netip.Prefix    `json:"c,omitzero"`
	MTU         int             `json:"m,omitempty"`
	// Added with encryption (about 75 bytes, taken from the room for retained claims).
	Encryption    string `json:"e,omitempty"`
	WireGuardKey  string `json:"wk,omitempty"`
	WireGuardPort int    `json:"wp,omitempty"`
}

// Validate checks that m is complete and consistent: a protocol version, a valid underlay
// address, a known tunnel type, a cluster CIDR and, when claimed, a subnet inside it.
func (m Meta) Validate() error {
	switch {
	case m.Proto < 1:
		return fmt.Errorf("protocol version %d: must be at least 1", m.Proto)
	case !m.Addr.IsValid() || m.Addr.IsUnspecified():
		return fmt.Errorf("underlay address %q: must be a unicast IP", m.Addr)
	case m.Addr.Zone() != "":
		return fmt.Errorf("underlay address %s: zones are not supported", m.Addr)
	case m.Tunnel != TunnelGRE && m.Tunnel != TunnelVXLAN:
		return fmt.Errorf("tunnel type %q: must be %q or %q", m.Tunnel, TunnelGRE, TunnelVXLAN)
	case !m.ClusterCIDR.IsValid():
		return errors.New("cluster CIDR missing")
	case m.ClusterCIDR != m.ClusterCIDR.Masked():
		return fmt.Errorf("cluster CIDR %s has host bits set", m.ClusterCIDR)
	case m.SubnetSince < 0:
		return fmt.Errorf("subnet claim time %d is negative", m.SubnetSince)
	case m.MTU < 0 || m.MTU > 65535:
		return fmt.Errorf("MTU %d out of range", m.MTU)
	case m.Encryption != "" && m.Encryption != EncryptionWireGuard:
		return fmt.Errorf("encryption %q: must be empty (none) or %q", m.Encryption, EncryptionWireGuard)
	case m.Encryption == "" && (m.WireGuardKey != "" || m.WireGuardPort != 0):
		return errors.New("WireGuard key or port without encryption")
	}
	if m.Encryption == EncryptionWireGuard {
		if k, err := base64.StdEncoding.DecodeString(m.WireGuardKey); err != nil || len(k) != 32 || len(m.WireGuardKey) != 44 {
			return fmt.Errorf("WireGuard public key %q: want 32 bytes in base64 (44 characters)", m.WireGuardKey)
		}
		if m.WireGuardPort < 1 || m.WireGuardPort > 65535 {
			return fmt.Errorf("WireGuard port %d out of range", m.WireGuardPort)
		}
	}
	for _, r := range m.Retained {
		if r.Node == "" || !r.Subnet.IsValid() || r.Subnet != r.Subnet.Masked() ||
			r.Subnet.Bits() < m.ClusterCIDR.Bits() || !m.ClusterCIDR.Contains(r.Subnet.Addr()) {
			return fmt.Errorf("retained claim %q %s: needs a name and a subnet inside cluster CIDR %s", r.Node, r.Subnet, m.ClusterCIDR)
		}
	}
	if m.Subnet.IsValid() {
		if m.Subnet != m.Subnet.Masked() {
			return fmt.Errorf("subnet %s has host bits set", m.Subnet)
		}
		if m.Subnet.Bits() < m.ClusterCIDR.Bits() || !m.ClusterCIDR.Contains(m.Subnet.Addr()) {
			return fmt.Errorf("subnet %s is outside cluster CIDR %s", m.Subnet, m.ClusterCIDR)
		}
	} else if m.Subnet != (netip.Prefix{}) {
		return fmt.Errorf("subnet %s is invalid", m.Subnet)
	}
	return nil
}

// EncodeMeta validates m and encodes it as a node's memberlist metadata, exactly as a
// Membership announces it (for tools that run bare memberlist nodes, such as the benchmark's
// synthetic peers).
func EncodeMeta(m Meta) ([]byte, error) {
	if err := m.Validate(); err != nil {
		return nil, fmt.Errorf("invalid metadata: %w", err)
	}
	b, err := json.Marshal(wireMeta(m))
	if err != nil {
		return nil, fmt.Errorf("encode metadata: %w", err)
	}
	if len(b) > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("encoded metadata is %d bytes, more than memberlist's limit of %d", len(b), memberlist.MetaMaxSize)
	}
	return b, nil
}

// decodeMeta parses what EncodeMeta made. It checks only the encoding, not the content, so
// that a node of another protocol version is refused for its version (see checkRemote)
// rather than for fields it may use differently. Unknown keys are ignored.
func decodeMeta(b []byte) (Meta, error) {
	if len(b) == 0 {
		return Meta{}, errors.New("no metadata")
	}
	if len(b) > memberlist.MetaMaxSize {
		return Meta{}, fmt.Errorf("metadata is %d bytes, more than %d", len(b), memberlist.MetaMaxSize)
	}
	var w wireMeta
	if err := json.Unmarshal(b, &w); err != nil {
		return Meta{}, fmt.Errorf("decode metadata: %w", err)
	}
	return Meta(w), nil
}

// DefaultCompatible is the compatibility rule used when Config.Compatible is nil: both
// nodes speak the same protocol version, use the same tunnel type and encryption and share
// the cluster CIDR (a node of a version without encryption announces none). The error says what differs, remote value first ("tunnel vxlan != local gre").
func DefaultCompatible(local, remote Meta) error {
	switch {
	case remote.Proto != local.Proto:
		return fmt.Errorf("protocol version %d != local %d", remote.Proto, local.Proto)
	case remote.Tunnel != local.Tunnel:
		return fmt.Errorf("tunnel %s != local %s", orNone(remote.Tunnel), orNone(local.Tunnel))
	case remote.Encryption != local.Encryption:
		return fmt.Errorf("encryption %s != local %s", orNone(remote.Encryption), orNone(local.Encryption))
	case remote.ClusterCIDR != local.ClusterCIDR:
		return fmt.Errorf("cluster CIDR %s != local %s", orNone(remote.ClusterCIDR.String()), orNone(local.ClusterCIDR.String()))
	}
	return nil
}

func orNone(s string) string {
	if s == "" || s == "invalid Prefix" {
		return "(none)"
	}
	return s
}

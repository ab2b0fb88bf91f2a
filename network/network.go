// Package network is the fabric's networks as first-class objects: the typed definition of a
// network and of one host's slice of it, their one codec (registry values and OVSDB
// external_ids), the deterministic rules that decide between concurrent definitions, and the
// Book that keeps this host's view of every network and its own slices, replicated through
// the registry and persisted in OVSDB.
//
// The network "default" is the cluster CIDR: its slices are the hosts' subnet claims, which
// gossip metadata carries (package controller); the Book holds the other networks.
package network

import "net/netip"

// Default is the name of the network of the cluster CIDR, which every fabric has.
const Default = "default"

// Spec is a network an operator asks for, parsed at the edge.
type Spec struct {
	// Name is a DNS label of at most MaxNameLen bytes, not Default.
	Name string
	// Subnet is the network's IPv4 CIDR.
	Subnet netip.Prefix
	// HostBits is the prefix length of each host's slice; 0 chooses (see DefaultHostBits).
	HostBits int
	// Key is the tunnel key; 0 chooses one.
	Key uint32
	// Internal: no egress, no masquerade, no published ports.
	Internal bool
}

// Network is a network definition as the fabric holds it.
type Network struct {
	Name     string
	Subnet   netip.Prefix
	HostBits int
	// Key is the tunnel key (VXLAN VNI / GRE key) of the network's traffic between hosts: 0
	// for Default (what hosts without networks send), 1 to MaxKey for the others.
	Key      uint32
	Internal bool
	// Origin is the host that created it and Created the Lamport time of the creation:
	// (Created, Origin) orders definitions (the lower wins) and identifies this one.
	Origin  string
	Created uint64
}

// Slice is one host's slice of a network.
type Slice struct {
	Network string
	Node    string
	Prefix  netip.Prefix
	// Seq is the Lamport time of the claim: (Seq, Node) decides between overlapping claims.
	Seq uint64
}

// Limits.
const (
	// MaxNameLen is the longest network name.
	MaxNameLen = 32
	// MaxKey is the largest tunnel key (VXLAN VNIs have 24 bits).
	MaxKey = 1<<24 - 1
)

// View is the networks as this host sees them after a Sync.
type View struct {
	// Networks are the accepted networks, sorted by name.
	Networks []Network
	// Conflicts says, by network name, why a definition is not served.
	Conflicts map[string]string
	// Slices are every host's winning slice, by network.
	Slices map[string][]Slice
	// Local is this host's slice, by network.
	Local map[string]netip.Prefix
}

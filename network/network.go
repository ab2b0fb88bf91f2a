// Package network is the fabric's networks as first-class objects: the typed definition of a
// network and of one host's slice of it, their one codec (registry values and OVSDB
// external_ids), the deterministic rules that decide between concurrent definitions, and the
// Book that keeps this host's view of every network and its own slices, replicated through
// the registry and persisted in OVSDB.
//
// The network "default" is the cluster CIDR: its slices are the hosts' subnet claims, which
// gossip metadata carries (package controller); the Book holds the other networks.
//
// # Records
//
// Three registry kinds, each keyed by network name, each with one writer (its origin):
//
//   - registry.KindNetwork: a host's copy of a definition. The creator writes it first
//     (Origin itself, Created its next Lamport time); every host that sees the network
//     served writes its own copy with the same value and Created (Restore), so that the
//     network survives its creator leaving. The value carries the definition's Origin and
//     Created, which identify it whoever holds the copy.
//   - registry.KindSlice: this host's slice of a network, with Seq, the Lamport time of
//     the claim (also the record's Created).
//   - registry.KindNetworkRemoved: a removal mark, the (Origin, Created) of the last
//     definition of the name it kills.
//
// The same values persist in the Open_vSwitch row's external_ids: KeyNetPrefix+NAME,
// KeySlicePrefix+NAME and KeyRemovedPrefix+NAME hold this host's records, and Book.Load
// publishes them again at start, with their creation times.
//
// # Rules
//
// Resolve is a pure function of the records, so every host decides alike:
//
//   - Removal: a removal of NAME kills every definition of NAME up to its mark in the
//     creation order ((Created, Origin), the lower first); the latest mark counts.
//   - Name: of the live definitions of a name, the lowest (Created, Origin) wins.
//   - Conflicts: the winners are taken in (Created, Origin, Name) order after default: one
//     whose subnet overlaps, or whose key equals, a network taken before it is conflicted
//     (not served; the reason names the other network).
//   - Slices: a host's slice is a /HostBits of the subnet; of overlapping claims the lower
//     (Seq, Node) wins (fabric.Claim.Wins) and the loser picks another (PickSlice: from a
//     slot derived from host and network names, past every other host's claim). A new
//     claim's Seq is above every Seq and Lamport time its host has seen.
//
// # Book
//
// Book.Sync is level-triggered: it adopts every network served, withdraws copies of
// definitions that lost their name, were removed or conflict (a creator keeps its own
// conflicted definition, so that operators see the conflict and remove it), claims this
// host's slices, and persists only what changed. Book.Create publishes a definition, waits
// Config.Settle to hear of concurrent creates, and withdraws it with a 409 naming the
// winner when it lost. Book.Remove publishes a removal mark covering every definition of the
// name it holds; every host that drops its copy because of a mark writes (and persists) its
// own removal record with that mark, so the removal outlives the host that ran rm, and a
// host that was away during the removal and comes back with its persisted copy sees the
// marks and drops it instead of resurrecting the network. A later create of the name is
// not affected: its creator has witnessed the mark (Lamport), so its Created is above it.
// Removal records are kept (one per host per removed name; a later removal of the name
// overwrites it).
//
// The caller runs Sync whenever the registry reports a change of Kinds (registry.Subscribe);
// the Book subscribes too, so a Sync with none of them changed since the last one that
// settled returns its View at once. Use Resolve or the View, not registry.Winner, for
// networks: copies of a definition are records of their holders, so registry.Winner's
// origin tie-break is not the definition's.
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

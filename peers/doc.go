// Package peers is ovsfabric's cluster membership: every fabricd finds the others by gossip
// (hashicorp/memberlist, SWIM with Lifeguard), announces what it is in its node metadata
// (underlay IP, claimed subnet, tunnel type, protocol version) and learns when peers join,
// change their metadata, leave gracefully or die. There is no central store.
//
// # Usage
//
// Start creates the local member and joins the addresses in Config.Join; peers may start in
// any order, so unreachable join addresses are retried in the background. The controller
// then reads Peers (every known peer with its State and the time it entered it), waits on
// Changed (a coalesced wake-up), publishes its own metadata with SetMeta, and shows
// Rejected in its status output. On shutdown it calls Leave (peers see State "left" within
// about a second) and then Shutdown.
//
// # Compatibility
//
// A node whose metadata is incompatible (by default: a different protocol version, tunnel
// type or cluster CIDR; see Config.Compatible) is refused on both sides, through
// memberlist's MergeDelegate (joins) and AliveDelegate (everything learnt by gossip later):
// it never appears in Peers, both sides log "refusing node X: ...", both list it in
// Rejected, and the joiner's Start fails with an error wrapping ErrIncompatible.
//
// # Duplicate names
//
// Names are unique. When a join meets a live member of this node's name at another address
// (a cloned host keeps its hostname), or a newcomer named like a live member of this side,
// both sides refuse the merge through the MergeDelegate before anything is applied: the
// joiner's Start fails with an error wrapping ErrNameConflict that names the member's
// address (a join retried in the background reports it on Fatal instead), and the member
// logs it, lists the newcomer in Rejected and stays.
//
// # States
//
// memberlist v0.7.0 does not expose a member's state: Node.State is only filled in for
// MergeDelegate callbacks (the exported field is shadowed by the unexported nodeState.State
// everywhere else), so Members() and the event callbacks always carry StateAlive. This
// package therefore keeps its own view:
//
//   - alive: NotifyJoin, or a direct probe answered again after "suspect".
//   - suspect: memberlist still lists the peer, but none of this node's direct probes (seen
//     through the PingDelegate) has been answered for three probe rounds. It is a local,
//     early warning; memberlist's own suspicion is not observable.
//   - dead: NotifyLeave without a goodbye.
//   - left: NotifyLeave after the peer's goodbye. Leave broadcasts a small goodbye message
//     (epidemically re-gossiped) before memberlist's own leave, because memberlist does not
//     tell its event delegate whether a node left or failed. A goodbye that arrives just
//     after the NotifyLeave still turns "dead" into "left".
//
// Dead and left peers stay in Peers for Config.Forget, then are forgotten.
//
// # Failure detection
//
// Timings holds memberlist's knobs, tuned for a LAN; see Timings for each choice. With the
// defaults a crashed host was declared dead by all others after about 3 s in clusters of 3
// and 6 members and 5–7 s with 100 members (measured on loopback by TestFailureDetection
// and TestScale100); a graceful Leave shows as "left" everywhere in under half a second.
//
// # Registry
//
// Config.Registry, when set, is the replicated store (package registry) this membership's
// gossip carries: user messages and push/pull payloads that start with MsgRegistry go to
// it, its broadcasts follow this package's own within each gossip packet, and SendTo (or a
// Sender set after Start) delivers its sync messages reliably to a member by name, from
// the address this package keeps for it. Messages and payloads of the attachment blob that
// earlier versions spread are ignored.
package peers

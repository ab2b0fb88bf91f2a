// Package registry is ovsfabric's replicated store of fabric-wide records (networks,
// per-host slices, endpoints), spread by memberlist gossip. It replaces the single opaque
// blob per node that peers.Membership.SetLocalState spread before, and it is what DNS,
// `fabricctl ls --all` and network management read.
//
// # Model
//
// A Record is what one host, its Origin, says about a Key of a Kind; its Value is opaque
// bytes (the typed codec lives with the concept). Only the origin writes its records
// (Set, Restore, Delete), so replicas never conflict about a record: each write gets the
// origin's next Version and the higher version wins everywhere. A delete leaves a
// tombstone, kept for Config.TombstoneTTL, so that a late copy of the record cannot bring
// it back.
//
// Versions never depend on clocks: a version is the origin's incarnation (a counter the
// host persists and raises at every start, Config.Incarnation) in the high 32 bits and a
// sequence within the incarnation in the low 32 bits. A restart therefore writes above
// everything the previous run wrote. If the counter was lost and a run starts below an
// earlier one, peers' digests or gossip show versions of this origin it never wrote; the
// registry then moves to an incarnation above them, rewrites its records with it and
// reports the new incarnation (Config.OnIncarnation) for persisting. Until it has, a
// replica may fetch the earlier run's records from a peer that still holds them; the
// origin's move to the new incarnation then replaces them everywhere.
//
// Different origins may hold a record of the same kind and key (two hosts creating a
// network of the same name at once, two claims of one slice). Every record carries the
// Lamport time of its key's creation by its origin (Created; the registry keeps a Lamport
// clock that witnesses every stamp it receives). The pure function Winner picks the live
// record with the lowest (Created, Origin), so every host decides alike; Registry.Winner
// and Registry.Lookup answer "who won key K" and let a losing host learn it.
//
// # Spreading
//
// A Registry implements the data half of memberlist.Delegate, for the membership's
// delegate to forward to (see IsMessage to route user messages):
//
//   - Every local write is queued as a small delta (one record, up to about 1 KiB) on a
//     memberlist.TransmitLimitedQueue (GetBroadcasts); a newer write of a record replaces
//     a queued older one. Receivers merge deltas (NotifyMsg) and re-queue the new ones.
//   - Each replica keeps, per origin, a watermark W: it holds every key of the origin at
//     least as new as the origin's copy was at version W. Deltas that arrive in order
//     advance W; a gap (a lost or pruned broadcast) lasting Config.GapDelay makes Run ask
//     the origin for what it missed.
//   - Push/pull anti-entropy (LocalState, MergeRemoteState) exchanges only a digest: per
//     origin W, the highest version seen, the live record count and a hash of the live
//     records. A replica behind a peer on some origin sends that peer a request (Sender,
//     e.g. memberlist.SendReliable) for the origin's records above its W; the peer answers
//     with flate-compressed parts of at most 512 KiB before compression. The answer is a
//     full snapshot, replacing what the requester holds of the origin, when the requester
//     knows nothing, when its W is from an earlier incarnation of the origin (dropping
//     records the restarted origin no longer has) or when tombstones it may lack were
//     already collected. In steady state a push/pull costs a few dozen bytes per origin.
//
// Forget drops an origin that left or is dead past its grace period, and keeps refusing
// the copies peers still hold until the origin writes again. Subscribe delivers the set
// of kinds that changed.
//
// # Wiring
//
// The membership's memberlist delegate forwards to the registry: NotifyMsg when IsMessage
// (other messages stay the membership's), GetBroadcasts after its own broadcasts with the
// remaining limit, LocalState and MergeRemoteState (IsMessage tells a registry digest from
// other push/pull payloads). Config.Sender sends to a member by name with
// memberlist.SendReliable, from an address the membership keeps itself (the *Node values
// of Memberlist.Members are updated without a lock). Run runs beside the membership.
// Before joining, the host publishes its persisted records with Restore or Set, so that
// its new incarnation does not briefly announce an empty record set; it calls Forget for
// a host that left or is dead past the grace period.
//
// Decoding of remote input is bounded (message, part, key, value and count limits) and
// validated; bad input is logged at debug level and changes nothing.
package registry

package peers

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/memberlist"
)

// hooks implements memberlist's delegates for a Membership (kept off Membership so that its
// exported API stays small). memberlist calls the event and alive delegates with its node
// lock held, so none of these methods may call back into memberlist.
type hooks struct {
	m *Membership
}

var (
	_ memberlist.Delegate         = (*hooks)(nil)
	_ memberlist.EventDelegate    = (*hooks)(nil)
	_ memberlist.AliveDelegate    = (*hooks)(nil)
	_ memberlist.MergeDelegate    = (*hooks)(nil)
	_ memberlist.PingDelegate     = (*hooks)(nil)
	_ memberlist.ConflictDelegate = (*hooks)(nil)
)

// refusalMarker starts the error NotifyMerge returns; memberlist formats it into the
// joiner's Join error with %v, so join recognises its own refusals by it. nameConflictMarker
// starts it instead when the refusal is a duplicate node name.
const (
	refusalMarker      = "ovsfabric refuses to merge: "
	nameConflictMarker = "ovsfabric refuses to merge, duplicate node name: "
)

// NodeMeta returns this node's encoded metadata (validated to fit MetaMaxSize).
func (h *hooks) NodeMeta(limit int) []byte {
	raw := h.m.local.Load().raw
	if len(raw) > limit {
		return nil
	}
	return raw
}

// NotifyMsg handles a gossiped or reliably sent user message (goodbye, keyring, registry).
func (h *hooks) NotifyMsg(b []byte) { h.m.handleMsg(b) }

// GetBroadcasts hands memberlist this package's queued broadcasts, then the registry's
// within what remains of limit.
func (h *hooks) GetBroadcasts(overhead, limit int) [][]byte {
	out := h.m.bcast.GetBroadcasts(overhead, limit)
	reg := h.m.cfg.Registry
	if reg == nil {
		return out
	}
	for _, b := range out {
		limit -= overhead + len(b)
	}
	if limit <= overhead {
		return out
	}
	return append(out, reg.GetBroadcasts(overhead, limit)...)
}

// LocalState is the push/pull payload: the registry's digest (nothing without a registry).
func (h *hooks) LocalState(join bool) []byte {
	if reg := h.m.cfg.Registry; reg != nil {
		return reg.LocalState(join)
	}
	return nil
}

// MergeRemoteState hands a peer's push/pull payload to the registry. A payload of an
// earlier version (the attachment blobs, legacyPushPull) is ignored.
func (h *hooks) MergeRemoteState(buf []byte, join bool) {
	switch {
	case len(buf) == 0:
	case buf[0] == MsgRegistry:
		if reg := h.m.cfg.Registry; reg != nil {
			reg.MergeRemoteState(buf, join)
		}
	case buf[0] == legacyPushPull:
		h.m.log.Debug("ignoring a push/pull payload of an earlier version", "bytes", len(buf))
	default:
		h.m.refused("push/pull payload", fmt.Errorf("unknown type %#x", buf[0]))
	}
}

// NotifyJoin records a new (or returning) peer.
func (h *hooks) NotifyJoin(n *memberlist.Node) {
	if n.Name == h.m.cfg.Name {
		return
	}
	meta, err := decodeMeta(n.Meta)
	if err != nil { // NotifyAlive let it through, so this cannot happen; keep the peer anyway
		h.m.log.Error("peer joined with unreadable metadata", "peer", n.Name, "err", err)
	}
	h.m.peerAlive(n, meta)
}

// NotifyLeave records a peer memberlist declared dead or that left.
func (h *hooks) NotifyLeave(n *memberlist.Node) {
	if n.Name == h.m.cfg.Name {
		return
	}
	h.m.peerGone(n)
}

// NotifyUpdate records a peer's new metadata.
func (h *hooks) NotifyUpdate(n *memberlist.Node) {
	if n.Name == h.m.cfg.Name {
		return
	}
	meta, err := decodeMeta(n.Meta)
	if err != nil {
		h.m.log.Error("peer updated to unreadable metadata", "peer", n.Name, "err", err)
		return
	}
	h.m.peerUpdated(n, meta)
}

// NotifyAlive refuses alive messages of incompatible nodes, whichever way they arrive
// (gossip, push/pull), so such a node never becomes a member here.
func (h *hooks) NotifyAlive(n *memberlist.Node) error {
	if n.Name == h.m.cfg.Name {
		return nil
	}
	if err := h.m.checkNode(n); err != nil {
		h.m.reject(n.Name, nodeAddr(n), err)
		return fmt.Errorf("refusing node %s: %w", n.Name, err)
	}
	return nil
}

// NotifyMerge refuses a join (on both the joining and the joined node) when any live node
// of the other side is incompatible, or has a name a live member of this side already has
// at another address (a cloned host keeps its hostname). The joiner's Join then fails with
// this error, and nothing of the other side is merged on either node.
func (h *hooks) NotifyMerge(nodes []*memberlist.Node) error {
	if err := h.m.nameConflict(nodes); err != nil {
		return err
	}
	var first error
	more := 0
	for _, n := range nodes {
		if n.Name == h.m.cfg.Name || n.State == memberlist.StateDead || n.State == memberlist.StateLeft {
			continue
		}
		if err := h.m.checkNode(n); err != nil {
			h.m.reject(n.Name, nodeAddr(n), err)
			if first == nil {
				first = fmt.Errorf("%snode %s (%s): %w", refusalMarker, n.Name, nodeAddr(n), err)
			} else {
				more++
			}
		}
	}
	if more > 0 {
		return fmt.Errorf("%w (and %d more incompatible nodes)", first, more)
	}
	return first
}

// AckPayload adds nothing to probe acks.
func (h *hooks) AckPayload() []byte { return nil }

// NotifyPingComplete records that a peer answered one of this node's direct probes.
func (h *hooks) NotifyPingComplete(other *memberlist.Node, _ time.Duration, _ []byte) {
	h.m.acked(other.Name)
}

// NotifyConflict reports an alive message for a member's name from another address, which
// memberlist ignores (it keeps the first). The member keeps its place; the other node is
// listed as rejected.
func (h *hooks) NotifyConflict(existing, other *memberlist.Node) {
	if existing.Name == h.m.cfg.Name {
		h.m.log.Warn("another host announces this node's name; keeping this member", "name", other.Name, "other", nodeAddr(other))
	}
	h.m.reject(other.Name, nodeAddr(other),
		errors.New("name already used by the member at "+nodeAddr(existing).String()))
}

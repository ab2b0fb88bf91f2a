package peers

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"math/rand/v2"
	"time"

	"github.com/hashicorp/memberlist"
)

const (
	// maxNameLen bounds node names in this package's messages.
	maxNameLen = 512
	// maxQueuedBroadcasts bounds the broadcast queue.
	maxQueuedBroadcasts = 1024
)

// User message types (first byte), and the first bytes of push/pull payloads.
//
// Versions before the registry spread each node's attachments as an opaque blob: user
// messages of type msgLegacyState and push/pull payloads starting with legacyPushPull.
// A node of this version ignores both, so a fabric of old and new nodes keeps its
// membership during a rolling upgrade (old nodes log the registry's messages and payloads,
// which start with MsgRegistry, as refused input, rate-limited, and otherwise ignore them).
const (
	msgLegacyState byte = 's'
	msgBye         byte = 'b'
	legacyPushPull byte = 1
	// MsgRegistry starts every registry message and push/pull payload (registry.MsgTag;
	// a test keeps them equal): the membership forwards those to Config.Registry.
	MsgRegistry byte = 'R'
)

// broadcast is one of this package's gossip messages in the TransmitLimitedQueue. A newer
// message with the same name (one per node and kind) replaces a queued older one.
type broadcast struct {
	name   string
	msg    []byte
	notify chan struct{}
}

var _ memberlist.NamedBroadcast = (*broadcast)(nil)

func (b *broadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(memberlist.NamedBroadcast)
	return ok && o.Name() == b.name
}
func (b *broadcast) Name() string    { return b.name }
func (b *broadcast) Message() []byte { return b.msg }
func (b *broadcast) Finished() {
	if b.notify != nil {
		select {
		case b.notify <- struct{}{}:
		default:
		}
	}
}

// handleMsg handles a user message from gossip. New messages are queued again, so that they
// spread epidemically rather than only from their origin.
func (m *Membership) handleMsg(b []byte) {
	if len(b) == 0 {
		return
	}
	switch b[0] {
	case MsgRegistry:
		if reg := m.cfg.Registry; reg != nil {
			reg.NotifyMsg(b)
		}
	case msgLegacyState:
		// An attachment blob of a node of an earlier version: the registry replaces it.
		m.log.Debug("ignoring an attachment state message of an earlier version")
	case msgBye:
		name, nonce, err := decodeBye(b)
		if err != nil {
			m.refused("goodbye message", err)
			return
		}
		m.mu.Lock()
		_, seen := m.byesSeen[nonce]
		if !seen {
			m.byesSeen[nonce] = time.Now()
		}
		m.mu.Unlock()
		if seen || name == m.cfg.Name {
			return
		}
		m.bcast.QueueBroadcast(&broadcast{name: "b/" + name, msg: bytes.Clone(b)})
		m.peerSaidBye(name)
	case msgKeyReq, msgKeyResp:
		m.handleKeyMsg(b)
	default:
		m.refused("gossip message", fmt.Errorf("unknown type %#x", b[0]))
	}
}

func newNonce() uint64 { return rand.Uint64() }

// readChunk reads a uvarint length (at most limit) and that many bytes.
func readChunk(b []byte, limit int) (chunk, rest []byte, err error) {
	n, k := binary.Uvarint(b)
	if k <= 0 {
		return nil, nil, errors.New("bad length")
	}
	if n > uint64(limit) || n > uint64(len(b)-k) {
		return nil, nil, fmt.Errorf("length %d too large", n)
	}
	return b[k : k+int(n)], b[k+int(n):], nil
}

// encodeBye is the goodbye message of node name; nonce tells repeats from new goodbyes.
func encodeBye(name string, nonce uint64) []byte {
	buf := binary.AppendUvarint([]byte{msgBye}, uint64(len(name)))
	buf = append(buf, name...)
	return binary.BigEndian.AppendUint64(buf, nonce)
}

func decodeBye(b []byte) (name string, nonce uint64, err error) {
	nb, rest, err := readChunk(b[1:], maxNameLen)
	if err != nil || len(nb) == 0 || len(rest) != 8 {
		return "", 0, errors.New("bad goodbye message")
	}
	return string(nb), binary.BigEndian.Uint64(rest), nil
}

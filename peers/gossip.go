package peers

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"time"

	"github.com/hashicorp/memberlist"
)

// MaxStateSize is the largest blob SetLocalState accepts.
const MaxStateSize = 8 << 10

const (
	// maxInlineState is the largest state message broadcast by UDP gossip (a gossip packet
	// holds about 1350 bytes, shared with memberlist's own messages); larger states spread
	// by push/pull only.
	maxInlineState = 1024
	// maxStateEntries bounds how many node states a push/pull payload may carry.
	maxStateEntries = 4096
	// maxNameLen bounds node names in this package's messages.
	maxNameLen = 512
	// maxQueuedBroadcasts bounds the broadcast queue.
	maxQueuedBroadcasts = 1024
	// unknownStateTTL is how long a state of a node that is not (yet) a known peer is kept.
	unknownStateTTL = time.Minute
)

// User message types (first byte) and the push/pull payload version.
const (
	msgState        byte = 's'
	msgBye          byte = 'b'
	pushPullVersion byte = 1
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

// stateEntry is one node's attachment state. ver orders versions of one node's state: the
// Unix time in nanoseconds of the SetLocalState call (kept increasing), so that a restarted
// node's new state wins over what the others remember of its previous run.
type stateEntry struct {
	ver  uint64
	data []byte
	at   time.Time // when this node stored it
}

// SetLocalState sets the opaque blob (at most MaxStateSize bytes; meant for this host's
// container attachments) that the other members see in RemoteStates. It is broadcast right
// away when it fits a gossip packet (about 1000 bytes) and otherwise, and in any case,
// spread by memberlist's periodic TCP push/pull (Timings.PushPullInterval), which carries
// the states of all live members. An empty blob clears the state.
func (m *Membership) SetLocalState(b []byte) error {
	if len(b) > MaxStateSize {
		return fmt.Errorf("local state is %d bytes, more than %d", len(b), MaxStateSize)
	}
	if m.shut.Load() {
		return fmt.Errorf("set local state: %w", ErrClosed)
	}
	data := bytes.Clone(b)
	now := time.Now()
	m.mu.Lock()
	ver := uint64(now.UnixNano())
	if cur, ok := m.states[m.cfg.Name]; ok && ver <= cur.ver {
		ver = cur.ver + 1
	}
	m.states[m.cfg.Name] = stateEntry{ver: ver, data: data, at: now}
	m.mu.Unlock()
	if msg := appendStateEntry([]byte{msgState}, m.cfg.Name, ver, data); len(msg) <= maxInlineState {
		m.bcast.QueueBroadcast(&broadcast{name: "s/" + m.cfg.Name, msg: msg})
	}
	return nil
}

// RemoteStates returns the latest non-empty state of every known peer (as in Peers) that
// has set one, by node name.
func (m *Membership) RemoteStates() map[string][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string][]byte)
	for name, s := range m.states {
		if _, known := m.peers[name]; known && len(s.data) > 0 {
			out[name] = bytes.Clone(s.data)
		}
	}
	return out
}

// encodeStates is the push/pull payload: this node's state and those of live peers.
func (m *Membership) encodeStates() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	names := make([]string, 0, len(m.states))
	for name := range maps.Keys(m.states) {
		if r := m.peers[name]; name == m.cfg.Name || r != nil && (r.State == StateAlive || r.State == StateSuspect) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	if len(names) > maxStateEntries {
		names = names[:maxStateEntries]
	}
	buf := binary.AppendUvarint([]byte{pushPullVersion}, uint64(len(names)))
	for _, name := range names {
		s := m.states[name]
		buf = appendStateEntry(buf, name, s.ver, s.data)
	}
	return buf
}

// mergeStates merges a peer's push/pull payload, keeping the newer version of each state.
func (m *Membership) mergeStates(buf []byte) {
	if len(buf) == 0 {
		return
	}
	entries, err := decodeStates(buf)
	if err != nil {
		m.refused("push/pull state", err)
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, e := range entries {
		m.storeStateLocked(e.name, e.ver, e.data)
	}
}

// storeStateLocked keeps a state if it is newer than the one held; it reports whether it was.
func (m *Membership) storeStateLocked(name string, ver uint64, data []byte) bool {
	if name == m.cfg.Name {
		return false
	}
	if cur, ok := m.states[name]; ok && ver <= cur.ver {
		return false
	}
	m.states[name] = stateEntry{ver: ver, data: bytes.Clone(data), at: time.Now()}
	return true
}

// handleMsg handles a user message from gossip. New messages are queued again, so that they
// spread epidemically rather than only from their origin.
func (m *Membership) handleMsg(b []byte) {
	if len(b) == 0 {
		return
	}
	switch b[0] {
	case msgState:
		name, ver, data, rest, err := readStateEntry(b[1:])
		if err == nil && len(rest) > 0 {
			err = errors.New("trailing bytes")
		}
		if err != nil {
			m.refused("state message", err)
			return
		}
		m.mu.Lock()
		fresh := m.storeStateLocked(name, ver, data)
		m.mu.Unlock()
		if fresh {
			m.bcast.QueueBroadcast(&broadcast{name: "s/" + name, msg: bytes.Clone(b)})
		}
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

// appendStateEntry appends name, ver and data, each length-prefixed where needed.
func appendStateEntry(buf []byte, name string, ver uint64, data []byte) []byte {
	buf = binary.AppendUvarint(buf, uint64(len(name)))
	buf = append(buf, name...)
	buf = binary.AppendUvarint(buf, ver)
	buf = binary.AppendUvarint(buf, uint64(len(data)))
	return append(buf, data...)
}

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

// readStateEntry reads what appendStateEntry wrote.
func readStateEntry(b []byte) (name string, ver uint64, data, rest []byte, err error) {
	nb, b, err := readChunk(b, maxNameLen)
	if err != nil {
		return "", 0, nil, nil, fmt.Errorf("state name: %w", err)
	}
	if len(nb) == 0 {
		return "", 0, nil, nil, errors.New("state name: empty")
	}
	ver, k := binary.Uvarint(b)
	if k <= 0 {
		return "", 0, nil, nil, errors.New("state version: bad encoding")
	}
	data, rest, err = readChunk(b[k:], MaxStateSize)
	if err != nil {
		return "", 0, nil, nil, fmt.Errorf("state data: %w", err)
	}
	return string(nb), ver, data, rest, nil
}

type decodedState struct {
	name string
	ver  uint64
	data []byte
}

// decodeStates reads an encodeStates payload.
func decodeStates(b []byte) ([]decodedState, error) {
	if b[0] != pushPullVersion {
		return nil, fmt.Errorf("unknown payload version %d", b[0])
	}
	n, k := binary.Uvarint(b[1:])
	if k <= 0 || n > maxStateEntries {
		return nil, errors.New("bad entry count")
	}
	b = b[1+k:]
	out := make([]decodedState, 0, n)
	for range n {
		name, ver, data, rest, err := readStateEntry(b)
		if err != nil {
			return nil, err
		}
		out = append(out, decodedState{name: name, ver: ver, data: data})
		b = rest
	}
	if len(b) > 0 {
		return nil, errors.New("trailing bytes")
	}
	return out, nil
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

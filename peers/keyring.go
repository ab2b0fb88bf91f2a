package peers

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// KeyOp is a gossip keyring operation, run on every live member by KeyringOp.
type KeyOp string

// Keyring operations, as Serf and Consul name them.
const (
	// KeyList reports every member's installed keys.
	KeyList KeyOp = "list"
	// KeyInstall adds a key for decryption; the primary key is unchanged (on a keyring that
	// was empty the key becomes primary, which turns encryption on).
	KeyInstall KeyOp = "install"
	// KeyUse makes an installed key the primary one, used to encrypt.
	KeyUse KeyOp = "use"
	// KeyRemove drops a key that is not the primary one.
	KeyRemove KeyOp = "remove"
)

// MaxKeys bounds a keyring: rotation needs two keys at a time, a few more are slack.
const MaxKeys = 16

const (
	msgKeyReq  byte = 'k'
	msgKeyResp byte = 'r'
	// maxKeyMsg bounds a keyring message: MaxKeys keys of 32 bytes in base64 and a name.
	maxKeyMsg = 4 << 10
	// keyOpTimeout bounds how long KeyringOp waits for the members' answers without a
	// deadline in its context.
	keyOpTimeout = 10 * time.Second
	// keySwitchWindow is how long after a keyring change undecryptable gossip is not
	// recorded as a rejection (see persistentRefusal).
	keySwitchWindow = 5 * time.Second
	// keyRefusalPersist is how long gossip from one address must keep failing on its key
	// before the address is listed in Rejected, and keyRefusalForget how long after its
	// last failure it is forgotten.
	keyRefusalPersist = time.Second
	keyRefusalForget  = time.Minute
	// keySeenTTL is how long a request ID is remembered, so that a replayed or re-delivered
	// request is not applied twice.
	keySeenTTL = 10 * time.Minute
)

// KeyResult is one member's answer to a keyring operation.
type KeyResult struct {
	// Node is the member's name.
	Node string
	// Keys are its installed keys after the operation, the primary one first.
	Keys [][]byte
	// Err says why the operation failed there (or that it did not answer); empty on success.
	Err string
}

// keyReq and keyResp are the keyring messages, JSON after their type byte, sent over
// memberlist's reliable (TCP) channel and therefore encrypted with the current primary key
// when the fabric is encrypted.
type keyReq struct {
	ID   uint64 `json:"i"`
	From string `json:"f"`
	Op   KeyOp  `json:"o"`
	Key  []byte `json:"k,omitempty"`
}

type keyResp struct {
	ID   uint64   `json:"i"`
	Node string   `json:"n"`
	Keys [][]byte `json:"k,omitempty"`
	Err  string   `json:"e,omitempty"`
}

// keyState is a Membership's keyring: memberlist's Keyring (which it encrypts and decrypts
// with) and the file it is persisted in.
type keyState struct {
	ring *memberlist.Keyring
	file string

	mu      sync.Mutex   // serializes changes and file writes
	changed atomic.Int64 // time of the last change or change request, Unix nanoseconds
	pendMu  sync.Mutex
	pending map[uint64]chan keyResp
	seen    map[uint64]time.Time
	// failing tracks addresses whose gossip failed on its key: first and last failure.
	failing map[string][2]time.Time
}

// persistentRefusal records a key refusal of gossip from addr and reports whether it should
// be listed in Rejected: only when refusals from addr have lasted keyRefusalPersist, and
// not within keySwitchWindow after a keyring change here. While a fabric switches to
// encryption its members disagree for the milliseconds the change takes to reach all of
// them; a host with a wrong key keeps failing (its joins are retried).
func (ks *keyState) persistentRefusal(addr string) bool {
	now := time.Now()
	ks.pendMu.Lock()
	defer ks.pendMu.Unlock()
	for a, t := range ks.failing {
		if now.Sub(t[1]) > keyRefusalForget {
			delete(ks.failing, a)
		}
	}
	t, ok := ks.failing[addr]
	if !ok {
		t[0] = now
	}
	t[1] = now
	ks.failing[addr] = t
	if changed := ks.changed.Load(); changed != 0 && now.Sub(time.Unix(0, changed)) < keySwitchWindow {
		return false
	}
	return now.Sub(t[0]) >= keyRefusalPersist
}

// newKeyState builds the keyring from Config.KeyringFile when that file exists, else from
// Config.SecretKey (seeding the file with it). A keyring file is authoritative: after a
// rotation it no longer holds the key the seed file has, and that key must not come back.
func newKeyState(cfg Config, log interface{ Warn(string, ...any) }) (*keyState, error) {
	ks := &keyState{file: cfg.KeyringFile, pending: map[uint64]chan keyResp{}, seen: map[uint64]time.Time{}, failing: map[string][2]time.Time{}}
	var keys [][]byte
	loaded := false
	if cfg.KeyringFile != "" {
		b, err := os.ReadFile(cfg.KeyringFile)
		switch {
		case err == nil:
			if keys, err = decodeKeyring(b); err != nil {
				return nil, fmt.Errorf("keyring file %s: %w", cfg.KeyringFile, err)
			}
			loaded = true
			if fi, err := os.Stat(cfg.KeyringFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
				log.Warn("keyring file is readable by others; restricting it to 0600", "file", cfg.KeyringFile, "mode", fi.Mode().Perm())
				if err := os.Chmod(cfg.KeyringFile, 0o600); err != nil {
					return nil, fmt.Errorf("keyring file %s: %w", cfg.KeyringFile, err)
				}
			}
			if len(cfg.SecretKey) > 0 && !slices.ContainsFunc(keys, func(k []byte) bool { return bytes.Equal(k, cfg.SecretKey) }) {
				log.Warn("the gossip key file's key is not in the keyring (rotated out?); using the keyring", "file", cfg.KeyringFile)
			}
		case errors.Is(err, os.ErrNotExist):
		default:
			return nil, fmt.Errorf("keyring file: %w", err)
		}
	}
	if !loaded && len(cfg.SecretKey) > 0 {
		keys = [][]byte{bytes.Clone(cfg.SecretKey)}
		if err := ks.save(keys); err != nil {
			return nil, err
		}
	}
	var primary []byte
	if len(keys) > 0 {
		primary = keys[0]
	}
	ring, err := memberlist.NewKeyring(keys, primary)
	if err != nil {
		return nil, fmt.Errorf("keyring: %w", err)
	}
	ks.ring = ring
	return ks, nil
}

// decodeKeyring parses a keyring file: a JSON array of base64 keys, the primary one first
// (the format of Serf's keyring file).
func decodeKeyring(b []byte) ([][]byte, error) {
	var keys [][]byte
	if err := json.Unmarshal(b, &keys); err != nil {
		return nil, fmt.Errorf("want a JSON array of base64 keys: %w", err)
	}
	if len(keys) > MaxKeys {
		return nil, fmt.Errorf("%d keys, more than %d", len(keys), MaxKeys)
	}
	for i, k := range keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return nil, fmt.Errorf("key %d: %w", i+1, err)
		}
		for _, o := range keys[:i] {
			if bytes.Equal(o, k) {
				return nil, fmt.Errorf("key %d is listed twice", i+1)
			}
		}
	}
	return keys, nil
}

// save writes keys to the keyring file (0600, replaced atomically); without a file it does
// nothing.
func (ks *keyState) save(keys [][]byte) error {
	if ks.file == "" {
		return nil
	}
	if keys == nil {
		keys = [][]byte{}
	}
	b, err := json.Marshal(keys)
	if err != nil {
		return fmt.Errorf("encode keyring: %w", err)
	}
	dir := filepath.Dir(ks.file)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("keyring dir: %w", err)
	}
	f, err := os.CreateTemp(dir, ".keyring-*")
	if err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("write keyring: %w", err)
	}
	if _, err := f.Write(append(b, '\n')); err != nil {
		f.Close()
		return fmt.Errorf("write keyring: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("write keyring: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	if err := os.Rename(f.Name(), ks.file); err != nil {
		return fmt.Errorf("write keyring: %w", err)
	}
	return nil
}

// keys returns a copy of the installed keys, primary first.
func (ks *keyState) keys() [][]byte {
	var out [][]byte
	for _, k := range ks.ring.GetKeys() {
		out = append(out, bytes.Clone(k))
	}
	return out
}

// apply runs op on this node's keyring: the file is written first, so that a failed write
// changes nothing, then memberlist's keyring.
func (ks *keyState) apply(op KeyOp, key []byte) error {
	if op == KeyList {
		return nil
	}
	if err := memberlist.ValidateKey(key); err != nil {
		return err
	}
	ks.mu.Lock()
	defer ks.mu.Unlock()
	cur := ks.keys()
	idx := slices.IndexFunc(cur, func(k []byte) bool { return bytes.Equal(k, key) })
	var next [][]byte
	switch op {
	case KeyInstall:
		if idx >= 0 {
			return nil
		}
		if len(cur) >= MaxKeys {
			return fmt.Errorf("keyring holds %d keys already; remove one first", len(cur))
		}
		next = append(cur, bytes.Clone(key))
	case KeyUse:
		if idx < 0 {
			return errors.New("key is not installed; install it first")
		}
		if idx == 0 {
			return nil
		}
		next = append([][]byte{cur[idx]}, slices.Delete(slices.Clone(cur), idx, idx+1)...)
	case KeyRemove:
		if idx < 0 {
			return nil
		}
		if idx == 0 {
			return errors.New("key is the primary key; use another key first")
		}
		next = slices.Delete(slices.Clone(cur), idx, idx+1)
	default:
		return fmt.Errorf("unknown keyring operation %q", op)
	}
	if err := ks.save(next); err != nil {
		return err
	}
	ks.changed.Store(time.Now().UnixNano())
	switch op {
	case KeyInstall:
		return ks.ring.AddKey(bytes.Clone(key))
	case KeyUse:
		return ks.ring.UseKey(key)
	default:
		return ks.ring.RemoveKey(key)
	}
}

// Encrypted reports whether this node encrypts its gossip (its keyring is not empty).
func (m *Membership) Encrypted() bool { return len(m.keys.ring.GetKeys()) > 0 }

// KeyringOp runs a keyring operation on this node and on every live member, the way Serf's
// key manager does: a request goes to each member over memberlist's reliable channel
// (encrypted with the current primary key once the fabric is encrypted), each member
// applies it, persists its keyring and answers. This node applies it right after the
// requests are out, so that switching an unencrypted fabric to encryption leaves only the
// milliseconds the requests take during which some members encrypt and others do not.
// An answer lost in that moment (sent encrypted before this node had the key) is made up
// for by asking the member for its keyring again. With local set, only this node's keyring
// changes (to repair a host that missed a rotation while it was down). key is ignored for
// KeyList.
//
// It returns one result per member, this node first, and an error only for a bad request;
// a member that failed or did not answer within 10 s (or before ctx ends) has Err set.
func (m *Membership) KeyringOp(ctx context.Context, op KeyOp, key []byte, local bool) ([]KeyResult, error) {
	switch op {
	case KeyList:
	case KeyInstall, KeyUse, KeyRemove:
		if err := memberlist.ValidateKey(key); err != nil {
			return nil, fmt.Errorf("keyring %s: %w", op, err)
		}
	default:
		return nil, fmt.Errorf("unknown keyring operation %q", op)
	}
	if m.shut.Load() {
		return nil, fmt.Errorf("keyring %s: %w", op, ErrClosed)
	}
	if op != KeyList {
		m.keys.changed.Store(time.Now().UnixNano())
	}
	self := func() KeyResult {
		r := KeyResult{Node: m.cfg.Name}
		if err := m.keys.apply(op, key); err != nil {
			r.Err = err.Error()
		} else if op != KeyList {
			m.log.Info("gossip keyring changed", "op", op, "keys", len(m.keys.ring.GetKeys()))
		}
		r.Keys = m.keys.keys()
		return r
	}
	if local {
		return []KeyResult{self()}, nil
	}
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, keyOpTimeout)
		defer cancel()
	}
	var targets []*memberlist.Node
	for _, n := range m.list.Members() {
		if n.Name != m.cfg.Name {
			targets = append(targets, n)
		}
	}

	f, err := m.fanOut(targets, op, key)
	if err != nil {
		return nil, fmt.Errorf("keyring %s: %w", op, err)
	}
	// Apply here once the requests are out, but without waiting on a member that does not
	// take them (a dead one still listed): members that already switched would otherwise
	// not understand this node for that long.
	select {
	case <-f.sent:
	case <-time.After(time.Second):
	}
	out := []KeyResult{self()}
	results := f.collect(ctx, keyAnswerWait)

	if op != KeyList && ctx.Err() == nil {
		var again []*memberlist.Node
		for _, n := range targets {
			if r, ok := results[n.Name]; !ok || strings.HasPrefix(r.Err, "send request") {
				again = append(again, n)
			}
		}
		if len(again) > 0 {
			m.log.Info("keyring: no answer yet; asking for the keyrings instead", "op", op, "members", len(again))
			if f, err := m.fanOut(again, KeyList, nil); err == nil {
				for name, r := range f.collect(ctx, 0) {
					if r.Err == "" && !keyringShows(op, key, r.Keys) {
						r.Err = fmt.Sprintf("keyring %s did not take effect", op)
					}
					results[name] = r
				}
			}
		}
	}
	for _, n := range targets {
		r, ok := results[n.Name]
		if !ok {
			r = KeyResult{Node: n.Name, Err: "no answer: " + context.Cause(ctx).Error()}
			if ctx.Err() == nil {
				r.Err = "no answer"
			}
		}
		out = append(out, r)
	}
	slices.SortFunc(out[1:], func(a, b KeyResult) int { return strings.Compare(a.Node, b.Node) })
	return out, nil
}

// keyAnswerWait is how long KeyringOp waits for the answers to a change before it asks the
// members that have not answered for their keyring instead.
const keyAnswerWait = 2 * time.Second

// keyringShows reports whether keys (primary first) show that op with key took effect.
func keyringShows(op KeyOp, key []byte, keys [][]byte) bool {
	i := slices.IndexFunc(keys, func(k []byte) bool { return bytes.Equal(k, key) })
	switch op {
	case KeyInstall:
		return i >= 0
	case KeyUse:
		return i == 0
	case KeyRemove:
		return i < 0
	}
	return true
}

// fanout is one keyring request sent to several members and their answers.
type fanout struct {
	m       *Membership
	id      uint64
	targets []*memberlist.Node
	answers chan keyResp
	sent    chan struct{} // closed once every request is sent (or failed)

	mu      sync.Mutex
	results map[string]KeyResult // send failures, then answers
}

// fanOut sends a keyring request to every target in the background.
func (m *Membership) fanOut(targets []*memberlist.Node, op KeyOp, key []byte) (*fanout, error) {
	f := &fanout{m: m, id: rand.Uint64(), targets: targets, answers: make(chan keyResp, len(targets)),
		sent: make(chan struct{}), results: map[string]KeyResult{}}
	msg, err := json.Marshal(keyReq{ID: f.id, From: m.cfg.Name, Op: op, Key: key})
	if err != nil {
		return nil, err
	}
	msg = append([]byte{msgKeyReq}, msg...)
	m.keys.pendMu.Lock()
	m.keys.pending[f.id] = f.answers
	m.keys.pendMu.Unlock()
	var wg sync.WaitGroup
	for _, n := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := m.list.SendReliable(n, msg); err != nil {
				f.mu.Lock()
				f.results[n.Name] = KeyResult{Node: n.Name, Err: "send request: " + err.Error()}
				f.mu.Unlock()
			}
		}()
	}
	go func() { wg.Wait(); close(f.sent) }()
	return f, nil
}

// collect waits until every target answered (or its request failed), ctx ends, or wait
// (when not 0) passes, and returns the results by member name.
func (f *fanout) collect(ctx context.Context, wait time.Duration) map[string]KeyResult {
	defer func() {
		f.m.keys.pendMu.Lock()
		delete(f.m.keys.pending, f.id)
		f.m.keys.pendMu.Unlock()
	}()
	var timeout <-chan time.Time
	if wait > 0 {
		timeout = time.After(wait)
	}
	done := func() bool {
		f.mu.Lock()
		defer f.mu.Unlock()
		return len(f.results) == len(f.targets)
	}
	isTarget := func(name string) bool {
		return slices.ContainsFunc(f.targets, func(n *memberlist.Node) bool { return n.Name == name })
	}
	sent := f.sent
loop:
	for !done() {
		select {
		case a := <-f.answers:
			if isTarget(a.Node) {
				f.mu.Lock()
				f.results[a.Node] = KeyResult{Node: a.Node, Keys: a.Keys, Err: a.Err}
				f.mu.Unlock()
			}
		case <-sent:
			sent = nil // every request is out: failures are in results, wait for answers
		case <-timeout:
			break loop
		case <-ctx.Done():
			break loop
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.results)
}

// handleKeyMsg handles a keyring request or answer from gossip.
func (m *Membership) handleKeyMsg(b []byte) {
	switch b[0] {
	case msgKeyReq:
		req, err := decodeKeyReq(b)
		if err != nil {
			m.refused("keyring request", err)
			return
		}
		if !m.keys.firstSeen(req.ID) {
			return
		}
		if req.Op != KeyList {
			m.keys.changed.Store(time.Now().UnixNano())
		}
		// Not on memberlist's goroutine: the answer opens a new connection.
		go m.answerKeyReq(req)
	case msgKeyResp:
		resp, err := decodeKeyResp(b)
		if err != nil {
			m.refused("keyring answer", err)
			return
		}
		m.keys.pendMu.Lock()
		ch := m.keys.pending[resp.ID]
		m.keys.pendMu.Unlock()
		if ch != nil {
			select {
			case ch <- resp:
			default:
			}
		}
	}
}

// answerKeyReq applies a member's keyring request here and answers it. The answer is sent
// after the change, so that it is encrypted the way the requester now expects. Requests
// claiming to come from a node that is not a live member are refused.
func (m *Membership) answerKeyReq(req keyReq) {
	var to *memberlist.Node
	for _, n := range m.list.Members() {
		if n.Name == req.From && n.Name != m.cfg.Name {
			to = n
		}
	}
	if to == nil {
		m.refused("keyring request", fmt.Errorf("%s is not a live member", req.From))
		return
	}
	resp := keyResp{ID: req.ID, Node: m.cfg.Name}
	if err := m.keys.apply(req.Op, req.Key); err != nil {
		resp.Err = err.Error()
		m.log.Warn("keyring request failed", "op", req.Op, "from", req.From, "err", err)
	} else if req.Op != KeyList {
		m.log.Info("gossip keyring changed", "op", req.Op, "from", req.From, "keys", len(m.keys.ring.GetKeys()))
	}
	resp.Keys = m.keys.keys()
	b, err := json.Marshal(resp)
	if err != nil {
		return
	}
	if m.shut.Load() {
		return
	}
	if err := m.list.SendReliable(to, append([]byte{msgKeyResp}, b...)); err != nil {
		m.log.Warn("cannot answer keyring request", "from", req.From, "err", err)
	}
}

// firstSeen records a request ID and reports whether it is new; old IDs are forgotten.
func (ks *keyState) firstSeen(id uint64) bool {
	now := time.Now()
	ks.pendMu.Lock()
	defer ks.pendMu.Unlock()
	for k, at := range ks.seen {
		if now.Sub(at) > keySeenTTL {
			delete(ks.seen, k)
		}
	}
	if _, ok := ks.seen[id]; ok {
		return false
	}
	ks.seen[id] = now
	return true
}

// decodeKeyReq parses and validates a keyring request (type byte included).
func decodeKeyReq(b []byte) (keyReq, error) {
	var r keyReq
	if err := decodeKeyJSON(b, msgKeyReq, &r); err != nil {
		return r, err
	}
	if err := checkNodeName(r.From); err != nil {
		return r, fmt.Errorf("requester: %w", err)
	}
	switch r.Op {
	case KeyList:
		if len(r.Key) != 0 {
			return r, errors.New("list request carries a key")
		}
	case KeyInstall, KeyUse, KeyRemove:
		if err := memberlist.ValidateKey(r.Key); err != nil {
			return r, err
		}
	default:
		return r, fmt.Errorf("unknown operation %q", r.Op)
	}
	return r, nil
}

// decodeKeyResp parses and validates a keyring answer (type byte included).
func decodeKeyResp(b []byte) (keyResp, error) {
	var r keyResp
	if err := decodeKeyJSON(b, msgKeyResp, &r); err != nil {
		return r, err
	}
	if err := checkNodeName(r.Node); err != nil {
		return r, fmt.Errorf("member: %w", err)
	}
	if len(r.Keys) > MaxKeys {
		return r, fmt.Errorf("%d keys, more than %d", len(r.Keys), MaxKeys)
	}
	for _, k := range r.Keys {
		if err := memberlist.ValidateKey(k); err != nil {
			return r, err
		}
	}
	if len(r.Err) > 1024 {
		r.Err = r.Err[:1024]
	}
	return r, nil
}

func decodeKeyJSON(b []byte, typ byte, v any) error {
	if len(b) == 0 || b[0] != typ {
		return errors.New("wrong message type")
	}
	if len(b) > maxKeyMsg {
		return fmt.Errorf("%d bytes, more than %d", len(b), maxKeyMsg)
	}
	dec := json.NewDecoder(bytes.NewReader(b[1:]))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return fmt.Errorf("decode: %w", err)
	}
	if dec.More() {
		return errors.New("trailing data")
	}
	return nil
}

// keyRefusals maps memberlist's log messages about gossip it could not decrypt (or that was
// not encrypted), lower-cased as their case varies between versions, to the reason shown
// in Rejected.
var keyRefusals = []struct{ match, reason string }{
	{"no installed keys could decrypt the message", "its gossip is encrypted with a key this host does not have (unknown gossip key)"},
	{"encryption is configured but remote state is not encrypted", "its gossip is not encrypted, this fabric's is (no gossip key)"},
	{"remote state is encrypted and encryption is not configured", "its gossip is encrypted, this host has no gossip key"},
	{"decrypt packet failed", "its gossip cannot be decrypted with any installed key (unknown gossip key, or none)"},
}

// sawLogLine looks at memberlist's log messages for gossip refused because of its key and
// records the sender (by IP: the name is in what could not be read) in Rejected, once the
// refusals persist (see persistentRefusal).
func (m *Membership) sawLogLine(msg string) {
	reason := ""
	for _, r := range keyRefusals {
		if strings.Contains(strings.ToLower(msg), r.match) {
			reason = r.reason
			break
		}
	}
	if reason == "" {
		return
	}
	_, from, ok := strings.Cut(msg, "from=")
	if !ok {
		return
	}
	from, _, _ = strings.Cut(from, " ")
	ap, err := netip.ParseAddrPort(strings.TrimSpace(from))
	if err != nil {
		return
	}
	ip := ap.Addr().Unmap()
	if m.keys.persistentRefusal(ip.String()) {
		m.reject(ip.String(), netip.AddrPort{}, errors.New(reason))
	}
}

// keyJoinRefusals are the errors of a join refused for its gossip key, seen by the joiner.
var keyJoinRefusals = []struct{ match, reason string }{
	{"no installed keys could decrypt the message", "its gossip is encrypted with a key this host does not have (unknown gossip key)"},
	{"remote state is encrypted and encryption is not configured", "its gossip is encrypted, this host has no gossip key"},
	{"encryption is configured but remote state is not encrypted", "its gossip is not encrypted, this host's is"},
}

// keyJoinError records a join target that refused this node, or that this node could not
// understand, because of the gossip key, so that the host left alone shows why in its own
// Rejected list too.
func (m *Membership) keyJoinError(target string, err error) {
	msg := strings.ToLower(err.Error())
	for _, r := range keyJoinRefusals {
		if !strings.Contains(msg, r.match) {
			continue
		}
		name := target
		if ap, err := netip.ParseAddrPort(target); err == nil {
			name = ap.Addr().String()
		}
		if m.keys.persistentRefusal(name) {
			m.reject(name, netip.AddrPort{}, errors.New(r.reason))
		}
		return
	}
}

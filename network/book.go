package network

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/registry"
)

// Registry is what the Book needs of the replicated registry (*registry.Registry).
type Registry interface {
	Set(kind registry.Kind, key string, value []byte) (registry.Record, error)
	Restore(kind registry.Kind, key string, value []byte, created uint64) (registry.Record, error)
	Delete(kind registry.Kind, key string) (bool, error)
	List(kind registry.Kind) []registry.Record
	Clock() uint64
	Subscribe() (<-chan registry.KindSet, func())
}

// Store is where the Book persists this host's records: the Open_vSwitch row's
// external_ids (the controller's OVSDB client satisfies it).
type Store interface {
	SystemExternalIDs(ctx context.Context) (map[string]string, error)
	SetSystemExternalIDs(ctx context.Context, set map[string]string, del []string) error
}

// Kinds are the registry kinds the Book reads: a change of any of them calls for a Sync.
var Kinds = registry.KindsOf(registry.KindNetwork, registry.KindSlice, registry.KindNetworkRemoved)

// DefaultSettle is Config.Settle's default.
const DefaultSettle = 600 * time.Millisecond

// Config configures a Book.
type Config struct {
	// Node is this host's name (its registry origin).
	Node string
	// Default is the network of the cluster CIDR (Name Default, Subnet the cluster CIDR,
	// HostBits the hosts' subnet length, Key 0): no network may overlap it. Its slices are the
	// hosts' subnet claims, which the Book does not handle.
	Default Network
	// Registry is the replicated registry; Store persists this host's records.
	Registry Registry
	Store    Store
	// Logger receives the Book's logs; nil discards them.
	Logger *slog.Logger
	// Settle is how long Create waits to learn of a concurrent create of the same name or
	// of a conflicting network before answering; 0 means DefaultSettle. It should cover a
	// gossip round trip between any two hosts.
	Settle time.Duration
}

// View is the Book's view of the fabric's networks, as the last Sync computed it.
type View struct {
	// Networks are the networks served, sorted by name; Default is not among them.
	Networks []Network
	// Conflicts are the networks defined but not served, by name, with the reason.
	Conflicts map[string]string
	// Slices are every host's winning slice of each served network, sorted by node.
	Slices map[string][]Slice
	// Local is this host's slice of each served network it holds one of.
	Local map[string]netip.Prefix
	// NoSlice says, per served network this host holds no slice of, why (exhausted).
	NoSlice map[string]string
}

// Network returns the served network name.
func (v View) Network(name string) (Network, bool) {
	for _, n := range v.Networks {
		if n.Name == name {
			return n, true
		}
	}
	return Network{}, false
}

// Book keeps this host's part of the fabric's networks: it creates and removes
// definitions, adopts (holds its own copy of) every network served, claims this host's
// slice of each, and persists its records in the Store. All methods are safe for
// concurrent use; Sync is level-triggered.
type Book struct {
	cfg Config
	log *slog.Logger

	mu     sync.Mutex
	stored map[string]string // this host's keys as the Store holds them
	dirty  bool              // the Book wrote records not persisted yet (or Load ran)
	clock  uint64            // highest Lamport time Load saw
	view   View
	// decoded caches the decoding of the records read, so that a Sync with nothing
	// changed decodes nothing; gen marks the entries the last read used.
	decoded map[cacheKey]*cached
	gen     uint64
	// writes counts the Book's registry writes; settled is set when the last Sync
	// completed without any, so that a Sync reading the same records again has nothing
	// to do and returns the view as it is.
	writes  int
	settled bool
	// sub tells of registry changes: a Sync with none of Kinds changed since the last
	// one that settled reads nothing.
	sub   <-chan registry.KindSet
	unsub func()
}

// cacheKey identifies a record in the decode cache.
type cacheKey struct {
	kind        registry.Kind
	origin, key string
}

// cached is a record's value and what it decoded to (err when it did not).
type cached struct {
	raw []byte
	val any
	err error
	gen uint64
}

// NewBook returns a Book; call Load before the registry joins gossip, then Sync.
func NewBook(cfg Config) *Book {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Settle <= 0 {
		cfg.Settle = DefaultSettle
	}
	b := &Book{cfg: cfg, log: cfg.Logger, stored: map[string]string{}, decoded: map[cacheKey]*cached{}}
	b.sub, b.unsub = cfg.Registry.Subscribe()
	return b
}

// Close ends the Book's subscription to the registry's changes.
func (b *Book) Close() { b.unsub() }

// changedLocked reports whether the registry told of a change of Kinds since the last call.
func (b *Book) changedLocked() bool {
	changed := false
	for {
		select {
		case ks, ok := <-b.sub:
			if !ok {
				return true // closed: no longer told, always read
			}
			if ks&Kinds != 0 {
				changed = true
			}
		default:
			return changed
		}
	}
}

// Load reads this host's persisted definitions, slices and removals from the Store and
// publishes them in the registry with their creation times (Restore), so that a restarted
// host neither announces an empty set nor changes the creation order. It returns the
// highest Lamport time they hold (also LoadedClock); Restore already moves the registry's
// clock past it. Keys that do not decode are logged and dropped at the next Sync.
func (b *Book) Load(ctx context.Context) (uint64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	ids, err := b.cfg.Store.SystemExternalIDs(ctx)
	if err != nil {
		return 0, fmt.Errorf("networks: load: %w", err)
	}
	p, errs := ParsePersisted(b.cfg.Node, ids)
	for _, e := range errs {
		b.log.Warn("networks: ignoring a persisted record", "err", e)
	}
	b.stored = map[string]string{}
	for k, v := range ids {
		if isOwnKey(k) {
			b.stored[k] = v
		}
	}
	reg := b.cfg.Registry
	var hi uint64
	for name, n := range p.Networks {
		if _, err := reg.Restore(registry.KindNetwork, name, n.Encode(), n.Created); err != nil {
			return 0, fmt.Errorf("networks: restore network %s: %w", name, err)
		}
		hi = max(hi, n.Created)
	}
	for name, s := range p.Slices {
		if _, err := reg.Restore(registry.KindSlice, name, s.Encode(), s.Seq); err != nil {
			return 0, fmt.Errorf("networks: restore slice of %s: %w", name, err)
		}
		hi = max(hi, s.Seq)
	}
	for name, r := range p.Removals {
		if _, err := reg.Restore(registry.KindNetworkRemoved, name, r.Encode(), r.Created); err != nil {
			return 0, fmt.Errorf("networks: restore removal of %s: %w", name, err)
		}
		hi = max(hi, r.Created)
	}
	b.clock = hi
	b.dirty = true // persisted keys that did not decode are dropped by the next persist
	b.log.Info("networks: loaded", "networks", len(p.Networks), "slices", len(p.Slices), "removals", len(p.Removals), "clock", hi)
	return hi, nil
}

// LoadedClock is the highest Lamport time Load saw in the persisted records.
func (b *Book) LoadedClock() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.clock
}

// View returns the view the last Sync (or Create, Remove) computed (the zero View before
// the first); its slices and maps are shared, read-only.
func (b *Book) View() View {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.view
}

// Create creates the network s asks for, fabric-wide, with this host as its origin. It
// answers with the existing network when one of the name matches s (creates are
// idempotent), and refuses with an error wrapping api.ErrInvalid for a bad spec, or
// api.ErrConflict when the name exists otherwise, the subnet overlaps another network or
// the key is taken. Otherwise it publishes and persists the definition, waits Config.Settle
// to learn of concurrent creates, and resolves again: when another definition won the
// name, or ours conflicts with a network created before it, it deletes ours and returns
// an api.ErrConflict error describing the winner.
func (b *Book) Create(ctx context.Context, s Spec) (Network, error) {
	n, done, err := b.createLocked(ctx, s)
	if err != nil || done {
		return n, err
	}
	t := time.NewTimer(b.cfg.Settle)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
		// The definition stands (it is published); the next Sync decides as usual.
		return Network{}, fmt.Errorf("network %s: created, but stopped waiting for concurrent creates: %w", s.Name, ctx.Err())
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.read()
	res := b.resolve(st)
	w, ok := res.Winner(n.Name)
	reason := res.ConflictOf(n.Name)
	if ok && w.Same(n) && reason == "" {
		_, err := b.syncLocked(ctx, st, res)
		return n, err
	}
	if own, have := st.ownDefs[n.Name]; have && own.n.Same(n) {
		if _, err := b.del(registry.KindNetwork, n.Name); err != nil {
			return Network{}, fmt.Errorf("network %s: withdraw the losing definition: %w", n.Name, err)
		}
		if err := b.persistLocked(ctx); err != nil {
			return Network{}, err
		}
	}
	switch {
	case ok && !w.Same(n):
		return Network{}, api.Errorf(api.ErrConflict, "network %s was created at the same time by %s with subnet %s, host prefix /%d, key %d; that definition won",
			n.Name, w.Origin, w.Subnet, w.HostBits, w.Key)
	case ok:
		return Network{}, api.Errorf(api.ErrConflict, "network %s not created: %s", n.Name, reason)
	}
	return Network{}, api.Errorf(api.ErrConflict, "network %s was removed while being created", n.Name)
}

// createLocked checks s and publishes its definition; done is set when the answer is
// known without waiting (an existing matching network).
func (b *Book) createLocked(ctx context.Context, s Spec) (n Network, done bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.read()
	res := b.resolve(st)
	if err := ValidName(s.Name); err == nil && s.Name != Default {
		if w, ok := res.Winner(s.Name); ok {
			if reason := res.ConflictOf(s.Name); reason != "" {
				return Network{}, false, api.Errorf(api.ErrConflict, "network %s exists but is not served: %s", s.Name, reason)
			}
			if s.Matches(w) {
				return w, true, nil
			}
			return Network{}, false, api.Errorf(api.ErrConflict, "network %s already exists with subnet %s, host prefix /%d, key %d, internal %t (created by %s)",
				w.Name, w.Subnet, w.HostBits, w.Key, w.Internal, w.Origin)
		}
	}
	used := map[uint32]bool{}
	for _, d := range st.defs {
		used[d.Key] = true
	}
	existing := append([]Network{b.cfg.Default}, res.Accepted...)
	s, err = s.Complete(existing, used)
	if err != nil {
		return Network{}, false, err
	}
	created := b.cfg.Registry.Clock() + 1
	n = s.Network(b.cfg.Node, created)
	if _, err := b.restore(registry.KindNetwork, n.Name, n.Encode(), created); err != nil {
		return Network{}, false, fmt.Errorf("network %s: publish: %w", n.Name, err)
	}
	if err := b.persistLocked(ctx); err != nil {
		// OVSDB is the host's truth: a definition it does not hold is withdrawn.
		if _, derr := b.del(registry.KindNetwork, n.Name); derr != nil {
			b.log.Warn("networks: withdraw the unpersisted definition", "network", n.Name, "err", derr)
		}
		return Network{}, false, err
	}
	b.log.Info("networks: created, waiting for concurrent creates", "network", n.Name, "subnet", n.Subnet, "key", n.Key, "created", created)
	return n, false, nil
}

// Remove removes network name fabric-wide: it publishes a removal that kills every
// definition of the name created so far (on every host, also hosts away now: see the
// package doc), withdraws this host's copy and slice, and persists the removal. It
// returns the removed network, or an error wrapping api.ErrNotFound. The caller checks
// that no host has endpoints on the network (or that the removal is forced).
func (b *Book) Remove(ctx context.Context, name string) (Network, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	st := b.read()
	res := b.resolve(st)
	w, ok := res.Winner(name)
	if !ok {
		return Network{}, api.Errorf(api.ErrNotFound, "no network %s", name)
	}
	mark := w
	for _, d := range st.defs {
		if d.Name == name && mark.Precedes(d) {
			mark = d
		}
	}
	r := Removal{Name: name, Origin: mark.Origin, Created: mark.Created}
	if _, err := b.restore(registry.KindNetworkRemoved, name, r.Encode(), r.Created); err != nil {
		return Network{}, fmt.Errorf("network %s: publish the removal: %w", name, err)
	}
	b.log.Info("networks: removed", "network", name, "origin", w.Origin, "created", w.Created)
	st = b.read()
	if _, err := b.syncLocked(ctx, st, b.resolve(st)); err != nil {
		return Network{}, err
	}
	return w, nil
}

// Sync brings this host's records in line with what the registry's records decide (see
// the package doc): it adopts every network served, withdraws copies that lost, were
// removed or conflict, spreads removals, claims, keeps or re-picks this host's slice of
// every network served, and persists what changed (nothing is written when nothing
// changed). Call it whenever the registry's Kinds change: when none changed since the
// last Sync that settled (wrote nothing), it returns that Sync's view without reading.
func (b *Book) Sync(ctx context.Context) (View, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.changedLocked() && b.settled {
		return b.view, nil
	}
	st := b.read()
	if !st.changed && b.settled {
		return b.view, nil
	}
	return b.syncLocked(ctx, st, b.resolve(st))
}

func (b *Book) resolve(st *snapshot) Resolution { return Resolve(b.cfg.Default, st.defs, st.removals) }

func (b *Book) syncLocked(ctx context.Context, st *snapshot, res Resolution) (View, error) {
	reg, node := b.cfg.Registry, b.cfg.Node
	b.settled = false
	writes := b.writes
	// Definitions: this host holds a copy of every network served, and keeps its own
	// conflicted definition (so that the operator sees the conflict) but no other.
	keep := map[string]Network{}
	for _, n := range res.Accepted {
		keep[n.Name] = n
	}
	for _, c := range res.Conflicted {
		if own, ok := st.ownDefs[c.Network.Name]; ok && c.Network.Origin == node && own.n.Same(c.Network) {
			keep[c.Network.Name] = c.Network
		}
	}
	for name, own := range st.ownDefs {
		if _, ok := keep[name]; ok {
			continue
		}
		if _, err := b.del(registry.KindNetwork, name); err != nil {
			return View{}, fmt.Errorf("network %s: withdraw: %w", name, err)
		}
		if r, ok := res.Removed[name]; ok && r.Covers(own.n) {
			// Spread the removal: this host's record outlives the host that ran rm.
			if _, err := b.restore(registry.KindNetworkRemoved, name, r.Encode(), r.Created); err != nil {
				return View{}, fmt.Errorf("network %s: record the removal: %w", name, err)
			}
			b.log.Info("networks: network removed", "network", name)
			continue
		}
		b.log.Info("networks: withdrawing the copy of a definition not served", "network", name, "origin", own.n.Origin)
	}
	for name, n := range keep {
		v := n.Encode()
		if own, ok := st.ownDefs[name]; ok && own.n.Same(n) && bytes.Equal(own.raw, v) {
			continue
		}
		if _, err := b.restore(registry.KindNetwork, name, v, n.Created); err != nil {
			return View{}, fmt.Errorf("network %s: adopt: %w", name, err)
		}
	}
	// This host's removal records follow the latest mark of their name.
	for name, own := range st.ownRemovals {
		if r := res.Removed[name]; r != own {
			if _, err := b.restore(registry.KindNetworkRemoved, name, r.Encode(), r.Created); err != nil {
				return View{}, fmt.Errorf("network %s: record the removal: %w", name, err)
			}
		}
	}
	// Slices.
	view := View{Networks: res.Accepted, Conflicts: map[string]string{}, Slices: map[string][]Slice{},
		Local: map[string]netip.Prefix{}, NoSlice: map[string]string{}}
	for _, c := range res.Conflicted {
		view.Conflicts[c.Network.Name] = c.Reason
	}
	for _, n := range res.Accepted {
		claims := st.slices[n.Name]
		win := WinningSlices(n, claims)
		mine, have := st.ownSlices[n.Name]
		if have && slices.Contains(win, mine) {
			view.Slices[n.Name] = win
			view.Local[n.Name] = mine.Prefix
			continue
		}
		p, err := PickSlice(n, node, claims)
		if err != nil {
			view.Slices[n.Name] = win
			view.NoSlice[n.Name] = err.Error()
			if have {
				if _, err := b.del(registry.KindSlice, n.Name); err != nil {
					return View{}, fmt.Errorf("network %s: withdraw the slice: %w", n.Name, err)
				}
			}
			b.log.Warn("networks: no slice", "network", n.Name, "err", err)
			continue
		}
		seq := reg.Clock()
		for _, c := range claims {
			seq = max(seq, c.Seq)
		}
		seq++
		s := Slice{Network: n.Name, Node: node, Prefix: p, Seq: seq}
		if _, err := b.restore(registry.KindSlice, n.Name, s.Encode(), seq); err != nil {
			return View{}, fmt.Errorf("network %s: claim slice %s: %w", n.Name, p, err)
		}
		if have {
			b.log.Info("networks: slice lost, claimed another", "network", n.Name, "lost", mine.Prefix, "slice", p)
		} else {
			b.log.Info("networks: claimed a slice", "network", n.Name, "slice", p)
		}
		claims = append(slices.DeleteFunc(slices.Clone(claims), func(c Slice) bool { return c.Node == node }), s)
		view.Slices[n.Name] = WinningSlices(n, claims)
		view.Local[n.Name] = p
	}
	for name := range st.ownSlices {
		if _, ok := res.Accepts(name); ok {
			continue
		}
		if _, err := b.del(registry.KindSlice, name); err != nil {
			return View{}, fmt.Errorf("network %s: withdraw the slice: %w", name, err)
		}
	}
	b.view = view
	if err := b.persistLocked(ctx); err != nil {
		return view, err
	}
	b.settled = b.writes == writes
	return view, nil
}

// restore and del write this host's records (see Registry) and mark them for persisting.
func (b *Book) restore(kind registry.Kind, key string, value []byte, created uint64) (registry.Record, error) {
	b.dirty = true
	b.writes++
	return b.cfg.Registry.Restore(kind, key, value, created)
}

func (b *Book) del(kind registry.Kind, key string) (bool, error) {
	b.dirty = true
	b.writes++
	return b.cfg.Registry.Delete(kind, key)
}

// persistLocked writes this host's records of the Book's kinds to the Store, when they
// differ from what it holds.
func (b *Book) persistLocked(ctx context.Context) error {
	if !b.dirty {
		return nil
	}
	want := map[string]string{}
	for _, k := range []struct {
		kind   registry.Kind
		prefix string
	}{{registry.KindNetwork, KeyNetPrefix}, {registry.KindSlice, KeySlicePrefix}, {registry.KindNetworkRemoved, KeyRemovedPrefix}} {
		for _, rec := range b.cfg.Registry.List(k.kind) {
			if rec.Origin == b.cfg.Node {
				want[k.prefix+rec.Key] = string(rec.Value)
			}
		}
	}
	set := map[string]string{}
	for k, v := range want {
		if old, ok := b.stored[k]; !ok || old != v {
			set[k] = v
		}
	}
	var del []string
	for k := range b.stored {
		if _, ok := want[k]; !ok {
			del = append(del, k)
		}
	}
	if len(set) > 0 || len(del) > 0 {
		slices.Sort(del)
		if err := b.cfg.Store.SetSystemExternalIDs(ctx, set, del); err != nil {
			return fmt.Errorf("networks: persist: %w", err)
		}
	}
	b.stored = maps.Clone(want)
	b.dirty = false
	return nil
}

// ownDef is this host's record of a definition, decoded and raw.
type ownDef struct {
	n   Network
	raw []byte
}

// snapshot is what the registry holds of the Book's kinds, decoded.
type snapshot struct {
	defs        []Network
	ownDefs     map[string]ownDef
	removals    []Removal
	ownRemovals map[string]Removal
	slices      map[string][]Slice // by network, every host's
	ownSlices   map[string]Slice
	// changed is set unless the records are those the previous read decoded.
	changed bool
}

// read decodes the registry's records of the Book's kinds; records that do not decode
// (from a host of a later version, or damaged) are logged once and ignored.
func (b *Book) read() *snapshot {
	reg, node := b.cfg.Registry, b.cfg.Node
	st := &snapshot{ownDefs: map[string]ownDef{}, ownRemovals: map[string]Removal{}, slices: map[string][]Slice{}, ownSlices: map[string]Slice{}}
	b.gen++
	for _, rec := range reg.List(registry.KindNetwork) {
		v, ok := b.decode(st, rec)
		if !ok {
			continue
		}
		n := v.(Network)
		st.defs = append(st.defs, n)
		if rec.Origin == node {
			st.ownDefs[n.Name] = ownDef{n, rec.Value}
		}
	}
	for _, rec := range reg.List(registry.KindNetworkRemoved) {
		v, ok := b.decode(st, rec)
		if !ok {
			continue
		}
		r := v.(Removal)
		st.removals = append(st.removals, r)
		if rec.Origin == node {
			st.ownRemovals[r.Name] = r
		}
	}
	for _, rec := range reg.List(registry.KindSlice) {
		v, ok := b.decode(st, rec)
		if !ok {
			continue
		}
		s := v.(Slice)
		st.slices[s.Network] = append(st.slices[s.Network], s)
		if rec.Origin == node {
			st.ownSlices[s.Network] = s
		}
	}
	for k, c := range b.decoded {
		if c.gen != b.gen {
			delete(b.decoded, k)
			st.changed = true
		}
	}
	return st
}

// decode decodes a record of the Book's kinds, from the cache when its value is the one
// decoded before.
func (b *Book) decode(st *snapshot, rec registry.Record) (any, bool) {
	k := cacheKey{rec.Kind, rec.Origin, rec.Key}
	c := b.decoded[k]
	if c == nil || !bytes.Equal(c.raw, rec.Value) {
		st.changed = true
		c = &cached{raw: rec.Value}
		switch rec.Kind {
		case registry.KindNetwork:
			c.val, c.err = DecodeNetwork(rec.Key, rec.Value)
		case registry.KindSlice:
			c.val, c.err = DecodeSlice(rec.Key, rec.Origin, rec.Value)
		case registry.KindNetworkRemoved:
			c.val, c.err = DecodeRemoval(rec.Key, rec.Value)
		}
		if c.err != nil {
			b.log.Debug("networks: ignoring a record", "kind", rec.Kind, "origin", rec.Origin, "err", c.err)
		}
		b.decoded[k] = c
	}
	c.gen = b.gen
	return c.val, c.err == nil
}

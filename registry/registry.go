package registry

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// Sender delivers a message reliably to one gossip member by node name; with memberlist it
// looks the node up among the members and calls Memberlist.SendReliable. The message
// arrives at the member's delegate's NotifyMsg.
type Sender interface {
	SendTo(node string, msg []byte) error
}

// Config configures a Registry.
type Config struct {
	// Origin is this host's name: its gossip node name, which peers use to address it.
	Origin string
	// Incarnation is this host's persisted start counter, raised at every start (1 or more).
	// It makes the versions of this run higher than those of earlier runs without
	// consulting a clock. When peers show that an earlier run used a higher incarnation
	// (the counter was lost), the registry moves past it and calls OnIncarnation.
	Incarnation uint32
	// OnIncarnation, when set, is called (from the goroutine that learnt it, without
	// locks held) with the new incarnation when the registry had to raise it; persist it.
	OnIncarnation func(uint32)
	// Sender sends sync requests and responses (required).
	Sender Sender
	// NumNodes returns the number of members (this one included), for the broadcast
	// queue's retransmit limit; nil means 1.
	NumNodes func() int
	// RetransmitMult is the broadcast retransmit multiplier (memberlist.Config's); 0 means 4.
	RetransmitMult int
	// TombstoneTTL is how long a deleted record's tombstone is kept; 0 means one hour. A
	// host out of touch for longer catches up by a full snapshot instead of a delta.
	TombstoneTTL time.Duration
	// ForgetTTL is how long Forget keeps refusing the forgotten origin's older records
	// from peers that still hold them; 0 means 24 hours.
	ForgetTTL time.Duration
	// GapDelay is how long a gap in an origin's versions (a lost broadcast) may last
	// before the registry asks the origin for what it missed; 0 means one second.
	GapDelay time.Duration
	// RequestTimeout bounds a sync request's wait for the first part of its response, and
	// then for each next part (a responder cannot tell the requester that it failed to
	// answer, e.g. while memberlist still has an old address for it); 0 means 10 seconds.
	RequestTimeout time.Duration
	// Clock is the initial Lamport time (e.g. persisted); the clock only moves forward.
	Clock uint64
	// Logger receives debug and info logs; nil discards them.
	Logger *slog.Logger

	now func() time.Time // tests
}

// Registry is a replicated store of records, one writer per record. Create it with New,
// run Run, and forward the memberlist delegate calls to it. All methods are safe for
// concurrent use.
type Registry struct {
	cfg     Config
	log     *slog.Logger
	queue   *memberlist.TransmitLimitedQueue
	work    chan func()
	running atomic.Bool

	mu        sync.Mutex
	ver       Version // this origin's latest version
	clock     uint64
	origins   map[string]*originState // this origin included
	forgotten map[string]forgotten
	nextID    uint64
	lastGC    time.Time

	subMu sync.Mutex
	subs  map[chan KindSet]struct{}
}

// recKey identifies a record within its origin.
type recKey struct {
	kind Kind
	key  string
}

// entry is a stored record; entries are immutable once stored.
type entry struct {
	Record
	at time.Time // when stored here, for tombstone GC
}

// forgotten remembers a Forget: records of the origin up to floor are refused.
type forgotten struct {
	floor Version
	at    time.Time
}

// Internal limits.
const (
	// maxInlineMsg is the largest delta broadcast by gossip (a UDP packet holds about 1400
	// bytes shared with memberlist's messages); larger records spread by sync only.
	maxInlineMsg = 1024
	// maxQueued bounds the broadcast queue; dropped broadcasts become gaps that receivers
	// fill by a sync request to the origin.
	maxQueued = 4096
	// maxAhead bounds the out-of-order versions remembered per origin.
	maxAhead = 1 << 14
	// serveRetries and serveRetryDelay bound how an answer that could not be sent is
	// tried again.
	serveRetries    = 3
	serveRetryDelay = 300 * time.Millisecond
	// workQueue bounds pending sends.
	workQueue = 1024
)

// New returns a registry for cfg.Origin with no records but its own (none yet).
func New(cfg Config) (*Registry, error) {
	if err := checkOrigin(cfg.Origin); err != nil {
		return nil, fmt.Errorf("registry: %w", err)
	}
	if cfg.Incarnation == 0 {
		return nil, errors.New("registry: incarnation must be 1 or more")
	}
	if cfg.Sender == nil {
		return nil, errors.New("registry: no sender")
	}
	if cfg.NumNodes == nil {
		cfg.NumNodes = func() int { return 1 }
	}
	if cfg.RetransmitMult <= 0 {
		cfg.RetransmitMult = 4
	}
	if cfg.TombstoneTTL <= 0 {
		cfg.TombstoneTTL = time.Hour
	}
	if cfg.ForgetTTL <= 0 {
		cfg.ForgetTTL = 24 * time.Hour
	}
	if cfg.GapDelay <= 0 {
		cfg.GapDelay = time.Second
	}
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 10 * time.Second
	}
	if cfg.Clock >= maxCreated {
		return nil, fmt.Errorf("registry: clock %d out of range", cfg.Clock)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.now == nil {
		cfg.now = time.Now
	}
	r := &Registry{
		cfg:       cfg,
		log:       cfg.Logger,
		work:      make(chan func(), workQueue),
		ver:       MakeVersion(cfg.Incarnation, 0),
		clock:     cfg.Clock,
		origins:   map[string]*originState{},
		forgotten: map[string]forgotten{},
		subs:      map[chan KindSet]struct{}{},
		lastGC:    cfg.now(),
	}
	r.queue = &memberlist.TransmitLimitedQueue{NumNodes: cfg.NumNodes, RetransmitMult: cfg.RetransmitMult}
	self := r.originLocked(cfg.Origin)
	self.w, self.m = r.ver, r.ver
	return r, nil
}

// Origin is this registry's origin name.
func (r *Registry) Origin() string { return r.cfg.Origin }

// Incarnation is the incarnation this registry writes with now.
func (r *Registry) Incarnation() uint32 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ver.Incarnation()
}

// Clock is the current Lamport time (for persisting; see Config.Clock).
func (r *Registry) Clock() uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.clock
}

// effects collects what a locked operation must announce once the lock is released.
type effects struct {
	changed KindSet
	bumped  uint32 // new incarnation, 0 when unchanged
}

// finish announces e; call it without r.mu held.
func (r *Registry) finish(e effects) {
	if e.bumped != 0 && r.cfg.OnIncarnation != nil {
		r.cfg.OnIncarnation(e.bumped)
	}
	if e.changed != 0 {
		r.notify(e.changed)
	}
}

// originLocked returns the state of origin name, creating it (nil when too many origins).
func (r *Registry) originLocked(name string) *originState {
	if o := r.origins[name]; o != nil {
		return o
	}
	if len(r.origins) >= maxOrigins {
		return nil
	}
	o := &originState{name: name, recs: map[recKey]*entry{}}
	r.origins[name] = o
	return o
}

func (r *Registry) self() *originState { return r.origins[r.cfg.Origin] }

// tick advances the Lamport clock for a local creation.
func (r *Registry) tickLocked() uint64 {
	if r.clock < maxCreated-1 {
		r.clock++
	}
	return r.clock
}

// witnessLocked moves the Lamport clock past a time seen in a record or digest.
func (r *Registry) witnessLocked(t uint64) {
	if t > r.clock && t < maxCreated {
		r.clock = t
	}
}

// Set writes this host's record of kind and key with value (at most MaxValueSize bytes;
// copied) and spreads it. Writing the value a live record already has changes nothing. A
// new key (or one deleted before) gets a new Lamport creation time; an update keeps it.
func (r *Registry) Set(kind Kind, key string, value []byte) (Record, error) {
	return r.write(kind, key, value, 0, false)
}

// Restore is Set with a given creation time, for republishing records persisted by an
// earlier run so that they keep their place in the creation order; created must be 1 or
// more. The Lamport clock moves past created.
func (r *Registry) Restore(kind Kind, key string, value []byte, created uint64) (Record, error) {
	if created == 0 || created >= maxCreated {
		return Record{}, fmt.Errorf("%w: creation time %d out of range", ErrInvalid, created)
	}
	return r.write(kind, key, value, created, false)
}

// Delete deletes this host's record of kind and key, leaving a tombstone for
// Config.TombstoneTTL; it reports whether there was a live record.
func (r *Registry) Delete(kind Kind, key string) (bool, error) {
	rec, err := r.write(kind, key, nil, 0, true)
	return rec.Deleted, err
}

func (r *Registry) write(kind Kind, key string, value []byte, created uint64, del bool) (Record, error) {
	if err := checkKey(kind, key); err != nil {
		return Record{}, err
	}
	if len(value) > MaxValueSize {
		return Record{}, fmt.Errorf("%w: value of %d bytes, more than %d", ErrInvalid, len(value), MaxValueSize)
	}
	var eff effects
	defer func() { r.finish(eff) }()
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.self()
	k := recKey{kind, key}
	held := o.recs[k]
	live := held != nil && !held.Deleted
	switch {
	case del && !live:
		return Record{}, nil
	case !del && live && bytes.Equal(held.Value, value) && (created == 0 || created == held.Created):
		return cloneRecord(&held.Record), nil
	case held == nil && len(o.recs) >= MaxRecordsPerOrigin:
		return Record{}, fmt.Errorf("%w: %d records", ErrFull, len(o.recs))
	}
	switch {
	case created != 0:
		r.witnessLocked(created)
	case live:
		created = held.Created
	default:
		created = r.tickLocked()
	}
	e := &entry{Record: Record{Kind: kind, Key: key, Origin: r.cfg.Origin, Created: created, Deleted: del}, at: r.cfg.now()}
	if !del {
		e.Value = bytes.Clone(value)
	}
	e.Version = r.nextVersionLocked(&eff)
	o.store(e)
	o.w, o.m = r.ver, r.ver
	r.queueLocked(&e.Record, encodeDelta(&e.Record))
	eff.changed |= KindsOf(kind)
	return cloneRecord(&e.Record), nil
}

// nextVersionLocked allocates this origin's next version, moving to a new incarnation when
// the sequence is exhausted.
func (r *Registry) nextVersionLocked(eff *effects) Version {
	v, ok := r.ver.next()
	if !ok {
		r.bumpLocked(r.ver.Incarnation(), eff)
		v, _ = r.ver.next() // the sequence is short after a bump
	}
	r.ver = v
	return v
}

// bumpLocked moves this origin to an incarnation above seen and above its own, and
// rewrites all its records (tombstones included) with versions of the new incarnation.
// Peers see the new incarnation and replace what they hold of this origin by a full
// snapshot, which also drops records of earlier runs that this run no longer has.
func (r *Registry) bumpLocked(seen uint32, eff *effects) {
	inc := max(seen, r.ver.Incarnation())
	if inc == math.MaxUint32 {
		r.log.Error("registry: incarnation exhausted")
		return
	}
	inc++
	r.log.Info("registry: moving to a new incarnation", "from", r.ver.Incarnation(), "to", inc, "seen", seen)
	// Sequence 1 stays unused: receivers take a write at sequence 1 as the first of an
	// incarnation that started empty, which a rewritten one did not.
	r.ver = MakeVersion(inc, 1)
	o := r.self()
	old := make([]*entry, 0, len(o.recs))
	for _, e := range o.recs {
		old = append(old, e)
	}
	slices.SortFunc(old, func(a, b *entry) int {
		return cmp.Or(cmp.Compare(a.Kind, b.Kind), cmp.Compare(a.Key, b.Key))
	})
	for _, e := range old {
		r.ver++
		n := &entry{Record: e.Record, at: e.at}
		n.Version = r.ver
		o.store(n)
		r.queueLocked(&n.Record, encodeDelta(&n.Record))
	}
	o.w, o.m = r.ver, r.ver
	eff.bumped = inc
}

// Get returns origin's live record of kind and key.
func (r *Registry) Get(origin string, kind Kind, key string) (Record, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.origins[origin]
	if o == nil {
		return Record{}, false
	}
	e := o.recs[recKey{kind, key}]
	if e == nil || e.Deleted {
		return Record{}, false
	}
	return cloneRecord(&e.Record), true
}

// Lookup returns the live records of kind and key of every origin, in the Precedes order
// (so the first one is the Winner).
func (r *Registry) Lookup(kind Kind, key string) []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Record
	k := recKey{kind, key}
	for _, o := range r.origins {
		if e := o.recs[k]; e != nil && !e.Deleted {
			out = append(out, cloneRecord(&e.Record))
		}
	}
	slices.SortFunc(out, func(a, b Record) int {
		return cmp.Or(cmp.Compare(a.Created, b.Created), cmp.Compare(a.Origin, b.Origin))
	})
	return out
}

// Winner returns the record of kind and key that wins among all origins' live records
// (see the function Winner): the answer to "who won network K". A host whose own record
// lost learns it here.
func (r *Registry) Winner(kind Kind, key string) (Record, bool) {
	return Winner(r.Lookup(kind, key))
}

// List returns every live record of kind, of all origins, sorted by origin and key.
func (r *Registry) List(kind Kind) []Record {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []Record
	for _, o := range r.origins {
		for _, e := range o.recs {
			if e.Kind == kind && !e.Deleted {
				out = append(out, cloneRecord(&e.Record))
			}
		}
	}
	slices.SortFunc(out, func(a, b Record) int {
		return cmp.Or(cmp.Compare(a.Origin, b.Origin), cmp.Compare(a.Key, b.Key))
	})
	return out
}

// Count returns how many live records of kind each origin has.
func (r *Registry) Count(kind Kind) map[string]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := map[string]int{}
	for name, o := range r.origins {
		for _, e := range o.recs {
			if e.Kind == kind && !e.Deleted {
				out[name]++
			}
		}
	}
	return out
}

// OriginStatus describes what this registry holds of one origin.
type OriginStatus struct {
	// Name is the origin's name.
	Name string
	// Watermark is the version up to which this registry holds all of the origin's
	// writes (for this host: its latest version).
	Watermark Version
	// Max is the highest version of the origin seen.
	Max Version
	// Live and Tombstones count the records held.
	Live, Tombstones int
	// Syncing is set while a sync request for the origin is outstanding.
	Syncing bool
}

// Origins describes the origins held, sorted by name.
func (r *Registry) Origins() []OriginStatus {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]OriginStatus, 0, len(r.origins))
	for _, o := range r.origins {
		out = append(out, OriginStatus{Name: o.name, Watermark: o.w, Max: o.m, Live: o.live, Tombstones: o.tombs, Syncing: o.req != nil})
	}
	slices.SortFunc(out, func(a, b OriginStatus) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// Forget drops every record of origin (call it when the host left, or is dead past the
// grace period) and refuses for Config.ForgetTTL the copies that peers still hold; newer
// writes of the origin (it came back) are accepted and fetched in full. This host's own
// records cannot be forgotten. It reports whether anything was held.
func (r *Registry) Forget(origin string) bool {
	if origin == r.cfg.Origin {
		return false
	}
	var eff effects
	defer func() { r.finish(eff) }()
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.origins[origin]
	if o == nil {
		return false
	}
	for _, e := range o.recs {
		if !e.Deleted {
			eff.changed |= KindsOf(e.Kind)
		}
	}
	floor := max(o.m, o.w, r.forgotten[origin].floor)
	r.forgotten[origin] = forgotten{floor: floor, at: r.cfg.now()}
	delete(r.origins, origin)
	r.log.Debug("registry: forgot origin", "origin", origin, "records", len(o.recs), "floor", floor)
	return true
}

// Unforget lifts a Forget of origin: call it when membership shows the origin alive again
// without having restarted (a partition longer than the dead-peer grace). Its records were
// never withdrawn on its side, so they are taken again from its digest (fetched from the
// origin or a peer holding them), not only once it writes again. It reports whether origin
// was forgotten.
func (r *Registry) Unforget(origin string) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.forgotten[origin]; !ok {
		return false
	}
	delete(r.forgotten, origin)
	r.log.Debug("registry: origin alive again, no longer forgotten", "origin", origin)
	return true
}

// Subscribe returns a channel that receives the set of kinds changed since the last
// receive (changes coalesce while the consumer is busy), and a function that ends the
// subscription and closes the channel.
func (r *Registry) Subscribe() (<-chan KindSet, func()) {
	ch := make(chan KindSet, 1)
	r.subMu.Lock()
	r.subs[ch] = struct{}{}
	r.subMu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			r.subMu.Lock()
			delete(r.subs, ch)
			close(ch)
			r.subMu.Unlock()
		})
	}
}

// notify merges ks into every subscriber's pending set without blocking: subMu serializes
// senders, so after a failed send the buffered value can be taken and merged.
func (r *Registry) notify(ks KindSet) {
	r.subMu.Lock()
	defer r.subMu.Unlock()
	for ch := range r.subs {
		select {
		case ch <- ks:
		default:
			select {
			case old := <-ch:
				ch <- old | ks
			default:
				ch <- ks
			}
		}
	}
}

// Run sends sync requests and responses, asks origins for lost broadcasts and collects
// expired tombstones until ctx is done. Without it the registry still merges what it
// receives but never asks or answers.
func (r *Registry) Run(ctx context.Context) error {
	if !r.running.CompareAndSwap(false, true) {
		return errors.New("registry: Run called twice")
	}
	defer r.running.Store(false)
	every := min(r.cfg.GapDelay/2, time.Second)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case job := <-r.work:
			job()
		case <-t.C:
			r.tick(r.cfg.now())
		}
	}
}

func cloneRecord(r *Record) Record {
	c := *r
	c.Value = bytes.Clone(r.Value)
	return c
}

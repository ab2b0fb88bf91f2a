package registry

import (
	"bytes"
	"cmp"
	"slices"
	"time"

	"github.com/hashicorp/memberlist"
)

// originState is what this registry holds of one origin.
type originState struct {
	name string
	recs map[recKey]*entry
	// w is the watermark: this registry holds, for every key of the origin, a copy at
	// least as new as the origin's copy was when its version was w. m is the highest
	// version seen. Versions in (w, m] seen out of order wait in ahead until the gap
	// before them closes.
	w, m  Version
	ahead map[Version]struct{}
	live  int
	tombs int
	hash  uint64  // XOR of recHash over the live records
	floor Version // highest version of a tombstone collected here
	// gapSince is when w < m started (zero when w == m).
	gapSince time.Time
	req      *pending
}

// pending is an outstanding sync request and the response parts received so far.
type pending struct {
	id       uint64
	peer     string
	deadline time.Time
	parts    int // 0 until the first part arrives
	full     bool
	got      map[int]struct{}
	seen     map[recKey]struct{} // full responses: keys received
	w, floor Version
}

func (o *originState) account(e *entry, sign int) {
	if e.Deleted {
		o.tombs += sign
		return
	}
	o.live += sign
	o.hash ^= recHash(e.Kind, e.Key, e.Version)
}

// store puts e in place of the record of its key.
func (o *originState) store(e *entry) {
	k := recKey{e.Kind, e.Key}
	if old := o.recs[k]; old != nil {
		o.account(old, -1)
	}
	o.recs[k] = e
	o.account(e, 1)
	o.m = max(o.m, e.Version)
}

func (o *originState) drop(k recKey) {
	if old := o.recs[k]; old != nil {
		o.account(old, -1)
		delete(o.recs, k)
	}
}

// note records that the write at version v of this origin is held here (stored, or
// superseded by a newer copy), advancing the watermark when v closes the gap after it.
func (o *originState) note(v Version, now time.Time) {
	o.m = max(o.m, v)
	if v <= o.w {
		return
	}
	// An incarnation starts empty (its sequence 1 is never a rewrite, see bumpLocked),
	// so its first write also follows "nothing known".
	if o.w != 0 && v-1 == o.w || o.w == 0 && v.Seq() == 1 {
		o.w = v
		o.advance()
	} else if len(o.ahead) < maxAhead {
		if o.ahead == nil {
			o.ahead = map[Version]struct{}{}
		}
		o.ahead[v] = struct{}{}
	}
	o.settle(now)
}

// advance moves the watermark over versions already seen out of order.
func (o *originState) advance() {
	for len(o.ahead) > 0 {
		n := o.w + 1
		if _, ok := o.ahead[n]; !ok {
			break
		}
		delete(o.ahead, n)
		o.w = n
	}
}

// raise sets the watermark to at least w (after a sync), dropping what it covers.
func (o *originState) raise(w Version, now time.Time) {
	if w > o.w {
		o.w = w
		for v := range o.ahead {
			if v <= w {
				delete(o.ahead, v)
			}
		}
		o.advance()
	}
	o.m = max(o.m, o.w)
	o.settle(now)
}

// settle starts or stops the gap timer.
func (o *originState) settle(now time.Time) {
	switch {
	case o.w >= o.m:
		o.gapSince = time.Time{}
	case o.gapSince.IsZero():
		o.gapSince = now
	}
}

// recHash hashes a live record's identity and version (FNV-1a, then a splitmix64 finish),
// identical on every host so that digests can be compared.
func recHash(kind Kind, key string, v Version) uint64 {
	h := uint64(14695981039346656037)
	h = (h ^ uint64(kind)) * 1099511628211
	for i := 0; i < len(key); i++ {
		h = (h ^ uint64(key[i])) * 1099511628211
	}
	x := h ^ uint64(v)*0x9E3779B97F4A7C15
	x = (x ^ x>>30) * 0xBF58476D1CE4E5B9
	x = (x ^ x>>27) * 0x94D049BB133111EB
	return x ^ x>>31
}

// broadcast is a delta in the TransmitLimitedQueue; a newer write of the same record
// replaces a queued older one.
type broadcast struct {
	name string
	msg  []byte
}

var _ memberlist.NamedBroadcast = (*broadcast)(nil)

// Invalidates reports whether b replaces other (same record).
func (b *broadcast) Invalidates(other memberlist.Broadcast) bool {
	o, ok := other.(memberlist.NamedBroadcast)
	return ok && o.Name() == b.name
}

// Name identifies the record the broadcast carries.
func (b *broadcast) Name() string { return b.name }

// Message is the encoded delta.
func (b *broadcast) Message() []byte { return b.msg }

// Finished is a no-op.
func (b *broadcast) Finished() {}

// queueLocked queues a delta for gossip when it fits a packet.
func (r *Registry) queueLocked(rec *Record, msg []byte) {
	if len(msg) > maxInlineMsg {
		return
	}
	name := "R/" + rec.Origin + "\x00" + string([]byte{byte(rec.Kind)}) + rec.Key
	r.queue.QueueBroadcast(&broadcast{name: name, msg: msg})
	if r.queue.NumQueued() > maxQueued+maxQueued/8 {
		r.queue.Prune(maxQueued)
	}
}

// post hands a send to Run; when Run is behind, the send is dropped (a later push/pull or
// gap check retries).
func (r *Registry) post(job func()) {
	select {
	case r.work <- job:
	default:
		r.log.Debug("registry: send queue full, dropping a send")
	}
}

// NotifyMsg handles a gossip or reliable user message of this package (see IsMessage);
// others are ignored. It does not keep b.
func (r *Registry) NotifyMsg(b []byte) {
	if !IsMessage(b) {
		return
	}
	switch b[1] {
	case msgDelta:
		rec, err := decodeDelta(b)
		if err != nil {
			r.log.Debug("registry: ignoring bad delta", "err", err)
			return
		}
		r.handleDelta(rec, b)
	case msgRequest:
		q, err := decodeRequest(b)
		if err != nil {
			r.log.Debug("registry: ignoring bad request", "err", err)
			return
		}
		if q.From == r.cfg.Origin {
			return
		}
		r.post(func() { r.serve(q, 0) })
	case msgPart:
		p, err := decodePart(b)
		if err != nil {
			r.log.Debug("registry: ignoring bad response part", "err", err)
			return
		}
		r.handlePart(p)
	default:
		r.log.Debug("registry: ignoring unknown message", "type", b[1])
	}
}

// handleDelta merges one gossiped write and passes it on when it was news.
func (r *Registry) handleDelta(rec Record, msg []byte) {
	var eff effects
	defer func() { r.finish(eff) }()
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.cfg.now()
	if rec.Origin == r.cfg.Origin {
		if rec.Version > r.ver {
			r.bumpLocked(rec.Version.Incarnation(), &eff)
		}
		return
	}
	if f, ok := r.forgotten[rec.Origin]; ok && rec.Version <= f.floor {
		return
	}
	o := r.originLocked(rec.Origin)
	if o == nil {
		return
	}
	stored, known := r.applyLocked(o, rec, false, now, &eff)
	if known {
		o.note(rec.Version, now)
	}
	if stored {
		r.queueLocked(&rec, bytes.Clone(msg))
	}
}

// applyLocked merges a record of another origin: a newer version replaces the held one.
// Unless bypass (full snapshots), a record unknown here at or below the watermark is
// refused (it was deleted and its tombstone collected: a late old copy must not come
// back), and so are records up to a Forget floor. stored says whether it was stored,
// known whether this registry now holds it or a newer copy.
func (r *Registry) applyLocked(o *originState, rec Record, bypass bool, now time.Time, eff *effects) (stored, known bool) {
	k := recKey{rec.Kind, rec.Key}
	held := o.recs[k]
	if held != nil && held.Version >= rec.Version {
		return false, true
	}
	if !bypass {
		if held == nil && rec.Version <= o.w {
			return false, false
		}
		if f, ok := r.forgotten[o.name]; ok && rec.Version <= f.floor {
			return false, false
		}
	}
	if held == nil && len(o.recs) >= MaxRecordsPerOrigin {
		return false, false
	}
	o.store(&entry{Record: rec, at: now})
	r.witnessLocked(rec.Created)
	if !rec.Deleted || held != nil && !held.Deleted {
		eff.changed |= KindsOf(rec.Kind)
	}
	return true, true
}

// GetBroadcasts returns queued deltas for memberlist's gossip (Delegate.GetBroadcasts).
func (r *Registry) GetBroadcasts(overhead, limit int) [][]byte {
	return r.queue.GetBroadcasts(overhead, limit)
}

// LocalState is the push/pull state (Delegate.LocalState): a digest of a few dozen bytes
// per origin (its watermark, highest version, live count and hash), not the records. The
// peer compares it with what it holds and fetches only what it lacks.
func (r *Registry) LocalState(join bool) []byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	d := digest{From: r.cfg.Origin, Clock: r.clock, Entries: make([]digestEntry, 0, len(r.origins))}
	for _, o := range r.origins {
		if o.m == 0 {
			continue
		}
		d.Entries = append(d.Entries, digestEntry{Origin: o.name, W: o.w, M: o.m, Live: o.live, Hash: o.hash})
	}
	slices.SortFunc(d.Entries, func(a, b digestEntry) int { return cmp.Compare(a.Origin, b.Origin) })
	return encodeDigest(d)
}

// MergeRemoteState compares a peer's push/pull digest with what this registry holds and
// asks the peer for the origins it holds further (Delegate.MergeRemoteState). When the peer
// holds this host's records at a version this run never wrote (an earlier run with a
// higher incarnation), the registry moves to a new incarnation.
func (r *Registry) MergeRemoteState(buf []byte, join bool) {
	if !IsMessage(buf) {
		return
	}
	d, err := decodeDigest(buf)
	if err != nil {
		r.log.Debug("registry: ignoring bad push/pull state", "err", err)
		return
	}
	if d.From == r.cfg.Origin {
		return
	}
	var eff effects
	defer func() { r.finish(eff) }()
	r.mu.Lock()
	defer r.mu.Unlock()
	now := r.cfg.now()
	r.witnessLocked(d.Clock)
	for _, e := range d.Entries {
		if e.Origin == r.cfg.Origin {
			if e.M > r.ver {
				r.bumpLocked(e.M.Incarnation(), &eff)
			}
			continue
		}
		f, forgot := r.forgotten[e.Origin]
		if forgot && e.W <= f.floor {
			continue
		}
		o := r.origins[e.Origin]
		var w Version
		if o != nil {
			w = o.w
		}
		switch {
		case e.W > w:
			r.requestLocked(e.Origin, d.From, o == nil || w == 0 || forgot, now)
		case o != nil && e.Origin == d.From && e.W == w && e.W == e.M && o.w == o.m &&
			(e.Live != o.live || e.Hash != o.hash):
			// Same watermark as the origin itself but different records: cannot happen
			// unless something went wrong; replace ours with the origin's.
			r.log.Warn("registry: records differ from their origin's at the same version, fetching them again",
				"origin", e.Origin, "version", e.W, "live", o.live, "origin_live", e.Live)
			r.requestLocked(e.Origin, d.From, true, now)
		}
	}
}

// requestLocked asks peer for origin's records above this registry's watermark (all of
// them when full), unless a request for origin is outstanding.
func (r *Registry) requestLocked(origin, peer string, full bool, now time.Time) {
	o := r.originLocked(origin)
	if o == nil || o.req != nil && now.Before(o.req.deadline) {
		return
	}
	r.nextID++
	id := r.nextID
	o.req = &pending{id: id, peer: peer, deadline: now.Add(r.cfg.RequestTimeout)}
	msg := encodeRequest(request{From: r.cfg.Origin, ID: id, Origin: origin, Since: o.w, Full: full})
	r.post(func() {
		if err := r.cfg.Sender.SendTo(peer, msg); err != nil {
			r.log.Debug("registry: sync request failed", "origin", origin, "peer", peer, "err", err)
			r.mu.Lock()
			if o := r.origins[origin]; o != nil && o.req != nil && o.req.id == id {
				o.req = nil
			}
			r.mu.Unlock()
		}
	})
}

// serve answers a sync request: the origin's records above the requester's watermark, or
// all of them (a full snapshot) when asked, when the requester's watermark is of an
// earlier incarnation, or when tombstones it may lack were collected here.
//
// When the first part cannot be sent (at a join, memberlist may not list the requester
// yet when its request arrives), the answer is tried again a little later.
func (r *Registry) serve(q request, attempt int) {
	r.mu.Lock()
	hdr := part{From: r.cfg.Origin, ID: q.ID, Origin: q.Origin}
	var recs []*Record
	if o := r.origins[q.Origin]; o != nil {
		hdr.W, hdr.Floor = o.w, o.floor
		hdr.Full = q.Full || q.Since == 0 || q.Since.Incarnation() < o.w.Incarnation() || q.Since < o.floor
		recs = make([]*Record, 0, len(o.recs))
		for _, e := range o.recs {
			if hdr.Full || e.Version > q.Since {
				recs = append(recs, &e.Record)
			}
		}
	}
	r.mu.Unlock()
	msgs, err := encodeParts(hdr, recs)
	if err != nil {
		r.log.Warn("registry: cannot answer sync request", "origin", q.Origin, "peer", q.From, "err", err)
		return
	}
	for i, m := range msgs {
		if err := r.cfg.Sender.SendTo(q.From, m); err != nil {
			r.log.Debug("registry: sync response failed", "origin", q.Origin, "peer", q.From, "attempt", attempt, "err", err)
			if i == 0 && attempt < serveRetries {
				time.AfterFunc(serveRetryDelay, func() { r.post(func() { r.serve(q, attempt+1) }) })
			}
			return
		}
	}
}

// handlePart merges one part of a response to an outstanding request; when all parts are
// in, the watermark moves to the responder's and, for a full snapshot, records not in it
// are dropped.
func (r *Registry) handlePart(p part) {
	var eff effects
	defer func() { r.finish(eff) }()
	r.mu.Lock()
	defer r.mu.Unlock()
	o := r.origins[p.Origin]
	if o == nil || o.req == nil || o.req.id != p.ID || o.req.peer != p.From {
		r.log.Debug("registry: ignoring a response part to no outstanding request", "origin", p.Origin, "peer", p.From, "id", p.ID)
		return
	}
	q := o.req
	if q.parts == 0 {
		q.parts, q.full, q.w, q.floor = p.Parts, p.Full, p.W, p.Floor
		q.got = map[int]struct{}{}
		if q.full {
			q.seen = map[recKey]struct{}{}
		}
	} else if p.Parts != q.parts || p.Full != q.full || p.W != q.w || p.Floor != q.floor {
		r.log.Debug("registry: inconsistent response parts, dropping the request", "origin", p.Origin, "peer", p.From)
		o.req = nil
		return
	}
	if _, dup := q.got[p.Index]; dup {
		return
	}
	q.got[p.Index] = struct{}{}
	now := r.cfg.now()
	q.deadline = now.Add(r.cfg.RequestTimeout) // the response is moving
	for _, rec := range p.Records {
		_, known := r.applyLocked(o, rec, q.full, now, &eff)
		if known && q.full {
			q.seen[recKey{rec.Kind, rec.Key}] = struct{}{}
		}
	}
	if len(q.got) < q.parts {
		return
	}
	o.req = nil
	if q.full {
		for k, e := range o.recs {
			if _, ok := q.seen[k]; !ok && e.Version <= q.w {
				if !e.Deleted {
					eff.changed |= KindsOf(k.kind)
				}
				o.drop(k)
			}
		}
		o.floor = max(o.floor, q.floor)
		delete(r.forgotten, o.name)
	}
	o.raise(q.w, now)
}

// tick expires requests, asks origins for writes whose broadcasts were lost, and collects
// tombstones and Forget floors past their TTL.
func (r *Registry) tick(now time.Time) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for name, o := range r.origins {
		if o.req != nil && !now.Before(o.req.deadline) {
			o.req = nil
		}
		if name == r.cfg.Origin || o.req != nil || o.gapSince.IsZero() || now.Sub(o.gapSince) < r.cfg.GapDelay {
			continue
		}
		o.gapSince = now // retry after another GapDelay
		r.requestLocked(name, name, o.w == 0, now)
	}
	if now.Sub(r.lastGC) < min(r.cfg.TombstoneTTL/4, time.Minute) {
		return
	}
	r.lastGC = now
	for _, o := range r.origins {
		if o.tombs == 0 {
			continue
		}
		for k, e := range o.recs {
			if e.Deleted && e.Version <= o.w && now.Sub(e.at) >= r.cfg.TombstoneTTL {
				o.floor = max(o.floor, e.Version)
				o.drop(k)
			}
		}
	}
	for name, f := range r.forgotten {
		if now.Sub(f.at) >= r.cfg.ForgetTTL {
			delete(r.forgotten, name)
		}
	}
}

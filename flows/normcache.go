package flows

import (
	"context"
	"sync"
)

// Normalizer remembers the canonical form of the flows the last reconcile compared, desired
// and installed, so that the next one, which with thousands of peers compares mostly the same
// ten thousand flows again, parses only the flows it has not seen: go-openvswitch's parser
// allocates some 15 kB per flow, and the periodic resync pass parsed every flow twice. It
// holds only what the last reconcile used. The zero value is ready; a nil *Normalizer
// remembers nothing. It is safe for concurrent use.
type Normalizer struct {
	mu   sync.Mutex
	last map[Flow]normalized
	next map[Flow]normalized
}

// normalize is normalize(f), from the memo when the last reconcile or this one saw f.
func (z *Normalizer) normalize(f Flow) (normalized, error) {
	if z == nil {
		return normalize(f)
	}
	z.mu.Lock()
	n, ok := z.next[f]
	if !ok {
		n, ok = z.last[f]
	}
	z.mu.Unlock()
	if !ok {
		var err error
		if n, err = normalize(f); err != nil {
			return n, err
		}
	}
	z.mu.Lock()
	if z.next == nil {
		z.next = make(map[Flow]normalized, len(z.last))
	}
	z.next[f] = n
	z.mu.Unlock()
	return n, nil
}

// done ends a reconcile: what it used is what the next one finds.
func (z *Normalizer) done() {
	if z == nil {
		return
	}
	z.mu.Lock()
	z.last, z.next = z.next, nil
	z.mu.Unlock()
}

// Reconcile is Reconcile (the package function) with z remembering the canonical forms.
func (z *Normalizer) Reconcile(ctx context.Context, sw Switch, desired []Flow) (Result, error) {
	defer z.done()
	return reconcileWith(ctx, sw, desired, z)
}

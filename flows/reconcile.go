package flows

import (
	"context"
	"fmt"
	"sort"
)

// Switch is the narrow view of an OpenFlow bridge that Reconcile needs. OFCtl implements it
// with ovs-ofctl; tests use a fake.
type Switch interface {
	// Flows returns the bridge's flows whose cookie is ovsfabric's (cookie&CookieMask ==
	// CookieBase), and no other.
	Flows(ctx context.Context) ([]Flow, error)
	// Apply deletes every flow with the cookie of a flow in del from that flow's table, then
	// adds the flows in add (an added flow replaces one with the same table, priority and
	// match), all at once: no packet may see a state in between. Reconcile never calls it
	// with both lists empty.
	Apply(ctx context.Context, add, del []Flow) error
}

// Result says what Reconcile changed.
type Result struct {
	// Added counts desired flows that were missing; Modified desired flows that were present
	// with other actions (replaced in place); Removed flows of ovsfabric's that are no longer
	// wanted; Unchanged desired flows that were already right.
	Added, Modified, Removed, Unchanged int
}

// Changed reports whether Reconcile changed anything.
func (r Result) Changed() bool { return r.Added+r.Modified+r.Removed > 0 }

// String summarizes the result for logs, e.g. "added 2, modified 1, removed 0, unchanged 30".
func (r Result) String() string {
	return fmt.Sprintf("added %d, modified %d, removed %d, unchanged %d", r.Added, r.Modified, r.Removed, r.Unchanged)
}

// flowKey names a flow for Reconcile: its cookie holds a hash of its priority and match, and
// Switch.Apply deletes by table and cookie.
type flowKey struct {
	table  int
	cookie uint64
}

// Reconcile makes sw hold exactly the desired ovsfabric flows (as Plan returns them), and
// changes nothing else: it dumps ovsfabric's flows, compares each with the desired flow of
// the same table and cookie after normalizing both, and applies the difference in one
// Switch.Apply (a flow that differs only in its actions is replaced in place by an add).
// When nothing differs Apply is not called at all. Flows whose cookie is not ovsfabric's are
// never touched. Every desired flow must carry an ovsfabric cookie, unique within its table.
func Reconcile(ctx context.Context, sw Switch, desired []Flow) (Result, error) {
	return reconcileWith(ctx, sw, desired, nil)
}

// reconcileWith is Reconcile, normalizing through z (nil: afresh).
func reconcileWith(ctx context.Context, sw Switch, desired []Flow, z *Normalizer) (Result, error) {
	var res Result
	want := make(map[flowKey]normalized, len(desired))
	wantFlow := make(map[flowKey]Flow, len(desired))
	for _, f := range desired {
		if !IsOurs(f.Cookie) {
			return res, fmt.Errorf("reconcile flows: desired flow %s: cookie %#x is not ovsfabric's", f, f.Cookie)
		}
		k := flowKey{f.Table, f.Cookie}
		if o, dup := wantFlow[k]; dup {
			return res, fmt.Errorf("reconcile flows: desired flows %s and %s share table and cookie", o, f)
		}
		n, err := z.normalize(f)
		if err != nil {
			return res, fmt.Errorf("reconcile flows: desired %w", err)
		}
		want[k], wantFlow[k] = n, f
	}
	installed, err := sw.Flows(ctx)
	if err != nil {
		return res, fmt.Errorf("reconcile flows: %w", err)
	}
	have := map[flowKey][]Flow{}
	for _, f := range installed {
		if !IsOurs(f.Cookie) {
			continue // a Switch that returned more than it should
		}
		k := flowKey{f.Table, f.Cookie}
		have[k] = append(have[k], f)
	}

	var add, del []Flow
	for k, fs := range have {
		n, wanted := want[k]
		if !wanted {
			del = append(del, fs[0]) // one delete by cookie takes them all
			res.Removed += len(fs)
			continue
		}
		if len(fs) == 1 {
			got, err := z.normalize(fs[0])
			if err != nil {
				return res, fmt.Errorf("reconcile flows: installed %w", err)
			}
			if got == n {
				res.Unchanged++
				continue
			}
			if got.priority == n.priority && got.match == n.match {
				add = append(add, wantFlow[k]) // same flow, other actions: replace in place
				res.Modified++
				continue
			}
		}
		// Something else carries this flow's cookie (another priority or match, or several
		// flows): delete them all by cookie, then add the right one, in the same Apply.
		del = append(del, fs[0])
		add = append(add, wantFlow[k])
		res.Modified++
		res.Removed += len(fs) - 1
	}
	for k, f := range wantFlow {
		if _, ok := have[k]; !ok {
			add = append(add, f)
			res.Added++
		}
	}
	if len(add) == 0 && len(del) == 0 {
		return res, nil
	}
	sortFlows(add)
	sortFlows(del)
	if err := sw.Apply(ctx, add, del); err != nil {
		return Result{Unchanged: res.Unchanged}, fmt.Errorf("reconcile flows: apply %d adds and %d deletes: %w", len(add), len(del), err)
	}
	return res, nil
}

// sortFlows sorts flows by table, cookie: Apply gets them in a deterministic order.
func sortFlows(fs []Flow) {
	sort.Slice(fs, func(i, j int) bool {
		if fs[i].Table != fs[j].Table {
			return fs[i].Table < fs[j].Table
		}
		return fs[i].Cookie < fs[j].Cookie
	})
}

// AddNew adds the desired flows that applied (what the last Reconcile made the bridge hold)
// lacks or holds differently, in one Switch.Apply, without dumping the bridge and without
// deleting anything. It is the fast path for a change that only adds, such as a new
// container port; the next Reconcile removes what is stale. It returns how many flows it
// added.
func AddNew(ctx context.Context, sw Switch, desired, applied []Flow) (int, error) {
	// applied is mostly the flows of an earlier plan, spelt exactly as the desired ones:
	// those compare as they are, and only the others are parsed (normalize costs a parse per
	// flow, which for every flow of a large bridge made most of an attach's CPU time).
	have := make(map[flowKey]Flow, len(applied))
	for _, f := range applied {
		have[flowKey{f.Table, f.Cookie}] = f
	}
	var add []Flow
	for _, f := range desired {
		if !IsOurs(f.Cookie) {
			return 0, fmt.Errorf("add flows: desired flow %s: cookie %#x is not ovsfabric's", f, f.Cookie)
		}
		got, ok := have[flowKey{f.Table, f.Cookie}]
		if ok && got == f {
			continue
		}
		n, err := normalize(f)
		if err != nil {
			return 0, fmt.Errorf("add flows: desired %w", err)
		}
		if ok {
			g, err := normalize(got)
			if err != nil {
				return 0, fmt.Errorf("add flows: applied %w", err)
			}
			if g == n {
				continue
			}
		}
		add = append(add, f)
	}
	if len(add) == 0 {
		return 0, nil
	}
	sortFlows(add)
	if err := sw.Apply(ctx, add, nil); err != nil {
		return 0, fmt.Errorf("add flows: apply %d adds: %w", len(add), err)
	}
	return len(add), nil
}

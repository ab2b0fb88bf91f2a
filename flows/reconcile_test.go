package flows

import (
	"context"
	"errors"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
)

// fakeSwitch is an OpenFlow table with OVS's semantics for what Reconcile uses: a flow is
// identified by table, priority and match; an add replaces the flow with the same identity
// (whatever its cookie); a delete removes every flow of the table with exactly that cookie.
type fakeSwitch struct {
	flows   []Flow
	applies int
	dumps   int
	failOn  string // "dump" or "apply": fail that call
}

func (s *fakeSwitch) Flows(ctx context.Context) ([]Flow, error) {
	s.dumps++
	if s.failOn == "dump" {
		return nil, errors.New("connection refused")
	}
	var out []Flow
	for _, f := range s.flows {
		if IsOurs(f.Cookie) {
			out = append(out, f)
		}
	}
	return out, nil
}

func (s *fakeSwitch) Apply(ctx context.Context, add, del []Flow) error {
	s.applies++
	if s.failOn == "apply" {
		return errors.New("bundle refused")
	}
	if len(add) == 0 && len(del) == 0 {
		panic("Apply with nothing to do")
	}
	for _, d := range del {
		kept := s.flows[:0]
		for _, f := range s.flows {
			if f.Table != d.Table || f.Cookie != d.Cookie {
				kept = append(kept, f)
			}
		}
		s.flows = kept
	}
	for _, a := range add {
		replaced := false
		for i, f := range s.flows {
			if f.Table == a.Table && f.Priority == a.Priority && sortedFields(f.Match) == sortedFields(a.Match) {
				s.flows[i], replaced = a, true
			}
		}
		if !replaced {
			s.flows = append(s.flows, a)
		}
	}
	return nil
}

// foreign are flows ovsfabric must never touch: the bridge's NORMAL flow and an operator's.
var foreign = []Flow{
	{Table: 0, Priority: 0, Cookie: 0, Actions: "NORMAL"},
	{Table: 0, Priority: 500, Cookie: 0x1234, Match: "udp,tp_dst=6081", Actions: "drop"},
	{Table: 10, Priority: 200, Cookie: 0x0fac_0003_0000_0001, Match: "ip,nw_dst=192.168.0.0/16", Actions: "drop"},
}

func newFake() *fakeSwitch { return &fakeSwitch{flows: append([]Flow(nil), foreign...)} }

func (s *fakeSwitch) foreignIntact(t *testing.T) {
	t.Helper()
	for _, want := range foreign {
		found := false
		for _, f := range s.flows {
			found = found || f == want
		}
		if !found {
			t.Errorf("foreign flow %s was changed or removed", want)
		}
	}
}

// ours is the switch's ovsfabric flows, in the order of bySortedMatch.
func (s *fakeSwitch) ours() []Flow {
	var out []Flow
	for _, f := range s.flows {
		if IsOurs(f.Cookie) {
			out = append(out, f)
		}
	}
	return bySortedMatch(out)
}

// bySortedMatch is a copy of fs sorted by table, descending priority and match (Plan's order
// within one priority is the input's, the fake switch's is its own).
func bySortedMatch(fs []Flow) []Flow {
	out := slices.Clone(fs)
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Table != b.Table {
			return a.Table < b.Table
		}
		if a.Priority != b.Priority {
			return a.Priority > b.Priority
		}
		return a.Match < b.Match
	})
	return out
}

func reconcile(t *testing.T, sw Switch, desired []Flow) Result {
	t.Helper()
	res, err := Reconcile(context.Background(), sw, desired)
	if err != nil {
		t.Fatalf("Reconcile: %v", err)
	}
	return res
}

func TestReconcileConverges(t *testing.T) {
	sw := newFake()
	desired := mustPlan(t, testInput())
	if res := reconcile(t, sw, desired); res != (Result{Added: len(desired)}) {
		t.Errorf("first reconcile: %s, want added %d", res, len(desired))
	}
	if !reflect.DeepEqual(sw.ours(), bySortedMatch(desired)) {
		t.Errorf("switch holds\n%s\nwant\n%s", dump(sw.ours()), dump(desired))
	}
	applies := sw.applies
	res := reconcile(t, sw, desired)
	if res != (Result{Unchanged: len(desired)}) || sw.applies != applies {
		t.Errorf("second reconcile: %s with %d more Apply calls, want no change and none", res, sw.applies-applies)
	}
	sw.foreignIntact(t)
}

// TestReconcileChanges starts from the plan of testInput on the switch, then reconciles to the
// plan of a changed input: it must change exactly the flows that differ.
func TestReconcileChanges(t *testing.T) {
	type ref struct {
		table int
		match string
	}
	tests := []struct {
		name    string
		change  func(*Input)
		want    Result
		removed []ref // flows that must be gone
		added   []ref // flows that must be new
		changed []ref // flows whose actions must differ, under the same cookie
	}{
		{
			name: "tunnel h2 gets a new ofport",
			change: func(in *Input) {
				for i := range in.Networks {
					for j := range in.Networks[i].Tunnels {
						if t := &in.Networks[i].Tunnels[j]; t.OFPort == 2 {
							t.OFPort = 8
						}
					}
				}
			},
			want:    Result{Added: 1, Modified: 2, Removed: 1},
			removed: []ref{{0, "in_port=2"}}, added: []ref{{0, "in_port=8"}},
			changed: []ref{{10, "ip,reg6=0,nw_dst=10.244.7.0/24"}, {10, "ip,reg6=0x64,nw_dst=10.50.7.0/24"}},
		},
		{
			name:   "container c2 goes away",
			change: func(in *Input) { def(in).Containers = def(in).Containers[:1] },
			want:   Result{Modified: 1, Removed: 5},
			removed: []ref{{0, "ip,in_port=4,dl_src=0a:58:0a:f4:03:06,nw_src=10.244.3.6"}, {0, "in_port=4"},
				{20, "ip,tun_id=0,nw_dst=10.244.3.6"}, {30, "reg6=0,dl_dst=0a:58:0a:f4:03:06"}},
			changed: []ref{{30, "reg6=0,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00"}},
		},
		{
			name: "container c3 arrives",
			change: func(in *Input) {
				def(in).Containers = append(def(in).Containers, Port{Name: "vf-c3", OFPort: 9, MAC: mac("0a:58:0a:f4:03:07"), IP: netip.MustParseAddr("10.244.3.7")})
			},
			want:    Result{Added: 5, Modified: 1},
			added:   []ref{{0, "in_port=9"}, {20, "ip,tun_id=0,nw_dst=10.244.3.7"}, {30, "reg6=0,dl_dst=0a:58:0a:f4:03:07"}},
			changed: []ref{{30, "reg6=0,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00"}},
		},
		{
			name:    "peer h3 leaves the default network",
			change:  func(in *Input) { def(in).Tunnels = def(in).Tunnels[:1] },
			want:    Result{Removed: 1},
			removed: []ref{{10, "ip,reg6=0,nw_dst=10.244.9.0/24"}},
		},
		{
			name:    "container c1 moves to another MAC",
			change:  func(in *Input) { def(in).Containers[0].MAC = mac("0a:58:0a:f4:03:99") },
			want:    Result{Added: 3, Modified: 1, Removed: 3},
			removed: []ref{{30, "reg6=0,dl_dst=0a:58:0a:f4:03:05"}}, added: []ref{{30, "reg6=0,dl_dst=0a:58:0a:f4:03:99"}}, changed: []ref{{20, "ip,tun_id=0,nw_dst=10.244.3.5"}},
		},
		{
			name:   "blue becomes internal",
			change: func(in *Input) { in.Networks[1].Internal = true },
			want:   Result{Added: 1},
			added:  []ref{{10, "ip,reg6=0x64"}},
		},
		{
			name:   "nothing changes",
			change: func(in *Input) {},
			want:   Result{},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sw := newFake()
			before := mustPlan(t, testInput())
			reconcile(t, sw, before)
			in := testInput()
			tt.change(&in)
			after := mustPlan(t, in)
			res := reconcile(t, sw, after)
			res.Unchanged = 0
			if res != tt.want {
				t.Errorf("reconcile: %s, want %s", res, tt.want)
			}
			if !reflect.DeepEqual(sw.ours(), bySortedMatch(after)) {
				t.Errorf("switch holds\n%s\nwant\n%s", dump(sw.ours()), dump(after))
			}
			has := func(fs []Flow, r ref) (Flow, bool) {
				for _, f := range fs {
					if f.Table == r.table && sortedFields(f.Match) == sortedFields(r.match) {
						return f, true
					}
				}
				return Flow{}, false
			}
			for _, m := range tt.removed {
				if _, ok := has(sw.ours(), m); ok {
					t.Errorf("flow %v still there", m)
				}
			}
			for _, m := range tt.added {
				if _, ok := has(before, m); ok {
					t.Errorf("flow %v was there before", m)
				}
				if _, ok := has(sw.ours(), m); !ok {
					t.Errorf("flow %v missing", m)
				}
			}
			for _, m := range tt.changed {
				b, _ := has(before, m)
				a, ok := has(sw.ours(), m)
				if !ok || a.Actions == b.Actions || a.Cookie != b.Cookie {
					t.Errorf("flow %v: actions %q → %q, cookie %#x → %#x: want other actions, same cookie", m, b.Actions, a.Actions, b.Cookie, a.Cookie)
				}
			}
			sw.foreignIntact(t)
			applies := sw.applies
			if res := reconcile(t, sw, after); res.Changed() || sw.applies != applies {
				t.Errorf("reconcile again: %s", res)
			}
		})
	}
}

func TestReconcileRepairs(t *testing.T) {
	desired := mustPlan(t, testInput())
	toPeer, ok := find(desired, 10, 200, "ip,reg6=0,nw_dst=10.244.7.0/24")
	if !ok {
		t.Fatal("no to-peer flow in the plan")
	}
	tests := []struct {
		name   string
		damage func(s *fakeSwitch)
		want   Result
	}{
		{
			name: "an operator changed a flow's actions (mod-flows)",
			damage: func(s *fakeSwitch) {
				for i, f := range s.flows {
					if f.Cookie == toPeer.Cookie {
						s.flows[i].Actions = "drop"
					}
				}
			},
			want: Result{Modified: 1},
		},
		{
			name: "an operator deleted a flow",
			damage: func(s *fakeSwitch) {
				kept := s.flows[:0]
				for _, f := range s.flows {
					if f.Cookie != toPeer.Cookie {
						kept = append(kept, f)
					}
				}
				s.flows = kept
			},
			want: Result{Added: 1},
		},
		{
			name: "a flow of ours that is no longer planned (older fabricd)",
			damage: func(s *fakeSwitch) {
				s.flows = append(s.flows, Flow{Table: 10, Priority: 200, Cookie: makeCookie(PurposeToPeer, 10, 200, "ip,nw_dst=10.244.200.0/24"),
					Match: "ip,nw_dst=10.244.200.0/24", Actions: "output:9"})
			},
			want: Result{Removed: 1},
		},
		{
			name: "a flow's cookie on another match",
			damage: func(s *fakeSwitch) {
				s.flows = append(s.flows, Flow{Table: 10, Priority: 200, Cookie: toPeer.Cookie, Match: "ip,nw_dst=10.244.201.0/24", Actions: "output:9"})
			},
			want: Result{Modified: 1, Removed: 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sw := newFake()
			reconcile(t, sw, desired)
			tt.damage(sw)
			res := reconcile(t, sw, desired)
			res.Unchanged = 0
			if res != tt.want {
				t.Errorf("reconcile: %s, want %s", res, tt.want)
			}
			if !reflect.DeepEqual(sw.ours(), bySortedMatch(desired)) {
				t.Errorf("switch holds\n%s\nwant\n%s", dump(sw.ours()), dump(desired))
			}
			sw.foreignIntact(t)
		})
	}
}

func TestReconcileToNothing(t *testing.T) {
	sw := newFake()
	desired := mustPlan(t, testInput())
	reconcile(t, sw, desired)
	if res := reconcile(t, sw, nil); res != (Result{Removed: len(desired)}) {
		t.Errorf("reconcile to nothing: %s", res)
	}
	if len(sw.ours()) != 0 {
		t.Errorf("left: %s", dump(sw.ours()))
	}
	sw.foreignIntact(t)
}

func TestReconcileErrors(t *testing.T) {
	desired := mustPlan(t, testInput())
	tests := []struct {
		name    string
		sw      *fakeSwitch
		desired []Flow
		want    string
	}{
		{"dump fails", &fakeSwitch{failOn: "dump"}, desired, "connection refused"},
		{"apply fails", &fakeSwitch{failOn: "apply"}, desired, "bundle refused"},
		{"foreign cookie desired", &fakeSwitch{}, []Flow{{Cookie: 0x1234, Actions: "drop"}}, "not ovsfabric's"},
		{"duplicate cookie", &fakeSwitch{}, []Flow{desired[0], desired[0]}, "share table and cookie"},
		{"unparsable actions", &fakeSwitch{}, []Flow{{Cookie: CookieBase | 1, Actions: "no_such_action"}}, "desired flow"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Reconcile(context.Background(), tt.sw, tt.desired)
			if err == nil || !strings.Contains(err.Error(), tt.want) || !strings.HasPrefix(err.Error(), "reconcile flows: ") {
				t.Errorf("Reconcile: %v, want an error mentioning %q", err, tt.want)
			}
			if tt.sw.failOn == "" && tt.sw.dumps+tt.sw.applies > 0 {
				t.Errorf("bad input reached the switch")
			}
		})
	}
}

func TestEquivalent(t *testing.T) {
	a := Flow{Table: 10, Priority: 300, Cookie: CookieBase | 1, Match: "arp,arp_op=1,arp_tpa=10.244.3.1", Actions: "IN_PORT"}
	tests := []struct {
		name string
		b    Flow
		want bool
	}{
		{"fields reordered as ovs-ofctl prints them", Flow{Table: 10, Priority: 300, Cookie: CookieBase | 1, Match: "arp,arp_tpa=10.244.3.1,arp_op=1", Actions: "in_port"}, true},
		{"other priority", Flow{Table: 10, Priority: 301, Cookie: CookieBase | 1, Match: a.Match, Actions: a.Actions}, false},
		{"other actions", Flow{Table: 10, Priority: 300, Cookie: CookieBase | 1, Match: a.Match, Actions: "drop"}, false},
		{"other match", Flow{Table: 10, Priority: 300, Cookie: CookieBase | 1, Match: "arp,arp_op=2,arp_tpa=10.244.3.1", Actions: a.Actions}, false},
	}
	for _, tt := range tests {
		got, err := equivalent(a, tt.b)
		if err != nil || got != tt.want {
			t.Errorf("%s: equivalent = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
}

// TestAddNew: a new container's flows are added without a dump and without deletes, ending in
// the state a full Reconcile would make; a repeat adds nothing.
func TestAddNew(t *testing.T) {
	sw := newFake()
	in := testInput()
	before := mustPlan(t, in)
	reconcile(t, sw, before)
	def(&in).Containers = append(def(&in).Containers, Port{Name: "vf-c3", OFPort: 9, MAC: mac("02:00:00:00:00:33"), IP: netip.MustParseAddr("10.244.3.7")})
	after := mustPlan(t, in)
	dumps, applies := sw.dumps, sw.applies
	n, err := AddNew(context.Background(), sw, after, before)
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 || sw.dumps != dumps || sw.applies != applies+1 {
		t.Errorf("AddNew added %d flows with %d dumps and %d applies; want some flows, no dump, one apply", n, sw.dumps-dumps, sw.applies-applies)
	}
	if !reflect.DeepEqual(sw.ours(), bySortedMatch(after)) {
		t.Errorf("switch holds\n%s\nwant\n%s", dump(sw.ours()), dump(after))
	}
	if n, err := AddNew(context.Background(), sw, after, after); err != nil || n != 0 || sw.applies != applies+1 {
		t.Errorf("repeat AddNew: %d added, %v; want nothing and no apply", n, err)
	}
	if res := reconcile(t, sw, after); res.Changed() {
		t.Errorf("Reconcile after AddNew changed %s", res)
	}
	sw.foreignIntact(t)

	// What applied holds is compared by meaning, not spelling: a flow applied with its match
	// fields in another order is not added again; one applied with other actions is.
	var reordered, changed []Flow
	var k int
	for i, f := range after {
		if strings.Count(f.Match, ",") > 0 && k == 0 {
			k = i
		}
	}
	for i, f := range after {
		g, h := f, f
		if i == k {
			fields := strings.Split(f.Match, ",")
			slices.Reverse(fields)
			g.Match = strings.Join(fields, ",")
			h.Actions = "drop"
		}
		reordered, changed = append(reordered, g), append(changed, h)
	}
	if n, err := AddNew(context.Background(), sw, after, reordered); err != nil || n != 0 {
		t.Errorf("AddNew over %s spelt otherwise: %d added, %v; want nothing", after[k], n, err)
	}
	if n, err := AddNew(context.Background(), sw, after, changed); err != nil || n != 1 {
		t.Errorf("AddNew over %s with other actions: %d added, %v; want that one", after[k], n, err)
	}
}

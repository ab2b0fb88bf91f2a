package controller

import (
	"testing"

	"github.com/ovsfabric/ovsfabric/flows"
)

// TestOverlayAndSameFlows: what the bridge holds after an add-only bundle, and the test that
// lets a sync skip the dump.
func TestOverlayAndSameFlows(t *testing.T) {
	a := flows.Flow{Table: 0, Priority: 100, Cookie: 1, Match: "in_port=1", Actions: "resubmit(,10)"}
	b := flows.Flow{Table: 10, Priority: 100, Cookie: 2, Match: "dl_dst=02:00:00:00:00:01", Actions: "output:1"}
	b2 := b
	b2.Actions = "output:2"
	c := flows.Flow{Table: 10, Priority: 100, Cookie: 3, Match: "dl_dst=02:00:00:00:00:02", Actions: "output:2"}
	for _, tc := range []struct {
		name             string
		applied, desired []flows.Flow
		want             []flows.Flow
	}{
		{"adds", []flows.Flow{a}, []flows.Flow{a, c}, []flows.Flow{a, c}},
		{"replaces in place", []flows.Flow{a, b}, []flows.Flow{a, b2}, []flows.Flow{a, b2}},
		{"keeps stale ones", []flows.Flow{a, b}, []flows.Flow{a, c}, []flows.Flow{a, c, b}},
		{"nothing applied", nil, []flows.Flow{c}, []flows.Flow{c}},
	} {
		if got := overlay(tc.applied, tc.desired); !sameFlows(got, tc.want) {
			t.Errorf("%s: overlay = %v, want %v", tc.name, got, tc.want)
		}
	}
	for _, tc := range []struct {
		name string
		x, y []flows.Flow
		same bool
	}{
		{"order", []flows.Flow{a, b}, []flows.Flow{b, a}, true},
		{"actions differ", []flows.Flow{a, b}, []flows.Flow{a, b2}, false},
		{"one more", []flows.Flow{a}, []flows.Flow{a, b}, false},
		{"duplicates", []flows.Flow{a, a}, []flows.Flow{a, b}, false},
		{"empty", nil, []flows.Flow{}, true},
	} {
		if got := sameFlows(tc.x, tc.y); got != tc.same {
			t.Errorf("%s: sameFlows = %v, want %v", tc.name, got, tc.same)
		}
	}
}

package controller

import (
	"testing"

	"github.com/ovsfabric/ovsfabric/ovsdb"
)

func TestFirstTunnel(t *testing.T) {
	for _, tc := range []struct {
		name   string
		wanted int
		res    ovsdb.Result
		want   bool
	}{
		{"nothing changed", 2, ovsdb.Result{}, false},
		{"first of one", 1, ovsdb.Result{Added: []string{"a"}}, true},
		{"first two at once", 2, ovsdb.Result{Added: []string{"a", "b"}}, true},
		{"one more", 2, ovsdb.Result{Added: []string{"b"}}, false},
		{"replaced the only one", 1, ovsdb.Result{Added: []string{"b"}, Removed: []string{"a"}}, false},
		{"all removed", 0, ovsdb.Result{Removed: []string{"a"}}, false},
	} {
		if got := firstTunnel(tc.wanted, tc.res); got != tc.want {
			t.Errorf("%s: firstTunnel = %v, want %v", tc.name, got, tc.want)
		}
	}
}

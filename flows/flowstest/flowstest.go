// Package flowstest is an in-memory OpenFlow table with OVS's semantics for what
// flows.Reconcile and flows.AddNew use, for unit tests of code that programs flows (the
// flows package's own tests keep an equivalent fake inside the package).
package flowstest

import (
	"context"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/ovsfabric/ovsfabric/flows"
)

// Switch is a flows.Switch in memory: a flow is identified by table, priority and match; an
// add replaces the flow with the same identity (whatever its cookie); a delete removes
// every flow of the table with exactly that cookie. It is safe for concurrent use.
type Switch struct {
	mu    sync.Mutex
	table []flows.Flow
	// applies counts Apply calls, dumps Flows calls.
	applies, dumps int
}

// New returns a switch holding the given flows (e.g. a bridge's NORMAL flow).
func New(initial ...flows.Flow) *Switch { return &Switch{table: slices.Clone(initial)} }

// Flows implements flows.Switch: the flows with ovsfabric's cookie.
func (s *Switch) Flows(context.Context) ([]flows.Flow, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.dumps++
	var out []flows.Flow
	for _, f := range s.table {
		if flows.IsOurs(f.Cookie) {
			out = append(out, f)
		}
	}
	return out, nil
}

// Apply implements flows.Switch.
func (s *Switch) Apply(_ context.Context, add, del []flows.Flow) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.applies++
	for _, d := range del {
		s.table = slices.DeleteFunc(s.table, func(f flows.Flow) bool { return f.Table == d.Table && f.Cookie == d.Cookie })
	}
	for _, a := range add {
		i := slices.IndexFunc(s.table, func(f flows.Flow) bool {
			return f.Table == a.Table && f.Priority == a.Priority && sortedFields(f.Match) == sortedFields(a.Match)
		})
		if i >= 0 {
			s.table[i] = a
		} else {
			s.table = append(s.table, a)
		}
	}
	return nil
}

// All is every flow on the switch, ovsfabric's or not.
func (s *Switch) All() []flows.Flow {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.table)
}

// Applies is how many times Apply was called.
func (s *Switch) Applies() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.applies
}

// Dumps is how many times Flows was called.
func (s *Switch) Dumps() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.dumps
}

// sortedFields is a match with its comma-separated fields sorted, so that field order does
// not make two matches differ.
func sortedFields(match string) string {
	fs := strings.Split(match, ",")
	sort.Strings(fs)
	return strings.Join(fs, ",")
}

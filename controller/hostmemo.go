package controller

import (
	"slices"
	"sync"
	"time"

	"github.com/ovsfabric/ovsfabric/netplumb"
)

// hostMemo remembers the host network state the last successful HostNet.Set left, so that an
// event-woken sync wanting exactly that state skips the Set: with thousands of peers it
// dumps thousands of routes over netlink to find nothing to change. Set is still called
// (and the real state compared) whenever the wanted state differs, a new ovs-vswitchd serves
// the bridge (its gateway port was made anew, without addresses or routes), the periodic
// resync pass runs, or --resync has passed since the last Set: what only the kernel shows
// (an operator's deleted route) the resync pass repairs.
type hostMemo struct {
	mu sync.Mutex
	// ok: want, served and at hold a Set's result; false until one succeeds and after
	// anything else changed the host network.
	ok   bool
	want netplumb.HostState
	// served identifies the gateway device at that Set (Controller.hostIdentity).
	served string
	// at is when that Set ran.
	at time.Time
}

// skip reports whether a Set of want may be skipped: the last one succeeded with equal
// want on the same gateway device (served), less than period before now,
// and this sync is not the resync pass (verify).
func (m *hostMemo) skip(want netplumb.HostState, served string, now time.Time, period time.Duration, verify bool) bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.ok && !verify && served == m.served && now.Sub(m.at) < period && now.Sub(m.at) >= 0 && sameHostState(want, m.want)
}

// record notes the outcome of a Set of want: remembered when it succeeded, forgotten when
// it failed (the host is then in some state in between).
func (m *hostMemo) record(want netplumb.HostState, served string, at time.Time, err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err != nil {
		m.ok = false
		return
	}
	m.ok, m.served, m.at = true, served, at
	m.want = netplumb.HostState{GatewayDev: want.GatewayDev, MTU: want.MTU,
		Addrs: slices.Clone(want.Addrs), Scopes: slices.Clone(want.Scopes), Routes: slices.Clone(want.Routes)}
}

// forget drops the memo: the host network was changed outside setHost (Withdraw).
func (m *hostMemo) forget() {
	m.mu.Lock()
	m.ok = false
	m.mu.Unlock()
}

// sameHostState reports whether a and b ask for the same host network. Every field is
// compared in order: hostState builds them deterministically from the plan.
func sameHostState(a, b netplumb.HostState) bool {
	return a.GatewayDev == b.GatewayDev && a.MTU == b.MTU &&
		slices.Equal(a.Addrs, b.Addrs) && slices.Equal(a.Scopes, b.Scopes) &&
		slices.Equal(a.Routes, b.Routes)
}

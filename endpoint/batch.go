package endpoint

import (
	"context"
	"crypto/rand"
	"fmt"
	"maps"
	"net"
	"sync"
	"time"

	"github.com/ovsfabric/ovsfabric/ovsdb"
)

// Container ports get OpenFlow port numbers fabricd chooses (Interface.ofport_request) from
// this range, so that their flows can be added in the same step as the port instead of after
// ovs-vswitchd has numbered it. ovs-vswitchd numbers the other ports (gateway, tunnels) from
// 1 upward, so the two meet only after tens of thousands of tunnel ports have come and gone
// (and then ovs-vswitchd renumbers its own port, not ours).
const (
	FirstContainerOfport = 32768
	LastContainerOfport  = 65279
)

// commitTimeout bounds one batch's OVSDB transaction, and one flow bundle. A batch is not
// bound to any one request's context: once an attach is queued it is committed or refused,
// never left half done because its caller went away.
const commitTimeout = 10 * time.Second

// pendingPort is one attach waiting in the batcher.
type pendingPort struct {
	spec ovsdb.PortSpec
	// Set by the batch before done is closed: the outcome, when the port was recorded and
	// how many ports the batch held.
	err      error
	recorded time.Time
	size     int
	done     chan struct{}
}

// batcher coalesces the ports of concurrent attaches: the ports queued while a commit is in
// flight are recorded together by the next one, in one OVSDB transaction (one reconfigure of
// the bridge by ovs-vswitchd).
//
// A commit about to start waits a little (at most batchLinger) while other attaches are
// still making their veths, so that a burst of attaches is not split into a batch of the
// first one and a batch of the rest; an attach alone never waits.
type batcher struct {
	mu      sync.Mutex
	queue   []*pendingPort
	running bool
	// plumbing counts the attaches past their reservation that have not queued yet (making
	// their veth).
	plumbing expected
}

// batchLinger bounds how long a commit waits for attaches still making their veths.
const batchLinger = 25 * time.Millisecond

// recordPort queues spec (of an attach counted by plumbing.add) for the next batch and waits until
// that batch has recorded it, or refused it (err is then this port's own error, and nothing
// of it was recorded).
func (m *Manager) recordPort(spec ovsdb.PortSpec) *pendingPort {
	p := &pendingPort{spec: spec, done: make(chan struct{})}
	b := &m.batch
	b.mu.Lock()
	b.queue = append(b.queue, p)
	start := !b.running
	b.running = true
	b.mu.Unlock()
	b.plumbing.done()
	if start {
		go m.commitLoop()
	}
	<-p.done
	return p
}

// commitLoop commits batches until the queue is empty.
func (m *Manager) commitLoop() {
	b := &m.batch
	for {
		b.plumbing.linger(batchLinger)
		b.mu.Lock()
		batch := b.queue
		b.queue = nil
		if len(batch) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		m.commit(batch)
	}
}

// commit records a batch of ports in one transaction. When the transaction fails and the
// batch holds more than one port, each port is tried on its own, so that a port OVSDB
// refuses fails only its own attach.
func (m *Manager) commit(batch []*pendingPort) {
	ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
	defer cancel()
	specs := make([]ovsdb.PortSpec, len(batch))
	for k, p := range batch {
		specs[k] = p.spec
	}
	err := m.sw.EnsurePorts(ctx, m.s.Bridge, specs)
	now := time.Now()
	recorded := 0
	for _, p := range batch {
		p.err, p.recorded = err, now
		if err != nil && len(batch) > 1 {
			p.err = m.sw.EnsurePort(ctx, m.s.Bridge, p.spec)
			p.recorded = time.Now()
		}
		if p.err != nil {
			p.err = fmt.Errorf("add port %s to %s: %w", p.spec.Name, m.s.Bridge, p.err)
			continue
		}
		recorded++
	}
	if err != nil && len(batch) > 1 {
		m.log.Debug("batched port transaction failed; ports recorded one by one", "ports", len(batch), "recorded", recorded, "err", err)
	}
	for _, p := range batch {
		p.size = len(batch)
		close(p.done)
	}
}

// pendingFlows is the flows of one attach's port, waiting in the flow batcher.
type pendingFlows struct {
	info ovsdb.PortInfo
	// Set before done is closed: the bundle's outcome, how long the attach waited for it
	// (queued and sent) and how many ports it held.
	err   error
	took  time.Duration
	size  int
	queue time.Time
	done  chan struct{}
}

// flowBatcher coalesces the flow bundles of concurrent attaches, as batcher does their
// OVSDB transactions: the ports queued while a bundle is in flight go out together in the
// next (one ovs-ofctl run). A bundle about to go out waits a little (at most flowLinger)
// while other attaches are on their way to it (choosing their addresses), so that a burst
// makes one bundle rather than one of the first attach and one of the rest; an attach alone
// never waits.
type flowBatcher struct {
	mu      sync.Mutex
	queue   []*pendingFlows
	running bool
	// arriving counts the attaches that will queue flows soon (choosing their addresses).
	arriving expected
}

// flowLinger bounds how long a bundle waits for attaches on their way to it.
const flowLinger = 10 * time.Millisecond

// addFlows queues the flows of a port about to be recorded (see Loop.PortsAdded) of an
// attach counted by arriving.add, and returns at once; done is closed when they are on the bridge or failed. Every call must be followed,
// after done, by a Loop.PortsRecorded naming the port as recorded or failed.
func (m *Manager) addFlows(info ovsdb.PortInfo) *pendingFlows {
	p := &pendingFlows{info: info, queue: time.Now(), done: make(chan struct{})}
	b := &m.flows
	b.mu.Lock()
	b.queue = append(b.queue, p)
	start := !b.running
	b.running = true
	b.mu.Unlock()
	b.arriving.done()
	if start {
		go m.flowLoop()
	}
	return p
}

// flowLoop sends bundles until the queue is empty.
func (m *Manager) flowLoop() {
	b := &m.flows
	for {
		b.arriving.linger(flowLinger)
		b.mu.Lock()
		batch := b.queue
		b.queue = nil
		if len(batch) == 0 {
			b.running = false
			b.mu.Unlock()
			return
		}
		b.mu.Unlock()
		infos := make([]ovsdb.PortInfo, len(batch))
		for k, p := range batch {
			infos[k] = p.info
		}
		ctx, cancel := context.WithTimeout(context.Background(), commitTimeout)
		err := m.loop.PortsAdded(ctx, infos)
		cancel()
		now := time.Now()
		for _, p := range batch {
			p.err, p.took, p.size = err, now.Sub(p.queue), len(batch)
			close(p.done)
		}
	}
}

// portInfo is the port spec describes as OVSDB will show it, before ovs-vswitchd numbers it.
func portInfo(spec ovsdb.PortSpec) ovsdb.PortInfo {
	ids := maps.Clone(spec.ExternalIDs)
	if ids == nil {
		ids = map[string]string{}
	}
	ids[ovsdb.KeyOwner], ids[ovsdb.KeyRole] = spec.Owner, spec.Role
	return ovsdb.PortInfo{Name: spec.Name, Type: spec.Type, ExternalIDs: ids, IfaceExternalIDs: ids, OfportRequest: spec.OfportRequest}
}

// allocOfport picks a free OpenFlow port number for a new container port: one that no port
// of the bridge holds or requests (as OVSDB shows it, so a restarted fabricd sees the numbers
// in use) and no attach in flight has reserved. It goes round the range rather than taking
// the lowest free number, so a removed port's number comes back only after the others (and
// never while the removed port is still in OVSDB). mu must be held.
func (m *Manager) allocOfport(ports []ovsdb.PortInfo) (int, error) {
	used := make(map[int]bool, len(ports)+len(m.inflight))
	for _, p := range ports {
		used[p.Ofport], used[p.OfportRequest] = true, true
	}
	for _, r := range m.inflight {
		used[r.ofport] = true
	}
	const size = LastContainerOfport - FirstContainerOfport + 1
	for k := 0; k < size; k++ {
		n := FirstContainerOfport + (m.nextOfport+k)%size
		if !used[n] {
			m.nextOfport = (n - FirstContainerOfport + 1) % size
			return n, nil
		}
	}
	return 0, fmt.Errorf("all %d OpenFlow port numbers for containers (%d-%d) are in use", size, FirstContainerOfport, LastContainerOfport)
}

// newMAC is a random locally administered unicast MAC.
func newMAC() (net.HardwareAddr, error) {
	m := make(net.HardwareAddr, 6)
	if _, err := rand.Read(m); err != nil {
		return nil, fmt.Errorf("random MAC: %w", err)
	}
	m[0] = (m[0] | 0x02) &^ 0x01
	return m, nil
}

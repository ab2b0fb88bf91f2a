package peers

import (
	"context"
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// State is a peer's membership state as seen from this node.
type State string

// Membership states; the package documentation says how each is observed.
const (
	StateAlive   State = "alive"
	StateSuspect State = "suspect"
	StateDead    State = "dead"
	StateLeft    State = "left"
)

// Peer is one member of the cluster as seen from this node.
type Peer struct {
	// Name is the node's unique name.
	Name string
	// Gossip is the node's gossip address.
	Gossip netip.AddrPort
	// Meta is what the node announces (its latest accepted metadata).
	Meta Meta
	// State is the node's membership state.
	State State
	// Since is when the node entered State (this node's clock).
	Since time.Time
}

// Rejection records a node this node refused as a member, for status output.
type Rejection struct {
	// Name is the refused node's name.
	Name string
	// Gossip is the refused node's gossip address, when known.
	Gossip netip.AddrPort
	// Reason says why, e.g. "tunnel vxlan != local gre".
	Reason string
	// First and Last are when the node was first and last refused for Reason.
	First, Last time.Time
	// Count is how many times the node was refused for Reason (joins and gossip).
	Count int
}

// String describes the rejection in one line.
func (r Rejection) String() string {
	addr := ""
	if r.Gossip.IsValid() {
		addr = " (" + r.Gossip.String() + ")"
	}
	return fmt.Sprintf("%s%s refused: %s (%d times, last %s)", r.Name, addr, r.Reason, r.Count, r.Last.UTC().Format(time.RFC3339))
}

// Errors returned by this package; test with errors.Is.
var (
	// ErrIncompatible is wrapped by Start's error when every join address answered but
	// refused this node as incompatible (or this node refused them), e.g. a different
	// tunnel type or cluster CIDR.
	ErrIncompatible = errors.New("incompatible cluster")
	// ErrNameConflict is wrapped by Start's error, and sent on Fatal, when a live member of
	// the cluster joined already has this node's name at another address (for instance a
	// cloned host that kept its hostname): this node must not take part under that name.
	ErrNameConflict = errors.New("node name already in use")
	// ErrClosed is returned by methods that need the membership after Leave or Shutdown.
	ErrClosed = errors.New("membership has left or is shut down")
)

// Internal limits and periods.
const (
	// joinRetryMin and joinRetryMax bound the backoff between join attempts while alone.
	joinRetryMin = 500 * time.Millisecond
	joinRetryMax = 30 * time.Second
	// aloneCheck is how often the join loop checks whether this node is alone.
	aloneCheck = 5 * time.Second
	// reconnectTick is how often a dead peer is tried again while it has been dead for less
	// than reconnectFastFor (heals a partition within about a second), reconnectEvery after
	// that (also heals partitions that outlived GossipToTheDeadTime, after which memberlist
	// no longer gossips to it).
	reconnectTick    = time.Second
	reconnectFastFor = time.Minute
	reconnectEvery   = 15 * time.Second
	// byeWindow is how long a goodbye counts: NotifyLeave within it after a goodbye is
	// "left", and a goodbye within it after a NotifyLeave turns "dead" into "left".
	byeWindow = 30 * time.Second
	// rejectionTTL is how long a rejection stays listed after its last occurrence.
	rejectionTTL = 10 * time.Minute
	// maxRejections bounds the rejection list.
	maxRejections = 64
	// rejectionLogEvery rate-limits the warning for a node refused again for the same reason.
	rejectionLogEvery = time.Minute
	// defaultOpTimeout bounds Leave's wait when given no timeout.
	defaultOpTimeout = 5 * time.Second
)

// Membership is this node's membership in the cluster. Create it with Start; all methods
// are safe for concurrent use.
type Membership struct {
	cfg     Config
	log     *slog.Logger
	list    *memberlist.Memberlist
	self    netip.AddrPort
	started time.Time
	changed chan struct{}
	bcast   *memberlist.TransmitLimitedQueue
	// numAlive counts alive and suspect peers, for the broadcast queue's retransmit limit
	// (read under memberlist's locks, so it must not take mu).
	numAlive atomic.Int32
	// joining counts this node's own join calls in progress (see nameConflict).
	joining atomic.Int32

	keys *keyState // gossip keyring
	// lastRefusedLog is when refused gossip input was last logged as a warning (Unix ns).
	lastRefusedLog atomic.Int64
	local          atomic.Pointer[localMeta]
	metaMu         sync.Mutex // serializes SetMeta

	mu       sync.Mutex
	peers    map[string]*peerRec
	rejected map[string]*rejectionRec
	byesSeen map[uint64]time.Time // goodbye nonces already handled

	lifeMu  sync.Mutex // serializes Leave and Shutdown
	left    atomic.Bool
	leftAt  atomic.Pointer[time.Time]
	shut    atomic.Bool
	leaving chan struct{} // closed by Leave
	fatal   chan error    // a background join's ErrNameConflict, see Fatal
	stop    chan struct{} // closed by Shutdown
	wg      sync.WaitGroup
}

type localMeta struct {
	meta Meta
	raw  []byte
}

type peerRec struct {
	Peer
	lastAck time.Time // last direct probe ack (or when it became alive)
	bye     time.Time // goodbye received while alive
}

type rejectionRec struct {
	Rejection
	lastLog time.Time
}

// Start creates this node's member, listening on Config.BindAddr and Port, and joins the
// members in Config.Join. Peers start in any order: when no join address answers, Start
// logs it and returns, and a background loop keeps retrying with backoff (0.5 s doubling to
// 30 s) until one join succeeds. Later, whenever this node finds itself alone again (every
// other member dead or left, e.g. after all hosts restarted), it re-joins the same way, and
// every 15 s it tries one dead peer again, which heals partitions. ctx bounds only these
// background joins; the membership itself runs until Shutdown.
//
// Start fails when the configuration is invalid, the port cannot be bound, or no join
// succeeded and a join address answered but was refused as incompatible: the error wraps
// ErrIncompatible and says why, e.g. "join 10.0.0.1:7946: incompatible cluster: node a
// (10.0.0.1:7946): tunnel gre != local vxlan". A gossip key mismatch is not detected as
// such by memberlist; it is logged ("do all members use the same gossip key?") and retried.
func Start(ctx context.Context, cfg Config) (*Membership, error) {
	cfg, err := cfg.normalize()
	if err != nil {
		return nil, fmt.Errorf("peers: %w", err)
	}
	raw, err := EncodeMeta(cfg.Meta)
	if err != nil {
		return nil, fmt.Errorf("peers: %w", err)
	}
	m := &Membership{
		cfg:      cfg,
		log:      cfg.Logger,
		started:  time.Now(),
		changed:  make(chan struct{}, 1),
		peers:    map[string]*peerRec{},
		rejected: map[string]*rejectionRec{},
		byesSeen: map[uint64]time.Time{},
		leaving:  make(chan struct{}),
		fatal:    make(chan error, 1),
		stop:     make(chan struct{}),
	}
	m.local.Store(&localMeta{meta: cfg.Meta, raw: raw})
	if m.keys, err = newKeyState(cfg, m.log); err != nil {
		return nil, fmt.Errorf("peers: %w", err)
	}
	mc := cfg.memberlistConfig(&hooks{m: m})
	// Always a keyring, empty without a key: installing a key later turns encryption on.
	mc.Keyring = m.keys.ring
	mc.Logger = log.New(&logWriter{log: cfg.Logger, seen: m.sawLogLine}, "", 0)
	m.bcast = &memberlist.TransmitLimitedQueue{
		NumNodes:       m.numNodes,
		RetransmitMult: mc.RetransmitMult,
	}
	list, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("peers: start gossip on %s port %d: %w", mc.BindAddr, cfg.Port, err)
	}
	m.list = list
	ln := list.LocalNode()
	m.self = nodeAddr(ln)
	m.log.Info("gossip started", "addr", m.self, "encrypted", m.Encrypted())

	targets := m.joinTargets()
	if len(targets) > 0 {
		n, err := m.join(targets)
		switch {
		case n > 0:
			m.log.Info("joined the cluster", "contacted", n, "members", list.NumMembers())
		case errors.Is(err, ErrIncompatible), errors.Is(err, ErrNameConflict):
			_ = list.Shutdown()
			return nil, fmt.Errorf("peers: %w", err)
		default:
			m.log.Warn("cannot join any member yet; retrying in the background", "join", targets, "err", err)
		}
	}
	m.wg.Add(3)
	go m.maintain()
	go m.joinLoop(ctx, targets)
	go m.reconnectLoop(ctx)
	return m, nil
}

// Fatal delivers at most one error, wrapping ErrNameConflict, when a join made in the
// background (after Start found no member reachable) found this node's name already used by
// a live member. The background joins then stop; the caller should shut down.
func (m *Membership) Fatal() <-chan error { return m.fatal }

// nameConflict is NotifyMerge's duplicate-name check over the other side's nodes: a live
// node named like this one, or like a live peer of this side, at a different address. While
// this node is joining, it is the newcomer and yields (its join fails); otherwise it is the
// joined member, which keeps its place and lists the newcomer as rejected.
func (m *Membership) nameConflict(nodes []*memberlist.Node) error {
	for _, n := range nodes {
		if n.State == memberlist.StateDead || n.State == memberlist.StateLeft {
			continue
		}
		addr := nodeAddr(n)
		var holder netip.AddrPort // the member of this side that has the name
		if n.Name == m.cfg.Name {
			if addr != m.self {
				holder = m.self
			}
		} else {
			m.mu.Lock()
			if r := m.peers[n.Name]; r != nil && (r.State == StateAlive || r.State == StateSuspect) && r.Gossip != addr {
				holder = r.Gossip
			}
			m.mu.Unlock()
		}
		if !holder.IsValid() {
			continue
		}
		if m.joining.Load() > 0 {
			// The other side is the fabric this node joins: its node has the name.
			m.log.Error("this node's name is already used by a live member", "name", n.Name, "member", addr)
			return fmt.Errorf("%snode name %q is already used by the member at %s", nameConflictMarker, n.Name, addr)
		}
		m.reject(n.Name, addr, errors.New("name already used by the member at "+holder.String()))
		return fmt.Errorf("%snode name %q is already used by the member at %s", nameConflictMarker, n.Name, holder)
	}
	return nil
}

// Local returns this node as a Peer: its name, gossip address, current metadata, and
// State "alive" since Start, or "left" after Leave.
func (m *Membership) Local() Peer {
	p := Peer{Name: m.cfg.Name, Gossip: m.self, Meta: m.local.Load().meta, State: StateAlive, Since: m.started}
	if t := m.leftAt.Load(); t != nil {
		p.State, p.Since = StateLeft, *t
	}
	return p
}

// Peers returns every known peer except this node, sorted by name: alive and suspect ones,
// and dead or left ones until Config.Forget after they died or left.
func (m *Membership) Peers() []Peer {
	m.mu.Lock()
	out := make([]Peer, 0, len(m.peers))
	for _, r := range m.peers {
		out = append(out, r.Peer)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// Changed returns a channel that receives a value after a peer joins, leaves, dies, becomes
// suspect or alive again, changes its metadata or is forgotten, and when a node is newly
// refused. It has a buffer of one and notifications coalesce: after a receive, read Peers
// for the current view.
func (m *Membership) Changed() <-chan struct{} { return m.changed }

// SetMeta replaces the metadata this node announces and queues it for gossip. It returns
// once the update is queued, without waiting for it to spread: memberlist retransmits it
// and push/pull carries it to every member. It fails for invalid metadata, for a change
// the peers would refuse (by default: protocol, tunnel type or cluster CIDR), when ctx has
// ended, and after Leave or Shutdown.
func (m *Membership) SetMeta(ctx context.Context, meta Meta) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("set metadata: %w", err)
	}
	raw, err := EncodeMeta(meta)
	if err != nil {
		return fmt.Errorf("set metadata: %w", err)
	}
	m.metaMu.Lock()
	defer m.metaMu.Unlock()
	if m.left.Load() || m.shut.Load() {
		return fmt.Errorf("set metadata: %w", ErrClosed)
	}
	old := m.local.Load()
	if old.meta.Equal(meta) {
		return nil
	}
	if err := m.compatible(old.meta, meta); err != nil {
		return fmt.Errorf("set metadata: the change would make peers refuse this node: %w", err)
	}
	m.local.Store(&localMeta{meta: meta, raw: raw})
	m.log.Info("announcing new metadata", "subnet", meta.Subnet, "addr", meta.Addr, "mtu", meta.MTU)
	// UpdateNode queues the new alive message before it waits, and then waits until
	// memberlist has retransmitted it its full count (RetransmitMult × log10(members)
	// gossip packets), or forever with a zero timeout. On a member that just joined a
	// large fabric, that count sits behind the re-broadcasts of every member it learned
	// (lowest transmit count first), which took seconds (5 s, the old timeout, with 100
	// members), all while the caller (the controller claiming its subnet) waited. The
	// shortest timeout skips the wait (its only error is that timeout); the notification
	// nobody waits for is dropped without blocking memberlist.
	_ = m.list.UpdateNode(time.Nanosecond)
	return nil
}

// Rejected returns the nodes refused in the last 10 minutes, sorted by name, with why.
func (m *Membership) Rejected() []Rejection {
	m.mu.Lock()
	out := make([]Rejection, 0, len(m.rejected))
	for _, r := range m.rejected {
		out = append(out, r.Rejection)
	}
	m.mu.Unlock()
	slices.SortFunc(out, func(a, b Rejection) int { return strings.Compare(a.Name, b.Name) })
	return out
}

// NumMembers returns the number of alive and suspect members, this node included.
func (m *Membership) NumMembers() int { return m.list.NumMembers() }

// Leave announces that this node leaves the cluster, so that the peers show it as "left"
// (not "dead") within about a second, and stops the background joins. It waits up to
// timeout (5 s when timeout ≤ 0) for the announcement to be gossiped. The node keeps
// answering gossip until Shutdown. Calling Leave again does nothing.
func (m *Membership) Leave(timeout time.Duration) error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.shut.Load() {
		return fmt.Errorf("leave: %w", ErrClosed)
	}
	if m.left.Load() {
		return nil
	}
	if timeout <= 0 {
		timeout = defaultOpTimeout
	}
	deadline := time.Now().Add(timeout)
	m.metaMu.Lock() // no SetMeta during or after leaving
	m.left.Store(true)
	m.metaMu.Unlock()
	close(m.leaving)

	// The goodbye goes first, so that peers know the coming NotifyLeave is a departure.
	if m.numAlive.Load() > 0 {
		done := make(chan struct{}, 1)
		m.bcast.QueueBroadcast(&broadcast{name: "b/" + m.cfg.Name, msg: encodeBye(m.cfg.Name, newNonce()), notify: done})
		select {
		case <-done:
		case <-time.After(timeout / 2):
			m.log.Debug("goodbye still spreading")
		}
	}
	err := m.list.Leave(max(time.Until(deadline), time.Millisecond))
	now := time.Now()
	m.leftAt.Store(&now)
	if err != nil {
		return fmt.Errorf("leave: %w", err)
	}
	m.log.Info("left the cluster")
	return nil
}

// Shutdown stops gossip and every goroutine of this package, without announcing anything:
// the peers detect this node as dead (call Leave first for a graceful exit). Calling it
// again does nothing.
func (m *Membership) Shutdown() error {
	m.lifeMu.Lock()
	defer m.lifeMu.Unlock()
	if m.shut.Swap(true) {
		return nil
	}
	close(m.stop)
	err := m.list.Shutdown()
	m.wg.Wait()
	m.bcast.Reset()
	if err != nil {
		return fmt.Errorf("shutdown gossip: %w", err)
	}
	return nil
}

// notify wakes whoever waits on Changed, without blocking.
func (m *Membership) notify() {
	select {
	case m.changed <- struct{}{}:
	default:
	}
}

// compatible applies Config.Compatible in both directions.
func (m *Membership) compatible(local, remote Meta) error {
	if err := m.cfg.Compatible(local, remote); err != nil {
		return err
	}
	return m.cfg.Compatible(remote, local)
}

// checkRemote says why a remote node with metadata raw cannot be a member, or nil.
func (m *Membership) checkRemote(raw []byte) error {
	remote, err := decodeMeta(raw)
	if err != nil {
		return fmt.Errorf("unreadable metadata: %w", err)
	}
	if err := m.compatible(m.local.Load().meta, remote); err != nil {
		return err
	}
	if err := remote.Validate(); err != nil {
		return fmt.Errorf("invalid metadata: %w", err)
	}
	return nil
}

// reject records and logs that node name was refused.
func (m *Membership) reject(name string, addr netip.AddrPort, reason error) {
	now := time.Now()
	m.mu.Lock()
	r := m.rejected[name]
	fresh := r == nil || r.Reason != reason.Error()
	if fresh {
		r = &rejectionRec{Rejection: Rejection{Name: name, Gossip: addr, Reason: reason.Error(), First: now}}
		m.rejected[name] = r
	}
	r.Last = now
	r.Count++
	if addr.IsValid() {
		r.Gossip = addr
	}
	warn := fresh || now.Sub(r.lastLog) >= rejectionLogEvery
	if warn {
		r.lastLog = now
	}
	if len(m.rejected) > maxRejections {
		oldest := ""
		for n, o := range m.rejected {
			if oldest == "" || o.Last.Before(m.rejected[oldest].Last) {
				oldest = n
			}
		}
		delete(m.rejected, oldest)
	}
	count := r.Count
	m.mu.Unlock()
	level := slog.LevelDebug
	if warn {
		level = slog.LevelWarn
	}
	m.log.Log(context.Background(), level, "refusing node "+name+": "+reason.Error(), "node", name, "addr", addr, "times", count)
	if fresh {
		m.notify()
	}
}

// peerAlive records that a peer joined (or came back).
func (m *Membership) peerAlive(n *memberlist.Node, meta Meta) {
	now := time.Now()
	m.mu.Lock()
	r := m.peers[n.Name]
	back := r != nil
	if r == nil {
		r = &peerRec{}
		m.peers[n.Name] = r
	}
	r.Peer = Peer{Name: n.Name, Gossip: nodeAddr(n), Meta: meta, State: StateAlive, Since: now}
	r.lastAck, r.bye = now, time.Time{}
	delete(m.rejected, n.Name)
	delete(m.rejected, r.Gossip.Addr().String()) // refused by address for its gossip key
	m.countAliveLocked()
	m.mu.Unlock()
	msg := "peer joined"
	if back {
		msg = "peer is back"
	}
	m.log.Info(msg, "peer", n.Name, "addr", meta.Addr, "subnet", meta.Subnet)
	m.notify()
}

// peerUpdated records a peer's new metadata.
func (m *Membership) peerUpdated(n *memberlist.Node, meta Meta) {
	m.mu.Lock()
	r := m.peers[n.Name]
	if r == nil {
		m.mu.Unlock()
		m.peerAlive(n, meta)
		return
	}
	r.Meta, r.Gossip = meta, nodeAddr(n)
	m.mu.Unlock()
	m.log.Info("peer metadata changed", "peer", n.Name, "addr", meta.Addr, "subnet", meta.Subnet)
	m.notify()
}

// peerGone records that memberlist declared a peer dead or left.
func (m *Membership) peerGone(n *memberlist.Node) {
	now := time.Now()
	m.mu.Lock()
	r := m.peers[n.Name]
	if r == nil {
		r = &peerRec{Peer: Peer{Name: n.Name, Gossip: nodeAddr(n)}}
		if meta, err := decodeMeta(n.Meta); err == nil {
			r.Meta = meta
		}
		m.peers[n.Name] = r
	}
	r.State, r.Since = StateDead, now
	if !r.bye.IsZero() && now.Sub(r.bye) < byeWindow {
		r.State = StateLeft
	}
	st := r.State
	m.countAliveLocked()
	m.mu.Unlock()
	if st == StateLeft {
		m.log.Info("peer left", "peer", n.Name)
	} else {
		m.log.Warn("peer failed", "peer", n.Name)
	}
	m.notify()
}

// peerSaidBye handles a peer's goodbye.
func (m *Membership) peerSaidBye(name string) {
	now := time.Now()
	m.mu.Lock()
	r := m.peers[name]
	upgraded := false
	switch {
	case r == nil:
	case r.State == StateDead && now.Sub(r.Since) < byeWindow:
		r.State, upgraded = StateLeft, true
	case r.State == StateAlive || r.State == StateSuspect:
		r.bye = now
	}
	m.mu.Unlock()
	if upgraded {
		m.log.Info("peer left", "peer", name)
		m.notify()
	}
}

// acked records a direct probe answered by peer name.
func (m *Membership) acked(name string) {
	now := time.Now()
	m.mu.Lock()
	r := m.peers[name]
	back := false
	if r != nil {
		r.lastAck = now
		if r.State == StateSuspect {
			r.State, r.Since, back = StateAlive, now, true
		}
	}
	m.mu.Unlock()
	if back {
		m.log.Info("peer answers probes again", "peer", name)
		m.notify()
	}
}

func (m *Membership) countAliveLocked() {
	n := 0
	for _, r := range m.peers {
		if r.State == StateAlive || r.State == StateSuspect {
			n++
		}
	}
	m.numAlive.Store(int32(n))
}

// suspectAfter is how long a peer may leave this node's direct probes unanswered before it
// is shown as suspect: three rounds of this node's round-robin probing (each peer is probed
// once per round of members−1 probe intervals, stretched by memberlist's health awareness),
// and at least 2 s.
func (m *Membership) suspectAfter(members, health int) time.Duration {
	round := time.Duration(max(members-1, 1)) * m.cfg.Timings.ProbeInterval * time.Duration(health+1)
	return max(3*round, 2*time.Second)
}

// maintain runs the periodic housekeeping: suspicion, forgetting, expiring records.
func (m *Membership) maintain() {
	defer m.wg.Done()
	t := time.NewTicker(min(m.cfg.Timings.ProbeInterval, time.Second))
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C:
		}
		m.housekeep(time.Now())
	}
}

func (m *Membership) housekeep(now time.Time) {
	after := m.suspectAfter(m.list.NumMembers(), m.list.GetHealthScore())
	var suspects, forgotten []string
	m.mu.Lock()
	for name, r := range m.peers {
		switch r.State {
		case StateAlive:
			if now.Sub(r.lastAck) > after {
				r.State, r.Since = StateSuspect, now
				suspects = append(suspects, name)
			}
		case StateDead, StateLeft:
			if now.Sub(r.Since) > m.cfg.Forget {
				delete(m.peers, name)
				forgotten = append(forgotten, name)
			}
		}
		if !r.bye.IsZero() && now.Sub(r.bye) > byeWindow {
			r.bye = time.Time{}
		}
	}
	for name, r := range m.rejected {
		if now.Sub(r.Last) > rejectionTTL {
			delete(m.rejected, name)
		}
	}
	for nonce, at := range m.byesSeen {
		if now.Sub(at) > 2*byeWindow {
			delete(m.byesSeen, nonce)
		}
	}
	m.countAliveLocked()
	m.mu.Unlock()
	if m.bcast.NumQueued() > maxQueuedBroadcasts {
		m.bcast.Prune(maxQueuedBroadcasts)
	}
	for _, name := range suspects {
		m.log.Warn("peer does not answer this node's probes", "peer", name, "for", after)
	}
	for _, name := range forgotten {
		m.log.Debug("forgetting peer", "peer", name)
	}
	if len(suspects)+len(forgotten) > 0 {
		m.notify()
	}
}

// numNodes counts this node and its alive and suspect peers, for broadcast retransmit
// limits (this package's and Config.Registry's). It takes no lock: memberlist calls it
// with its own locks held.
func (m *Membership) numNodes() int { return int(m.numAlive.Load()) + 1 }

// NumNodes counts this node and its alive and suspect peers (registry.Config.NumNodes).
func (m *Membership) NumNodes() int { return m.numNodes() }

// SendTo sends msg reliably (over TCP) to the member named node, which hands it to its
// Config.Registry: it implements registry.Sender. The address is the one this package
// keeps for the peer, not memberlist's *Node (updated without a lock).
func (m *Membership) SendTo(node string, msg []byte) error {
	if m.shut.Load() {
		return fmt.Errorf("send to %s: %w", node, ErrClosed)
	}
	m.mu.Lock()
	r := m.peers[node]
	var addr netip.AddrPort
	if r != nil {
		addr = r.Gossip
	}
	m.mu.Unlock()
	if !addr.IsValid() {
		return fmt.Errorf("send to %s: not a known member", node)
	}
	n := &memberlist.Node{Name: node, Addr: net.IP(addr.Addr().AsSlice()), Port: addr.Port()}
	if err := m.list.SendReliable(n, msg); err != nil {
		return fmt.Errorf("send to %s at %s: %w", node, addr, err)
	}
	return nil
}

// nodeAddr is n's gossip address.
func nodeAddr(n *memberlist.Node) netip.AddrPort {
	a, ok := netip.AddrFromSlice(n.Addr)
	if !ok {
		return netip.AddrPort{}
	}
	return netip.AddrPortFrom(a.Unmap(), n.Port)
}

// Sender sends through a Membership set after the fact: a registry.Sender (and its
// NumNodes) for the registry that Config.Registry names, which exists before Start.
type Sender struct{ m atomic.Pointer[Membership] }

// Set makes s send through m.
func (s *Sender) Set(m *Membership) { s.m.Store(m) }

// SendTo is Membership.SendTo, or an error before Set.
func (s *Sender) SendTo(node string, msg []byte) error {
	m := s.m.Load()
	if m == nil {
		return fmt.Errorf("send to %s: gossip not started", node)
	}
	return m.SendTo(node, msg)
}

// NumNodes is Membership.NumNodes, or 1 before Set.
func (s *Sender) NumNodes() int {
	if m := s.m.Load(); m != nil {
		return m.NumNodes()
	}
	return 1
}

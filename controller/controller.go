package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/config"
	"github.com/ovsfabric/ovsfabric/endpoint"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/fabricdns"
	"github.com/ovsfabric/ovsfabric/flows"
	"github.com/ovsfabric/ovsfabric/netplumb"
	"github.com/ovsfabric/ovsfabric/ovsdb"
	"github.com/ovsfabric/ovsfabric/peers"
	"github.com/ovsfabric/ovsfabric/wireguard"
)

// Keys fabricd keeps in the Open_vSwitch table's external_ids (its persisted identity and
// claim) and on its tunnel ports (what it knew of each peer, so a restart adopts them).
const (
	KeyNode        = "ovsfabric-node"
	KeySubnet      = "ovsfabric-subnet"
	KeySubnetSince = "ovsfabric-subnet-since"
	KeyCluster     = "ovsfabric-cluster-cidr"
)

// Switch is what the controller needs from OVSDB.
type Switch interface {
	EnsureBridge(ctx context.Context, spec ovsdb.BridgeSpec) error
	EnsurePort(ctx context.Context, bridge string, spec ovsdb.PortSpec) error
	ReconcileTunnels(ctx context.Context, bridge, owner string, desired []ovsdb.TunnelSpec) (ovsdb.Result, error)
	Ports(ctx context.Context, bridge string) ([]ovsdb.PortInfo, error)
	SystemExternalIDs(ctx context.Context) (map[string]string, error)
	SetSystemExternalIDs(ctx context.Context, set map[string]string, del []string) error
	Changes() <-chan struct{}
}

// HostNet is what the controller needs from the host's network stack: one level-triggered
// call that makes it match the plan (netplumb.HostNet).
type HostNet interface {
	Set(ctx context.Context, want netplumb.HostState) (netplumb.HostChanges, error)
}

// Endpoints is what the controller needs from this host's endpoints (endpoint.Manager):
// each sync hands them the snapshot of the endpoints it read, to prune and NAT.
type Endpoints interface {
	Generation() uint64
	Sync(ctx context.Context, gen uint64, rs []endpoint.Record) ([]endpoint.Record, error)
}

// Membership is what the controller needs from gossip.
type Membership interface {
	Peers() []peers.Peer
	Changed() <-chan struct{}
	SetMeta(ctx context.Context, m peers.Meta) error
	NumMembers() int
	Rejected() []peers.Rejection
}

// settleTime is how long a node that joins an existing fabric waits for gossip to tell it
// the others' claims before it picks a subnet or prunes anything.
const settleTime = 3 * time.Second

// Controller keeps one host converged. Create it with New, call Init, attach the membership
// with SetMembership, then Run.
type Controller struct {
	s    config.Settings
	log  *slog.Logger
	sw   Switch
	host HostNet
	m    Membership
	eps  Endpoints

	// pipe is the data-path mode (--pipeline); of the OpenFlow side of the bridge it programs.
	pipe pipeline
	of   flows.Switch

	started time.Time
	// kick wakes the loop for a sync outside the events it watches (API requests).
	kick chan struct{}

	mu         sync.Mutex
	claim      fabric.Claim
	static     bool
	remembered map[string]fabric.Peer
	desired    fabric.Desired
	peerView   []fabric.Peer
	lastSync   time.Time
	lastErr    error
	syncs      uint64
	metrics    *metrics

	// reg carries this host's endpoints fabric-wide (nil: not spread); published is what
	// it holds of them, encoded, by key (both under pubMu).
	pubMu     sync.Mutex
	reg       Registry
	published map[string]string

	// dns is the fabric DNS the loop feeds (nothing without SetDNS).
	dns dnsState

	// nets is the network book (nil: the default network only); localEndpoints this host's
	// endpoints as the last sync read them (under mu).
	nets           Networks
	localEndpoints []endpoint.Record
	// settledOnce is set once settled has held: gossip and the registry have had their
	// chance (loop only).
	settledOnce bool
	// planned is the plan the sync in progress applies (the last one's between syncs): the
	// networks the NAT pass of that sync must see, before the plan becomes desired (mu).
	planned fabric.Desired

	// ready is closed after the first successful apply: the bridge and gateway exist, so
	// attachments can be made.
	ready     chan struct{}
	readyOnce sync.Once

	// pipeMu serialises flow reconciles: the loop's and the one an attach makes at once.
	// flowsApplied is what the last flow reconcile left on the bridge (nil: unknown).
	// flowsChecked is when a reconcile last compared them with a dump of the bridge.
	pipeMu       sync.Mutex
	flowsApplied []flows.Flow
	// norm remembers the canonical form of the flows the last full flow reconcile compared.
	norm         flows.Normalizer
	flowsChecked time.Time
	// restoreWaitNoted is the ovs-vswitchd for which a foreign flow-restore-wait was last
	// logged (loop only).
	restoreWaitNoted string
	// pending are the container ports an attach is recording, by name, whose flows every
	// reconcile keeps until they are recorded (or not): see PortsAdded (under pipeMu).
	// recordedAt are those of them reported recorded, kept until a port snapshot shows them.
	pending    map[string]ovsdb.PortInfo
	recordedAt map[string]time.Time

	// tunnelsInFlows are the tunnel ports the flows last applied use (under pipeMu; nil
	// until flows were applied). tunnelsSettled (the loop's) is set once no port of another
	// tunnel mode is left: from then on a sync does not look for them. flowPeers are the
	// underlay addresses the flows of a previous run admitted on a flow-based tunnel port
	// (which names no peer in OVSDB): where to rejoin gossip (under mu).
	tunnelsInFlows map[string]bool
	tunnelsSettled bool
	flowPeers      []netip.Addr

	// retained are the claims this node keeps reserved for nodes that went; seenSaved is
	// when it last persisted that it holds its own claim (both under mu).
	retained  []fabric.Retained
	seenSaved time.Time
	// now is the wall clock (a field so tests can skew it).
	now func() time.Time

	// wg is the WireGuard interface and wgKey this host's private key, with encryption
	// (under mu); wgMu serialises configuring it (the loop's and a key rotation's).
	wg    WireGuard
	wgKey wireguard.Key
	wgMu  sync.Mutex
	// wgAnnounced is the public key gossip carries (under mu).
	wgAnnounced wireguard.Key

	// resyncDue is set when the --resync period wakes the loop: the sync it runs is the
	// resync pass, which checks the real state rather than trusting what the last sync left
	// (verifying, loop only). hostApplied is the host network the last Set left.
	resyncDue   atomic.Bool
	verifying   bool
	hostApplied hostMemo
	// plans is the last plan and its facts (loop only).
	plans planMemo
}

// New returns a controller for settings s (with s.Advertise set) over OVSDB, the host
// network, the OpenFlow side of the bridge and this host's endpoints.
func New(s config.Settings, sw Switch, host HostNet, of flows.Switch, eps Endpoints, log *slog.Logger) *Controller {
	return &Controller{s: s, sw: sw, host: host, of: of, eps: eps, pipe: newPipeline(s), log: log, started: time.Now(), now: time.Now, kick: make(chan struct{}, 1), ready: make(chan struct{}), remembered: map[string]fabric.Peer{}, metrics: newMetrics()}
}

// Init loads what a previous run left in OVSDB: the node's subnet claim and the peers its
// tunnels lead to. A static --subnet wins over a persisted claim; a persisted claim outside
// the configured cluster CIDR is dropped and a new one picked.
func (c *Controller) Init(ctx context.Context) error {
	ids, err := c.sw.SystemExternalIDs(ctx)
	if err != nil {
		return fmt.Errorf("read persisted claim: %w", err)
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.loadClaimLocked(ids)
	if c.s.StaticSubnet.IsValid() {
		c.static = true
		if c.claim.Subnet != c.s.StaticSubnet {
			// Seq 0: ordered (and announced) once the others' claims are known.
			c.claim = fabric.Claim{Node: c.s.Name, Subnet: c.s.StaticSubnet, Since: c.now().UnixMilli()}
		}
	}
	if c.claim.Subnet.IsValid() && c.claim.Seq != 0 {
		if err := c.persistClaimLocked(ctx); err != nil {
			return err
		}
		c.log.Info("subnet claim", "subnet", c.claim.Subnet, "static", c.static)
	}
	ports, err := c.sw.Ports(ctx, c.s.Bridge)
	if err != nil && !errors.Is(err, ovsdb.ErrNotFound) {
		return fmt.Errorf("read tunnel ports: %w", err)
	}
	for _, p := range ports {
		if rp, ok := rememberedPeer(p, c.s.Name, c.started); ok {
			c.remembered[rp.Name] = rp
		}
	}
	// The endpoints a previous run left, in the registry before gossip joins.
	c.publishEndpoints(endpoint.Records(ports, c.s.Name))
	if len(c.remembered) > 0 {
		c.log.Info("adopted tunnels of a previous run", "peers", len(c.remembered))
	}
	if slices.ContainsFunc(ports, func(p ovsdb.PortInfo) bool {
		return p.Owner() == c.s.Name && p.Role() == ovsdb.RoleTunnel && p.Options["remote_ip"] == "flow"
	}) {
		c.rememberFlowPeers(ctx)
	}
	return nil
}

// RejoinAddrs are the underlay addresses of the peers this node's tunnels lead to (read by
// Init), for gossip to join besides --join: a restarted fabricd finds its fabric again at
// once, also when it was the seed started without --join (otherwise it would wait for a
// peer's periodic push/pull to reach it, and show its peers as dead meanwhile).
func (c *Controller) RejoinAddrs() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for _, p := range c.remembered {
		if p.Underlay.IsValid() && p.Underlay != c.s.Advertise {
			out = append(out, p.Underlay.String())
		}
	}
	for _, a := range c.flowPeers {
		if a != c.s.Advertise && !slices.Contains(out, a.String()) {
			out = append(out, a.String())
		}
	}
	sort.Strings(out)
	return out
}

// rememberedPeer turns a tunnel port this node owns into a peer fact: it is known only from
// OVSDB, so it counts as dead since fabricd started, which keeps its tunnel and route for the
// dead-peer grace unless gossip says otherwise.
func rememberedPeer(p ovsdb.PortInfo, owner string, since time.Time) (fabric.Peer, bool) {
	ids := p.ExternalIDs
	if ids[ovsdb.KeyOwner] != owner || ids[ovsdb.KeyRole] != ovsdb.RoleTunnel || ids[ovsdb.KeyPeer] == "" {
		return fabric.Peer{}, false
	}
	remote, err := netip.ParseAddr(p.Options["remote_ip"])
	if err != nil {
		return fabric.Peer{}, false
	}
	sub, _ := netip.ParsePrefix(ids[KeySubnet])
	subSince, _ := strconv.ParseInt(ids[KeySubnetSince], 10, 64)
	subSeq, _ := strconv.ParseUint(ids[KeySubnetSeq], 10, 64)
	return fabric.Peer{Name: ids[ovsdb.KeyPeer], Underlay: remote, Subnet: sub, SubnetSince: subSince, SubnetSeq: subSeq, State: fabric.PeerDead, StateSince: since}, true
}

func (c *Controller) persistClaimLocked(ctx context.Context) error {
	err := c.sw.SetSystemExternalIDs(ctx, c.claimIDsLocked(), nil)
	if err != nil {
		return fmt.Errorf("persist subnet claim: %w", err)
	}
	return nil
}

// Meta is what this node announces by gossip.
func (c *Controller) Meta() peers.Meta {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.metaLocked()
}

func (c *Controller) metaLocked() peers.Meta {
	mtu, _ := c.s.MTU()
	m := peers.Meta{
		Proto:       peers.ProtocolVersion,
		Addr:        c.s.Advertise,
		Subnet:      c.claim.Subnet,
		SubnetSince: c.claim.Since,
		SubnetSeq:   c.claim.Seq,
		Tunnel:      string(c.s.TunnelType),
		ClusterCIDR: c.s.Cluster,
		MTU:         mtu,
	}
	if c.claim.Seq == 0 { // a static claim not ordered yet (see resolveClaim)
		m.Subnet, m.SubnetSince = netip.Prefix{}, 0
	}
	c.wireguardMetaLocked(&m)
	m.Retained = c.retainedMetaLocked(m)
	return m
}

// SetMembership attaches the gossip layer; Run needs it.
func (c *Controller) SetMembership(m Membership) { c.m = m }

// Kick asks for a sync soon.
func (c *Controller) Kick() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// ErrSubnetConflict is returned by Run when this node's static subnet is claimed by a node
// whose claim is older: fabricd refuses to take part rather than break that node.
var ErrSubnetConflict = errors.New("subnet conflict")

// Run reconciles on every event and every resync period until ctx ends. It returns an error
// only for a condition that retrying cannot fix (a static subnet conflict).
func (c *Controller) Run(ctx context.Context) error {
	t := time.NewTicker(c.s.Resync)
	defer t.Stop()
	if w, ok := c.of.(ServerIdentity); ok {
		wctx, stop := context.WithCancel(ctx)
		defer stop()
		go c.watchVSwitchd(wctx, w, vswitchdSafety)
	}
	// A failed reconcile is retried after backoff (doubling from retryMin up to --resync)
	// even when no event comes: see vswitchd.go.
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	defer retry.Stop()
	backoff := retryMin
	for {
		if err := c.Sync(ctx); err != nil {
			if errors.Is(err, ErrSubnetConflict) {
				return err
			}
			if ctx.Err() != nil {
				return nil
			}
			c.log.Error("reconcile failed; retrying", "err", err, "in", backoff)
			retry.Reset(backoff)
			backoff = min(2*backoff, c.s.Resync)
		} else {
			retry.Stop()
			backoff = retryMin
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			c.resyncDue.Store(true)
		case <-c.m.Changed():
		case <-c.sw.Changes():
			c.settle(ctx)
		case <-c.kick:
			c.settle(ctx)
		case <-retry.C:
		}
	}
}

// eventSettle is how long the loop lets OVSDB changes and kicks gather before it syncs. One
// attach makes several in a row (its transaction, ovs-vswitchd numbering the port, the kick
// that spreads it), and a sync for each ran a full reconcile on the same cores as the
// attach's own steps; now they make one, after them. Gossip events are not delayed.
const eventSettle = 30 * time.Millisecond

// settle waits eventSettle (less when gossip reports a change or ctx ends), then drops the
// OVSDB change and kick signals that came meanwhile: the sync that follows reads the state
// they announce.
func (c *Controller) settle(ctx context.Context) {
	t := time.NewTimer(eventSettle)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	case <-c.m.Changed():
	}
	select {
	case <-c.sw.Changes():
	default:
	}
	select {
	case <-c.kick:
	default:
	}
}

// settled reports whether gossip has had its chance to tell this node about the fabric.
func (c *Controller) settled() bool {
	if c.settledOnce {
		return true
	}
	if time.Since(c.started) > settleTime ||
		(len(c.s.Join) == 0 || c.m.NumMembers() > 1) && c.registryHeard() {
		c.settledOnce = true
	}
	return c.settledOnce
}

// readyWait is how long a request that needs the bridge waits for fabricd's first
// successful reconcile before it is refused as "still starting".
const readyWait = 15 * time.Second

// Subnet is this host's subnet (invalid while it has none).
func (c *Controller) Subnet() netip.Prefix {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.claim.Subnet
}

// WaitReady waits until the first reconcile has built the bridge and gateway, so that an
// attach made right after fabricd started is served rather than failing on a missing bridge.
func (c *Controller) WaitReady(ctx context.Context) error {
	select {
	case <-c.ready:
		return nil
	default:
	}
	c.Kick()
	t := time.NewTimer(readyWait)
	defer t.Stop()
	select {
	case <-c.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		c.mu.Lock()
		last := c.lastErr
		c.mu.Unlock()
		if last != nil {
			return api.Errorf(api.ErrUnavailable, "fabricd has not built %s yet (last reconcile: %v); retry when `fabricctl status` shows no error", c.s.Bridge, last)
		}
		return api.Errorf(api.ErrUnavailable, "fabricd has not built %s yet; retry in a few seconds", c.s.Bridge)
	}
}

// Sync runs one reconcile: gather facts, plan, apply the difference.
func (c *Controller) Sync(ctx context.Context) (err error) {
	start := time.Now()
	defer func() { c.metrics.observe(start, err) }()
	if !c.settled() {
		return nil
	}
	c.verifying = c.resyncDue.Swap(false)
	members := c.m.Peers()
	view := c.gatherPeers(members)
	if err := c.updateRetained(ctx, view); err != nil {
		c.setResult(nil, view, err)
		return err
	}
	if err := c.resolveClaim(ctx, view, members); err != nil {
		c.setResult(nil, view, err)
		return err
	}
	nets, err := c.syncNetworks(ctx)
	if err != nil {
		c.setResult(nil, view, err)
		return err
	}
	c.mu.Lock()
	facts := fabric.Facts{
		Node: c.s.Name, Underlay: c.s.Advertise, UnderlayMTU: c.s.UnderlayMTU,
		Subnet: c.claim.Subnet, SubnetSince: c.claim.Since, SubnetSeq: c.claim.Seq, ClusterCIDR: c.s.Cluster,
		Tunnel: c.s.TunnelType, TunnelMode: c.s.TunnelModeValue, Bridge: c.s.Bridge, GatewayPort: c.s.GatewayPort, Datapath: c.s.DatapathType,
		Peers: view, Now: c.now(), DeadPeerGrace: c.s.DeadPeerGrace, Networks: nets,
		Encryption: c.s.EncryptionMode, WireGuard: fabric.WireGuardFacts{Interface: c.s.WireGuardInterface},
	}
	c.mu.Unlock()
	d, err := c.plans.plan(facts)
	if err != nil {
		c.setResult(nil, view, err)
		return fmt.Errorf("plan: %w", err)
	}
	c.forgetGone(view, facts.Now)
	err = c.apply(ctx, d, members)
	c.setResult(&d, view, err)
	if err == nil {
		c.readyOnce.Do(func() { close(c.ready) })
	}
	return err
}

// gatherPeers merges gossip's view (members, read once per sync: with thousands of peers
// each read copies and sorts them all) with the peers remembered from OVSDB at start. The
// result is sorted by name; gossip's view already is, so it is only checked.
func (c *Controller) gatherPeers(members []peers.Peer) []fabric.Peer {
	c.mu.Lock()
	rest := make(map[string]fabric.Peer, len(c.remembered))
	for n, p := range c.remembered {
		rest[n] = p
	}
	c.mu.Unlock()
	out := make([]fabric.Peer, 0, len(members)+len(rest))
	for _, p := range members {
		if p.Name == c.s.Name {
			continue
		}
		delete(rest, p.Name)
		out = append(out, fabric.Peer{
			Name: p.Name, Underlay: p.Meta.Addr, Subnet: p.Meta.Subnet, SubnetSince: p.Meta.SubnetSince, SubnetSeq: p.Meta.SubnetSeq,
			State: fabric.PeerState(p.State), StateSince: p.Since,
			WireGuardKey: p.Meta.WireGuardKey, WireGuardPort: p.Meta.WireGuardPort,
		})
	}
	for _, p := range rest {
		out = append(out, p)
	}
	byName := func(a, b fabric.Peer) int { return strings.Compare(a.Name, b.Name) }
	if !slices.IsSortedFunc(out, byName) {
		slices.SortFunc(out, byName)
	}
	return out
}

// apply makes OVSDB, the host network, the flows and the endpoints match d, changing only
// what differs; members are gossip's members the sync read.
func (c *Controller) apply(ctx context.Context, d fabric.Desired, members []peers.Peer) error {
	c.mu.Lock()
	c.planned = d
	c.mu.Unlock()
	owner := c.s.Name
	if err := c.sw.EnsureBridge(ctx, ovsdb.BridgeSpec{Name: d.Bridge, DatapathType: d.Datapath.String(), FailMode: "standalone", Owner: owner}); err != nil {
		return fmt.Errorf("ensure bridge %s: %w", d.Bridge, err)
	}
	// The gateway's MAC is pinned (derived from the node name): ovs-vswitchd would otherwise
	// pick a new one for the tap device at every restart, and containers' ARP caches and the
	// pipeline's flows would point at the old one.
	if err := c.sw.EnsurePort(ctx, d.Bridge, ovsdb.PortSpec{Name: d.GatewayPort, Type: "internal", Owner: owner, Role: ovsdb.RoleGateway, MAC: fabric.GatewayMAC(c.s.Name).String()}); err != nil {
		return fmt.Errorf("ensure gateway port %s: %w", d.GatewayPort, err)
	}
	if d.Encryption.Encrypted() {
		// WireGuard's peers and the routes into it (and the guard routes) before any tunnel
		// of a previous unencrypted run goes: there is never a moment without either.
		if err := c.applyWireGuard(d); err != nil {
			return err
		}
		if err := c.announceWireGuardKey(ctx); err != nil {
			return err
		}
		if err := c.setHost(ctx, hostState(d, c.networkCIDRs(), c.s.DNS)); err != nil {
			return err
		}
	}
	tunnels := c.tunnelSpecs(d)
	kept, err := c.retiredTunnels(ctx, d, tunnels)
	if err != nil {
		return err
	}
	tunnels = append(tunnels, kept...)
	res, err := c.sw.ReconcileTunnels(ctx, d.Bridge, owner, tunnels)
	if err != nil {
		return fmt.Errorf("reconcile tunnels: %w", err)
	}
	for _, n := range res.Added {
		c.log.Info("tunnel added", "port", n)
	}
	for _, n := range res.Updated {
		c.log.Info("tunnel updated", "port", n)
	}
	for _, n := range res.Removed {
		c.log.Info("tunnel removed", "port", n)
	}
	c.purgeAfterFirstTunnel(ctx, d.Datapath, len(tunnels), res)
	if !d.Encryption.Encrypted() {
		if err := c.setHost(ctx, hostState(d, c.networkCIDRs(), c.s.DNS)); err != nil {
			return err
		}
	}
	// The one read of the port table this sync: flows, pruning, NAT and gossip share it.
	gen := c.eps.Generation()
	ports, err := c.sw.Ports(ctx, d.Bridge)
	if err != nil {
		return fmt.Errorf("read ports of %s: %w", d.Bridge, err)
	}
	// The identity of the ovs-vswitchd the pipeline went to, read before it is programmed: a
	// restart in between must not count as "flows are in".
	served := c.serverID()
	flowsIn, err := c.applyPipeline(ctx, d, ports)
	if err != nil {
		return err
	}
	if flowsIn {
		c.finishRestoreWait(ctx, served)
	}
	c.settleTunnels(kept, flowsIn)
	c.forgetRemembered(d, members)
	eps, err := c.eps.Sync(ctx, gen, endpoint.Records(ports, owner))
	if err != nil {
		return fmt.Errorf("attachments and NAT: %w", err)
	}
	c.publishEndpoints(eps)
	c.mu.Lock()
	c.localEndpoints = eps
	c.mu.Unlock()
	c.syncDNS(d, func() []peers.Peer { return members })
	return nil
}

// hostState is the host network plan d asks for.
// The gateway holds one address per network d serves; scopes are every network's CIDR, so
// the address of a network this host stops serving goes. It also holds the fabric DNS's
// address shared by every network (fabricdns.WellKnownAddr) as a /32, in a scope of its own,
// when the fabric DNS runs (dns); without it that scope has no address, so one a run with
// DNS left behind goes.
func hostState(d fabric.Desired, scopes []netip.Prefix, dns bool) netplumb.HostState {
	routes := make([]netplumb.Route, 0, len(d.Routes))
	for _, r := range d.Routes {
		routes = append(routes, netplumb.Route{Dst: r.Dst, Gateway: r.Via, Src: r.Src, Dev: r.Dev, OnLink: r.OnLink, Unreachable: r.Unreachable})
	}
	addrs := make([]netip.Prefix, 0, len(d.Networks)+2)
	addrs = append(addrs, d.Gateway)
	for _, n := range d.Networks {
		if n.Name != fabric.DefaultNetwork {
			addrs = append(addrs, n.Gateway)
		}
	}
	shared := netip.PrefixFrom(fabricdns.WellKnown(), 32)
	if dns {
		addrs = append(addrs, shared)
	}
	scopes = append(slices.Clip(scopes), shared)
	return netplumb.HostState{GatewayDev: d.GatewayPort, MTU: d.MTU, Addrs: addrs, Scopes: scopes, Routes: routes}
}

// setHost sets the host network and logs what changed.
// A sync other than the resync pass that wants what the last Set left, on the same gateway
// device, skips it (see hostMemo).
func (c *Controller) setHost(ctx context.Context, want netplumb.HostState) error {
	served, known := c.hostIdentity(want)
	now := time.Now()
	if c.hostApplied.skip(want, served, now, c.s.Resync, c.verifying || !known) {
		return nil
	}
	ch, err := c.host.Set(ctx, want)
	c.hostApplied.record(want, served, now, err)
	if ch.Link {
		c.log.Info("gateway link up", "dev", want.GatewayDev, "mtu", want.MTU)
	}
	for _, a := range ch.Addrs.Removed {
		c.log.Info("gateway address removed", "dev", want.GatewayDev, "addr", a)
	}
	for _, a := range ch.Addrs.Added {
		c.log.Info("gateway address added", "dev", want.GatewayDev, "addr", a)
	}
	for _, r := range ch.Routes.Added {
		c.log.Info("route added", "dst", r.Dst, "via", r.Gateway)
	}
	for _, r := range ch.Routes.Replaced {
		c.log.Info("route replaced", "dst", r.Dst, "via", r.Gateway)
	}
	for _, r := range ch.Routes.Removed {
		c.log.Info("route removed", "dst", r.Dst, "via", r.Gateway)
	}
	return err
}

// linkIdentity is implemented by a HostNet that can name the device it configured
// (netplumb.HostNet): its interface index.
type linkIdentity interface {
	LinkIndex(dev string) (int, error)
}

// hostIdentity identifies what the host network was set on: the ovs-vswitchd serving the
// bridge and the interface index of the gateway device and of every other device a route
// names (the WireGuard interface), any of which changes when the device is made anew
// (ovs-vswitchd restarted, an operator deleted the port, the WireGuard device process was
// restarted), without the addresses and routes a Set gave the old one. known is false when a
// device cannot be looked up: then nothing is skipped.
func (c *Controller) hostIdentity(want netplumb.HostState) (id string, known bool) {
	id = c.serverID()
	li, ok := c.host.(linkIdentity)
	if !ok {
		return id, true
	}
	devs := []string{want.GatewayDev}
	for _, r := range want.Routes {
		if r.Dev != "" && !slices.Contains(devs, r.Dev) {
			devs = append(devs, r.Dev)
		}
	}
	for _, dev := range devs {
		if dev == "" {
			continue
		}
		idx, err := li.LinkIndex(dev)
		if err != nil {
			return "", false
		}
		id += "/" + dev + "=" + strconv.Itoa(idx)
	}
	return id, true
}

// forgetRemembered drops peers remembered from OVSDB once gossip knows them or Plan has
// stopped building toward them.
func (c *Controller) forgetRemembered(d fabric.Desired, members []peers.Peer) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.remembered) == 0 {
		return
	}
	known := map[string]bool{}
	for _, p := range members {
		known[p.Name] = true
	}
	kept := map[string]bool{}
	for _, t := range d.Tunnels {
		kept[t.Peer] = true
	}
	for n := range c.remembered {
		if known[n] || !kept[n] {
			delete(c.remembered, n)
		}
	}
}

func (c *Controller) setResult(d *fabric.Desired, view []fabric.Peer, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d != nil && err == nil {
		c.desired = *d
	}
	c.peerView = view
	c.lastSync = time.Now()
	c.lastErr = err
	c.syncs++
	c.metrics.setView(view, c.desired)
}

// Status is the host's view for the API.
func (c *Controller) Status() api.Status {
	c.mu.Lock()
	d := c.desired
	c.mu.Unlock()
	// Read before taking mu: it asks the interface.
	wg, handshakes := c.wireguardStatus(d)
	c.mu.Lock()
	defer c.mu.Unlock()
	st := api.Status{
		Node: c.s.Name, Underlay: c.s.Advertise.String(), ClusterCIDR: c.s.Cluster.String(),
		Tunnel: string(c.s.TunnelType), Datapath: c.s.DatapathType.String(), Bridge: c.s.Bridge,
		LastSync: c.lastSync, Syncs: c.syncs, TunnelMode: string(c.desired.TunnelMode),
	}
	if st.TunnelMode == "" {
		st.TunnelMode = string(c.s.TunnelModeValue)
	}
	if c.claim.Subnet.IsValid() {
		st.Subnet = c.claim.Subnet.String()
		st.Gateway = netip.PrefixFrom(fabric.Gateway(c.claim.Subnet), c.claim.Subnet.Bits()).String()
	}
	st.MTU, _ = c.s.MTU()
	if c.s.Encrypted() {
		st.Encryption, st.WireGuard = string(c.s.EncryptionMode), wg
	} else {
		st.Encryption = string(fabric.EncryptionNone)
	}
	if c.lastErr != nil {
		st.LastError = c.lastErr.Error()
	}
	tunnels := map[string]string{}
	for _, t := range c.desired.Tunnels {
		tunnels[t.Peer] = t.Name
	}
	notes := map[string]string{}
	for _, s := range c.desired.Skipped {
		notes[s.Peer] = s.Reason
	}
	for _, p := range c.peerView {
		ap := api.Peer{Name: p.Name, Addr: addrString(p.Underlay), State: string(p.State), Since: p.StateSince, Tunnel: tunnels[p.Name], Note: notes[p.Name], WireGuard: handshakes[p.Name]}
		if ap.Tunnel != "" && ap.Tunnel == c.desired.FlowTunnel {
			cookie, mask := flows.PeerCookie(flows.PurposeToPeer, p.Name)
			ap.Cookie = fmt.Sprintf("%#x/%#x", cookie, mask)
		}
		if p.Subnet.IsValid() {
			ap.Subnet = p.Subnet.String()
		}
		st.Peers = append(st.Peers, ap)
	}
	st.Peers = c.retainedStatusLocked(st.Peers)
	if c.m != nil {
		for _, r := range c.m.Rejected() {
			st.Rejected = append(st.Rejected, r.String())
		}
	}
	return st
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

// Withdraw removes this node's tunnels and routes after it has left the fabric. The bridge,
// the gateway and container ports stay: leaving the fabric does not cut local containers off.
func (c *Controller) Withdraw(ctx context.Context) error {
	res, err := c.sw.ReconcileTunnels(ctx, c.s.Bridge, c.s.Name, nil)
	if err != nil {
		return fmt.Errorf("remove tunnels: %w", err)
	}
	// Only the routes go: the gateway stays as it is (GatewayDev empty). An encrypted host
	// keeps its guard routes, so nothing leaves in clear once WireGuard is gone.
	var keep []netplumb.Route
	c.mu.Lock()
	for _, r := range hostState(c.desired, nil, c.s.DNS).Routes {
		if r.Unreachable {
			keep = append(keep, r)
		}
	}
	c.mu.Unlock()
	c.hostApplied.forget()
	ch, err := c.host.Set(ctx, netplumb.HostState{Routes: keep})
	if err != nil {
		return fmt.Errorf("remove routes: %w", err)
	}
	c.log.Info("withdrew from the fabric", "tunnels_removed", len(res.Removed), "routes_removed", len(ch.Routes.Removed))
	return nil
}

package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/config"
	"github.com/ovsfabric/ovsfabric/endpoint"
	"github.com/ovsfabric/ovsfabric/flows"
	"github.com/ovsfabric/ovsfabric/flows/flowstest"
	"github.com/ovsfabric/ovsfabric/natrules"
	"github.com/ovsfabric/ovsfabric/netplumb"
	"github.com/ovsfabric/ovsfabric/ovsdb"
	"github.com/ovsfabric/ovsfabric/ovsdb/ovsdbtest"
	"github.com/ovsfabric/ovsfabric/peers"
)

// fakeKernel records the kernel state the controller asks for. The real one is proven in the
// lab; here it lets the reconcile logic run without root.
type fakeKernel struct {
	mu     sync.Mutex
	addrs  map[string][]netip.Prefix
	routes []netplumb.Route
	writes int
	nat    natrules.Rules
	// attached records every Attach asked for.
	attached []netplumb.Attachment
	// ifindex is the interface index LinkIndex reports (devIndex's for a device listed
	// there), or ifindexErr.
	ifindex    int
	devIndex   map[string]int
	ifindexErr error
}

// LinkIndex implements the controller's linkIdentity.
func (k *fakeKernel) LinkIndex(dev string) (int, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if i, ok := k.devIndex[dev]; ok {
		return i, k.ifindexErr
	}
	return k.ifindex, k.ifindexErr
}

// Set implements HostNet with the two steps tests look at: the gateway's address and the
// routes.
func (k *fakeKernel) Set(_ context.Context, want netplumb.HostState) (netplumb.HostChanges, error) {
	var ch netplumb.HostChanges
	if want.GatewayDev != "" {
		if changed, _ := k.ReconcileAddrs(want.GatewayDev, want.Addrs, want.Scopes...); changed {
			ch.Addrs.Added = want.Addrs
		}
	}
	ch.Routes, _ = k.ReconcileRoutes(want.Routes)
	return ch, nil
}
func (k *fakeKernel) ReconcileAddrs(dev string, want []netip.Prefix, _ ...netip.Prefix) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.addrs == nil {
		k.addrs = map[string][]netip.Prefix{}
	}
	if len(k.addrs[dev]) == len(want) && (len(want) == 0 || k.addrs[dev][0] == want[0]) {
		return false, nil
	}
	k.addrs[dev] = want
	k.writes++
	return true, nil
}
func (k *fakeKernel) ReconcileRoutes(desired []netplumb.Route) (netplumb.RouteChanges, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	var rc netplumb.RouteChanges
	have := map[netip.Prefix]bool{}
	for _, r := range k.routes {
		have[r.Dst] = true
	}
	want := map[netip.Prefix]bool{}
	for _, r := range desired {
		want[r.Dst] = true
		if !have[r.Dst] {
			rc.Added = append(rc.Added, r)
		}
	}
	for _, r := range k.routes {
		if !want[r.Dst] {
			rc.Removed = append(rc.Removed, r)
		}
	}
	if len(rc.Added)+len(rc.Removed) > 0 {
		k.writes++
	}
	k.routes = append([]netplumb.Route(nil), desired...)
	return rc, nil
}
func (k *fakeKernel) Attach(a netplumb.Attachment) (netplumb.AttachResult, error) {
	k.mu.Lock()
	k.attached = append(k.attached, a)
	k.mu.Unlock()
	return netplumb.AttachResult{MAC: a.MAC, HostIf: a.HostIf}, nil
}
func (k *fakeKernel) Detach(string) error                     { return nil }
func (k *fakeKernel) NetNSExists(p string) bool               { _, err := os.Stat(p); return err == nil }
func (k *fakeKernel) ForgetNeighbor(string, netip.Addr) error { return nil }
func (k *fakeKernel) ReconcileNAT(r natrules.Rules) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.nat = r
	return false, nil
}

// fakeMembers is a gossip view set by the test.
type fakeMembers struct {
	mu    sync.Mutex
	peers []peers.Peer
	meta  peers.Meta
	ch    chan struct{}
}

func (m *fakeMembers) Peers() []peers.Peer {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]peers.Peer(nil), m.peers...)
}
func (m *fakeMembers) Changed() <-chan struct{} { return m.ch }
func (m *fakeMembers) SetMeta(_ context.Context, meta peers.Meta) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.meta = meta
	return nil
}
func (m *fakeMembers) NumMembers() int             { return len(m.Peers()) + 1 }
func (m *fakeMembers) Rejected() []peers.Rejection { return nil }
func (m *fakeMembers) set(ps ...peers.Peer) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.peers = ps
}

func peer(name, underlay, subnet string, st peers.State, since time.Time) peers.Peer {
	return peers.Peer{Name: name, State: st, Since: since, Meta: peers.Meta{
		Proto: peers.ProtocolVersion, Addr: netip.MustParseAddr(underlay), Subnet: netip.MustParsePrefix(subnet),
		SubnetSince: 1, Tunnel: "vxlan", ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"),
	}}
}

func settings(t *testing.T, subnet string) config.Settings {
	t.Helper()
	cfg := config.DefaultConfig()
	cfg.Name = "h1"
	cfg.AdvertiseAddr = "172.30.0.11"
	cfg.Subnet = subnet
	cfg.DeadPeerGrace = time.Minute
	s, err := cfg.Validate()
	if err != nil {
		t.Fatal(err)
	}
	s.UnderlayMTU, s.DatapathType = 1500, "netdev"
	return s
}

func newController(t *testing.T, ep string, s config.Settings, m *fakeMembers) (*Controller, *ovsdb.Client, *fakeKernel) {
	t.Helper()
	return buildController(t, ep, s, m, nil)
}

// dialOVSDB connects fabricd's OVSDB client to ep and waits until it has read the
// Open_vSwitch row (the in-memory server adds it just after it starts).
func dialOVSDB(t *testing.T, ep string) *ovsdb.Client {
	t.Helper()
	ctx := context.Background()
	sw, err := ovsdb.Dial(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sw.Close)
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, err := sw.SystemExternalIDs(ctx); err == nil || time.Now().After(deadline) {
			return sw
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// buildController wires a controller and its endpoint manager over the OVSDB at ep, fake
// host plumbing and flows; clk, when not nil, is the controller's wall clock.
func buildController(t *testing.T, ep string, s config.Settings, m *fakeMembers, clk func() time.Time) (*Controller, *ovsdb.Client, *fakeKernel) {
	t.Helper()
	ctx := context.Background()
	sw := dialOVSDB(t, ep)
	k := &fakeKernel{}
	log := slog.New(slog.DiscardHandler)
	eps := endpoint.New(s, sw, k, log)
	c := New(s, sw, k, flowstest.New(), eps, log)
	eps.SetLoop(c)
	if clk != nil {
		c.now = clk
	}
	if err := c.Init(ctx); err != nil {
		t.Fatal(err)
	}
	c.SetMembership(m)
	return c, sw, k
}

// startOVSDB is an in-memory OVSDB with ovsdbtest's stand-in for ovs-vswitchd, which
// numbers the ports fabricd adds.
func startOVSDB(t *testing.T) string {
	t.Helper()
	ep := ovsdbtest.Start(t)
	ovsdbtest.Vswitchd(t, ep)
	return ep
}

// endpoints is the endpoint manager newController wired to c.
func endpoints(c *Controller) *endpoint.Manager { return c.eps.(*endpoint.Manager) }

func tunnelPeers(t *testing.T, sw *ovsdb.Client) string {
	t.Helper()
	ps, err := sw.Ports(context.Background(), "br-int")
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, p := range ps {
		if p.ExternalIDs[ovsdb.KeyRole] == ovsdb.RoleTunnel {
			out = append(out, p.ExternalIDs[ovsdb.KeyPeer])
		}
	}
	sort.Strings(out)
	return strings.Join(out, ",")
}

func TestReconcileLifecycle(t *testing.T) {
	ctx := context.Background()
	ep := startOVSDB(t)
	now := time.Now()
	m := &fakeMembers{ch: make(chan struct{})}
	m.set(peer("h2", "172.30.0.12", "10.244.2.0/24", peers.StateAlive, now), peer("h3", "172.30.0.13", "10.244.3.0/24", peers.StateAlive, now))
	c, sw, k := newController(t, ep, settings(t, "10.244.1.0/24"), m)

	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := tunnelPeers(t, sw); got != "h2,h3" {
		t.Fatalf("tunnels to %q, want h2,h3", got)
	}
	if len(k.routes) != 2 || k.addrs["fabric0"][0] != netip.MustParsePrefix("10.244.1.1/24") {
		t.Fatalf("routes %v addrs %v", k.routes, k.addrs)
	}
	if def := (natrules.Network{Name: "default", CIDR: netip.MustParsePrefix("10.244.0.0/16"), Slice: netip.MustParsePrefix("10.244.1.0/24")}); !k.nat.Masquerade || len(k.nat.Networks) != 1 || k.nat.Networks[0] != def {
		t.Errorf("NAT rules %+v", k.nat)
	}
	ids, _ := sw.SystemExternalIDs(ctx)
	if ids[KeySubnet] != "10.244.1.0/24" || ids[KeyNode] != "h1" {
		t.Errorf("claim not persisted: %v", ids)
	}

	// Level-triggered: syncing again with the same facts writes nothing anywhere.
	tx, kw := sw.Transactions(), k.writes
	for i := 0; i < 3; i++ {
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if sw.Transactions() != tx || k.writes != kw {
		t.Errorf("no-change syncs wrote: %d OVSDB transactions, %d kernel writes", sw.Transactions()-tx, k.writes-kw)
	}

	// A failed peer keeps its tunnel during the grace; a peer that left loses it at once.
	m.set(peer("h2", "172.30.0.12", "10.244.2.0/24", peers.StateDead, now), peer("h3", "172.30.0.13", "10.244.3.0/24", peers.StateLeft, now))
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := tunnelPeers(t, sw); got != "h2" {
		t.Errorf("after h2 failed and h3 left: tunnels to %q, want h2", got)
	}
	m.set(peer("h2", "172.30.0.12", "10.244.2.0/24", peers.StateDead, now.Add(-2*time.Minute)))
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := tunnelPeers(t, sw); got != "" || len(k.routes) != 0 {
		t.Errorf("after the grace: tunnels %q routes %v", got, k.routes)
	}
	// Both keep their subnets reserved: h2 is still known to gossip, h3 only as retained.
	st := c.Status()
	if st.Subnet != "10.244.1.0/24" || st.MTU != 1450 || len(st.Peers) != 2 || !strings.Contains(st.Peers[0].Note, "dead for more than") ||
		!strings.Contains(st.Peers[0].Note, "subnet retained until") || st.Peers[1].Name != "h3" || st.Peers[1].State != "left" || !strings.Contains(st.Peers[1].Note, "subnet retained until") {
		t.Errorf("status %+v", st)
	}
}

// TestRestartAdoptsWithoutChanges: a new controller on the same OVSDB (fabricd restarted)
// adopts the tunnels and changes nothing, even before gossip has told it anything.
func TestRestartAdoptsWithoutChanges(t *testing.T) {
	ctx := context.Background()
	ep := startOVSDB(t)
	now := time.Now()
	m := &fakeMembers{ch: make(chan struct{})}
	m.set(peer("h2", "172.30.0.12", "10.244.2.0/24", peers.StateAlive, now))
	s := settings(t, "")
	c, sw, _ := newController(t, ep, s, m)
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	claimed := c.Status().Subnet
	if claimed == "" || tunnelPeers(t, sw) != "h2" {
		t.Fatalf("first run: subnet %q tunnels %q", claimed, tunnelPeers(t, sw))
	}

	empty := &fakeMembers{ch: make(chan struct{})} // gossip has not converged yet
	c2, sw2, _ := newController(t, ep, s, empty)
	if c2.Status().Subnet != claimed {
		t.Errorf("restart picked %q, want the persisted %q", c2.Status().Subnet, claimed)
	}
	if got := c2.RejoinAddrs(); !slices.Equal(got, []string{"172.30.0.12"}) {
		t.Errorf("restart would rejoin %v, want the peer its tunnel leads to", got)
	}
	if err := c2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if sw2.Transactions() != 0 {
		t.Errorf("restart sent %d OVSDB transactions", sw2.Transactions())
	}
	if got := tunnelPeers(t, sw2); got != "h2" {
		t.Errorf("restart dropped the tunnel: %q", got)
	}
}

func TestSubnetConflicts(t *testing.T) {
	ctx := context.Background()
	now := time.Now()
	older := peer("h0", "172.30.0.10", "10.244.1.0/24", peers.StateAlive, now)
	older.Meta.SubnetSince = 1 // claimed long before ours

	// A static subnet that an older claim holds: refused.
	m := &fakeMembers{ch: make(chan struct{})}
	m.set(older)
	c, _, _ := newController(t, startOVSDB(t), settings(t, "10.244.1.0/24"), m)
	if err := c.Sync(ctx); !errors.Is(err, ErrSubnetConflict) || !strings.Contains(err.Error(), "h0") {
		t.Errorf("static conflict: %v", err)
	}

	// A claimed subnet that loses: re-picked, persisted and announced.
	m2 := &fakeMembers{ch: make(chan struct{})}
	c2, sw2, _ := newController(t, startOVSDB(t), settings(t, ""), m2)
	if err := c2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	mine := c2.Status().Subnet
	rival := peer("h0", "172.30.0.10", mine, peers.StateAlive, now)
	rival.Meta.SubnetSince = 1
	m2.set(rival)
	if err := c2.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := c2.Status().Subnet; got == mine || got == "" {
		t.Errorf("after losing %s the node holds %q", mine, got)
	}
	if m2.meta.Subnet.String() != c2.Status().Subnet {
		t.Errorf("new claim not announced: %v", m2.meta.Subnet)
	}
	if ids, _ := sw2.SystemExternalIDs(ctx); ids[KeySubnet] != c2.Status().Subnet {
		t.Errorf("new claim not persisted: %v", ids)
	}
}

func attachReq(target, ip, mac string) (r api.AttachRequest) {
	r.Target, r.IP, r.MAC = target, ip, mac
	return r
}

// TestAttachWaitsForFirstReconcile: an attach made right after fabricd started, before the
// bridge exists, is served once the first reconcile has built it, and is refused cleanly
// (nothing created) when the caller gives up first.
func TestAttachWaitsForFirstReconcile(t *testing.T) {
	ctx := context.Background()
	m := &fakeMembers{ch: make(chan struct{})}
	c, sw, _ := newController(t, startOVSDB(t), settings(t, "10.244.1.0/24"), m)
	ns := filepath.Join(t.TempDir(), "netns")
	if err := os.WriteFile(ns, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, err := endpoints(c).Attach(short, attachReq(ns, "", ""))
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("attach before the first reconcile with an expiring context: %v, want deadline exceeded", err)
	}
	if ports, err := sw.Ports(ctx, "br-int"); err == nil && len(ports) > 0 {
		t.Fatalf("a refused attach left ports: %+v", ports)
	}
	done := make(chan error, 1)
	go func() {
		_, err := endpoints(c).Attach(ctx, attachReq(ns, "", ""))
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("attach returned before any reconcile: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("attach after the first reconcile: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("attach still waiting after the first reconcile")
	}
}

// TestPipelineModes: the routed pipeline programs its flows once ovs-vswitchd has numbered
// the ports (here ovsdbtest's stand-in), toward the subnet each tunnel leads to; L2 on the
// same bridge leaves none of ovsfabric's flows and the others alone.
func TestPipelineModes(t *testing.T) {
	ctx := context.Background()
	ep := startOVSDB(t)
	now := time.Now()
	m := &fakeMembers{ch: make(chan struct{})}
	m.set(peer("h2", "172.30.0.12", "10.244.2.0/24", peers.StateAlive, now))
	normal := flows.Flow{Table: 0, Priority: 0, Actions: "NORMAL"}
	of := flowstest.New(normal)
	toPeer := func() bool {
		ours, _ := of.Flows(ctx)
		for _, f := range ours {
			if strings.Contains(f.Match, "nw_dst=10.244.2.0/24") {
				return true
			}
		}
		return false
	}
	run := func(pipeline string) {
		t.Helper()
		s := settings(t, "10.244.1.0/24")
		s.Pipeline = pipeline
		sw, err := ovsdb.Dial(ctx, ep)
		if err != nil {
			t.Fatal(err)
		}
		defer sw.Close()
		k, log := &fakeKernel{}, slog.New(slog.DiscardHandler)
		eps := endpoint.New(s, sw, k, log)
		c := New(s, sw, k, of, eps, log)
		eps.SetLoop(c)
		if err := c.Init(ctx); err != nil {
			t.Fatal(err)
		}
		c.SetMembership(m)
		// The first sync adds the ports; each port's flows follow once ovs-vswitchd (here
		// ovsdbtest.Vswitchd) has numbered it, the gateway's and the tunnel's in any order.
		deadline := time.Now().Add(5 * time.Second)
		for {
			if err := c.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if pipeline == config.PipelineL2 || toPeer() || time.Now().After(deadline) {
				return
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	run(config.PipelineRouted)
	if !toPeer() {
		ours, _ := of.Flows(ctx)
		t.Errorf("routed: no flow toward h2's subnet among %d flows", len(ours))
	}
	run(config.PipelineL2)
	if ours, _ := of.Flows(ctx); len(ours) != 0 {
		t.Errorf("l2: %d of ovsfabric's flows left", len(ours))
	}
	if all := of.All(); len(all) != 1 || all[0].Actions != "NORMAL" {
		t.Errorf("l2: the bridge's own flows changed: %+v", all)
	}
}

// TestPortsAddedBeforeRecorded: an attach's flows go in for the OpenFlow port number its
// port requests before the port is in OVSDB, a reconcile meanwhile keeps them, and they go
// when the attach reports the port was not recorded.
func TestPortsAddedBeforeRecorded(t *testing.T) {
	ctx := context.Background()
	ep := startOVSDB(t)
	m := &fakeMembers{ch: make(chan struct{})}
	m.set(peer("h2", "172.30.0.12", "10.244.2.0/24", peers.StateAlive, time.Now()))
	of := flowstest.New()
	s := settings(t, "10.244.1.0/24")
	s.Pipeline = config.PipelineRouted
	sw, err := ovsdb.Dial(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sw.Close)
	k, log := &fakeKernel{}, slog.New(slog.DiscardHandler)
	eps := endpoint.New(s, sw, k, log)
	c := New(s, sw, k, of, eps, log)
	eps.SetLoop(c)
	if err := c.Init(ctx); err != nil {
		t.Fatal(err)
	}
	c.SetMembership(m)
	has := func(match string) bool {
		ours, _ := of.Flows(ctx)
		return slices.ContainsFunc(ours, func(f flows.Flow) bool { return strings.Contains(f.Match, match) })
	}
	// Until the gateway is numbered and the pipeline's flows are in.
	deadline := time.Now().Add(5 * time.Second)
	for !has("nw_dst=10.244.2.0/24") {
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if time.Now().After(deadline) {
			t.Fatal("the pipeline's flows never came")
		}
		time.Sleep(20 * time.Millisecond)
	}
	ids := map[string]string{ovsdb.KeyOwner: "h1", ovsdb.KeyRole: ovsdb.RoleContainer, ovsdb.KeyIP: "10.244.1.5/24",
		ovsdb.KeyMAC: "02:00:0a:f4:01:05", ovsdb.KeyIfName: "eth0", ovsdb.KeyNetNS: "/var/run/netns/x"}
	port := ovsdb.PortInfo{Name: "vethx", ExternalIDs: ids, IfaceExternalIDs: ids, OfportRequest: endpoint.FirstContainerOfport}
	inPort := fmt.Sprintf("in_port=%d", endpoint.FirstContainerOfport)
	if err := c.PortsAdded(ctx, []ovsdb.PortInfo{port}); err != nil {
		t.Fatal(err)
	}
	if !has(inPort) || !has("dl_dst=02:00:0a:f4:01:05") {
		t.Fatalf("no flows for the new port's requested number (%s)", inPort)
	}
	// A sync while the attach is in flight, after a change it did not make (a new peer),
	// adds that change's flows without dumping the bridge.
	m.set(peer("h2", "172.30.0.12", "10.244.2.0/24", peers.StateAlive, time.Now()), peer("h3", "172.30.0.13", "10.244.3.0/24", peers.StateAlive, time.Now()))
	deadline = time.Now().Add(5 * time.Second)
	for !has("nw_dst=10.244.3.0/24") {
		dumps := of.Dumps()
		if err := c.Sync(ctx); err != nil {
			t.Fatal(err)
		}
		if of.Dumps() != dumps {
			t.Error("a sync dumped the bridge while an attach was adding its flows")
		}
		if time.Now().After(deadline) {
			t.Fatal("the new peer's flows never came while an attach was in flight")
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !has(inPort) {
		t.Error("a reconcile before the port was recorded removed its flows")
	}
	if err := c.PortsRecorded(ctx, nil, []string{port.Name}); err != nil {
		t.Fatal(err)
	}
	if has(inPort) || has("dl_dst=02:00:0a:f4:01:05") {
		t.Error("the flows of a port that was not recorded are left")
	}

	// A port reported recorded keeps its flows through a reconcile planned from a snapshot
	// of the ports read before its transaction (here: one that lacks it).
	ids2 := maps.Clone(ids)
	ids2[ovsdb.KeyIP], ids2[ovsdb.KeyMAC] = "10.244.1.6/24", "02:00:0a:f4:01:06"
	port2 := ovsdb.PortInfo{Name: "vethy", ExternalIDs: ids2, IfaceExternalIDs: ids2, OfportRequest: endpoint.FirstContainerOfport + 1}
	inPort2 := fmt.Sprintf("in_port=%d", endpoint.FirstContainerOfport+1)
	if err := c.PortsAdded(ctx, []ovsdb.PortInfo{port2}); err != nil {
		t.Fatal(err)
	}
	if err := c.PortsRecorded(ctx, []string{port2.Name}, nil); err != nil {
		t.Fatal(err)
	}
	before, err := sw.Ports(ctx, s.Bridge)
	if err != nil {
		t.Fatal(err)
	}
	c.mu.Lock()
	d := c.desired
	c.mu.Unlock()
	c.flowsApplied = nil // a full reconcile, as after --resync
	if _, err := c.applyPipeline(ctx, d, before); err != nil {
		t.Fatal(err)
	}
	if !has(inPort2) {
		t.Error("a reconcile from a snapshot older than the port's transaction removed its flows")
	}
}

package endpoint

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/config"
	"github.com/ovsfabric/ovsfabric/natrules"
	"github.com/ovsfabric/ovsfabric/netplumb"
	"github.com/ovsfabric/ovsfabric/ovsdb"
	"github.com/ovsfabric/ovsfabric/ovsdb/ovsdbtest"
)

// fakeHost records what endpoints ask of the host. The real one is proven in the lab; here
// it lets the logic run without root: a "network namespace" is any existing file.
type fakeHost struct {
	mu  sync.Mutex
	nat natrules.Rules
	// veths are the host ends that exist; attached every attachment asked for.
	veths    map[string]bool
	attached []netplumb.Attachment
	// attachErr, when set, is what Attach fails with (before making anything).
	attachErr error
}

func (k *fakeHost) Attach(a netplumb.Attachment) (netplumb.AttachResult, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.attachErr != nil {
		return netplumb.AttachResult{}, k.attachErr
	}
	if k.veths == nil {
		k.veths = map[string]bool{}
	}
	k.veths[a.HostIf] = true
	k.attached = append(k.attached, a)
	return netplumb.AttachResult{MAC: a.MAC, HostIf: a.HostIf}, nil
}
func (k *fakeHost) Detach(hostIf string) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	delete(k.veths, hostIf)
	return nil
}
func (k *fakeHost) hasVeth(hostIf string) bool {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.veths[hostIf]
}
func (k *fakeHost) NetNSExists(p string) bool               { _, err := os.Stat(p); return err == nil }
func (k *fakeHost) ForgetNeighbor(string, netip.Addr) error { return nil }
func (k *fakeHost) ReconcileNAT(r natrules.Rules) (bool, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	k.nat = r
	return false, nil
}

// fakeLoop is a reconcile loop that has built the bridge and holds subnet. It records the
// batches of ports whose flows it was asked to add; hold, when set, is called first.
type fakeLoop struct {
	subnet netip.Prefix
	// nets are the networks besides the default one, by name.
	nets   map[string]Network
	sw     *ovsdb.Client
	bridge string

	mu               sync.Mutex
	added            [][]string
	recorded, failed []string
	hold             func(ports []string)
}

func (l *fakeLoop) WaitReady(context.Context) error { return nil }
func (l *fakeLoop) Subnet() netip.Prefix            { return l.subnet }
func (l *fakeLoop) Kick()                           {}
func (l *fakeLoop) Networks() []Network {
	out := []Network{{Name: DefaultNetwork, CIDR: netip.MustParsePrefix("10.244.0.0/16"), Slice: l.subnet}}
	for _, n := range l.nets {
		out = append(out, n)
	}
	return out
}
func (l *fakeLoop) Network(name string) (Network, error) {
	if name == DefaultNetwork {
		return Network{Name: name, CIDR: netip.MustParsePrefix("10.244.0.0/16"), Slice: l.subnet}, nil
	}
	if n, ok := l.nets[name]; ok {
		return n, nil
	}
	return Network{}, api.Errorf(api.ErrNotFound, "no network %q", name)
}
func (l *fakeLoop) PortsAdded(ctx context.Context, ports []ovsdb.PortInfo) error {
	names := make([]string, len(ports))
	for k, p := range ports {
		names[k] = p.Name
	}
	l.mu.Lock()
	hold := l.hold
	l.mu.Unlock()
	if hold != nil {
		hold(names)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.added = append(l.added, names)
	return nil
}

func (l *fakeLoop) PortsRecorded(ctx context.Context, recorded, failed []string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.recorded = append(l.recorded, recorded...)
	l.failed = append(l.failed, failed...)
	return nil
}

func settings(t *testing.T) config.Settings {
	t.Helper()
	cfg := config.DefaultConfig()
	cfg.Name = "h1"
	cfg.AdvertiseAddr = "172.30.0.11"
	cfg.Subnet = "10.244.1.0/24"
	s, err := cfg.Validate()
	if err != nil {
		t.Fatal(err)
	}
	s.UnderlayMTU, s.DatapathType = 1500, "netdev"
	return s
}

// newManager returns a manager for s on an in-memory OVSDB holding the bridge and gateway
// port the loop would have made, with ovsdbtest's stand-in for ovs-vswitchd.
func newManager(t *testing.T, s config.Settings) (*Manager, *ovsdb.Client, *fakeHost) {
	t.Helper()
	ctx := context.Background()
	ep := ovsdbtest.Start(t)
	ovsdbtest.Vswitchd(t, ep)
	sw, err := ovsdb.Dial(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(sw.Close)
	if err := sw.EnsureBridge(ctx, ovsdb.BridgeSpec{Name: s.Bridge, DatapathType: "netdev", FailMode: "standalone", Owner: s.Name}); err != nil {
		t.Fatal(err)
	}
	if err := sw.EnsurePort(ctx, s.Bridge, ovsdb.PortSpec{Name: s.GatewayPort, Type: "internal", Owner: s.Name, Role: ovsdb.RoleGateway}); err != nil {
		t.Fatal(err)
	}
	k := &fakeHost{}
	m := New(s, sw, k, slog.New(slog.DiscardHandler))
	m.etcNetns = t.TempDir() // never the machine's /etc/netns
	m.SetLoop(&fakeLoop{subnet: s.StaticSubnet, sw: sw, bridge: s.Bridge})
	return m, sw, k
}

func TestAttachBadInputChangesNothing(t *testing.T) {
	ctx := context.Background()
	c, sw, _ := newManager(t, settings(t))
	ns := filepath.Join(t.TempDir(), "netns") // stands for a netns path (the fake kernel only checks existence)
	if err := os.WriteFile(ns, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	ok, err := c.Attach(ctx, attachReq(ns, "10.244.1.9", ""))
	if err != nil || ok.IP != "10.244.1.9/24" || ok.Gateway != "10.244.1.1" {
		t.Fatalf("attach: %+v %v", ok, err)
	}
	again, err := c.Attach(ctx, attachReq(ns, "", ""))
	if err != nil || !again.Unchanged || again.IP != ok.IP {
		t.Errorf("repeat attach: %+v %v", again, err)
	}
	other := filepath.Join(t.TempDir(), "other")
	_ = os.WriteFile(other, nil, 0o600)
	tx := sw.Transactions()
	named := filepath.Join(t.TempDir(), "blue") // a named netns as `ip netns add` makes it
	_ = os.WriteFile(named, nil, 0o600)
	c.netnsDir = filepath.Dir(named)
	for _, tc := range []struct {
		name     string
		target   string
		ip, mac  string
		wantCode int
		say      string
	}{
		{"empty target", "", "", "", 400, ""},
		{"missing path", "/nonexistent/netns", "", "", 404, ""},
		{"bad pid", "pid:abc", "", "", 400, ""},
		{"ip outside", other, "10.244.2.9", "", 400, "outside"},
		{"ip taken", other, "10.244.1.9", "", 400, "in use by " + ns + " (port "},
		{"gateway", other, "10.244.1.1", "", 400, "gateway"},
		{"broadcast", other, "10.244.1.255", "", 400, "broadcast"},
		{"malformed ip", other, "10.244.1", "", 400, "not an IP"},
		{"ip with another prefix length", other, "10.244.1.20/16", "", 400, "without /16"},
		{"ip/24 outside", other, "10.244.2.9/24", "", 400, "outside"},
		{"malformed ip prefix", other, "10.244.1.20/40", "", 400, "not an IP"},
		{"bad mac", other, "", "nope", 400, "MAC"},
		{"multicast mac", other, "", "01:00:5e:00:00:01", 400, "unicast"},
		{"re-attach with other ip", ns, "10.244.1.10", "", 409, "detach it first"},
		{"unknown container", "nginx", "", "", 404, "not found"},
		{"netns name without path", "blue", "", "", 404, "attach " + named},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := c.Attach(ctx, attachReq(tc.target, tc.ip, tc.mac))
			if err == nil || api.StatusCode(err) != tc.wantCode || !strings.Contains(err.Error(), tc.say) {
				t.Errorf("err %v (code %d), want code %d saying %q", err, api.StatusCode(err), tc.wantCode, tc.say)
			}
		})
	}
	if sw.Transactions() != tx {
		t.Errorf("bad input sent %d OVSDB transactions", sw.Transactions()-tx)
	}
	as, _ := c.Attachments(ctx)
	if len(as) != 1 {
		t.Errorf("attachments after bad input: %+v", as)
	}
}

// TestAttachIPWithPrefix: --ip ADDR/BITS, the pipework habit, is taken when BITS is the
// subnet's prefix length.
func TestAttachIPWithPrefix(t *testing.T) {
	ctx := context.Background()
	c, _, _ := newManager(t, settings(t))
	ns := filepath.Join(t.TempDir(), "netns")
	_ = os.WriteFile(ns, nil, 0o600)
	a, err := c.Attach(ctx, attachReq(ns, "10.244.1.60/24", ""))
	if err != nil || a.IP != "10.244.1.60/24" {
		t.Fatalf("attach --ip 10.244.1.60/24: %+v %v", a, err)
	}
	if again, err := c.Attach(ctx, attachReq(ns, "10.244.1.60/24", "")); err != nil || !again.Unchanged {
		t.Errorf("repeat: %+v %v", again, err)
	}
}

// TestPublishRefusesFabricdPorts: the host ports fabricd itself listens on (gossip TCP and
// UDP, metrics) and DNS are refused with a 409 naming their use, and change nothing; other
// ports publish, and detach reports the published ports it removed.
func TestPublishRefusesFabricdPorts(t *testing.T) {
	ctx := context.Background()
	s := settings(t)
	s.MetricsAddr = ":9464"
	c, sw, k := newManager(t, s)
	ns := filepath.Join(t.TempDir(), "web")
	_ = os.WriteFile(ns, nil, 0o600)
	if _, err := c.Attach(ctx, attachReq(ns, "", "")); err != nil {
		t.Fatal(err)
	}
	tx := sw.Transactions()
	for _, tc := range []struct{ spec, say string }{
		{"7946:80", "gossip port (--gossip-port 7946)"},
		{"7946:53/udp", "gossip port"},
		{"9464:80", "metrics port (--metrics-addr :9464)"},
		{"53:53/udp", "DNS"},
		{"53:8053", "DNS"},
	} {
		_, err := c.Publish(ctx, ns, tc.spec)
		if err == nil || api.StatusCode(err) != 409 || !strings.Contains(err.Error(), tc.say) {
			t.Errorf("publish %s: %v (code %d), want 409 saying %q", tc.spec, err, api.StatusCode(err), tc.say)
		}
	}
	if sw.Transactions() != tx {
		t.Errorf("refused publishes sent %d OVSDB transactions", sw.Transactions()-tx)
	}
	// UDP on the metrics port is not fabricd's: it publishes.
	for _, spec := range []string{"8080:80", "9464:9464/udp"} {
		if _, err := c.Publish(ctx, ns, spec); err != nil {
			t.Errorf("publish %s: %v", spec, err)
		}
	}
	k.mu.Lock()
	r := k.nat
	k.mu.Unlock()
	if len(r.Publish) != 2 {
		t.Errorf("NAT rules after publishing: %+v", r.Publish)
	}
	if _, err := c.Detach(ctx, api.DetachRequest{Target: ns, Network: "blue"}); api.StatusCode(err) != 404 {
		t.Errorf("detach from a network it is not on: %v, want not found", err)
	}
	as, err := c.Detach(ctx, api.DetachRequest{Target: ns})
	if err != nil || len(as) != 1 || strings.Join(as[0].Published, ",") != "tcp:8080:80,udp:9464:9464" {
		t.Errorf("detach: %+v %v, want the published ports it removed", as, err)
	}
}

func TestParsePortSpec(t *testing.T) {
	for _, tc := range []struct {
		spec string
		want string
		ok   bool
	}{
		{"8080:80", "tcp:8080:80", true},
		{"5353:53/udp", "udp:5353:53", true},
		{"8080:80/TCP", "tcp:8080:80", true},
		{"8080", "", false},
		{"0:80", "", false},
		{"70000:80", "", false},
		{"8080:80/sctp", "", false},
		{"a:b", "", false},
	} {
		m, err := ParsePortSpec(tc.spec)
		if (err == nil) != tc.ok || (tc.ok && m.String() != tc.want) {
			t.Errorf("ParsePortSpec(%q) = %v, %v; want %q ok=%v", tc.spec, m, err, tc.want, tc.ok)
		}
	}
}

func attachReq(target, ip, mac string) (r api.AttachRequest) {
	r.Target, r.IP, r.MAC = target, ip, mac
	return r
}

// TestAttachForeignPortName: a port of the target's name that someone else owns is a
// conflict (409), and stays as it is.
func TestAttachForeignPortName(t *testing.T) {
	ctx := context.Background()
	c, sw, _ := newManager(t, settings(t))
	ns := filepath.Join(t.TempDir(), "netns")
	_ = os.WriteFile(ns, nil, 0o600)
	port := portNameOf(api.Target{Key: ns}, DefaultNetwork)
	if err := sw.EnsurePort(ctx, "br-int", ovsdb.PortSpec{Name: port, Owner: "someone-else", Role: ovsdb.RoleContainer}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Attach(ctx, attachReq(ns, "", ""))
	if err == nil || api.StatusCode(err) != 409 || !strings.Contains(err.Error(), port) {
		t.Fatalf("attach over a foreign port: %v (code %d), want 409 naming %s", err, api.StatusCode(err), port)
	}
	ports, _ := sw.Ports(ctx, "br-int")
	for _, p := range ports {
		if p.Name == port && p.Owner() != "someone-else" {
			t.Errorf("foreign port taken over: %+v", p)
		}
	}
}

// TestRecordCodec: a record survives the trip through external_ids, and what the port
// holds that does not parse is kept, not dropped.
func TestRecordCodec(t *testing.T) {
	mac, _ := net.ParseMAC("02:00:0a:f4:01:05")
	for _, r := range []Record{
		{Port: "vethc1", Network: DefaultNetwork, Container: "web", ID: "abc", NetNS: "/proc/7/ns/net", IfName: "eth0",
			Addr: netip.MustParsePrefix("10.244.1.5/24"), MAC: mac,
			Published: []PortMapping{{"tcp", 8080, 80}, {"udp", 5353, 53}}, OfportRequest: FirstContainerOfport},
		{Port: "vethc2", Network: "blue", Container: "db", NetNS: "/var/run/netns/db", IfName: "eth1",
			Addr: netip.MustParsePrefix("10.9.0.2/16"), MAC: mac, Unreadable: []string{"bogus"}},
		{Port: "vethc3", Network: DefaultNetwork, Container: "x", IfName: "eth0"},
	} {
		spec := r.PortSpec("h1")
		if r.Network == DefaultNetwork && spec.ExternalIDs[ovsdb.KeyNetwork] != "" {
			t.Errorf("%s: the default network is written (%v): keys must stay as they were", r.Port, spec.ExternalIDs)
		}
		ids := map[string]string{ovsdb.KeyOwner: spec.Owner, ovsdb.KeyRole: spec.Role}
		for k, v := range spec.ExternalIDs {
			ids[k] = v
		}
		got, ok := Decode(ovsdb.PortInfo{Name: spec.Name, ExternalIDs: ids, OfportRequest: spec.OfportRequest}, "h1")
		if !ok || !reflect.DeepEqual(got, r) {
			t.Errorf("round trip:\n got %+v\nwant %+v", got, r)
		}
		if _, ok := Decode(ovsdb.PortInfo{Name: spec.Name, ExternalIDs: ids}, "h2"); ok {
			t.Errorf("%s: decoded as another owner's", r.Port)
		}
	}
}

// FuzzDecodeRecord: whatever a port's external_ids hold, Decode does not panic, and what
// it reads encodes back to ids that decode to the same record.
func FuzzDecodeRecord(f *testing.F) {
	f.Add("10.244.1.5/24", "02:00:0a:f4:01:05", "tcp:8080:80,udp:53:53", "")
	f.Add("garbage", "nope", ",,:", "blue")
	f.Fuzz(func(t *testing.T, ip, mac, pub, network string) {
		ids := map[string]string{ovsdb.KeyOwner: "h1", ovsdb.KeyRole: ovsdb.RoleContainer, ovsdb.KeyIP: ip, ovsdb.KeyMAC: mac, ovsdb.KeyPublish: pub, ovsdb.KeyNetwork: network}
		r, ok := Decode(ovsdb.PortInfo{Name: "p", ExternalIDs: ids}, "h1")
		if !ok {
			t.Fatal("not decoded")
		}
		spec := r.PortSpec("h1")
		spec.ExternalIDs[ovsdb.KeyOwner], spec.ExternalIDs[ovsdb.KeyRole] = "h1", ovsdb.RoleContainer
		again, _ := Decode(ovsdb.PortInfo{Name: "p", ExternalIDs: spec.ExternalIDs}, "h1")
		slices.Sort(r.Unreadable)
		slices.Sort(again.Unreadable)
		if !reflect.DeepEqual(again, r) {
			t.Fatalf("re-encoded record differs:\n%+v\n%+v", again, r)
		}
	})
}

// TestSyncPrunesFromSnapshot: Sync removes the endpoints of a snapshot whose namespace is
// gone and sets NAT for the rest; a snapshot older than a publish changes nothing.
func TestSyncPrunesFromSnapshot(t *testing.T) {
	ctx := context.Background()
	c, sw, k := newManager(t, settings(t))
	dir := t.TempDir()
	web, gone := filepath.Join(dir, "web"), filepath.Join(dir, "gone")
	for _, ns := range []string{web, gone} {
		_ = os.WriteFile(ns, nil, 0o600)
		if _, err := c.Attach(ctx, attachReq(ns, "", "")); err != nil {
			t.Fatal(err)
		}
	}
	snapshot := func() (uint64, []Record) {
		gen := c.Generation()
		ports, err := sw.Ports(ctx, "br-int")
		if err != nil {
			t.Fatal(err)
		}
		return gen, Records(ports, "h1")
	}
	gen, rs := snapshot()
	if _, err := c.Publish(ctx, web, "8080:80"); err != nil {
		t.Fatal(err)
	}
	_ = os.Remove(gone)
	if kept, err := c.Sync(ctx, gen, rs); err != nil || len(kept) != 2 {
		t.Fatalf("sync of a snapshot older than a publish: %d kept, %v; want it left alone", len(kept), err)
	}
	if as, _ := c.Attachments(ctx); len(as) != 2 {
		t.Fatalf("stale snapshot pruned: %+v", as)
	}
	gen, rs = snapshot()
	kept, err := c.Sync(ctx, gen, rs)
	if err != nil || len(kept) != 1 || kept[0].NetNS != web {
		t.Fatalf("sync: %+v, %v; want only %s", kept, err, web)
	}
	if as, _ := c.Attachments(ctx); len(as) != 1 || as[0].NetNS != web {
		t.Errorf("after the sync: %+v", as)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if len(k.nat.Publish) != 1 || k.nat.Publish[0].HostPort != 8080 {
		t.Errorf("NAT after the sync: %+v", k.nat.Publish)
	}
}

func TestAttachSeveralNetworks(t *testing.T) {
	ctx := context.Background()
	c, _, k := newManager(t, settings(t))
	blue := Network{Name: "blue", CIDR: netip.MustParsePrefix("10.50.0.0/16"), Slice: netip.MustParsePrefix("10.50.7.0/24")}
	c.loop.(*fakeLoop).nets = map[string]Network{"blue": blue}
	ns := filepath.Join(t.TempDir(), "netns")
	if err := os.WriteFile(ns, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Attach(ctx, api.AttachRequest{Target: ns, Network: "red"}); api.StatusCode(err) != 404 {
		t.Fatalf("attach to an unknown network: %v (code %d), want 404", err, api.StatusCode(err))
	}
	first, err := c.Attach(ctx, api.AttachRequest{Target: ns, Network: "blue"})
	if err != nil || first.IfName != "eth0" || first.IP != "10.50.7.2/24" || first.Network != "blue" || first.Gateway != "10.50.7.1" {
		t.Fatalf("first attach: %+v %v", first, err)
	}
	if _, err := c.Attach(ctx, api.AttachRequest{Target: ns, IfName: "eth0"}); api.StatusCode(err) != 409 {
		t.Fatalf("second network on a taken interface name: %v, want 409", err)
	}
	second, err := c.Attach(ctx, api.AttachRequest{Target: ns})
	if err != nil || second.IfName != "eth1" || second.Network != DefaultNetwork || second.Port == first.Port {
		t.Fatalf("second attach: %+v %v", second, err)
	}
	if again, err := c.Attach(ctx, api.AttachRequest{Target: ns, Network: "blue"}); err != nil || !again.Unchanged || again.Port != first.Port {
		t.Fatalf("repeated attach: %+v %v, want it unchanged", again, err)
	}
	k.mu.Lock()
	atts := slices.Clone(k.attached)
	k.mu.Unlock()
	if len(atts) != 2 || len(atts[0].Routes) != 0 || len(atts[1].Routes) != 1 || atts[1].Routes[0] != netip.MustParsePrefix("10.244.0.0/16") {
		t.Fatalf("routes asked of the kernel: %+v; want the default route on the first interface only, the network on the second", atts)
	}
	as, err := c.Detach(ctx, api.DetachRequest{Target: ns, Network: "blue"})
	if err != nil || len(as) != 1 || as[0].Network != "blue" {
		t.Fatalf("detach from blue: %+v %v", as, err)
	}
	if _, err := c.Detach(ctx, api.DetachRequest{Target: ns, Network: "blue"}); api.StatusCode(err) != 404 {
		t.Fatalf("detach from blue again: %v, want 404", err)
	}
	as, err = c.Detach(ctx, api.DetachRequest{Target: ns})
	if err != nil || len(as) != 1 || as[0].Network != DefaultNetwork || k.hasVeth(second.Port) {
		t.Fatalf("detach of the rest: %+v %v", as, err)
	}
}

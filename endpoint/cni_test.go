package endpoint

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/netplumb"
	"github.com/ovsfabric/ovsfabric/ovsdb"
)

func cniReq(ns, id, ifname string) api.CNIRequest {
	return api.CNIRequest{ContainerID: id, IfName: ifname, NetNS: ns, Network: DefaultNetwork, Config: "fab"}
}

func TestCNIAddDelGC(t *testing.T) {
	ctx := context.Background()
	m, sw, k := newManager(t, settings(t))
	ns := filepath.Join(t.TempDir(), "netns")
	if err := os.WriteFile(ns, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	req := cniReq(ns, "c0ffee", "eth0")
	req.IP, req.Publish, req.Aliases = "10.244.1.20", []string{"8080:80/tcp"}, []string{"web", "www"}
	res, err := m.CNIAdd(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	if res.IP != "10.244.1.20/24" || res.Gateway != "10.244.1.1" || res.Network != DefaultNetwork || res.ID != "c0ffee" || res.Container != "cni-c0ffee" {
		t.Errorf("add result %+v", res)
	}
	if len(k.nat.Publish) != 1 || k.nat.Publish[0].HostPort != 8080 {
		t.Errorf("NAT after add: %+v", k.nat.Publish)
	}
	// A second interface of the same container is another endpoint.
	res2, err := m.CNIAdd(ctx, cniReq(ns, "c0ffee", "net1"))
	if err != nil || res2.Port == res.Port {
		t.Fatalf("second interface: %+v %v", res2, err)
	}
	// One made through another CNI configuration of the same network, which GC of "fab"
	// must leave alone.
	beefNS := filepath.Join(t.TempDir(), "beef")
	_ = os.WriteFile(beefNS, nil, 0o600)
	otherConf := cniReq(beefNS, "beef", "eth0")
	otherConf.Config = "other"
	if _, err := m.CNIAdd(ctx, otherConf); err != nil {
		t.Fatal(err)
	}
	// An endpoint attached by fabricctl, which GC must leave alone.
	other := filepath.Join(t.TempDir(), "other")
	_ = os.WriteFile(other, nil, 0o600)
	if _, err := m.Attach(ctx, attachReq(other, "", "")); err != nil {
		t.Fatal(err)
	}
	rs, _ := m.records(ctx)
	r, ok := cniRecord(rs, DefaultNetwork, "c0ffee/eth0")
	if !ok || !reflect.DeepEqual(r.Aliases, []string{"web", "www"}) || len(r.Published) != 1 {
		t.Fatalf("recorded endpoint %+v %v", r, ok)
	}

	tx := sw.Transactions()
	_, err = m.CNIAdd(ctx, req)
	if api.CNICode(err) != api.CNIErrExists || !errors.Is(err, api.ErrConflict) {
		t.Errorf("ADD twice: %v (code %d)", err, api.CNICode(err))
	}
	if sw.Transactions() != tx {
		t.Error("refused ADD wrote to OVSDB")
	}

	gc, err := m.CNIGC(ctx, api.CNIGCRequest{Network: DefaultNetwork, Config: "fab", Valid: []api.CNIGCItem{{ContainerID: "c0ffee", IfName: "eth0"}}})
	if err != nil || !reflect.DeepEqual(gc.Removed, []string{"c0ffee/net1"}) {
		t.Errorf("gc: %+v %v", gc, err)
	}
	if err := m.CNIDel(ctx, req); err != nil {
		t.Fatal(err)
	}
	if len(k.nat.Publish) != 0 {
		t.Errorf("NAT after del: %+v", k.nat.Publish)
	}
	for _, again := range []api.CNIRequest{req, {ContainerID: "gone", IfName: "eth0", Network: DefaultNetwork}, {ContainerID: "x", IfName: "eth0", Network: "nosuch"}} {
		if err := m.CNIDel(ctx, again); err != nil {
			t.Errorf("DEL %+v is not idempotent: %v", again, err)
		}
	}
	rs, _ = m.records(ctx)
	if len(rs) != 2 || rs[0].CNIKey != "" && rs[0].CNIKey != "beef/eth0" || rs[1].CNIKey != "" && rs[1].CNIKey != "beef/eth0" {
		t.Errorf("left after DEL and GC: %+v", rs)
	}
}

func TestCNIAddErrors(t *testing.T) {
	ctx := context.Background()
	m, sw, _ := newManager(t, settings(t))
	ns := filepath.Join(t.TempDir(), "netns")
	_ = os.WriteFile(ns, nil, 0o600)
	with := func(f func(*api.CNIRequest)) api.CNIRequest {
		r := cniReq(ns, "abc", "eth0")
		f(&r)
		return r
	}
	for _, tc := range []struct {
		name string
		req  api.CNIRequest
		code uint
		kind error
	}{
		{"unknown network", with(func(r *api.CNIRequest) { r.Network = "blue" }), api.CNIErrUnknownNetwork, api.ErrNotFound},
		{"no netns", with(func(r *api.CNIRequest) { r.NetNS = ns + "-gone" }), api.CNIErrUnknownContainer, api.ErrNotFound},
		{"IP outside the slice", with(func(r *api.CNIRequest) { r.IP = "10.244.9.5" }), api.CNIErrAddress, api.ErrInvalid},
		{"IP is the gateway", with(func(r *api.CNIRequest) { r.IP = "10.244.1.1" }), api.CNIErrAddress, api.ErrInvalid},
		{"bad IP", with(func(r *api.CNIRequest) { r.IP = "nope" }), api.CNIErrAddress, api.ErrInvalid},
		{"bad port mapping", with(func(r *api.CNIRequest) { r.Publish = []string{"0:80/tcp"} }), api.CNIErrPortMapping, api.ErrInvalid},
		{"reserved host port", with(func(r *api.CNIRequest) { r.Publish = []string{"53:53/udp"} }), api.CNIErrPortMapping, api.ErrConflict},
		{"bad alias", with(func(r *api.CNIRequest) { r.Aliases = []string{"a,b"} }), api.CNIErrInvalidConfig, api.ErrInvalid},
		{"no container ID", with(func(r *api.CNIRequest) { r.ContainerID = "" }), api.CNIErrInvalidEnv, api.ErrInvalid},
		{"bad ifname", with(func(r *api.CNIRequest) { r.IfName = "a/b" }), api.CNIErrInvalidEnv, api.ErrInvalid},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tx := sw.Transactions()
			_, err := m.CNIAdd(ctx, tc.req)
			if api.CNICode(err) != tc.code || !errors.Is(err, tc.kind) {
				t.Errorf("got %v (code %d), want code %d of kind %v", err, api.CNICode(err), tc.code, tc.kind)
			}
			if sw.Transactions() != tx {
				t.Error("a refused ADD wrote to OVSDB")
			}
		})
	}
	if rs, _ := m.records(ctx); len(rs) != 0 {
		t.Errorf("refused ADDs left %+v", rs)
	}
}

func TestCNICheckWithoutEndpoint(t *testing.T) {
	m, _, _ := newManager(t, settings(t))
	_, err := m.CNICheck(context.Background(), cniReq("/nonexistent", "abc", "eth0"))
	if api.CNICode(err) != api.CNIErrCheckFailed {
		t.Errorf("check of nothing: %v", err)
	}
}

func TestRecordCNIRoundTrip(t *testing.T) {
	r := Record{Port: "vfabc", Network: DefaultNetwork, Container: "c", NetNS: "/x", IfName: "eth0", CNIKey: "id/eth0", CNIConfig: "fab", Aliases: []string{"a", "b"},
		Routes: []netip.Prefix{netip.MustParsePrefix("10.50.0.0/16"), netip.MustParsePrefix("10.51.0.0/16")}}
	spec := r.PortSpec("h1")
	if spec.ExternalIDs[ovsdb.KeyCNI] != "id/eth0" || spec.ExternalIDs[ovsdb.KeyAliases] != "a,b" || spec.ExternalIDs[ovsdb.KeyRoutes] != "10.50.0.0/16,10.51.0.0/16" {
		t.Errorf("external_ids %v", spec.ExternalIDs)
	}
	spec.ExternalIDs[ovsdb.KeyOwner], spec.ExternalIDs[ovsdb.KeyRole] = "h1", ovsdb.RoleContainer
	got, ok := Decode(ovsdb.PortInfo{Name: spec.Name, ExternalIDs: spec.ExternalIDs}, "h1")
	if !ok || got.CNIKey != r.CNIKey || got.CNIConfig != "fab" || !reflect.DeepEqual(got.Aliases, r.Aliases) || !reflect.DeepEqual(got.Routes, r.Routes) {
		t.Errorf("decoded %+v", got)
	}
}

// TestCNINetworks: a container joins two networks through two CNI configurations, as a
// runtime does (eth0 on blue, net1 on default): each endpoint is keyed by (container ID,
// ifname) on its network, with its own port; the first carries the default route, the
// second routes only its network; addresses come from each network's slice; the same key
// on another network is refused; DEL and GC work per (key, network).
func TestCNINetworks(t *testing.T) {
	ctx := context.Background()
	m, sw, k := newManager(t, settings(t))
	blue := Network{Name: "blue", CIDR: netip.MustParsePrefix("10.50.0.0/16"), Slice: netip.MustParsePrefix("10.50.7.0/24")}
	red := Network{Name: "red", CIDR: netip.MustParsePrefix("10.60.0.0/16"), Slice: netip.MustParsePrefix("10.60.2.0/24"), Internal: true}
	m.loop.(*fakeLoop).nets = map[string]Network{"blue": blue, "red": red}
	ns := filepath.Join(t.TempDir(), "netns")
	if err := os.WriteFile(ns, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	onBlue := cniReq(ns, "c0ffee", "eth0")
	onBlue.Network, onBlue.Config = "blue", "blue"
	tx := sw.Transactions()
	for _, tc := range []struct {
		name string
		f    func(*api.CNIRequest)
		code uint
		msg  string
	}{
		{"IP in default's slice", func(r *api.CNIRequest) { r.IP = "10.244.1.9" }, api.CNIErrAddress, "outside this host's slice 10.50.7.0/24 of network blue"},
		{"IP in blue outside the slice", func(r *api.CNIRequest) { r.IP = "10.50.8.9" }, api.CNIErrAddress, "outside this host's slice 10.50.7.0/24"},
		{"unknown network", func(r *api.CNIRequest) { r.Network = "green" }, api.CNIErrUnknownNetwork, `unknown network "green"`},
		{"ports on an internal network", func(r *api.CNIRequest) { r.Network, r.Publish = "red", []string{"8080:80"} }, api.CNIErrPortMapping, "internal"},
	} {
		req := onBlue
		tc.f(&req)
		if _, err := m.CNIAdd(ctx, req); api.CNICode(err) != tc.code || err == nil || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("%s: %v (code %d), want code %d with %q", tc.name, err, api.CNICode(err), tc.code, tc.msg)
		}
	}
	if sw.Transactions() != tx {
		t.Error("refused ADDs wrote to OVSDB")
	}

	onBlue.IP = "10.50.7.9"
	b, err := m.CNIAdd(ctx, onBlue)
	if err != nil || b.IP != "10.50.7.9/24" || b.Gateway != "10.50.7.1" || b.Network != "blue" || b.IfName != "eth0" ||
		!reflect.DeepEqual(b.Routes, []string{"0.0.0.0/0"}) || b.Nameserver != "10.50.7.1" {
		t.Fatalf("ADD on blue: %+v %v", b, err)
	}
	onDefault := cniReq(ns, "c0ffee", "net1")
	d, err := m.CNIAdd(ctx, onDefault)
	if err != nil || d.IfName != "net1" || d.Network != DefaultNetwork || d.Port == b.Port || !reflect.DeepEqual(d.Routes, []string{"10.244.0.0/16"}) ||
		d.Gateway != "10.244.1.1" || d.Nameserver != "10.244.1.1" {
		t.Fatalf("ADD on default as net1: %+v %v", d, err)
	}
	k.mu.Lock()
	atts := slices.Clone(k.attached)
	k.mu.Unlock()
	if len(atts) != 2 || len(atts[0].Routes) != 0 || !reflect.DeepEqual(atts[1].Routes, []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}) {
		t.Errorf("routes asked of the kernel: %+v", atts)
	}
	// The port records the routes, so that CHECK after a restart knows them.
	rs, _ := m.records(ctx)
	if r, ok := cniRecord(rs, DefaultNetwork, "c0ffee/net1"); !ok || !reflect.DeepEqual(r.Routes, []netip.Prefix{netip.MustParsePrefix("10.244.0.0/16")}) {
		t.Errorf("recorded %+v %v", r, ok)
	}
	if r, ok := cniRecord(rs, "blue", "c0ffee/eth0"); !ok || len(r.Routes) != 0 || r.Port != portNameOf(cniTarget(onBlue), "blue") {
		t.Errorf("recorded %+v %v", r, ok)
	}
	// The same key on another network: the interface exists.
	again := onBlue
	again.Network, again.IP = DefaultNetwork, ""
	if _, err := m.CNIAdd(ctx, again); api.CNICode(err) != api.CNIErrExists || !strings.Contains(err.Error(), "already attached to network blue") {
		t.Errorf("same key on another network: %v (code %d)", err, api.CNICode(err))
	}
	// DEL and GC of the key on the wrong network touch nothing.
	wrong := onDefault
	wrong.Network = "blue"
	if err := m.CNIDel(ctx, wrong); err != nil {
		t.Fatal(err)
	}
	if gc, err := m.CNIGC(ctx, api.CNIGCRequest{Network: "blue", Config: "blue", Valid: []api.CNIGCItem{{ContainerID: "c0ffee", IfName: "eth0"}}}); err != nil || len(gc.Removed) != 0 {
		t.Errorf("GC of blue with its endpoint valid: %+v %v", gc, err)
	}
	if rs, _ := m.records(ctx); len(rs) != 2 {
		t.Fatalf("after DEL/GC on the wrong network: %+v", rs)
	}
	if gc, err := m.CNIGC(ctx, api.CNIGCRequest{Network: "blue", Config: "blue"}); err != nil || !reflect.DeepEqual(gc.Removed, []string{"c0ffee/eth0"}) {
		t.Errorf("GC of blue: %+v %v", gc, err)
	}
	if err := m.CNIDel(ctx, onDefault); err != nil {
		t.Fatal(err)
	}
	if rs, _ := m.records(ctx); len(rs) != 0 {
		t.Errorf("left: %+v", rs)
	}
	// DEL on a network that no longer exists has nothing to do.
	gone := onBlue
	gone.Network = "green"
	if err := m.CNIDel(ctx, gone); err != nil {
		t.Errorf("DEL on an unknown network: %v", err)
	}
}

func TestCNIStatusPerNetwork(t *testing.T) {
	m, _, _ := newManager(t, settings(t))
	m.loop.(*fakeLoop).nets = map[string]Network{"blue": {Name: "blue", CIDR: netip.MustParsePrefix("10.50.0.0/16"), Slice: netip.MustParsePrefix("10.50.7.0/24")}}
	ctx := context.Background()
	for _, n := range []string{"", DefaultNetwork, "blue"} {
		if err := m.CNIStatus(ctx, n); err != nil {
			t.Errorf("STATUS %q: %v", n, err)
		}
	}
	if err := m.CNIStatus(ctx, "green"); api.CNICode(err) != api.CNIErrNotAvailable || !errors.Is(err, api.ErrUnavailable) || !strings.Contains(err.Error(), `unknown network "green"`) {
		t.Errorf("STATUS of an unknown network: %v (code %d)", err, api.CNICode(err))
	}
}

// TestCNICheckRoutes: CHECK wants the default route via the gateway on a container's first
// network and the network's route on a further one, and says which is missing.
func TestCNICheckRoutes(t *testing.T) {
	ctx := context.Background()
	m, _, _ := newManager(t, settings(t))
	m.loop.(*fakeLoop).nets = map[string]Network{"blue": {Name: "blue", CIDR: netip.MustParsePrefix("10.50.0.0/16"), Slice: netip.MustParsePrefix("10.50.7.0/24")}}
	ns := filepath.Join(t.TempDir(), "netns")
	_ = os.WriteFile(ns, nil, 0o600)
	onBlue := cniReq(ns, "c0ffee", "eth0")
	onBlue.Network = "blue"
	b, err := m.CNIAdd(ctx, onBlue)
	if err != nil {
		t.Fatal(err)
	}
	d, err := m.CNIAdd(ctx, cniReq(ns, "c0ffee", "net1"))
	if err != nil {
		t.Fatal(err)
	}
	// The kernel side as it should be: what netplumb reads back.
	links := map[string]netplumb.LinkInfo{}
	for _, a := range []api.CNIResult{b, d} {
		mac, _ := net.ParseMAC(a.MAC)
		gw := netip.MustParseAddr(a.Gateway)
		l := netplumb.LinkInfo{Name: a.IfName, MAC: mac, MTU: a.MTU, Up: true, PeerIndex: len(links) + 10, Addrs: []netip.Prefix{netip.MustParsePrefix(a.IP)}}
		for _, dst := range a.Routes {
			l.Routes = append(l.Routes, netplumb.Route{Dst: netip.MustParsePrefix(dst), Gateway: gw, Dev: a.IfName})
			if dst == "0.0.0.0/0" {
				l.Gateway = gw
			}
		}
		links[a.IfName] = l
	}
	hostIdx := map[string]int{b.Port: 10, d.Port: 11}
	oldC, oldH := containerLink, hostLink
	t.Cleanup(func() { containerLink, hostLink = oldC, oldH })
	containerLink = func(_, ifname string) (netplumb.LinkInfo, error) { return links[ifname], nil }
	hostLink = func(port string) (netplumb.LinkInfo, error) { return netplumb.LinkInfo{Index: hostIdx[port]}, nil }

	second := cniReq(ns, "c0ffee", "net1")
	for _, req := range []api.CNIRequest{onBlue, second} {
		if _, err := m.CNICheck(ctx, req); err != nil {
			t.Errorf("CHECK %s: %v", req.IfName, err)
		}
	}
	l := links["net1"]
	l.Routes = nil
	links["net1"] = l
	if _, err := m.CNICheck(ctx, second); api.CNICode(err) != api.CNIErrCheckFailed || !strings.Contains(err.Error(), "no route to network default (10.244.0.0/16) via 10.244.1.1") {
		t.Errorf("CHECK without the network's route: %v", err)
	}
	l = links["eth0"]
	l.Gateway = netip.Addr{}
	links["eth0"] = l
	if _, err := m.CNICheck(ctx, onBlue); api.CNICode(err) != api.CNIErrCheckFailed || !strings.Contains(err.Error(), "no default route via 10.50.7.1") {
		t.Errorf("CHECK without the default route: %v", err)
	}
	unknown := onBlue
	unknown.Network = "green"
	if _, err := m.CNICheck(ctx, unknown); api.CNICode(err) != api.CNIErrUnknownNetwork {
		t.Errorf("CHECK on an unknown network: %v (code %d)", err, api.CNICode(err))
	}
}

// TestCNILeavesResolvConfToTheRuntime: a CNI runtime writes the container's resolv.conf
// from the ADD result, so fabricd writes no /etc/netns/NAME/resolv.conf for a CNI endpoint
// (a runtime such as Podman reads that file as the host's and would repeat its nameserver),
// while fabricctl attach of a named netns still gets one.
func TestCNILeavesResolvConfToTheRuntime(t *testing.T) {
	ctx := context.Background()
	m, _, _ := newManager(t, settings(t))
	m.netnsDir = t.TempDir()
	for _, n := range []string{"cni-1", "plain"} {
		if err := os.WriteFile(filepath.Join(m.netnsDir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := m.CNIAdd(ctx, cniReq(filepath.Join(m.netnsDir, "cni-1"), "abc", "eth0")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(m.etcNetns, "cni-1", "resolv.conf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("resolv.conf written for a CNI endpoint: %v", err)
	}
	if _, err := m.Attach(ctx, attachReq(filepath.Join(m.netnsDir, "plain"), "", "")); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(m.etcNetns, "plain", "resolv.conf")); err != nil {
		t.Errorf("no resolv.conf for fabricctl attach: %v", err)
	}
}

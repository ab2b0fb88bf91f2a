package endpoint

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ovsfabric/ovsfabric/api"
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
	for _, again := range []api.CNIRequest{req, {ContainerID: "gone", IfName: "eth0", Network: DefaultNetwork}, {ContainerID: "x", IfName: "eth0", Network: "blue"}} {
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
	r := Record{Port: "vfabc", Network: DefaultNetwork, Container: "c", NetNS: "/x", IfName: "eth0", CNIKey: "id/eth0", CNIConfig: "fab", Aliases: []string{"a", "b"}}
	spec := r.PortSpec("h1")
	if spec.ExternalIDs[ovsdb.KeyCNI] != "id/eth0" || spec.ExternalIDs[ovsdb.KeyAliases] != "a,b" {
		t.Errorf("external_ids %v", spec.ExternalIDs)
	}
	spec.ExternalIDs[ovsdb.KeyOwner], spec.ExternalIDs[ovsdb.KeyRole] = "h1", ovsdb.RoleContainer
	got, ok := Decode(ovsdb.PortInfo{Name: spec.Name, ExternalIDs: spec.ExternalIDs}, "h1")
	if !ok || got.CNIKey != r.CNIKey || got.CNIConfig != "fab" || !reflect.DeepEqual(got.Aliases, r.Aliases) {
		t.Errorf("decoded %+v", got)
	}
}

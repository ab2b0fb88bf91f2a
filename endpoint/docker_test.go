package endpoint

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/netplumb"
)

// TestDockerEndpoints runs the Docker plugin's path on the in-memory OVSDB: a held address
// is not handed to anyone else, the endpoint takes it, names and published ports are
// recorded, the loop's pruning leaves it alone, and DockerDetach frees everything.
func TestDockerEndpoints(t *testing.T) {
	ctx := context.Background()
	m, _, k := newManager(t, settings(t))
	var made []netplumb.HostVethPair
	hostVeth = func(p netplumb.HostVethPair) (netplumb.AttachResult, error) {
		made = append(made, p)
		_, _ = k.Attach(netplumb.Attachment{HostIf: p.HostIf, MAC: p.MAC})
		return netplumb.AttachResult{MAC: p.MAC, HostIf: p.HostIf}, nil
	}
	alive := true
	linkExists = func(string) (bool, error) { return alive, nil }
	t.Cleanup(func() { hostVeth, linkExists = netplumb.HostVeth, netplumb.LinkExists })
	const id = "3e3113934c55803b851c54245a15494069ee159789dc4236b1566a680ae9faae"

	addr, gw, err := m.DockerHold(ctx, DefaultNetwork, netip.Addr{})
	if err != nil || addr != netip.MustParsePrefix("10.244.1.2/24") || gw != netip.MustParseAddr("10.244.1.1") {
		t.Fatalf("hold: %v %v %v", addr, gw, err)
	}
	// The held address is nobody else's: not another hold, not an attach.
	if next, _, err := m.DockerHold(ctx, DefaultNetwork, netip.Addr{}); err != nil || next.Addr() != netip.MustParseAddr("10.244.1.3") {
		t.Fatalf("second hold: %v %v", next, err)
	}
	m.DockerRelease(netip.MustParseAddr("10.244.1.3"))
	ns := filepath.Join(t.TempDir(), "netns")
	_ = os.WriteFile(ns, nil, 0o600)
	if _, err := m.Attach(ctx, attachReq(ns, "10.244.1.2", "")); err == nil || !strings.Contains(err.Error(), "Docker endpoint") {
		t.Fatalf("attach of a held address: %v", err)
	}
	for _, bad := range []struct {
		ip   string
		kind error
	}{{"10.244.2.5", api.ErrInvalid}, {"10.244.1.2", api.ErrInvalid}, {"10.244.1.1", api.ErrInvalid}} {
		if _, _, err := m.DockerHold(ctx, DefaultNetwork, netip.MustParseAddr(bad.ip)); !errors.Is(err, bad.kind) {
			t.Errorf("hold %s: %v, want %v", bad.ip, err, bad.kind)
		}
	}

	e, err := m.DockerAttach(ctx, DockerEndpoint{ID: id, Network: DefaultNetwork, Addr: addr})
	if err != nil {
		t.Fatal(err)
	}
	port, peer := DockerNames(id, DefaultNetwork)
	if e.Addr != addr || e.Port != port || e.Peer != peer || len(made) != 1 || made[0].PeerIf != peer || made[0].MTU != 1450 {
		t.Fatalf("attach: %+v, veths %+v", e, made)
	}
	// Repeating it changes nothing; the hold became the endpoint's.
	if again, err := m.DockerAttach(ctx, DockerEndpoint{ID: id, Network: DefaultNetwork, Addr: addr}); err != nil || again.Addr != addr || len(made) != 1 {
		t.Fatalf("repeat: %+v %v (%d veths)", again, err, len(made))
	}
	if len(m.holds) != 0 {
		t.Errorf("holds left: %v", m.holds)
	}
	if err := m.DockerSetNames(ctx, id, "Web", []string{"api", "3e3113934c55", "not.a.label"}); err != nil {
		t.Fatal(err)
	}
	if err := m.DockerPublish(ctx, id, []string{"8080:80/tcp"}); err != nil {
		t.Fatal(err)
	}
	if err := m.DockerPublish(ctx, id, []string{"53:53/udp"}); err == nil {
		t.Error("publishing the DNS port was accepted")
	}
	rs, err := m.records(ctx)
	if err != nil || len(rs) != 1 {
		t.Fatalf("records: %+v %v", rs, err)
	}
	r := rs[0]
	if r.DockerEP != id || r.Name != "web" || strings.Join(r.Aliases, ",") != "3e3113934c55,api" || len(r.Published) != 1 || r.NetNS != "" {
		t.Errorf("record: %+v", r)
	}
	// The loop's pruning leaves Docker's endpoints to Docker.
	kept, err := m.Sync(ctx, m.Generation(), rs)
	if err != nil || len(kept) != 1 {
		t.Errorf("sync pruned a Docker endpoint: %+v %v", kept, err)
	}
	if err := m.DockerDetach(ctx, id); err != nil {
		t.Fatal(err)
	}
	// An endpoint whose veth went (a reboot) is pruned: its address is free again.
	if _, err := m.DockerAttach(ctx, DockerEndpoint{ID: id, Network: DefaultNetwork, Addr: addr}); err != nil {
		t.Fatal(err)
	}
	alive = false
	rs, _ = m.records(ctx)
	if kept, err := m.Sync(ctx, m.Generation(), rs); err != nil || len(kept) != 0 {
		t.Errorf("sync kept a Docker endpoint without its veth: %+v %v", kept, err)
	}
	if rs, _ := m.records(ctx); len(rs) != 0 || k.hasVeth(port) {
		t.Errorf("after detach: %+v, veth %v", rs, k.hasVeth(port))
	}
	if err := m.DockerDetach(ctx, id); err != nil {
		t.Errorf("second detach: %v", err)
	}
	if again, _, err := m.DockerHold(ctx, DefaultNetwork, netip.Addr{}); err != nil || again != addr {
		t.Errorf("the freed address is not handed out again: %v %v", again, err)
	}
}

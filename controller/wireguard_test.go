package controller

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/netplumb"
	"github.com/ovsfabric/ovsfabric/peers"
	"github.com/ovsfabric/ovsfabric/wireguard"
)

// fakeWG records the configuration the loop gives the WireGuard interface (the real one is
// proven in package wireguard and in the lab).
type fakeWG struct {
	mu   sync.Mutex
	cfg  wireguard.Config
	sets int
}

func (f *fakeWG) Name() string                             { return "wgfab0" }
func (f *fakeWG) Implementation() wireguard.Implementation { return wireguard.Userspace }
func (f *fakeWG) Set(cfg wireguard.Config) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cfg = cfg
	f.sets++
	return true, nil
}
func (f *fakeWG) Status() (wireguard.Status, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	st := wireguard.Status{Name: "wgfab0", Implementation: wireguard.Userspace, PublicKey: f.cfg.PrivateKey.PublicKey(), ListenPort: f.cfg.ListenPort}
	for i, p := range f.cfg.Peers {
		ps := wireguard.PeerStatus{PublicKey: p.PublicKey, Endpoint: p.Endpoint, AllowedIPs: p.AllowedIPs}
		if i == 0 {
			ps.LastHandshake = time.Now().Add(-5 * time.Second)
		}
		st.Peers = append(st.Peers, ps)
	}
	return st, nil
}

func wgPeer(t *testing.T, name, underlay, subnet string) (peers.Peer, wireguard.Key) {
	t.Helper()
	k, err := wireguard.GeneratePrivateKey()
	if err != nil {
		t.Fatal(err)
	}
	p := peer(name, underlay, subnet, peers.StateAlive, time.Now())
	p.Meta.Encryption, p.Meta.WireGuardKey, p.Meta.WireGuardPort = peers.EncryptionWireGuard, k.PublicKey().String(), 51820
	return p, k.PublicKey()
}

// TestWireGuardSync: with --encryption wireguard the loop builds no tunnel port, gives the
// WireGuard interface one peer per host with the key and port it announced, routes each peer
// slice into the interface from the gateway address, guards the cluster CIDR with an
// unreachable route, announces its own key, reports handshakes, and keeps the key across a
// restart; a rotation writes a new key, applies it and announces it.
func TestWireGuardSync(t *testing.T) {
	ctx := context.Background()
	ep := startOVSDB(t)
	m := &fakeMembers{ch: make(chan struct{})}
	p2, k2 := wgPeer(t, "h2", "172.30.0.12", "10.244.2.0/24")
	p3, k3 := wgPeer(t, "h3", "172.30.0.13", "10.244.3.0/24")
	p4 := peer("h4", "172.30.0.14", "10.244.4.0/24", peers.StateAlive, time.Now()) // no key: carries nothing
	m.set(p2, p3, p4)
	s := settings(t, "10.244.1.0/24")
	s.EncryptionMode, s.WireGuardKeyFile = fabric.EncryptionWireGuard, filepath.Join(t.TempDir(), "wg.key")
	c, sw, k := newController(t, ep, s, m)
	wg := &fakeWG{}
	if err := c.SetWireGuard(wg); err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(s.WireGuardKeyFile); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v %v, want mode 0600", fi, err)
	}
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := tunnelPeers(t, sw); got != "" {
		t.Errorf("tunnels to %q, want none", got)
	}
	want := []netplumb.Route{
		{Dst: netip.MustParsePrefix("10.244.2.0/24"), Src: netip.MustParseAddr("10.244.1.1"), Dev: "wgfab0"},
		{Dst: netip.MustParsePrefix("10.244.3.0/24"), Src: netip.MustParseAddr("10.244.1.1"), Dev: "wgfab0"},
		{Dst: netip.MustParsePrefix("10.244.0.0/16"), Unreachable: true},
	}
	if !slices.Equal(k.routes, want) {
		t.Errorf("routes\n got %v\nwant %v", k.routes, want)
	}
	if len(wg.cfg.Peers) != 2 || wg.cfg.Peers[0].PublicKey != k2 || wg.cfg.Peers[1].PublicKey != k3 ||
		wg.cfg.Peers[0].Endpoint != netip.MustParseAddrPort("172.30.0.12:51820") ||
		!slices.Equal(wg.cfg.Peers[0].AllowedIPs, []netip.Prefix{netip.MustParsePrefix("10.244.2.0/24")}) ||
		wg.cfg.Peers[0].PersistentKeepalive != wireguardKeepalive || wg.cfg.ListenPort != 51820 {
		t.Errorf("WireGuard configuration %+v", wg.cfg)
	}
	if k.nat.WireGuard != "wgfab0" {
		t.Errorf("NAT rules without the WireGuard check: %+v", k.nat)
	}
	meta := c.Meta()
	key1 := wg.cfg.PrivateKey
	if meta.Encryption != peers.EncryptionWireGuard || meta.WireGuardKey != key1.PublicKey().String() || meta.WireGuardPort != 51820 {
		t.Errorf("meta %+v", meta)
	}
	if err := meta.Validate(); err != nil {
		t.Errorf("own meta invalid: %v", err)
	}
	st := c.Status()
	if st.Encryption != "wireguard" || st.WireGuard == nil || st.WireGuard.Implementation != "userspace" || st.MTU != 1440 {
		t.Errorf("status %+v", st)
	}
	states := map[string]string{}
	for _, p := range st.Peers {
		states[p.Name] = p.WireGuard + "|" + p.Note
	}
	if !strings.HasPrefix(states["h2"], "ok (5s ago)") || !strings.HasPrefix(states["h3"], "never") || !strings.Contains(states["h4"], "no WireGuard key") {
		t.Errorf("peer states %q", states)
	}

	// Rotation: a new key in the file, on the interface and in gossip.
	res, err := c.RotateWireGuardKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.OldPublicKey != key1.PublicKey().String() || res.PublicKey == res.OldPublicKey || wg.cfg.PrivateKey.PublicKey().String() != res.PublicKey {
		t.Errorf("rotate: %+v, interface key %s", res, wg.cfg.PrivateKey.PublicKey())
	}
	if m.meta.WireGuardKey != res.PublicKey {
		t.Errorf("gossip announces %q, want %q", m.meta.WireGuardKey, res.PublicKey)
	}
	// A restarted fabricd reads the rotated key.
	c2, _, _ := newController(t, ep, s, m)
	if err := c2.SetWireGuard(&fakeWG{}); err != nil {
		t.Fatal(err)
	}
	if got := c2.Meta().WireGuardKey; got != res.PublicKey {
		t.Errorf("after restart the key is %s, want %s", got, res.PublicKey)
	}

	// A peer announcing this host's own key is left out, never configured.
	p3.Meta.WireGuardKey = res.PublicKey
	m.set(p2, p3)
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if len(wg.cfg.Peers) != 1 || wg.cfg.Peers[0].PublicKey != k2 {
		t.Errorf("peers after h3 took this host's key: %+v", wg.cfg.Peers)
	}

	// Leaving keeps the guard.
	if err := c.Withdraw(ctx); err != nil {
		t.Fatal(err)
	}
	if len(k.routes) != 1 || !k.routes[0].Unreachable {
		t.Errorf("routes after withdraw %v, want only the guard", k.routes)
	}
}

package fabric

import (
	"fmt"
	"net/netip"
	"slices"
	"testing"
	"time"
)

func TestFabricMTU(t *testing.T) {
	for _, c := range []struct {
		underlay int
		tunnel   TunnelType
		enc      Encryption
		v6       bool
		want     int
		err      bool
	}{
		{1500, TunnelVXLAN, EncryptionNone, false, 1450, false},
		{1500, TunnelGRE, EncryptionNone, false, 1458, false},
		{1500, TunnelVXLAN, EncryptionWireGuard, false, 1440, false},
		{1500, TunnelGRE, EncryptionWireGuard, true, 1420, false},
		{9000, TunnelVXLAN, EncryptionWireGuard, false, 8940, false},
		{600, TunnelVXLAN, EncryptionWireGuard, false, 0, true},
	} {
		got, err := FabricMTU(c.underlay, c.tunnel, c.enc, c.v6)
		if got != c.want || (err != nil) != c.err {
			t.Errorf("FabricMTU(%d, %s, %s, v6=%v) = %d, %v; want %d (error %v)", c.underlay, c.tunnel, c.enc, c.v6, got, err, c.want, c.err)
		}
	}
}

func TestParseEncryption(t *testing.T) {
	for in, want := range map[string]Encryption{"": EncryptionNone, "none": EncryptionNone, "wireguard": EncryptionWireGuard} {
		if got, err := ParseEncryption(in); err != nil || got != want {
			t.Errorf("ParseEncryption(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"ipsec", "WireGuard", "yes"} {
		if _, err := ParseEncryption(bad); err == nil {
			t.Errorf("ParseEncryption(%q) accepted", bad)
		}
	}
}

// TestPlanWireGuard: with encryption no tunnel is built; each usable peer is one WireGuard
// peer whose allowed IPs are its slices in every network served here, each slice is routed
// into the WireGuard interface from the network's gateway address, and every network's CIDR
// gets its guard route. A peer without a key carries nothing (its slices stay unreachable).
func TestPlanWireGuard(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ip, pfx := netip.MustParseAddr, netip.MustParsePrefix
	f := Facts{
		Node: "h1", Underlay: ip("172.30.0.11"), UnderlayMTU: 1500,
		Subnet: pfx("10.244.1.0/24"), SubnetSince: 100, ClusterCIDR: cluster,
		Tunnel: TunnelVXLAN, Bridge: "br-int", GatewayPort: "fabric0", Datapath: "netdev",
		Now: now, DeadPeerGrace: 3 * time.Minute,
		Encryption: EncryptionWireGuard, WireGuard: WireGuardFacts{Interface: "wgfab0"},
		Peers: []Peer{
			{Name: "h2", Underlay: ip("172.30.0.12"), Subnet: pfx("10.244.2.0/24"), State: PeerAlive, StateSince: now, WireGuardKey: "K2", WireGuardPort: 51820},
			{Name: "h3", Underlay: ip("172.30.0.13"), Subnet: pfx("10.244.3.0/24"), State: PeerAlive, StateSince: now}, // no key
		},
		Networks: []NetworkFacts{
			{Name: "red", Key: 9, CIDR: pfx("10.60.0.0/16")}, // not served here: guarded all the same
			{Name: "blue", Key: 7, CIDR: pfx("10.50.0.0/16"), Slice: pfx("10.50.1.0/24"), PeerSlices: []PeerSlice{
				{Peer: "h2", Slice: pfx("10.50.2.0/24")},
				{Peer: "h3", Slice: pfx("10.50.3.0/24")},
			}},
		},
	}
	d, err := Plan(f)
	if err != nil {
		t.Fatal(err)
	}
	if len(d.Tunnels) != 0 {
		t.Errorf("tunnels %v, want none", d.Tunnels)
	}
	if d.MTU != 1440 {
		t.Errorf("MTU %d, want 1440", d.MTU)
	}
	wantWG := []WireGuardPeer{{Peer: "h2", Key: "K2", Endpoint: netip.MustParseAddrPort("172.30.0.12:51820"), AllowedIPs: []netip.Prefix{pfx("10.244.2.0/24"), pfx("10.50.2.0/24")}}}
	if fmt.Sprint(d.WireGuard) != fmt.Sprint(wantWG) {
		t.Errorf("wireguard peers\n got %v\nwant %v", d.WireGuard, wantWG)
	}
	var routes []string
	for _, r := range d.Routes {
		routes = append(routes, fmt.Sprintf("%s via=%s src=%s dev=%s onlink=%v unreachable=%v", r.Dst, r.Via, r.Src, r.Dev, r.OnLink, r.Unreachable))
	}
	want := []string{
		"10.244.2.0/24 via=invalid IP src=10.244.1.1 dev=wgfab0 onlink=false unreachable=false",
		"10.50.2.0/24 via=invalid IP src=10.50.1.1 dev=wgfab0 onlink=false unreachable=false",
		"10.244.0.0/16 via=invalid IP src=invalid IP dev= onlink=false unreachable=true",
		"10.60.0.0/16 via=invalid IP src=invalid IP dev= onlink=false unreachable=true",
		"10.50.0.0/16 via=invalid IP src=invalid IP dev= onlink=false unreachable=true",
	}
	if !slices.Equal(routes, want) {
		t.Errorf("routes\n got %q\nwant %q", routes, want)
	}
	if len(d.Skipped) != 1 || d.Skipped[0].Peer != "h3" {
		t.Errorf("skipped %v, want h3 (no key)", d.Skipped)
	}
	var peers []string
	for _, n := range d.Networks {
		for _, p := range n.Peers {
			peers = append(peers, n.Name+":"+p.Peer+":"+p.Tunnel+":"+p.Slice.String())
		}
	}
	if want := []string{"default:h2::10.244.2.0/24", "blue:h2::10.50.2.0/24"}; !slices.Equal(peers, want) {
		t.Errorf("network peers %q, want %q", peers, want)
	}

	f.WireGuard.Interface = ""
	if _, err := Plan(f); err == nil {
		t.Error("Plan accepted encryption without a WireGuard interface")
	}
}

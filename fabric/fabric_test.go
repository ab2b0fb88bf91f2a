package fabric

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestTunnelPortName(t *testing.T) {
	names := map[string]bool{}
	for _, peer := range []string{"h1", "h2", "a-very-long-host-name.example.com", ""} {
		for _, tt := range []TunnelType{TunnelGRE, TunnelVXLAN} {
			n := TunnelPortName(tt, peer)
			if err := ValidIfName(n); err != nil {
				t.Errorf("TunnelPortName(%s, %q) = %q: %v", tt, peer, n, err)
			}
			if n != TunnelPortName(tt, peer) {
				t.Errorf("TunnelPortName(%s, %q) is not stable", tt, peer)
			}
			if names[n] {
				t.Errorf("duplicate name %q", n)
			}
			names[n] = true
			if !strings.HasPrefix(n, map[TunnelType]string{TunnelGRE: "gre-", TunnelVXLAN: "vxl-"}[tt]) {
				t.Errorf("name %q lacks its type prefix", n)
			}
		}
	}
	if got := len(ContainerPortName("/var/run/netns/x")); got > MaxIfNameLen {
		t.Errorf("container port name is %d bytes", got)
	}
}

func TestValidIfName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"eth0", true}, {"br-int", true}, {"123456789012345", true},
		{"", false}, {"1234567890123456", false}, {"a/b", false}, {"a b", false}, {"a:b", false}, {"..", false},
	} {
		if err := ValidIfName(tc.name); (err == nil) != tc.ok {
			t.Errorf("ValidIfName(%q) = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}

func TestContainerMTU(t *testing.T) {
	for _, tc := range []struct {
		underlay int
		tt       TunnelType
		v6       bool
		want     int
		wantErr  bool
	}{
		{1500, TunnelVXLAN, false, 1450, false},
		{1500, TunnelVXLAN, true, 1430, false},
		{1500, TunnelGRE, false, 1458, false},
		{1500, TunnelGRE, true, 1438, false},
		{9000, TunnelVXLAN, false, 8950, false},
		{600, TunnelVXLAN, false, 0, true},
	} {
		got, err := ContainerMTU(tc.underlay, tc.tt, tc.v6)
		if (err != nil) != tc.wantErr || got != tc.want {
			t.Errorf("ContainerMTU(%d, %s, v6=%v) = %d, %v; want %d (err %v)", tc.underlay, tc.tt, tc.v6, got, err, tc.want, tc.wantErr)
		}
	}
	if _, err := ParseTunnelType("ipip"); err == nil {
		t.Error("ParseTunnelType(ipip) succeeded")
	}
}

var cluster = netip.MustParsePrefix("10.244.0.0/16")

func TestPickSubnet(t *testing.T) {
	a, err := PickSubnet("h1", cluster, 24, TakenBy(nil))
	if err != nil {
		t.Fatal(err)
	}
	if err := ValidateSubnet(cluster, 24, a); err != nil {
		t.Fatalf("picked invalid subnet %s: %v", a, err)
	}
	again, _ := PickSubnet("h1", cluster, 24, TakenBy(nil))
	if again != a {
		t.Errorf("pick is not deterministic: %s then %s", a, again)
	}
	// Taken: linear probing moves to the next slot.
	next, _ := PickSubnet("h1", cluster, 24, TakenBy([]netip.Prefix{a}))
	if next == a || next.Addr() != NthSubnet(cluster, 24, (int(a.Addr().As4()[2])+1)%256).Addr() {
		t.Errorf("probe after %s gave %s", a, next)
	}
	// Exhaustion is a clear error.
	small := netip.MustParsePrefix("10.9.0.0/23")
	taken := []netip.Prefix{netip.MustParsePrefix("10.9.0.0/24"), netip.MustParsePrefix("10.9.1.0/24")}
	if _, err := PickSubnet("h1", small, 24, TakenBy(taken)); err == nil || !strings.Contains(err.Error(), "exhausted") {
		t.Errorf("exhausted CIDR: err = %v", err)
	}
	// Many nodes all get distinct subnets.
	var claimed []netip.Prefix
	for i := 0; i < 256; i++ {
		p, err := PickSubnet("node-"+string(rune('a'+i%26))+string(rune('0'+i/26)), cluster, 24, TakenBy(claimed))
		if err != nil {
			t.Fatalf("node %d: %v", i, err)
		}
		claimed = append(claimed, p)
	}
	if _, err := PickSubnet("one-more", cluster, 24, TakenBy(claimed)); err == nil {
		t.Error("257th /24 in a /16 succeeded")
	}
}

func TestValidateSubnet(t *testing.T) {
	for _, tc := range []struct {
		subnet string
		bits   int
		ok     bool
	}{
		{"10.244.3.0/24", 24, true},
		{"10.244.3.1/24", 24, false},
		{"10.245.3.0/24", 24, false},
		{"10.244.3.0/25", 24, false},
		{"10.244.0.0/16", 16, false},
	} {
		err := ValidateSubnet(cluster, tc.bits, netip.MustParsePrefix(tc.subnet))
		if (err == nil) != tc.ok {
			t.Errorf("ValidateSubnet(%s, /%d) = %v, want ok=%v", tc.subnet, tc.bits, err, tc.ok)
		}
	}
}

func TestConflict(t *testing.T) {
	s := netip.MustParsePrefix("10.244.5.0/24")
	other := netip.MustParsePrefix("10.244.6.0/24")
	cl := func(node string, p netip.Prefix, seq uint64) Claim { return Claim{Node: node, Subnet: p, Seq: seq} }
	legacy := func(node string, p netip.Prefix, since int64) Claim {
		return Claim{Node: node, Subnet: p, Since: since}
	}
	for _, tc := range []struct {
		name   string
		local  Claim
		others []Claim
		want   string
	}{
		{"no overlap", cl("b", s, 10), []Claim{cl("a", other, 1)}, ""},
		{"earlier claim wins", cl("b", s, 10), []Claim{cl("a", s, 5)}, "a"},
		{"later claim loses", cl("b", s, 5), []Claim{cl("a", s, 10)}, ""},
		{"tie: lower name wins", cl("b", s, 5), []Claim{cl("a", s, 5)}, "a"},
		{"tie: we are lower", cl("a", s, 5), []Claim{cl("b", s, 5)}, ""},
		{"best of several", cl("c", s, 9), []Claim{cl("b", s, 7), cl("a", s, 3)}, "a"},
		{"seq decides, not since", Claim{Node: "b", Subnet: s, Seq: 2, Since: 1}, []Claim{{Node: "a", Subnet: s, Seq: 1, Since: 9}}, "a"},
		{"previous version: since decides", legacy("b", s, 10), []Claim{{Node: "a", Subnet: s, Seq: 9, Since: 5}}, "a"},
		{"previous version: since decides the other way", Claim{Node: "a", Subnet: s, Seq: 1, Since: 10}, []Claim{legacy("b", s, 5)}, "b"},
		{"previous version: tie on since, lower name", legacy("b", s, 5), []Claim{legacy("a", s, 5)}, "a"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, lost := Conflict(tc.local, tc.others)
			if lost != (tc.want != "") || (lost && w.Node != tc.want) {
				t.Errorf("Conflict = %v %v, want %q", w, lost, tc.want)
			}
		})
	}
}

// TestClaimOrderIgnoresClocks plays two hosts claiming one subnet, one after the other, with
// the second host's clock skewed: the claim made later (by the Lamport order, having seen
// the first) always loses, however far the clocks disagree, and both hosts agree on it.
func TestClaimOrderIgnoresClocks(t *testing.T) {
	s := netip.MustParsePrefix("10.244.5.0/24")
	base := time.Unix(1_800_000_000, 0)
	for _, tc := range []struct {
		name       string
		skew       time.Duration // of the second host's clock
		firstName  string
		secondName string
	}{
		{"in sync", 0, "b", "a"},
		{"an hour behind", -time.Hour, "b", "a"},
		{"an hour ahead", time.Hour, "b", "a"},
		{"a day behind", -24 * time.Hour, "b", "a"},
		{"a year behind, lower name", -365 * 24 * time.Hour, "z", "a"},
		{"ahead, higher name", time.Hour, "a", "z"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The first host claimed a while ago, in a fabric that had seen claims up to 7.
			first := Claim{Node: tc.firstName, Subnet: s, Since: base.Add(-10 * time.Minute).UnixMilli(), Seq: NextSeq(3, 7)}
			// The second host then saw the first's claim (and others) and claims the same
			// subnet (a static --subnet, say) at its skewed "now".
			second := Claim{Node: tc.secondName, Subnet: s, Since: base.Add(tc.skew).UnixMilli(), Seq: NextSeq(first.Seq, 2)}
			if w, lost := Conflict(second, []Claim{first}); !lost || w.Node != first.Node {
				t.Errorf("the later claim was not beaten: Conflict = %+v, %v", w, lost)
			}
			if _, lost := Conflict(first, []Claim{second}); lost {
				t.Error("the live host's claim loses to a later one")
			}
			// With wall clocks (the previous rule), a clock far enough behind would win.
			if tc.skew < -10*time.Minute && !(Claim{Node: second.Node, Subnet: s, Since: second.Since}).Wins(Claim{Node: first.Node, Subnet: s, Since: first.Since}) {
				t.Error("sanity: the wall-clock rule should have picked the skewed host")
			}
		})
	}
}

func TestNextSeq(t *testing.T) {
	for _, tc := range []struct {
		known []uint64
		want  uint64
	}{{nil, 1}, {[]uint64{0, 0}, 1}, {[]uint64{4, 9, 2}, 10}} {
		if got := NextSeq(tc.known...); got != tc.want {
			t.Errorf("NextSeq(%v) = %d, want %d", tc.known, got, tc.want)
		}
	}
}

func TestRetain(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	grace, retention := 3*time.Minute, time.Hour
	pfx := netip.MustParsePrefix
	peer := func(name, subnet string, st PeerState, ago time.Duration) Peer {
		return Peer{Name: name, Underlay: netip.MustParseAddr("172.30.0.9"), Subnet: pfx(subnet), SubnetSeq: 4, State: st, StateSince: now.Add(-ago)}
	}
	kept := func(name, subnet string, ago time.Duration) Retained {
		return Retained{Claim: Claim{Node: name, Subnet: pfx(subnet), Seq: 4}, State: PeerDead, Underlay: netip.MustParseAddr("172.30.0.9"), Gone: now.Add(-ago)}
	}
	for _, tc := range []struct {
		name    string
		prev    []Retained
		peers   []Peer
		want    []string // retained node names
		expired []string
	}{
		{"dead within grace: not yet", nil, []Peer{peer("d", "10.244.4.0/24", PeerDead, time.Minute)}, nil, nil},
		{"dead past grace: retained", nil, []Peer{peer("d", "10.244.4.0/24", PeerDead, 5*time.Minute)}, []string{"d"}, nil},
		{"left: retained at once", nil, []Peer{peer("l", "10.244.4.0/24", PeerLeft, time.Second)}, []string{"l"}, nil},
		{"forgotten by gossip: kept", []Retained{kept("f", "10.244.4.0/24", 30*time.Minute)}, nil, []string{"f"}, nil},
		{"alive again: dropped", []Retained{kept("f", "10.244.4.0/24", 30*time.Minute)}, []Peer{peer("f", "10.244.4.0/24", PeerAlive, 0)}, nil, nil},
		{"taken by a live node: dropped", []Retained{kept("f", "10.244.4.0/24", 30*time.Minute)}, []Peer{peer("n", "10.244.4.0/24", PeerAlive, 0)}, nil, nil},
		{"retention over: expired", []Retained{kept("f", "10.244.4.0/24", 61*time.Minute)}, nil, nil, []string{"f"}},
		{"restart does not extend", []Retained{kept("d", "10.244.4.0/24", 50*time.Minute)}, []Peer{peer("d", "10.244.4.0/24", PeerDead, 4*time.Minute)}, []string{"d"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			next, expired := Retain(tc.prev, tc.peers, now, grace, retention)
			names := func(rs []Retained) []string {
				var out []string
				for _, r := range rs {
					out = append(out, r.Node)
				}
				return out
			}
			if !slices.Equal(names(next), tc.want) || !slices.Equal(names(expired), tc.expired) {
				t.Fatalf("Retain = %v, expired %v; want %v, %v", names(next), names(expired), tc.want, tc.expired)
			}
			if tc.name == "restart does not extend" && !next[0].Gone.Equal(now.Add(-50*time.Minute)) {
				t.Errorf("Gone moved to %s", next[0].Gone)
			}
		})
	}
}

func TestOldestRetained(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	pfx := netip.MustParsePrefix
	rs := []Retained{
		{Claim: Claim{Node: "announced", Subnet: pfx("10.244.1.0/24"), Seq: 1}},
		{Claim: Claim{Node: "recent", Subnet: pfx("10.244.2.0/24"), Seq: 2}, Gone: now.Add(-time.Minute)},
		{Claim: Claim{Node: "oldest", Subnet: pfx("10.244.3.0/24"), Seq: 9}, Gone: now.Add(-time.Hour)},
	}
	all := func(netip.Prefix) bool { return true }
	if r, ok := OldestRetained(rs, all); !ok || r.Node != "oldest" {
		t.Errorf("OldestRetained = %v %v, want oldest", r.Node, ok)
	}
	not3 := func(p netip.Prefix) bool { return p != pfx("10.244.3.0/24") }
	if r, ok := OldestRetained(rs, not3); !ok || r.Node != "recent" {
		t.Errorf("OldestRetained without .3 = %v %v, want recent", r.Node, ok)
	}
	if _, ok := OldestRetained(rs, func(netip.Prefix) bool { return false }); ok {
		t.Error("OldestRetained found one where none is usable")
	}
}

func TestIPAM(t *testing.T) {
	s := netip.MustParsePrefix("10.244.3.0/24")
	ip := netip.MustParseAddr
	used := map[netip.Addr]bool{ip("10.244.3.2"): true}
	if g := Gateway(s); g != ip("10.244.3.1") {
		t.Errorf("Gateway = %s", g)
	}
	if a, err := AllocateIP(s, used); err != nil || a != ip("10.244.3.3") {
		t.Errorf("AllocateIP = %s, %v", a, err)
	}
	for _, tc := range []struct {
		ip string
		ok bool
	}{
		{"10.244.3.9", true}, {"10.244.3.2", false}, {"10.244.3.1", false}, {"10.244.3.0", false},
		{"10.244.3.255", false}, {"10.244.4.9", false}, {"fd00::1", false},
	} {
		if err := CheckContainerIP(s, ip(tc.ip), used); (err == nil) != tc.ok {
			t.Errorf("CheckContainerIP(%s) = %v, want ok=%v", tc.ip, err, tc.ok)
		}
	}
	tiny := netip.MustParsePrefix("10.244.3.0/30") // .1 gateway, .2 only container address
	if _, err := AllocateIP(tiny, map[netip.Addr]bool{ip("10.244.3.2"): true}); err == nil {
		t.Error("full /30 still allocated")
	}
}

func TestPlan(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ip := netip.MustParseAddr
	pfx := netip.MustParsePrefix
	base := Facts{
		Node: "h1", Underlay: ip("172.30.0.11"), UnderlayMTU: 1500,
		Subnet: pfx("10.244.1.0/24"), SubnetSince: 100, ClusterCIDR: cluster,
		Tunnel: TunnelVXLAN, Bridge: "br-int", GatewayPort: "fabric0", Datapath: "netdev",
		Now: now, DeadPeerGrace: 3 * time.Minute,
	}
	peer := func(name, under, subnet string, since int64, st PeerState, ago time.Duration) Peer {
		return Peer{Name: name, Underlay: ip(under), Subnet: pfx(subnet), SubnetSince: since, State: st, StateSince: now.Add(-ago)}
	}
	for _, tc := range []struct {
		name    string
		peers   []Peer
		want    []string // peers with a tunnel and route
		skipped []string
	}{
		{"no peers", nil, nil, nil},
		{"alive and suspect peers", []Peer{
			peer("h3", "172.30.0.13", "10.244.3.0/24", 1, PeerSuspect, 0),
			peer("h2", "172.30.0.12", "10.244.2.0/24", 1, PeerAlive, 0),
		}, []string{"h2", "h3"}, nil},
		{"left peer is removed at once", []Peer{peer("h2", "172.30.0.12", "10.244.2.0/24", 1, PeerLeft, 0)}, nil, []string{"h2"}},
		{"dead peer kept during grace", []Peer{peer("h2", "172.30.0.12", "10.244.2.0/24", 1, PeerDead, time.Minute)}, []string{"h2"}, nil},
		{"dead peer removed after grace", []Peer{peer("h2", "172.30.0.12", "10.244.2.0/24", 1, PeerDead, 4*time.Minute)}, nil, []string{"h2"}},
		{"peer without subnet", []Peer{{Name: "h2", Underlay: ip("172.30.0.12"), State: PeerAlive}}, nil, []string{"h2"}},
		{"peer claiming our subnet", []Peer{peer("h2", "172.30.0.12", "10.244.1.0/24", 1, PeerAlive, 0)}, nil, []string{"h2"}},
		{"two peers, same subnet: earlier wins", []Peer{
			peer("h2", "172.30.0.12", "10.244.2.0/24", 50, PeerAlive, 0),
			peer("h3", "172.30.0.13", "10.244.2.0/24", 10, PeerAlive, 0),
		}, []string{"h3"}, []string{"h2"}},
		{"peer outside cluster CIDR", []Peer{peer("h2", "172.30.0.12", "10.9.2.0/24", 1, PeerAlive, 0)}, nil, []string{"h2"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := base
			f.Peers = tc.peers
			d, err := Plan(f)
			if err != nil {
				t.Fatal(err)
			}
			if d.Gateway != pfx("10.244.1.1/24") || d.MTU != 1450 {
				t.Errorf("gateway %s mtu %d", d.Gateway, d.MTU)
			}
			var got, skipped []string
			for i, tun := range d.Tunnels {
				got = append(got, tun.Peer)
				r := d.Routes[i]
				if r.Peer != tun.Peer || r.Via != Gateway(r.Dst) || r.Dev != "fabric0" || !r.OnLink {
					t.Errorf("route %+v does not match tunnel %+v", r, tun)
				}
				if tun.Name != TunnelPortName(TunnelVXLAN, tun.Peer) {
					t.Errorf("tunnel name %s", tun.Name)
				}
			}
			for _, s := range d.Skipped {
				skipped = append(skipped, s.Peer)
			}
			if strings.Join(got, ",") != strings.Join(tc.want, ",") {
				t.Errorf("tunnels to %v, want %v", got, tc.want)
			}
			if strings.Join(skipped, ",") != strings.Join(tc.skipped, ",") {
				t.Errorf("skipped %v, want %v", d.Skipped, tc.skipped)
			}
			again, _ := Plan(f)
			if len(again.Tunnels) != len(d.Tunnels) {
				t.Error("Plan is not deterministic")
			}
		})
	}
	bad := base
	bad.Subnet = pfx("10.250.0.0/24")
	bad.ClusterCIDR = pfx("10.244.0.0/16")
	if _, err := Plan(bad); err == nil {
		t.Error("Plan with local subnet outside cluster CIDR succeeded")
	}
}

// TestClaimIndexMatchesConflict checks the index Plan uses against the plain scan, with
// claims of mixed prefix lengths.
func TestClaimIndexMatchesConflict(t *testing.T) {
	var claims []Claim
	for i := 0; i < 40; i++ {
		bits := 24 + i%3
		claims = append(claims, Claim{Node: string(rune('a'+i%26)) + string(rune('0'+i/26)), Subnet: NthSubnet(cluster, bits, i%7), Since: int64(i % 5)})
	}
	ix := newClaimIndex(claims)
	for _, c := range claims {
		w1, l1 := Conflict(c, claims)
		w2, l2 := ix.conflict(c)
		if l1 != l2 || w1 != w2 {
			t.Errorf("claim %+v: scan %v %v, index %v %v", c, w1, l1, w2, l2)
		}
	}
}

func TestGatewayMAC(t *testing.T) {
	a, b := GatewayMAC("h1"), GatewayMAC("h2")
	if a.String() == b.String() || a.String() != GatewayMAC("h1").String() {
		t.Errorf("GatewayMAC not stable and distinct: %s %s", a, b)
	}
	if a[0]&1 != 0 || a[0]&2 == 0 {
		t.Errorf("GatewayMAC %s is not a locally administered unicast address", a)
	}
}

// TestPlanNetworks: the networks a host serves, default first, and routes to the peers'
// slices only toward peers with a tunnel, never overlapping the local slice or outside the
// network.
func TestPlanNetworks(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ip := netip.MustParseAddr
	pfx := netip.MustParsePrefix
	f := Facts{
		Node: "h1", Underlay: ip("172.30.0.11"), UnderlayMTU: 1500,
		Subnet: pfx("10.244.1.0/24"), SubnetSince: 100, ClusterCIDR: cluster,
		Tunnel: TunnelVXLAN, Bridge: "br-int", GatewayPort: "fabric0", Datapath: "netdev",
		Now: now, DeadPeerGrace: 3 * time.Minute,
		Peers: []Peer{
			{Name: "h2", Underlay: ip("172.30.0.12"), Subnet: pfx("10.244.2.0/24"), State: PeerAlive, StateSince: now},
			{Name: "h3", Underlay: ip("172.30.0.13"), State: PeerAlive, StateSince: now}, // no subnet: no tunnel
		},
		Networks: []NetworkFacts{
			{Name: "red", Key: 9, CIDR: pfx("10.60.0.0/16"), Internal: true}, // no slice here: not served
			{Name: "blue", Key: 7, CIDR: pfx("10.50.0.0/16"), Slice: pfx("10.50.1.0/24"), PeerSlices: []PeerSlice{
				{Peer: "h3", Slice: pfx("10.50.3.0/24")}, // no tunnel
				{Peer: "h2", Slice: pfx("10.50.2.0/24")}, // routed
				{Peer: "h4", Slice: pfx("10.50.1.0/25")}, // unknown peer
				{Peer: "h2", Slice: pfx("10.99.2.0/24")}, // outside the network
			}},
		},
	}
	d, err := Plan(f)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, n := range d.Networks {
		s := fmt.Sprintf("%s key=%d gw=%s", n.Name, n.Key, n.Gateway)
		for _, p := range n.Peers {
			s += fmt.Sprintf(" %s:%s:%s", p.Peer, p.Tunnel, p.Slice)
		}
		got = append(got, s)
	}
	tun := TunnelPortName(TunnelVXLAN, "h2")
	want := []string{
		"default key=0 gw=10.244.1.1/24 h2:" + tun + ":10.244.2.0/24",
		"blue key=7 gw=10.50.1.1/24 h2:" + tun + ":10.50.2.0/24",
	}
	if !slices.Equal(got, want) {
		t.Errorf("networks:\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	var routes []string
	for _, r := range d.Routes {
		routes = append(routes, r.Dst.String()+" via "+r.Via.String())
	}
	if wantR := []string{"10.244.2.0/24 via 10.244.2.1", "10.50.2.0/24 via 10.50.2.1"}; !slices.Equal(routes, wantR) {
		t.Errorf("routes %v, want %v", routes, wantR)
	}
}

// TestPlanFlowMode: with TunnelFlow every peer's tunnel and network slice names the one
// flow-based port and carries the peer's underlay address; encrypted plans have no flow port.
func TestPlanFlowMode(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ip := netip.MustParseAddr
	pfx := netip.MustParsePrefix
	base := Facts{
		Node: "h1", Underlay: ip("172.30.0.11"), UnderlayMTU: 1500,
		Subnet: pfx("10.244.1.0/24"), SubnetSince: 100, ClusterCIDR: cluster,
		Tunnel: TunnelGRE, Bridge: "br-int", GatewayPort: "fabric0", Datapath: "netdev",
		Now: now, DeadPeerGrace: 3 * time.Minute,
		Peers: []Peer{
			{Name: "h3", Underlay: ip("172.30.0.13"), Subnet: pfx("10.244.3.0/24"), State: PeerAlive, StateSince: now},
			{Name: "h2", Underlay: ip("172.30.0.12"), Subnet: pfx("10.244.2.0/24"), State: PeerAlive, StateSince: now},
		},
		Networks: []NetworkFacts{{Name: "blue", Key: 7, CIDR: pfx("10.50.0.0/16"), Slice: pfx("10.50.1.0/24"),
			PeerSlices: []PeerSlice{{Peer: "h2", Slice: pfx("10.50.2.0/24")}}}},
	}
	for _, tc := range []struct {
		name string
		mode TunnelMode
		port func(peer string) string
		flow string
	}{
		{"default is per-peer", "", func(p string) string { return TunnelPortName(TunnelGRE, p) }, ""},
		{"per-peer", TunnelPerPeer, func(p string) string { return TunnelPortName(TunnelGRE, p) }, ""},
		{"flow", TunnelFlow, func(string) string { return "gre-flow" }, "gre-flow"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := base
			f.TunnelMode = tc.mode
			d, err := Plan(f)
			if err != nil {
				t.Fatal(err)
			}
			if d.FlowTunnel != tc.flow || (tc.mode == "" && d.TunnelMode != TunnelPerPeer) {
				t.Errorf("mode %q flow port %q", d.TunnelMode, d.FlowTunnel)
			}
			var got []string
			for _, tun := range d.Tunnels {
				got = append(got, tun.Peer+"@"+tun.Remote.String()+":"+tun.Name)
			}
			want := []string{"h2@172.30.0.12:" + tc.port("h2"), "h3@172.30.0.13:" + tc.port("h3")}
			if !slices.Equal(got, want) {
				t.Errorf("tunnels %v, want %v", got, want)
			}
			for _, n := range d.Networks {
				for _, p := range n.Peers {
					if p.Tunnel != tc.port(p.Peer) || p.Remote != ip("172.30.0.1"+p.Peer[1:]) {
						t.Errorf("network %s peer %+v", n.Name, p)
					}
				}
			}
		})
	}
	f := base
	f.TunnelMode = "mesh"
	if _, err := Plan(f); err == nil {
		t.Error("Plan with tunnel mode mesh succeeded")
	}
	if len(FlowTunnelPortName(TunnelVXLAN)) > MaxIfNameLen || FlowTunnelPortName(TunnelVXLAN) == FlowTunnelPortName(TunnelGRE) {
		t.Error("flow port names")
	}
}

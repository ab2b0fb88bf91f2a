package flows

import (
	"errors"
	"math/rand/v2"
	"net"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
)

func mac(s string) net.HardwareAddr { return mustMAC(s) }

var (
	gwMAC  = "00:16:3e:0a:0b:0c"
	c1MAC  = "0a:58:0a:f4:03:05"
	c2MAC  = "0a:58:0a:f4:03:06"
	subnet = netip.MustParsePrefix("10.244.3.0/24")
)

// testInput is a host with two containers and two peers:
// ofport 1 fabric0, 2 tunnel to h2 (10.244.7.0/24), 3 c1, 4 c2, 5 tunnel to h3 (10.244.9.0/24).
func testInput() Input {
	return Input{
		Gateway:     Port{Name: "fabric0", OFPort: 1, MAC: mac(gwMAC), IP: netip.MustParseAddr("10.244.3.1")},
		Subnet:      subnet,
		ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"),
		Containers: []Port{
			{Name: "vf-c1", OFPort: 3, MAC: mac(c1MAC), IP: netip.MustParseAddr("10.244.3.5")},
			{Name: "vf-c2", OFPort: 4, MAC: mac(c2MAC), IP: netip.MustParseAddr("10.244.3.6")},
		},
		Tunnels: []Tunnel{
			{Peer: "h2", Port: "vxlan-h2", OFPort: 2, Subnet: netip.MustParsePrefix("10.244.7.0/24")},
			{Peer: "h3", Port: "vxlan-h3", OFPort: 5, Subnet: netip.MustParsePrefix("10.244.9.0/24")},
		},
	}
}

func mustPlan(t *testing.T, in Input) []Flow {
	t.Helper()
	fs, err := Plan(in)
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	return fs
}

// find returns the flow of fs at table, priority and match (fields in any order).
func find(fs []Flow, table, prio int, match string) (Flow, bool) {
	for _, f := range fs {
		if f.Table == table && f.Priority == prio && sortedFields(f.Match) == sortedFields(match) {
			return f, true
		}
	}
	return Flow{}, false
}

func TestPlanFlows(t *testing.T) {
	fs := mustPlan(t, testInput())
	const responderGW = "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],mod_dl_src:00:16:3e:0a:0b:0c,load:0x2->NXM_OF_ARP_OP[]," +
		"move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]," +
		"load:0x163e0a0b0c->NXM_NX_ARP_SHA[],load:0xaf40301->NXM_OF_ARP_SPA[],IN_PORT"
	const responderPeer = "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],mod_dl_src:02:0f:ab:00:00:01,load:0x2->NXM_OF_ARP_OP[]," +
		"move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],move:NXM_OF_ARP_TPA[]->NXM_NX_REG0[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]," +
		"move:NXM_NX_REG0[]->NXM_OF_ARP_SPA[],load:0x20fab000001->NXM_NX_ARP_SHA[],IN_PORT"
	tests := []struct {
		name        string
		table, prio int
		match       string
		actions     string
		purpose     Purpose
	}{
		{"classifier: gateway is local", 0, 100, "in_port=1", "resubmit(,10)", PurposeClassifier},
		{"classifier: container c1 is local", 0, 100, "in_port=3", "resubmit(,10)", PurposeClassifier},
		{"classifier: container c2 is local", 0, 100, "in_port=4", "resubmit(,10)", PurposeClassifier},
		{"classifier: tunnel h2", 0, 100, "in_port=2", "resubmit(,20)", PurposeClassifier},
		{"classifier: tunnel h3", 0, 100, "in_port=5", "resubmit(,20)", PurposeClassifier},
		{"classifier: unknown in_port dropped above the bridge's NORMAL", 0, 1, "", "drop", PurposeDefault},
		{"gateway's own gratuitous ARP is switched", 10, 310, "arp,arp_spa=10.244.3.1,arp_tpa=10.244.3.1", "resubmit(,30)", PurposeLocalDelivery},
		{"ARP responder for the gateway", 10, 300, "arp,arp_tpa=10.244.3.1,arp_op=1", responderGW, PurposeARPResponder},
		{"ARP responder for peer subnet h2", 10, 300, "arp,arp_op=1,arp_tpa=10.244.7.0/24", responderPeer, PurposeARPResponder},
		{"ARP responder for peer subnet h3", 10, 300, "arp,arp_op=1,arp_tpa=10.244.9.0/24", responderPeer, PurposeARPResponder},
		{"local broadcast and multicast stay local", 10, 250, "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00", "resubmit(,30)", PurposeLocalDelivery},
		{"to peer h2", 10, 200, "ip,nw_dst=10.244.7.0/24", "mod_dl_src:00:16:3e:0a:0b:0c,mod_dl_dst:02:0f:ab:00:00:01,dec_ttl,output:2", PurposeToPeer},
		{"to peer h3", 10, 200, "ip,nw_dst=10.244.9.0/24", "mod_dl_src:00:16:3e:0a:0b:0c,mod_dl_dst:02:0f:ab:00:00:01,dec_ttl,output:5", PurposeToPeer},
		{"local subnet is switched", 10, 150, "ip,nw_dst=10.244.3.0/24", "resubmit(,30)", PurposeLocalDelivery},
		{"unreachable cluster address dropped", 10, 100, "ip,nw_dst=10.244.0.0/16", "drop", PurposeDefault},
		{"outside the cluster: to the gateway for NAT", 10, 50, "ip", "mod_dl_dst:00:16:3e:0a:0b:0c,output:1", PurposeToGateway},
		{"other local traffic is switched", 10, 0, "", "resubmit(,30)", PurposeLocalDelivery},
		{"from tunnel to c1", 20, 100, "ip,nw_dst=10.244.3.5", "mod_dl_src:00:16:3e:0a:0b:0c,mod_dl_dst:0a:58:0a:f4:03:05,output:3", PurposeFromTunnel},
		{"from tunnel to c2", 20, 100, "ip,nw_dst=10.244.3.6", "mod_dl_src:00:16:3e:0a:0b:0c,mod_dl_dst:0a:58:0a:f4:03:06,output:4", PurposeFromTunnel},
		{"from tunnel to the gateway", 20, 100, "ip,nw_dst=10.244.3.1", "mod_dl_src:02:0f:ab:00:00:01,mod_dl_dst:00:16:3e:0a:0b:0c,output:1", PurposeFromTunnel},
		{"from tunnel: everything else (ARP, broadcast, non-IPv4) dropped", 20, 0, "", "drop", PurposeDefault},
		{"local delivery to the gateway", 30, 100, "dl_dst=00:16:3e:0a:0b:0c", "output:1", PurposeLocalDelivery},
		{"local delivery to c1", 30, 100, "dl_dst=0a:58:0a:f4:03:05", "output:3", PurposeLocalDelivery},
		{"local delivery to c2", 30, 100, "dl_dst=0a:58:0a:f4:03:06", "output:4", PurposeLocalDelivery},
		{"local flood to local ports only", 30, 50, "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00", "output:1,output:3,output:4", PurposeLocalDelivery},
		{"unknown unicast dropped, never flooded", 30, 0, "", "drop", PurposeDefault},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, ok := find(fs, tt.table, tt.prio, tt.match)
			if !ok {
				t.Fatalf("no flow table=%d priority=%d %s in\n%s", tt.table, tt.prio, tt.match, dump(fs))
			}
			if f.Actions != tt.actions {
				t.Errorf("actions\n got %s\nwant %s", f.Actions, tt.actions)
			}
			if f.Purpose() != tt.purpose {
				t.Errorf("purpose %s, want %s", f.Purpose(), tt.purpose)
			}
			if f.Cookie != makeCookie(tt.purpose, f.Table, f.Priority, f.Match) {
				t.Errorf("cookie %#x is not makeCookie of the flow", f.Cookie)
			}
		})
	}
	if len(fs) != len(tests) {
		t.Errorf("Plan made %d flows, the table covers %d:\n%s", len(fs), len(tests), dump(fs))
	}
}

func dump(fs []Flow) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.String() + "\n")
	}
	return b.String()
}

// TestPlanInvariants checks properties every plan must have, for several inputs.
func TestPlanInvariants(t *testing.T) {
	noContainers := testInput()
	noContainers.Containers = nil
	noPeers := testInput()
	noPeers.Tunnels = nil
	for name, in := range map[string]Input{"full": testInput(), "no containers": noContainers, "no peers": noPeers} {
		t.Run(name, func(t *testing.T) {
			fs := mustPlan(t, in)
			tunnels := map[string]bool{}
			for _, tn := range in.Tunnels {
				tunnels["output:"+strconv.Itoa(tn.OFPort)] = true
			}
			for _, f := range fs {
				if !IsOurs(f.Cookie) || f.Purpose() == PurposeNone || strings.HasPrefix(f.Purpose().String(), "unknown") {
					t.Errorf("flow %s: cookie %#x is not a known ovsfabric purpose", f, f.Cookie)
				}
				if f.Table == 0 && f.Priority == 0 && f.Match == "" {
					t.Errorf("flow %s would replace the bridge's own NORMAL flow", f)
				}
				if _, err := normalize(f); err != nil {
					t.Errorf("flow does not parse: %v", err)
				}
				// Only routed IPv4 ever goes into a tunnel: never ARP, never a broadcast.
				for _, a := range strings.Split(f.Actions, ",") {
					if tunnels[a] && (f.Purpose() != PurposeToPeer || !strings.HasPrefix(f.Match, "ip,nw_dst=")) {
						t.Errorf("flow %s sends into a tunnel without being a to-peer IPv4 route", f)
					}
				}
				if f.Table == TableFromTunnel && f.Priority > 0 && !strings.HasPrefix(f.Match, "ip,nw_dst=") {
					t.Errorf("flow %s accepts from a tunnel something that is not IPv4 to a local address", f)
				}
			}
			if err := checkUnique(fs); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestPlanDeterministic(t *testing.T) {
	want := mustPlan(t, testInput())
	r := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < 20; i++ {
		in := testInput()
		r.Shuffle(len(in.Containers), func(i, j int) { in.Containers[i], in.Containers[j] = in.Containers[j], in.Containers[i] })
		r.Shuffle(len(in.Tunnels), func(i, j int) { in.Tunnels[i], in.Tunnels[j] = in.Tunnels[j], in.Tunnels[i] })
		if got := mustPlan(t, in); !reflect.DeepEqual(got, want) {
			t.Fatalf("shuffled input gives another plan:\n%s\nwant\n%s", dump(got), dump(want))
		}
	}
	for i := 1; i < len(want); i++ {
		a, b := want[i-1], want[i]
		if a.Table > b.Table || a.Table == b.Table && a.Priority < b.Priority {
			t.Errorf("not sorted by table, then descending priority: %s before %s", a, b)
		}
	}
}

func TestPlanSkipsPortsWithoutOFPort(t *testing.T) {
	for _, ofport := range []int{0, -1} {
		in := testInput()
		in.Containers = append(in.Containers, Port{Name: "vf-new", OFPort: ofport, MAC: mac("0a:58:0a:f4:03:07"), IP: netip.MustParseAddr("10.244.3.7")})
		in.Tunnels = append(in.Tunnels, Tunnel{Peer: "h4", Port: "vxlan-h4", OFPort: ofport, Subnet: netip.MustParsePrefix("10.244.11.0/24")})
		got := mustPlan(t, in)
		if want := mustPlan(t, testInput()); !reflect.DeepEqual(got, want) {
			t.Errorf("ofport %d: ports without an ofport changed the plan:\n%s", ofport, dump(got))
		}
	}
	in := testInput()
	in.Gateway.OFPort = 0
	if _, err := Plan(in); !errors.Is(err, ErrNotReady) {
		t.Errorf("gateway without ofport: %v, want ErrNotReady", err)
	}
}

func TestPlanInvalid(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Input)
		want   string
	}{
		{"no cluster CIDR", func(in *Input) { in.ClusterCIDR = netip.Prefix{} }, "cluster CIDR"},
		{"IPv6 cluster", func(in *Input) { in.ClusterCIDR = netip.MustParsePrefix("fd00::/48") }, "cluster CIDR"},
		{"subnet not masked", func(in *Input) { in.Subnet = netip.MustParsePrefix("10.244.3.1/24") }, "subnet"},
		{"subnet outside cluster", func(in *Input) { in.Subnet = netip.MustParsePrefix("10.245.3.0/24") }, "not inside the cluster"},
		{"gateway outside subnet", func(in *Input) { in.Gateway.IP = netip.MustParseAddr("10.244.4.1") }, "gateway"},
		{"gateway without MAC", func(in *Input) { in.Gateway.MAC = nil }, "MAC"},
		{"gateway multicast MAC", func(in *Input) { in.Gateway.MAC = mac("01:00:5e:00:00:01") }, "MAC"},
		{"gateway ofport out of range", func(in *Input) { in.Gateway.OFPort = 65534 }, "out of range"},
		{"container outside subnet", func(in *Input) { in.Containers[0].IP = netip.MustParseAddr("10.244.7.5") }, "vf-c1"},
		{"container with the gateway's address", func(in *Input) { in.Containers[0].IP = in.Gateway.IP }, "already belongs"},
		{"two containers, one address", func(in *Input) { in.Containers[1].IP = in.Containers[0].IP }, "already belongs"},
		{"two containers, one MAC", func(in *Input) { in.Containers[1].MAC = in.Containers[0].MAC }, "already belongs"},
		{"container and tunnel, one ofport", func(in *Input) { in.Tunnels[0].OFPort = in.Containers[0].OFPort }, "already belongs"},
		{"tunnel subnet overlaps local", func(in *Input) { in.Tunnels[0].Subnet = netip.MustParsePrefix("10.244.0.0/20") }, "overlaps"},
		{"tunnel subnets overlap", func(in *Input) { in.Tunnels[1].Subnet = in.Tunnels[0].Subnet }, "overlaps"},
		{"tunnel subnet outside cluster", func(in *Input) { in.Tunnels[0].Subnet = netip.MustParsePrefix("192.168.7.0/24") }, "not inside"},
		{"tunnel subnet missing", func(in *Input) { in.Tunnels[0].Subnet = netip.Prefix{} }, "subnet"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := testInput()
			tt.change(&in)
			_, err := Plan(in)
			if !errors.Is(err, ErrInvalid) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Plan: %v, want ErrInvalid mentioning %q", err, tt.want)
			}
		})
	}
}

func TestPurpose(t *testing.T) {
	tests := []struct {
		cookie uint64
		want   string
	}{
		{0, "not-ovsfabric"},
		{0x1234, "not-ovsfabric"},
		{0x0fab_0003_0000_0000, "to-peer"},
		{makeCookie(PurposeARPResponder, 10, 300, "arp"), "arp-responder"},
		{0x0fab_00ff_0000_0001, "unknown(0x00ff)"},
	}
	for _, tt := range tests {
		if got := PurposeOf(tt.cookie).String(); got != tt.want {
			t.Errorf("PurposeOf(%#x) = %s, want %s", tt.cookie, got, tt.want)
		}
	}
	c := makeCookie(PurposeToPeer, 10, 200, "ip,nw_dst=10.244.7.0/24")
	if c&CookieMask != CookieBase || c&IDMask == 0 || c != makeCookie(PurposeToPeer, 10, 200, "ip,nw_dst=10.244.7.0/24") {
		t.Errorf("makeCookie = %#x: want base 0x0fab, a non-zero stable ID", c)
	}
	if c == makeCookie(PurposeToPeer, 10, 200, "ip,nw_dst=10.244.9.0/24") {
		t.Error("two flows got the same cookie")
	}
}

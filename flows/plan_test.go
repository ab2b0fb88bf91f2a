package flows

import (
	"errors"
	"flag"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/plan-*.txt from Plan")

func mac(s string) net.HardwareAddr { return mustMAC(s) }

var (
	gwMAC = "00:16:3e:0a:0b:0c"
	c1MAC = "0a:58:0a:f4:03:05"
	c2MAC = "0a:58:0a:f4:03:06"
	b1MAC = "0a:58:0a:32:03:05"
	r1MAC = "0a:58:0a:3c:03:05"
)

func addr(s string) netip.Addr     { return netip.MustParseAddr(s) }
func prefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// testInput is a host serving three networks, with the ofports
//
//	1 fabric0, 2 tunnel to h2, 5 tunnel to h3,
//	3 c1 and 4 c2 on "default" (key 0, 10.244.0.0/16, slice 10.244.3.0/24; h2 has 10.244.7.0/24, h3 10.244.9.0/24),
//	6 b1 on "blue" (key 100, 10.50.0.0/16, slice 10.50.3.0/24; h2 has 10.50.7.0/24),
//	7 r1 on "red" (key 200, internal, 10.60.0.0/16, slice 10.60.3.0/24; h3 has 10.60.9.0/24),
//
// and the fabric DNS's shared address 169.254.53.53.
func testInput() Input {
	return Input{
		Gateway: Port{Name: "fabric0", OFPort: 1, MAC: mac(gwMAC)},
		DNS:     addr("169.254.53.53"),
		Networks: []Network{
			{
				Name: "default", Key: 0, CIDR: prefix("10.244.0.0/16"), Subnet: prefix("10.244.3.0/24"), Gateway: addr("10.244.3.1"),
				Containers: []Port{
					{Name: "vf-c1", OFPort: 3, MAC: mac(c1MAC), IP: addr("10.244.3.5")},
					{Name: "vf-c2", OFPort: 4, MAC: mac(c2MAC), IP: addr("10.244.3.6")},
				},
				Tunnels: []Tunnel{
					{Peer: "h2", Port: "vxlan-h2", OFPort: 2, Subnet: prefix("10.244.7.0/24")},
					{Peer: "h3", Port: "vxlan-h3", OFPort: 5, Subnet: prefix("10.244.9.0/24")},
				},
			},
			{
				Name: "blue", Key: 100, CIDR: prefix("10.50.0.0/16"), Subnet: prefix("10.50.3.0/24"), Gateway: addr("10.50.3.1"),
				Containers: []Port{{Name: "vf-b1", OFPort: 6, MAC: mac(b1MAC), IP: addr("10.50.3.5")}},
				Tunnels:    []Tunnel{{Peer: "h2", Port: "vxlan-h2", OFPort: 2, Subnet: prefix("10.50.7.0/24")}},
			},
			{
				Name: "red", Key: 200, Internal: true, CIDR: prefix("10.60.0.0/16"), Subnet: prefix("10.60.3.0/24"), Gateway: addr("10.60.3.1"),
				Containers: []Port{{Name: "vf-r1", OFPort: 7, MAC: mac(r1MAC), IP: addr("10.60.3.5")}},
				Tunnels:    []Tunnel{{Peer: "h3", Port: "vxlan-h3", OFPort: 5, Subnet: prefix("10.60.9.0/24")}},
			},
		},
	}
}

// def is in's default network.
func def(in *Input) *Network { return &in.Networks[0] }

func mustPlan(t testing.TB, in Input) []Flow {
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

// TestPlanGolden compares the whole plan of testInput with testdata/plan-three-networks.txt
// (go test ./flows -run TestPlanGolden -update rewrites it; review the diff).
func TestPlanGolden(t *testing.T) {
	got := dump(mustPlan(t, testInput()))
	const file = "testdata/plan-three-networks.txt"
	if *update {
		if err := os.WriteFile(file, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	if got != string(want) {
		t.Errorf("plan differs from %s (rerun with -update and review the diff):\n%s", file, got)
	}
}

func TestPlanFlows(t *testing.T) {
	fs := mustPlan(t, testInput())
	const responderGW = "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],mod_dl_src:00:16:3e:0a:0b:0c,load:0x2->NXM_OF_ARP_OP[]," +
		"move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]," +
		"load:0x163e0a0b0c->NXM_NX_ARP_SHA[],load:0xaf40301->NXM_OF_ARP_SPA[],IN_PORT"
	const responderRouter = "move:NXM_OF_ETH_SRC[]->NXM_OF_ETH_DST[],mod_dl_src:02:0f:ab:00:00:01,load:0x2->NXM_OF_ARP_OP[]," +
		"move:NXM_NX_ARP_SHA[]->NXM_NX_ARP_THA[],move:NXM_OF_ARP_TPA[]->NXM_NX_REG0[],move:NXM_OF_ARP_SPA[]->NXM_OF_ARP_TPA[]," +
		"move:NXM_NX_REG0[]->NXM_OF_ARP_SPA[],load:0x20fab000001->NXM_NX_ARP_SHA[],IN_PORT"
	const mcast = "dl_dst=01:00:00:00:00:00/01:00:00:00:00:00"
	tests := []struct {
		name        string
		table, prio int
		match       string
		actions     string
		purpose     Purpose
	}{
		{"c1 sends IPv4 from its own address and MAC on default", 0, 100, "ip,in_port=3,dl_src=0a:58:0a:f4:03:05,nw_src=10.244.3.5", "load:0->NXM_NX_REG6[],resubmit(,10)", PurposeClassifier},
		{"c1 sends ARP from its own address and MAC", 0, 100, "arp,in_port=3,dl_src=0a:58:0a:f4:03:05,arp_spa=10.244.3.5,arp_sha=0a:58:0a:f4:03:05", "load:0->NXM_NX_REG6[],resubmit(,10)", PurposeClassifier},
		{"b1 is on blue (key 100)", 0, 100, "ip,in_port=6,dl_src=0a:58:0a:32:03:05,nw_src=10.50.3.5", "load:0x64->NXM_NX_REG6[],resubmit(,10)", PurposeClassifier},
		{"c1: anything else dropped", 0, 50, "in_port=3", "drop", PurposePortSecurity},
		{"gateway IPv4 into blue", 0, 100, "ip,in_port=1,nw_dst=10.50.0.0/16", "load:0x64->NXM_NX_REG6[],resubmit(,10)", PurposeClassifier},
		{"gateway ARP into red", 0, 100, "arp,in_port=1,arp_tpa=10.60.0.0/16", "load:0xc8->NXM_NX_REG6[],resubmit(,10)", PurposeClassifier},
		{"gateway: anything for no network dropped", 0, 50, "in_port=1", "drop", PurposePortSecurity},
		{"tunnel h2, once for all networks", 0, 100, "in_port=2", "resubmit(,20)", PurposeClassifier},
		{"unknown in_port dropped above the bridge's NORMAL", 0, 1, "", "drop", PurposeDefault},
		{"default: gateway's gratuitous ARP switched", 10, 310, "arp,reg6=0,arp_spa=10.244.3.1,arp_tpa=10.244.3.1", "resubmit(,30)", PurposeLocalDelivery},
		{"default: ARP responder for its gateway", 10, 300, "arp,reg6=0,arp_tpa=10.244.3.1,arp_op=1", responderGW, PurposeARPResponder},
		{"blue: ARP in the local slice switched", 10, 290, "arp,reg6=0x64,arp_tpa=10.50.3.0/24", "resubmit(,30)", PurposeLocalDelivery},
		{"blue: ARP responder for the rest of the CIDR", 10, 280, "arp,reg6=0x64,arp_tpa=10.50.0.0/16,arp_op=1", responderRouter, PurposeARPResponder},
		{"ARP replies to the host kernel (asking from any address)", 10, 275, "arp,dl_dst=00:16:3e:0a:0b:0c,arp_op=2", "resubmit(,30)", PurposeLocalDelivery},
		{"any other ARP dropped", 10, 270, "arp", "drop", PurposeDefault},
		{"blue: directed broadcast in blue", 10, 250, "ip,reg6=0x64," + mcast + ",nw_dst=10.50.0.0/16", "resubmit(,30)", PurposeLocalDelivery},
		{"multicast stays on the host", 10, 240, "ip," + mcast + ",nw_dst=224.0.0.0/4", "resubmit(,30)", PurposeLocalDelivery},
		{"default to peer h2 with key 0", 10, 200, "ip,reg6=0,nw_dst=10.244.7.0/24", "load:0->NXM_NX_TUN_ID[],mod_dl_src:00:16:3e:0a:0b:0c,mod_dl_dst:02:0f:ab:00:00:01,dec_ttl,output:2", PurposeToPeer},
		{"blue to peer h2 with key 100", 10, 200, "ip,reg6=0x64,nw_dst=10.50.7.0/24", "load:0x64->NXM_NX_TUN_ID[],mod_dl_src:00:16:3e:0a:0b:0c,mod_dl_dst:02:0f:ab:00:00:01,dec_ttl,output:2", PurposeToPeer},
		{"red to peer h3 with key 200", 10, 200, "ip,reg6=0xc8,nw_dst=10.60.9.0/24", "load:0xc8->NXM_NX_TUN_ID[],mod_dl_src:00:16:3e:0a:0b:0c,mod_dl_dst:02:0f:ab:00:00:01,dec_ttl,output:5", PurposeToPeer},
		{"blue: local slice switched", 10, 150, "ip,reg6=0x64,nw_dst=10.50.3.0/24", "resubmit(,30)", PurposeLocalDelivery},
		{"blue's CIDR dropped for everyone else", 10, 100, "ip,nw_dst=10.50.0.0/16", "drop", PurposeDefault},
		{"red is internal: no way out", 10, 60, "ip,reg6=0xc8", "drop", PurposeDefault},
		{"the way out for the others", 10, 50, "ip", "mod_dl_dst:00:16:3e:0a:0b:0c,output:1", PurposeToGateway},
		{"from local: default drop", 10, 0, "", "drop", PurposeDefault},
		{"from tunnel with key 0 to c1", 20, 100, "ip,tun_id=0,nw_dst=10.244.3.5", "mod_dl_src:00:16:3e:0a:0b:0c,mod_dl_dst:0a:58:0a:f4:03:05,output:3", PurposeFromTunnel},
		{"from tunnel with key 100 to b1", 20, 100, "ip,tun_id=0x64,nw_dst=10.50.3.5", "mod_dl_src:00:16:3e:0a:0b:0c,mod_dl_dst:0a:58:0a:32:03:05,output:6", PurposeFromTunnel},
		{"from tunnel with key 200 to red's gateway", 20, 100, "ip,tun_id=0xc8,nw_dst=10.60.3.1", "mod_dl_src:02:0f:ab:00:00:01,mod_dl_dst:00:16:3e:0a:0b:0c,output:1", PurposeFromTunnel},
		{"from tunnel: everything else dropped", 20, 0, "", "drop", PurposeDefault},
		{"default: to the gateway", 30, 100, "reg6=0,dl_dst=00:16:3e:0a:0b:0c", "output:1", PurposeLocalDelivery},
		{"blue: to b1", 30, 100, "reg6=0x64,dl_dst=0a:58:0a:32:03:05", "output:6", PurposeLocalDelivery},
		{"default: flood to default's ports and the gateway", 30, 50, "reg6=0," + mcast, "output:1,output:3,output:4", PurposeLocalDelivery},
		{"red: flood to red's ports and the gateway", 30, 50, "reg6=0xc8," + mcast, "output:1,output:7", PurposeLocalDelivery},
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
			if f.Cookie&^IDMask != makeCookie(tt.purpose, f.Table, f.Priority, f.Match)&^IDMask {
				t.Errorf("cookie %#x is not makeCookie of the flow", f.Cookie)
			}
		})
	}
}

func dump(fs []Flow) string {
	var b strings.Builder
	for _, f := range fs {
		b.WriteString(f.String() + "\n")
	}
	return b.String()
}

// fields parses a match or an action list into its comma-separated fields, keeping the
// commas inside parentheses and brackets.
func fields(s string) []string {
	var out []string
	depth, start := 0, 0
	for i, c := range s {
		switch c {
		case '(', '[':
			depth++
		case ')', ']':
			depth--
		case ',':
			if depth == 0 {
				out = append(out, s[start:i])
				start = i + 1
			}
		}
	}
	if s != "" {
		out = append(out, s[start:])
	}
	return out
}

// field is the value of name in the match m, "" when m does not match on it.
func field(m, name string) string {
	for _, f := range fields(m) {
		if k, v, ok := strings.Cut(f, "="); ok && k == name {
			return v
		}
	}
	return ""
}

// TestPlanIsolation checks, flow by flow, that networks cannot reach each other and that
// containers cannot spoof: every way to a container's port or into a tunnel is bound to one
// network, and that network is the port's.
func TestPlanIsolation(t *testing.T) {
	whole := testInput()
	whole.Networks = append(whole.Networks, Network{Name: "solo", Key: 7, CIDR: prefix("10.70.0.0/24"), Subnet: prefix("10.70.0.0/24"), Gateway: addr("10.70.0.1"),
		Containers: []Port{{Name: "vf-s1", OFPort: 9, MAC: mac("0a:58:0a:46:00:05"), IP: addr("10.70.0.5")}}})
	for name, in := range map[string]Input{"three networks": testInput(), "a network on one host only": whole, "10 networks × 10 peers": benchInput(10, 10)} {
		t.Run(name, func(t *testing.T) { checkIsolation(t, in, mustPlan(t, in)) })
	}
}

func checkIsolation(t *testing.T, in Input, fs []Flow) {
	netOfPort := map[string]string{} // "output:N" → key as printed
	keyOf := map[string]Network{}
	for _, n := range in.Networks {
		k := hexNum(uint64(n.Key))
		keyOf[k] = n
		for _, c := range n.Containers {
			netOfPort["output:"+strconv.Itoa(c.OFPort)] = k
		}
	}
	tunnels := map[string]bool{}
	for _, n := range in.Networks {
		for _, tn := range n.Tunnels {
			tunnels["output:"+strconv.Itoa(tn.OFPort)] = true
		}
	}
	gwOut := "output:" + strconv.Itoa(in.Gateway.OFPort)
	containers := map[string]Port{}
	for _, n := range in.Networks {
		for _, c := range n.Containers {
			containers[strconv.Itoa(c.OFPort)] = c
		}
	}
	for _, f := range fs {
		acts := fields(f.Actions)
		reg, tun := field(f.Match, "reg6"), field(f.Match, "tun_id")
		for _, a := range acts {
			switch {
			case netOfPort[a] != "":
				// Only table 30 (by network) and table 20 (by tunnel key) reach a container.
				want := netOfPort[a]
				if f.Table == TableLocal && reg != want || f.Table == TableFromTunnel && tun != want || f.Table != TableLocal && f.Table != TableFromTunnel {
					t.Errorf("flow %s outputs to a port of network %q without being bound to it", f, keyOf[want].Name)
				}
			case tunnels[a]:
				if f.Table != TableFromLocal || f.Purpose() != PurposeToPeer || reg == "" || !slices.Contains(acts, "load:"+reg+"->NXM_NX_TUN_ID[]") {
					t.Errorf("flow %s sends into a tunnel without its network's key", f)
				}
				n := keyOf[reg]
				if d := prefix(field(f.Match, "nw_dst")); !n.CIDR.Contains(d.Addr()) {
					t.Errorf("flow %s sends network %q's packets to %s, outside it", f, n.Name, d)
				}
			case a == gwOut && f.Table == TableFromLocal && in.PeersViaGateway && f.Purpose() == PurposeToPeer:
				// Encrypted: a peer slice of the packet's own network, through the host kernel.
				n := keyOf[reg]
				if d := prefix(field(f.Match, "nw_dst")); reg == "" || !n.CIDR.Contains(d.Addr()) {
					t.Errorf("flow %s sends network %q's packets to %s, outside it", f, n.Name, d)
				}
			case a == gwOut && f.Table == TableFromLocal && reg == "" && f.Priority > 60:
				// Above the internal networks' drop, for every network: only the fabric DNS's
				// shared address, on port 53.
				if !in.DNS.IsValid() || field(f.Match, "nw_dst") != in.DNS.String() || field(f.Match, "tp_dst") != "53" ||
					!strings.HasPrefix(f.Match, "udp,") && !strings.HasPrefix(f.Match, "tcp,") {
					t.Errorf("flow %s sends every network, internal ones too, out through the gateway", f)
				}
			case a == gwOut && f.Table == TableFromLocal:
				if reg != "" && keyOf[reg].Internal {
					t.Errorf("flow %s lets internal network %q out", f, keyOf[reg].Name)
				}
			}
		}
		if f.Table == TableClassifier && strings.HasPrefix(f.Actions, "load:") {
			k := strings.TrimSuffix(strings.TrimPrefix(acts[0], "load:"), "->NXM_NX_REG6[]")
			n := keyOf[k]
			port := field(f.Match, "in_port")
			if port == strconv.Itoa(in.Gateway.OFPort) {
				d := field(f.Match, "nw_dst") + field(f.Match, "arp_tpa")
				if prefix(d) != n.CIDR {
					t.Errorf("flow %s puts the gateway's packets for %s into network %q", f, d, n.Name)
				}
				continue
			}
			c := containers[port]
			if netOfPort["output:"+port] != k {
				t.Errorf("flow %s puts port %s into network %q, not its own", f, port, n.Name)
			}
			if field(f.Match, "dl_src") != c.MAC.String() || field(f.Match, "nw_src")+field(f.Match, "arp_spa") != c.IP.String() ||
				strings.HasPrefix(f.Match, "arp,") && field(f.Match, "arp_sha") != c.MAC.String() {
				t.Errorf("flow %s admits from port %s more than its own address %s and MAC %s", f, port, c.IP, c.MAC)
			}
		}
		// A hand-off to local switching keeps the register of the packet's own network; the
		// flows that resubmit without matching it are the multicast ones and the ARP replies to
		// the gateway's MAC.
		if f.Table == TableFromLocal && f.Actions == "resubmit(,30)" && reg == "" {
			if d := field(f.Match, "nw_dst"); d != "224.0.0.0/4" && d != "255.255.255.255" && field(f.Match, "dl_dst") != in.Gateway.MAC.String() {
				t.Errorf("flow %s switches locally without binding the network", f)
			}
		}
	}
	// Each network's drop of its CIDR comes before the way out, for every other network, and
	// an internal network's drop of everything else.
	out, ok := find(fs, TableFromLocal, 50, "ip")
	if !ok || out.Actions != "mod_dl_dst:"+in.Gateway.MAC.String()+","+gwOut {
		t.Fatalf("no way out at priority 50, or another one: %s", out)
	}
	for _, n := range in.Networks {
		if f, ok := find(fs, TableFromLocal, 100, "ip,nw_dst="+n.CIDR.String()); !ok || f.Actions != "drop" {
			t.Errorf("no drop of network %q's CIDR for the others", n.Name)
		}
		var dropped bool
		for _, f := range fs {
			dropped = dropped || f.Table == TableFromLocal && f.Priority > out.Priority && f.Match == "ip,"+RegNetwork+"="+hexNum(uint64(n.Key)) && f.Actions == "drop"
		}
		if dropped != n.Internal {
			t.Errorf("network %q (internal %v): everything else dropped before the way out: %v", n.Name, n.Internal, dropped)
		}
	}
}

// TestPlanInvariants checks properties every plan must have, for several inputs.
func TestPlanInvariants(t *testing.T) {
	noContainers := testInput()
	for i := range noContainers.Networks {
		noContainers.Networks[i].Containers = nil
	}
	noPeers := testInput()
	for i := range noPeers.Networks {
		noPeers.Networks[i].Tunnels = nil
	}
	onlyDefault := testInput()
	onlyDefault.Networks = onlyDefault.Networks[:1]
	none := testInput()
	none.Networks = nil
	for name, in := range map[string]Input{"full": testInput(), "no containers": noContainers, "no peers": noPeers, "only default": onlyDefault, "no networks": none} {
		t.Run(name, func(t *testing.T) {
			fs := mustPlan(t, in)
			tunnels := map[string]bool{"output:2": true, "output:5": true}
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
					if tunnels[a] && (f.Purpose() != PurposeToPeer || !strings.HasPrefix(f.Match, "ip,")) {
						t.Errorf("flow %s sends into a tunnel without being a to-peer IPv4 route", f)
					}
				}
				if f.Table == TableFromTunnel && f.Priority > 0 && (!strings.HasPrefix(f.Match, "ip,tun_id=") || field(f.Match, "nw_dst") == "") {
					t.Errorf("flow %s accepts from a tunnel something that is not IPv4 with a key to a local address", f)
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
		r.Shuffle(len(in.Networks), func(i, j int) { in.Networks[i], in.Networks[j] = in.Networks[j], in.Networks[i] })
		for k := range in.Networks {
			n := &in.Networks[k]
			r.Shuffle(len(n.Containers), func(i, j int) { n.Containers[i], n.Containers[j] = n.Containers[j], n.Containers[i] })
			r.Shuffle(len(n.Tunnels), func(i, j int) { n.Tunnels[i], n.Tunnels[j] = n.Tunnels[j], n.Tunnels[i] })
		}
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

// TestPlanCookieCollisions: flows whose IDs collide get distinct cookies, deterministically,
// and the same flows twice are ErrInvalid.
func TestPlanCookieCollisions(t *testing.T) {
	var b builder
	b.add(10, 200, PurposeToPeer, "ip,nw_dst=10.1.0.0/24", "drop")
	b.add(10, 100, PurposeToPeer, "ip,nw_dst=10.2.0.0/24", "drop")
	b.add(10, 100, PurposeToPeer, "ip,nw_dst=10.3.0.0/24", "drop")
	// Force the collisions a hash makes among thousands of flows.
	for _, fs := range b.buckets {
		for i := range *fs {
			(*fs)[i].Cookie = makeCookie(PurposeToPeer, 0, 0, "")
		}
	}
	fs, err := b.flows()
	if err != nil {
		t.Fatal(err)
	}
	if err := checkUnique(fs); err != nil {
		t.Error(err)
	}
	base := makeCookie(PurposeToPeer, 0, 0, "")
	for i, f := range fs {
		if want := base&^IDMask | (base+uint64(i))&IDMask; f.Cookie != want {
			t.Errorf("flow %d %s: cookie %#x, want %#x", i, f, f.Cookie, want)
		}
	}
	var twice builder
	twice.add(10, 100, PurposeToPeer, "ip,nw_dst=10.3.0.0/24", "drop")
	twice.add(10, 100, PurposeToPeer, "ip,nw_dst=10.3.0.0/24", "output:2")
	if _, err := twice.flows(); !errors.Is(err, ErrInvalid) {
		t.Errorf("the same flow twice: %v, want ErrInvalid", err)
	}
}

func TestPlanSkipsPortsWithoutOFPort(t *testing.T) {
	for _, ofport := range []int{0, -1} {
		in := testInput()
		d := def(&in)
		d.Containers = append(d.Containers, Port{Name: "vf-new", OFPort: ofport, MAC: mac("0a:58:0a:f4:03:07"), IP: addr("10.244.3.7")})
		d.Tunnels = append(d.Tunnels, Tunnel{Peer: "h4", Port: "vxlan-h4", OFPort: ofport, Subnet: prefix("10.244.11.0/24")})
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
	blue := func(in *Input) *Network { return &in.Networks[1] }
	tests := []struct {
		name   string
		change func(*Input)
		want   string
	}{
		{"no CIDR", func(in *Input) { def(in).CIDR = netip.Prefix{} }, "CIDR"},
		{"IPv6 CIDR", func(in *Input) { def(in).CIDR = prefix("fd00::/48") }, "CIDR"},
		{"multicast CIDR", func(in *Input) { def(in).CIDR = prefix("224.0.0.0/8") }, "not unicast"},
		{"everything", func(in *Input) { def(in).CIDR = prefix("0.0.0.0/0") }, "not unicast"},
		{"slice not masked", func(in *Input) { def(in).Subnet = prefix("10.244.3.1/24") }, "slice"},
		{"slice outside its CIDR", func(in *Input) { def(in).Subnet = prefix("10.245.3.0/24") }, "not inside the CIDR"},
		{"networks overlap", func(in *Input) { blue(in).CIDR = prefix("10.0.0.0/8") }, "overlaps"},
		{"networks overlap, one inside the other", func(in *Input) {
			b := blue(in)
			b.CIDR, b.Subnet, b.Gateway, b.Containers, b.Tunnels = prefix("10.244.128.0/17"), prefix("10.244.128.0/24"), addr("10.244.128.1"), nil, nil
		}, "overlaps"},
		{"two networks, one key", func(in *Input) { blue(in).Key = 0 }, "key 0 already belongs"},
		{"two networks, one name", func(in *Input) { blue(in).Name = "default" }, "two networks are named"},
		{"network without a name", func(in *Input) { blue(in).Name = "" }, "no name"},
		{"gateway outside the slice", func(in *Input) { def(in).Gateway = addr("10.244.4.1") }, "gateway"},
		{"gateway is the slice's network address", func(in *Input) { def(in).Gateway = addr("10.244.3.0") }, "gateway"},
		{"gateway port without MAC", func(in *Input) { in.Gateway.MAC = nil }, "MAC"},
		{"gateway port multicast MAC", func(in *Input) { in.Gateway.MAC = mac("01:00:5e:00:00:01") }, "MAC"},
		{"gateway port ofport out of range", func(in *Input) { in.Gateway.OFPort = 65534 }, "out of range"},
		{"container outside its slice", func(in *Input) { def(in).Containers[0].IP = addr("10.244.7.5") }, "vf-c1"},
		{"container in another network's slice", func(in *Input) { def(in).Containers[0].IP = addr("10.50.3.9") }, "vf-c1"},
		{"container with the gateway's address", func(in *Input) { def(in).Containers[0].IP = def(in).Gateway }, "already belongs"},
		{"two containers, one address", func(in *Input) { def(in).Containers[1].IP = def(in).Containers[0].IP }, "already belongs"},
		{"two containers on two networks, one MAC", func(in *Input) { blue(in).Containers[0].MAC = def(in).Containers[0].MAC }, "already belongs"},
		{"container with the gateway's MAC", func(in *Input) { blue(in).Containers[0].MAC = in.Gateway.MAC }, "already belongs"},
		{"two containers on two networks, one ofport", func(in *Input) { blue(in).Containers[0].OFPort = 3 }, "already belongs"},
		{"container and tunnel, one ofport", func(in *Input) { blue(in).Tunnels[0].OFPort = def(in).Containers[0].OFPort }, "already belongs"},
		{"one tunnel ofport, two ports", func(in *Input) { blue(in).Tunnels[0].Port = "vxlan-other" }, "already belongs to tunnel port"},
		{"tunnel slice overlaps the local slice", func(in *Input) { def(in).Tunnels[0].Subnet = prefix("10.244.0.0/20") }, "overlaps the local slice"},
		{"tunnel slices overlap", func(in *Input) { def(in).Tunnels[1].Subnet = def(in).Tunnels[0].Subnet }, "overlaps"},
		{"tunnel slices overlap, one inside the other", func(in *Input) { def(in).Tunnels[1].Subnet = prefix("10.244.7.128/25") }, "overlaps"},
		{"tunnel slice outside its network", func(in *Input) { blue(in).Tunnels[0].Subnet = prefix("10.244.7.0/24") }, "not inside"},
		{"tunnel slice missing", func(in *Input) { def(in).Tunnels[0].Subnet = netip.Prefix{} }, "slice"},
		{"DNS address in a network", func(in *Input) { in.DNS = addr("10.50.200.53") }, "lies in network"},
		{"DNS address IPv6", func(in *Input) { in.DNS = addr("fe80::53") }, "not unicast IPv4"},
		{"DNS address loopback", func(in *Input) { in.DNS = addr("127.0.0.53") }, "not unicast IPv4"},
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
		{makeCookie(PurposePortSecurity, 0, 50, "in_port=3"), "port-security"},
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
	// FNV-1a of "10/200/ip,nw_dst=10.244.7.0/24", as hash/fnv computes it.
	if id := c & IDMask; id != 0x223c27ec {
		t.Errorf("flow ID %#x, want FNV-1a 0x223c27ec", id)
	}
}

// checkUnique makes sure no two flows share a table, priority and match (fields in any
// order: one would replace the other) or a table and cookie (Reconcile deletes by cookie).
func checkUnique(fs []Flow) error {
	type key struct {
		table, prio int
		match       string
	}
	type ckey struct {
		table  int
		cookie uint64
	}
	seen := map[key]bool{}
	cookies := map[ckey]Flow{}
	for _, f := range fs {
		k := key{f.Table, f.Priority, sortedFields(f.Match)}
		if seen[k] {
			return invalid("two flows in table %d at priority %d match %q", f.Table, f.Priority, f.Match)
		}
		seen[k] = true
		ck := ckey{f.Table, f.Cookie}
		if o, dup := cookies[ck]; dup {
			return invalid("cookie collision in table %d between %q and %q", f.Table, o.Match, f.Match)
		}
		cookies[ck] = f
	}
	return nil
}

// benchInput is a host serving n networks, each with peers peer slices and 4 containers.
func benchInput(networks, peers int) Input {
	in := Input{Gateway: Port{Name: "fabric0", OFPort: 1, MAC: mac(gwMAC)}}
	port := 2 + peers // tunnels are 2 … 1+peers
	for k := 0; k < networks; k++ {
		cidr := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(16 + k/256), byte(k), 0, 0}), 16)
		slice := func(i int) netip.Prefix {
			return netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(16 + k/256), byte(k), byte(i), 0}), 24)
		}
		n := Network{Name: "n" + strconv.Itoa(k), Key: uint32(k), CIDR: cidr, Subnet: slice(0), Gateway: slice(0).Addr().Next(), Internal: k%10 == 9}
		for c := 0; c < 4; c++ {
			ip := n.Gateway
			for j := 0; j <= c; j++ {
				ip = ip.Next()
			}
			m := net.HardwareAddr{0x0a, 0x58, byte(k >> 8), byte(k), 0, byte(c + 1)}
			n.Containers = append(n.Containers, Port{Name: "vf-" + strconv.Itoa(port), OFPort: port, MAC: m, IP: ip})
			port++
		}
		for p := 1; p <= peers; p++ {
			n.Tunnels = append(n.Tunnels, Tunnel{Peer: "h" + strconv.Itoa(p), Port: "vx-h" + strconv.Itoa(p), OFPort: 1 + p, Subnet: slice(p)})
		}
		in.Networks = append(in.Networks, n)
	}
	return in
}

// BenchmarkPlan100x100 plans a host serving 100 networks with 100 peers each (and 4
// containers per network): about 10,000 to-peer flows.
func BenchmarkPlan100x100(b *testing.B) {
	in := benchInput(100, 100)
	fs := mustPlan(b, in)
	b.ReportMetric(float64(len(fs)), "flows")
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Plan(in); err != nil {
			b.Fatal(err)
		}
	}
}

package flows

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/labtest"
)

// TestNetworksTraceLab installs the plan of testInput (three networks: default, blue, red
// internal) on a real br-int (OVS in a lab namespace) and sends packets through it with
// `ovs-appctl ofproto/trace`: isolation between networks on the same host, through the
// gateway and by ARP; port security (spoofed source address or MAC); the tunnel key set per
// network on the way out and matched on the way in; no way out of an internal network. It
// also proves that OVS prints every flow the way Plan writes it (a second Reconcile sends
// nothing). With -update it rewrites testdata/dump-ovs-3.1.txt from the bridge.
func TestNetworksTraceLab(t *testing.T) {
	labtest.Require(t, "the networks trace lab test (network namespace, OVS daemons)", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ovs-appctl")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, lab.Config{Dir: t.TempDir() + "/lab", Hosts: 1})
	if err != nil {
		labtest.SkipOrFail(t, "lab cannot start here: %v", err)
	}
	t.Cleanup(func() {
		dctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		if err := l.Down(dctx); err != nil {
			t.Errorf("lab down: %v", err)
		}
		if left := l.Leftovers(); len(left) > 0 {
			t.Errorf("lab left things behind: %v", left)
		}
	})
	h := l.Hosts[0]
	in := testInput()
	// The bridge and its ports; the containers' ports are internal ports (a trace needs only
	// their OpenFlow numbers), the tunnels carry their key in the flow (options:key=flow).
	vsctl := []string{"add-br", "br-int", "--", "set", "bridge", "br-int", "datapath_type=" + l.Datapath, "fail_mode=standalone"}
	port := func(name string, ofport int, settings ...string) {
		vsctl = append(vsctl, "--", "add-port", "br-int", name, "--", "set", "interface", name, "ofport_request="+strconv.Itoa(ofport))
		vsctl = append(vsctl, settings...)
	}
	// Each tunnel leads to an address on the underlay that no host has: with its neighbour
	// entry set by hand, ovs-vswitchd encapsulates toward it, and the trace shows the VNI.
	peerIP := func(ofport int) netip.Addr {
		a := h.UnderlayPrefix.Masked().Addr()
		for i := 0; i < 200+ofport; i++ {
			a = a.Next()
		}
		return a
	}
	port(in.Gateway.Name, in.Gateway.OFPort, "type=internal", "mac="+strconv.Quote(in.Gateway.MAC.String()))
	want := map[string]int{in.Gateway.Name: in.Gateway.OFPort}
	for _, n := range in.Networks {
		for _, c := range n.Containers {
			port(c.Name, c.OFPort, "type=internal")
			want[c.Name] = c.OFPort
		}
		for _, tn := range n.Tunnels {
			if _, done := want[tn.Port]; !done {
				port(tn.Port, tn.OFPort, "type=vxlan", "options:remote_ip="+peerIP(tn.OFPort).String(), "options:key=flow")
				want[tn.Port] = tn.OFPort
			}
		}
	}
	if _, err := h.Vsctl(ctx, vsctl...); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for name, ofport := range want {
		for {
			out, err := h.Vsctl(ctx, "get", "interface", name, "ofport")
			if err == nil && strings.TrimSpace(out) == strconv.Itoa(ofport) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("port %s: ofport %q (%v), want %d", name, out, err, ofport)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	if l.Datapath == "netdev" {
		for _, ofport := range []int{2, 5} {
			if _, err := h.Appctl(ctx, "ovs-vswitchd", "tnl/neigh/set", "br-phy", peerIP(ofport).String(), "02:00:00:00:00:0"+strconv.Itoa(ofport)); err != nil {
				t.Fatal(err)
			}
		}
	}

	sw := NewOFCtl("br-int", WithEnv(h.Env()...))
	desired := mustPlan(t, in)
	if res, err := Reconcile(ctx, sw, desired); err != nil || res != (Result{Added: len(desired)}) {
		t.Fatalf("first reconcile: %s, %v; want %d added", res, err, len(desired))
	}
	if res, err := Reconcile(ctx, sw, desired); err != nil || res != (Result{Unchanged: len(desired)}) {
		dumped, _ := h.Ofctl(ctx, "dump-flows", "br-int")
		t.Fatalf("second reconcile: %s, %v; want all %d unchanged (OVS prints a flow otherwise than Plan writes it):\n%s", res, err, len(desired), dumped)
	}
	if *update {
		out, err := h.Ofctl(ctx, "dump-flows", "br-int", "cookie=0x0fab000000000000/0xffff000000000000")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile("testdata/dump-ovs-3.1.txt", []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	const (
		gw    = "00:16:3e:0a:0b:0c"
		bcast = "ff:ff:ff:ff:ff:ff"
	)
	ip := func(port int, src, dst, srcIP, dstIP string) string {
		return fmt.Sprintf("in_port=%d,dl_src=%s,dl_dst=%s,ip,nw_src=%s,nw_dst=%s,nw_ttl=64", port, src, dst, srcIP, dstIP)
	}
	arp := func(port int, src, sha, spa, tpa string) string {
		return fmt.Sprintf("in_port=%d,dl_src=%s,dl_dst=%s,arp,arp_op=1,arp_sha=%s,arp_spa=%s,arp_tpa=%s", port, src, bcast, sha, spa, tpa)
	}
	fromTunnel := func(port int, key, srcIP, dstIP string) string {
		return fmt.Sprintf("in_port=%d,tun_id=%s,dl_src=02:0f:ab:00:00:01,dl_dst=02:0f:ab:00:00:01,ip,nw_src=%s,nw_dst=%s,nw_ttl=63", port, key, srcIP, dstIP)
	}
	l4 := func(proto string, port int, src, srcIP, dstIP string, dport int) string {
		return fmt.Sprintf("%s,in_port=%d,dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=%s,nw_ttl=64,%[1]s_src=40000,%[1]s_dst=%[7]d", proto, port, src, gw, srcIP, dstIP, dport)
	}
	const fabricDNS = "169.254.53.53"
	tests := []struct {
		name   string
		packet string
		out    []string // the OpenFlow ports the packet leaves by ("IN_PORT" for a reply)
		tunID  string   // the tunnel key loaded on the way out, if any
	}{
		{"default: c1 to c2 on the same host", ip(3, c1MAC, c2MAC, "10.244.3.5", "10.244.3.6"), []string{"4"}, ""},
		{"c1 (default) to b1 (blue) on the same host: dropped", ip(3, c1MAC, b1MAC, "10.244.3.5", "10.50.3.5"), nil, ""},
		{"c1 to b1 through the gateway's MAC: dropped", ip(3, c1MAC, gw, "10.244.3.5", "10.50.3.5"), nil, ""},
		{"c1 to b1's MAC with an address of its own network: dropped", ip(3, c1MAC, b1MAC, "10.244.3.5", "10.244.3.6"), nil, ""},
		{"c1 to blue's gateway address: dropped", ip(3, c1MAC, gw, "10.244.3.5", "10.50.3.1"), nil, ""},
		{"b1 spoofs c1's address: dropped", ip(6, b1MAC, c2MAC, "10.244.3.5", "10.244.3.6"), nil, ""},
		{"b1 spoofs c1's MAC: dropped", ip(6, c1MAC, gw, "10.50.3.5", "8.8.8.8"), nil, ""},
		{"b1 spoofs c1 in ARP: dropped", arp(6, b1MAC, b1MAC, "10.244.3.5", "10.244.3.6"), nil, ""},
		{"b1 asks ARP for c1's address: dropped", arp(6, b1MAC, b1MAC, "10.50.3.5", "10.244.3.5"), nil, ""},
		{"c1 asks ARP for blue's gateway: dropped", arp(3, c1MAC, c1MAC, "10.244.3.5", "10.50.3.1"), nil, ""},
		{"b1 asks ARP for its gateway: answered", arp(6, b1MAC, b1MAC, "10.50.3.5", "10.50.3.1"), []string{"IN_PORT"}, ""},
		{"c1 asks ARP for c2: flooded in default only", arp(3, c1MAC, c1MAC, "10.244.3.5", "10.244.3.6"), []string{"1", "4"}, ""},
		{"c1 answers the host kernel's ARP asked from the underlay address", fmt.Sprintf("in_port=3,dl_src=%s,dl_dst=%s,arp,arp_op=2,arp_sha=%s,arp_spa=10.244.3.5,arp_tpa=172.30.0.11,arp_tha=%s", c1MAC, gw, c1MAC, gw), []string{"1"}, ""},
		{"c1 sends an ARP reply to b1: dropped", fmt.Sprintf("in_port=3,dl_src=%s,dl_dst=%s,arp,arp_op=2,arp_sha=%s,arp_spa=10.244.3.5,arp_tpa=10.50.3.5", c1MAC, b1MAC, c1MAC), nil, ""},
		{"b1 broadcasts: to the gateway only (no other port on blue)", ip(6, b1MAC, bcast, "10.50.3.5", "10.50.3.255"), []string{"1"}, ""},
		{"b1 broadcasts to default's broadcast address: dropped", ip(6, b1MAC, bcast, "10.50.3.5", "10.244.3.255"), nil, ""},
		{"c1 to a peer on default: key 0", ip(3, c1MAC, gw, "10.244.3.5", "10.244.7.9"), []string{"2"}, "0"},
		{"b1 to a peer on blue: key 100", ip(6, b1MAC, gw, "10.50.3.5", "10.50.7.9"), []string{"2"}, "0x64"},
		{"r1 to a peer on red: key 200", ip(7, r1MAC, gw, "10.60.3.5", "10.60.9.9"), []string{"5"}, "0xc8"},
		{"c1 to blue's peer slice: dropped", ip(3, c1MAC, gw, "10.244.3.5", "10.50.7.9"), nil, ""},
		{"b1 out to the world: through the gateway", ip(6, b1MAC, gw, "10.50.3.5", "8.8.8.8"), []string{"1"}, ""},
		{"r1 (internal) out to the world: dropped", ip(7, r1MAC, gw, "10.60.3.5", "8.8.8.8"), nil, ""},
		{"r1 (internal) to its gateway address: delivered", ip(7, r1MAC, gw, "10.60.3.5", "10.60.3.1"), []string{"1"}, ""},
		{"r1 (internal) to the fabric DNS, UDP 53: through the gateway", l4("udp", 7, r1MAC, "10.60.3.5", fabricDNS, 53), []string{"1"}, ""},
		{"r1 (internal) to the fabric DNS, TCP 53: through the gateway", l4("tcp", 7, r1MAC, "10.60.3.5", fabricDNS, 53), []string{"1"}, ""},
		{"r1 (internal) to the fabric DNS, UDP 54: dropped", l4("udp", 7, r1MAC, "10.60.3.5", fabricDNS, 54), nil, ""},
		{"r1 (internal) to the fabric DNS, ICMP: dropped", ip(7, r1MAC, gw, "10.60.3.5", fabricDNS), nil, ""},
		{"r1 (internal) to another address, UDP 53: dropped", l4("udp", 7, r1MAC, "10.60.3.5", "169.254.53.54", 53), nil, ""},
		{"b1 to the fabric DNS, UDP 53: through the gateway", l4("udp", 6, b1MAC, "10.50.3.5", fabricDNS, 53), []string{"1"}, ""},
		{"b1 to c1 on UDP 53: dropped", l4("udp", 6, b1MAC, "10.50.3.5", "10.244.3.5", 53), nil, ""},
		{"gateway from the fabric DNS to r1", fmt.Sprintf("udp,in_port=1,dl_src=%s,dl_dst=%s,nw_src=%s,nw_dst=10.60.3.5,nw_ttl=64,udp_src=53,udp_dst=40000", gw, r1MAC, fabricDNS), []string{"7"}, ""},
		{"gateway to b1", ip(1, gw, b1MAC, "10.50.3.1", "10.50.3.5"), []string{"6"}, ""},
		{"gateway to b1's MAC with a default address: dropped", ip(1, gw, b1MAC, "10.244.3.1", "10.244.3.5"), nil, ""},
		{"tunnel with blue's key to b1: delivered", fromTunnel(2, "0x64", "10.50.7.9", "10.50.3.5"), []string{"6"}, ""},
		{"tunnel with default's key to b1: dropped", fromTunnel(2, "0", "10.50.7.9", "10.50.3.5"), nil, ""},
		{"tunnel with blue's key to c1: dropped", fromTunnel(2, "0x64", "10.50.7.9", "10.244.3.5"), nil, ""},
		{"tunnel with default's key to c1: delivered", fromTunnel(2, "0", "10.244.7.9", "10.244.3.5"), []string{"3"}, ""},
		{"tunnel with red's key to red's gateway: delivered", fromTunnel(5, "0xc8", "10.60.9.9", "10.60.3.1"), []string{"1"}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			trace, err := h.Appctl(ctx, "ovs-vswitchd", "ofproto/trace", "br-int", tt.packet)
			if err != nil {
				t.Fatalf("trace: %v", err)
			}
			out, tunID := traced(trace)
			if !slices.Equal(out, tt.out) || tunID != tt.tunID {
				t.Errorf("%s\nleaves by %q with tunnel key %q, want %q with %q; trace:\n%s", tt.packet, out, tunID, tt.out, tt.tunID, trace)
			}
			if tt.tunID != "" {
				// On the wire: the VXLAN header ovs-vswitchd pushes (userspace datapath), or the
				// tunnel metadata it hands the kernel's vport.
				vni, _ := strconv.ParseUint(strings.TrimPrefix(tt.tunID, "0x"), 16, 32)
				want := fmt.Sprintf("vni=%#x)", vni)
				if l.Datapath != "netdev" {
					want = "set(tunnel(" // the kernel's vport: tun_id (shown when not 0)
					if vni != 0 {
						want += fmt.Sprintf("tun_id=%#x,", vni)
					}
				}
				if dp := datapathActions(trace); !strings.Contains(dp, want) {
					t.Errorf("%s\ndatapath actions %q do not carry %q", tt.packet, dp, want)
				}
			}
		})
	}
}

var (
	traceOutput = regexp.MustCompile(`^\s+(?:output:(\d+)|(IN_PORT))$`)
	traceTunID  = regexp.MustCompile(`^\s+load:(\w+)->NXM_NX_TUN_ID\[\]$`)
)

// datapathActions is the "Datapath actions:" line of an ofproto/trace.
func datapathActions(trace string) string {
	for _, line := range strings.Split(trace, "\n") {
		if a, ok := strings.CutPrefix(line, "Datapath actions: "); ok {
			return a
		}
	}
	return ""
}

// traced reads an ofproto/trace: the OpenFlow ports the packet was output to, in order
// (IN_PORT for the ARP responder's reply; not an output OVS skipped because it is the input
// port), and the last tunnel key an action loaded.
func traced(trace string) (out []string, tunID string) {
	lines := strings.Split(trace, "\n")
	for i, line := range lines {
		if m := traceOutput.FindStringSubmatch(line); m != nil {
			if i+1 < len(lines) && strings.Contains(lines[i+1], "skipping output to input port") {
				continue
			}
			out = append(out, m[1]+m[2])
		}
		if m := traceTunID.FindStringSubmatch(line); m != nil {
			tunID = m[1]
		}
	}
	return out, tunID
}

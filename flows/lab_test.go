package flows_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/flows"
	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/labtest"
	"github.com/ovsfabric/ovsfabric/netplumb"
	"github.com/ovsfabric/ovsfabric/ovsdb"
)

// requireLab skips the test when the lab cannot run here, or fails it under CI=true.
func requireLab(t *testing.T) {
	t.Helper()
	labtest.Require(t, "the routed pipeline lab test (network namespaces, OVS daemons)", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ovs-ofctl", "ip", "ping", "iperf3", "tcpdump")
}

// TestRoutedPipelineLab builds two lab hosts by hand with the ovsdb and netplumb packages
// (no fabricd): br-int with the gateway port fabric0, a tunnel to the other host and one
// container each. It measures the L2 mode (NORMAL, host routes via fabric0) first, then
// installs the routed pipeline with Plan and Reconcile on both hosts, removes the host routes,
// and proves that containers reach each other across hosts without the host kernel (fabric0's
// counters stand still), that the to-peer and from-tunnel flows carry the traffic, that no ARP
// crosses a tunnel (tcpdump on the underlay, with L2 mode as the positive control), that TCP
// works (iperf3, logged next to the L2 figure), that a second Reconcile changes nothing, that
// the host's own paths (NAT default, host to remote container) work, and that reconciling to
// no flows returns the bridge to L2 mode. FLOWS_LAB_IPERF_TRIALS=N adds alternating
// throughput trials.
func TestRoutedPipelineLab(t *testing.T) {
	requireLab(t)
	for _, tunnel := range []fabric.TunnelType{fabric.TunnelVXLAN, fabric.TunnelGRE} {
		t.Run(string(tunnel), func(t *testing.T) { testRouted(t, tunnel) })
	}
}

var cluster = netip.MustParsePrefix("10.244.0.0/16")

// labHost is one lab host as this test wires it.
type labHost struct {
	*lab.Host
	cli       *ovsdb.Client
	netns     ns.NetNS
	subnet    netip.Prefix
	peer      *labHost
	container string // netns name
	cIP       netip.Addr
	sw        *flows.OFCtl
}

func testRouted(t *testing.T, tunnel fabric.TunnelType) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l, err := lab.Up(ctx, lab.Config{Dir: t.TempDir() + "/lab", Hosts: 2})
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("lab up: %v", err)
		}
		t.Skipf("lab cannot start here: %v", err)
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
	mtu, err := fabric.ContainerMTU(l.MTU, tunnel, false)
	if err != nil {
		t.Fatal(err)
	}
	hosts := []*labHost{
		{Host: l.Hosts[0], subnet: netip.MustParsePrefix("10.244.1.0/24")},
		{Host: l.Hosts[1], subnet: netip.MustParsePrefix("10.244.2.0/24")},
	}
	hosts[0].peer, hosts[1].peer = hosts[1], hosts[0]
	for _, h := range hosts {
		setupHost(t, ctx, l, h, tunnel, mtu)
	}
	a, b := hosts[0], hosts[1]

	// --- L2 mode: NORMAL, the host kernel routes via fabric0, ARP crosses the tunnels. ---
	capL2 := startCapture(t, ctx, a, "tcpdump-l2")
	eventually(t, 30*time.Second, "L2 ping "+a.Name+" → "+b.Name, func() error { return ping(ctx, a.container, b.cIP, 1) })
	if err := ping(ctx, a.container, b.cIP, 10); err != nil {
		t.Fatalf("L2 mode: %v", err)
	}
	if arps, _ := capL2.stop(t); arps == 0 {
		t.Fatalf("positive control failed: no ARP seen inside the tunnel in L2 mode, so the capture proves nothing:\n%s", capL2.text(t))
	}
	server, err := l.StartIn(ctx, b.container, "iperf3", []string{"iperf3", "-s", "-B", b.cIP.String()}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Stop(5 * time.Second)
	l2Mbps := iperf(t, ctx, a.container, b.cIP)

	// --- Routed mode: the pipeline on both hosts, no host routes to peer subnets. ---
	plans := map[*labHost][]flows.Flow{}
	inputs := map[*labHost]flows.Input{}
	for _, h := range hosts {
		in := gatherInput(t, ctx, h)
		inputs[h] = in
		desired, err := flows.Plan(in)
		if err != nil {
			t.Fatalf("%s: plan: %v", h.Name, err)
		}
		res, err := flows.Reconcile(ctx, h.sw, desired)
		if err != nil {
			t.Fatalf("%s: reconcile: %v", h.Name, err)
		}
		if res != (flows.Result{Added: len(desired)}) {
			t.Errorf("%s: first reconcile: %s, want %d added", h.Name, res, len(desired))
		}
		plans[h] = desired
		err = h.netns.Do(func(ns.NetNS) error {
			_, err := netplumb.ReconcileRoutes(nil)
			return err
		})
		if err != nil {
			t.Fatalf("%s: remove the host routes: %v", h.Name, err)
		}
		// Forget the neighbours: the container must ask for the gateway's MAC again, and OVS
		// must answer (the host kernel, which no longer talks to the container, must not).
		if _, err := lab.RunIn(ctx, h.container, "ip", "neigh", "flush", "all"); err != nil {
			t.Fatal(err)
		}
		if _, err := h.Run(ctx, "ip", "neigh", "flush", "dev", "fabric0"); err != nil {
			t.Fatal(err)
		}
		if out, err := h.Run(ctx, "ip", "route", "show", h.peer.subnet.String()); err != nil || strings.TrimSpace(out) != "" {
			t.Fatalf("%s: host route to %s still there: %q %v", h.Name, h.peer.subnet, out, err)
		}
	}
	// Let ovs-vswitchd revalidate the datapath flows cached in L2 mode, so that the counters
	// below count only what the pings do (revalidation credits cached flows' pending stats to
	// whatever OpenFlow rules they translate to now).
	for _, h := range hosts {
		if _, err := h.Appctl(ctx, "ovs-vswitchd", "revalidator/wait"); err != nil {
			t.Fatal(err)
		}
	}
	before := map[*labHost]map[uint64]uint64{a: flowPackets(t, ctx, a), b: flowPackets(t, ctx, b)}
	gwBefore := map[*labHost]uint64{a: gatewayPackets(t, ctx, a), b: gatewayPackets(t, ctx, b)}
	capA, capB := startCapture(t, ctx, a, "tcpdump-routed"), startCapture(t, ctx, b, "tcpdump-routed")
	const pings = 20
	const unbounded = ^uint64(0)
	for _, h := range hosts {
		if err := ping(ctx, h.container, h.peer.cIP, pings); err != nil {
			t.Fatalf("routed mode, %s → %s: %v\n%s", h.Name, h.peer.Name, err, dumpFlows(t, ctx, h))
		}
	}
	for _, h := range hosts {
		gw := fabric.Gateway(h.subnet).String()
		out, err := lab.RunIn(ctx, h.container, "ip", "neigh", "show", gw)
		if want := inputs[h].Gateway.MAC.String(); err != nil || !strings.Contains(out, "lladdr "+want) {
			t.Errorf("%s: the container's neighbour %s is %q (%v), want the gateway's MAC %s", h.Name, gw, out, err, want)
		}
	}
	for _, c := range []*capture{capA, capB} {
		arps, echoes := c.stop(t)
		if arps != 0 {
			t.Errorf("%s: %d ARP packets crossed a tunnel in routed mode:\n%s", c.host.Name, arps, c.text(t))
		}
		if echoes < 2*pings {
			t.Errorf("%s: only %d ICMP echoes captured in the tunnel for %d pings each way: the capture missed them\n%s", c.host.Name, echoes, pings, c.text(t))
		}
		t.Logf("%s: routed mode, inside the tunnel: %d ICMP echoes, %d ARP (L2 mode: %d ARP)", c.host.Name, echoes, arps, capL2.arps)
	}
	for _, h := range hosts {
		// Datapath flow stats reach the OpenFlow counters when revalidators run.
		if _, err := h.Appctl(ctx, "ovs-vswitchd", "revalidator/wait"); err != nil {
			t.Fatal(err)
		}
		after := flowPackets(t, ctx, h)
		delta := func(f flows.Flow) uint64 { return after[f.Cookie] - before[h][f.Cookie] }
		p := plans[h]
		checks := []struct {
			what string
			flow flows.Flow
			min  uint64
			max  uint64
		}{
			{"to-peer " + h.peer.subnet.String(), pick(t, p, flows.PurposeToPeer, "nw_dst="+h.peer.subnet.String()+","), 2 * pings, unbounded},
			{"from-tunnel to " + h.cIP.String(), pick(t, p, flows.PurposeFromTunnel, "nw_dst="+h.cIP.String()+","), 2 * pings, unbounded},
			{"ARP responder for the gateway", pick(t, p, flows.PurposeARPResponder, "arp_tpa="+fabric.Gateway(h.subnet).String()+","), 1, unbounded},
			{"drop of everything else from tunnels", pick(t, p, flows.PurposeDefault, "table=20"), 0, 0},
			{"the bridge's own NORMAL (cookie 0)", flows.Flow{Cookie: 0, Actions: "NORMAL"}, 0, 0},
		}
		for _, c := range checks {
			if d := delta(c.flow); d < c.min || d > c.max {
				t.Errorf("%s: flow %s (%s) counted %d packets, want %d..%d", h.Name, c.what, c.flow, d, c.min, c.max)
			} else {
				t.Logf("%s: flow %-40s +%d packets", h.Name, c.what, d)
			}
		}
		// Through the host kernel every ping would cross fabric0 twice on each host.
		if d := gatewayPackets(t, ctx, h) - gwBefore[h]; d >= 10 {
			t.Errorf("%s: fabric0 moved %d packets during %d pings each way: the host kernel is on the path", h.Name, d, pings)
		} else {
			t.Logf("%s: fabric0 rx+tx grew by %d during %d pings each way (host kernel not on the path)", h.Name, d, pings)
		}
	}
	t.Logf("ovs-ofctl dump-flows br-int on %s after the pings:\n%s", a.Name, dumpFlows(t, ctx, a))

	routedMbps := iperf(t, ctx, a.container, b.cIP)
	t.Logf("iperf3 3 s over %s, %s datapath: L2 mode (NORMAL + host kernel) %.0f Mbit/s, routed pipeline %.0f Mbit/s (%.2fx)",
		tunnel, l.Datapath, l2Mbps, routedMbps, routedMbps/l2Mbps)

	// A second reconcile with the same input executes nothing.
	for _, h := range hosts {
		cs := &countingSwitch{Switch: h.sw}
		res, err := flows.Reconcile(ctx, cs, flowsOf(t, gatherInput(t, ctx, h)))
		if err != nil || res.Changed() || cs.applies != 0 {
			t.Errorf("%s: second reconcile: %s, %d Apply calls, %v: want no change", h.Name, res, cs.applies, err)
		}
	}
	// The host's own paths in routed mode. A container reaches an address outside the cluster
	// through the gateway (to-gateway), and the host answers it after ARPing for the container
	// through fabric0. With its route back, the host reaches a remote container: the ARP
	// responder answers for the peer's gateway, then to-peer, and from-tunnel to the gateway.
	for _, h := range hosts {
		before[h] = flowPackets(t, ctx, h)
		err := h.netns.Do(func(ns.NetNS) error {
			_, err := netplumb.ReconcileRoutes([]netplumb.Route{{Dst: h.peer.subnet, Gateway: fabric.Gateway(h.peer.subnet), Dev: "fabric0", OnLink: true}})
			return err
		})
		if err != nil {
			t.Fatalf("%s: restore the host route: %v", h.Name, err)
		}
	}
	for _, h := range hosts {
		if err := ping(ctx, h.container, h.UnderlayIP, 5); err != nil {
			t.Errorf("%s: container to its host's underlay address (outside the cluster): %v", h.Name, err)
		}
		if err := ping(ctx, h.NetNS, h.peer.cIP, 5); err != nil {
			t.Errorf("%s: host kernel to the container on %s: %v", h.Name, h.peer.Name, err)
		}
	}
	for _, h := range hosts {
		if _, err := h.Appctl(ctx, "ovs-vswitchd", "revalidator/wait"); err != nil {
			t.Fatal(err)
		}
		after, p := flowPackets(t, ctx, h), plans[h]
		for _, c := range []struct {
			what string
			flow flows.Flow
			min  uint64
		}{
			{"to-gateway", pick(t, p, flows.PurposeToGateway, "ip,actions"), 5},
			{"ARP responder for " + cluster.String() + " (" + h.peer.subnet.String() + ")", pick(t, p, flows.PurposeARPResponder, "arp_tpa="+cluster.String()), 1},
			{"from-tunnel to the gateway", pick(t, p, flows.PurposeFromTunnel, "nw_dst="+fabric.Gateway(h.subnet).String()+","), 5},
		} {
			if d := after[c.flow.Cookie] - before[h][c.flow.Cookie]; d < c.min {
				t.Errorf("%s: flow %s (%s) counted %d packets, want at least %d", h.Name, c.what, c.flow, d, c.min)
			} else {
				t.Logf("%s: flow %-40s +%d packets", h.Name, c.what, d)
			}
		}
	}

	// Back to L2 mode: every ovsfabric flow goes, the bridge's own NORMAL flow stays.
	setMode := func(routed bool) {
		t.Helper()
		for _, h := range hosts {
			var want []flows.Flow
			if routed {
				want = plans[h]
			}
			res, err := flows.Reconcile(ctx, h.sw, want)
			if err != nil {
				t.Fatalf("%s: reconcile: %v", h.Name, err)
			}
			if n := len(plans[h]); routed && res != (flows.Result{Added: n}) || !routed && res != (flows.Result{Removed: n}) {
				t.Errorf("%s: switch to routed=%v: %s", h.Name, routed, res)
			}
			if _, err := h.Appctl(ctx, "ovs-vswitchd", "revalidator/wait"); err != nil {
				t.Fatal(err)
			}
			// The kernel resolved the peer's gateway to RouterMAC in routed mode; in L2 mode
			// that entry would send its traffic nowhere until it expires.
			if _, err := h.Run(ctx, "ip", "neigh", "flush", "dev", "fabric0"); err != nil {
				t.Fatal(err)
			}
		}
	}
	setMode(false)
	if out := dumpFlows(t, ctx, a); strings.Count(out, "cookie=") != 1 || !strings.Contains(out, "cookie=0x0,") || !strings.Contains(out, "priority=0 actions=NORMAL") {
		t.Errorf("%s: after removing ovsfabric's flows the bridge should hold only its NORMAL flow:\n%s", a.Name, out)
	}
	if err := ping(ctx, a.container, b.cIP, 5); err != nil {
		t.Errorf("back in L2 mode: %v", err)
	}

	// More throughput trials on demand, alternating the modes (the figures swing between runs).
	if n, _ := strconv.Atoi(os.Getenv("FLOWS_LAB_IPERF_TRIALS")); n > 1 {
		l2, routed := []float64{l2Mbps}, []float64{routedMbps}
		for i := 1; i < n; i++ {
			l2 = append(l2, iperf(t, ctx, a.container, b.cIP))
			setMode(true)
			routed = append(routed, iperf(t, ctx, a.container, b.cIP))
			setMode(false)
		}
		t.Logf("iperf3 3 s over %s, %d trials each, Mbit/s: L2 mode %.0f, routed %.0f", tunnel, n, l2, routed)
	}
}

// setupHost builds br-int, fabric0 (gateway address, MTU, route to the peer subnet for L2
// mode), the tunnel to the peer and one container on h, as fabricd and fabricctl attach do.
func setupHost(t *testing.T, ctx context.Context, l *lab.Lab, h *labHost, tunnel fabric.TunnelType, mtu int) {
	t.Helper()
	cli, err := ovsdb.Dial(ctx, h.Endpoint())
	if err != nil {
		t.Fatalf("%s: dial: %v", h.Name, err)
	}
	t.Cleanup(cli.Close)
	h.cli = cli
	owner := h.Name
	if err := cli.EnsureBridge(ctx, ovsdb.BridgeSpec{Name: "br-int", DatapathType: l.Datapath, FailMode: "standalone", Owner: owner}); err != nil {
		t.Fatal(err)
	}
	if err := cli.EnsurePort(ctx, "br-int", ovsdb.PortSpec{Name: "fabric0", Type: "internal", Owner: owner, Role: ovsdb.RoleGateway}); err != nil {
		t.Fatal(err)
	}
	if _, err := cli.ReconcileTunnels(ctx, "br-int", owner, []ovsdb.TunnelSpec{{
		Name: fabric.TunnelPortName(tunnel, h.peer.Name), Type: string(tunnel), RemoteIP: h.peer.UnderlayIP, Peer: h.peer.Name, Protected: true,
	}}); err != nil {
		t.Fatalf("%s: tunnels: %v", h.Name, err)
	}
	hostNS, err := ns.GetNS(h.NetNSPath())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { hostNS.Close() })
	h.netns = hostNS
	cpath, err := l.AddNetNS(ctx, h.Host, "c")
	if err != nil {
		t.Fatal(err)
	}
	h.container = cpath[strings.LastIndex(cpath, "/")+1:]
	gw := fabric.Gateway(h.subnet)
	h.cIP = gw.Next()
	port := fabric.ContainerPortName(cpath)
	var ar netplumb.AttachResult
	err = hostNS.Do(func(ns.NetNS) error {
		if err := netplumb.WaitLink(ctx, "fabric0"); err != nil {
			return err
		}
		if _, err := netplumb.SetLinkUp("fabric0", mtu); err != nil {
			return err
		}
		if _, err := netplumb.ReconcileAddrs("fabric0", []netip.Prefix{netip.PrefixFrom(gw, h.subnet.Bits())}, cluster); err != nil {
			return err
		}
		if err := netplumb.SetForwarding(true); err != nil {
			return err
		}
		peerSubnet := h.peer.subnet
		if _, err := netplumb.ReconcileRoutes([]netplumb.Route{{Dst: peerSubnet, Gateway: fabric.Gateway(peerSubnet), Dev: "fabric0", OnLink: true}}); err != nil {
			return err
		}
		ar, err = netplumb.Attach(netplumb.Attachment{
			NetNS: cpath, IfName: "eth0", HostIf: port, Addr: netip.PrefixFrom(h.cIP, h.subnet.Bits()),
			Gateway: gw, MTU: mtu, Datapath: fabric.Datapath(l.Datapath),
		})
		return err
	})
	if err != nil {
		t.Fatalf("%s: kernel side: %v", h.Name, err)
	}
	// Two host-kernel settings fabricd does not make yet, without which the L2 mode is not
	// the path it is designed to be and the routed mode can see duplicates:
	//  - In the userspace datapath the host kernel also receives every frame on the host end
	//    of the veth (ovs-vswitchd reads it through a packet socket). With arp_ignore=0 it
	//    answers the container's ARP for the gateway with the veth's own MAC, then routes
	//    every packet sent to that MAC itself, besides OVS. arp_ignore=1: the veth holds no
	//    address, so the kernel stays silent. (The kernel datapath consumes the frames.)
	//  - In L2 mode the kernel routes container traffic back out of fabric0 and so sends the
	//    container ICMP redirects toward the peer's gateway, which the container caches for
	//    minutes. send_redirects=0 keeps the L2 mode's path what it is meant to be.
	sysctls := []string{"net.ipv4.conf.all.send_redirects=0", "net.ipv4.conf.fabric0.send_redirects=0"}
	if l.Datapath == "netdev" {
		sysctls = append(sysctls, "net.ipv4.conf."+port+".arp_ignore=1")
	}
	for _, s := range sysctls {
		if _, err := h.Run(ctx, "sysctl", "-q", "-w", s); err != nil {
			t.Fatal(err)
		}
	}
	if err := cli.EnsurePort(ctx, "br-int", ovsdb.PortSpec{Name: port, Owner: owner, Role: ovsdb.RoleContainer, ExternalIDs: map[string]string{
		ovsdb.KeyContainer: "c", ovsdb.KeyNetNS: cpath, ovsdb.KeyIP: netip.PrefixFrom(h.cIP, h.subnet.Bits()).String(), ovsdb.KeyMAC: ar.MAC.String(), ovsdb.KeyIfName: "eth0",
	}}); err != nil {
		t.Fatal(err)
	}
	h.sw = flows.NewOFCtl("br-int", flows.WithEnv(h.Env()...))
}

// gatherInput reads the pipeline's input from OVSDB the way the controller should: the
// gateway's ofport and mac_in_use, each container port's ofport and its container-side MAC
// and address from external_ids, each tunnel's ofport and its peer (whose subnet gossip
// tells; here the test knows it). It waits until ovs-vswitchd has filled in every ofport.
func gatherInput(t *testing.T, ctx context.Context, h *labHost) flows.Input {
	t.Helper()
	var in flows.Input
	eventually(t, 10*time.Second, h.Name+": ports ready", func() error {
		ports, err := h.cli.Ports(ctx, "br-int")
		if err != nil {
			return err
		}
		in = flows.Input{}
		nw := flows.Network{Name: "default", CIDR: cluster, Subnet: h.subnet, Gateway: fabric.Gateway(h.subnet)}
		for _, p := range ports {
			if p.Ofport <= 0 {
				return fmt.Errorf("port %s has ofport %d", p.Name, p.Ofport)
			}
			switch p.Role() {
			case ovsdb.RoleGateway:
				m, err := net.ParseMAC(p.MACInUse)
				if err != nil {
					return fmt.Errorf("gateway mac_in_use %q: %w", p.MACInUse, err)
				}
				in.Gateway = flows.Port{Name: p.Name, OFPort: p.Ofport, MAC: m}
			case ovsdb.RoleContainer:
				m, err := net.ParseMAC(p.ExternalIDs[ovsdb.KeyMAC])
				if err != nil {
					return fmt.Errorf("container port %s: %w", p.Name, err)
				}
				ip, err := netip.ParsePrefix(p.ExternalIDs[ovsdb.KeyIP])
				if err != nil {
					return fmt.Errorf("container port %s: %w", p.Name, err)
				}
				nw.Containers = append(nw.Containers, flows.Port{Name: p.Name, OFPort: p.Ofport, MAC: m, IP: ip.Addr()})
			case ovsdb.RoleTunnel:
				if p.ExternalIDs[ovsdb.KeyPeer] != h.peer.Name {
					return fmt.Errorf("tunnel %s leads to %q", p.Name, p.ExternalIDs[ovsdb.KeyPeer])
				}
				nw.Tunnels = append(nw.Tunnels, flows.Tunnel{Peer: h.peer.Name, Port: p.Name, OFPort: p.Ofport, Subnet: h.peer.subnet})
			}
		}
		in.Networks = []flows.Network{nw}
		if in.Gateway.OFPort == 0 || len(nw.Containers) != 1 || len(nw.Tunnels) != 1 {
			return fmt.Errorf("incomplete: %+v", in)
		}
		return nil
	})
	return in
}

func flowsOf(t *testing.T, in flows.Input) []flows.Flow {
	t.Helper()
	fs, err := flows.Plan(in)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// pick returns the one flow of fs with purpose p whose String contains s.
func pick(t *testing.T, fs []flows.Flow, p flows.Purpose, s string) flows.Flow {
	t.Helper()
	var found []flows.Flow
	for _, f := range fs {
		if f.Purpose() == p && strings.Contains(f.String(), s) {
			found = append(found, f)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%d %s flows contain %q", len(found), p, s)
	}
	return found[0]
}

// countingSwitch counts Apply calls.
type countingSwitch struct {
	flows.Switch
	applies int
}

func (c *countingSwitch) Apply(ctx context.Context, add, del []flows.Flow) error {
	c.applies++
	return c.Switch.Apply(ctx, add, del)
}

func dumpFlows(t *testing.T, ctx context.Context, h *labHost) string {
	t.Helper()
	out, err := h.Ofctl(ctx, "dump-flows", "br-int")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

var flowLine = regexp.MustCompile(`cookie=(0x[0-9a-f]+), .* n_packets=(\d+),`)

// flowPackets maps each flow's cookie to its packet counter, from `ovs-ofctl dump-flows`.
func flowPackets(t *testing.T, ctx context.Context, h *labHost) map[uint64]uint64 {
	t.Helper()
	m := map[uint64]uint64{}
	for _, line := range strings.Split(dumpFlows(t, ctx, h), "\n") {
		if s := flowLine.FindStringSubmatch(line); s != nil {
			c, _ := strconv.ParseUint(s[1], 0, 64)
			n, _ := strconv.ParseUint(s[2], 10, 64)
			m[c] += n
		}
	}
	return m
}

// gatewayPackets is fabric0's rx + tx packet count in the host kernel.
func gatewayPackets(t *testing.T, ctx context.Context, h *labHost) uint64 {
	t.Helper()
	var sum uint64
	for _, dir := range []string{"rx", "tx"} {
		out, err := h.Run(ctx, "cat", "/sys/class/net/fabric0/statistics/"+dir+"_packets")
		if err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseUint(strings.TrimSpace(out), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		sum += n
	}
	return sum
}

// ping sends count pings from the container netns to ip and wants every reply.
func ping(ctx context.Context, netns string, ip netip.Addr, count int) error {
	out, err := lab.RunIn(ctx, netns, "ping", "-c", strconv.Itoa(count), "-i", "0.05", "-W", "1", ip.String())
	if err != nil {
		return err
	}
	if !strings.Contains(out, fmt.Sprintf("%d received,", count)) || strings.Contains(out, "errors") || strings.Contains(out, "DUP!") {
		return fmt.Errorf("ping %s: want exactly one reply per request and no error:\n%s", ip, out)
	}
	return nil
}

// iperf runs a bounded 3-second iperf3 TCP test from the container netns to the server at ip
// and returns the receiver's throughput in Mbit/s.
func iperf(t *testing.T, ctx context.Context, netns string, ip netip.Addr) float64 {
	t.Helper()
	var r struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
			SumSent struct {
				Retransmits int `json:"retransmits"`
			} `json:"sum_sent"`
			CPU struct {
				Host   float64 `json:"host_total"`
				Remote float64 `json:"remote_total"`
			} `json:"cpu_utilization_percent"`
		} `json:"end"`
		Error string `json:"error"`
	}
	var out string
	var err error
	for try := 0; try < 20; try++ {
		rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		out, err = lab.RunIn(rctx, netns, "iperf3", "-c", ip.String(), "-t", "3", "-J", "--connect-timeout", "2000")
		cancel()
		r.Error = ""
		if jerr := json.Unmarshal([]byte(out), &r); jerr != nil && err == nil {
			err = jerr
		}
		if err == nil && r.Error != "" {
			err = errors.New(r.Error)
		}
		if err == nil || !strings.Contains(out, "Connection refused") {
			break // the server may not listen yet: retry only that
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil || r.End.SumReceived.BitsPerSecond <= 0 {
		t.Fatalf("iperf3 to %s: no throughput (%v):\n%s", ip, err, out)
	}
	t.Logf("iperf3 to %s: %.0f Mbit/s, %d retransmitted segments, CPU sender %.0f%% receiver %.0f%%",
		ip, r.End.SumReceived.BitsPerSecond/1e6, r.End.SumSent.Retransmits, r.End.CPU.Host, r.End.CPU.Remote)
	return r.End.SumReceived.BitsPerSecond / 1e6
}

// capture is a tcpdump of the tunnel traffic on a host's underlay NIC; tcpdump decodes VXLAN
// (UDP 4789) and GRE (transparent Ethernet bridging) down to the inner frame.
type capture struct {
	host *labHost
	proc *lab.Proc
	arps int
}

func startCapture(t *testing.T, ctx context.Context, h *labHost, name string) *capture {
	t.Helper()
	p, err := h.Start(ctx, name, []string{"tcpdump", "-i", "eth0", "-n", "-l", "udp port 4789 or ip proto 47"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c := &capture{host: h, proc: p}
	eventually(t, 10*time.Second, h.Name+": tcpdump listening", func() error {
		if !strings.Contains(c.text(t), "listening on") {
			return fmt.Errorf("not yet")
		}
		return nil
	})
	return c
}

func (c *capture) text(t *testing.T) string {
	b, err := os.ReadFile(c.proc.LogFile())
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	return string(b)
}

// stop ends the capture and counts the ARP frames and the ICMP echo packets it saw inside
// the tunnel.
func (c *capture) stop(t *testing.T) (arps, packets int) {
	t.Helper()
	time.Sleep(200 * time.Millisecond) // let the last packets reach the log
	if err := c.proc.Stop(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(c.text(t), "\n") {
		if strings.Contains(line, "ARP,") {
			arps++
		}
		if strings.Contains(line, "ICMP echo") {
			packets++
		}
	}
	c.arps = arps
	return arps, packets
}

// eventually retries check until it returns nil or timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, check func() error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		err := check()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not true after %s: %v", what, timeout, err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

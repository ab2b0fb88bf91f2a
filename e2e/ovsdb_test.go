package e2e

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/labtest"
	"github.com/ovsfabric/ovsfabric/netplumb"
	"github.com/ovsfabric/ovsfabric/ovsdb"
)

// TestOVSDBLayerCrossHost proves the ovsdb and netplumb layers on real OVS, without fabricd:
// on two lab hosts it builds br-int (datapath auto-detected), a tunnel toward the other host,
// the gateway address and the route to the other subnet, attaches a container netns through a
// veth, then pings and runs a 3-second TCP transfer between the containers across hosts.
func TestOVSDBLayerCrossHost(t *testing.T) {
	for _, tunnel := range []fabric.TunnelType{fabric.TunnelGRE, fabric.TunnelVXLAN} {
		t.Run(string(tunnel), func(t *testing.T) { testOVSDBLayer(t, tunnel) })
	}
}

func testOVSDBLayer(t *testing.T, tunnel fabric.TunnelType) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	l := upLab(t, ctx, 2, false)
	subnets := []netip.Prefix{netip.MustParsePrefix("10.244.1.0/24"), netip.MustParsePrefix("10.244.2.0/24")}
	datapath := "netdev"
	if lab.KernelDatapath() {
		datapath = "system"
	}
	mtu, err := fabric.ContainerMTU(1500, tunnel, false)
	if err != nil {
		t.Fatal(err)
	}
	var containers []string
	for i, h := range l.Hosts {
		other := l.Hosts[1-i]
		cli, err := ovsdb.Dial(ctx, h.Endpoint())
		if err != nil {
			t.Fatalf("%s: dial: %v", h.Name, err)
		}
		defer cli.Close()
		owner := h.Name
		if err := cli.EnsureBridge(ctx, ovsdb.BridgeSpec{Name: "br-int", DatapathType: datapath, FailMode: "standalone", Owner: owner}); err != nil {
			t.Fatal(err)
		}
		if err := cli.EnsurePort(ctx, "br-int", ovsdb.PortSpec{Name: "fabric0", Type: "internal", Owner: owner, Role: ovsdb.RoleGateway}); err != nil {
			t.Fatal(err)
		}
		res, err := cli.ReconcileTunnels(ctx, "br-int", owner, []ovsdb.TunnelSpec{{
			Name: fabric.TunnelPortName(tunnel, other.Name), Type: string(tunnel), RemoteIP: other.UnderlayIP, Peer: other.Name, Protected: true,
		}})
		if err != nil || len(res.Added) != 1 {
			t.Fatalf("%s: reconcile tunnels: %+v, %v", h.Name, res, err)
		}
		// The kernel side runs inside the host's netns.
		hostNS, err := ns.GetNS(h.NetNSPath())
		if err != nil {
			t.Fatal(err)
		}
		defer hostNS.Close()
		cpath, err := l.AddNetNS(ctx, h, "c")
		if err != nil {
			t.Fatal(err)
		}
		containers = append(containers, cpath)
		gw := netip.PrefixFrom(fabric.Gateway(subnets[i]), 24)
		port := fabric.ContainerPortName(cpath)
		var ar netplumb.AttachResult
		err = hostNS.Do(func(ns.NetNS) error {
			if err := netplumb.WaitLink(ctx, "fabric0"); err != nil {
				return err
			}
			if _, err := netplumb.SetLinkUp("fabric0", mtu); err != nil {
				return err
			}
			if _, err := netplumb.ReconcileAddrs("fabric0", []netip.Prefix{gw}, netip.MustParsePrefix("10.244.0.0/16")); err != nil {
				return err
			}
			if err := netplumb.SetForwarding(true); err != nil {
				return err
			}
			if _, err := netplumb.ReconcileRoutes([]netplumb.Route{{Dst: subnets[1-i], Gateway: fabric.Gateway(subnets[1-i]), Dev: "fabric0", OnLink: true}}); err != nil {
				return err
			}
			ar, err = netplumb.Attach(netplumb.Attachment{
				NetNS: cpath, IfName: "eth0", HostIf: port, Addr: netip.PrefixFrom(fabric.Gateway(subnets[i]).Next(), 24),
				Gateway: fabric.Gateway(subnets[i]), MTU: mtu, Datapath: fabric.Datapath(datapath),
			})
			return err
		})
		if err != nil {
			t.Fatalf("%s: kernel side: %v", h.Name, err)
		}
		if err := cli.EnsurePort(ctx, "br-int", ovsdb.PortSpec{Name: port, Owner: owner, Role: ovsdb.RoleContainer, ExternalIDs: map[string]string{
			ovsdb.KeyContainer: "c", ovsdb.KeyNetNS: cpath, ovsdb.KeyIP: fabric.Gateway(subnets[i]).Next().String() + "/24", ovsdb.KeyMAC: ar.MAC.String(), ovsdb.KeyIfName: "eth0",
		}}); err != nil {
			t.Fatal(err)
		}
		// A second reconcile with the same input sends nothing.
		n := cli.Transactions()
		if res, err := cli.ReconcileTunnels(ctx, "br-int", owner, []ovsdb.TunnelSpec{{
			Name: fabric.TunnelPortName(tunnel, other.Name), Type: string(tunnel), RemoteIP: other.UnderlayIP, Peer: other.Name, Protected: true,
		}}); err != nil || res.Transacted || cli.Transactions() != n {
			t.Errorf("%s: second reconcile transacted: %+v, %v", h.Name, res, err)
		}
	}
	peerIP := []string{"10.244.2.2", "10.244.1.2"}
	for i, c := range containers {
		cname := c[strings.LastIndex(c, "/")+1:]
		var lastErr error
		ok := false
		for try := 0; try < 20 && !ok; try++ {
			out, err := lab.RunIn(ctx, cname, "ping", "-c", "1", "-W", "1", peerIP[i])
			ok, lastErr = err == nil, fmt.Errorf("%v: %s", err, out)
		}
		if !ok {
			t.Fatalf("container on %s cannot ping %s over %s: %v", l.Hosts[i].Name, peerIP[i], tunnel, lastErr)
		}
	}
	// TCP across the tunnel: a bounded 3-second iperf3 run.
	srv := containers[1][strings.LastIndex(containers[1], "/")+1:]
	cli := containers[0][strings.LastIndex(containers[0], "/")+1:]
	if _, err := labtest.LookPath("iperf3"); err != nil {
		t.Fatalf("iperf3 missing (make deps): %v", err)
	}
	server, err := l.StartIn(ctx, srv, "iperf3", []string{"iperf3", "-s", "-1", "-B", "10.244.2.2"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer server.Stop(5 * time.Second)
	var out string
	for try := 0; try < 20; try++ {
		out, err = lab.RunIn(ctx, cli, "iperf3", "-c", "10.244.2.2", "-t", "3", "-f", "m")
		if err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Fatalf("iperf3 over %s failed: %v\n%s", tunnel, err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "receiver") {
			t.Logf("iperf3 over %s: %s", tunnel, strings.Join(strings.Fields(line), " "))
		}
	}
	show, err := l.Hosts[0].Vsctl(ctx, "show")
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("ovs-vsctl show on %s:\n%s", l.Hosts[0].Name, show)
	ext, err := l.Hosts[0].Vsctl(ctx, "--columns=name,external_ids", "list", "Interface")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`ovsfabric-owner=` + l.Hosts[0].Name, `ovsfabric-role=tunnel`, `ovsfabric-role=container`, `ovsfabric-role=gateway`} {
		if !strings.Contains(strings.ReplaceAll(ext, `"`, ""), want) {
			t.Errorf("external_ids lack %s:\n%s", want, ext)
		}
	}
}

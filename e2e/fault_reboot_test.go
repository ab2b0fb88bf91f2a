package e2e

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

// TestFaultReboot reboots one host: every daemon stops (fabricd, ovs-vswitchd, ovsdb-server),
// its containers' namespaces and the kernel state fabricd made (gateway device, routes, NAT
// table) are gone, then OVS and fabricd start again from the same database. The host rejoins
// with the same subnet, prunes the container ports that vanished and frees their addresses;
// no peer renumbers or loses traffic among themselves, and every other host ends exactly as
// before.
func TestFaultReboot(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	fl := newFaultLab(t, ctx)
	victim := fl.l.Hosts[0]
	node := fl.f.Node(victim.Name)
	c1, c2, c3 := fl.cs[0], fl.cs[1], fl.cs[2]
	before := fl.snapshots(t, ctx)
	// After the reboot the victim holds what it held, less c1 (port and veth, address,
	// attachment): fabricd prunes a container whose namespace is gone.
	want := maps.Clone(before)
	// (br-int's own device takes the smallest MTU of the bridge's ports, which c1's veth was.)
	want[victim.Name] = before[victim.Name].Without(c1.A.Port, c1.A.IP, c1.A.MAC, c1.Path, "br-int kind=")

	others := startStream(t, ctx, c2, c3)
	back := startStream(t, ctx, c3, c2)
	time.Sleep(500 * time.Millisecond)
	if err := node.Proc.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := victim.StopOVS(ctx); err != nil {
		t.Fatal(err)
	}
	if err := fl.l.DeleteNetNS(ctx, c1.Path); err != nil {
		t.Fatal(err)
	}
	// What a reboot wipes from the kernel besides the namespaces; each may already be gone.
	for _, cmd := range [][]string{
		{"ip", "link", "del", "fabric0"},
		{"ip", "link", "del", "br-int"},
		{"ip", "route", "flush", "proto", "147"},
		{"nft", "delete", "table", "ip", "ovsfabric"},
	} {
		_, _ = victim.Run(ctx, cmd[0], cmd[1:]...)
	}
	if err := victim.StartOVS(ctx); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if _, err := fl.f.StartArgs(ctx, victim, node.Args); err != nil {
		t.Fatal(err)
	}
	if _, err := fl.f.WaitConverged(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	converged := time.Since(start)
	took := fl.waitSameAs(t, ctx, want, false, 60*time.Second, func(host string, s fabriclab.Snapshot) fabriclab.Snapshot {
		if host == victim.Name {
			return s.Without("br-int kind=")
		}
		return s
	})
	t.Logf("%s rebooted: converged %s after fabricd started; every host's state as expected (same subnet, c1 pruned, nothing else changed anywhere) %s later",
		victim.Name, converged.Round(time.Millisecond), took.Round(time.Millisecond))

	// c1's address is free again: the next container on the host gets it.
	c1b, err := fl.f.AddContainer(ctx, fl.f.Node(victim.Name), "c1b", api.AttachRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if c1b.A.IP != c1.A.IP {
		t.Errorf("new container on the rebooted host got %s, want c1's freed address %s", c1b.A.IP, c1.A.IP)
	}
	assertMatrix(t, ctx, []*fabriclab.Container{c1b, c2, c3}, 6)
	t.Logf("%s rebooted: new container reaches every other one %s after fabricd started", victim.Name, time.Since(start).Round(time.Millisecond))
	requireNoLoss(t, others.Name, stopStream(t, others))
	requireNoLoss(t, back.Name, stopStream(t, back))
}

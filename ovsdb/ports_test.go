package ovsdb

import (
	"context"
	"maps"
	"testing"
	"time"

	"github.com/ovn-org/libovsdb/model"
	libovsdb "github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovsfabric/ovsfabric/ovsdb/ovsdbtest"
	"github.com/ovsfabric/ovsfabric/ovsdb/vswitchd"
)

func TestEnsurePortAndDeletePort(t *testing.T) {
	eachBackend(t, func(t *testing.T, ep string) {
		ctx := context.Background()
		c, raw := dial(t, ep), rawClient(t, ep)
		ensureBridge(t, c, "br-int", "h1")

		gw := PortSpec{Name: "fabric0", Type: "internal", Owner: "h1", Role: RoleGateway, MAC: "02:0A:F4:03:00:01", OfportRequest: 10}
		veth := PortSpec{Name: "vethc1", Owner: "h1", Role: RoleContainer, ExternalIDs: map[string]string{
			KeyContainer: "c1", KeyNetNS: "/var/run/netns/c1", KeyIP: "10.244.3.2/24", KeyMAC: "02:00:0a:f4:03:02", KeyIfName: "eth0", KeyContainerID: "",
		}}
		for _, spec := range []PortSpec{gw, veth} {
			expectOneWrite(t, c, "create "+spec.Name, func() {
				if err := c.EnsurePort(ctx, "br-int", spec); err != nil {
					t.Fatal(err)
				}
			})
			expectNoWrite(t, c, "repeat "+spec.Name, func() {
				if err := c.EnsurePort(ctx, "br-int", spec); err != nil {
					t.Fatal(err)
				}
			})
		}
		p, _ := port(t, c, "br-int", "fabric0")
		if p.Type != "internal" || p.MAC != "02:0a:f4:03:00:01" || p.OfportRequest != 10 || p.Role() != RoleGateway || p.IfaceExternalIDs[KeyRole] != RoleGateway {
			t.Errorf("fabric0 = %+v", p)
		}
		p, _ = port(t, c, "br-int", "vethc1")
		want := map[string]string{KeyOwner: "h1", KeyRole: RoleContainer, KeyContainer: "c1", KeyNetNS: "/var/run/netns/c1",
			KeyIP: "10.244.3.2/24", KeyMAC: "02:00:0a:f4:03:02", KeyIfName: "eth0"}
		if p.Type != "" || !maps.Equal(p.ExternalIDs, want) || !maps.Equal(p.IfaceExternalIDs, want) {
			t.Errorf("vethc1 = %+v, want ids %v on port and interface", p, want)
		}

		// An operator's own key on the interface survives; fabricd's keys follow the spec.
		i := rawIface(t, raw, "vethc1")
		irow := &vswitchd.Interface{UUID: i.UUID}
		rawTransact(t, raw, mustOps(raw.Where(irow).Mutate(irow, model.Mutation{Field: &irow.ExternalIDs,
			Mutator: libovsdb.MutateOperationInsert, Value: map[string]string{"attached-mac": "x", KeyPrefix + "stale": "y"}})))
		waitFor(t, "operator keys", func() bool { p, _ := port(t, c, "br-int", "vethc1"); return p.IfaceExternalIDs["attached-mac"] == "x" })
		veth.ExternalIDs[KeyIP] = "10.244.3.3/24"
		expectOneWrite(t, c, "change ip", func() {
			if err := c.EnsurePort(ctx, "br-int", veth); err != nil {
				t.Fatal(err)
			}
		})
		p, _ = port(t, c, "br-int", "vethc1")
		want[KeyIP] = "10.244.3.3/24"
		iwant := maps.Clone(want)
		iwant["attached-mac"] = "x"
		if !maps.Equal(p.ExternalIDs, want) || !maps.Equal(p.IfaceExternalIDs, iwant) {
			t.Errorf("after update: port ids %v, interface ids %v; want %v and %v", p.ExternalIDs, p.IfaceExternalIDs, want, iwant)
		}
		// Options, MAC and ofport_request are exact: clearing them clears the columns.
		gw.MAC, gw.OfportRequest, gw.Options = "", 0, map[string]string{"a": "b"}
		expectOneWrite(t, c, "gateway columns", func() {
			if err := c.EnsurePort(ctx, "br-int", gw); err != nil {
				t.Fatal(err)
			}
		})
		if p, _ := port(t, c, "br-int", "fabric0"); p.MAC != "" || p.OfportRequest != 0 || p.Options["a"] != "b" {
			t.Errorf("fabric0 = %+v", p)
		}

		inv, err := c.Owned(ctx, "h1")
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, p := range inv.Ports {
			names = append(names, p.Name+"/"+p.Role())
		}
		if got := join(names); got != "br-int/bridge,fabric0/gateway,vethc1/container" {
			t.Errorf("Owned ports = %s", got)
		}

		// Foreign ports: EnsurePort and DeletePort refuse them, nothing sent.
		rawAddPort(t, raw, "br-int", "foreign0", "", nil)
		rawAddPort(t, raw, "br-int", "h2veth", "", map[string]string{KeyOwner: "h2", KeyRole: RoleContainer})
		waitFor(t, "foreign ports", func() bool { _, ok := port(t, c, "br-int", "h2veth"); return ok })
		for _, n := range []string{"foreign0", "h2veth"} {
			expectNoWrite(t, c, "foreign "+n, func() {
				if err := c.DeletePort(ctx, "br-int", n, "h1"); !isErr(err, ErrNotOwned) {
					t.Errorf("DeletePort(%s): %v, want ErrNotOwned", n, err)
				}
				if err := c.EnsurePort(ctx, "br-int", PortSpec{Name: n, Owner: "h1", Role: RoleContainer}); !isErr(err, ErrNotOwned) {
					t.Errorf("EnsurePort(%s): %v, want ErrNotOwned", n, err)
				}
			})
		}
		expectNoWrite(t, c, "local port", func() {
			if err := c.DeletePort(ctx, "br-int", "br-int", "h1"); !isErr(err, ErrConflict) {
				t.Errorf("DeletePort(local port): %v, want ErrConflict", err)
			}
		})
		expectNoWrite(t, c, "role change", func() {
			if err := c.EnsurePort(ctx, "br-int", PortSpec{Name: "vethc1", Type: "internal", Owner: "h1", Role: RoleGateway}); !isErr(err, ErrConflict) {
				t.Errorf("EnsurePort turning a container port into a gateway: %v, want ErrConflict", err)
			}
		})

		expectOneWrite(t, c, "delete", func() {
			if err := c.DeletePort(ctx, "br-int", "vethc1", "h1"); err != nil {
				t.Fatal(err)
			}
		})
		if _, ok := port(t, c, "br-int", "vethc1"); ok {
			t.Error("vethc1 still there")
		}
		expectNoWrite(t, c, "delete again", func() {
			if err := c.DeletePort(ctx, "br-int", "vethc1", "h1"); err != nil {
				t.Errorf("deleting a missing port: %v", err)
			}
			if err := c.DeletePort(ctx, "br-none", "vethc1", "h1"); err != nil {
				t.Errorf("deleting from a missing bridge: %v", err)
			}
		})

		// A port of h1 found on another bridge is moved.
		ensureBridge(t, c, "br-two", "h1")
		expectOneWrite(t, c, "move", func() {
			if err := c.EnsurePort(ctx, "br-two", gw); err != nil {
				t.Fatal(err)
			}
		})
		if _, ok := port(t, c, "br-int", "fabric0"); ok {
			t.Error("fabric0 still on br-int")
		}
		if p, ok := port(t, c, "br-two", "fabric0"); !ok || p.Options["a"] != "b" {
			t.Errorf("fabric0 not moved to br-two: %+v", p)
		}
	})
}

func join(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ","
		}
		out += x
	}
	return out
}

func TestEnsurePortRejects(t *testing.T) {
	c := dial(t, ovsdbtest.Start(t))
	ensureBridge(t, c, "br-int", "h1")
	ok := PortSpec{Name: "vethc1", Owner: "h1", Role: RoleContainer}
	with := func(f func(*PortSpec)) PortSpec { p := ok; f(&p); return p }
	for _, tc := range []struct {
		name   string
		bridge string
		spec   PortSpec
		want   error
	}{
		{"empty name", "br-int", with(func(p *PortSpec) { p.Name = "" }), ErrInvalid},
		{"16 bytes", "br-int", with(func(p *PortSpec) { p.Name = "veth0123456789ab" }), ErrInvalid},
		{"colon", "br-int", with(func(p *PortSpec) { p.Name = "veth:1" }), ErrInvalid},
		{"non-ascii", "br-int", with(func(p *PortSpec) { p.Name = "vethé" }), ErrInvalid},
		{"empty owner", "br-int", with(func(p *PortSpec) { p.Owner = "" }), ErrInvalid},
		{"empty role", "br-int", with(func(p *PortSpec) { p.Role = "" }), ErrInvalid},
		{"tunnel role", "br-int", with(func(p *PortSpec) { p.Role = RoleTunnel }), ErrInvalid},
		{"bridge role", "br-int", with(func(p *PortSpec) { p.Role = RoleBridge }), ErrInvalid},
		{"tunnel type", "br-int", with(func(p *PortSpec) { p.Type = "vxlan" }), ErrInvalid},
		{"bad type", "br-int", with(func(p *PortSpec) { p.Type = "Internal " }), ErrInvalid},
		{"bad mac", "br-int", with(func(p *PortSpec) { p.MAC = "02:00:00:00:00" }), ErrInvalid},
		{"ofport", "br-int", with(func(p *PortSpec) { p.OfportRequest = 65280 }), ErrInvalid},
		{"role in ids", "br-int", with(func(p *PortSpec) { p.ExternalIDs = map[string]string{KeyRole: RoleGateway} }), ErrInvalid},
		{"bad bridge", "", ok, ErrInvalid},
		{"missing bridge", "br-none", ok, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			expectNoWrite(t, c, tc.name, func() {
				if err := c.EnsurePort(context.Background(), tc.bridge, tc.spec); !isErr(err, tc.want) {
					t.Errorf("err = %v, want %v", err, tc.want)
				}
			})
		})
	}
}

func TestSystemExternalIDs(t *testing.T) {
	eachBackend(t, func(t *testing.T, ep string) {
		ctx := context.Background()
		c := dial(t, ep)
		other := dial(t, ep)
		if err := other.SetSystemExternalIDs(ctx, map[string]string{"system-id": "test", "hostname": "h1.example"}, nil); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "other's keys", func() bool { ids, _ := c.SystemExternalIDs(ctx); return ids["hostname"] != "" })

		expectOneWrite(t, c, "set", func() {
			if err := c.SetSystemExternalIDs(ctx, map[string]string{"ovsfabric-node": "h1", "ovsfabric-subnet": "10.244.1.0/24"}, []string{"absent"}); err != nil {
				t.Fatal(err)
			}
		})
		expectOneWrite(t, c, "change and delete", func() {
			if err := c.SetSystemExternalIDs(ctx, map[string]string{"ovsfabric-subnet": "10.244.2.0/24"}, []string{"ovsfabric-node"}); err != nil {
				t.Fatal(err)
			}
		})
		ids, err := c.SystemExternalIDs(ctx)
		if err != nil {
			t.Fatal(err)
		}
		want := map[string]string{"system-id": "test", "hostname": "h1.example", "ovsfabric-subnet": "10.244.2.0/24"}
		if !maps.Equal(ids, want) {
			t.Errorf("external_ids = %v, want %v", ids, want)
		}
		expectNoWrite(t, c, "no-op", func() {
			if err := c.SetSystemExternalIDs(ctx, map[string]string{"ovsfabric-subnet": "10.244.2.0/24"}, []string{"ovsfabric-node", "absent"}); err != nil {
				t.Error(err)
			}
		})
		if err := c.SetSystemExternalIDs(ctx, map[string]string{"": "x"}, nil); !isErr(err, ErrInvalid) {
			t.Errorf("empty key: %v", err)
		}
		// DatapathTypes and IfaceTypes are ovs-vswitchd's to fill in; without it they are empty.
		if dt, err := c.DatapathTypes(ctx); err != nil || len(dt) != 0 {
			t.Errorf("DatapathTypes = %v, %v", dt, err)
		}
		if it, err := c.IfaceTypes(ctx); err != nil || len(it) != 0 {
			t.Errorf("IfaceTypes = %v, %v", it, err)
		}
	})
}

// TestChangesOnForeignDelete is the operator's `ovs-vsctl del-port` of a fabricd port: Changes
// fires, and the reconcile that follows puts the port back.
func TestChangesOnForeignDelete(t *testing.T) {
	eachBackend(t, func(t *testing.T, ep string) {
		ctx := context.Background()
		c, raw := dial(t, ep), rawClient(t, ep)
		ensureBridge(t, c, "br-int", "h1")
		desired := []TunnelSpec{tun("vxl-a", "172.30.0.12"), tun("vxl-b", "172.30.0.13")}
		if _, err := c.ReconcileTunnels(ctx, "br-int", "h1", desired); err != nil {
			t.Fatal(err)
		}
		// Let the notifications of our own writes drain.
		time.Sleep(100 * time.Millisecond)
		drain(c.Changes())

		rawDelPort(t, raw, "br-int", "vxl-a")
		select {
		case <-c.Changes():
		case <-time.After(5 * time.Second):
			t.Fatal("no Changes() after another client deleted a port")
		}
		waitFor(t, "vxl-a gone from the cache", func() bool { _, ok := port(t, c, "br-int", "vxl-a"); return !ok })
		res, err := c.ReconcileTunnels(ctx, "br-int", "h1", desired)
		if err != nil || join(res.Added) != "vxl-a" || len(res.Updated)+len(res.Removed) != 0 {
			t.Errorf("reconcile after del-port: %+v %v", res, err)
		}
	})
}

func drain(ch <-chan struct{}) {
	for {
		select {
		case <-ch:
		default:
			return
		}
	}
}

// TestEnsurePorts: several ports are made in one transaction, with their requested OpenFlow
// port numbers; a batch with a bad spec or a collision sends nothing.
func TestEnsurePorts(t *testing.T) {
	eachBackend(t, func(t *testing.T, ep string) {
		ctx := context.Background()
		c := dial(t, ep)
		ensureBridge(t, c, "br-int", "h1")
		spec := func(name string, ofport int) PortSpec {
			return PortSpec{Name: name, Owner: "h1", Role: RoleContainer, OfportRequest: ofport}
		}
		if err := c.EnsurePort(ctx, "br-int", PortSpec{Name: "theirs", Owner: "h2", Role: RoleContainer}); err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name  string
			specs []PortSpec
		}{
			{"same name twice", []PortSpec{spec("veth1", 40001), spec("veth1", 40002)}},
			{"same ofport twice", []PortSpec{spec("veth1", 40001), spec("veth2", 40001)}},
			{"ofport out of range", []PortSpec{spec("veth1", 40001), spec("veth2", 65280)}},
			{"another owner's port", []PortSpec{spec("veth1", 40001), {Name: "theirs", Owner: "h1", Role: RoleContainer}}},
			{"two owners", []PortSpec{spec("veth1", 40001), {Name: "veth2", Owner: "h2", Role: RoleContainer}}},
		} {
			expectNoWrite(t, c, tc.name, func() {
				if err := c.EnsurePorts(ctx, "br-int", tc.specs); err == nil {
					t.Errorf("%s: no error", tc.name)
				}
			})
		}
		batch := []PortSpec{spec("veth1", 40001), spec("veth2", 40002), spec("veth3", 0)}
		expectOneWrite(t, c, "three ports", func() {
			if err := c.EnsurePorts(ctx, "br-int", batch); err != nil {
				t.Fatal(err)
			}
		})
		expectNoWrite(t, c, "again", func() {
			if err := c.EnsurePorts(ctx, "br-int", batch); err != nil {
				t.Fatal(err)
			}
		})
		for _, s := range batch {
			if p, ok := port(t, c, "br-int", s.Name); !ok || p.OfportRequest != s.OfportRequest || p.Owner() != "h1" {
				t.Errorf("%s = %+v (found %v), want ofport_request %d", s.Name, p, ok, s.OfportRequest)
			}
		}
	})
}

package controller

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	libovsdb "github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovsfabric/ovsfabric/endpoint"
	"github.com/ovsfabric/ovsfabric/flows/flowstest"
	"github.com/ovsfabric/ovsfabric/ovsdb"
	"github.com/ovsfabric/ovsfabric/ovsdb/ovsdbtest"
	"github.com/ovsfabric/ovsfabric/ovsdb/vswitchd"
	"github.com/ovsfabric/ovsfabric/peers"
)

// servedSwitch is an in-memory OpenFlow switch whose ovs-vswitchd identity the test sets.
type servedSwitch struct {
	*flowstest.Switch
	*fakeServer
}

// TestFinishRestoreWait: fabricd removes a flow-restore-wait that fabricctl set only once its
// pipeline is on a new ovs-vswitchd, and never one set without its mark (ovs-ctl's, an
// operator's).
func TestFinishRestoreWait(t *testing.T) {
	ctx := context.Background()
	ep := startOVSDB(t)
	s := settings(t, "10.244.1.0/24")
	sw, err := ovsdb.Dial(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	m := &fakeMembers{ch: make(chan struct{})}
	m.set(peer("h2", "172.30.0.12", "10.244.2.0/24", peers.StateAlive, time.Now()))
	of := servedSwitch{flowstest.New(), &fakeServer{id: "a"}}
	k, log := &fakeKernel{}, slog.New(slog.DiscardHandler)
	eps := endpoint.New(s, sw, k, log)
	c := New(s, sw, k, of, eps, log)
	eps.SetLoop(c)
	if err := c.Init(ctx); err != nil {
		t.Fatal(err)
	}
	c.SetMembership(m)
	// Until the gateway port is numbered there is no pipeline, and nothing may be cleared.
	if err := sw.PrepareRestart(ctx, "old"); err != nil {
		t.Fatal(err)
	}
	syncUntilFlows(t, c, of.Switch)

	raw := rawOVSDB(t, ep)
	for _, step := range []struct {
		name    string
		prepare string // mark PrepareRestart writes; "" with foreign: the flag alone
		foreign bool
		server  string
		cleared bool
	}{
		{"pipeline programmed on a new ovs-vswitchd", "", false, "a", true},
		{"prepared, ovs-vswitchd not restarted yet", "a", false, "a", false},
		{"ovs-vswitchd gone", "a", false, "", false},
		{"restarted: new ovs-vswitchd programmed", "a", false, "b", true},
		{"flag set by ovs-ctl or an operator", "", true, "c", false},
	} {
		if step.prepare != "" {
			if err := sw.PrepareRestart(ctx, step.prepare); err != nil {
				t.Fatal(err)
			}
		}
		if step.foreign {
			setOtherConfig(t, raw, ovsdb.OtherConfigFlowRestoreWait, "true")
			for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
				if rw, _ := sw.FlowRestoreWait(ctx); rw.Set || time.Now().After(deadline) {
					break
				}
			}
		}
		of.set(step.server)
		if err := c.Sync(ctx); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		rw, err := sw.FlowRestoreWait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if rw.Set == step.cleared || (step.cleared && rw.Mark != "") {
			t.Errorf("%s: flow-restore-wait %+v, want cleared=%v", step.name, rw, step.cleared)
		}
	}
}

// syncUntilFlows syncs until the pipeline's flows are on of (the gateway port numbered).
func syncUntilFlows(t *testing.T, c *Controller, of *flowstest.Switch) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if err := c.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
		if fs, _ := of.Flows(context.Background()); len(fs) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no flows after 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rawOVSDB is a plain libovsdb client, for writes an operator would make with ovs-vsctl.
func rawOVSDB(t *testing.T, ep string) client.Client { return ovsdbtest.RawClient(t, ep) }

// setOtherConfig sets one other_config key of the Open_vSwitch row, as
// `ovs-vsctl set Open_vSwitch . other_config:KEY=VALUE` does.
func setOtherConfig(t *testing.T, raw client.Client, key, value string) {
	t.Helper()
	ctx := context.Background()
	var rows []vswitchd.OpenvSwitch
	if err := raw.List(ctx, &rows); err != nil || len(rows) != 1 {
		t.Fatalf("root row: %v %d", err, len(rows))
	}
	row := &vswitchd.OpenvSwitch{UUID: rows[0].UUID}
	ops, err := raw.Where(row).Mutate(row,
		model.Mutation{Field: &row.OtherConfig, Mutator: libovsdb.MutateOperationDelete, Value: []string{key}},
		model.Mutation{Field: &row.OtherConfig, Mutator: libovsdb.MutateOperationInsert, Value: map[string]string{key: value}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := raw.Transact(ctx, ops...)
	if err == nil {
		_, err = libovsdb.CheckOperationResults(res, ops)
	}
	if err != nil {
		t.Fatal(err)
	}
}

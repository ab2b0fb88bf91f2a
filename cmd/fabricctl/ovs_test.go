package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/ovsfabric/ovsfabric/ovsdb"
	"github.com/ovsfabric/ovsfabric/ovsdb/ovsdbtest"
)

// TestPrepareRestart covers what `fabricctl ovs prepare-restart` decides without an
// ovs-vswitchd (the lab test TestOVSPlannedRestart runs it against a real one): with no
// ovs-vswitchd serving the bridge it refuses and writes nothing; --cancel removes the flag
// and mark fabricctl set, and says so when there is none.
func TestPrepareRestart(t *testing.T) {
	ctx := context.Background()
	ep := ovsdbtest.Start(t)
	sw, err := ovsdb.Dial(ctx, ep)
	if err != nil {
		t.Fatal(err)
	}
	defer sw.Close()
	run := func(args ...string) (string, error) {
		var out bytes.Buffer
		root := newRoot(&out)
		root.SetArgs(append([]string{"ovs", "prepare-restart", "--ovsdb", ep, "--ovs-rundir", t.TempDir()}, args...))
		err := root.Execute()
		return out.String(), err
	}
	state := func() ovsdb.RestoreWait {
		t.Helper()
		// A write through sw orders the read after every commit fabricctl made.
		if err := sw.SetSystemExternalIDs(ctx, map[string]string{"test-sync": t.Name()}, nil); err != nil {
			t.Fatal(err)
		}
		rw, err := sw.FlowRestoreWait(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return rw
	}

	if _, err := run(); err == nil || !strings.Contains(err.Error(), "br-int.mgmt") {
		t.Errorf("no ovs-vswitchd: %v, want an error naming br-int.mgmt", err)
	}
	if rw := state(); rw != (ovsdb.RestoreWait{}) {
		t.Errorf("a refused prepare-restart wrote %+v", rw)
	}
	if out, err := run("--cancel"); err != nil || !strings.Contains(out, "nothing to cancel") {
		t.Errorf("cancel with nothing prepared: %q %v", out, err)
	}
	if err := sw.PrepareRestart(ctx, "1:2:3.4"); err != nil {
		t.Fatal(err)
	}
	if out, err := run("--cancel"); err != nil || !strings.Contains(out, "removed") {
		t.Errorf("cancel: %q %v", out, err)
	}
	if rw := state(); rw != (ovsdb.RestoreWait{}) {
		t.Errorf("after cancel: %+v", rw)
	}
}

// Package e2e holds the lab tests: real ovsdb-server and ovs-vswitchd per host (network
// namespaces), real fabricd processes, real containers. They need root; without it they skip
// with a message, except under CI=true where a lab that cannot start is a failure.
package e2e

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
	"github.com/ovsfabric/ovsfabric/lab/labtest"
)

// binDir holds fabricd and fabricctl built for this test run.
var binDir string

func TestMain(m *testing.M) {
	code := func() int {
		if os.Geteuid() != 0 {
			return m.Run() // every test skips (or fails under CI) in requireLab
		}
		dir, err := os.MkdirTemp("", "ovsfabric-e2e-bin-")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		defer os.RemoveAll(dir)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		if err := fabriclab.BuildBinaries(ctx, dir); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		binDir = dir
		return m.Run()
	}()
	os.Exit(code)
}

// requireLab skips the test when the lab cannot run here, or fails it under CI=true.
func requireLab(t *testing.T) {
	t.Helper()
	labtest.Require(t, "lab tests (network namespaces, OVS daemons)", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ip", "ping")
}

// upLab builds a lab of n hosts and tears it down when the test ends, checking that nothing
// is left behind.
func upLab(t *testing.T, ctx context.Context, n int, external bool) *lab.Lab {
	t.Helper()
	l, err := lab.Up(ctx, lab.Config{Dir: t.TempDir() + "/lab", Hosts: n, External: external})
	if err != nil {
		if os.Getenv("CI") != "true" && os.Getenv("OVSFABRIC_LAB_REQUIRED") == "" {
			t.Skipf("lab cannot start here: %v", err)
		}
		t.Fatalf("lab up: %v", err)
	}
	t.Cleanup(func() {
		dctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if err := l.Down(dctx); err != nil {
			t.Errorf("lab down: %v", err)
		}
		if left := l.Leftovers(); len(left) > 0 {
			t.Errorf("lab left things behind: %v", left)
		}
	})
	return l
}

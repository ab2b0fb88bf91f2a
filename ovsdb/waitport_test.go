package ovsdb

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/ovsdb/ovsdbtest"
)

// TestWaitPort: WaitPort returns once ovs-vswitchd (here ovsdbtest's stand-in, started after
// the wait began) numbers the port, woken by the change event, and gives up with the context.
func TestWaitPort(t *testing.T) {
	ctx := context.Background()
	ep := ovsdbtest.Start(t)
	c := dial(t, ep)
	ensureBridge(t, c, "br-int", "h1")
	if err := c.EnsurePort(ctx, "br-int", PortSpec{Name: "vethc1", Owner: "h1", Role: RoleContainer}); err != nil {
		t.Fatal(err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	_, err := c.WaitPort(short, "br-int", "vethc1")
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("wait without ovs-vswitchd: %v, want the deadline", err)
	}
	done := make(chan error, 1)
	go func() {
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		p, err := c.WaitPort(wctx, "br-int", "vethc1")
		if err == nil && p.Ofport <= 0 {
			err = errors.New("returned an unnumbered port")
		}
		done <- err
	}()
	time.Sleep(50 * time.Millisecond)
	ovsdbtest.Vswitchd(t, ep)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

package ovsdb

import (
	"context"
	"testing"
)

// TestRestoreWait: PrepareRestart sets the flag and fabricd's mark together; ClearRestoreWait
// removes them only with the same mark, and never a flag that holds another value or keys
// others wrote.
func TestRestoreWait(t *testing.T) {
	eachBackend(t, func(t *testing.T, ep string) {
		ctx := context.Background()
		c := dial(t, ep)
		other := dial(t, ep)
		if err := other.SetSystemExternalIDs(ctx, map[string]string{"system-id": "test"}, nil); err != nil {
			t.Fatal(err)
		}
		if rw, err := c.FlowRestoreWait(ctx); err != nil || rw != (RestoreWait{}) {
			t.Fatalf("fresh database: %+v, %v", rw, err)
		}
		if err := c.PrepareRestart(ctx, ""); !isErr(err, ErrInvalid) {
			t.Errorf("empty mark: %v", err)
		}
		expectOneWrite(t, c, "prepare", func() {
			if err := c.PrepareRestart(ctx, "1:2:3.4"); err != nil {
				t.Fatal(err)
			}
		})
		if rw, _ := c.FlowRestoreWait(ctx); rw != (RestoreWait{Set: true, Mark: "1:2:3.4"}) {
			t.Fatalf("after prepare: %+v", rw)
		}
		expectNoWrite(t, c, "prepare again", func() {
			if err := c.PrepareRestart(ctx, "1:2:3.4"); err != nil {
				t.Fatal(err)
			}
		})
		// Another mark (someone prepared again meanwhile): nothing is removed.
		if err := c.ClearRestoreWait(ctx, "9:9:9.9"); err != nil {
			t.Fatal(err)
		}
		// A write through the same client after it is in the cache once it returns.
		if err := c.SetSystemExternalIDs(ctx, map[string]string{"ovsfabric-sync": "1"}, nil); err != nil {
			t.Fatal(err)
		}
		if rw, _ := c.FlowRestoreWait(ctx); rw != (RestoreWait{Set: true, Mark: "1:2:3.4"}) {
			t.Fatalf("a clear with another mark changed something: %+v", rw)
		}
		if err := c.ClearRestoreWait(ctx, "1:2:3.4"); err != nil {
			t.Fatal(err)
		}
		if rw, _ := c.FlowRestoreWait(ctx); rw != (RestoreWait{}) {
			t.Fatalf("after clear: %+v", rw)
		}
		if ids, _ := c.SystemExternalIDs(ctx); ids["system-id"] != "test" {
			t.Errorf("clear touched other keys: %v", ids)
		}
	})
}

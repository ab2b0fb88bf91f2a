package e2e

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// partitionFor is how long the underlay stays cut: well past failure detection (a peer is
// declared dead about 2 s after it stops answering).
const partitionFor = 5 * time.Second

// TestFaultPartitionHeal cuts one host's underlay for longer than failure detection, then
// restores it. Traffic among the other hosts loses nothing; the others see the host fail;
// after the heal every host sees every other alive again, every container pair reaches each
// other, and every host holds exactly what it held before (no subnet, port, route or
// address changed anywhere).
func TestFaultPartitionHeal(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	fl := newFaultLab(t, ctx)
	victim := fl.l.Hosts[0]
	c1, c2, c3 := fl.cs[0], fl.cs[1], fl.cs[2]
	before := fl.snapshots(t, ctx)

	others := startStream(t, ctx, c2, c3)
	back := startStream(t, ctx, c3, c2)
	through := startStream(t, ctx, c2, c1)
	time.Sleep(500 * time.Millisecond)
	if err := fl.l.CutUnderlay(ctx, victim); err != nil {
		t.Fatal(err)
	}
	cut := time.Now()
	restored := false
	defer func() {
		if !restored {
			_ = fl.l.RestoreUnderlay(context.WithoutCancel(ctx), victim)
		}
	}()
	// The others must notice: the partition has to outlast failure detection.
	detected := eventually(t, 30*time.Second, "the others see "+victim.Name+" fail", func() error {
		for _, n := range fl.f.Nodes()[1:] {
			st, err := n.Status(ctx)
			if err != nil {
				return err
			}
			for _, p := range st.Peers {
				if p.Name == victim.Name && p.State == "alive" {
					return fmt.Errorf("%s still sees %s alive", n.Host.Name, victim.Name)
				}
			}
		}
		return nil
	})
	t.Logf("the others saw %s fail %s after its underlay was cut", victim.Name, detected.Round(time.Millisecond))
	time.Sleep(time.Until(cut.Add(partitionFor)))
	if err := fl.l.RestoreUnderlay(ctx, victim); err != nil {
		t.Fatal(err)
	}
	restored = true
	healed := time.Now()
	if _, err := fl.f.WaitConverged(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	alive := time.Since(healed)
	if err := waitReach(ctx, c2, c1, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := waitReach(ctx, c1, c3, 30*time.Second); err != nil {
		t.Fatal(err)
	}
	time.Sleep(500 * time.Millisecond)
	ro, rb, rt := stopStream(t, others), stopStream(t, back), stopStream(t, through)
	requireNoLoss(t, others.Name, ro)
	requireNoLoss(t, back.Name, rb)
	if rt.Recovered.IsZero() {
		t.Fatalf("%s: no reply through %s after the partition: %s", through.Name, victim.Name, rt)
	}
	t.Logf("%s (through the cut host): %s", through.Name, rt)
	t.Logf("partition of %s for %s healed: traffic through it flows again %s after the underlay was restored (the data path does not wait for gossip); every host sees every other alive %s after it",
		victim.Name, partitionFor, max(rt.Recovered.Sub(healed), 0).Round(time.Millisecond), alive.Round(time.Millisecond))
	assertMatrix(t, ctx, fl.cs, 6)
	took := fl.waitSame(t, ctx, before, false, 30*time.Second)
	t.Logf("every host's state identical to before the partition %s after the matrix passed", took.Round(time.Millisecond))
}

package e2e

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

// faultLab is the fault suite's fabric: three hosts h1–h3 running fabricd (routed pipeline,
// vxlan), one container c1–c3 on each.
type faultLab struct {
	l  *lab.Lab
	f  *fabriclab.Fabric
	cs []*fabriclab.Container
}

// streamInterval is the fault suite's traffic: a ping every 10 ms, counted.
const streamInterval = 10 * time.Millisecond

func newFaultLab(t *testing.T, ctx context.Context, extra ...string) *faultLab {
	t.Helper()
	requireLab(t)
	l := upLab(t, ctx, 3, false)
	f := fabriclab.New(l, fabriclab.Options{Bin: binDir, Tunnel: "vxlan", DeadPeerGrace: 2 * time.Minute,
		Extra: append([]string{"--pipeline", "routed"}, extra...)})
	t.Cleanup(func() { dumpLogsOnFailure(t, l) })
	for _, h := range l.Hosts {
		if _, err := f.Start(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.WaitConverged(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	fl := &faultLab{l: l, f: f}
	for i, n := range f.Nodes() {
		c, err := f.AddContainer(ctx, n, fmt.Sprintf("c%d", i+1), api.AttachRequest{})
		if err != nil {
			t.Fatal(err)
		}
		fl.cs = append(fl.cs, c)
	}
	assertMatrix(t, ctx, fl.cs, 6)
	return fl
}

// snapshots takes every node's snapshot, failing the test when one cannot be read.
func (fl *faultLab) snapshots(t *testing.T, ctx context.Context) map[string]fabriclab.Snapshot {
	t.Helper()
	s, err := fl.f.Snapshots(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// waitSame waits (up to timeout) until every node's snapshot equals before (ignoring UUIDs
// and OpenFlow numbers with stable), and fails with the difference otherwise.
func (fl *faultLab) waitSame(t *testing.T, ctx context.Context, before map[string]fabriclab.Snapshot, stable bool, timeout time.Duration) time.Duration {
	t.Helper()
	return fl.waitSameAs(t, ctx, before, stable, timeout, nil)
}

// waitSameAs is waitSame with norm applied to every snapshot taken (nil: none).
func (fl *faultLab) waitSameAs(t *testing.T, ctx context.Context, before map[string]fabriclab.Snapshot, stable bool, timeout time.Duration, norm func(host string, s fabriclab.Snapshot) fabriclab.Snapshot) time.Duration {
	t.Helper()
	start := time.Now()
	var diff string
	for {
		after, err := fl.f.Snapshots(ctx)
		if err == nil {
			if norm != nil {
				for h, s := range after {
					after[h] = norm(h, s)
				}
			}
			if diff = fabriclab.DiffAll(before, after, stable); diff == "" {
				return time.Since(start)
			}
		} else {
			diff = err.Error()
		}
		if time.Since(start) > timeout {
			t.Fatalf("host state differs from before the fault after %s:\n%s", timeout, diff)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// startStream starts a counted ping stream from one container to another, stopped at cleanup.
func startStream(t *testing.T, ctx context.Context, from, to *fabriclab.Container) *fabriclab.Stream {
	t.Helper()
	s, err := fabriclab.StartStream(ctx, from.Name+"->"+to.Name, from.NetNS, to.IP, streamInterval)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = s.Stop() })
	return s
}

// stopStream stops s and returns its counts.
func stopStream(t *testing.T, s *fabriclab.Stream) fabriclab.StreamResult {
	t.Helper()
	r, err := s.Stop()
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// requireNoLoss fails when the stream lost a packet (or hardly sent any).
func requireNoLoss(t *testing.T, name string, r fabriclab.StreamResult) {
	t.Helper()
	t.Logf("%s: %s", name, r)
	if r.Sent < 50 || r.Lost() != 0 {
		var at []string
		for i, seq := range r.Missing {
			at = append(at, fmt.Sprintf("%d@%s", seq, r.MissingAt[i].UTC().Format("15:04:05.000")))
		}
		t.Errorf("%s: lost %d of %d packets (want none): icmp_seq %s", name, r.Lost(), r.Sent, strings.Join(at, " "))
	}
}

// trials is how often a scenario with a timing figure repeats: OVSFABRIC_FAULT_TRIALS, else def.
func trials(def int) int {
	if n, err := strconv.Atoi(os.Getenv("OVSFABRIC_FAULT_TRIALS")); err == nil && n > 0 {
		return n
	}
	return def
}

// waitReach waits until from gets an answer from to.
func waitReach(ctx context.Context, from, to *fabriclab.Container, timeout time.Duration) error {
	return fabriclab.Reach(ctx, from.NetNS, to.IP, timeout)
}

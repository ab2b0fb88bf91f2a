package e2e

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

// TestOVSRundir runs fabricd without OVS_RUNDIR in its environment against a non-default
// database (each lab host's own): it must find ovs-vswitchd's OpenFlow sockets next to the
// database socket and program the routed pipeline. With a wrong --ovs-rundir the error says
// where it looked and which flag to set.
func TestOVSRundir(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := upLab(t, ctx, 2, false)
	f := fabriclab.New(l, fabriclab.Options{Bin: binDir, Resync: 2 * time.Second, Env: []string{"OVS_RUNDIR="},
		Extra: []string{"--pipeline", "routed"}})
	t.Cleanup(func() { dumpLogsOnFailure(t, l) })
	for _, h := range l.Hosts {
		if _, err := f.Start(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.WaitConverged(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	cs, err := f.AddContainers(ctx, "r", api.AttachRequest{})
	if err != nil {
		t.Fatal(err)
	}
	assertMatrix(t, ctx, cs, 2)
	for _, n := range f.Nodes() {
		st, err := n.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if st.LastError != "" {
			t.Errorf("%s: last error %q", n.Host.Name, st.LastError)
		}
		out, err := n.Host.Ofctl(ctx, "dump-flows", "br-int")
		if err != nil || !strings.Contains(out, "dec_ttl") {
			t.Errorf("%s: no routed flows (%v):\n%s", n.Host.Name, err, out)
		}
	}

	t.Run("wrong --ovs-rundir is named in the error", func(t *testing.T) {
		n := f.Node(l.Hosts[1].Name)
		if err := n.Proc.Stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		wrong := t.TempDir()
		n2, err := f.StartArgs(ctx, n.Host, append(n.Args, "--ovs-rundir", wrong))
		if err != nil {
			t.Fatal(err)
		}
		eventually(t, 30*time.Second, "an error naming --ovs-rundir", func() error {
			st, err := n2.Status(ctx)
			if err != nil {
				return err
			}
			if !strings.Contains(st.LastError, "looked in "+wrong+" (--ovs-rundir)") || !strings.Contains(st.LastError, "set --ovs-rundir") {
				return fmt.Errorf("last error %q", st.LastError)
			}
			t.Logf("error: %s", st.LastError)
			return nil
		})
	})
}

package e2e

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestFaultVSwitchdRestart restarts ovs-vswitchd on one host under traffic, alternately with
// SIGTERM and kill -9, the way an operator would: nothing is written to OVSDB (OpenFlow flows
// vanish with the process and a new ovs-vswitchd changes nothing in the database that says
// so). fabricd must notice on its own and restore the pipeline. Traffic between the other
// hosts loses nothing; the outage through the restarted host is measured (the bridge falls
// back to NORMAL until the flows are back); afterwards every host holds exactly what it held
// before, down to OVSDB UUIDs and OpenFlow port numbers. OVSFABRIC_FAULT_TRIALS sets the
// number of restarts (default 3).
func TestFaultVSwitchdRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	fl := newFaultLab(t, ctx)
	victim := fl.l.Hosts[0]
	node := fl.f.Node(victim.Name)
	c1, c2, c3 := fl.cs[0], fl.cs[1], fl.cs[2]
	before := fl.snapshots(t, ctx)
	var outages []time.Duration
	for trial := 1; trial <= trials(3); trial++ {
		kill := trial%2 == 0
		others := startStream(t, ctx, c2, c3)
		through := startStream(t, ctx, c2, c1)
		out := startStream(t, ctx, c1, c3)
		time.Sleep(500 * time.Millisecond)
		logBefore := fileSize(node.Proc.LogFile())
		if err := victim.RestartVSwitchd(ctx, kill); err != nil {
			t.Fatal(err)
		}
		restarted := time.Now()
		for _, p := range [][2]int{{1, 0}, {0, 2}} {
			if err := waitReach(ctx, fl.cs[p[0]], fl.cs[p[1]], 60*time.Second); err != nil {
				t.Fatalf("trial %d: %v", trial, err)
			}
		}
		time.Sleep(time.Second)
		ro, rt, rb := stopStream(t, others), stopStream(t, through), stopStream(t, out)
		requireNoLoss(t, others.Name, ro)
		outage := max(rt.Outage, rb.Outage)
		outages = append(outages, outage)
		how := "SIGTERM"
		if kill {
			how = "kill -9"
		}
		back := max(rt.Recovered.Sub(restarted), rb.Recovered.Sub(restarted), 0)
		t.Logf("trial %d (%s): outage through %s %s (%s: %s; %s: %s); traffic flowing %s after ovs-vswitchd was back",
			trial, how, victim.Name, outage.Round(time.Millisecond), through.Name, rt, out.Name, rb, back.Round(time.Millisecond))
		// fabricd found the new ovs-vswitchd by itself, not by the chance of an OVSDB update.
		if log := readFrom(node.Proc.LogFile(), logBefore); !strings.Contains(log, "new ovs-vswitchd on the bridge") {
			t.Errorf("trial %d: fabricd on %s did not log that it saw the new ovs-vswitchd:\n%s", trial, victim.Name, log)
		}
		took := fl.waitSame(t, ctx, before, false, 30*time.Second)
		t.Logf("trial %d: every host's state identical to before (UUIDs and ofports included) %s later", trial, took.Round(time.Millisecond))
	}
	slices.Sort(outages)
	t.Logf("ovs-vswitchd restart outage over %d trial(s): min %s median %s max %s", len(outages),
		outages[0].Round(time.Millisecond), outages[len(outages)/2].Round(time.Millisecond), outages[len(outages)-1].Round(time.Millisecond))
	assertMatrix(t, ctx, fl.cs, 6)
}

// fileSize is the size of a file (0 when it cannot be read).
func fileSize(path string) int64 {
	st, err := os.Stat(path)
	if err != nil {
		return 0
	}
	return st.Size()
}

// readFrom returns a file's content from offset on.
func readFrom(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) < offset {
		return ""
	}
	return string(b[offset:])
}

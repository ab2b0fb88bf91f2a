package e2e

import (
	"context"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestOVSPlannedRestart is the planned restart of ovs-vswitchd on one host, the way
// docs/operations.md tells an operator to do it: `fabricctl ovs prepare-restart` sets
// flow-restore-wait (marked as fabricd's), then ovs-vswitchd is restarted. Setting the flag
// on the running ovs-vswitchd loses nothing; after the restart fabricd programs the new
// ovs-vswitchd and clears the flag; traffic through that host comes back, traffic between the
// other hosts loses nothing, and every host holds exactly what it held before (flows,
// OVSDB UUIDs and OpenFlow port numbers included). With the userspace datapath (this
// machine) the datapath goes with the process, so the outage through the host is the restart
// itself plus the reprogramming: it is measured and logged, not asserted.
// OVSFABRIC_FAULT_TRIALS sets the number of restarts (default 2).
func TestOVSPlannedRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	fl := newFaultLab(t, ctx)
	victim := fl.l.Hosts[0]
	node := fl.f.Node(victim.Name)
	c1, c2, c3 := fl.cs[0], fl.cs[1], fl.cs[2]
	before := fl.snapshots(t, ctx)
	flowsBefore := dumpFlows(t, ctx, fl, 0)
	flag := func() string {
		t.Helper()
		out, err := victim.Vsctl(ctx, "--if-exists", "get", "Open_vSwitch", ".", "other_config:flow-restore-wait")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Trim(strings.TrimSpace(out), `"`)
	}
	var outages []time.Duration
	for trial := 1; trial <= trials(2); trial++ {
		ctl := exec.CommandContext(ctx, filepath.Join(binDir, "fabricctl"), "ovs", "prepare-restart", "--ovsdb", victim.Endpoint(), "--ovs-rundir", victim.Dir)
		out, err := ctl.CombinedOutput()
		if err != nil {
			t.Fatalf("trial %d: fabricctl ovs prepare-restart: %v\n%s", trial, err, out)
		}
		t.Logf("trial %d: fabricctl ovs prepare-restart: %s", trial, strings.TrimSpace(string(out)))
		if f := flag(); f != "true" {
			t.Fatalf("trial %d: flow-restore-wait is %q after prepare-restart, want true", trial, f)
		}
		// The flag on the running ovs-vswitchd changes nothing, and fabricd leaves it alone.
		calm := startStream(t, ctx, c2, c1)
		time.Sleep(1500 * time.Millisecond)
		requireNoLoss(t, "before the restart, flag set: "+calm.Name, stopStream(t, calm))
		if f := flag(); f != "true" {
			t.Fatalf("trial %d: flow-restore-wait is %q before ovs-vswitchd restarted, want true (cleared too early)", trial, f)
		}

		others := startStream(t, ctx, c2, c3)
		through := startStream(t, ctx, c2, c1)
		outb := startStream(t, ctx, c1, c3)
		time.Sleep(500 * time.Millisecond)
		logBefore := fileSize(node.Proc.LogFile())
		stopped := time.Now()
		if err := victim.RestartVSwitchd(ctx, false); err != nil {
			t.Fatal(err)
		}
		restarted := time.Now()
		for _, p := range [][2]int{{1, 0}, {0, 2}} {
			if err := waitReach(ctx, fl.cs[p[0]], fl.cs[p[1]], 60*time.Second); err != nil {
				t.Fatalf("trial %d: %v", trial, err)
			}
		}
		deadline := time.Now().Add(30 * time.Second)
		for flag() != "" {
			if time.Now().After(deadline) {
				t.Fatalf("trial %d: fabricd did not clear flow-restore-wait within 30s:\n%s", trial, readFrom(node.Proc.LogFile(), logBefore))
			}
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(time.Second)
		ro, rt, rb := stopStream(t, others), stopStream(t, through), stopStream(t, outb)
		requireNoLoss(t, others.Name, ro)
		outage := max(rt.Outage, rb.Outage)
		outages = append(outages, outage)
		t.Logf("trial %d: outage through %s %s (%s: %s; %s: %s); ovs-vswitchd stop+start took %s; traffic flowing %s after it was back",
			trial, victim.Name, outage.Round(time.Millisecond), through.Name, rt, outb.Name, rb,
			restarted.Sub(stopped).Round(time.Millisecond), max(rt.Recovered.Sub(restarted), rb.Recovered.Sub(restarted), 0).Round(time.Millisecond))
		if log := readFrom(node.Proc.LogFile(), logBefore); !strings.Contains(log, "flow-restore-wait cleared") {
			t.Errorf("trial %d: fabricd on %s did not log clearing flow-restore-wait:\n%s", trial, victim.Name, log)
		}
		if ids, err := victim.Vsctl(ctx, "get", "Open_vSwitch", ".", "external_ids"); err != nil || strings.Contains(ids, "ovsfabric-restore-wait") {
			t.Errorf("trial %d: fabricctl's mark left behind: %v %s", trial, err, ids)
		}
		took := fl.waitSame(t, ctx, before, false, 30*time.Second)
		if after := dumpFlows(t, ctx, fl, 0); !slices.Equal(after, flowsBefore) {
			t.Errorf("trial %d: flows on %s differ from before:\nbefore:\n%s\nafter:\n%s", trial, victim.Name, strings.Join(flowsBefore, "\n"), strings.Join(after, "\n"))
		}
		t.Logf("trial %d: every host's state and %s's flows identical to before %s later", trial, victim.Name, took.Round(time.Millisecond))
	}
	slices.Sort(outages)
	t.Logf("planned ovs-vswitchd restart (userspace datapath) outage over %d trial(s): min %s median %s max %s", len(outages),
		outages[0].Round(time.Millisecond), outages[len(outages)/2].Round(time.Millisecond), outages[len(outages)-1].Round(time.Millisecond))
	assertMatrix(t, ctx, fl.cs, 6)
}

// dumpFlows is the flow table of host i's br-int without statistics, sorted.
func dumpFlows(t *testing.T, ctx context.Context, fl *faultLab, i int) []string {
	t.Helper()
	out, err := fl.l.Hosts[i].Ofctl(ctx, "dump-flows", "--no-stats", "br-int")
	if err != nil {
		t.Fatal(err)
	}
	var fs []string
	for _, l := range strings.Split(out, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "NXST_FLOW") && !strings.HasPrefix(l, "OFPST_FLOW") {
			fs = append(fs, l)
		}
	}
	slices.Sort(fs)
	return fs
}

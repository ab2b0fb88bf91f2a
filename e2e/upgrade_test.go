package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

// previousRelease is the last commit of main before networks: the "old" fabricd a running
// fabric is upgraded from.
const previousRelease = "5a48161"

// TestRollingUpgrade runs a 3-host fabric on the previous release's fabricd with a container
// per host pinging every other one all along, then restarts the hosts one at a time on this
// build: no container is renumbered, no ping is lost between hosts already upgraded or not
// yet, and once all run this build a new network works.
func TestRollingUpgrade(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	oldBin := t.TempDir()
	if err := fabriclab.BuildBinariesAt(ctx, previousRelease, oldBin); err != nil {
		t.Fatal(err)
	}
	// The tunnels change from no key to key=flow: both types, one lab each, in parallel.
	for _, tunnel := range []string{"vxlan", "gre"} {
		t.Run(tunnel, func(t *testing.T) {
			t.Parallel()
			testRollingUpgrade(t, oldBin, tunnel)
		})
	}
}

func testRollingUpgrade(t *testing.T, oldBin, tunnel string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	l := upLab(t, ctx, 3, false)
	f := fabriclab.New(l, fabriclab.Options{Bin: oldBin, Tunnel: tunnel, Resync: 2 * time.Second})
	t.Cleanup(func() { dumpLogsOnFailure(t, l) })
	if err := f.StartAll(ctx, l.Hosts, nil); err != nil {
		t.Fatal(err)
	}
	cs, err := f.AddContainers(ctx, "c", api.AttachRequest{})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range fabriclab.PingMatrix(ctx, cs, 20*time.Second) {
		if !r.OK {
			t.Fatalf("before the upgrade: %v", r.Err)
		}
	}

	// Every pair pings every 100 ms for the whole upgrade.
	checkPings := pairPings(ctx, cs)

	newFabricd := filepath.Join(binDir, "fabricd")
	for _, h := range l.Hosts {
		n := f.Node(h.Name)
		if err := n.Proc.Stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		args := slices.Clone(n.Args)
		args[0] = newFabricd
		if _, err := f.StartArgs(ctx, h, args); err != nil {
			t.Fatal(err)
		}
		if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
			t.Fatalf("after upgrading %s: %v", h.Name, err)
		}
		time.Sleep(2 * time.Second) // pings flow through the mixed fabric
	}
	checkPings(t, "the upgrade")

	// No container was renumbered.
	for _, c := range cs {
		as, err := c.Node.Client().Attachments(ctx)
		if err != nil {
			t.Fatal(err)
		}
		i := slices.IndexFunc(as, func(a api.Attachment) bool { return a.NetNS == c.Path })
		if i < 0 || as[i].IP != c.A.IP || as[i].MAC != c.A.MAC || as[i].Network != "default" {
			t.Errorf("%s after the upgrade: %+v, was %s %s", c.Name, as, c.A.IP, c.A.MAC)
		}
	}
	// The upgraded fabric has networks.
	n1 := f.Node("h1")
	if _, err := n1.Client().CreateNetwork(ctx, api.NetworkCreateRequest{Name: "blue", Subnet: "10.50.0.0/16"}); err != nil {
		t.Fatal(err)
	}
	var blue []*fabriclab.Container
	for i, n := range f.Nodes() {
		c, err := attachRetry(ctx, f, n, fmt.Sprintf("b%d", i+1), "blue")
		if err != nil {
			t.Fatal(err)
		}
		blue = append(blue, c)
	}
	for _, r := range fabriclab.PingMatrix(ctx, blue, 20*time.Second) {
		if !r.OK {
			t.Errorf("blue after the upgrade: %v", r.Err)
		}
	}
	for _, c := range cs {
		if _, got, _ := fabriclab.Ping(ctx, blue[0].NetNS, c.IP, 2, 200*time.Millisecond); got > 0 {
			t.Errorf("blue's %s reaches default's %s", blue[0].Name, c.IP)
		}
	}
}

// pingUntil pings ip from netns every 100 ms until ctx ends, and counts.
func pingUntil(ctx context.Context, netns, ip string) (sent, received int, err error) {
	// ip netns exec execs ping, which prints its summary on SIGINT (not on the kill that a
	// context's end sends by default).
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", netns, "ping", "-n", "-q", "-i", "0.1", "-W", "1", ip)
	cmd.Cancel = func() error { return cmd.Process.Signal(os.Interrupt) }
	cmd.WaitDelay = 5 * time.Second
	out, _ := cmd.CombinedOutput()
	for _, line := range strings.Split(string(out), "\n") {
		if strings.Contains(line, "packets transmitted") {
			_, err = fmt.Sscanf(strings.TrimSpace(line), "%d packets transmitted, %d received", &sent, &received)
			return sent, received, err
		}
	}
	return 0, 0, fmt.Errorf("no ping summary: %s", out)
}

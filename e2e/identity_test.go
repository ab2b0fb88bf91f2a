package e2e

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

// hostState is what a host shows of the fabric, compared before and after an event that
// must change nothing there.
type hostState struct {
	tunnels, routes []string
	show            string
	peers           map[string]api.Peer
}

func hostSnapshot(t *testing.T, ctx context.Context, n *fabriclab.Node) hostState {
	t.Helper()
	st, err := n.Status(ctx)
	if err != nil {
		t.Fatalf("%s: status: %v", n.Host.Name, err)
	}
	ps := map[string]api.Peer{}
	for _, p := range st.Peers {
		ps[p.Name] = p
	}
	return hostState{tunnels: tunnelPorts(t, ctx, n.Host), routes: fabricRoutes(t, ctx, n.Host), show: vsctlShow(t, ctx, n.Host), peers: ps}
}

func (a hostState) diff(b hostState) string {
	switch {
	case strings.Join(a.tunnels, ",") != strings.Join(b.tunnels, ","):
		return fmt.Sprintf("tunnels %v -> %v", a.tunnels, b.tunnels)
	case strings.Join(a.routes, "\n") != strings.Join(b.routes, "\n"):
		return fmt.Sprintf("routes %v -> %v", a.routes, b.routes)
	case a.show != b.show:
		return fmt.Sprintf("ovs-vsctl show:\n%s\n->\n%s", a.show, b.show)
	case len(a.peers) != len(b.peers):
		return fmt.Sprintf("peers %v -> %v", a.peers, b.peers)
	}
	for name, p := range a.peers {
		q := b.peers[name]
		if p.Addr != q.Addr || p.Subnet != q.Subnet || p.State != q.State || !p.Since.Equal(q.Since) || p.Tunnel != q.Tunnel {
			return fmt.Sprintf("peer %s: %+v -> %+v", name, p, q)
		}
	}
	return ""
}

// TestDuplicateName: a third host started with the name of a live member (a cloned VM keeps
// its hostname) exits 1 naming that member's address, and nothing changes on the two
// members: no tunnel, route or OVSDB change, the namesake stays alive in its peer's view
// with the same state since, and traffic between them loses nothing.
func TestDuplicateName(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	l := upLab(t, ctx, 3, false)
	f := fabriclab.New(l, fabriclab.Options{Bin: binDir, Resync: 2 * time.Second})
	t.Cleanup(func() { dumpLogsOnFailure(t, l) })
	for _, h := range l.Hosts[:2] {
		if _, err := f.Start(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.WaitConverged(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	n1, n2 := f.Node(l.Hosts[0].Name), f.Node(l.Hosts[1].Name)
	c1, err := f.AddContainer(ctx, n1, "c1", api.AttachRequest{})
	if err != nil {
		t.Fatal(err)
	}
	c2, err := f.AddContainer(ctx, n2, "c2", api.AttachRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := fabriclab.Reach(ctx, c1.NetNS, c2.IP, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	before := map[string]hostState{n1.Host.Name: hostSnapshot(t, ctx, n1), n2.Host.Name: hostSnapshot(t, ctx, n2)}

	type pingResult struct {
		sent, rx int
		err      error
	}
	pinged := make(chan pingResult, 1)
	go func() {
		s, r, err := fabriclab.Ping(ctx, c1.NetNS, c2.IP, 1000, 10*time.Millisecond)
		pinged <- pingResult{s, r, err}
	}()
	time.Sleep(500 * time.Millisecond)

	// The clone: lab host 3 under h1's name, joining through both members.
	clone := l.Hosts[2]
	args := f.Args(clone, f.JoinAddrs(""), "--name", n1.Host.Name)
	p, err := clone.Start(ctx, "fabricd", args, nil)
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	werr := p.Wait(60 * time.Second)
	var exit *exec.ExitError
	if !errors.As(werr, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("the clone's fabricd: %v, want exit status 1", werr)
	}
	log, _ := os.ReadFile(p.LogFile())
	want := fmt.Sprintf("already used by the member at %s:7946", n1.Host.UnderlayIP)
	if !strings.Contains(string(log), want) {
		t.Fatalf("the clone's message does not name %s:\n%s", want, tailLines(string(log), 20))
	}
	last := strings.TrimSpace(string(log))
	t.Logf("the clone exited 1 after %s: %s", time.Since(began).Round(time.Millisecond), last[strings.LastIndex(last, "\n")+1:])

	r := <-pinged
	if r.err != nil || r.sent == 0 || r.rx != r.sent {
		t.Errorf("c1 -> c2 during the clone's attempt: %d/%d received (%v)", r.rx, r.sent, r.err)
	}
	t.Logf("c1 -> c2 during the clone's attempt: %d/%d received", r.rx, r.sent)
	for _, n := range []*fabriclab.Node{n1, n2} {
		if !n.Proc.Alive() {
			t.Errorf("%s's fabricd died", n.Host.Name)
		}
		if d := before[n.Host.Name].diff(hostSnapshot(t, ctx, n)); d != "" {
			t.Errorf("%s changed: %s", n.Host.Name, d)
		}
	}
	// The namesake saw the clone (it joined through it first) and lists it as rejected.
	st, err := n1.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Rejected) != 1 || !strings.Contains(st.Rejected[0], "name already used by the member at") {
		t.Errorf("%s's rejected list: %q", n1.Host.Name, st.Rejected)
	} else {
		t.Logf("%s status, rejected: %s", n1.Host.Name, st.Rejected[0])
	}
}

// TestClaimRetention: in a cluster CIDR of four subnets, a host dead for longer than
// --dead-peer-grace loses its tunnel and routes, but its subnet stays reserved (across a
// fabricd restart of a host that remembers it); a new host takes the free subnet; the dead
// host comes back to its own subnet with its container's address unchanged; and once
// --claim-retention has passed, a new host may take the subnet of one that went.
func TestClaimRetention(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	l := upLab(t, ctx, 4, false)
	const retention = 30 * time.Second
	f := fabriclab.New(l, fabriclab.Options{Bin: binDir, Resync: time.Second, DeadPeerGrace: 3 * time.Second,
		Extra: []string{"--cluster-cidr", "10.244.0.0/22", "--claim-retention", retention.String()}})
	t.Cleanup(func() { dumpLogsOnFailure(t, l) })
	for _, h := range l.Hosts[:3] {
		if _, err := f.Start(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.WaitConverged(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	n1, n2, n3 := f.Node(l.Hosts[0].Name), f.Node(l.Hosts[1].Name), f.Node(l.Hosts[2].Name)
	subnet := func(n *fabriclab.Node) string {
		t.Helper()
		st, err := n.Status(ctx)
		if err != nil {
			t.Fatalf("%s: %v", n.Host.Name, err)
		}
		return st.Subnet
	}
	s3 := subnet(n3)
	c1, err := f.AddContainer(ctx, n1, "c1", api.AttachRequest{})
	if err != nil {
		t.Fatal(err)
	}
	c3, err := f.AddContainer(ctx, n3, "c3", api.AttachRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if err := fabriclab.Reach(ctx, c1.NetNS, c3.IP, 20*time.Second); err != nil {
		t.Fatal(err)
	}

	// h3 dies; past the grace the others drop its tunnel and route and retain its subnet.
	if err := n3.Proc.Kill(); err != nil {
		t.Fatal(err)
	}
	t3 := time.Now()
	for _, n := range []*fabriclab.Node{n1, n2} {
		eventually(t, 60*time.Second, n.Host.Name+" drops h3's tunnel and route, keeps its subnet reserved", func() error {
			return retainedOnly(ctx, t, n, n3.Host.Name, s3)
		})
	}
	t.Logf("h3's tunnel and route gone and its subnet %s retained %s after kill -9", s3, time.Since(t3).Round(time.Millisecond))

	// h1's fabricd restarts: it still retains h3's subnet (persisted in OVSDB).
	if err := n1.Proc.Stop(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	if n1, err = f.StartArgs(ctx, n1.Host, n1.Args); err != nil {
		t.Fatal(err)
	}
	if ids, err := n1.Host.Vsctl(ctx, "get", "Open_vSwitch", ".", "external_ids:ovsfabric-retained"); err != nil || !strings.Contains(ids, n3.Host.Name) {
		t.Errorf("h1 does not persist h3's retained claim: %q %v", ids, err)
	}
	eventually(t, 30*time.Second, "restarted h1 still retains h3's subnet", func() error {
		return retainedOnly(ctx, t, n1, n3.Host.Name, s3)
	})

	// A new host takes the one free subnet, not h3's.
	n4, err := f.Start(ctx, l.Hosts[3])
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "h4 claims a subnet", func() error {
		if subnet(n4) == "" {
			return errors.New("none yet")
		}
		return nil
	})
	s4 := subnet(n4)
	if s4 == s3 || s4 == subnet(n1) || s4 == subnet(n2) {
		t.Fatalf("new host h4 claimed %s (h1 %s, h2 %s, retained for h3 %s)", s4, subnet(n1), subnet(n2), s3)
	}
	t.Logf("new host h4 claimed the free subnet %s, not h3's retained %s", s4, s3)

	// h3 comes back: its own subnet, its container unchanged and reachable.
	if n3, err = f.StartArgs(ctx, n3.Host, n3.Args); err != nil {
		t.Fatal(err)
	}
	if _, err := f.WaitConverged(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	if got := subnet(n3); got != s3 {
		t.Fatalf("h3 came back with %s, want its own %s", got, s3)
	}
	as, err := n3.Client().Attachments(ctx)
	if err != nil || len(as) != 1 || !strings.HasPrefix(as[0].IP, c3.IP+"/") {
		t.Fatalf("h3's attachments after its return: %+v %v, want c3 at %s", as, err, c3.IP)
	}
	if err := fabriclab.Reach(ctx, c1.NetNS, c3.IP, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	if err := retainedNone(ctx, n1, n3.Host.Name); err != nil {
		t.Error(err)
	}

	// h4 dies and stays away past the retention: its subnet becomes free again, and a new
	// host (another name on the same machine) takes it without exhausting anything.
	if err := n4.Proc.Kill(); err != nil {
		t.Fatal(err)
	}
	t4 := time.Now()
	eventually(t, 60*time.Second, "h1 retains h4's subnet", func() error { return retainedOnly(ctx, t, n1, n4.Host.Name, s4) })
	took := eventually(t, retention+60*time.Second, "h4's retention to end on h1", func() error { return retainedNone(ctx, n1, n4.Host.Name) })
	if since := time.Since(t4); since < retention {
		t.Errorf("h4's retention ended %s after its death, before --claim-retention %s", since.Round(time.Millisecond), retention)
	}
	t.Logf("h4's retention ended %s after kill -9 (--claim-retention %s, counted from when h4 was declared dead; waited %s)", time.Since(t4).Round(time.Millisecond), retention, took.Round(time.Millisecond))
	if ids, err := n1.Host.Vsctl(ctx, "get", "Open_vSwitch", ".", "external_ids:ovsfabric-retained"); err != nil || strings.Contains(ids, n4.Host.Name) {
		t.Errorf("h1 still persists h4's claim: %q %v", ids, err)
	}
	// Each host counts the retention from when it declared h4 dead, so h2 and h3 may hold it
	// a moment longer than h1; the new host must find it free everywhere.
	for _, n := range []*fabriclab.Node{n2, n3} {
		eventually(t, 30*time.Second, "h4's retention to end on "+n.Host.Name, func() error { return retainedNone(ctx, n, n4.Host.Name) })
	}
	f.Forget(n4.Host.Name)
	if _, err := n4.Host.Vsctl(ctx, "--if-exists", "del-br", "br-int"); err != nil {
		t.Fatal(err)
	}
	n5, err := f.StartArgs(ctx, l.Hosts[3], f.Args(l.Hosts[3], f.JoinAddrs(l.Hosts[3].Name), "--name", "h5"))
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, "h5 claims h4's former subnet", func() error {
		if got := subnet(n5); got != s4 {
			return fmt.Errorf("h5 holds %q, want %s", got, s4)
		}
		return nil
	})
	if log, _ := os.ReadFile(n5.Proc.LogFile()); strings.Contains(string(log), "exhausted") {
		t.Errorf("h5 took a retained subnet:\n%s", tailLines(string(log), 20))
	}
}

// retainedOnly checks that n has no tunnel or route toward peer but shows its subnet as
// retained.
func retainedOnly(ctx context.Context, t *testing.T, n *fabriclab.Node, peer, subnet string) error {
	st, err := n.Status(ctx)
	if err != nil {
		return err
	}
	for _, p := range st.Peers {
		if p.Name != peer {
			continue
		}
		switch {
		case p.Tunnel != "":
			return fmt.Errorf("tunnel %s still there", p.Tunnel)
		case p.Subnet != subnet || !strings.Contains(p.Note, "subnet retained until"):
			return fmt.Errorf("peer shown as %+v", p)
		}
		for _, r := range fabricRoutes(t, ctx, n.Host) {
			if strings.HasPrefix(r, subnet+" ") {
				return fmt.Errorf("route %s still there", r)
			}
		}
		return nil
	}
	return fmt.Errorf("%s not shown at all", peer)
}

// retainedNone checks that n does not show peer's subnet as retained.
func retainedNone(ctx context.Context, n *fabriclab.Node, peer string) error {
	st, err := n.Status(ctx)
	if err != nil {
		return err
	}
	for _, p := range st.Peers {
		if p.Name == peer && strings.Contains(p.Note, "retained") {
			return fmt.Errorf("%s shows %s: %s", n.Host.Name, peer, p.Note)
		}
	}
	return nil
}

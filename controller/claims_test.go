package controller

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/config"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/ovsdb"
	"github.com/ovsfabric/ovsfabric/peers"
)

// clock is a settable wall clock for a controller.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newClockedController is newController with the controller's wall clock given by clk.
func newClockedController(t *testing.T, ep string, s config.Settings, m *fakeMembers, clk func() time.Time) (*Controller, *ovsdb.Client) {
	t.Helper()
	c, sw, _ := buildController(t, ep, s, m, clk)
	return c, sw
}

// seqPeer is a live peer whose claim has the given logical time and wall-clock time.
func seqPeer(name, underlay, subnet string, seq uint64, since time.Time) peers.Peer {
	p := peer(name, underlay, subnet, peers.StateAlive, time.Now())
	p.Meta.SubnetSeq, p.Meta.SubnetSince = seq, since.UnixMilli()
	return p
}

// TestSkewedClocksNeverTakeALiveSubnet: whatever this host's clock says (an hour or a day
// behind or ahead), it never takes a subnet from a live host: a static --subnet that a live
// host holds is refused, and a rival that claims this host's subnet later (with a clock
// that makes its claim look older) does not make this host re-pick.
func TestSkewedClocksNeverTakeALiveSubnet(t *testing.T) {
	ctx := context.Background()
	real := time.Now()
	for _, skew := range []time.Duration{0, -time.Hour, time.Hour, -24 * time.Hour, 24 * time.Hour} {
		t.Run("skew "+skew.String(), func(t *testing.T) {
			clk := &clock{t: real.Add(skew)}

			// Static subnet held by live h0 (claimed ten minutes ago by real time).
			m := &fakeMembers{ch: make(chan struct{})}
			m.set(seqPeer("h0", "172.30.0.10", "10.244.1.0/24", 4, real.Add(-10*time.Minute)))
			c, sw := newClockedController(t, startOVSDB(t), settings(t, "10.244.1.0/24"), m, clk.now)
			if err := c.Sync(ctx); !errors.Is(err, ErrSubnetConflict) || !strings.Contains(err.Error(), "h0") {
				t.Fatalf("static subnet of a live host: Sync = %v, want ErrSubnetConflict", err)
			}
			if m.meta.Subnet.IsValid() {
				t.Errorf("the refused static subnet was announced: %+v", m.meta)
			}
			if ids, _ := sw.SystemExternalIDs(ctx); ids[KeySubnet] != "" {
				t.Errorf("the refused static subnet was persisted: %v", ids)
			}

			// This host holds a dynamic subnet; a rival that saw it (higher Seq) claims the
			// same subnet with a wall-clock time an hour before ours.
			m2 := &fakeMembers{ch: make(chan struct{})}
			m2.set(seqPeer("h7", "172.30.0.17", "10.244.7.0/24", 6, real))
			c2, _ := newClockedController(t, startOVSDB(t), settings(t, ""), m2, clk.now)
			if err := c2.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			mine := c2.Status().Subnet
			if m2.meta.SubnetSeq != 7 {
				t.Fatalf("claim Seq = %d, want 7 (one past the highest known)", m2.meta.SubnetSeq)
			}
			rival := seqPeer("a0", "172.30.0.20", mine, m2.meta.SubnetSeq+1, clk.now().Add(-time.Hour))
			m2.set(seqPeer("h7", "172.30.0.17", "10.244.7.0/24", 6, real), rival)
			clk.add(time.Minute)
			if err := c2.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if got := c2.Status().Subnet; got != mine {
				t.Errorf("a later claim with an earlier clock took %s; this host now holds %s", mine, got)
			}
		})
	}
}

// clusterSettings are settings for node name in a /22 cluster of four /24 subnets.
func clusterSettings(t *testing.T, name string) config.Settings {
	t.Helper()
	cfg := config.DefaultConfig()
	cfg.Name = name
	cfg.AdvertiseAddr = "172.30.0.11"
	cfg.ClusterCIDR = "10.244.0.0/22"
	cfg.DeadPeerGrace = time.Minute
	cfg.ClaimRetention = time.Hour
	s, err := cfg.Validate()
	if err != nil {
		t.Fatal(err)
	}
	s.UnderlayMTU, s.DatapathType = 1500, "netdev"
	return s
}

// TestClaimRetention: a peer dead for longer than the grace loses its tunnel but keeps its
// subnet reserved, across a restart, until the retention ends; a new node learns the
// reservation from gossip and picks another subnet, and takes a retained one only when the
// cluster CIDR is otherwise exhausted.
func TestClaimRetention(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Now()}
	ep := startOVSDB(t)
	m := &fakeMembers{ch: make(chan struct{})}
	s := clusterSettings(t, "h1")
	s.Subnet, s.StaticSubnet = "10.244.0.0/24", netip.MustParsePrefix("10.244.0.0/24")
	m.set(seqPeer("h2", "172.30.0.12", "10.244.2.0/24", 2, clk.now()))
	c, sw := newClockedController(t, ep, s, m, clk.now)
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	// h2 dies; past the grace its tunnel goes, its subnet stays reserved.
	dead := peer("h2", "172.30.0.12", "10.244.2.0/24", peers.StateDead, clk.now())
	dead.Meta.SubnetSeq = 2
	m.set(dead)
	clk.add(2 * time.Minute)
	if err := c.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if tunnelPeers(t, sw) != "" {
		t.Errorf("tunnel to h2 kept past the grace")
	}
	if len(m.meta.Retained) != 1 || m.meta.Retained[0] != (peers.RetainedClaim{Node: "h2", Subnet: netip.MustParsePrefix("10.244.2.0/24"), Seq: 2}) {
		t.Fatalf("retained claim not announced: %+v", m.meta.Retained)
	}
	ids, _ := sw.SystemExternalIDs(ctx)
	if !strings.Contains(ids[KeyRetained], `"n":"h2"`) {
		t.Fatalf("retained claim not persisted: %q", ids[KeyRetained])
	}

	// fabricd restarts after gossip forgot h2: the reservation survives.
	empty := &fakeMembers{ch: make(chan struct{})}
	c1, _ := newClockedController(t, ep, s, empty, clk.now)
	if err := c1.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	st := c1.Status()
	if len(st.Peers) != 1 || st.Peers[0].Name != "h2" || st.Peers[0].Subnet != "10.244.2.0/24" || !strings.Contains(st.Peers[0].Note, "subnet retained until") {
		t.Fatalf("after a restart status peers = %+v", st.Peers)
	}

	// A new node that hears h1 announce the reservation picks a free subnet. Its name
	// hashes to the reserved subnet's slot first, so only the reservation keeps it away.
	newcomer := hashingTo(t, "10.244.2.0/24")
	h1 := seqPeer("h1", "172.30.0.11", "10.244.0.0/24", 3, clk.now())
	h1.Meta.Retained = c1.Meta().Retained
	if len(h1.Meta.Retained) != 1 {
		t.Fatalf("restarted h1 announces %+v", h1.Meta.Retained)
	}
	mn := &fakeMembers{ch: make(chan struct{})}
	mn.set(h1)
	ns := clusterSettings(t, newcomer)
	ns.AdvertiseAddr, ns.Advertise = "172.30.0.19", netip.MustParseAddr("172.30.0.19")
	cn, _ := newClockedController(t, startOVSDB(t), ns, mn, clk.now)
	if err := cn.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	got := cn.Status().Subnet
	if got == "10.244.2.0/24" || got == "10.244.0.0/24" || got == "" {
		t.Fatalf("new node %s claimed %q while a free subnet exists", newcomer, got)
	}

	// Fill the last free subnet: the next new node takes the retained one, since nothing
	// else is left.
	filler := seqPeer("h3", "172.30.0.13", got, 9, clk.now())
	mx := &fakeMembers{ch: make(chan struct{})}
	mx.set(h1, filler, seqPeer("h4", "172.30.0.14", otherFree(got), 10, clk.now()))
	xs := clusterSettings(t, "hx")
	xs.AdvertiseAddr, xs.Advertise = "172.30.0.29", netip.MustParseAddr("172.30.0.29")
	cx, _ := newClockedController(t, startOVSDB(t), xs, mx, clk.now)
	if err := cx.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if got := cx.Status().Subnet; got != "10.244.2.0/24" {
		t.Fatalf("with the CIDR exhausted the new node holds %q, want the retained 10.244.2.0/24", got)
	}

	// The retention ends: the reservation is dropped, persisted and no longer announced.
	clk.add(time.Hour)
	if err := c1.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	if len(empty.meta.Retained) != 0 || len(c1.Status().Peers) != 0 {
		t.Errorf("after the retention: announced %+v, status %+v", empty.meta.Retained, c1.Status().Peers)
	}
	if ids, _ := sw.SystemExternalIDs(ctx); strings.Contains(ids[KeyRetained], "h2") {
		t.Errorf("expired claim still persisted: %q", ids[KeyRetained])
	}
}

// hashingTo finds a node name whose first subnet choice in 10.244.0.0/22 is want.
func hashingTo(t *testing.T, want string) string {
	t.Helper()
	cluster := netip.MustParsePrefix("10.244.0.0/22")
	for i := range 1000 {
		name := "new" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		sub, err := pickFirst(name, cluster)
		if err == nil && sub.String() == want {
			return name
		}
	}
	t.Fatal("no name hashes to " + want)
	return ""
}

func pickFirst(name string, cluster netip.Prefix) (netip.Prefix, error) {
	return fabric.PickSubnet(name, cluster, 24, func(netip.Prefix) bool { return false })
}

// otherFree is the subnet of 10.244.0.0/22 that is neither h1's (.0), the retained (.2) nor got.
func otherFree(got string) string {
	for _, s := range []string{"10.244.1.0/24", "10.244.3.0/24"} {
		if s != got {
			return s
		}
	}
	return ""
}

// TestReturnAfterRetention: a host whose persisted claim was last held longer ago than the
// claim retention (by its own clock) does not re-announce it, since the others may have
// given the subnet away: it claims anew; within the retention it keeps its claim.
func TestReturnAfterRetention(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name  string
		away  time.Duration
		keeps bool
	}{{"back within the retention", 50 * time.Minute, true}, {"back after the retention", 2 * time.Hour, false}} {
		t.Run(tc.name, func(t *testing.T) {
			clk := &clock{t: time.Now()}
			ep := startOVSDB(t)
			s := clusterSettings(t, "h1")
			m := &fakeMembers{ch: make(chan struct{})}
			c, _ := newClockedController(t, ep, s, m, clk.now)
			if err := c.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			mine := c.Status().Subnet
			clk.add(tc.away)
			// Meanwhile a node that never heard of h1 took its subnet.
			m2 := &fakeMembers{ch: make(chan struct{})}
			m2.set(seqPeer("hn", "172.30.0.30", mine, 1, clk.now()))
			c2, _ := newClockedController(t, ep, s, m2, clk.now)
			if got := c2.Meta().Subnet.String() == mine; got != tc.keeps {
				t.Fatalf("announces %s at start (held %s before), want keep=%v", c2.Meta().Subnet, mine, tc.keeps)
			}
			if tc.keeps {
				return
			}
			if err := c2.Sync(ctx); err != nil {
				t.Fatal(err)
			}
			if got := c2.Status().Subnet; got == mine || got == "" {
				t.Errorf("after the retention h1 holds %q (the live node holds %s)", got, mine)
			}
			if m2.meta.SubnetSeq <= 1 {
				t.Errorf("new claim Seq %d, want past every known one", m2.meta.SubnetSeq)
			}
		})
	}
}

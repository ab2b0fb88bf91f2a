package peers

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// cluster starts n members named n0..n{n-1} on loopback, all joining n0.
func cluster(t *testing.T, n int, mod func(i int, c *Config)) []*Membership {
	t.Helper()
	_, log := newSink(t)
	var ms []*Membership
	for i := range n {
		cfg := testConfig("n"+string(rune('0'+i)), i+1, log)
		if i > 0 {
			cfg.Join = []string{addr(ms[0])}
		}
		if mod != nil {
			mod(i, &cfg)
		}
		ms = append(ms, start(t, cfg))
	}
	return ms
}

func TestConverge(t *testing.T) {
	ms := cluster(t, 3, nil)
	took := waitFor(t, 10*time.Second, "3 members to see each other", func() bool { return allSee(ms) })
	t.Logf("3 members converged in %s", took)
	for i, m := range ms {
		if got := m.NumMembers(); got != 3 {
			t.Errorf("%s: NumMembers = %d", m.cfg.Name, got)
		}
		if l := m.Local(); l.Name != m.cfg.Name || l.State != StateAlive || !l.Meta.Equal(testMeta(i+1)) || !l.Gossip.IsValid() {
			t.Errorf("Local() = %+v", l)
		}
		for _, p := range m.Peers() {
			j := int(p.Name[1] - '0')
			if !p.Meta.Equal(testMeta(j + 1)) {
				t.Errorf("%s sees %s with meta %+v, want %+v", m.cfg.Name, p.Name, p.Meta, testMeta(j+1))
			}
			if p.Gossip != ms[j].Local().Gossip {
				t.Errorf("%s sees %s at %s, want %s", m.cfg.Name, p.Name, p.Gossip, ms[j].Local().Gossip)
			}
			if p.Since.IsZero() {
				t.Errorf("%s: %s has no Since", m.cfg.Name, p.Name)
			}
		}
		select {
		case <-m.Changed():
		default:
			t.Errorf("%s: Changed did not fire", m.cfg.Name)
		}
		if len(m.Rejected()) != 0 {
			t.Errorf("%s: rejected %v", m.cfg.Name, m.Rejected())
		}
	}
	// Peers is sorted by name.
	if ps := ms[2].Peers(); ps[0].Name != "n0" || ps[1].Name != "n1" {
		t.Errorf("Peers not sorted: %v", ps)
	}
}

func TestSetMeta(t *testing.T) {
	ms := cluster(t, 3, nil)
	waitFor(t, 10*time.Second, "convergence", func() bool { return allSee(ms) })
	for _, m := range ms {
		drain(m.Changed())
	}

	want := testMeta(2)
	want.Subnet = netip.MustParsePrefix("10.244.99.0/24")
	want.SubnetSince = time.Now().UnixMilli()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := ms[1].SetMeta(ctx, want); err != nil {
		t.Fatal(err)
	}
	if got := ms[1].Local().Meta; !got.Equal(want) {
		t.Fatalf("Local().Meta = %+v", got)
	}
	took := waitFor(t, 5*time.Second, "metadata to propagate", func() bool {
		for _, m := range []*Membership{ms[0], ms[2]} {
			for _, p := range m.Peers() {
				if p.Name == "n1" && !p.Meta.Equal(want) {
					return false
				}
			}
		}
		return true
	})
	t.Logf("metadata change reached both peers in %s", took)
	select {
	case <-ms[0].Changed():
	default:
		t.Error("Changed did not fire on a metadata update")
	}

	// Changes the peers would refuse are rejected locally.
	bad := want
	bad.Tunnel = TunnelVXLAN
	if err := ms[1].SetMeta(ctx, bad); err == nil || !strings.Contains(err.Error(), "tunnel") {
		t.Fatalf("SetMeta(other tunnel) = %v", err)
	}
	bad = want
	bad.Addr = netip.Addr{}
	if err := ms[1].SetMeta(ctx, bad); err == nil {
		t.Fatal("SetMeta accepted invalid metadata")
	}
}

func TestLeave(t *testing.T) {
	ms := cluster(t, 3, nil)
	waitFor(t, 10*time.Second, "convergence", func() bool { return allSee(ms) })
	begin := time.Now()
	if err := ms[2].Leave(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	leaveCall := time.Since(begin)
	took := waitFor(t, 2*time.Second, "others to see n2 left", func() bool {
		return peerState(ms[0], "n2") == StateLeft && peerState(ms[1], "n2") == StateLeft
	})
	t.Logf("Leave returned after %s; both peers showed n2 left %s after Leave started", leaveCall, leaveCall+took)
	if l := ms[2].Local(); l.State != StateLeft {
		t.Errorf("Local().State = %s after Leave", l.State)
	}
	if err := ms[2].Leave(time.Second); err != nil {
		t.Errorf("second Leave: %v", err)
	}
	if err := ms[2].SetMeta(context.Background(), testMeta(3)); !errors.Is(err, ErrClosed) {
		t.Errorf("SetMeta after Leave = %v, want ErrClosed", err)
	}
	if err := ms[2].Shutdown(); err != nil {
		t.Fatal(err)
	}
	if err := ms[2].Leave(time.Second); !errors.Is(err, ErrClosed) {
		t.Errorf("Leave after Shutdown = %v, want ErrClosed", err)
	}
	// Still "left" (not "dead") after it stopped answering.
	time.Sleep(3 * time.Second)
	if st := peerState(ms[0], "n2"); st != StateLeft {
		t.Errorf("n2 is %q on n0 after shutdown, want left", st)
	}
}

func TestFailureDetection(t *testing.T) {
	for _, n := range []int{3, 6} {
		t.Run(fmt.Sprintf("%d members", n), func(t *testing.T) {
			ms := cluster(t, n, nil)
			waitFor(t, 10*time.Second, "convergence", func() bool { return allSee(ms) })
			time.Sleep(time.Second) // a few rounds of probing in steady state
			victim, others := ms[n-1], ms[:n-1]
			begin := time.Now()
			if err := victim.Shutdown(); err != nil {
				t.Fatal(err)
			}
			var first time.Duration
			took := waitFor(t, 15*time.Second, "others to see the victim dead", func() bool {
				dead := 0
				for _, m := range others {
					if peerState(m, victim.cfg.Name) == StateDead {
						dead++
					}
				}
				if first == 0 && dead > 0 {
					first = time.Since(begin)
				}
				return dead == len(others)
			})
			t.Logf("failure detection, %d members: first peer saw %s dead after %s, all %d after %s", n, victim.cfg.Name, first, len(others), took)
			if took > 8*time.Second {
				t.Errorf("detection took %s, expected a few seconds", took)
			}
			for _, m := range others {
				for _, p := range m.Peers() {
					if p.Name == victim.cfg.Name && time.Since(p.Since) > took+time.Second {
						t.Errorf("Since %s is not the time of death", p.Since)
					}
				}
			}
		})
	}
}

func TestIncompatibleRefused(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mod    func(*Meta)
		reason string
	}{
		{"tunnel", func(m *Meta) { m.Tunnel = TunnelVXLAN }, "tunnel vxlan != local gre"},
		{"cluster CIDR", func(m *Meta) {
			m.ClusterCIDR = netip.MustParsePrefix("10.250.0.0/16")
			m.Subnet = netip.MustParsePrefix("10.250.1.0/24")
		}, "cluster CIDR 10.250.0.0/16 != local 10.244.0.0/16"},
		{"protocol", func(m *Meta) { m.Proto = ProtocolVersion + 1 }, "protocol version 2 != local 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			sinkA, logA := newSink(t)
			a := start(t, testConfig("a", 1, logA))
			b := start(t, testConfig("b", 2, logA, addr(a)))
			waitFor(t, 5*time.Second, "a and b", func() bool { return allSee([]*Membership{a, b}) })

			sinkX, logX := newSink(t)
			cfg := testConfig("x", 3, logX, addr(a))
			tc.mod(&cfg.Meta)
			x, err := Start(context.Background(), cfg)
			if err == nil {
				_ = x.Shutdown()
				t.Fatal("incompatible node joined")
			}
			if !errors.Is(err, ErrIncompatible) || !strings.Contains(err.Error(), "(and 1 more incompatible nodes)") {
				t.Fatalf("Start error = %v, want ErrIncompatible naming a or b and one more", err)
			}
			t.Logf("joiner's error: %v", err)
			// The joiner refuses a (its reason is the mirror image); a refuses x.
			if !sinkX.contains("refusing node a: ") {
				t.Errorf("joiner did not log its refusal")
			}
			waitFor(t, 2*time.Second, "a to log the refusal", func() bool { return sinkA.contains("refusing node x: " + tc.reason) })
			rej := a.Rejected()
			if len(rej) != 1 || rej[0].Name != "x" || rej[0].Reason != tc.reason || rej[0].Count < 1 {
				t.Fatalf("a.Rejected() = %v", rej)
			}
			t.Logf("a's status line: %s", rej[0])

			// x never shows up anywhere, not even briefly.
			for range 20 {
				for _, m := range []*Membership{a, b} {
					if peerState(m, "x") != "" || m.NumMembers() != 2 {
						t.Fatalf("%s sees x: %v", m.cfg.Name, m.Peers())
					}
				}
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
}

// TestAliveDelegateRefuses covers the path where an incompatible node is learnt from gossip
// rather than by its join.
func TestAliveDelegateRefuses(t *testing.T) {
	_, log := newSink(t)
	a := start(t, testConfig("a", 1, log))
	h := &hooks{m: a}
	other := testMeta(2)
	other.Tunnel = TunnelVXLAN
	raw, err := EncodeMeta(other)
	if err != nil {
		t.Fatal(err)
	}
	node := &memberlist.Node{Name: "v", Addr: []byte{127, 0, 0, 9}, Port: 1234, Meta: raw}
	if err := h.NotifyAlive(node); err == nil || !strings.Contains(err.Error(), "tunnel vxlan != local gre") {
		t.Fatalf("NotifyAlive = %v", err)
	}
	if err := h.NotifyAlive(&memberlist.Node{Name: "w", Meta: []byte("garbage")}); err == nil {
		t.Fatal("NotifyAlive accepted unreadable metadata")
	}
	self, _ := EncodeMeta(testMeta(1))
	if err := h.NotifyAlive(&memberlist.Node{Name: "a", Meta: self}); err != nil {
		t.Fatalf("NotifyAlive(self) = %v", err)
	}
	rej := a.Rejected()
	if len(rej) != 2 || rej[0].Name != "v" || rej[0].Gossip != netip.MustParseAddrPort("127.0.0.9:1234") || rej[1].Name != "w" {
		t.Fatalf("Rejected() = %v", rej)
	}
	_ = h.NotifyAlive(node)
	if rej := a.Rejected(); rej[0].Count != 2 {
		t.Fatalf("Count = %d after a second refusal", rej[0].Count)
	}
}

func TestJoinRetry(t *testing.T) {
	_, log := newSink(t)
	port := freePort(t)
	aAddr := netip.AddrPortFrom(loopback, uint16(port)).String()
	b := start(t, testConfig("b", 2, log, aAddr))
	if n := b.NumMembers(); n != 1 {
		t.Fatalf("b has %d members before a exists", n)
	}
	time.Sleep(1200 * time.Millisecond)
	cfg := testConfig("a", 1, log)
	cfg.Port = port
	a := start(t, cfg)
	took := waitFor(t, 10*time.Second, "b to join a once a exists", func() bool { return allSee([]*Membership{a, b}) })
	t.Logf("b joined %s after a started", took)
}

func TestRejoinWhenAlone(t *testing.T) {
	if testing.Short() {
		t.Skip("waits for a failure and a re-join")
	}
	_, log := newSink(t)
	cfgA := testConfig("a", 1, log)
	cfgA.Port = freePort(t)
	a := start(t, cfgA)
	b := start(t, testConfig("b", 2, log, addr(a)))
	waitFor(t, 5*time.Second, "a and b", func() bool { return allSee([]*Membership{a, b}) })
	// a's host restarts: b sees it dead and is alone; a comes back without a join list.
	_ = a.Shutdown()
	waitFor(t, 10*time.Second, "b to see a dead", func() bool { return peerState(b, "a") == StateDead })
	a2 := start(t, cfgA)
	took := waitFor(t, 15*time.Second, "b to re-join a", func() bool { return allSee([]*Membership{a2, b}) })
	t.Logf("b re-joined the restarted a after %s", took)
}

func TestEncryption(t *testing.T) {
	_, log := newSink(t)
	key := bytes.Repeat([]byte{7}, 32)
	cfgA := testConfig("a", 1, log)
	cfgA.SecretKey = key
	a := start(t, cfgA)
	cfgB := testConfig("b", 2, log, addr(a))
	cfgB.SecretKey = key
	b := start(t, cfgB)
	waitFor(t, 5*time.Second, "a and b with the same key", func() bool { return allSee([]*Membership{a, b}) })

	sinkC, logC := newSink(t)
	for _, tc := range []struct {
		name string
		key  []byte
	}{
		{"c-other-key", bytes.Repeat([]byte{8}, 32)},
		{"c-no-key", nil},
	} {
		cfg := testConfig(tc.name, 3, logC, addr(a))
		cfg.SecretKey = tc.key
		c := start(t, cfg)
		time.Sleep(1500 * time.Millisecond) // the initial join and a few retries
		for _, m := range []*Membership{a, b} {
			if st := peerState(m, tc.name); st != "" || m.NumMembers() != 2 {
				t.Errorf("%s sees %s (%q)", m.cfg.Name, tc.name, st)
			}
		}
		if n := c.NumMembers(); n != 1 {
			t.Errorf("%s has %d members", tc.name, n)
		}
		_ = c.Shutdown()
	}
	if !sinkC.contains("gossip key") {
		t.Error("no hint about the gossip key in the joiner's logs")
	}
	for l := range strings.SplitSeq(sinkC.String(), "\n") {
		if strings.Contains(l, "cannot join") {
			t.Logf("joiner's log: %s", l)
		}
	}

	cfg := testConfig("d", 4, log)
	cfg.SecretKey = []byte("short")
	if _, err := Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), "16, 24 or 32") {
		t.Fatalf("Start with a 5-byte key = %v", err)
	}
}

func TestSuspectAndLateGoodbye(t *testing.T) {
	ms := cluster(t, 2, nil)
	waitFor(t, 5*time.Second, "convergence", func() bool { return allSee(ms) })
	a := ms[0]
	drain(a.Changed())

	// No direct ack for a long time: suspect; an ack: alive again.
	a.mu.Lock()
	a.peers["n1"].lastAck = time.Now().Add(-time.Minute)
	a.mu.Unlock()
	a.housekeep(time.Now())
	if st := peerState(a, "n1"); st != StateSuspect {
		t.Fatalf("state %q, want suspect", st)
	}
	select {
	case <-a.Changed():
	default:
		t.Error("Changed did not fire on suspicion")
	}
	(&hooks{m: a}).NotifyPingComplete(&memberlist.Node{Name: "n1"}, time.Millisecond, nil)
	if st := peerState(a, "n1"); st != StateAlive {
		t.Fatalf("state %q after an ack, want alive", st)
	}

	// A goodbye that arrives after memberlist's NotifyLeave still means "left".
	node := &memberlist.Node{Name: "n1", Addr: []byte{127, 0, 0, 1}, Port: 1}
	a.peerGone(node)
	if st := peerState(a, "n1"); st != StateDead {
		t.Fatalf("state %q, want dead", st)
	}
	a.handleMsg(encodeBye("n1", 99))
	if st := peerState(a, "n1"); st != StateLeft {
		t.Fatalf("state %q after a late goodbye, want left", st)
	}
	// Forgotten after Config.Forget.
	a.housekeep(time.Now().Add(a.cfg.Forget + time.Second))
	if st := peerState(a, "n1"); st != "" {
		t.Fatalf("state %q, want forgotten", st)
	}
}

func TestShutdownStopsGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	_, log := newSink(t)
	var ms []*Membership
	for i := range 3 {
		cfg := testConfig("g"+string(rune('0'+i)), i+1, log)
		if i > 0 {
			cfg.Join = []string{addr(ms[0])}
		}
		m, err := Start(context.Background(), cfg)
		if err != nil {
			t.Fatal(err)
		}
		ms = append(ms, m)
	}
	waitFor(t, 10*time.Second, "convergence", func() bool { return allSee(ms) })
	if err := ms[0].Leave(time.Second); err != nil {
		t.Fatal(err)
	}
	for _, m := range ms {
		if err := m.Shutdown(); err != nil {
			t.Fatal(err)
		}
		if err := m.Shutdown(); err != nil {
			t.Fatalf("second Shutdown: %v", err)
		}
	}
	// memberlist's stream handlers end with their connections; allow a moment.
	waitFor(t, 5*time.Second, "goroutines to end", func() bool { return runtime.NumGoroutine() <= before })
}

func drain(c <-chan struct{}) {
	select {
	case <-c:
	default:
	}
}

func TestIPv6(t *testing.T) {
	if l, err := net.Listen("tcp", "[::1]:0"); err != nil {
		t.Skipf("no IPv6 loopback: %v", err)
	} else {
		_ = l.Close()
	}
	_, log := newSink(t)
	lo6 := netip.IPv6Loopback()
	a := start(t, Config{Name: "a", BindAddr: lo6, Meta: testMeta(1), Logger: log})
	if got := addr(a); !strings.HasPrefix(got, "[::1]:") {
		t.Fatalf("gossip address %s", got)
	}
	b := start(t, Config{Name: "b", BindAddr: lo6, Meta: testMeta(2), Logger: log, Join: []string{addr(a)}})
	waitFor(t, 5*time.Second, "a and b over IPv6", func() bool { return allSee([]*Membership{a, b}) })
}

func TestConfigErrors(t *testing.T) {
	ok := testConfig("a", 1, nil)
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no name", func(c *Config) { c.Name = "" }, "node name is required"},
		{"port", func(c *Config) { c.Port = 70000 }, "port 70000 out of range"},
		{"key", func(c *Config) { c.SecretKey = make([]byte, 20) }, "16, 24 or 32"},
		{"meta", func(c *Config) { c.Meta.Tunnel = "" }, "tunnel type"},
		{"join", func(c *Config) { c.Join = []string{"10.0.0.1:x"} }, "bad host or port"},
		{"timings", func(c *Config) { c.Timings.ProbeTimeout = 2 * time.Second }, "shorter than the probe interval"},
		{"zone", func(c *Config) { c.BindAddr = netip.MustParseAddr("fe80::1%lo") }, "zone"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.mod(&cfg)
			_, err := Start(context.Background(), cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Start = %v, want %q", err, tc.want)
			}
		})
	}
	// Defaults.
	cfg, err := ok.normalize()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Timings != DefaultTimings() || cfg.Forget != DefaultForget || cfg.Logger == nil || cfg.Compatible == nil {
		t.Fatalf("defaults not applied: %+v", cfg)
	}
}

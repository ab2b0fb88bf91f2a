package peers

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// logSink collects log output of one or more nodes; it is dumped when a test fails.
type logSink struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.Write(p)
}

func (s *logSink) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.buf.String()
}

func (s *logSink) contains(sub string) bool { return strings.Contains(s.String(), sub) }

// newSink returns a sink and a logger (Info and above) writing to it; the sink is dumped
// into the test log if the test fails.
func newSink(t testing.TB) (*logSink, *slog.Logger) {
	s := &logSink{}
	t.Cleanup(func() {
		if t.Failed() {
			out := s.String()
			if len(out) > 64<<10 {
				out = "...\n" + out[len(out)-64<<10:]
			}
			t.Logf("logs:\n%s", out)
		}
	})
	return s, slog.New(slog.NewTextHandler(s, &slog.HandlerOptions{Level: slog.LevelInfo}))
}

// testMeta is a valid Meta for host number i.
func testMeta(i int) Meta {
	return Meta{
		Proto:       ProtocolVersion,
		Addr:        netip.AddrFrom4([4]byte{192, 168, 59, byte(i)}),
		Subnet:      netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, byte(i), 0}), 24),
		SubnetSince: 1_700_000_000_000 + int64(i),
		Tunnel:      TunnelGRE,
		ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"),
		MTU:         1450,
	}
}

var loopback = netip.MustParseAddr("127.0.0.1")

// testConfig is a config for node name on 127.0.0.1 with a free port.
func testConfig(name string, i int, log *slog.Logger, join ...string) Config {
	return Config{Name: name, BindAddr: loopback, Meta: testMeta(i), Join: join, Logger: log}
}

// start starts a member and shuts it down when the test ends.
func start(t testing.TB, cfg Config) *Membership {
	t.Helper()
	m, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("start %s: %v", cfg.Name, err)
	}
	t.Cleanup(func() { _ = m.Shutdown() })
	return m
}

// addr is m's gossip address for Config.Join.
func addr(m *Membership) string { return m.Local().Gossip.String() }

// waitFor polls cond until it holds or timeout passes; it returns how long it took.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	begin := time.Now()
	for {
		if cond() {
			return time.Since(begin)
		}
		if time.Since(begin) > timeout {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// peerState is name's state in m's view, or "" when m does not know it.
func peerState(m *Membership, name string) State {
	for _, p := range m.Peers() {
		if p.Name == name {
			return p.State
		}
	}
	return ""
}

// allSee reports whether every member sees every other one alive, and nothing else.
func allSee(ms []*Membership) bool {
	for _, m := range ms {
		ps := m.Peers()
		if len(ps) != len(ms)-1 {
			return false
		}
		for _, p := range ps {
			if p.State != StateAlive {
				return false
			}
		}
	}
	return true
}

// freePort returns a port that is free on 127.0.0.1 for both TCP and UDP right now.
func freePort(t testing.TB) int {
	t.Helper()
	for range 20 {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := l.Addr().(*net.TCPAddr).Port
		u, err := net.ListenPacket("udp", fmt.Sprintf("127.0.0.1:%d", port))
		_ = l.Close()
		if err == nil {
			_ = u.Close()
			return port
		}
	}
	t.Fatal("no free port")
	return 0
}

package peers

import (
	"errors"
	"fmt"
	"log"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// DefaultPort is fabricd's gossip port (TCP and UDP), memberlist's usual one.
const DefaultPort = 7946

// DefaultForget is how long dead and left peers stay in Peers when Config.Forget is zero.
const DefaultForget = 5 * time.Minute

// GossipLabel is memberlist's packet and stream label: fabricd ignores other memberlist
// users (Serf, Consul) that may share the port or the network.
const GossipLabel = "ovsfabric"

// Config is what Start needs.
type Config struct {
	// Name is this node's unique name in the cluster (fabricd's node name).
	Name string
	// BindAddr is the address to listen on for gossip (TCP and UDP); the zero Addr means
	// all addresses (IPv6 ones too when AdvertiseAddr is IPv6).
	BindAddr netip.Addr
	// AdvertiseAddr is the address the others reach this node's gossip port at; the zero
	// Addr means BindAddr, or memberlist's pick of a private address when BindAddr is
	// unspecified.
	AdvertiseAddr netip.Addr
	// Port is the gossip port. 0 picks a free port (tests); fabricd passes DefaultPort
	// unless configured otherwise.
	Port int
	// Join lists members to join, as HOST[:PORT] (an IPv6 literal with a port in
	// brackets). A missing port means Port, or DefaultPort when Port is 0. This node's own
	// address may appear in the list (the same list on every host); it is skipped.
	Join []string
	// SecretKey, when set, encrypts and authenticates all gossip with AES-GCM: 16, 24 or 32
	// bytes (AES-128/192/256). All members must share it. It seeds the keyring when
	// KeyringFile does not exist yet; see KeyringOp for changing keys at run time.
	SecretKey []byte
	// KeyringFile, when set, persists the gossip keyring (mode 0600, a JSON array of base64
	// keys, primary first): it is read at Start, wins over SecretKey when it exists, and is
	// rewritten by every keyring change, so a restarted node keeps the current keys.
	KeyringFile string
	// Meta is what this node announces first; see SetMeta for later changes.
	Meta Meta
	// Logger receives this package's and memberlist's logs (memberlist's chatter at Debug);
	// nil means slog.Default().
	Logger *slog.Logger
	// Timings are the failure-detection and gossip knobs; zero fields take the LAN defaults
	// documented on Timings.
	Timings Timings
	// Compatible decides whether a remote node may be a member, given this node's current
	// metadata and the remote's. nil means DefaultCompatible. It is applied in both
	// directions (local, remote) and (remote, local), so that a one-sided rule still
	// refuses on both nodes and no node ends up half-joined. It is called from memberlist's
	// goroutines for every alive message, so it must be fast and safe for concurrent use.
	// The error is the reason shown in logs and Rejected.
	Compatible func(local, remote Meta) error
	// Forget is how long dead and left peers are kept in Peers before being forgotten;
	// 0 means DefaultForget. The controller applies its own grace on top.
	Forget time.Duration
	// Registry, when set, is the replicated store this membership's gossip carries
	// (registry.Registry): user messages and push/pull payloads starting with MsgRegistry
	// go to it, and its broadcasts follow this package's own. Its Sender is normally this
	// Membership (SendTo), its NumNodes Membership.NumNodes, its RetransmitMult
	// RetransmitMult. nil spreads no records.
	Registry Registry
}

// Registry is the data half of memberlist's delegate, which the membership forwards to
// (registry.Registry implements it).
type Registry interface {
	NotifyMsg(msg []byte)
	GetBroadcasts(overhead, limit int) [][]byte
	LocalState(join bool) []byte
	MergeRemoteState(buf []byte, join bool)
}

// RetransmitMult is memberlist's broadcast retransmit multiplier as this package configures
// it, for Config.Registry's broadcast queue.
const RetransmitMult = 4

// Timings are memberlist's failure-detection and dissemination settings. The defaults start
// from memberlist.DefaultLANConfig and are tightened for hosts on one LAN, so that a dead
// host's tunnels and routes can be acted upon within seconds; a zero field takes its
// default.
//
// How detection works (SWIM with Lifeguard): every member probes one other member per
// ProbeInterval, round robin, so in aggregate each member is probed about once per
// ProbeInterval. A probe that gets no direct ack within ProbeTimeout asks 3 other members
// to probe indirectly (and tries TCP) until the ProbeInterval ends; then the prober marks
// the target suspect and gossips it. A suspect is declared dead when its suspicion timer
// expires: it starts at SuspicionMaxTimeoutMult × min and shrinks toward
// min = SuspicionMult × max(1, log10(N)) × ProbeInterval as other members independently
// confirm the suspicion (SuspicionMult−2 confirmations needed; none when the cluster has
// fewer than SuspicionMult members, in which case the timer is min right away).
//
// With the defaults, a crashed host is suspected about 0.8 s after the crash (the wait until
// it is next probed, plus one ProbeInterval for the failed probe) and declared dead when the
// suspicion timer expires: min = 1.2 s after the first suspicion once one other member
// confirms it (with 3–10 members; the others probe the suspect too and do within about a
// second), 2.4 s without confirmation; 2.4–4.8 s with 100 members. The dead message then
// reaches everyone within a few GossipIntervals. Measured on loopback (TestFailureDetection,
// TestScale100): all others saw a killed member dead after 1.7–1.8 s with 3 and 6 members,
// and after 3.0 s with 100 members.
// A member that is merely slow (CPU starvation) refutes the accusation as soon as it hears
// it and shows as alive again; Lifeguard's health awareness stretches the probe interval of
// a member that notices it is itself degraded. A false "dead" costs fabricd nothing on the
// data path: a dead peer keeps its tunnel and route for --dead-peer-grace.
type Timings struct {
	// ProbeInterval is how often each member probes another one. Default 400 ms
	// (memberlist LAN: 1 s): less than half the time to first suspicion.
	ProbeInterval time.Duration
	// ProbeTimeout is how long a direct probe waits for its ack before indirect probes are
	// sent. LAN round trips are well under a millisecond, but fabric hosts share two cores
	// with ovs-vswitchd, so keep headroom. Default 200 ms (LAN: 500 ms); must be below
	// ProbeInterval.
	ProbeTimeout time.Duration
	// SuspicionMult scales the suspicion timeout (see above). Default 3 (memberlist LAN: 4):
	// 1.2 s with up to 10 hosts, 2.4 s with 100; one confirmation needed.
	SuspicionMult int
	// SuspicionMaxTimeoutMult bounds the suspicion timeout without confirmations, as a
	// multiple of its minimum. Default 2 (LAN: 6): a worst case of 2.4 s rather than 7.2 s in
	// a small cluster.
	SuspicionMaxTimeoutMult int
	// GossipInterval is how often queued broadcasts (alive, suspect, dead, metadata,
	// goodbyes, registry deltas) are sent to GossipNodes random members. Default 100 ms
	// (LAN: 200 ms): a metadata change or a death reaches 100 hosts in well under a second.
	GossipInterval time.Duration
	// GossipNodes is how many random members each gossip round goes to. Default 3.
	GossipNodes int
	// GossipToTheDeadTime is how long a dead member still receives gossip (so a falsely
	// declared one hears it and refutes) before memberlist drops it from its table.
	// Default 15 s (LAN: 30 s); dead peers stay in Peers for Config.Forget regardless.
	GossipToTheDeadTime time.Duration
	// PushPullInterval is how often a member syncs its full state with a random other one
	// over TCP: repairs missed gossip and exchanges the registry digests. Default 10 s
	// (LAN: 30 s); memberlist stretches it beyond 32 members (×3 at 100).
	PushPullInterval time.Duration
	// TCPTimeout bounds joins and push/pull exchanges. Default 3 s (LAN: 10 s): a join to a
	// powered-off host fails in 3 s and is retried.
	TCPTimeout time.Duration
}

// DefaultTimings returns the LAN-tuned defaults documented on Timings.
func DefaultTimings() Timings {
	return Timings{
		ProbeInterval:           400 * time.Millisecond,
		ProbeTimeout:            200 * time.Millisecond,
		SuspicionMult:           3,
		SuspicionMaxTimeoutMult: 2,
		GossipInterval:          100 * time.Millisecond,
		GossipNodes:             3,
		GossipToTheDeadTime:     15 * time.Second,
		PushPullInterval:        10 * time.Second,
		TCPTimeout:              3 * time.Second,
	}
}

// withDefaults fills t's zero fields from DefaultTimings.
func (t Timings) withDefaults() Timings {
	d := DefaultTimings()
	fill := func(v *time.Duration, def time.Duration) {
		if *v == 0 {
			*v = def
		}
	}
	fill(&t.ProbeInterval, d.ProbeInterval)
	fill(&t.ProbeTimeout, d.ProbeTimeout)
	fill(&t.GossipInterval, d.GossipInterval)
	fill(&t.GossipToTheDeadTime, d.GossipToTheDeadTime)
	fill(&t.PushPullInterval, d.PushPullInterval)
	fill(&t.TCPTimeout, d.TCPTimeout)
	if t.SuspicionMult == 0 {
		t.SuspicionMult = d.SuspicionMult
	}
	if t.SuspicionMaxTimeoutMult == 0 {
		t.SuspicionMaxTimeoutMult = d.SuspicionMaxTimeoutMult
	}
	if t.GossipNodes == 0 {
		t.GossipNodes = d.GossipNodes
	}
	return t
}

func (t Timings) validate() error {
	switch {
	case t.ProbeInterval < 0 || t.ProbeTimeout < 0 || t.GossipInterval < 0 || t.GossipToTheDeadTime < 0 ||
		t.PushPullInterval < 0 || t.TCPTimeout < 0:
		return errors.New("timings must not be negative")
	case t.ProbeTimeout >= t.ProbeInterval:
		return fmt.Errorf("probe timeout %s must be shorter than the probe interval %s", t.ProbeTimeout, t.ProbeInterval)
	case t.SuspicionMult < 1 || t.SuspicionMaxTimeoutMult < 1 || t.GossipNodes < 1:
		return errors.New("suspicion multipliers and gossip nodes must be at least 1")
	}
	return nil
}

// normalize validates c and fills in defaults.
func (c Config) normalize() (Config, error) {
	if err := checkNodeName(c.Name); err != nil {
		return c, err
	}
	if c.Port < 0 || c.Port > 65535 {
		return c, fmt.Errorf("port %d out of range", c.Port)
	}
	switch len(c.SecretKey) {
	case 0, 16, 24, 32:
	default:
		return c, fmt.Errorf("gossip key is %d bytes; AES needs 16, 24 or 32", len(c.SecretKey))
	}
	if err := c.Meta.Validate(); err != nil {
		return c, fmt.Errorf("metadata: %w", err)
	}
	if c.BindAddr.Zone() != "" || c.AdvertiseAddr.Zone() != "" {
		return c, errors.New("bind and advertise addresses must not have a zone")
	}
	c.Timings = c.Timings.withDefaults()
	if err := c.Timings.validate(); err != nil {
		return c, err
	}
	if c.Forget <= 0 {
		c.Forget = DefaultForget
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.Compatible == nil {
		c.Compatible = DefaultCompatible
	}
	join := make([]string, 0, len(c.Join))
	for _, j := range c.Join {
		hp, err := joinAddr(j, c.Port)
		if err != nil {
			return c, err
		}
		join = append(join, hp)
	}
	c.Join = join
	return c, nil
}

// joinAddr turns HOST[:PORT] into host:port.
func joinAddr(s string, port int) (string, error) {
	if port == 0 {
		port = DefaultPort
	}
	if s == "" {
		return "", errors.New("empty join address")
	}
	if host, p, err := net.SplitHostPort(s); err == nil {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 || n > 65535 || host == "" {
			return "", fmt.Errorf("join address %q: bad host or port", s)
		}
		return net.JoinHostPort(host, p), nil
	}
	host := s
	if len(host) > 2 && host[0] == '[' && host[len(host)-1] == ']' {
		host = host[1 : len(host)-1]
	}
	if a, err := netip.ParseAddr(host); err == nil {
		host = a.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(port)), nil
}

// memberlistConfig translates c (normalized) for memberlist.
func (c Config) memberlistConfig(h *hooks) *memberlist.Config {
	mc := memberlist.DefaultLANConfig()
	mc.Name = c.Name
	switch {
	case c.BindAddr.IsValid():
		mc.BindAddr = c.BindAddr.String()
	case c.AdvertiseAddr.Is6():
		mc.BindAddr = "::"
	default:
		mc.BindAddr = "0.0.0.0"
	}
	mc.BindPort = c.Port
	mc.AdvertisePort = c.Port
	mc.AdvertiseAddr = ""
	if c.AdvertiseAddr.IsValid() {
		mc.AdvertiseAddr = c.AdvertiseAddr.String()
	}
	mc.Label = GossipLabel

	t := c.Timings
	mc.ProbeInterval = t.ProbeInterval
	mc.ProbeTimeout = t.ProbeTimeout
	mc.SuspicionMult = t.SuspicionMult
	mc.SuspicionMaxTimeoutMult = t.SuspicionMaxTimeoutMult
	mc.GossipInterval = t.GossipInterval
	mc.GossipNodes = t.GossipNodes
	mc.GossipToTheDeadTime = t.GossipToTheDeadTime
	mc.PushPullInterval = t.PushPullInterval
	mc.TCPTimeout = t.TCPTimeout
	mc.RetransmitMult = RetransmitMult

	mc.Delegate = h
	mc.Events = h
	mc.Alive = h
	mc.Merge = h
	mc.Ping = h
	mc.Conflict = h
	mc.Logger = log.New(&logWriter{log: c.Logger}, "", 0)
	return mc
}

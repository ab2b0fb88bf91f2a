package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/peers"
)

// SwarmConfig describes a swarm of synthetic fabric members, so that a real fabricd can be
// measured with a large view. Each member is a bare hashicorp/memberlist node (no OVS, no
// data path, no controller) that announces the metadata a fabricd node announces.
type SwarmConfig struct {
	// Members is how many members to run.
	Members int
	// Bind is the address all members listen on; member i uses port BasePort+i (0: any
	// free port).
	Bind     netip.Addr
	BasePort int
	// Join is the gossip address (HOST:PORT) of the fabricd every member joins.
	Join string
	// ClusterCIDR and Tunnel must match fabricd's. Member i claims the (i+1)-th /24 of the
	// cluster CIDR (fabricd should hold the first, statically) and announces the underlay
	// address 198.18.0.0 + i + 1 (RFC 2544's benchmarking range: never reached).
	ClusterCIDR netip.Prefix
	Tunnel      string
	// Seeds, when > 0 (and BasePort is set), makes the members from the Seeds-th on join
	// one of the first Seeds members (member i joins member i mod Seeds) rather than
	// fabricd. Such a join exchanges the seed's tiny view instead of fabricd's whole one
	// (joining fabricd costs O(members) each, O(members²) for the swarm), and fabricd learns
	// of the member from the alive message the member then gossips to it, the one node in
	// its view, within a gossip interval (and again every second for 15 s, in case UDP is
	// lost): as fabricd hears of nodes that joined elsewhere.
	Seeds int
	// Log receives progress lines.
	Log io.Writer
}

// Synthetic members are named synNNNNN; they keep only non-synthetic nodes (fabricd) in their
// own view, so the swarm costs O(members) rather than the O(members²) of a full mesh run on
// one machine. fabricd sees, probes and gossips with all of them as with real hosts.
const synPrefix = "syn"

// synMeta is member i's metadata.
func synMeta(cfg SwarmConfig, i int) ([]byte, error) {
	a := [4]byte{198, 18, byte((i + 1) >> 8), byte(i + 1)}
	m := peers.Meta{
		Proto: peers.ProtocolVersion, Addr: netip.AddrFrom4(a),
		Subnet: fabric.NthSubnet(cfg.ClusterCIDR, 24, i+1), SubnetSince: time.Now().UnixMilli(),
		Tunnel: cfg.Tunnel, ClusterCIDR: cfg.ClusterCIDR, MTU: 1450,
	}
	return peers.EncodeMeta(m)
}

// synDelegate is a synthetic member's memberlist delegate: it announces its metadata, has
// nothing to gossip, and refuses other synthetic members into its view.
type synDelegate struct {
	name string
	meta []byte
}

var errSynthetic = errors.New("synthetic members keep only fabricd in their view")

func (d *synDelegate) NodeMeta(int) []byte                 { return d.meta }
func (d *synDelegate) NotifyMsg([]byte)                    {}
func (d *synDelegate) GetBroadcasts(int, int) [][]byte     { return nil }
func (d *synDelegate) LocalState(bool) []byte              { return nil }
func (d *synDelegate) MergeRemoteState(buf []byte, _ bool) {}
func (d *synDelegate) NotifyAlive(n *memberlist.Node) error {
	if n.Name != d.name && strings.HasPrefix(n.Name, synPrefix) {
		return errSynthetic
	}
	return nil
}

// seededRetransmits is how many times a member that joined through a seed gossips its
// alive message to fabricd (once a second).
const seededRetransmits = 15

// Swarm is a running set of synthetic members.
type Swarm struct {
	lists []*memberlist.Memberlist
}

// StartSwarm starts and joins the members, 16 at a time. Members probe fabricd every 20 s
// and do not push/pull on their own (fabricd, with its default timings, does).
func StartSwarm(ctx context.Context, cfg SwarmConfig) (*Swarm, error) {
	if cfg.Members < 1 || cfg.Members > 65000 || !cfg.Bind.IsValid() || cfg.Join == "" || !cfg.ClusterCIDR.IsValid() {
		return nil, errors.New("swarm: need members (1-65000), a bind address, a join address and the cluster CIDR")
	}
	if cfg.Log == nil {
		cfg.Log = io.Discard
	}
	if cfg.Seeds < 0 || cfg.Seeds > 0 && cfg.BasePort == 0 {
		return nil, errors.New("swarm: seeds need a base port (the members must know the seeds' ports)")
	}
	sw := &Swarm{lists: make([]*memberlist.Memberlist, cfg.Members)}
	begin := time.Now()
	var started atomic.Int64
	errs := make([]error, cfg.Members)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range cfg.Members {
		if ctx.Err() != nil {
			break
		}
		if cfg.Seeds > 0 && i == cfg.Seeds {
			wg.Wait() // the seeds are in before anyone joins them
		}
		join, tweak := cfg.Join, func(*memberlist.Config) {}
		if cfg.Seeds > 0 && i >= cfg.Seeds {
			join = net.JoinHostPort(cfg.Bind.String(), strconv.Itoa(cfg.BasePort+i%cfg.Seeds))
			// fabricd hears of this member only from its alive message: sent once a
			// gossip interval, RetransmitMult times (its view is 2 nodes, so the limit is
			// the multiplier itself), so that a burst of joins losing some UDP to a busy
			// fabricd does not leave the member unknown.
			tweak = func(mc *memberlist.Config) { mc.RetransmitMult = seededRetransmits }
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			sw.lists[i], errs[i] = startMember(cfg, i, join, tweak)
			if errs[i] == nil {
				if c := started.Add(1); c%100 == 0 {
					fmt.Fprintf(cfg.Log, "%d members joined in %s\n", c, time.Since(begin).Round(time.Millisecond))
				}
			}
		}()
	}
	wg.Wait()
	if err := errors.Join(append(errs, ctx.Err())...); err != nil {
		sw.Close()
		return nil, fmt.Errorf("swarm: %w", err)
	}
	return sw, nil
}

// startMember starts member i and joins it through join (HOST:PORT); tweak, when set,
// adjusts its memberlist configuration first. A failed join is tried twice more (a loaded
// fabricd may drop a push/pull).
func startMember(cfg SwarmConfig, i int, join string, tweak func(*memberlist.Config)) (*memberlist.Memberlist, error) {
	meta, err := synMeta(cfg, i)
	if err != nil {
		return nil, err
	}
	port := 0
	if cfg.BasePort > 0 {
		port = cfg.BasePort + i
	}
	name := fmt.Sprintf("%s%05d", synPrefix, i)
	d := &synDelegate{name: name, meta: meta}
	mc := memberlist.DefaultLANConfig()
	mc.Name = name
	mc.BindAddr, mc.BindPort = cfg.Bind.String(), port
	mc.AdvertiseAddr, mc.AdvertisePort = cfg.Bind.String(), port
	mc.Label = peers.GossipLabel
	mc.ProbeInterval, mc.ProbeTimeout = 20*time.Second, 5*time.Second
	mc.GossipInterval, mc.GossipNodes = time.Second, 1
	mc.PushPullInterval = 0
	mc.TCPTimeout = 10 * time.Second
	mc.Delegate, mc.Alive = d, d
	mc.Logger = log.New(io.Discard, "", 0)
	if tweak != nil {
		tweak(mc)
	}
	l, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("member %s: %w", name, err)
	}
	for try := 1; ; try++ {
		_, err := l.Join([]string{join})
		if err == nil {
			return l, nil
		}
		if try == 3 {
			_ = l.Shutdown()
			return nil, fmt.Errorf("member %s: join %s (%d tries): %w", name, join, try, err)
		}
		time.Sleep(time.Duration(try) * time.Second)
	}
}

// Members is how many members run.
func (s *Swarm) Members() int {
	n := 0
	for _, l := range s.lists {
		if l != nil {
			n++
		}
	}
	return n
}

// MaxView is the largest view among the members (members of their own view included).
func (s *Swarm) MaxView() int {
	m := 0
	for _, l := range s.lists {
		if l != nil {
			m = max(m, l.NumMembers())
		}
	}
	return m
}

// Close shuts every member down without leaving: to the others it looks like a crash.
func (s *Swarm) Close() {
	var wg sync.WaitGroup
	for _, l := range s.lists {
		if l != nil {
			wg.Add(1)
			go func() { defer wg.Done(); _ = l.Shutdown() }()
		}
	}
	wg.Wait()
}

// RunSwarm starts a swarm, prints "ready N members" once all have joined, and runs until
// ctx ends.
func RunSwarm(ctx context.Context, cfg SwarmConfig) error {
	begin := time.Now()
	sw, err := StartSwarm(ctx, cfg)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return err
	}
	defer sw.Close()
	if cfg.Log != nil {
		fmt.Fprintf(cfg.Log, "ready %d members in %s\n", sw.Members(), time.Since(begin).Round(time.Millisecond))
	}
	<-ctx.Done()
	return nil
}

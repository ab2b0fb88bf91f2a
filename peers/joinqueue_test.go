package peers

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
)

// bareMember is a plain memberlist member announcing valid fabric metadata, with slow
// timers so that a couple of hundred of them cost little; it keeps only non-bare nodes in
// its view (like the scale benchmark's synthetic members).
type bareMember struct {
	name string
	meta []byte
}

const barePrefix = "bare"

var errBare = errors.New("bare members keep only real members in their view")

func (d *bareMember) NodeMeta(int) []byte             { return d.meta }
func (d *bareMember) NotifyMsg([]byte)                {}
func (d *bareMember) GetBroadcasts(int, int) [][]byte { return nil }
func (d *bareMember) LocalState(bool) []byte          { return nil }
func (d *bareMember) MergeRemoteState([]byte, bool)   {}
func (d *bareMember) NotifyAlive(n *memberlist.Node) error {
	if n.Name != d.name && strings.HasPrefix(n.Name, barePrefix) {
		return errBare
	}
	return nil
}

// startBare starts bare member i (metadata testMeta(i)) and joins it to join.
func startBare(t testing.TB, i int, join string) error {
	raw, err := EncodeMeta(testMeta(i))
	if err != nil {
		return err
	}
	d := &bareMember{name: fmt.Sprintf("%s%03d", barePrefix, i), meta: raw}
	mc := memberlist.DefaultLANConfig()
	mc.Name = d.name
	mc.BindAddr, mc.BindPort, mc.AdvertisePort = loopback.String(), 0, 0
	mc.Label = GossipLabel
	mc.ProbeInterval, mc.ProbeTimeout = 20*time.Second, 5*time.Second
	mc.GossipInterval, mc.GossipNodes = time.Second, 1
	mc.PushPullInterval = 0
	mc.Delegate, mc.Alive = d, d
	mc.Logger = log.New(io.Discard, "", 0)
	l, err := memberlist.Create(mc)
	if err != nil {
		return fmt.Errorf("bare member %s: %w", d.name, err)
	}
	t.Cleanup(func() { _ = l.Shutdown() })
	if _, err := l.Join([]string{join}); err != nil {
		return fmt.Errorf("bare member %s: join: %w", d.name, err)
	}
	return nil
}

// TestSetMetaBehindDeepQueue joins a member to a fabric of 200 and announces new metadata
// right away, as fabricd does after claiming its subnet. The joiner has just queued the
// alive messages of all 200 members for re-broadcast; draining that queue takes seconds,
// and SetMeta must not wait for it (it used to wait for memberlist to finish
// retransmitting the update, which behind the queue took until its 5 s timeout). The new
// metadata must still reach the other members.
func TestSetMetaBehindDeepQueue(t *testing.T) {
	if testing.Short() {
		t.Skip("200 members take a while; run without -short")
	}
	if raceEnabled {
		t.Skip("200 members are too slow under the race detector")
	}
	const n = 200
	sink, _ := newSink(t)
	logger := slog.New(slog.NewTextHandler(sink, &slog.HandlerOptions{Level: slog.LevelWarn}))
	seed := start(t, testConfig("seed", 1, logger))

	errs := make([]error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for k := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[k] = startBare(t, 10+k, addr(seed))
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 60*time.Second, "the seed to see all bare members", func() bool { return seed.NumMembers() == n+1 })

	joiner := start(t, testConfig("joiner", 2, logger, addr(seed)))
	waitFor(t, 60*time.Second, "the joiner to see everyone", func() bool { return joiner.NumMembers() == n+2 })

	want := testMeta(2)
	want.Subnet = netip.MustParsePrefix("10.244.250.0/24")
	want.SubnetSince = time.Now().UnixMilli()
	// A deadline far beyond the queue's drain time: SetMeta must return long before it.
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	begin := time.Now()
	if err := joiner.SetMeta(ctx, want); err != nil {
		t.Fatal(err)
	}
	took := time.Since(begin)
	t.Logf("SetMeta right after joining %d members returned after %s", n+1, took)
	if took > 3*time.Second {
		t.Errorf("SetMeta blocked %s behind the broadcast queue (want it to return once queued)", took)
	}
	reached := waitFor(t, 60*time.Second, "the seed to see the new metadata", func() bool {
		for _, p := range seed.Peers() {
			if p.Name == "joiner" {
				return p.Meta.Equal(want)
			}
		}
		return false
	})
	t.Logf("the seed saw the new metadata %s after SetMeta returned", reached)
}

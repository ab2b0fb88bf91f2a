package peers

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"log"
	"net"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"

	"github.com/ovsfabric/ovsfabric/registry"
)

func TestRegistryTag(t *testing.T) {
	if MsgRegistry != registry.MsgTag {
		t.Fatalf("MsgRegistry %q, registry.MsgTag %q", MsgRegistry, registry.MsgTag)
	}
	for _, b := range []byte{msgLegacyState, msgBye, msgKeyReq, msgKeyResp, legacyPushPull} {
		if b == MsgRegistry {
			t.Errorf("message type %q is the registry's", b)
		}
	}
}

// withRegistry starts a member whose gossip carries a new registry (run until the test
// ends), as fabricd wires them.
func withRegistry(t *testing.T, cfg Config, inc uint32) (*Membership, *registry.Registry) {
	t.Helper()
	var send Sender
	reg, err := registry.New(registry.Config{
		Origin: cfg.Name, Incarnation: inc, Sender: &send, NumNodes: send.NumNodes, RetransmitMult: RetransmitMult,
		GapDelay: 500 * time.Millisecond, RequestTimeout: 5 * time.Second,
		Logger: cfg.Logger.With("component", "registry"),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = reg.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	cfg.Registry = reg
	m := start(t, cfg)
	send.Set(m)
	return m, reg
}

// endpointValue is about the size of an endpoint record's value.
func endpointValue(i int) []byte {
	return fmt.Appendf(nil, `{"n":"default","c":"container-%05d","i":"%064x","f":"eth0","a":"10.244.%d.%d/16","m":"02:00:0a:f4:%02x:%02x"}`,
		i, i, i/250, i%250+2, i/256, i%256)
}

// TestRegistryOverGossip: 2000 endpoint-sized records per host (250 KiB, 30 times the
// 8 KiB the attachment blob allowed) spread whole between two members, restored before
// the join and set after it, and a forgotten origin's records go.
func TestRegistryOverGossip(t *testing.T) {
	const n = 2000
	_, logger := newSink(t)
	timings := Timings{PushPullInterval: time.Second}

	a, ra := withRegistry(t, Config{Name: "a", BindAddr: loopback, Meta: testMeta(1), Logger: logger.With("node", "a"), Timings: timings}, 1)
	for i := range n {
		if _, err := ra.Set(registry.KindEndpoint, "fab"+strconv.Itoa(i), endpointValue(i)); err != nil {
			t.Fatal(err)
		}
	}
	cfgB := Config{Name: "b", BindAddr: loopback, Meta: testMeta(2), Logger: logger.With("node", "b"), Timings: timings, Join: []string{addr(a)}}
	// b's own records are restored before it joins, as fabricd does.
	var send Sender
	rb, err := registry.New(registry.Config{Origin: "b", Incarnation: 3, Sender: &send, NumNodes: send.NumNodes, RetransmitMult: RetransmitMult, GapDelay: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range n {
		if _, err := rb.Restore(registry.KindEndpoint, "fab"+strconv.Itoa(i), endpointValue(n+i), uint64(i+1)); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = rb.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	cfgB.Registry = rb
	b := start(t, cfgB)
	send.Set(b)

	count := func(r *registry.Registry, origin string) int { return r.Count(registry.KindEndpoint)[origin] }
	took := waitFor(t, 30*time.Second, "both hosts' records on both", func() bool {
		return count(rb, "a") == n && count(ra, "b") == n
	})
	t.Logf("2×%d records spread in %s", n, took)
	if r, ok := rb.Get("a", registry.KindEndpoint, "fab1999"); !ok || !bytes.Equal(r.Value, endpointValue(1999)) {
		t.Fatalf("b holds a's fab1999 as %v %v", r, ok)
	}

	// An update and a delete after the join spread by broadcast.
	if _, err := ra.Set(registry.KindEndpoint, "fab7", []byte(`{"c":"changed"}`)); err != nil {
		t.Fatal(err)
	}
	if _, err := ra.Delete(registry.KindEndpoint, "fab8"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the update and the delete", func() bool {
		r, ok := rb.Get("a", registry.KindEndpoint, "fab7")
		_, still := rb.Get("a", registry.KindEndpoint, "fab8")
		return ok && string(r.Value) == `{"c":"changed"}` && !still
	})
	if err := b.Leave(3 * time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "b to have left", func() bool { return peerState(a, "b") == StateLeft })
	if !ra.Forget("b") || count(ra, "b") != 0 {
		t.Fatalf("after Forget, a holds %d of b's records", count(ra, "b"))
	}
}

// legacyStateMsg is an attachment state message as versions before the registry gossiped
// it: 's', then uvarint-prefixed name, uvarint version, uvarint-prefixed data.
func legacyStateMsg(name string, ver uint64, data []byte) []byte {
	return legacyEntry([]byte{msgLegacyState}, name, ver, data)
}

func legacyEntry(b []byte, name string, ver uint64, data []byte) []byte {
	b = binary.AppendUvarint(b, uint64(len(name)))
	b = append(b, name...)
	b = binary.AppendUvarint(b, ver)
	b = binary.AppendUvarint(b, uint64(len(data)))
	return append(b, data...)
}

// legacyPayload is a push/pull payload of those versions: version 1, a count, entries.
func legacyPayload(name string, data []byte) []byte {
	b := binary.AppendUvarint([]byte{legacyPushPull}, 1)
	return legacyEntry(b, name, uint64(time.Now().UnixNano()), data)
}

// legacyNode is a memberlist member speaking the previous version's gossip: it broadcasts
// attachment states and pushes them in push/pull, and counts the registry traffic it
// receives (which that version refuses: an unknown message type, a payload version 'R').
type legacyNode struct {
	name     string
	meta     []byte
	regMsgs  atomic.Int64
	regState atomic.Int64
	other    atomic.Int64
}

func (d *legacyNode) NodeMeta(int) []byte { return d.meta }
func (d *legacyNode) NotifyMsg(b []byte) {
	if len(b) > 0 && b[0] == MsgRegistry {
		d.regMsgs.Add(1)
	} else {
		d.other.Add(1)
	}
}
func (d *legacyNode) GetBroadcasts(_, limit int) [][]byte {
	msg := legacyStateMsg(d.name, uint64(time.Now().UnixNano()), []byte(`[{"c":"web","ip":"10.244.9.2/24"}]`))
	if len(msg) > limit {
		return nil
	}
	return [][]byte{msg}
}
func (d *legacyNode) LocalState(bool) []byte {
	return legacyPayload(d.name, bytes.Repeat([]byte{'x'}, 5000))
}
func (d *legacyNode) MergeRemoteState(b []byte, _ bool) {
	if len(b) > 0 && b[0] == MsgRegistry {
		d.regState.Add(1)
	}
}

// TestLegacyPeer: during a rolling upgrade, a member of the previous version (attachment
// blobs in gossip and push/pull) and a new one with a registry stay members of each other;
// the new one ignores the blobs (no warning, no record), and the old one receives only
// registry messages and payloads, which its decoders refuse by their first byte.
func TestLegacyPeer(t *testing.T) {
	sink, logger := newSink(t)
	meta, err := EncodeMeta(testMeta(9))
	if err != nil {
		t.Fatal(err)
	}
	old := &legacyNode{name: "old", meta: meta}
	mc := memberlist.DefaultLANConfig()
	mc.Name = "old"
	mc.BindAddr = "127.0.0.1"
	mc.BindPort = 0
	mc.Label = GossipLabel
	mc.PushPullInterval = 300 * time.Millisecond
	mc.GossipInterval = 50 * time.Millisecond
	mc.Delegate = old
	mc.Logger = log.New(sink, "old ", 0)
	list, err := memberlist.Create(mc)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = list.Shutdown() })
	ln := list.LocalNode()
	oldAddr := net.JoinHostPort(ln.Addr.String(), strconv.Itoa(int(ln.Port)))

	m, reg := withRegistry(t, Config{Name: "new", BindAddr: loopback, Meta: testMeta(1), Logger: logger,
		Timings: Timings{PushPullInterval: 300 * time.Millisecond}, Join: []string{oldAddr}}, 1)
	if _, err := reg.Set(registry.KindEndpoint, "fab1", []byte("v")); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "the old member alive", func() bool { return peerState(m, "old") == StateAlive })
	waitFor(t, 10*time.Second, "registry traffic at the old member", func() bool {
		return old.regState.Load() >= 3 && old.regMsgs.Load() >= 1
	})
	// Several push/pulls and blob broadcasts later, both are still members of each other.
	time.Sleep(time.Second)
	if st := peerState(m, "old"); st != StateAlive {
		t.Errorf("the old member is %s", st)
	}
	if list.NumMembers() != 2 {
		t.Errorf("the old member sees %d members", list.NumMembers())
	}
	if n := reg.Count(registry.KindEndpoint)["old"]; n != 0 {
		t.Errorf("the registry holds %d records of the old member", n)
	}
	if sink.contains("refusing") {
		t.Error("the new member logged the old member's gossip as refused")
	}
	t.Logf("old member received %d registry messages, %d registry payloads, %d other messages",
		old.regMsgs.Load(), old.regState.Load(), old.other.Load())

	// The same input handed straight to a new member without a registry changes nothing.
	bare := start(t, Config{Name: "bare", BindAddr: loopback, Meta: testMeta(2), Logger: logger.With("node", "bare")})
	h := &hooks{m: bare}
	h.NotifyMsg(legacyStateMsg("old", 1, []byte("[]")))
	h.MergeRemoteState(legacyPayload("old", []byte("[]")), false)
	h.MergeRemoteState(reg.LocalState(false), false)
	h.NotifyMsg([]byte{MsgRegistry, 'd', 0})
	if got := h.LocalState(false); got != nil {
		t.Errorf("a member without a registry pushes %q", got)
	}
	if len(bare.Peers()) != 0 {
		t.Errorf("peers from payloads: %v", bare.Peers())
	}
}

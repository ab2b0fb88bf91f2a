package peers

import (
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

// TestUntrustedNodesRefused feeds crafted alive messages and joins (what any host that
// reaches the gossip port can send) to the delegates: each bad one is refused, listed with
// its reason, and never becomes a peer.
func TestUntrustedNodesRefused(t *testing.T) {
	_, log := newSink(t)
	a := start(t, testConfig("a", 1, log))
	h := &hooks{m: a}
	good := `"v":1,"u":"gre","c":"10.244.0.0/16"`
	for _, tc := range []struct {
		name, meta, want string
	}{
		{"outside", `{` + good + `,"a":"192.168.59.7","s":"10.9.0.0/24"}`, "outside cluster CIDR"},
		{"host-bits", `{` + good + `,"a":"192.168.59.7","s":"10.244.7.1/24"}`, "host bits"},
		{"loop", `{` + good + `,"a":"127.0.0.1"}`, "loopback"},
		{"mcast", `{` + good + `,"a":"ff02::1"}`, "multicast"},
		{"unspec", `{` + good + `,"a":"0.0.0.0"}`, "unicast"},
		{"me", `{` + good + `,"a":"192.168.59.1"}`, "own"},
		{"garbage", "\x00\xff{", "unreadable metadata"},
		{"huge", `{` + good + `,"a":"192.168.59.7","x":"` + strings.Repeat("x", 600) + `"}`, "more than 512"},
		{strings.Repeat("n", MaxNodeNameLen+1), `{` + good + `,"a":"192.168.59.7"}`, "more than 253"},
		{"bad\nname", `{` + good + `,"a":"192.168.59.7"}`, "non-printable"},
	} {
		node := &memberlist.Node{Name: tc.name, Addr: []byte{127, 0, 0, 9}, Port: 7946, Meta: []byte(tc.meta)}
		err := h.NotifyAlive(node)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.20s: NotifyAlive = %v, want %q", tc.name, err, tc.want)
		}
		if err := h.NotifyMerge([]*memberlist.Node{node}); err == nil {
			t.Errorf("%.20s: NotifyMerge accepted it", tc.name)
		}
		if peerState(a, tc.name) != "" {
			t.Errorf("%.20s became a peer", tc.name)
		}
		found := false
		for _, r := range a.Rejected() {
			found = found || r.Name == tc.name && strings.Contains(r.Reason, tc.want)
		}
		if !found {
			t.Errorf("%.20s not in Rejected: %v", tc.name, a.Rejected())
		}
	}
	ok := &memberlist.Node{Name: "b", Addr: []byte{127, 0, 0, 9}, Port: 7946, Meta: []byte(`{` + good + `,"a":"192.168.59.2","s":"10.244.2.0/24"}`)}
	if err := h.NotifyAlive(ok); err != nil {
		t.Errorf("a valid node is refused: %v", err)
	}
}

// FuzzNodeCheck: whatever name and metadata a node announces, the check neither panics nor
// lets through a node with an unusable name, subnet or tunnel address.
func FuzzNodeCheck(f *testing.F) {
	_, log := newSink(f)
	a := start(f, testConfig("a", 1, log))
	raw, _ := EncodeMeta(testMeta(2))
	f.Add("b", raw)
	f.Add("c", []byte(`{"v":1,"u":"gre","c":"10.244.0.0/16","a":"127.0.0.1"}`))
	f.Add("", []byte("{}"))
	f.Fuzz(func(t *testing.T, name string, meta []byte) {
		err := a.checkNode(&memberlist.Node{Name: name, Meta: meta})
		if err != nil {
			return
		}
		m, derr := decodeMeta(meta)
		if derr != nil || m.Validate() != nil || checkNodeName(name) != nil || checkTunnelAddr(m.Addr, testMeta(1).Addr) != nil {
			t.Fatalf("accepted %q with %q", name, meta)
		}
	})
}

package natrules

import (
	"encoding/binary"
	"fmt"
	"slices"
	"sync"

	"github.com/mdlayher/netlink"
	"golang.org/x/sys/unix"
)

// The no-change fast path. Reading a table of a few hundred rules back and
// comparing it costs milliseconds, every reconcile. The kernel bumps the
// ruleset generation of a namespace on every committed nftables transaction (of
// any table, by anyone), so once Reconcile has read a table that matched its
// rules at generation G, the same rules at the same generation G still match
// and need no read. The generation is taken before the table is read, so a
// commit racing with the read leaves a stale generation behind, never a wrong
// one. Namespaces are told apart by their cookie (SO_NETNS_COOKIE, Linux 5.14),
// which is never reused, unlike namespace inode numbers; without it there is
// no fast path.

// matchKey is one table in one network namespace.
type matchKey struct {
	netns uint64
	table string
}

// matched is what Reconcile last found in place: the normalized rules and the
// generation at which the table matched them.
type matched struct {
	gen   uint32
	rules Rules
}

// maxMatched bounds the cache (one entry per namespace and table: fabricd has
// one; tests make many short-lived namespaces).
const maxMatched = 64

var lastMatch = struct {
	sync.Mutex
	m map[matchKey]matched
}{m: map[matchKey]matched{}}

// stillMatches reports whether table n.Table in namespace netns was found to
// match n at generation gen.
func stillMatches(netns uint64, gen uint32, n Rules) bool {
	lastMatch.Lock()
	defer lastMatch.Unlock()
	m, ok := lastMatch.m[matchKey{netns, n.Table}]
	return ok && m.gen == gen && sameRules(m.rules, n)
}

// rememberMatch records that table n.Table in namespace netns matched n at
// generation gen.
func rememberMatch(netns uint64, gen uint32, n Rules) {
	lastMatch.Lock()
	defer lastMatch.Unlock()
	if len(lastMatch.m) >= maxMatched {
		clear(lastMatch.m)
	}
	n.Networks, n.Publish = slices.Clone(n.Networks), slices.Clone(n.Publish)
	lastMatch.m[matchKey{netns, n.Table}] = matched{gen, n}
}

// forgetMatch drops what is known about table in every namespace.
func forgetMatch(table string) {
	lastMatch.Lock()
	defer lastMatch.Unlock()
	for k := range lastMatch.m {
		if k.table == table {
			delete(lastMatch.m, k)
		}
	}
}

// sameRules compares two normalized rule sets, container names (which only
// live in comments) included.
func sameRules(a, b Rules) bool {
	return a.Table == b.Table && a.Masquerade == b.Masquerade && a.WireGuard == b.WireGuard &&
		slices.Equal(a.Networks, b.Networks) && slices.Equal(a.Publish, b.Publish)
}

// rulesetGeneration returns the cookie of the calling thread's network namespace and
// its nftables ruleset generation (NFT_MSG_GETGEN).
func rulesetGeneration() (netns uint64, gen uint32, err error) {
	c, err := netlink.Dial(unix.NETLINK_NETFILTER, nil)
	if err != nil {
		return 0, 0, fmt.Errorf("natrules: open nfnetlink socket: %w", err)
	}
	defer func() { _ = c.Close() }()
	raw, err := c.SyscallConn()
	if err != nil {
		return 0, 0, fmt.Errorf("natrules: nfnetlink socket: %w", err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		netns, serr = unix.GetsockoptUint64(int(fd), unix.SOL_SOCKET, unix.SO_NETNS_COOKIE)
	}); err != nil {
		return 0, 0, fmt.Errorf("natrules: nfnetlink socket: %w", err)
	}
	if serr != nil {
		return 0, 0, fmt.Errorf("natrules: network namespace cookie: %w", serr)
	}
	msgs, err := c.Execute(netlink.Message{
		Header: netlink.Header{
			Type:  netlink.HeaderType(unix.NFNL_SUBSYS_NFTABLES<<8 | unix.NFT_MSG_GETGEN),
			Flags: netlink.Request,
		},
		Data: []byte{unix.AF_UNSPEC, unix.NFNETLINK_V0, 0, 0},
	})
	if err != nil {
		return 0, 0, fmt.Errorf("natrules: get the ruleset generation: %w", err)
	}
	if len(msgs) != 1 || len(msgs[0].Data) < 4 {
		return 0, 0, fmt.Errorf("natrules: get the ruleset generation: unexpected reply %v", msgs)
	}
	ad, err := netlink.NewAttributeDecoder(msgs[0].Data[4:])
	if err != nil {
		return 0, 0, fmt.Errorf("natrules: ruleset generation reply: %w", err)
	}
	ad.ByteOrder = binary.BigEndian
	found := false
	for ad.Next() {
		if ad.Type() == unix.NFTA_GEN_ID {
			gen, found = ad.Uint32(), true
		}
	}
	if err := ad.Err(); err != nil || !found {
		return 0, 0, fmt.Errorf("natrules: ruleset generation reply without a generation: %v", err)
	}
	return netns, gen, nil
}

package peers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/hashicorp/memberlist"
)

// MaxNodeNameLen bounds node names: a DNS name's length, enough for any hostname.
const MaxNodeNameLen = 253

// checkNodeName refuses empty, overlong and non-printable names: names end up in logs,
// status output and OVSDB external_ids.
func checkNodeName(name string) error {
	switch {
	case name == "":
		return errors.New("node name is required")
	case len(name) > MaxNodeNameLen:
		return fmt.Errorf("node name of %d bytes, more than %d", len(name), MaxNodeNameLen)
	case !utf8.ValidString(name):
		return errors.New("node name is not UTF-8")
	}
	for _, r := range name {
		if !unicode.IsPrint(r) || unicode.IsSpace(r) {
			return fmt.Errorf("node name %q has a non-printable or space character", name)
		}
	}
	return nil
}

// checkTunnelAddr refuses an underlay address no tunnel may lead to: unspecified, loopback,
// multicast, the IPv4 broadcast address, or this node's own address (a peer announcing it
// would make this node tunnel to itself).
func checkTunnelAddr(a, own netip.Addr) error {
	switch {
	case !a.IsValid() || a.IsUnspecified():
		return fmt.Errorf("underlay address %q is unspecified", a)
	case a.IsLoopback():
		return fmt.Errorf("underlay address %s is a loopback address", a)
	case a.IsMulticast():
		return fmt.Errorf("underlay address %s is a multicast address", a)
	case a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return fmt.Errorf("underlay address %s is the broadcast address", a)
	case a.Unmap() == own.Unmap():
		return fmt.Errorf("underlay address %s is this node's own", a)
	}
	return nil
}

// checkNode says why a node announced by gossip (an alive message or a join) cannot be a
// member: a bad name, unreadable or incompatible metadata (see checkRemote), or an underlay
// address no tunnel may lead to. Nothing of a refused node is applied.
func (m *Membership) checkNode(n *memberlist.Node) error {
	if err := checkNodeName(n.Name); err != nil {
		return err
	}
	if err := m.checkRemote(n.Meta); err != nil {
		return err
	}
	meta, err := decodeMeta(n.Meta)
	if err != nil { // checkRemote decoded it already
		return err
	}
	return checkTunnelAddr(meta.Addr, m.local.Load().meta.Addr)
}

// refusedLogEvery rate-limits the warning about refused gossip input: a flood of garbage
// must not flood the log (the rest goes to debug).
const refusedLogEvery = 10 * time.Second

// refused logs gossip input that was dropped for being malformed or invalid.
func (m *Membership) refused(what string, err error) {
	now := time.Now().UnixNano()
	last := m.lastRefusedLog.Load()
	level := slog.LevelDebug
	if now-last >= int64(refusedLogEvery) && m.lastRefusedLog.CompareAndSwap(last, now) {
		level = slog.LevelWarn
	}
	m.log.Log(context.Background(), level, "refusing "+what+" from gossip: "+err.Error())
}

package natrules

import (
	"encoding/binary"
	"fmt"
	"math/bits"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// State is what Read found in the kernel.
type State struct {
	// Table is the table name that was read.
	Table string
	// Present reports whether the table exists.
	Present bool
	// Rules is decoded from the rule expressions actually installed (not
	// from comments, except Publish.Container, which only lives in the
	// comment). Rules this package did not write are skipped here and
	// show up in Entries with Recognized false. Network names come from
	// the comments; a network's Slice is known only where a masquerade rule
	// shows it (Masquerade on, network not internal). The form is the
	// normalized one Reconcile installs: Networks sorted by CIDR, Publish
	// sorted by proto, host port and host address, HostAddr zero for "any
	// local address".
	Rules Rules
	// Entries lists every rule of the table with its comment and
	// counters, for status output and troubleshooting: chains in the order
	// prerouting, output, publish, postrouting, then any others; rules in
	// the kernel's order within each chain.
	Entries []Entry
}

// Entry is one rule found in the table.
type Entry struct {
	// Chain is the chain holding the rule.
	Chain string
	// Handle is the kernel's rule handle (for `nft delete rule ... handle N`).
	Handle uint64
	// Comment is the rule's comment ("" if it has none).
	Comment string
	// Packets and Bytes are the rule's counter (zero without a counter).
	Packets, Bytes uint64
	// Recognized reports whether the rule has exactly the shape this
	// package writes (and was decoded into State.Rules).
	Recognized bool
}

// String formats e for logs, e.g.
// `publish: ovsfabric: publish tcp *:8080 -> web1 10.244.3.2:80 [3 packets]`.
func (e Entry) String() string {
	c := e.Comment
	if c == "" {
		c = fmt.Sprintf("rule handle %d (no comment)", e.Handle)
	}
	if !e.Recognized {
		c += " (not written by ovsfabric)"
	}
	return fmt.Sprintf("%s: %s [%d packets]", e.Chain, c, e.Packets)
}

// Read returns the content of table (family ip; empty means DefaultTable) in
// the calling thread's network namespace. A missing table is not an error:
// State.Present is false.
func Read(table string) (State, error) {
	if table == "" {
		table = DefaultTable
	}
	if err := validateTableName(table); err != nil {
		return State{}, err
	}
	conn, err := open()
	if err != nil {
		return State{}, err
	}
	defer func() { _ = conn.CloseLasting() }()
	cur, err := readTable(conn, table)
	if err != nil {
		return State{}, err
	}
	st := State{Table: table, Present: cur.table != nil}
	var d decoder
	// Present chains in the order of the layout (kernel order depends on
	// history), chains we do not know last.
	order := func(name string) int {
		i := slices.Index(chainOrder, name)
		if i < 0 {
			return len(chainOrder)
		}
		return i
	}
	chains := slices.Clone(cur.chains)
	slices.SortStableFunc(chains, func(a, b currentChain) int { return order(a.chain.Name) - order(b.chain.Name) })
	for _, ch := range chains {
		for _, r := range ch.rules {
			e := Entry{Chain: ch.chain.Name, Handle: r.Handle}
			if c, ok := userdata.GetString(safeUserData(r.UserData), userdata.TypeComment); ok {
				e.Comment = c
			}
			for _, x := range r.Exprs {
				if c, ok := x.(*expr.Counter); ok {
					e.Packets, e.Bytes = c.Packets, c.Bytes
				}
			}
			e.Recognized = d.rule(ch.chain.Name, e.Comment, r.Exprs)
			st.Entries = append(st.Entries, e)
		}
	}
	st.Rules = d.rules(table)
	return st, nil
}

// safeUserData returns udata truncated before the first malformed TLV, since
// userdata.Get does not bounds-check.
func safeUserData(udata []byte) []byte {
	i := 0
	for i+2 <= len(udata) {
		n := 2 + int(udata[i+1])
		if i+n > len(udata) {
			break
		}
		i += n
	}
	return udata[:i]
}

// decoder collects what the rules of a table say, rule by rule, and assembles
// the Rules they were built from.
type decoder struct {
	nets    map[netip.Prefix]*Network // by CIDR
	slices  []netip.Prefix            // sources of masquerade rules
	masq    bool
	publish []Publish
	wg      string
}

// wgName is the interface named by a comment commentJumpWG wrote.
func wgName(comment string) (string, bool) {
	head, _, _ := strings.Cut(commentJumpWG, "%s")
	name, ok := strings.CutPrefix(comment, head)
	return name, ok && name != ""
}

// network returns the network of cidr, made on first sight; a name from a
// comment fills in a missing one.
func (d *decoder) network(cidr netip.Prefix, name string) *Network {
	if d.nets == nil {
		d.nets = map[netip.Prefix]*Network{}
	}
	n, ok := d.nets[cidr]
	if !ok {
		n = &Network{CIDR: cidr}
		d.nets[cidr] = n
	}
	if n.Name == "" {
		n.Name = name
	}
	return n
}

// rules assembles what the rules said, in normalized form.
func (d *decoder) rules(table string) Rules {
	r := Rules{Table: table, Masquerade: d.masq, Publish: d.publish, WireGuard: d.wg}
	for _, n := range d.nets {
		r.Networks = append(r.Networks, *n)
	}
	slices.SortFunc(r.Networks, func(a, b Network) int { return comparePrefix(a.CIDR, b.CIDR) })
	for _, s := range d.slices {
		for i := range r.Networks {
			if n := &r.Networks[i]; n.CIDR.Bits() <= s.Bits() && n.CIDR.Contains(s.Addr()) {
				n.Slice = s
			}
		}
	}
	slices.SortFunc(r.Publish, comparePublish)
	return r
}

// rule recognizes a rule this package writes, adds what it means to d, and
// reports whether it was recognized. Values are picked out loosely, then the
// rule is rebuilt from them and compared with the original, so only exact
// matches count.
func (d *decoder) rule(chain, comment string, exprs []expr.Any) bool {
	saddr, hasSaddr := firstPrefix(exprs, offIPSaddr)
	daddr, hasDaddr := firstPrefix(exprs, offIPDaddr)
	switch chain {
	case chainPrerouting:
		return sameExprs(exprs, jumpPreroutingExprs())
	case chainOutput:
		return sameExprs(exprs, jumpOutputExprs())
	case chainPostrouting:
		switch {
		case hasSaddr && sameExprs(exprs, hairpinExprs(saddr)):
			d.network(saddr, netName(comment, netHairpin, saddr))
		case hasDaddr && sameExprs(exprs, keepExprs(daddr)):
			d.network(daddr, netName(comment, netKeep, daddr))
		case hasSaddr && sameExprs(exprs, masqueradeExprs(saddr)):
			d.masq = true
			d.slices = append(d.slices, saddr)
		default:
			return false
		}
		return true
	case chainInput:
		if name, ok := wgName(comment); ok && sameExprs(exprs, jumpWGExprs(name)) {
			d.wg = name
			return true
		}
		return false
	case chainFromWG:
		if hasSaddr && sameExprs(exprs, fromWGExprs(saddr)) {
			d.network(saddr, netName(comment, netFromWG, saddr))
			return true
		}
		return sameExprs(exprs, []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}})
	case chainForward:
		if name, ok := wgName(comment); ok && sameExprs(exprs, jumpWGExprs(name)) {
			d.wg = name
			return true
		}
		switch {
		case hasSaddr && sameExprs(exprs, withinExprs(saddr)):
			d.network(saddr, netName(comment, netWithin, saddr))
		case hasSaddr && sameExprs(exprs, dropExprs(offIPSaddr, saddr)):
			d.network(saddr, netName(comment, netIntOut, saddr)).Internal = true
		case hasDaddr && sameExprs(exprs, dropExprs(offIPDaddr, daddr)):
			d.network(daddr, netName(comment, netIntIn, daddr)).Internal = true
		case hasSaddr && sameExprs(exprs, leaveExprs(saddr)):
			d.network(saddr, netName(comment, netLeave, saddr))
		default:
			return false
		}
		return true
	case chainBetween:
		if hasDaddr && sameExprs(exprs, dropExprs(offIPDaddr, daddr)) {
			d.network(daddr, netName(comment, netBetween, daddr))
			return true
		}
		return false
	case chainPublish:
		p, ok := decodePublish(exprs)
		if !ok {
			return false
		}
		p.Container = containerFromComment(comment, p)
		d.publish = append(d.publish, p)
		return true
	}
	return false
}

// firstPrefix finds the first comparison of the IPv4 header field at offset
// (with an optional mask) and returns it as a prefix.
func firstPrefix(exprs []expr.Any, offset uint32) (netip.Prefix, bool) {
	for i, e := range exprs {
		pl, ok := e.(*expr.Payload)
		if !ok || pl.Base != expr.PayloadBaseNetworkHeader || pl.Offset != offset || pl.Len != 4 {
			continue
		}
		nbits := 32
		j := i + 1
		if j < len(exprs) {
			if bw, ok := exprs[j].(*expr.Bitwise); ok && len(bw.Mask) == 4 {
				nbits = bits.LeadingZeros32(^binary.BigEndian.Uint32(bw.Mask))
				j++
			}
		}
		if j < len(exprs) {
			if c, ok := exprs[j].(*expr.Cmp); ok && len(c.Data) == 4 {
				return netip.PrefixFrom(netip.AddrFrom4([4]byte(c.Data)), nbits), true
			}
		}
		return netip.Prefix{}, false
	}
	return netip.Prefix{}, false
}

// decodePublish picks the values of a publish rule out of exprs.
func decodePublish(exprs []expr.Any) (Publish, bool) {
	var p Publish
	var last expr.Any
	for _, e := range exprs {
		switch e := e.(type) {
		case *expr.Cmp:
			switch l := last.(type) {
			case *expr.Meta:
				if l.Key == expr.MetaKeyL4PROTO && len(e.Data) == 1 {
					switch e.Data[0] {
					case unix.IPPROTO_TCP:
						p.Proto = ProtoTCP
					case unix.IPPROTO_UDP:
						p.Proto = ProtoUDP
					}
				}
			case *expr.Payload:
				if l.Base == expr.PayloadBaseTransportHeader && len(e.Data) == 2 {
					p.HostPort = binary.BigEndian.Uint16(e.Data)
				}
				if l.Base == expr.PayloadBaseNetworkHeader && len(e.Data) == 4 {
					p.HostAddr = netip.AddrFrom4([4]byte(e.Data))
				}
			}
		case *expr.Immediate:
			if e.Register == 1 && len(e.Data) == 4 {
				p.ContainerIP = netip.AddrFrom4([4]byte(e.Data))
			}
			if e.Register == 2 && len(e.Data) == 2 {
				p.ContainerPort = binary.BigEndian.Uint16(e.Data)
			}
		}
		last = e
	}
	if p.Proto == "" || !p.ContainerIP.IsValid() {
		return Publish{}, false
	}
	return p, sameExprs(exprs, publishExprs(p))
}

// containerFromComment extracts the container name from a publish comment
// written for p ("ovsfabric: publish tcp *:8080 -> NAME 10.244.3.2:80").
func containerFromComment(comment string, p Publish) string {
	head := commentPrefix + "publish " + p.Proto + " " + p.hostString() + " -> "
	tail := fmt.Sprintf(" %s:%d", p.ContainerIP, p.ContainerPort)
	rest, ok := strings.CutPrefix(comment, head)
	if !ok {
		return ""
	}
	name, ok := strings.CutSuffix(rest, tail)
	if !ok || strings.ContainsRune(name, ' ') {
		return ""
	}
	return name
}

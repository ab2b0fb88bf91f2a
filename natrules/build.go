package natrules

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/binaryutil"
	"github.com/google/nftables/expr"
	"github.com/google/nftables/userdata"
	"golang.org/x/sys/unix"
)

// Chain names inside the table.
const (
	chainPrerouting  = "prerouting"
	chainOutput      = "output"
	chainPostrouting = "postrouting"
	chainPublish     = "publish"
	chainForward     = "forward"
	chainBetween     = "between"
	chainInput       = "input"
	chainFromWG      = "from_wireguard"
)

// chainOrder is the order of the chains in the layout.
var chainOrder = []string{chainPrerouting, chainOutput, chainPublish, chainPostrouting, chainForward, chainBetween, chainInput, chainFromWG}

// commentPrefix starts every rule comment this package writes.
const commentPrefix = "ovsfabric: "

// maxComment is the longest comment nft accepts and prints (128 bytes
// including the terminating NUL).
const maxComment = 127

// Comments of the fixed rules.
const (
	commentJumpPrerouting = commentPrefix + "published ports, traffic to this host"
	commentJumpOutput     = commentPrefix + "published ports, connections from this host"
)

// Comments of the per-network rules: commentPrefix + "network NAME: " + what, where what is
// one of these with the network's CIDR (the slice for netMasquerade) filled in.
const (
	netPrefix     = commentPrefix + "network "
	netHairpin    = "hairpin: masquerade DNATed traffic within %s"
	netKeep       = "traffic to %s keeps its source"
	netMasquerade = "masquerade %s to outside the networks"
	netWithin     = "forward within %s"
	netIntOut     = "internal: drop forwarding out of %s"
	netIntIn      = "internal: drop forwarding into %s"
	netLeave      = "check forwarding out of %s"
	netBetween    = "drop forwarding into %s from another network"
	netFromWG     = "from WireGuard within %s"
)

// Comments of the WireGuard rules (Rules.WireGuard).
const (
	commentJumpWG = commentPrefix + "wireguard: check what arrives on %s"
	commentDropWG = commentPrefix + "wireguard: drop what crosses networks or reaches no network"
)

// netComment is the comment of a per-network rule; what is one of the net* formats.
func netComment(name, what string, p netip.Prefix) string {
	return netPrefix + name + ": " + fmt.Sprintf(what, p)
}

// netName extracts the network name from a comment netComment(name, what, p) wrote; "" if
// the comment is not of that form.
func netName(comment, what string, p netip.Prefix) string {
	rest, ok := strings.CutPrefix(comment, netPrefix)
	if !ok {
		return ""
	}
	name, ok := strings.CutSuffix(rest, ": "+fmt.Sprintf(what, p))
	if !ok || !networkNameRE.MatchString(name) {
		return ""
	}
	return name
}

func commentPublish(p Publish) string {
	c := commentPrefix + "publish " + p.String()
	if len(c) <= maxComment {
		return c
	}
	// Too long: shorten the container name, keep everything else.
	name := sanitizeName(p.Container)
	over := len(c) - maxComment
	p.Container = name[:max(0, len(name)-over-1)] + "~"
	return commentPrefix + "publish " + p.String()
}

// sanitizeName makes a container name safe for a comment: printable ASCII
// without spaces, quotes or backslashes; anything else becomes '_'.
func sanitizeName(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r <= ' ' || r > '~' || r == '"' || r == '\\' {
			r = '_'
		}
		b.WriteRune(r)
	}
	return b.String()
}

// chainSpec is one chain of the desired table.
type chainSpec struct {
	name     string
	typ      nftables.ChainType      // nat or filter; "" for a regular chain
	hook     *nftables.ChainHook     // nil for a regular chain
	priority *nftables.ChainPriority // nil for a regular chain
	rules    []ruleSpec
}

func (c chainSpec) base() bool { return c.hook != nil }

// ruleSpec is one rule of the desired table.
type ruleSpec struct {
	comment string
	exprs   []expr.Any
}

func (r ruleSpec) userData() []byte {
	return userdata.AppendString(nil, userdata.TypeComment, r.comment)
}

// desired builds the chains and rules for normalized rules r. It is pure; the
// same input always produces the same output in the same order.
func desired(r Rules) []chainSpec {
	var post, pub, fwd, between []ruleSpec
	for _, p := range r.Publish {
		pub = append(pub, ruleSpec{commentPublish(p), publishExprs(p)})
	}
	// Hairpin for each network with a published port (never an internal one: Validate).
	for _, n := range r.Networks {
		if slices.ContainsFunc(r.Publish, func(p Publish) bool { return n.CIDR.Contains(p.ContainerIP) }) {
			post = append(post, ruleSpec{netComment(n.Name, netHairpin, n.CIDR), hairpinExprs(n.CIDR)})
		}
	}
	if masq := masqueraded(r); len(masq) > 0 {
		// Traffic to any network keeps its source; what is left leaves the fabric.
		for _, n := range r.Networks {
			post = append(post, ruleSpec{netComment(n.Name, netKeep, n.CIDR), keepExprs(n.CIDR)})
		}
		for _, n := range masq {
			post = append(post, ruleSpec{netComment(n.Name, netMasquerade, n.Slice), masqueradeExprs(n.Slice)})
		}
	}
	for _, n := range r.Networks {
		fwd = append(fwd, ruleSpec{netComment(n.Name, netWithin, n.CIDR), withinExprs(n.CIDR)})
	}
	for _, n := range r.Networks {
		if n.Internal {
			fwd = append(fwd,
				ruleSpec{netComment(n.Name, netIntOut, n.CIDR), dropExprs(offIPSaddr, n.CIDR)},
				ruleSpec{netComment(n.Name, netIntIn, n.CIDR), dropExprs(offIPDaddr, n.CIDR)})
		}
	}
	for _, n := range r.Networks {
		if !n.Internal { // an internal network's traffic out was dropped above
			fwd = append(fwd, ruleSpec{netComment(n.Name, netLeave, n.CIDR), leaveExprs(n.CIDR)})
		}
		between = append(between, ruleSpec{netComment(n.Name, netBetween, n.CIDR), dropExprs(offIPDaddr, n.CIDR)})
	}
	chains := []chainSpec{
		{
			name:     chainPrerouting,
			typ:      nftables.ChainTypeNAT,
			hook:     nftables.ChainHookPrerouting,
			priority: nftables.ChainPriorityNATDest,
			rules:    []ruleSpec{{commentJumpPrerouting, jumpPreroutingExprs()}},
		},
		{
			name:     chainOutput,
			typ:      nftables.ChainTypeNAT,
			hook:     nftables.ChainHookOutput,
			priority: nftables.ChainPriorityNATDest,
			rules:    []ruleSpec{{commentJumpOutput, jumpOutputExprs()}},
		},
		{name: chainPublish, rules: pub},
		{
			name:     chainPostrouting,
			typ:      nftables.ChainTypeNAT,
			hook:     nftables.ChainHookPostrouting,
			priority: nftables.ChainPriorityNATSource,
			rules:    post,
		},
		{
			name:     chainForward,
			typ:      nftables.ChainTypeFilter,
			hook:     nftables.ChainHookForward,
			priority: nftables.ChainPriorityFilter,
			rules:    fwd,
		},
		{name: chainBetween, rules: between},
	}
	if r.WireGuard == "" {
		return chains
	}
	// Checked before anything else forwards it; the host's own input gets the same check.
	jump := ruleSpec{fmt.Sprintf(commentJumpWG, r.WireGuard), jumpWGExprs(r.WireGuard)}
	chains[4].rules = append([]ruleSpec{jump}, chains[4].rules...)
	var fromWG []ruleSpec
	for _, n := range r.Networks {
		fromWG = append(fromWG, ruleSpec{netComment(n.Name, netFromWG, n.CIDR), fromWGExprs(n.CIDR)})
	}
	fromWG = append(fromWG, ruleSpec{commentDropWG, []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop}}})
	return append(chains,
		chainSpec{
			name:     chainInput,
			typ:      nftables.ChainTypeFilter,
			hook:     nftables.ChainHookInput,
			priority: nftables.ChainPriorityFilter,
			rules:    []ruleSpec{jump},
		},
		chainSpec{name: chainFromWG, rules: fromWG})
}

// ifnameData is an interface name as nftables compares iifname: IFNAMSIZ bytes, NUL-padded.
func ifnameData(name string) []byte {
	b := make([]byte, unix.IFNAMSIZ)
	copy(b, name)
	return b
}

// jumpWGExprs: iifname IF counter jump from_wireguard.
func jumpWGExprs(ifname string) []expr.Any {
	return []expr.Any{
		&expr.Meta{Key: expr.MetaKeyIIFNAME, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: ifnameData(ifname)},
		&expr.Counter{},
		&expr.Verdict{Kind: expr.VerdictJump, Chain: chainFromWG},
	}
}

// fromWGExprs: ip saddr CIDR ip daddr CIDR counter return.
func fromWGExprs(cidr netip.Prefix) []expr.Any {
	e := ipMatch(offIPSaddr, expr.CmpOpEq, cidr)
	e = append(e, ipMatch(offIPDaddr, expr.CmpOpEq, cidr)...)
	return append(e, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictReturn})
}

// masqueraded lists the networks whose slice r masquerades: none without
// Masquerade, never an internal one, never one without a slice on this host.
func masqueraded(r Rules) []Network {
	if !r.Masquerade {
		return nil
	}
	var out []Network
	for _, n := range r.Networks {
		if !n.Internal && n.Slice.IsValid() {
			out = append(out, n)
		}
	}
	return out
}

// Offsets in the IPv4 header and in TCP/UDP headers.
const (
	offIPSaddr = 12
	offIPDaddr = 16
	offDport   = 2
)

var loopbackNet = netip.MustParsePrefix("127.0.0.0/8")

// ipMatch loads the IPv4 source or destination (offset) and compares it with
// prefix p using op. A /32 is compared without a mask.
func ipMatch(offset uint32, op expr.CmpOp, p netip.Prefix) []expr.Any {
	exprs := []expr.Any{
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseNetworkHeader, Offset: offset, Len: 4},
	}
	if p.Bits() < 32 {
		exprs = append(exprs, &expr.Bitwise{
			SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: prefixMask(p.Bits()), Xor: []byte{0, 0, 0, 0},
		})
	}
	a := p.Masked().Addr().As4()
	return append(exprs, &expr.Cmp{Op: op, Register: 1, Data: a[:]})
}

func prefixMask(bits int) []byte {
	var m uint32
	if bits > 0 {
		m = ^uint32(0) << (32 - bits)
	}
	return binaryutil.BigEndian.PutUint32(m)
}

// fibLocal is `fib daddr type local`.
func fibLocal() []expr.Any {
	return []expr.Any{
		&expr.Fib{Register: 1, FlagDADDR: true, ResultADDRTYPE: true},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.NativeEndian.PutUint32(unix.RTN_LOCAL)},
	}
}

func jumpPublish() []expr.Any {
	return []expr.Any{&expr.Counter{}, &expr.Verdict{Kind: expr.VerdictJump, Chain: chainPublish}}
}

// jumpPreroutingExprs: fib daddr type local counter jump publish.
func jumpPreroutingExprs() []expr.Any {
	return append(fibLocal(), jumpPublish()...)
}

// jumpOutputExprs: ip daddr != 127.0.0.0/8 fib daddr type local counter jump publish.
func jumpOutputExprs() []expr.Any {
	e := ipMatch(offIPDaddr, expr.CmpOpNeq, loopbackNet)
	e = append(e, fibLocal()...)
	return append(e, jumpPublish()...)
}

// ctStatusDNAT is `ct status dnat`.
func ctStatusDNAT() []expr.Any {
	return []expr.Any{
		&expr.Ct{Register: 1, Key: expr.CtKeySTATUS},
		&expr.Bitwise{
			SourceRegister: 1, DestRegister: 1, Len: 4,
			Mask: binaryutil.NativeEndian.PutUint32(ipsDstNAT), Xor: []byte{0, 0, 0, 0},
		},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}},
	}
}

// ipsDstNAT is IPS_DST_NAT from linux/netfilter/nf_conntrack_common.h.
const ipsDstNAT = 1 << 5

// hairpinExprs: ct status dnat ip saddr CIDR ip daddr CIDR counter masquerade.
func hairpinExprs(cidr netip.Prefix) []expr.Any {
	e := ctStatusDNAT()
	e = append(e, ipMatch(offIPSaddr, expr.CmpOpEq, cidr)...)
	e = append(e, ipMatch(offIPDaddr, expr.CmpOpEq, cidr)...)
	return append(e, &expr.Counter{}, &expr.Masq{})
}

// keepExprs: ip daddr CIDR counter return.
func keepExprs(cidr netip.Prefix) []expr.Any {
	e := ipMatch(offIPDaddr, expr.CmpOpEq, cidr)
	return append(e, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictReturn})
}

// masqueradeExprs: ip saddr SLICE counter masquerade.
func masqueradeExprs(slice netip.Prefix) []expr.Any {
	e := ipMatch(offIPSaddr, expr.CmpOpEq, slice)
	return append(e, &expr.Counter{}, &expr.Masq{})
}

// withinExprs: ip saddr CIDR ip daddr CIDR counter accept.
func withinExprs(cidr netip.Prefix) []expr.Any {
	e := ipMatch(offIPSaddr, expr.CmpOpEq, cidr)
	e = append(e, ipMatch(offIPDaddr, expr.CmpOpEq, cidr)...)
	return append(e, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictAccept})
}

// dropExprs: ip saddr|daddr CIDR counter drop.
func dropExprs(offset uint32, cidr netip.Prefix) []expr.Any {
	e := ipMatch(offset, expr.CmpOpEq, cidr)
	return append(e, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictDrop})
}

// leaveExprs: ip saddr CIDR counter goto between.
func leaveExprs(cidr netip.Prefix) []expr.Any {
	e := ipMatch(offIPSaddr, expr.CmpOpEq, cidr)
	return append(e, &expr.Counter{}, &expr.Verdict{Kind: expr.VerdictGoto, Chain: chainBetween})
}

func protoNum(proto string) byte {
	if proto == ProtoUDP {
		return unix.IPPROTO_UDP
	}
	return unix.IPPROTO_TCP
}

// publishExprs: [ip daddr A] meta l4proto P th dport N counter dnat to IP:PORT.
func publishExprs(p Publish) []expr.Any {
	var e []expr.Any
	if p.HostAddr.IsValid() {
		e = ipMatch(offIPDaddr, expr.CmpOpEq, netip.PrefixFrom(p.HostAddr, 32))
	}
	ip := p.ContainerIP.As4()
	return append(e,
		&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{protoNum(p.Proto)}},
		&expr.Payload{DestRegister: 1, Base: expr.PayloadBaseTransportHeader, Offset: offDport, Len: 2},
		&expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: binaryutil.BigEndian.PutUint16(p.HostPort)},
		&expr.Counter{},
		&expr.Immediate{Register: 1, Data: ip[:]},
		&expr.Immediate{Register: 2, Data: binaryutil.BigEndian.PutUint16(p.ContainerPort)},
		// The kernel reports MAX registers equal to MIN and the
		// proto-specified flag; spelling them out keeps the read-back
		// comparison exact.
		&expr.NAT{
			Type:        expr.NATTypeDestNAT,
			Family:      unix.NFPROTO_IPV4,
			RegAddrMin:  1,
			RegAddrMax:  1,
			RegProtoMin: 2,
			RegProtoMax: 2,
			Specified:   true,
		},
	)
}

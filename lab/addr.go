package lab

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"regexp"
)

// Addressing of the underlay: host number i (1-based) gets the prefix's base address + hostOffset
// + i (h1 = 172.30.0.11 in 172.30.0.0/24); the external node gets the last usable address
// (172.30.0.254).
const hostOffset = 10

var (
	labNameRE = regexp.MustCompile(`^[a-z0-9]{1,12}$`)
	nsNameRE  = regexp.MustCompile(`^[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}$`)
)

// NetNSPrefix is the start of the name of every network namespace of the lab called name:
// "ovsfab-<name>-". Lab names hold no "-", so one lab's prefix never matches another's names.
func NetNSPrefix(name string) string { return "ovsfab-" + name + "-" }

// checkName validates a lab name.
func checkName(name string) error {
	if !labNameRE.MatchString(name) {
		return fmt.Errorf("lab name %q: want 1-12 characters a-z, 0-9", name)
	}
	return nil
}

// randomName is a fresh lab name: 6 hex digits.
func randomName() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// addOffset returns a + n (wrapping is the caller's concern: it checks containment).
func addOffset(a netip.Addr, n uint64) netip.Addr {
	b := a.As16()
	for i := 15; i >= 0 && n > 0; i-- {
		s := uint64(b[i]) + n&0xff
		b[i] = byte(s)
		n = n>>8 + s>>8
	}
	out := netip.AddrFrom16(b)
	if a.Is4() {
		return out.Unmap()
	}
	return out
}

// lastAddr is the highest address of p (the broadcast address for IPv4).
func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As16()
	bits := p.Bits()
	if p.Addr().Is4() {
		bits += 96
	}
	for i := bits; i < 128; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	out := netip.AddrFrom16(b)
	if p.Addr().Is4() {
		return out.Unmap()
	}
	return out
}

// externalAddr is the external node's address: the last usable one of the underlay.
func externalAddr(p netip.Prefix) netip.Prefix {
	last := lastAddr(p)
	return netip.PrefixFrom(last.Prev(), p.Bits())
}

// hostAddr is host number i's (1-based) underlay address with the underlay's prefix length.
func hostAddr(p netip.Prefix, i int) (netip.Prefix, error) {
	if i < 1 {
		return netip.Prefix{}, fmt.Errorf("host number %d: want >= 1", i)
	}
	p = p.Masked()
	a := addOffset(p.Addr(), uint64(hostOffset+i))
	if !p.Contains(a) || a.Compare(externalAddr(p).Addr()) >= 0 {
		return netip.Prefix{}, fmt.Errorf("underlay %s has no room for host %d", p, i)
	}
	return netip.PrefixFrom(a, p.Bits()), nil
}

// bridgeMAC is the fixed MAC of a host's br-phy: locally administered, 02:fa and the last four
// bytes of the host's underlay address (unique within a lab).
func bridgeMAC(ip netip.Addr) string {
	b := ip.As16()
	return fmt.Sprintf("02:fa:%02x:%02x:%02x:%02x", b[12], b[13], b[14], b[15])
}

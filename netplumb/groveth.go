package netplumb

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
)

// GROVeth is a veth pair through which the switch hands the host kernel packets to route,
// with GRO on the kernel's end: the kernel coalesces what the switch sends into GSO packets
// before it routes them (docs/encryption.md: wireguard-go encrypts GSO packets several times
// cheaper than single ones, and the gateway, an OVS internal port, has no GRO).
type GROVeth struct {
	// KernelDev is the kernel's end (no address; GRO on, TX checksum offload off), SwitchDev
	// the end that is a port of the switch; both at most 15 bytes. Empty KernelDev: HostNet.Set
	// leaves any pair alone.
	KernelDev, SwitchDev string
	// Enabled asks for the pair; false removes a pair of these names (a veth only).
	Enabled bool
	// MAC is the kernel end's address: the destination the switch's flows write.
	MAC net.HardwareAddr
	// MTU of both ends: above the fabric MTU, so that an oversized packet reaches the kernel,
	// which answers it with an ICMP "fragmentation needed" (a veth drops what exceeds its
	// MTU silently).
	MTU int
	// FlushTimeout is the kernel end's gro_flush_timeout: how long GRO may hold packets
	// across NAPI polls. Without it nothing coalesces: the switch sends packet by packet and
	// every packet gets a NAPI poll, and the GRO flush, of its own.
	FlushTimeout time.Duration
}

// GROVethUnusable says why the host cannot use a GRO veth pair ("" when it can): the kernel
// end receives packets from addresses that are not its own on a device without an address,
// which only a reverse-path filter that is off lets through, and the device's rp_filter
// counts only when net.ipv4.conf.all.rp_filter is 0 (the kernel uses the higher of the two;
// systemd's defaults leave "all" at 0).
func GROVethUnusable() (string, error) {
	b, err := os.ReadFile("/proc/sys/net/ipv4/conf/all/rp_filter")
	if err != nil {
		return "", fmt.Errorf("read rp_filter: %w", err)
	}
	if v := string(bytes.TrimSpace(b)); v != "0" {
		return "net.ipv4.conf.all.rp_filter is " + v + ", not 0", nil
	}
	return "", nil
}

// EnsureGROVeth makes the pair g describes exist and be configured in the current netns, or,
// with Enabled false, be gone. It changes only what differs and reports whether it changed
// anything. A non-veth device of either name is refused (ErrExists). Check GROVethUnusable
// first: the pair carries nothing where it says so.
func EnsureGROVeth(g GROVeth) (changed bool, err error) {
	for _, n := range []string{g.KernelDev, g.SwitchDev} {
		if err := checkIfName("GRO veth", n); err != nil {
			return false, err
		}
	}
	h, err := hostHandle()
	if err != nil {
		return false, err
	}
	defer h.Close()
	kl, kerr := lookupVeth(h, g.KernelDev)
	sl, serr := lookupVeth(h, g.SwitchDev)
	if !g.Enabled {
		// Whatever else has these names is not ours to remove, nor a reason to fail.
		for _, l := range []netlink.Link{kl, sl} {
			if l == nil {
				continue
			}
			if err := h.LinkDel(l); err != nil && !errIsNotExist(err) {
				return changed, fmt.Errorf("delete veth %s: %w", l.Attrs().Name, err)
			}
			changed = true
			break // one end takes the other with it
		}
		return changed, nil
	}
	if err := errors.Join(kerr, serr); err != nil {
		return false, err
	}
	if err := checkMTU(g.MTU, false); err != nil {
		return false, fmt.Errorf("GRO veth %s: %w", g.KernelDev, err)
	}
	if len(g.MAC) != 6 || g.MAC[0]&1 != 0 {
		return false, invalidf("GRO veth %s: MAC %s is not a unicast Ethernet address", g.KernelDev, g.MAC)
	}
	if kl != nil && (sl == nil || kl.Attrs().ParentIndex != sl.Attrs().Index) {
		// Half a pair, or two ends of different pairs: start again.
		for _, l := range []netlink.Link{kl, sl} {
			if l != nil {
				if err := h.LinkDel(l); err != nil && !errIsNotExist(err) {
					return false, fmt.Errorf("delete veth %s: %w", l.Attrs().Name, err)
				}
			}
		}
		kl, sl = nil, nil
	} else if kl == nil && sl != nil {
		if err := h.LinkDel(sl); err != nil && !errIsNotExist(err) {
			return false, fmt.Errorf("delete veth %s: %w", g.SwitchDev, err)
		}
	}
	if kl == nil {
		la := netlink.NewLinkAttrs()
		la.Name, la.MTU, la.HardwareAddr = g.KernelDev, g.MTU, g.MAC
		v := netlink.NewVeth(la)
		v.PeerName, v.PeerMTU = g.SwitchDev, uint32(g.MTU)
		if err := h.LinkAdd(v); err != nil {
			return false, fmt.Errorf("create veth %s (peer %s): %w", g.KernelDev, g.SwitchDev, err)
		}
		changed = true
		disableIPv6(g.KernelDev)
		disableIPv6(g.SwitchDev)
		if kl, err = h.LinkByName(g.KernelDev); err != nil {
			return changed, linkErr(g.KernelDev, err)
		}
		if sl, err = h.LinkByName(g.SwitchDev); err != nil {
			return changed, linkErr(g.SwitchDev, err)
		}
	}
	if !bytes.Equal(kl.Attrs().HardwareAddr, g.MAC) {
		if err := h.LinkSetHardwareAddr(kl, g.MAC); err != nil {
			return changed, fmt.Errorf("set MAC of %s: %w", g.KernelDev, err)
		}
		changed = true
	}
	for _, l := range []netlink.Link{kl, sl} {
		if l.Attrs().MTU != g.MTU {
			if err := h.LinkSetMTU(l, g.MTU); err != nil {
				return changed, fmt.Errorf("set MTU of %s: %w", l.Attrs().Name, err)
			}
			changed = true
		}
	}
	// The kernel end forwards what it receives: from container addresses of the gateway's
	// subnets, on a device without an address, which any reverse-path filter refuses (strict:
	// the source is the gateway's; loose: an address-less device fails it too).
	if err := setSysctl("/proc/sys/net/ipv4/conf/"+g.KernelDev+"/rp_filter", "0"); err != nil {
		return changed, err
	}
	if err := setSysctl("/proc/sys/net/ipv4/conf/"+g.KernelDev+"/forwarding", "1"); err != nil {
		return changed, err
	}
	for _, n := range []string{g.KernelDev, g.SwitchDev} {
		if err := TxChecksumOff(n); err != nil {
			return changed, err
		}
	}
	// GRO on before the kernel end comes up: on a veth it is what turns NAPI on.
	if c, err := setFeature(g.KernelDev, "rx-gro", true); err != nil {
		return changed, err
	} else if c {
		changed = true
	}
	for _, l := range []netlink.Link{sl, kl} {
		if l.Attrs().Flags&net.FlagUp == 0 {
			if err := h.LinkSetUp(l); err != nil {
				return changed, fmt.Errorf("set %s up: %w", l.Attrs().Name, err)
			}
			changed = true
		}
	}
	if c, err := setGROFlushTimeout(g.KernelDev, kl.Attrs().Index, g.FlushTimeout); err != nil {
		return changed, err
	} else if c {
		changed = true
	}
	return changed, nil
}

// lookupVeth is the veth dev in h, nil when there is none; another kind of device is an
// error matching ErrExists.
func lookupVeth(h *netlink.Handle, dev string) (netlink.Link, error) {
	l, err := h.LinkByName(dev)
	if err != nil {
		if isLinkNotFound(err) {
			return nil, nil
		}
		return nil, linkErr(dev, err)
	}
	if l.Type() != "veth" {
		return nil, existsf("interface %s exists and is a %s, not a veth", dev, l.Type())
	}
	return l, nil
}

// setFeature sets one ethtool feature of dev and reports whether it changed it.
func setFeature(dev, feature string, on bool) (bool, error) {
	e, err := ethtool.NewEthtool()
	if err != nil {
		return false, fmt.Errorf("ethtool socket: %w", err)
	}
	defer e.Close()
	feats, err := e.Features(dev)
	if err != nil {
		return false, fmt.Errorf("ethtool features of %s: %w", dev, err)
	}
	if cur, ok := feats[feature]; !ok {
		return false, fmt.Errorf("%s has no ethtool feature %s", dev, feature)
	} else if cur == on {
		return false, nil
	}
	if err := e.Change(dev, map[string]bool{feature: on}); err != nil {
		return false, fmt.Errorf("ethtool -K %s %s %v: %w", dev, feature, on, err)
	}
	return true, nil
}

// setGROFlushTimeout writes dev's gro_flush_timeout in sysfs. sysfs shows the devices of the
// network namespace it was mounted in, which need not be the current one (a process that
// entered a namespace without remounting /sys): the device's ifindex there must be index.
func setGROFlushTimeout(dev string, index int, d time.Duration) (bool, error) {
	dir := "/sys/class/net/" + dev
	b, err := os.ReadFile(dir + "/ifindex")
	if err != nil {
		return false, fmt.Errorf("gro_flush_timeout of %s: %w", dev, err)
	}
	if i, err := strconv.Atoi(string(bytes.TrimSpace(b))); err != nil || i != index {
		return false, fmt.Errorf("gro_flush_timeout of %s: /sys shows another namespace's %s (ifindex %q, want %d): mount sysfs in this network namespace", dev, dev, bytes.TrimSpace(b), index)
	}
	want := strconv.FormatInt(d.Nanoseconds(), 10)
	cur, err := os.ReadFile(dir + "/gro_flush_timeout")
	if err != nil {
		return false, fmt.Errorf("gro_flush_timeout of %s: %w", dev, err)
	}
	if string(bytes.TrimSpace(cur)) == want {
		return false, nil
	}
	if err := os.WriteFile(dir+"/gro_flush_timeout", []byte(want+"\n"), 0o644); err != nil {
		return false, fmt.Errorf("gro_flush_timeout of %s: %w", dev, err)
	}
	return true, nil
}

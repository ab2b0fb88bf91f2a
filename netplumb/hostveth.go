package netplumb

import (
	"errors"
	"fmt"
	"net"

	"golang.org/x/sys/unix"

	"github.com/vishvananda/netlink"

	"github.com/ovsfabric/ovsfabric/fabric"
)

// HostVethPair describes a veth pair whose two ends are created in the current netns: the
// host end stays (an OVS port), the other is handed to a container runtime that moves it
// into the container itself and configures its address there (Docker's remote network
// drivers work so).
type HostVethPair struct {
	// HostIf is the host end's name, PeerIf the other end's until the runtime moves and
	// renames it; both at most 15 bytes.
	HostIf, PeerIf string
	// MAC is the peer's MAC (a random locally administered one if nil).
	MAC net.HardwareAddr
	// MTU of both ends.
	MTU int
	// Datapath decides the userspace datapath's steps (see Attachment.Datapath).
	Datapath fabric.Datapath
}

// HostVeth creates the pair p describes: both ends with the MTU, the peer with its MAC and
// down (the runtime brings it up where it goes), the host end up with IPv6 off, arp_ignore
// and TX checksum offload off on both ends as the datapath asks (ethtool settings travel
// with the peer into the container). All or nothing: on failure nothing is left. A name in
// use fails with an error matching ErrExists.
func HostVeth(p HostVethPair) (AttachResult, error) {
	if err := checkIfName("host interface", p.HostIf); err != nil {
		return AttachResult{}, err
	}
	if err := checkIfName("peer interface", p.PeerIf); err != nil {
		return AttachResult{}, err
	}
	if err := checkMTU(p.MTU, false); err != nil {
		return AttachResult{}, err
	}
	if _, err := fabric.ParseDatapath(string(p.Datapath)); err != nil {
		return AttachResult{}, invalidf("bridge datapath: %v", err)
	}
	if p.MAC == nil {
		mac, err := randomMAC()
		if err != nil {
			return AttachResult{}, err
		}
		p.MAC = mac
	} else if len(p.MAC) != 6 || p.MAC[0]&1 != 0 || [6]byte(p.MAC) == [6]byte{} {
		return AttachResult{}, invalidf("MAC %s is not a unicast Ethernet address", p.MAC)
	}
	h, err := hostHandle()
	if err != nil {
		return AttachResult{}, err
	}
	defer h.Close()
	for _, n := range []string{p.HostIf, p.PeerIf} {
		if err := checkFree(h, n, ""); err != nil {
			return AttachResult{}, err
		}
	}
	la := netlink.NewLinkAttrs()
	la.Name = p.HostIf
	la.MTU = p.MTU
	veth := netlink.NewVeth(la)
	veth.PeerName = p.PeerIf
	veth.PeerHardwareAddr = p.MAC
	veth.PeerMTU = uint32(p.MTU)
	if err := h.LinkAdd(veth); err != nil {
		if errors.Is(err, unix.EEXIST) {
			return AttachResult{}, existsf("veth %s or %s already exists", p.HostIf, p.PeerIf)
		}
		return AttachResult{}, fmt.Errorf("create veth %s (peer %s): %w", p.HostIf, p.PeerIf, err)
	}
	res, err := configureHostVeth(h, p)
	if err != nil {
		if l, lerr := h.LinkByName(p.HostIf); lerr == nil && l.Type() == "veth" {
			if derr := h.LinkDel(l); derr != nil && !errIsNotExist(derr) {
				err = errors.Join(err, fmt.Errorf("roll back veth %s: %w", p.HostIf, derr))
			}
		}
		return AttachResult{}, err
	}
	return res, nil
}

func configureHostVeth(h *netlink.Handle, p HostVethPair) (AttachResult, error) {
	hl, err := h.LinkByName(p.HostIf)
	if err != nil {
		return AttachResult{}, linkErr(p.HostIf, err)
	}
	disableIPv6(p.HostIf)
	if p.Datapath.VethARPIgnore() {
		if err := setSysctl("/proc/sys/net/ipv4/conf/"+p.HostIf+"/arp_ignore", "1"); err != nil {
			return AttachResult{}, err
		}
	}
	if p.Datapath.VethTxChecksumOff() {
		for _, n := range []string{p.HostIf, p.PeerIf} {
			if err := TxChecksumOff(n); err != nil {
				return AttachResult{}, err
			}
		}
	}
	if err := h.LinkSetUp(hl); err != nil {
		return AttachResult{}, fmt.Errorf("set %s up: %w", p.HostIf, err)
	}
	pl, err := h.LinkByName(p.PeerIf)
	if err != nil {
		return AttachResult{}, linkErr(p.PeerIf, err)
	}
	return AttachResult{MAC: pl.Attrs().HardwareAddr, HostIf: p.HostIf, HostIndex: hl.Attrs().Index}, nil
}

// LinkExists reports whether dev exists in the current netns.
func LinkExists(dev string) (bool, error) {
	h, err := hostHandle()
	if err != nil {
		return false, err
	}
	defer h.Close()
	if _, err := h.LinkByName(dev); err != nil {
		if isLinkNotFound(err) {
			return false, nil
		}
		return false, linkErr(dev, err)
	}
	return true, nil
}

package netplumb

import (
	"fmt"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/safchain/ethtool"
)

// txChecksumFeatures are the ethtool features that `ethtool -K DEV tx off` turns off (the
// kernel's NETIF_F_CSUM_MASK plus the SCTP and FCoE CRC offloads). A device knows only some
// of them; a veth has tx-checksum-ip-generic and tx-checksum-sctp.
var txChecksumFeatures = []string{
	"tx-checksum-ipv4",
	"tx-checksum-ip-generic",
	"tx-checksum-ipv6",
	"tx-checksum-fcoe-crc",
	"tx-checksum-sctp",
}

// TxChecksumOff turns TX checksum offload off on dev in the current netns, like
// `ethtool -K DEV tx off`, and verifies the result. The userspace OVS datapath needs it on a
// container's veth: with offload on, packets leave the veth with partial checksums that the
// userspace datapath never completes, and TCP fails. The kernel also drops the segmentation
// offloads that depend on checksumming (TSO); that is expected. It is a no-op when the
// features are already off.
//
// It uses ethtool's "tx" ioctls (ETHTOOL_GTXCSUM, ETHTOOL_STXCSUM), which read and set
// exactly txChecksumFeatures (the kernel's NETIF_F_CSUM_MASK and the SCTP and FCoE CRC
// offloads) in one call each: asking for the features by name first fetches the names of
// every feature the device has, which made this most of a veth's set-up time.
func TxChecksumOff(dev string) error {
	if err := checkIfName("link", dev); err != nil {
		return err
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("ethtool socket: %w", err)
	}
	defer unix.Close(fd)
	on, err := ethtoolValue(fd, dev, ethtoolGTXCSUM, 0)
	if err != nil {
		return fmt.Errorf("ethtool -k %s: %w", dev, err)
	}
	if on == 0 {
		return nil
	}
	if _, err := ethtoolValue(fd, dev, ethtoolSTXCSUM, 0); err != nil {
		return fmt.Errorf("ethtool -K %s tx off: %w", dev, err)
	}
	if on, err = ethtoolValue(fd, dev, ethtoolGTXCSUM, 0); err != nil {
		return fmt.Errorf("ethtool -k %s: %w", dev, err)
	}
	if on != 0 {
		return fmt.Errorf("ethtool -K %s tx off: TX checksum offload is still on (fixed by the driver?)", dev)
	}
	return nil
}

// The ethtool commands of struct ethtool_value that get and set TX checksum offload
// (linux/ethtool.h).
const (
	ethtoolGTXCSUM = 0x16
	ethtoolSTXCSUM = 0x17
)

// ethtoolValue runs an ethtool command taking a struct ethtool_value on dev through socket
// fd and returns the value the kernel left in it.
func ethtoolValue(fd int, dev string, cmd, data uint32) (uint32, error) {
	v := struct{ cmd, data uint32 }{cmd, data}
	var ifr struct {
		name [unix.IFNAMSIZ]byte
		data unsafe.Pointer
		_    [16]byte // the rest of struct ifreq's union
	}
	copy(ifr.name[:], dev)
	ifr.data = unsafe.Pointer(&v)
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.SIOCETHTOOL, uintptr(unsafe.Pointer(&ifr))); errno != 0 {
		return 0, errno
	}
	runtime.KeepAlive(&v)
	return v.data, nil
}

// txChecksumOn reports whether any TX checksum offload is on for dev in the current netns.
func txChecksumOn(dev string) (bool, error) {
	e, err := ethtool.NewEthtool()
	if err != nil {
		return false, fmt.Errorf("ethtool socket: %w", err)
	}
	defer e.Close()
	feats, err := e.Features(dev)
	if err != nil {
		return false, fmt.Errorf("ethtool features of %s: %w", dev, err)
	}
	for _, f := range txChecksumFeatures {
		if feats[f] {
			return true, nil
		}
	}
	return false, nil
}

package netplumb

import (
	"fmt"

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
func TxChecksumOff(dev string) error {
	if err := checkIfName("link", dev); err != nil {
		return err
	}
	e, err := ethtool.NewEthtool()
	if err != nil {
		return fmt.Errorf("ethtool socket: %w", err)
	}
	defer e.Close()
	feats, err := e.Features(dev)
	if err != nil {
		return fmt.Errorf("ethtool features of %s: %w", dev, err)
	}
	change := map[string]bool{}
	for _, f := range txChecksumFeatures {
		if on, ok := feats[f]; ok && on {
			change[f] = false
		}
	}
	if len(change) == 0 {
		return nil
	}
	if err := e.Change(dev, change); err != nil {
		return fmt.Errorf("ethtool -K %s tx off: %w", dev, err)
	}
	feats, err = e.Features(dev)
	if err != nil {
		return fmt.Errorf("ethtool features of %s: %w", dev, err)
	}
	for f := range change {
		if feats[f] {
			return fmt.Errorf("ethtool -K %s tx off: %s is still on (fixed by the driver?)", dev, f)
		}
	}
	return nil
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

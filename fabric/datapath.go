package fabric

import "fmt"

// Datapath is the Open vSwitch datapath a host's bridge uses. It decides the steps only one of
// them needs; every such step asks one of its methods, so that nothing else compares
// datapath names.
type Datapath string

const (
	// DatapathSystem is the kernel datapath (the openvswitch module): real hosts.
	DatapathSystem Datapath = "system"
	// DatapathNetdev is the userspace datapath inside ovs-vswitchd: hosts (and containers,
	// like this project's lab) without the openvswitch module.
	DatapathNetdev Datapath = "netdev"
)

// ParseDatapath validates s as a datapath type ("system" or "netdev"; "auto" is resolved by
// fabricd before it gets here).
func ParseDatapath(s string) (Datapath, error) {
	switch d := Datapath(s); d {
	case DatapathSystem, DatapathNetdev:
		return d, nil
	}
	return "", fmt.Errorf("unknown datapath %q (want system or netdev)", s)
}

// String is the datapath's name as OVSDB's Bridge.datapath_type spells it.
func (d Datapath) String() string { return string(d) }

// VethTxChecksumOff reports whether a container's veth needs TX checksum offload off on both
// ends. The userspace datapath reads frames through a packet socket and forwards a
// checksum left "partial" for the hardware unfinished, so TCP fails; the kernel datapath
// hands the skb on with its offload state, like a Linux bridge.
func (d Datapath) VethTxChecksumOff() bool { return d == DatapathNetdev }

// VethARPIgnore reports whether the host end of a container's veth needs arp_ignore. The
// userspace datapath reads frames through a packet socket while the host's IP stack still
// receives them too, so the host would answer ARP for its own addresses on that port; the
// kernel datapath's rx handler takes every frame before the IP stack sees it.
func (d Datapath) VethARPIgnore() bool { return d == DatapathNetdev }

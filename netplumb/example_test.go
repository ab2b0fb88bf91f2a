package netplumb_test

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/netplumb"
)

// The gateway port and the routes of an L2-mode host whose subnet is 10.244.3.0/24, with two
// peers. Every call changes only what differs, so it is safe to repeat on every resync.
func Example_gateway() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := netplumb.WaitLink(ctx, "fabric0"); err != nil { // OVS creates it asynchronously
		panic(err)
	}
	if _, err := netplumb.SetLinkUp("fabric0", 1450); err != nil {
		panic(err)
	}
	cluster := netip.MustParsePrefix("10.244.0.0/16")
	if _, err := netplumb.ReconcileAddrs("fabric0", []netip.Prefix{netip.MustParsePrefix("10.244.3.1/24")}, cluster); err != nil {
		panic(err)
	}
	if err := netplumb.SetForwarding(true); err != nil {
		panic(err)
	}
	var routes []netplumb.Route
	for _, m := range []byte{5, 7} {
		routes = append(routes, netplumb.Route{
			Dst:     netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 244, m, 0}), 24),
			Gateway: netip.AddrFrom4([4]byte{10, 244, m, 1}),
			Dev:     "fabric0", OnLink: true,
		})
	}
	ch, err := netplumb.ReconcileRoutes(routes) // `ip route show proto 147` lists them
	if err != nil {
		panic(err)
	}
	fmt.Println(len(ch.Added), len(ch.Replaced), len(ch.Removed))
}

// Attaching a container by its netns path; the caller then adds HostIf to br-int.
func ExampleAttach() {
	res, err := netplumb.Attach(netplumb.Attachment{
		NetNS:    "/proc/12345/ns/net",
		HostIf:   "vf3f9a1c0b2e",
		Addr:     netip.MustParsePrefix("10.244.3.5/24"),
		Gateway:  netip.MustParseAddr("10.244.3.1"),
		MTU:      1450,
		Datapath: fabric.DatapathNetdev, // userspace: TX checksum offload off, arp_ignore
	})
	if netplumb.IsInvalid(err) {
		fmt.Println("refused, nothing created:", err)
		return
	}
	if err != nil {
		fmt.Println("failed and rolled back:", err)
		return
	}
	fmt.Println(res.HostIf, res.MAC)
}

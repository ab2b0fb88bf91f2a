package controller

import (
	"context"

	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/ovsdb"
)

// The userspace datapath decapsulates tunnel packets only when a tunnel port of their kind
// exists: it decides so when it translates a flow (ovs-vswitchd's tnl-ports map), and a packet
// that arrives while there is none is handed to the host's kernel, which drops it, by a
// datapath flow that keeps doing so while packets keep coming. When the first tunnel port
// appears, ovs-vswitchd should revalidate that flow into a decapsulation; in the lab it
// sometimes did not (L2 pipeline, switching back from WireGuard: pings from a peer kept
// reaching the kernel for 30 s, the datapath flow `udp(dst=4789) actions:<br-phy>` never
// turned into `tnl_pop`; a purge fixes it). So when a reconcile adds the first tunnel port,
// fabricd has every datapath flow dropped once, and the next packets are translated with
// the port there. Only then: a purge costs every flow an upcall.

// datapathPurger is implemented by a flows.Switch that can make ovs-vswitchd drop its
// datapath flows (flows.OFCtl).
type datapathPurger interface {
	PurgeDatapathFlows(ctx context.Context) error
}

// firstTunnel reports whether a reconcile that wanted tunnels and returned res went from no
// tunnel port at all to some.
func firstTunnel(wanted int, res ovsdb.Result) bool {
	before := wanted - len(res.Added) + len(res.Removed)
	return len(res.Added) > 0 && before == 0
}

// purgeAfterFirstTunnel drops the userspace datapath's flows when the reconcile that returned
// res added the first tunnel port (see above). A failure is logged, not returned: the fabric
// works without it except in the rare case above.
func (c *Controller) purgeAfterFirstTunnel(ctx context.Context, dp fabric.Datapath, wanted int, res ovsdb.Result) {
	if dp != fabric.DatapathNetdev || !firstTunnel(wanted, res) {
		return
	}
	p, ok := c.of.(datapathPurger)
	if !ok {
		return
	}
	if err := p.PurgeDatapathFlows(ctx); err != nil {
		c.log.Warn("first tunnel port: could not purge the datapath's flows; a peer's packets that arrived before it may keep missing it", "err", err)
		return
	}
	c.log.Info("first tunnel port: datapath flows purged, so packets are decapsulated from now on", "ports", res.Added)
}

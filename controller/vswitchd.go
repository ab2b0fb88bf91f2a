package controller

import (
	"context"
	"time"
)

// A restarted ovs-vswitchd comes back with an empty flow table (the bridge falls back to
// NORMAL), but OVSDB does not say so: the database is ovsdb-server's, and a new ovs-vswitchd
// rewrites the columns fabricd watches with the values they already hold (ofport, the pinned
// gateway MAC, cur_cfg). Measured with ovsdb-client monitor in the lab: a restart changes
// none of them on a bridge without tunnel ports; with tunnel ports only their mac_in_use
// (random per start) changes. Before, flows came back only when such an incidental update, a
// gossip event, an operator's ovs-vsctl or --resync woke the loop, and a reconcile that ran
// while no ovs-vswitchd listened (seen: "br-int is not a bridge or a socket") waited for the
// next one. fabricd therefore watches the bridge's OpenFlow management socket, which every
// ovs-vswitchd creates anew, and retries a failed reconcile soon (retryMin, doubling up to
// --resync) rather than only at the next event.

// ServerIdentity is implemented by a flows.Switch that can tell which ovs-vswitchd serves
// the bridge (flows.OFCtl): "" while none does, another value after every restart.
type ServerIdentity interface {
	ServerID() string
}

// vswitchdPoll is how often the management socket is looked at (one stat).
const vswitchdPoll = 100 * time.Millisecond

// retryMin is the first delay before a failed reconcile is retried.
const retryMin = 100 * time.Millisecond

// watchVSwitchd kicks a full reconcile, without the attach fast path's cache, whenever a new
// ovs-vswitchd appears on the bridge.
func (c *Controller) watchVSwitchd(ctx context.Context, w ServerIdentity) {
	last := w.ServerID()
	t := time.NewTicker(vswitchdPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		id := w.ServerID()
		if id == last {
			continue
		}
		last = id
		// The flows went with the old ovs-vswitchd: what flowsApplied says is on the bridge
		// no longer is, so an attach must not add to it before the loop has reprogrammed.
		c.pipeMu.Lock()
		c.flowsApplied = nil
		c.pipeMu.Unlock()
		if id == "" {
			c.log.Warn("ovs-vswitchd is gone from the bridge; flows are reprogrammed when it is back", "bridge", c.s.Bridge)
			continue
		}
		c.log.Info("new ovs-vswitchd on the bridge; reprogramming its flows", "bridge", c.s.Bridge)
		c.Kick()
	}
}

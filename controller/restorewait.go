package controller

import (
	"context"

	"github.com/ovsfabric/ovsfabric/ovsdb"
)

// A planned restart of ovs-vswitchd (`systemctl restart openvswitch-switch`, an OVS upgrade)
// is prepared with `fabricctl ovs prepare-restart`: it sets other_config:flow-restore-wait,
// which makes the next ovs-vswitchd leave the kernel datapath's flows in place and add no
// default NORMAL flow, and marks the flag as fabricd's with the identity of the ovs-vswitchd
// running then. The new ovs-vswitchd is noticed like any restart (vswitchd.go); the sync it
// kicks programs the whole pipeline in one bundle, and only then removes the flag (and the
// mark), as Antrea's agent does (FlowRestoreComplete, after its flows are installed) and as
// ovs-ctl does after ovs-save's flows are back. With the kernel datapath packets keep
// flowing through the old datapath flows the whole time; with the userspace datapath the
// datapath went with the process, so the outage is the restart itself.
//
// A flag without fabricd's mark was set by someone else (ovs-ctl's restart or
// force-reload-kmod, which restore other bridges' saved flows before clearing it, or an
// operator by hand): fabricd programs its flows but leaves the flag to them, since clearing
// it early would let ovs-vswitchd flush flows they have not restored yet.

// restoreWaitSwitch is implemented by a Switch that can read and clear flow-restore-wait
// (ovsdb.Client).
type restoreWaitSwitch interface {
	FlowRestoreWait(ctx context.Context) (ovsdb.RestoreWait, error)
	ClearRestoreWait(ctx context.Context, mark string) error
}

// serverID is the identity of the ovs-vswitchd serving the bridge, "" when unknown.
func (c *Controller) serverID() string {
	if w, ok := c.of.(ServerIdentity); ok {
		return w.ServerID()
	}
	return ""
}

// finishRestoreWait removes a flow-restore-wait fabricctl set once the whole pipeline is on a
// new ovs-vswitchd: served is the identity of the ovs-vswitchd the pipeline was just
// programmed into (read before programming). It is called after every successful flow
// reconcile and costs one read of the cache.
func (c *Controller) finishRestoreWait(ctx context.Context, served string) {
	rs, ok := c.sw.(restoreWaitSwitch)
	if !ok {
		return
	}
	rw, err := rs.FlowRestoreWait(ctx)
	if err != nil || !rw.Set {
		c.restoreWaitNoted = ""
		return
	}
	if rw.Mark == "" {
		if c.restoreWaitNoted != served {
			c.restoreWaitNoted = served
			c.log.Info("flow-restore-wait is set, not by fabricctl (ovs-ctl or an operator): fabricd's flows are in; leaving the flag to whoever set it", "bridge", c.s.Bridge)
		}
		return
	}
	// Prepared, but the ovs-vswitchd that was running then still is (or the identity is
	// unknown, or changed while the flows were programmed): not yet.
	if served == "" || served == rw.Mark || served != c.serverID() {
		return
	}
	if err := rs.ClearRestoreWait(ctx, rw.Mark); err != nil {
		c.log.Error("flows reprogrammed after the planned restart, but clearing flow-restore-wait failed; retried at the next sync", "err", err)
		return
	}
	// Read back, as Antrea does (its issue #1600): the removal is conditional on the mark, so
	// a flag someone set again meanwhile stays, and is said so.
	if rw, err := rs.FlowRestoreWait(ctx); err == nil && rw.Set {
		c.log.Warn("flows reprogrammed on the new ovs-vswitchd, but flow-restore-wait is set again (another prepare-restart, ovs-ctl or an operator); leaving it", "bridge", c.s.Bridge, "mark", rw.Mark)
		return
	}
	c.log.Info("flows reprogrammed on the new ovs-vswitchd; flow-restore-wait cleared", "bridge", c.s.Bridge)
}

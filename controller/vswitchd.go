package controller

import (
	"context"
	"time"

	"github.com/fsnotify/fsnotify"
)

// A restarted ovs-vswitchd comes back with an empty flow table (the bridge falls back to
// NORMAL), but OVSDB does not say so: the database is ovsdb-server's, and a new ovs-vswitchd
// rewrites the columns fabricd watches with the values they already hold (ofport, the pinned
// gateway MAC, cur_cfg). Measured with ovsdb-client monitor in the lab (OVS 3.1, every
// column of every table, ovs-vswitchd killed with SIGKILL and started again): on a bridge
// without tunnel ports no column changes at all, not even the internal ports' ifindex or
// statistics; with tunnel ports only their mac_in_use (random per start) changes. OVSDB
// therefore cannot tell fabricd that a new ovs-vswitchd needs its flows. What every new
// ovs-vswitchd does create is the bridge's OpenFlow management socket
// (<rundir>/<bridge>.mgmt), at the moment the bridge can take flows: fabricd watches its
// directory with inotify and reprograms as soon as a socket with a new identity appears (no
// polling; a slow look every vswitchdSafety only covers a lost inotify watch). A reconcile
// that fails meanwhile (seen: "br-int is not a bridge or a socket") is retried soon
// (retryMin, doubling up to --resync) rather than only at the next event.

// ServerIdentity is implemented by a flows.Switch that can tell which ovs-vswitchd serves
// the bridge (flows.OFCtl): "" while none does, another value after every restart.
type ServerIdentity interface {
	ServerID() string
}

// serverDir is implemented by a ServerIdentity that can say in which directory its identity
// appears (the management socket's run directory), so the loop can wait for changes there:
// "" while it does not know yet.
type serverDir interface {
	ServerDir() string
}

// vswitchdPoll is how often the management socket is looked at while its directory cannot be
// watched (not found yet, or inotify unavailable).
const vswitchdPoll = 100 * time.Millisecond

// vswitchdSafety is how often the socket is looked at while its directory is watched: only a
// safety net, inotify reports the change itself.
const vswitchdSafety = 10 * time.Second

// retryMin is the first delay before a failed reconcile is retried.
const retryMin = 100 * time.Millisecond

// watchVSwitchd kicks a full reconcile, without the attach fast path's cache, whenever a new
// ovs-vswitchd appears on the bridge. It waits for inotify events in the management socket's
// directory when w can name it, and looks every vswitchdPoll otherwise; safety is the period
// of the look while the directory is watched.
func (c *Controller) watchVSwitchd(ctx context.Context, w ServerIdentity, safety time.Duration) {
	last := w.ServerID()
	tick := time.NewTicker(vswitchdPoll)
	defer tick.Stop()
	var watcher *fsnotify.Watcher
	defer func() {
		if watcher != nil {
			_ = watcher.Close()
		}
	}()
	for {
		var events <-chan fsnotify.Event
		var errs <-chan error
		if watcher == nil {
			watcher = c.watchServerDir(w)
			if watcher != nil {
				tick.Reset(safety)
			}
		}
		if watcher != nil {
			events, errs = watcher.Events, watcher.Errors
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case _, ok := <-events:
			if !ok {
				watcher, events = nil, nil
			}
		case err, ok := <-errs:
			// An overflowed queue or a removed directory: look now, and watch afresh.
			if ok {
				c.log.Warn("watching ovs-vswitchd's run directory failed; looking periodically until it can be watched again", "err", err)
			}
			_ = watcher.Close()
			watcher = nil
			tick.Reset(vswitchdPoll)
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

// watchServerDir starts an inotify watch on the directory where w's identity appears, or
// returns nil when w cannot name it yet or the watch cannot be set up (then the caller
// looks periodically).
func (c *Controller) watchServerDir(w ServerIdentity) *fsnotify.Watcher {
	d, ok := w.(serverDir)
	if !ok {
		return nil
	}
	dir := d.ServerDir()
	if dir == "" {
		return nil
	}
	watcher, err := fsnotify.NewWatcher()
	if err != nil {
		c.log.Warn("cannot watch ovs-vswitchd's run directory; looking periodically", "dir", dir, "err", err)
		return nil
	}
	if err := watcher.Add(dir); err != nil {
		_ = watcher.Close()
		c.log.Warn("cannot watch ovs-vswitchd's run directory; looking periodically", "dir", dir, "err", err)
		return nil
	}
	return watcher
}

package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ovsfabric/ovsfabric/flows"
)

// DefaultOVSRundir is where Debian's ovs-vswitchd keeps its sockets.
const DefaultOVSRundir = "/var/run/openvswitch"

// rundirWait is how long a lookup waits for a bridge's management socket to appear:
// ovs-vswitchd creates it a moment after fabricd creates the bridge.
const rundirWait = 2 * time.Second

// rundirCandidate is a directory that may hold ovs-vswitchd's sockets and why it is tried.
type rundirCandidate struct {
	dir, from string
}

// OVSRundirCandidates lists where ovs-vswitchd's run directory (holding <bridge>.mgmt, the
// OpenFlow management socket ovs-ofctl talks to) may be, in order: --ovs-rundir when set,
// else $OVS_RUNDIR when set, else the directory of a unix: OVSDB socket, then
// /var/run/openvswitch. An explicit choice is the only candidate.
func OVSRundirCandidates(flagDir, envDir, ovsdbEndpoint string) []rundirCandidate {
	switch {
	case flagDir != "":
		return []rundirCandidate{{flagDir, "--ovs-rundir"}}
	case envDir != "":
		return []rundirCandidate{{envDir, "$OVS_RUNDIR"}}
	}
	var out []rundirCandidate
	if path, ok := strings.CutPrefix(ovsdbEndpoint, "unix:"); ok {
		if d := filepath.Dir(path); filepath.Clean(d) != DefaultOVSRundir {
			out = append(out, rundirCandidate{d, "the --ovsdb socket's directory"})
		}
	}
	return append(out, rundirCandidate{DefaultOVSRundir, "the default"})
}

// OFSwitch is a flows.Switch for one bridge that finds ovs-vswitchd's run directory the
// first time it is needed (the bridge, and so its management socket, may not exist before
// fabricd's first reconcile), then runs ovs-ofctl with OVS_RUNDIR set to it. Without it
// ovs-ofctl looks in its compiled-in default and fails with "br-int is not a bridge or a
// socket" whenever ovs-vswitchd runs elsewhere.
type OFSwitch struct {
	bridge     string
	candidates []rundirCandidate

	mu  sync.Mutex
	sw  flows.Switch
	dir string
}

// NewOFSwitch returns the switch for bridge; see OVSRundirCandidates for the arguments.
func NewOFSwitch(bridge, flagDir, envDir, ovsdbEndpoint string) *OFSwitch {
	return &OFSwitch{bridge: bridge, candidates: OVSRundirCandidates(flagDir, envDir, ovsdbEndpoint)}
}

// Rundir is the run directory in use, once found.
func (o *OFSwitch) Rundir() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.dir
}

// get finds the run directory (once) and returns the ovs-ofctl switch using it.
func (o *OFSwitch) get(ctx context.Context) (flows.Switch, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.sw != nil {
		return o.sw, nil
	}
	sock := o.bridge + ".mgmt"
	deadline := time.Now().Add(rundirWait)
	for {
		for _, c := range o.candidates {
			if fi, err := os.Stat(filepath.Join(c.dir, sock)); err == nil && fi.Mode()&os.ModeSocket != 0 {
				o.dir = c.dir
				o.sw = flows.NewOFCtl(o.bridge, flows.WithEnv("OVS_RUNDIR="+c.dir))
				return o.sw, nil
			}
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var looked []string
	for _, c := range o.candidates {
		looked = append(looked, fmt.Sprintf("%s (%s)", c.dir, c.from))
	}
	return nil, fmt.Errorf("cannot find %s, ovs-vswitchd's OpenFlow socket for bridge %s: looked in %s; set --ovs-rundir to ovs-vswitchd's run directory (where its pidfile and <bridge>.mgmt sockets are)",
		sock, o.bridge, strings.Join(looked, ", "))
}

// Flows implements flows.Switch.
func (o *OFSwitch) Flows(ctx context.Context) ([]flows.Flow, error) {
	sw, err := o.get(ctx)
	if err != nil {
		return nil, err
	}
	return sw.Flows(ctx)
}

// Apply implements flows.Switch.
func (o *OFSwitch) Apply(ctx context.Context, add, del []flows.Flow) error {
	sw, err := o.get(ctx)
	if err != nil {
		return err
	}
	return sw.Apply(ctx, add, del)
}

// ServerID implements ServerIdentity, so the loop notices a restarted ovs-vswitchd also when
// the run directory was found this way: "" until the directory is found, then the identity
// of the bridge's management socket there (flows.OFCtl.ServerID). It never waits.
func (o *OFSwitch) ServerID() string {
	o.mu.Lock()
	sw := o.sw
	o.mu.Unlock()
	if id, ok := sw.(ServerIdentity); ok {
		return id.ServerID()
	}
	return ""
}

// PurgeDatapathFlows implements datapathPurger once the run directory is found.
func (o *OFSwitch) PurgeDatapathFlows(ctx context.Context) error {
	sw, err := o.get(ctx)
	if err != nil {
		return err
	}
	if p, ok := sw.(datapathPurger); ok {
		return p.PurgeDatapathFlows(ctx)
	}
	return nil
}

// ServerDir names the directory where ServerID's socket appears once the run directory has
// been found ("" before), so the loop can watch it.
func (o *OFSwitch) ServerDir() string {
	o.mu.Lock()
	sw := o.sw
	o.mu.Unlock()
	if d, ok := sw.(serverDir); ok {
		return d.ServerDir()
	}
	return ""
}

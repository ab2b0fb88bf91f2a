package flows

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"

	"github.com/digitalocean/go-openvswitch/ovs"
)

// OFCtl is the Switch of one bridge, driven through github.com/digitalocean/go-openvswitch,
// which runs ovs-ofctl. ovs-ofctl reaches ovs-vswitchd through <OVS_RUNDIR>/<bridge>.mgmt,
// so the process (or WithEnv) must have the right OVS_RUNDIR when it is not the default.
//
// Apply sends one OpenFlow 1.4 bundle (`ovs-ofctl --no-names --bundle add-flow BRIDGE -`), so the
// bridge must allow OpenFlow 1.4 (Bridge.protocols empty, OVS's default, or listing
// OpenFlow14); Flows dumps with OVS's default protocol (OpenFlow 1.0 with Nicira extensions).
type OFCtl struct {
	bridge string
	env    []string
	run    runFunc

	// parsed are the flows of the last dump by their line without its statistics (see
	// lineKey): the next dump, mostly the same lines, parses only the others.
	parsedMu sync.Mutex
	parsed   map[string]Flow
}

// runFunc runs a command with optional stdin and returns its standard output, or an error
// that carries its standard error.
type runFunc func(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error)

// Option configures NewOFCtl.
type Option func(*OFCtl)

// WithEnv adds environment variables ("KEY=value") to every ovs-ofctl run, e.g.
// OVS_RUNDIR=/var/run/openvswitch-lab for a bridge whose ovs-vswitchd has its own run
// directory.
func WithEnv(env ...string) Option {
	return func(o *OFCtl) { o.env = append(o.env, env...) }
}

// NewOFCtl returns the Switch for bridge (e.g. "br-int"), or for a management target that
// ovs-ofctl accepts in its place (e.g. "unix:/run/openvswitch/br-int.mgmt").
func NewOFCtl(bridge string, opts ...Option) *OFCtl {
	o := &OFCtl{bridge: bridge}
	for _, opt := range opts {
		opt(o)
	}
	if o.run == nil {
		o.run = o.command
	}
	return o
}

// command runs name under o's environment.
func (o *OFCtl) command(ctx context.Context, stdin io.Reader, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	if len(o.env) > 0 {
		cmd.Env = append(os.Environ(), o.env...)
	}
	cmd.Stdin = stdin
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", ctx.Err(), err)
		}
		return []byte(strings.TrimSpace(stderr.String())), err
	}
	return stdout.Bytes(), nil
}

// client is a go-openvswitch client whose commands run under ctx and o's environment.
func (o *OFCtl) client(ctx context.Context) *ovs.Client {
	return ovs.New(
		ovs.Exec(func(cmd string, args ...string) ([]byte, error) {
			return o.run(ctx, nil, cmd, noNames(cmd, args)...)
		}),
		ovs.Pipe(func(stdin io.Reader, cmd string, args ...string) ([]byte, error) {
			return o.run(ctx, stdin, cmd, noNames(cmd, args)...)
		}),
	)
}

// noNames puts --no-names before ovs-ofctl's arguments. Our flows name ports and tables by
// number only, and without it ovs-ofctl, to understand names, first asks the switch for the
// descriptions of its ports and, in OpenFlow 1.3 and later (every bundle), of all its tables:
// about 1 MB from ovs-vswitchd before the first flow, which made a bundle of a few flows take
// about 3× as long (17.6 ms against 5.7 ms on the lab's OVS 3.1).
func noNames(cmd string, args []string) []string {
	if cmd != "ovs-ofctl" {
		return args
	}
	return append([]string{"--no-names"}, args...)
}

// Flows returns the bridge's ovsfabric flows: `ovs-ofctl dump-flows BRIDGE
// cookie=0x0fab000000000000/0xffff000000000000`, each line parsed by go-openvswitch. Their
// Match and Actions are go-openvswitch's rendering (fields in ovs-ofctl's order).
func (o *OFCtl) Flows(ctx context.Context) ([]Flow, error) {
	filter, err := (&ovs.MatchFlow{Cookie: CookieBase, CookieMask: CookieMask, Table: ovs.AnyTable}).MarshalText()
	if err != nil {
		return nil, fmt.Errorf("dump flows of %s: %w", o.bridge, err)
	}
	out, err := o.run(ctx, nil, "ovs-ofctl", noNames("ovs-ofctl", []string{"dump-flows", o.bridge, string(filter)})...)
	if err != nil {
		return nil, fmt.Errorf("dump flows of %s: %s: %w", o.bridge, bytes.TrimSpace(out), err)
	}
	o.parsedMu.Lock()
	defer o.parsedMu.Unlock()
	fs, parsed, err := parseDump(out, o.parsed)
	if err != nil {
		return nil, fmt.Errorf("dump flows of %s: %w", o.bridge, err)
	}
	o.parsed = parsed
	return fs, nil
}

// dumpHeader is in the first line of a flow dump ("NXST_FLOW reply (xid=0x8):", or
// OFPST_FLOW with OpenFlow 1.1 and later) and in none of its flows.
var dumpHeader = []byte("ST_FLOW reply")

// parseDump parses the output of `ovs-ofctl dump-flows`, each line into a Flow before the
// next: go-openvswitch's DumpFlows holds every line copied and every flow parsed (a few
// kB each) at once, which with thousands of peers made the periodic resync fabricd's
// memory peak. A line whose key (lineKey) is in last is not parsed again: go-openvswitch
// allocates about 10 kB parsing one. It also returns the flows of this dump by key.
func parseDump(out []byte, last map[string]Flow) ([]Flow, map[string]Flow, error) {
	first, rest, _ := bytes.Cut(out, []byte("\n"))
	if !bytes.Contains(first, dumpHeader) {
		return nil, nil, fmt.Errorf("not a flow dump: first line %q", first)
	}
	fs := make([]Flow, 0, bytes.Count(rest, []byte("\n"))+1)
	parsed := make(map[string]Flow, cap(fs))
	for len(rest) > 0 {
		var line []byte
		line, rest, _ = bytes.Cut(rest, []byte("\n"))
		line = bytes.TrimSpace(line)
		if len(line) == 0 || bytes.Contains(line, dumpHeader) {
			continue // a blank line, or the header of a further reply
		}
		key := lineKey(line)
		f, ok := last[key]
		if !ok {
			var of ovs.Flow
			if err := of.UnmarshalText(line); err != nil {
				return nil, nil, fmt.Errorf("flow %q: %w", line, err)
			}
			match, actions, err := fromOVS(&of)
			if err != nil {
				return nil, nil, fmt.Errorf("cookie %#x: %w", of.Cookie, err)
			}
			f = Flow{Table: of.Table, Priority: of.Priority, Cookie: of.Cookie, Match: match, Actions: actions}
		}
		if key != "" {
			parsed[key] = f
		}
		fs = append(fs, f)
	}
	return fs, parsed, nil
}

// dumpStats are the fields of a dumped flow that change while the flow stays the same.
var dumpStats = []string{"duration=", "n_packets=", "n_bytes=", "idle_age=", "hard_age="}

// lineKey is a dump line without its statistics (dumpStats): the same flow dumped again has
// the same key. "" for a line that is not "FIELD, FIELD, … MATCH actions=ACTIONS".
func lineKey(line []byte) string {
	head, actions, ok := bytes.Cut(line, []byte(" actions="))
	if !ok {
		return ""
	}
	var b strings.Builder
	b.Grow(len(line))
	for len(head) > 0 {
		var field []byte
		field, head, _ = bytes.Cut(head, []byte(", "))
		if slices.ContainsFunc(dumpStats, func(s string) bool { return bytes.HasPrefix(field, []byte(s)) }) {
			continue
		}
		b.Write(field)
		b.WriteString(", ")
	}
	b.WriteString("actions=")
	b.Write(actions)
	return b.String()
}

// Apply deletes and adds in one atomic OpenFlow bundle: first `delete cookie=C/-1,table=T`
// for each flow of del (the cookie names exactly one flow), then `add …` for each flow of add.
func (o *OFCtl) Apply(ctx context.Context, add, del []Flow) error {
	if len(add) == 0 && len(del) == 0 {
		return nil
	}
	err := o.client(ctx).OpenFlow.AddFlowBundle(o.bridge, func(tx *ovs.FlowTransaction) error {
		for _, f := range del {
			tx.Delete(&ovs.MatchFlow{Table: f.Table, Cookie: f.Cookie, CookieMask: ^uint64(0)})
		}
		for _, f := range add {
			tx.Add(toOVS(f))
		}
		return tx.Commit()
	})
	if err != nil {
		return fmt.Errorf("bundle on %s: %w", o.bridge, err)
	}
	return nil
}

// toOVS is f as a go-openvswitch flow that marshals to exactly f's match and actions.
func toOVS(f Flow) *ovs.Flow {
	of := &ovs.Flow{Table: f.Table, Priority: f.Priority, Cookie: f.Cookie, Actions: []ovs.Action{text(f.Actions)}}
	if f.Match != "" {
		of.Matches = []ovs.Match{text(f.Match)}
	}
	return of
}

// text is a match or an action list in ovs-ofctl syntax, passed through go-openvswitch as is.
type text string

// MarshalText implements ovs.Match and ovs.Action.
func (t text) MarshalText() ([]byte, error) { return []byte(t), nil }

// GoString implements ovs.Match and ovs.Action.
func (t text) GoString() string { return fmt.Sprintf("flows.text(%q)", string(t)) }

var _ Switch = (*OFCtl)(nil)

// ServerID identifies the ovs-vswitchd serving the bridge: the identity (inode and change
// time) of its OpenFlow management socket <OVS_RUNDIR>/<bridge>.mgmt, which every
// ovs-vswitchd creates anew when it starts. It is "" while the socket does not exist. A
// restarted ovs-vswitchd has an empty flow table and changes nothing in OVSDB that says so;
// a new ServerID does.
func (o *OFCtl) ServerID() string {
	var st syscall.Stat_t
	if err := syscall.Stat(o.mgmtSocket(), &st); err != nil {
		return ""
	}
	return fmt.Sprintf("%d:%d:%d.%d", st.Dev, st.Ino, st.Ctim.Sec, st.Ctim.Nsec)
}

// PurgeDatapathFlows makes ovs-vswitchd drop every datapath flow (`ovs-appctl
// revalidator/purge`), so the next packets are translated afresh. OVS_RUNDIR is the directory
// of the bridge's management socket, where ovs-vswitchd's pidfile and control socket live too.
func (o *OFCtl) PurgeDatapathFlows(ctx context.Context) error {
	env := append(slices.Clone(o.env), "OVS_RUNDIR="+o.ServerDir())
	cmd := exec.CommandContext(ctx, "ovs-appctl", "-t", "ovs-vswitchd", "revalidator/purge")
	cmd.Env = append(os.Environ(), env...)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("ovs-appctl revalidator/purge: %w: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// ServerDir is the directory of the bridge's management socket, where a new ovs-vswitchd
// creates it: a caller can watch it instead of calling ServerID periodically.
func (o *OFCtl) ServerDir() string { return filepath.Dir(o.mgmtSocket()) }

// mgmtSocket is where ovs-ofctl finds the bridge's management socket: the target itself
// when it is "unix:PATH", else <OVS_RUNDIR>/<bridge>.mgmt with OVS_RUNDIR from WithEnv, the
// process environment, or OVS's default /var/run/openvswitch.
func (o *OFCtl) mgmtSocket() string {
	if p, ok := strings.CutPrefix(o.bridge, "unix:"); ok {
		return p
	}
	rundir := os.Getenv("OVS_RUNDIR")
	for _, e := range o.env {
		if v, ok := strings.CutPrefix(e, "OVS_RUNDIR="); ok {
			rundir = v
		}
	}
	if rundir == "" {
		rundir = "/var/run/openvswitch"
	}
	return filepath.Join(rundir, o.bridge+".mgmt")
}

package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	libovsdb "github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovsfabric/ovsfabric/lab/labtest"
	"github.com/ovsfabric/ovsfabric/ovsdb/ovsdbtest"
	"github.com/ovsfabric/ovsfabric/ovsdb/vswitchd"
)

// The tests run every scenario against two servers: libovsdb's in-memory OVSDB server (always)
// and a real ovsdb-server (when root and Open vSwitch is installed; required when CI=true).

type backend struct {
	name  string
	start func(testing.TB) string // returns an endpoint whose database has its root row
}

var backends = []backend{{"inmemory", ovsdbtest.Start}, {"ovsdb-server", startOVSDBServer}}

// eachBackend runs f as a subtest per backend, each with a fresh database.
func eachBackend(t *testing.T, f func(t *testing.T, ep string)) {
	for _, b := range backends {
		t.Run(b.name, func(t *testing.T) { f(t, b.start(t)) })
	}
}

// shortTempDir is a temp dir with a path short enough for unix socket names (108 bytes).
func shortTempDir(t testing.TB) string {
	dir, err := os.MkdirTemp("", "ovsdbt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// skipOrFail skips a test that needs a real ovsdb-server, or fails it when CI=true.
func skipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	labtest.SkipOrFail(t, "the real ovsdb-server backend cannot run: "+format, args...)
}

// startOVSDBServer runs a real ovsdb-server on a fresh database in a temp dir, initialised with
// `ovs-vsctl init`, and returns its endpoint. See startOVSDBServerRestartable.
func startOVSDBServer(t testing.TB) string {
	t.Helper()
	ep, _ := startOVSDBServerRestartable(t)
	return ep
}

// startOVSDBServerRestartable runs a real ovsdb-server (ovsdb-tool create, then ovsdb-server
// on a unix socket, then `ovs-vsctl init`) with every file in a temp dir (OVS_RUNDIR and
// friends point there). It runs in the foreground as a child the kernel kills should the test
// binary die, so it cannot outlive the tests, and is stopped by its PID in t.Cleanup. restart
// stops it and starts it again on the same database and socket. No ovs-vswitchd is needed for
// OVSDB semantics, and nothing touches the network.
func startOVSDBServerRestartable(t testing.TB) (endpoint string, restart func()) {
	t.Helper()
	if os.Geteuid() != 0 {
		skipOrFail(t, "not root")
	}
	bin := map[string]string{}
	for _, b := range []string{"ovsdb-server", "ovsdb-tool", "ovs-vsctl"} {
		p, err := exec.LookPath(b)
		if err != nil {
			if p2 := "/usr/sbin/" + b; fileExists(p2) {
				p = p2
			} else {
				skipOrFail(t, "%s not installed (apt-get install openvswitch-switch)", b)
			}
		}
		bin[b] = p
	}
	const schema = "/usr/share/openvswitch/vswitch.ovsschema"
	if !fileExists(schema) {
		skipOrFail(t, "%s missing", schema)
	}
	dir := shortTempDir(t)
	env := append(os.Environ(), "OVS_RUNDIR="+dir, "OVS_DBDIR="+dir, "OVS_LOGDIR="+dir, "OVS_SYSCONFDIR="+dir)
	run := func(name string, args ...string) {
		t.Helper()
		cmd := exec.Command(bin[name], args...)
		cmd.Env = env
		if out, err := cmd.CombinedOutput(); err != nil {
			skipOrFail(t, "%s %s: %v: %s", name, strings.Join(args, " "), err, out)
		}
	}
	db, sock, logFile := filepath.Join(dir, "conf.db"), filepath.Join(dir, "db.sock"), filepath.Join(dir, "ovsdb-server.log")
	run("ovsdb-tool", "create", db, schema)

	var pid int
	var exited chan struct{}
	stop := func() {
		if pid == 0 {
			return
		}
		_ = syscall.Kill(pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(pid, syscall.SIGKILL)
			<-exited
		}
		pid = 0
	}
	start := func() {
		t.Helper()
		_ = os.Remove(sock)
		srv := exec.Command(bin["ovsdb-server"], db, "--remote=punix:"+sock,
			"--pidfile="+filepath.Join(dir, "ovsdb-server.pid"), "--unixctl="+filepath.Join(dir, "ovsdb-server.ctl"),
			"--log-file="+logFile)
		srv.Env = env
		srv.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
		if err := srv.Start(); err != nil {
			skipOrFail(t, "start ovsdb-server: %v", err)
		}
		pid, exited = srv.Process.Pid, make(chan struct{})
		done := exited
		go func() { _ = srv.Wait(); close(done) }()
		deadline := time.Now().Add(10 * time.Second)
		// The socket file appears at bind(), a moment before listen(): wait until it accepts.
		for !accepts(sock) {
			select {
			case <-done:
				log, _ := os.ReadFile(logFile)
				skipOrFail(t, "ovsdb-server exited: %s", log)
			default:
			}
			if time.Now().After(deadline) {
				skipOrFail(t, "ovsdb-server did not accept on %s", sock)
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	start()
	t.Cleanup(stop)
	run("ovs-vsctl", "--db=unix:"+sock, "--no-wait", "--timeout=10", "init")
	return "unix:" + sock, func() { stop(); start() }
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// accepts reports whether a unix socket at p accepts a connection.
func accepts(p string) bool {
	c, err := net.DialTimeout("unix", p, time.Second)
	if err != nil {
		return false
	}
	_ = c.Close()
	return true
}

// dial connects a Client for the test.
func dial(t testing.TB, endpoint string) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, endpoint)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, err := c.root(ctx); err != nil {
		t.Fatalf("root row not in the cache after Dial: %v", err)
	}
	return c
}

// rawClient is a plain libovsdb client monitoring everything: "someone else" writing to the
// database (an operator, another tool).
func rawClient(t testing.TB, endpoint string) client.Client {
	return ovsdbtest.RawClient(t, endpoint)
}

func mustOps(ops []libovsdb.Operation, err error) []libovsdb.Operation {
	if err != nil {
		panic(err)
	}
	return ops
}

func rawTransact(t testing.TB, c client.Client, ops []libovsdb.Operation) {
	t.Helper()
	res, err := c.Transact(context.Background(), ops...)
	if err != nil {
		t.Fatal(err)
	}
	if opErrs, err := libovsdb.CheckOperationResults(res, ops); err != nil {
		t.Fatalf("%v: %v", err, opErrs)
	}
}

// rawBridge looks a bridge up in the raw client's cache, waiting for it to appear.
func rawBridge(t testing.TB, c client.Client, name string) *vswitchd.Bridge {
	t.Helper()
	var b *vswitchd.Bridge
	waitFor(t, "bridge "+name+" in the raw cache", func() bool {
		var bs []vswitchd.Bridge
		if err := c.WhereCache(func(b *vswitchd.Bridge) bool { return b.Name == name }).List(context.Background(), &bs); err != nil || len(bs) != 1 {
			return false
		}
		b = &bs[0]
		return true
	})
	return b
}

func rawPort(t testing.TB, c client.Client, name string) *vswitchd.Port {
	t.Helper()
	var p *vswitchd.Port
	waitFor(t, "port "+name+" in the raw cache", func() bool {
		var ps []vswitchd.Port
		if err := c.WhereCache(func(p *vswitchd.Port) bool { return p.Name == name }).List(context.Background(), &ps); err != nil || len(ps) != 1 {
			return false
		}
		p = &ps[0]
		return true
	})
	return p
}

func rawIface(t testing.TB, c client.Client, name string) *vswitchd.Interface {
	t.Helper()
	var i *vswitchd.Interface
	waitFor(t, "interface "+name+" in the raw cache", func() bool {
		var is []vswitchd.Interface
		if err := c.WhereCache(func(i *vswitchd.Interface) bool { return i.Name == name }).List(context.Background(), &is); err != nil || len(is) != 1 {
			return false
		}
		i = &is[0]
		return true
	})
	return i
}

// rawAddPort adds a port as `ovs-vsctl add-port BRIDGE NAME -- set interface NAME type=T
// external_ids:...` would.
func rawAddPort(t testing.TB, c client.Client, bridge, name, typ string, ids map[string]string) {
	t.Helper()
	br := rawBridge(t, c, bridge)
	iface := &vswitchd.Interface{UUID: "newiface", Name: name, Type: typ, ExternalIDs: ids}
	port := &vswitchd.Port{UUID: "newport", Name: name, Interfaces: []string{iface.UUID}, ExternalIDs: ids}
	ops := mustOps(c.Create(iface, port))
	brRow := &vswitchd.Bridge{UUID: br.UUID}
	ops = append(ops, mustOps(c.Where(brRow).Mutate(brRow, model.Mutation{Field: &brRow.Ports, Mutator: libovsdb.MutateOperationInsert, Value: []string{port.UUID}}))...)
	rawTransact(t, c, ops)
	rawPort(t, c, name)
}

// rawDelPort deletes a port as `ovs-vsctl del-port BRIDGE NAME` does.
func rawDelPort(t testing.TB, c client.Client, bridge, name string) {
	t.Helper()
	br, p := rawBridge(t, c, bridge), rawPort(t, c, name)
	brRow := &vswitchd.Bridge{UUID: br.UUID}
	ops := mustOps(c.Where(brRow).Mutate(brRow, model.Mutation{Field: &brRow.Ports, Mutator: libovsdb.MutateOperationDelete, Value: []string{p.UUID}}))
	ops = append(ops, mustOps(c.Where(&vswitchd.Port{UUID: p.UUID}).Delete())...)
	for _, i := range p.Interfaces {
		ops = append(ops, mustOps(c.Where(&vswitchd.Interface{UUID: i}).Delete())...)
	}
	rawTransact(t, c, ops)
}

func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// dump renders every bridge, port and interface in the client's cache (all columns the
// package reads), one line each, sorted: two equal dumps mean nothing changed.
func dump(t testing.TB, c *Client) string {
	t.Helper()
	s, err := c.snapshot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	kv := func(m map[string]string) string {
		var out []string
		for _, k := range slices.Sorted(maps.Keys(m)) {
			out = append(out, k+"="+m[k])
		}
		return "{" + strings.Join(out, ",") + "}"
	}
	for _, b := range s.bridges {
		bi := s.bridgeInfo(b)
		lines = append(lines, fmt.Sprintf("bridge %s dp=%q fail=%q proto=%v ids=%s ports=%v inroot=%v",
			bi.Name, bi.DatapathType, bi.FailMode, bi.Protocols, kv(bi.ExternalIDs), bi.Ports, s.root != nil && slices.Contains(s.root.Bridges, b.UUID)))
	}
	for _, p := range s.ports {
		pi := s.portInfo(p)
		lines = append(lines, fmt.Sprintf("port %s br=%s type=%q opts=%s ids=%s iids=%s prot=%v mac=%q ofreq=%d",
			pi.Name, pi.Bridge, pi.Type, kv(pi.Options), kv(pi.ExternalIDs), kv(pi.IfaceExternalIDs), pi.Protected, pi.MAC, pi.OfportRequest))
	}
	if s.root != nil {
		lines = append(lines, "root ids="+kv(s.root.ExternalIDs))
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

// expectNoWrite runs f and checks it sent no transaction and changed nothing.
func expectNoWrite(t *testing.T, c *Client, what string, f func()) {
	t.Helper()
	before, n := dump(t, c), c.Transactions()
	f()
	if sent := c.Transactions() - n; sent != 0 {
		t.Errorf("%s: sent %d transactions, want none", what, sent)
	}
	if after := dump(t, c); after != before {
		t.Errorf("%s: database changed:\n--- before\n%s\n--- after\n%s", what, before, after)
	}
}

// expectOneWrite runs f and checks it sent exactly one transaction.
func expectOneWrite(t *testing.T, c *Client, what string, f func()) {
	t.Helper()
	n := c.Transactions()
	f()
	if sent := c.Transactions() - n; sent != 1 {
		t.Errorf("%s: sent %d transactions, want 1", what, sent)
	}
}

func tun(name, remote string) TunnelSpec {
	return TunnelSpec{Name: name, Type: "vxlan", RemoteIP: netip.MustParseAddr(remote), Key: "flow", Peer: "peer-" + name, Protected: true}
}

func ensureBridge(t testing.TB, c *Client, name, owner string) {
	t.Helper()
	if err := c.EnsureBridge(context.Background(), BridgeSpec{Name: name, DatapathType: "netdev", FailMode: "standalone", Owner: owner}); err != nil {
		t.Fatal(err)
	}
}

func port(t testing.TB, c *Client, bridge, name string) (PortInfo, bool) {
	t.Helper()
	ps, err := c.Ports(context.Background(), bridge)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if p.Name == name {
			return p, true
		}
	}
	return PortInfo{}, false
}

func portNames(t testing.TB, c *Client, bridge string) string {
	t.Helper()
	ps, err := c.Ports(context.Background(), bridge)
	if err != nil {
		t.Fatal(err)
	}
	var n []string
	for _, p := range ps {
		n = append(n, p.Name)
	}
	return strings.Join(n, ",")
}

func isErr(err, target error) bool { return err != nil && errors.Is(err, target) }

func mustAddr(s string) netip.Addr { return netip.MustParseAddr(s) }

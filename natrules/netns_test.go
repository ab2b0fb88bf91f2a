package natrules

import (
	"context"
	"crypto/rand"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"

	"github.com/ovsfabric/ovsfabric/lab/labtest"
)

// requireRoot skips tests that need root (netns, nftables) with a clear message, or fails
// them when CI=true so CI cannot silently skip them.
func requireRoot(t testing.TB) {
	t.Helper()
	labtest.Require(t, "this test (network namespaces, nftables; run as root, e.g. `sudo -E go test ./natrules/`)", "ip", "nft")
}

// testNS is a fresh, uniquely named network namespace (visible to
// `ip netns`), removed when the test ends, also on failure.
type testNS struct {
	ns.NetNS
	name string
}

func newNS(t testing.TB) *testNS {
	t.Helper()
	name := "natrules-" + rand.Text()[:12]
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "delete", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns delete %s: %v: %s", name, err, out)
		}
	})
	n, err := ns.GetNS(filepath.Join("/run/netns", name))
	if err != nil {
		t.Fatalf("open netns %s: %v", name, err)
	}
	t.Cleanup(func() {
		if err := n.Close(); err != nil {
			t.Errorf("close netns %s: %v", name, err)
		}
	})
	tn := &testNS{NetNS: n, name: name}
	tn.run(t, "ip", "link", "set", "lo", "up")
	return tn
}

// do runs fn on a thread switched into the namespace.
func (n *testNS) do(t testing.TB, fn func() error) {
	t.Helper()
	if err := n.Do(func(ns.NetNS) error { return fn() }); err != nil {
		t.Fatalf("in netns %s: %v", n.name, err)
	}
}

// run runs a command inside the namespace and returns its stdout.
func (n *testNS) run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := n.try(name, args...)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func (n *testNS) try(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return string(out), fmt.Errorf("%s %s (netns %s): %v: %s", name, strings.Join(args, " "), n.name, err, stderr.String())
	}
	return string(out), nil
}

// nft runs an nft script inside the namespace.
func (n *testNS) nft(t testing.TB, script string) {
	t.Helper()
	n.run(t, "nft", script)
}

// reconcile runs Reconcile inside the namespace.
func (n *testNS) reconcile(t testing.TB, r Rules) bool {
	t.Helper()
	var changed bool
	n.do(t, func() (err error) {
		changed, err = Reconcile(r)
		return err
	})
	return changed
}

// read runs Read inside the namespace.
func (n *testNS) read(t testing.TB, table string) State {
	t.Helper()
	var st State
	n.do(t, func() (err error) {
		st, err = Read(table)
		return err
	})
	return st
}

// generation returns the namespace's nftables ruleset generation, which the
// kernel bumps on every committed transaction: an unchanged generation proves
// that nothing was written.
func (n *testNS) generation(t testing.TB) uint32 {
	t.Helper()
	var gen uint32
	n.do(t, func() (err error) {
		_, gen, err = rulesetGeneration()
		return err
	})
	return gen
}

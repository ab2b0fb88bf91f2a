package e2e

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

// TestKeyring switches a running fabric of three hosts from plain to encrypted gossip and
// rotates the key (install, use, remove), all under continuous traffic and with no host
// ever seen dead; a restarted host keeps the current key; a host with an unknown key is
// refused and listed as rejected, and joins once its keyring is repaired with --local.
func TestKeyring(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	l := upLab(t, ctx, 4, false)
	f := fabriclab.New(l, fabriclab.Options{Bin: binDir, Resync: 2 * time.Second, DeadPeerGrace: 2 * time.Minute})
	t.Cleanup(func() { dumpLogsOnFailure(t, l) })
	for _, h := range l.Hosts[:3] {
		if _, err := f.Start(ctx, h); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := f.WaitConverged(ctx, 60*time.Second); err != nil {
		t.Fatal(err)
	}
	nodes := f.Nodes()
	var cs []*fabriclab.Container
	for i, n := range nodes {
		c, err := f.AddContainer(ctx, n, fmt.Sprintf("k%d", i+1), api.AttachRequest{})
		if err != nil {
			t.Fatal(err)
		}
		cs = append(cs, c)
	}
	assertMatrix(t, ctx, cs, 6)

	k1, k2, k3 := newKey(t), newKey(t), newKey(t)
	watch := watchNoneDead(ctx, nodes)
	pings := startPings(ctx, [][2]*fabriclab.Container{{cs[0], cs[1]}, {cs[1], cs[2]}, {cs[2], cs[0]}}, 3000)

	steps := []struct {
		op      string
		on      int
		key     string
		primary string
		keys    []string
	}{
		{api.KeyringInstall, 1, k1, k1, []string{k1}}, // plain -> encrypted
		{api.KeyringInstall, 0, k2, k1, []string{k1, k2}},
		{api.KeyringUse, 2, k2, k2, []string{k2, k1}},
		{api.KeyringRemove, 1, k1, k2, []string{k2}},
	}
	for _, s := range steps {
		begin := time.Now()
		r, err := nodes[s.on].Client().ChangeKeyring(ctx, api.KeyringRequest{Op: s.op, Key: s.key})
		took := time.Since(begin)
		if err != nil {
			t.Fatalf("keyring %s on %s: %v", s.op, nodes[s.on].Host.Name, err)
		}
		if r.Failed != 0 || len(r.Hosts) != 3 {
			t.Fatalf("keyring %s: %+v", s.op, r)
		}
		for _, h := range r.Hosts {
			if h.Primary != s.primary || !slices.Equal(h.Keys, s.keys) {
				t.Errorf("after %s, %s has keys %v (primary %q), want %v", s.op, h.Node, h.Keys, h.Primary, s.keys)
			}
		}
		for _, n := range nodes {
			assertKeyringFile(t, n.Host, s.keys)
		}
		t.Logf("keyring %s done on all 3 hosts in %s", s.op, took.Round(time.Millisecond))
		time.Sleep(3 * time.Second) // longer than failure detection
	}
	for _, p := range <-pings {
		t.Logf("ping %s: %d sent, %d received", p.name, p.sent, p.rx)
		if p.err != nil || p.sent == 0 || p.sent-p.rx > p.sent/100 {
			t.Errorf("ping %s lost %d of %d during the key changes (%v)", p.name, p.sent-p.rx, p.sent, p.err)
		}
	}
	if dead := watch(); len(dead) > 0 {
		t.Errorf("hosts seen dead or left during the key changes: %v", dead)
	}

	// The CLI shows the same: one key, installed and primary on 3 of 3 hosts.
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "fabricctl"), "--socket", nodes[0].Socket, "keyring", "list", "-o", "json").CombinedOutput()
	if err != nil {
		t.Fatalf("fabricctl keyring list: %v\n%s", err, out)
	}
	var list api.KeyringResponse
	if err := json.Unmarshal(out, &list); err != nil || len(list.Keys) != 1 || list.Keys[0] != (api.KeyringKey{Key: k2, Installed: 3, Primary: 3}) {
		t.Errorf("fabricctl keyring list -o json: %s (%v)", out, err)
	}

	t.Run("restarted host keeps the key", func(t *testing.T) {
		n := f.Node(l.Hosts[2].Name)
		if err := n.Proc.Stop(10 * time.Second); err != nil {
			t.Fatal(err)
		}
		n2, err := f.StartArgs(ctx, n.Host, n.Args)
		if err != nil {
			t.Fatal(err)
		}
		if log, err := os.ReadFile(n2.Proc.LogFile()); err != nil || !regexp.MustCompile(`gossip started.*encrypted=true`).Match(log) {
			t.Errorf("the restarted fabricd does not start encrypted (%v):\n%s", err, log)
		}
		if _, err := f.WaitConverged(ctx, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		r, err := f.Node(n.Host.Name).Client().Keyring(ctx)
		if err != nil || r.Failed != 0 || len(r.Keys) != 1 || r.Keys[0].Primary != 3 || r.Hosts[0].Primary != k2 {
			t.Fatalf("keyring after the restart: %+v, %v", r, err)
		}
		assertMatrix(t, ctx, cs, 6)
	})

	t.Run("unknown key is refused, then repaired locally", func(t *testing.T) {
		h4 := l.Hosts[3]
		keyFile := filepath.Join(h4.Dir, "gossip.key")
		if err := os.WriteFile(keyFile, []byte(k3+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		n4, err := f.Start(ctx, h4, "--gossip-key-file", keyFile)
		if err != nil {
			t.Fatal(err)
		}
		ip := h4.UnderlayIP.String()
		eventually(t, 30*time.Second, "h4 listed as rejected by "+nodes[0].Host.Name, func() error {
			st, err := nodes[0].Status(ctx)
			if err != nil {
				return err
			}
			for _, r := range st.Rejected {
				if strings.HasPrefix(r, ip+" ") && strings.Contains(r, "key") {
					t.Logf("%s status: rejected: %s", nodes[0].Host.Name, r)
					return nil
				}
			}
			return fmt.Errorf("rejected: %v", st.Rejected)
		})
		for _, n := range nodes {
			st, err := n.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, p := range st.Peers {
				if p.Name == h4.Name {
					t.Errorf("%s lists %s as a peer (%s)", n.Host.Name, h4.Name, p.State)
				}
			}
		}
		// The operator repairs h4: install and use the fabric's key there only.
		for _, op := range []string{api.KeyringInstall, api.KeyringUse} {
			r, err := n4.Client().ChangeKeyring(ctx, api.KeyringRequest{Op: op, Key: k2, Local: true})
			if err != nil || r.Failed != 0 || len(r.Hosts) != 1 {
				t.Fatalf("local %s on h4: %+v, %v", op, r, err)
			}
		}
		if _, err := f.WaitConverged(ctx, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		// Once in, h4 is no longer listed as rejected, and lists nobody itself.
		for _, n := range append(nodes, n4) {
			st, err := n.Status(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(st.Rejected) > 0 {
				t.Errorf("%s still lists rejected nodes: %v", n.Host.Name, st.Rejected)
			}
		}
	})
}

// newKey is a random 32-byte key in base64.
func newKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	f, err := os.Open("/dev/urandom")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// assertKeyringFile checks the host's persisted keyring: mode 0600, keys in order.
func assertKeyringFile(t *testing.T, h *lab.Host, want []string) {
	t.Helper()
	p := filepath.Join(h.Dir, "gossip.keyring")
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatalf("%s: %v", h.Name, err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("%s: keyring file mode %v, want 0600", h.Name, fi.Mode().Perm())
	}
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	if err := json.Unmarshal(bytes.TrimSpace(b), &got); err != nil || !slices.Equal(got, want) {
		t.Errorf("%s: keyring file %s, want %v (%v)", h.Name, b, want, err)
	}
}

// watchNoneDead polls every node's peers until the returned function is called, which
// returns every "observer: peer state" seen other than alive or suspect.
func watchNoneDead(ctx context.Context, nodes []*fabriclab.Node) func() []string {
	stop := make(chan struct{})
	done := make(chan []string, 1)
	go func() {
		var bad []string
		for {
			for _, n := range nodes {
				ps, err := n.Client().Peers(ctx)
				if err != nil {
					continue
				}
				for _, p := range ps {
					if p.State != "alive" && p.State != "suspect" {
						if s := n.Host.Name + ": " + p.Name + " " + p.State; !slices.Contains(bad, s) {
							bad = append(bad, s)
						}
					}
				}
			}
			select {
			case <-stop:
				done <- bad
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
	}()
	return func() []string { close(stop); return <-done }
}

type pingResult struct {
	name     string
	sent, rx int
	err      error
}

// startPings pings between each pair (count pings at 10 ms intervals) in the background;
// the channel yields the results once all are done.
func startPings(ctx context.Context, pairs [][2]*fabriclab.Container, count int) <-chan []pingResult {
	out := make(chan []pingResult, 1)
	go func() {
		var mu sync.Mutex
		var wg sync.WaitGroup
		var res []pingResult
		for _, p := range pairs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s, r, err := fabriclab.Ping(ctx, p[0].NetNS, p[1].IP, count, 10*time.Millisecond)
				mu.Lock()
				res = append(res, pingResult{name: p[0].Name + "->" + p[1].Name, sent: s, rx: r, err: err})
				mu.Unlock()
			}()
		}
		wg.Wait()
		out <- res
	}()
	return out
}

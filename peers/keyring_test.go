package peers

import (
	"bytes"
	"context"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func key(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

// keysOf is m's keyring, primary first.
func keysOf(m *Membership) [][]byte { return m.keys.keys() }

// everyoneHas reports whether every member's keyring is exactly want (primary first).
func everyoneHas(ms []*Membership, want ...[]byte) bool {
	for _, m := range ms {
		got := keysOf(m)
		if len(got) != len(want) {
			return false
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				return false
			}
		}
	}
	return true
}

// neverDead fails the test when any member sees another dead or left while it watches.
func neverDead(t *testing.T, ms []*Membership) (stop func()) {
	t.Helper()
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		for {
			for _, m := range ms {
				for _, p := range m.Peers() {
					if p.State == StateDead || p.State == StateLeft {
						t.Errorf("%s sees %s %s", m.cfg.Name, p.Name, p.State)
						return
					}
				}
			}
			select {
			case <-done:
				return
			case <-time.After(20 * time.Millisecond):
			}
		}
	}()
	return func() { close(done); <-finished }
}

func TestKeyringRotation(t *testing.T) {
	_, log := newSink(t)
	dir := t.TempDir()
	k1, k2 := key(1), key(2)
	var ms []*Membership
	for i, name := range []string{"a", "b", "c"} {
		var join []string
		if i > 0 {
			join = []string{addr(ms[0])}
		}
		cfg := testConfig(name, i+1, log, join...)
		cfg.SecretKey = k1
		cfg.KeyringFile = filepath.Join(dir, name, "gossip.keyring")
		ms = append(ms, start(t, cfg))
	}
	waitFor(t, 10*time.Second, "three members", func() bool { return allSee(ms) })
	for _, m := range ms {
		fi, err := os.Stat(m.cfg.KeyringFile)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Fatalf("keyring file of %s: %v, %v (want mode 0600)", m.cfg.Name, fi, err)
		}
	}
	stop := neverDead(t, ms)

	steps := []struct {
		op   KeyOp
		from int
		key  []byte
		want [][]byte
	}{
		{KeyInstall, 1, k2, [][]byte{k1, k2}},
		{KeyUse, 2, k2, [][]byte{k2, k1}},
		{KeyRemove, 0, k1, [][]byte{k2}},
	}
	for _, s := range steps {
		res, err := ms[s.from].KeyringOp(context.Background(), s.op, s.key, false)
		if err != nil {
			t.Fatalf("%s: %v", s.op, err)
		}
		if len(res) != 3 || res[0].Node != ms[s.from].cfg.Name {
			t.Fatalf("%s: results %+v", s.op, res)
		}
		for _, r := range res {
			if r.Err != "" {
				t.Errorf("%s on %s: %s", s.op, r.Node, r.Err)
			}
		}
		if !everyoneHas(ms, s.want...) {
			t.Fatalf("after %s: keyrings differ from %d keys", s.op, len(s.want))
		}
		time.Sleep(500 * time.Millisecond) // gossip with the new key before the next step
	}
	waitFor(t, 5*time.Second, "all alive after the rotation", func() bool { return allSee(ms) })
	stop()

	// Removing the primary key is refused everywhere, and changes nothing.
	res, err := ms[0].KeyringOp(context.Background(), KeyRemove, k2, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if !strings.Contains(r.Err, "primary") {
			t.Errorf("removing the primary key on %s: %q", r.Node, r.Err)
		}
	}
	// The file holds the new keyring: a restart keeps it, whatever the seed key says.
	b, err := os.ReadFile(ms[1].cfg.KeyringFile)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := decodeKeyring(b)
	if err != nil || len(keys) != 1 || !bytes.Equal(keys[0], k2) {
		t.Fatalf("persisted keyring = %v, %v", keys, err)
	}
	_ = ms[1].Shutdown()
	cfg := ms[1].cfg
	cfg.Port = int(ms[1].self.Port())
	cfg.Join = []string{addr(ms[0])}
	again := start(t, cfg)
	ms[1] = again
	waitFor(t, 10*time.Second, "the restarted member back with the persisted key", func() bool { return allSee(ms) })
}

func TestKeyringEnablesEncryption(t *testing.T) {
	_, log := newSink(t)
	dir := t.TempDir()
	var ms []*Membership
	for i, name := range []string{"a", "b", "c"} {
		var join []string
		if i > 0 {
			join = []string{addr(ms[0])}
		}
		cfg := testConfig(name, i+1, log, join...)
		cfg.KeyringFile = filepath.Join(dir, name+".keyring")
		ms = append(ms, start(t, cfg))
	}
	waitFor(t, 10*time.Second, "three members", func() bool { return allSee(ms) })
	if ms[0].Encrypted() {
		t.Fatal("encrypted without a key")
	}
	stop := neverDead(t, ms)
	k := key(9)
	res, err := ms[2].KeyringOp(context.Background(), KeyInstall, k, false)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range res {
		if r.Err != "" {
			t.Errorf("install on %s: %s", r.Node, r.Err)
		}
	}
	for _, m := range ms {
		if !m.Encrypted() {
			t.Errorf("%s does not encrypt after install", m.cfg.Name)
		}
	}
	time.Sleep(3 * time.Second) // longer than failure detection: nobody may drop out
	waitFor(t, 5*time.Second, "all alive, encrypted", func() bool { return allSee(ms) })
	stop()

	// A node without the key (or with another one) is refused and listed as rejected.
	for _, tc := range []struct {
		name   string
		key    []byte
		reason string
	}{{"nokey", nil, "not encrypted"}, {"otherkey", key(10), "unknown gossip key"}} {
		cfg := testConfig(tc.name, 7, log, addr(ms[0]))
		cfg.SecretKey = tc.key
		o := start(t, cfg)
		waitFor(t, 10*time.Second, "a rejection of "+tc.name, func() bool {
			for _, r := range ms[0].Rejected() {
				if r.Name == "127.0.0.1" && strings.Contains(r.Reason, tc.reason) {
					return true
				}
			}
			return false
		})
		if peerState(ms[0], tc.name) != "" || o.NumMembers() != 1 {
			t.Errorf("%s was let in", tc.name)
		}
		// The refused node shows why in its own list too (once its joins kept failing).
		waitFor(t, 10*time.Second, tc.name+" listing its refusal itself", func() bool {
			rs := o.Rejected()
			return len(rs) == 1 && rs[0].Name == "127.0.0.1" && strings.Contains(rs[0].Reason, "key")
		})
		_ = o.Shutdown()
	}
}

func TestKeyringOpErrors(t *testing.T) {
	_, log := newSink(t)
	m := start(t, testConfig("a", 1, log))
	for _, tc := range []struct {
		op   KeyOp
		key  []byte
		want string
	}{
		{KeyInstall, []byte("short"), "16, 24 or 32"},
		{"rotate", key(1), "unknown keyring operation"},
	} {
		if _, err := m.KeyringOp(context.Background(), tc.op, tc.key, false); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.op, err, tc.want)
		}
	}
	// Per-node refusals come back as results, and change nothing.
	for _, tc := range []struct {
		op   KeyOp
		want string
	}{
		{KeyUse, "not installed"},
		{KeyRemove, "primary"},
	} {
		if tc.op == KeyRemove {
			if _, err := m.KeyringOp(context.Background(), KeyInstall, key(1), true); err != nil {
				t.Fatal(err)
			}
		}
		res, err := m.KeyringOp(context.Background(), tc.op, key(1), true)
		if err != nil || len(res) != 1 || !strings.Contains(res[0].Err, tc.want) {
			t.Errorf("%s: %+v, %v; want %q", tc.op, res, err, tc.want)
		}
	}
}

func TestKeyringFile(t *testing.T) {
	dir := t.TempDir()
	_, log := newSink(t)
	for _, tc := range []struct {
		name, content, want string
	}{
		{"garbage", "not json", "JSON array"},
		{"short key", `["c2hvcnQ="]`, "key 1"},
		{"twice", `["` + strings.Repeat("A", 43) + `=","` + strings.Repeat("A", 43) + `="]`, "twice"},
	} {
		p := filepath.Join(dir, tc.name)
		if err := os.WriteFile(p, []byte(tc.content), 0o600); err != nil {
			t.Fatal(err)
		}
		cfg := testConfig("a", 1, log)
		cfg.KeyringFile = p
		if _, err := Start(context.Background(), cfg); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.name, err, tc.want)
		}
	}
	// A loose file is tightened to 0600; its keys win over the seed key.
	p := filepath.Join(dir, "loose")
	if err := os.WriteFile(p, []byte(`["`+strings.Repeat("A", 43)+`="]`), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg := testConfig("a", 1, log)
	cfg.KeyringFile, cfg.SecretKey = p, key(5)
	m := start(t, cfg)
	if fi, _ := os.Stat(p); fi.Mode().Perm() != 0o600 {
		t.Errorf("mode %v", fi.Mode().Perm())
	}
	if ks := keysOf(m); len(ks) != 1 || !bytes.Equal(ks[0], make([]byte, 32)) {
		t.Errorf("keys %v", ks)
	}
}

func TestCheckTunnelAddr(t *testing.T) {
	own := netip.MustParseAddr("192.168.59.1")
	for _, tc := range []struct {
		addr string
		want string
	}{
		{"192.168.59.2", ""},
		{"2001:db8::1", ""},
		{"0.0.0.0", "unspecified"},
		{"::", "unspecified"},
		{"127.0.0.2", "loopback"},
		{"::1", "loopback"},
		{"224.0.0.1", "multicast"},
		{"ff02::1", "multicast"},
		{"255.255.255.255", "broadcast"},
		{"192.168.59.1", "own"},
		{"::ffff:192.168.59.1", "own"},
	} {
		err := checkTunnelAddr(netip.MustParseAddr(tc.addr), own)
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", tc.addr, err, tc.want)
		}
	}
}

func TestCheckNodeName(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"host-1.example", true},
		{"", false},
		{strings.Repeat("a", MaxNodeNameLen), true},
		{strings.Repeat("a", MaxNodeNameLen+1), false},
		{"a b", false},
		{"a\nb", false},
		{"\xff", false},
	} {
		if err := checkNodeName(tc.name); (err == nil) != tc.ok {
			t.Errorf("%q: %v", tc.name, err)
		}
	}
}

func TestRefusesBadUnderlay(t *testing.T) {
	_, log := newSink(t)
	a := start(t, testConfig("a", 1, log))
	for _, tc := range []struct {
		name string
		addr string
		want string
	}{
		{"same-addr", "192.168.59.1", "own"},
		{"loop", "127.0.0.1", "loopback"},
		{"mcast", "239.1.2.3", "multicast"},
	} {
		cfg := testConfig(tc.name, 2, log, addr(a))
		cfg.Meta.Addr = netip.MustParseAddr(tc.addr)
		o, err := Start(context.Background(), cfg)
		if err == nil {
			defer o.Shutdown()
		}
		waitFor(t, 5*time.Second, "a refusing "+tc.name, func() bool {
			for _, r := range a.Rejected() {
				if r.Name == tc.name && strings.Contains(r.Reason, tc.want) {
					return true
				}
			}
			return false
		})
		if peerState(a, tc.name) != "" {
			t.Errorf("%s became a peer", tc.name)
		}
	}
}

func TestRefusedInputIsLogged(t *testing.T) {
	sink, log := newSink(t)
	m := start(t, testConfig("a", 1, log))
	m.handleMsg([]byte{msgBye, 0xff, 0xff})
	m.handleMsg([]byte{msgBye, 1})
	if !sink.contains(`level=WARN msg="refusing goodbye message from gossip: bad goodbye message"`) {
		t.Errorf("no warning for a bad goodbye message:\n%s", sink.String())
	}
	if strings.Count(sink.String(), "refusing goodbye message") > 1 { // rate-limited: at debug within 10 s
		t.Errorf("second refusal not rate-limited:\n%s", sink.String())
	}
	// A keyring request from a node that is not a member changes nothing.
	req, _ := json.Marshal(keyReq{ID: 5, From: "stranger", Op: KeyInstall, Key: key(4)})
	m.handleMsg(append([]byte{msgKeyReq}, req...))
	time.Sleep(200 * time.Millisecond)
	if m.Encrypted() {
		t.Error("a stranger's keyring request was applied")
	}
}

func TestPersistentRefusal(t *testing.T) {
	ks := &keyState{failing: map[string][2]time.Time{}}
	if ks.persistentRefusal("10.0.0.9") {
		t.Error("listed at the first refusal")
	}
	ks.failing["10.0.0.9"] = [2]time.Time{time.Now().Add(-2 * time.Second), time.Now()}
	if !ks.persistentRefusal("10.0.0.9") {
		t.Error("not listed after 2 s of refusals")
	}
	ks.changed.Store(time.Now().UnixNano())
	if ks.persistentRefusal("10.0.0.9") {
		t.Error("listed right after a keyring change")
	}
	ks.failing["10.0.0.8"] = [2]time.Time{time.Now().Add(-time.Hour), time.Now().Add(-2 * time.Minute)}
	ks.persistentRefusal("10.0.0.9")
	if _, ok := ks.failing["10.0.0.8"]; ok {
		t.Error("an address silent for 2 minutes is not forgotten")
	}
}

func TestKeyringShows(t *testing.T) {
	k1, k2 := key(1), key(2)
	for _, tc := range []struct {
		op   KeyOp
		keys [][]byte
		want bool
	}{
		{KeyInstall, [][]byte{k1, k2}, true},
		{KeyInstall, [][]byte{k1}, false},
		{KeyUse, [][]byte{k2, k1}, true},
		{KeyUse, [][]byte{k1, k2}, false},
		{KeyRemove, [][]byte{k1}, true},
		{KeyRemove, [][]byte{k1, k2}, false},
	} {
		if got := keyringShows(tc.op, k2, tc.keys); got != tc.want {
			t.Errorf("%s with %d keys: %v", tc.op, len(tc.keys), got)
		}
	}
}

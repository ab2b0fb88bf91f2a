package natrules

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// cliRule is a rule as `nft -j list table` reports it.
type cliRule struct {
	Chain   string `json:"chain"`
	Handle  uint64 `json:"handle"`
	Comment string `json:"comment"`
}

// cliTable lists table ip NAME with the nft CLI (an independent reader).
// It returns the chain names and the rules, or ok=false if the table is absent.
func (n *testNS) cliTable(t *testing.T, name string) (chains []string, rules []cliRule, ok bool) {
	t.Helper()
	out, err := n.try("nft", "-j", "list", "table", "ip", name)
	if err != nil {
		if strings.Contains(err.Error(), "No such file or directory") {
			return nil, nil, false
		}
		t.Fatal(err)
	}
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		t.Fatalf("parse nft -j output: %v\n%s", err, out)
	}
	for _, obj := range doc.Nftables {
		if raw, ok := obj["chain"]; ok {
			var c struct{ Name string }
			if err := json.Unmarshal(raw, &c); err != nil {
				t.Fatal(err)
			}
			chains = append(chains, c.Name)
		}
		if raw, ok := obj["rule"]; ok {
			var r cliRule
			if err := json.Unmarshal(raw, &r); err != nil {
				t.Fatal(err)
			}
			rules = append(rules, r)
		}
	}
	slices.Sort(chains)
	return chains, rules, true
}

// checkInstalled verifies, through the library and through the nft CLI, that
// the table holds exactly the rules for r.
func (n *testNS) checkInstalled(t *testing.T, r Rules) {
	t.Helper()
	want, err := r.normalized()
	if err != nil {
		t.Fatal(err)
	}
	st := n.read(t, want.Table)
	if !st.Present {
		t.Fatalf("Read: table %s not present", want.Table)
	}
	if !reflect.DeepEqual(st.Rules, visible(want)) {
		t.Errorf("Read().Rules =\n%+v\nwant\n%+v", st.Rules, visible(want))
	}
	var wantComments []string
	for _, c := range desired(want) {
		for _, rs := range c.rules {
			wantComments = append(wantComments, c.name+": "+rs.comment)
		}
	}
	var gotComments []string
	for _, e := range st.Entries {
		if !e.Recognized {
			t.Errorf("Read: entry %v not recognized", e)
		}
		gotComments = append(gotComments, e.Chain+": "+e.Comment)
	}
	if !slices.Equal(gotComments, wantComments) {
		t.Errorf("Read entries:\n%s\nwant:\n%s", strings.Join(gotComments, "\n"), strings.Join(wantComments, "\n"))
	}

	chains, rules, ok := n.cliTable(t, want.Table)
	if !ok {
		t.Fatalf("nft: table ip %s missing", want.Table)
	}
	wantChains := []string{"between", "forward", "output", "postrouting", "prerouting", "publish"}
	if want.WireGuard != "" {
		wantChains = []string{"between", "forward", "from_wireguard", "input", "output", "postrouting", "prerouting", "publish"}
	}
	if !slices.Equal(chains, wantChains) {
		t.Errorf("nft: chains %v, want %v", chains, wantChains)
	}
	var cliComments []string
	for _, r := range rules {
		cliComments = append(cliComments, r.Chain+": "+r.Comment)
	}
	slices.Sort(cliComments)
	slices.Sort(wantComments)
	if !slices.Equal(cliComments, wantComments) {
		t.Errorf("nft rules:\n%s\nwant:\n%s", strings.Join(cliComments, "\n"), strings.Join(wantComments, "\n"))
	}
}

// addForeign creates tables this package must never touch, and returns a
// function that lists them, to compare before and after.
func (n *testNS) addForeign(t *testing.T) func() string {
	t.Helper()
	n.nft(t, `add table ip other
add chain ip other c
add chain ip other post { type nat hook postrouting priority 50; }
add rule ip other post ip saddr 192.0.2.0/24 masquerade comment "not ours"
add table inet ovsfabric
add chain inet ovsfabric c
add rule inet ovsfabric c tcp dport 22 accept`)
	return func() string {
		return n.run(t, "nft", "-a", "list", "table", "ip", "other") + n.run(t, "nft", "-a", "list", "table", "inet", "ovsfabric")
	}
}

func TestReconcileLifecycle(t *testing.T) {
	requireRoot(t)
	n := newNS(t)
	foreign := n.addForeign(t)
	foreignBefore := foreign()

	dns := pub("udp", 5353, web2, 53, "dns")
	dns.HostAddr = hostIP
	r1 := Rules{Networks: defNet, Masquerade: true, Publish: []Publish{pub("tcp", 8080, web1, 80, "web1"), dns}}

	gen := n.generation(t)
	if !n.reconcile(t, r1) {
		t.Fatal("first Reconcile: changed=false, want true")
	}
	if g := n.generation(t); g != gen+1 {
		t.Errorf("first Reconcile: generation %d -> %d, want exactly one transaction", gen, g)
	}
	n.checkInstalled(t, r1)

	// Same input, and the same rules spelled differently: nothing written.
	gen = n.generation(t)
	same := []Rules{
		r1,
		{Table: DefaultTable, Networks: []Network{{Name: "default", CIDR: netip.MustParsePrefix("10.244.9.9/16"), Slice: netip.MustParsePrefix("::ffff:10.244.3.7/120")}}, Masquerade: true, Publish: []Publish{
			{Proto: "udp", HostAddr: netip.MustParseAddr("::ffff:172.30.0.11"), HostPort: 5353, ContainerIP: web2, ContainerPort: 53, Container: "dns"},
			pub("tcp", 8080, web1, 80, "web1"),
		}},
	}
	for i, r := range same {
		if n.reconcile(t, r) {
			t.Errorf("Reconcile #%d with unchanged rules: changed=true, want false", i+2)
		}
	}
	if g := n.generation(t); g != gen {
		t.Errorf("unchanged Reconcile wrote to nftables: generation %d -> %d", gen, g)
	}

	// Bad input: clear error, nothing written.
	bad := r1
	bad.Publish = append(slices.Clone(r1.Publish), pub("tcp", 8080, web2, 80, "dup"))
	n.do(t, func() error {
		changed, err := Reconcile(bad)
		if !errors.Is(err, ErrInvalid) || changed {
			return fmt.Errorf("Reconcile(duplicate) = %v, %v; want false, ErrInvalid", changed, err)
		}
		return nil
	})
	if g := n.generation(t); g != gen {
		t.Errorf("invalid Reconcile wrote to nftables: generation %d -> %d", gen, g)
	}
	n.checkInstalled(t, r1)

	// Update: move web1, drop dns, add web2, turn masquerade off.
	r2 := Rules{Networks: defNet, Publish: []Publish{pub("tcp", 9090, web1, 80, "web1"), pub("tcp", 443, web2, 8443, "web2")}}
	if !n.reconcile(t, r2) {
		t.Fatal("Reconcile(r2): changed=false, want true")
	}
	if g := n.generation(t); g != gen+1 {
		t.Errorf("update: generation %d -> %d, want exactly one transaction", gen, g)
	}
	n.checkInstalled(t, r2)
	if n.reconcile(t, r2) {
		t.Error("second Reconcile(r2): changed=true")
	}
	if got := foreign(); got != foreignBefore {
		t.Errorf("foreign tables changed:\nbefore:\n%s\nafter:\n%s", foreignBefore, got)
	}

	// A second table name in the same namespace is independent.
	other := Rules{Table: "fabric_b", Networks: []Network{blueNet, redNet}, Masquerade: true}
	if !n.reconcile(t, other) {
		t.Error("Reconcile(table fabric_b): changed=false")
	}
	n.checkInstalled(t, r2)
	n.checkInstalled(t, other)

	// Delete removes only the named table, and is idempotent.
	for range 2 {
		n.do(t, func() error { return Delete("") })
		if st := n.read(t, ""); st.Present || len(st.Entries) != 0 {
			t.Errorf("after Delete: Read = %+v, want absent", st)
		}
		if _, _, ok := n.cliTable(t, DefaultTable); ok {
			t.Error("after Delete: nft still lists table ip ovsfabric")
		}
	}
	n.checkInstalled(t, other)
	if got := foreign(); got != foreignBefore {
		t.Errorf("foreign tables changed by Delete:\nbefore:\n%s\nafter:\n%s", foreignBefore, got)
	}
	n.do(t, func() error { return Delete("fabric_b") })
}

// TestReconcileRepairsDrift changes the table behind fabricd's back in
// various ways; Reconcile must notice, restore exactly the desired table in
// one transaction, and then be quiet again.
func TestReconcileRepairsDrift(t *testing.T) {
	requireRoot(t)
	r := Rules{Networks: defNet, Masquerade: true, Publish: []Publish{pub("tcp", 8080, web1, 80, "web1")}}
	handleWith := func(t *testing.T, st State, comment string) uint64 {
		t.Helper()
		for _, e := range st.Entries {
			if e.Comment == comment {
				return e.Handle
			}
		}
		t.Fatalf("no rule %q", comment)
		return 0
	}
	handleOf := func(t *testing.T, st State, chain string) uint64 {
		t.Helper()
		for _, e := range st.Entries {
			if e.Chain == chain {
				return e.Handle
			}
		}
		t.Fatalf("no rule in chain %s", chain)
		return 0
	}
	tests := []struct {
		name  string
		drift func(t *testing.T, st State) string // nft script
	}{
		{"table deleted", func(*testing.T, State) string { return "delete table ip ovsfabric" }},
		{"extra rule in our chain", func(*testing.T, State) string {
			return "add rule ip ovsfabric publish tcp dport 9999 dnat to 10.244.3.9"
		}},
		{"rules flushed", func(*testing.T, State) string { return "flush chain ip ovsfabric postrouting" }},
		{"extra chain with a jump to it", func(*testing.T, State) string {
			return "add chain ip ovsfabric junk\nadd rule ip ovsfabric junk counter\nadd rule ip ovsfabric prerouting jump junk"
		}},
		{"chain with wrong priority", func(*testing.T, State) string {
			return "flush chain ip ovsfabric prerouting\ndelete chain ip ovsfabric prerouting\n" +
				"add chain ip ovsfabric prerouting { type nat hook prerouting priority 0; }"
		}},
		{"chain of wrong type", func(*testing.T, State) string {
			return "flush chain ip ovsfabric postrouting\ndelete chain ip ovsfabric postrouting\n" +
				"add chain ip ovsfabric postrouting { type filter hook postrouting priority 0; }"
		}},
		{"regular chain turned into base chain", func(*testing.T, State) string {
			return "flush table ip ovsfabric\ndelete chain ip ovsfabric publish\n" +
				"add chain ip ovsfabric publish { type nat hook input priority 100; }"
		}},
		{"policy drop", func(*testing.T, State) string {
			return "add chain ip ovsfabric output { type nat hook output priority -100; policy drop; }"
		}},
		{"extra set", func(*testing.T, State) string { return "add set ip ovsfabric s { type ipv4_addr; }" }},
		{"extra named counter", func(*testing.T, State) string { return "add counter ip ovsfabric c1" }},
		{"extra rule with an anonymous set", func(*testing.T, State) string {
			return "add rule ip ovsfabric publish tcp dport { 1, 2 } dnat to 10.244.3.9"
		}},
		{"table dormant", func(*testing.T, State) string { return "add table ip ovsfabric { flags dormant; }" }},
		{"expression edited, comment kept", func(t *testing.T, st State) string {
			return fmt.Sprintf(`replace rule ip ovsfabric publish handle %d tcp dport 8080 counter dnat to 10.244.3.99:80 comment "ovsfabric: publish tcp *:8080 -> web1 10.244.3.2:80"`, handleOf(t, st, chainPublish))
		}},
		{"comment edited, expression kept", func(t *testing.T, st State) string {
			return fmt.Sprintf(`replace rule ip ovsfabric publish handle %d tcp dport 8080 counter dnat to 10.244.3.2:80 comment "edited"`, handleOf(t, st, chainPublish))
		}},
		{"comment removed", func(t *testing.T, st State) string {
			return fmt.Sprintf(`replace rule ip ovsfabric publish handle %d tcp dport 8080 counter dnat to 10.244.3.2:80`, handleOf(t, st, chainPublish))
		}},
		{"masquerade slice edited", func(t *testing.T, st State) string {
			c := "ovsfabric: network default: masquerade 10.244.3.0/24 to outside the networks"
			return fmt.Sprintf(`replace rule ip ovsfabric postrouting handle %d ip saddr 10.244.0.0/16 counter masquerade comment "%s"`, handleWith(t, st, c), c)
		}},
		{"forward verdict edited", func(t *testing.T, st State) string {
			c := "ovsfabric: network default: drop forwarding into 10.244.0.0/16 from another network"
			return fmt.Sprintf(`replace rule ip ovsfabric between handle %d ip daddr 10.244.0.0/16 counter accept comment "%s"`, handleWith(t, st, c), c)
		}},
		{"forward chain with policy drop", func(*testing.T, State) string {
			return "add chain ip ovsfabric forward { type filter hook forward priority 0; policy drop; }"
		}},
		{"forward chain on another hook", func(*testing.T, State) string {
			return "flush chain ip ovsfabric forward\ndelete chain ip ovsfabric forward\n" +
				"add chain ip ovsfabric forward { type filter hook input priority 0; }"
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			n := newNS(t)
			foreign := n.addForeign(t)
			foreignBefore := foreign()
			if !n.reconcile(t, r) {
				t.Fatal("first Reconcile: changed=false")
			}
			// A Reconcile that finds the table in place remembers it: the drift
			// must be noticed all the same.
			if n.reconcile(t, r) {
				t.Fatal("second Reconcile: changed=true")
			}
			n.nft(t, tt.drift(t, n.read(t, "")))
			gen := n.generation(t)
			if !n.reconcile(t, r) {
				t.Fatalf("Reconcile after drift: changed=false, want true; table:\n%s", n.run(t, "nft", "list", "table", "ip", "ovsfabric"))
			}
			if g := n.generation(t); g != gen+1 {
				t.Errorf("repair: generation %d -> %d, want exactly one transaction", gen, g)
			}
			n.checkInstalled(t, r)
			if n.reconcile(t, r) {
				t.Errorf("Reconcile after repair: changed=true; table:\n%s", n.run(t, "nft", "list", "table", "ip", "ovsfabric"))
			}
			if got := foreign(); got != foreignBefore {
				t.Errorf("foreign tables changed:\nbefore:\n%s\nafter:\n%s", foreignBefore, got)
			}
		})
	}
}

// TestReadForeignRule: a rule someone else added to our table shows up in
// Read as not recognized, and does not leak into Read().Rules.
func TestReadForeignRule(t *testing.T) {
	requireRoot(t)
	n := newNS(t)
	r := Rules{Networks: defNet, Masquerade: true}
	n.reconcile(t, r)
	n.nft(t, `add rule ip ovsfabric publish tcp dport 9999 counter dnat to 10.244.3.9 comment "hand made"`)
	st := n.read(t, "")
	want, _ := r.normalized()
	if !reflect.DeepEqual(st.Rules, want) {
		t.Errorf("Read().Rules = %+v, want %+v", st.Rules, want)
	}
	var foreign []Entry
	for _, e := range st.Entries {
		if !e.Recognized {
			foreign = append(foreign, e)
		}
	}
	if len(foreign) != 1 || foreign[0].Comment != "hand made" || foreign[0].Chain != chainPublish {
		t.Errorf("unrecognized entries = %v, want the hand-made rule", foreign)
	}
	if s := foreign[0].String(); !strings.Contains(s, "not written by ovsfabric") {
		t.Errorf("Entry.String() = %q", s)
	}
	if st := n.read(t, "absent"); st.Present || st.Table != "absent" {
		t.Errorf("Read(absent) = %+v", st)
	}
}

// BenchmarkReconcileNoChange measures the no-change Reconcile of 100 networks (a third
// internal) with masquerade and 134 published ports (6 chains, 703 rules): "known"
// when nothing was committed since the last call found the table in place, "read" when the
// table is read back and compared (what any nftables commit in the namespace, by anyone,
// costs the next call).
func BenchmarkReconcileNoChange(b *testing.B) {
	requireRoot(b)
	n := newNS(b)
	r := Rules{Masquerade: true}
	for i := range 100 {
		cidr := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i + 1), 0, 0}), 16)
		slice := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i + 1), 3, 0}), 24)
		r.Networks = append(r.Networks, Network{Name: fmt.Sprintf("net%d", i), CIDR: cidr, Slice: slice, Internal: i%3 == 2})
		if i%3 != 2 {
			for j := range 2 {
				ip := netip.AddrFrom4([4]byte{10, byte(i + 1), 3, byte(2 + j)})
				r.Publish = append(r.Publish, pub("tcp", uint16(10000+2*i+j), ip, 80, fmt.Sprintf("c%d-%d", i, j)))
			}
		}
	}
	if !n.reconcile(b, r) {
		b.Fatal("first Reconcile: changed=false")
	}
	if st := n.read(b, ""); len(st.Entries) != 703 {
		b.Fatalf("table has %d rules, want 703", len(st.Entries))
	}
	for _, mode := range []string{"known", "read"} {
		b.Run(mode, func(b *testing.B) {
			gen := n.generation(b)
			n.do(b, func() error {
				for b.Loop() {
					if mode == "read" {
						forgetMatch(DefaultTable)
					}
					if changed, err := Reconcile(r); err != nil || changed {
						return fmt.Errorf("no-change Reconcile: changed=%v err=%v", changed, err)
					}
				}
				return nil
			})
			if g := n.generation(b); g != gen {
				b.Errorf("no-change Reconcile wrote: generation %d -> %d", gen, g)
			}
		})
	}
}

// TestReconcileWireGuard: with a WireGuard interface the table checks what arrives on it, in
// forward (first) and input, reads back as the same Rules, and goes away with the interface.
func TestReconcileWireGuard(t *testing.T) {
	requireRoot(t)
	n := newNS(t)
	r := Rules{Networks: []Network{defNet[0], blueNet}, Masquerade: true, WireGuard: "wgfab0"}
	if !n.reconcile(t, r) {
		t.Fatal("first Reconcile: changed=false")
	}
	n.checkInstalled(t, r)
	if n.reconcile(t, r) {
		t.Error("second Reconcile: changed=true")
	}
	out := n.run(t, "nft", "list", "table", "ip", DefaultTable)
	for _, want := range []string{
		`iifname "wgfab0" counter packets 0 bytes 0 jump from_wireguard`,
		`type filter hook input priority filter; policy accept;`,
		`ip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 counter packets 0 bytes 0 return`,
		`ip saddr 10.50.0.0/16 ip daddr 10.50.0.0/16 counter packets 0 bytes 0 return`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("nft list lacks %q:\n%s", want, out)
		}
	}
	// The jump comes first in forward: nothing accepts a WireGuard packet before the check.
	fwd := out[strings.Index(out, "chain forward"):]
	if i, j := strings.Index(fwd, "iifname"), strings.Index(fwd, "accept comment"); i < 0 || j < i {
		t.Errorf("forward does not start with the WireGuard check:\n%s", fwd)
	}
	off := r
	off.WireGuard = ""
	if !n.reconcile(t, off) {
		t.Fatal("Reconcile without WireGuard: changed=false")
	}
	n.checkInstalled(t, off)
	bad := r
	bad.WireGuard = "wg fab"
	n.do(t, func() error {
		if _, err := Reconcile(bad); !errors.Is(err, ErrInvalid) {
			return fmt.Errorf("Reconcile(bad interface) = %v, want ErrInvalid", err)
		}
		return nil
	})
}

package natrules

import (
	"errors"
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"strings"
	"testing"
)

var (
	cluster = netip.MustParsePrefix("10.244.0.0/16")
	slice3  = netip.MustParsePrefix("10.244.3.0/24")
	defNet  = []Network{{Name: "default", CIDR: cluster, Slice: slice3}}
	web1    = netip.MustParseAddr("10.244.3.2")
	web2    = netip.MustParseAddr("10.244.3.3")
	hostIP  = netip.MustParseAddr("172.30.0.11")
	blueNet = Network{Name: "blue", CIDR: netip.MustParsePrefix("10.50.0.0/16"), Slice: netip.MustParsePrefix("10.50.1.0/24")}
	blue1   = netip.MustParseAddr("10.50.1.2")
	redNet  = Network{Name: "red", CIDR: netip.MustParsePrefix("10.60.0.0/16"), Slice: netip.MustParsePrefix("10.60.1.0/24"), Internal: true}
	red1    = netip.MustParseAddr("10.60.1.2")
)

func pub(proto string, hostPort uint16, ip netip.Addr, port uint16, name string) Publish {
	return Publish{Proto: proto, HostPort: hostPort, ContainerIP: ip, ContainerPort: port, Container: name}
}

func TestValidate(t *testing.T) {
	withAddr := func(p Publish, a string) Publish { p.HostAddr = netip.MustParseAddr(a); return p }
	ok := pub("tcp", 8080, web1, 80, "web1")
	tests := []struct {
		name    string
		rules   Rules
		wantErr string // substring; "" means valid
	}{
		{"empty publish, masquerade", Rules{Networks: defNet, Masquerade: true}, ""},
		{"one publish", Rules{Networks: defNet, Publish: []Publish{ok}}, ""},
		{"udp and tcp on same port", Rules{Networks: defNet, Publish: []Publish{ok, pub("udp", 8080, web2, 53, "dns")}}, ""},
		{"two specific host addrs on same port", Rules{Networks: defNet, Publish: []Publish{
			withAddr(ok, "172.30.0.11"), withAddr(pub("tcp", 8080, web2, 80, ""), "172.30.0.12")}}, ""},
		{"0.0.0.0 means any", Rules{Networks: defNet, Publish: []Publish{withAddr(ok, "0.0.0.0")}}, ""},
		{"v4-mapped addresses accepted", Rules{Networks: defNet, Publish: []Publish{
			{Proto: "tcp", HostAddr: netip.MustParseAddr("::ffff:172.30.0.11"), HostPort: 1, ContainerIP: netip.MustParseAddr("::ffff:10.244.3.2"), ContainerPort: 65535}}}, ""},
		{"custom table", Rules{Table: "fab_1", Networks: defNet}, ""},
		{"host bits in CIDR and slice are ignored", Rules{Networks: []Network{{Name: "d", CIDR: netip.MustParsePrefix("10.244.3.1/16"), Slice: netip.MustParsePrefix("10.244.3.1/24")}}, Publish: []Publish{ok}}, ""},
		{"no networks", Rules{Masquerade: true}, ""},
		{"network without a slice here", Rules{Networks: []Network{{Name: "d", CIDR: cluster}}, Masquerade: true}, ""},
		{"two networks, publish on each", Rules{Networks: append([]Network{blueNet}, defNet...), Publish: []Publish{ok, pub("tcp", 8081, blue1, 80, "b")}}, ""},
		{"internal network without publish", Rules{Networks: append([]Network{redNet}, defNet...), Masquerade: true, Publish: []Publish{ok}}, ""},
		{"adjacent networks", Rules{Networks: []Network{{Name: "lo", CIDR: netip.MustParsePrefix("10.0.0.0/9")}, {Name: "hi", CIDR: netip.MustParsePrefix("10.128.0.0/9")}},
			Publish: []Publish{pub("tcp", 80, netip.MustParseAddr("10.128.0.5"), 80, ""), pub("tcp", 81, netip.MustParseAddr("10.127.255.254"), 80, "")}}, ""},
		{"network names", Rules{Networks: []Network{{Name: "a.b_c-9", CIDR: cluster}, {Name: strings.Repeat("x", MaxNetworkName), CIDR: blueNet.CIDR}}}, ""},

		{"bad table name", Rules{Table: "my-table", Networks: defNet}, `table name "my-table"`},
		{"table name too long", Rules{Table: strings.Repeat("a", 65), Networks: defNet}, "table name"},
		{"missing CIDR", Rules{Networks: []Network{{Name: "d"}}}, `network "d": CIDR is missing`},
		{"IPv6 CIDR", Rules{Networks: []Network{{Name: "d", CIDR: netip.MustParsePrefix("fd00::/64")}}}, "must be IPv4"},
		{"/0 CIDR", Rules{Networks: []Network{{Name: "d", CIDR: netip.MustParsePrefix("0.0.0.0/0")}}}, "/0"},
		{"no name", Rules{Networks: []Network{{CIDR: cluster}}}, "network[0]: name"},
		{"bad name", Rules{Networks: []Network{{Name: "a b", CIDR: cluster}}}, `network "a b": name`},
		{"name too long", Rules{Networks: []Network{{Name: strings.Repeat("x", MaxNetworkName+1), CIDR: cluster}}}, "name: want"},
		{"name twice", Rules{Networks: []Network{{Name: "d", CIDR: cluster}, {Name: "d", CIDR: blueNet.CIDR}}}, `network "d": name given twice`},
		{"overlapping CIDRs", Rules{Networks: []Network{{Name: "big", CIDR: netip.MustParsePrefix("10.0.0.0/8")}, blueNet, {Name: "c", CIDR: netip.MustParsePrefix("10.60.0.0/16")}}},
			`network "blue": CIDR 10.50.0.0/16 overlaps 10.0.0.0/8 of network "big"`},
		{"same CIDR twice", Rules{Networks: []Network{{Name: "a", CIDR: cluster}, {Name: "b", CIDR: cluster}}}, "CIDR 10.244.0.0/16 overlaps 10.244.0.0/16"},
		{"nested, reported after a disjoint one", Rules{Networks: []Network{{Name: "x", CIDR: netip.MustParsePrefix("10.2.0.0/16")}, {Name: "y", CIDR: netip.MustParsePrefix("10.1.0.0/16")}, {Name: "big", CIDR: netip.MustParsePrefix("10.0.0.0/8")}}},
			`network "x": CIDR 10.2.0.0/16 overlaps 10.0.0.0/8 of network "big"`},
		{"publish between networks", Rules{Networks: []Network{blueNet, redNet}, Publish: []Publish{pub("tcp", 80, netip.MustParseAddr("10.55.0.1"), 80, "")}},
			"container IP 10.55.0.1: not inside any network (blue 10.50.0.0/16, red 10.60.0.0/16)"},
		{"publish below every network", Rules{Networks: []Network{blueNet}, Publish: []Publish{pub("tcp", 80, netip.MustParseAddr("10.1.0.1"), 80, "")}}, "not inside any network"},
		{"slice outside the CIDR", Rules{Networks: []Network{{Name: "d", CIDR: cluster, Slice: netip.MustParsePrefix("10.50.3.0/24")}}}, "slice 10.50.3.0/24 is not inside the CIDR 10.244.0.0/16"},
		{"slice larger than the CIDR", Rules{Networks: []Network{{Name: "d", CIDR: cluster, Slice: netip.MustParsePrefix("10.0.0.0/8")}}}, "not inside the CIDR"},
		{"IPv6 slice", Rules{Networks: []Network{{Name: "d", CIDR: cluster, Slice: netip.MustParsePrefix("fd00::/64")}}}, "slice fd00::/64: must be IPv4"},
		{"publish to an internal network", Rules{Networks: append([]Network{redNet}, defNet...), Publish: []Publish{pub("tcp", 80, red1, 80, "r")}},
			"publish[0] (r): container IP 10.60.1.2 is on the internal network red: internal networks have no published ports"},
		{"publish without networks", Rules{Publish: []Publish{ok}}, "not inside any network (no networks given)"},
		{"bad proto", Rules{Networks: defNet, Publish: []Publish{pub("sctp", 80, web1, 80, "x")}}, `publish[0] (x): proto "sctp"`},
		{"upper-case proto", Rules{Networks: defNet, Publish: []Publish{pub("TCP", 80, web1, 80, "")}}, `proto "TCP"`},
		{"empty proto", Rules{Networks: defNet, Publish: []Publish{pub("", 80, web1, 80, "")}}, `proto ""`},
		{"host port 0", Rules{Networks: defNet, Publish: []Publish{pub("tcp", 0, web1, 80, "")}}, "host port 0"},
		{"container port 0", Rules{Networks: defNet, Publish: []Publish{pub("udp", 53, web1, 0, "")}}, "container port 0"},
		{"container IP outside cluster", Rules{Networks: defNet, Publish: []Publish{pub("tcp", 80, netip.MustParseAddr("172.17.0.2"), 80, "")}}, "container IP 172.17.0.2: not inside any network (default 10.244.0.0/16)"},
		{"container IP missing", Rules{Networks: defNet, Publish: []Publish{pub("tcp", 80, netip.Addr{}, 80, "")}}, "container IP is missing"},
		{"container IP v6", Rules{Networks: defNet, Publish: []Publish{pub("tcp", 80, netip.MustParseAddr("fd00::2"), 80, "")}}, "container IP fd00::2: must be IPv4"},
		{"host addr v6", Rules{Networks: defNet, Publish: []Publish{withAddr(ok, "fd00::1")}}, "host address fd00::1: must be IPv4"},
		{"host addr loopback", Rules{Networks: defNet, Publish: []Publish{withAddr(ok, "127.0.0.1")}}, "loopback"},
		{"host addr multicast", Rules{Networks: defNet, Publish: []Publish{withAddr(ok, "224.0.0.1")}}, "unicast"},
		{"duplicate", Rules{Networks: defNet, Publish: []Publish{ok, pub("tcp", 8080, web2, 81, "web2")}}, "publish[1] (web2): tcp *:8080 conflicts with publish[0] (tcp *:8080 -> web1 10.244.3.2:80)"},
		{"duplicate same specific addr", Rules{Networks: defNet, Publish: []Publish{withAddr(ok, "172.30.0.11"), withAddr(ok, "172.30.0.11")}}, "conflicts with publish[0]"},
		{"any overlaps specific", Rules{Networks: defNet, Publish: []Publish{withAddr(ok, "172.30.0.11"), pub("tcp", 8080, web2, 80, "")}}, "publish[1]: tcp *:8080 conflicts"},
		{"specific overlaps any", Rules{Networks: defNet, Publish: []Publish{ok, withAddr(ok, "172.30.0.11")}}, "tcp 172.30.0.11:8080 conflicts"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.rules.Validate()
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("Validate() = %v, want nil", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate() = nil, want error containing %q", tt.wantErr)
			}
			if !errors.Is(err, ErrInvalid) {
				t.Errorf("error %v does not wrap ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("Validate() = %q, want it to contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestValidateReportsAllProblems(t *testing.T) {
	err := Rules{Publish: []Publish{pub("icmp", 0, web1, 0, "")}}.Validate()
	if err == nil {
		t.Fatal("Validate() = nil")
	}
	for _, want := range []string{"not inside any network", `proto "icmp"`, "host port 0", "container port 0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestBadInputChangesNothing checks that every entry point rejects bad input
// before touching the kernel (these run without root).
func TestBadInputChangesNothing(t *testing.T) {
	if _, err := Reconcile(Rules{Networks: defNet, Publish: []Publish{pub("tcp", 0, web1, 80, "")}}); !errors.Is(err, ErrInvalid) {
		t.Errorf("Reconcile(bad) = %v, want ErrInvalid", err)
	}
	if err := Delete("no such-name"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Delete(bad name) = %v, want ErrInvalid", err)
	}
	if _, err := Read("x;y"); !errors.Is(err, ErrInvalid) {
		t.Errorf("Read(bad name) = %v, want ErrInvalid", err)
	}
}

func TestComments(t *testing.T) {
	withAddr := func(p Publish) Publish { p.HostAddr = hostIP; return p }
	tests := []struct {
		name string
		p    Publish
		want string
	}{
		{"any addr", pub("tcp", 8080, web1, 80, "web1"), "ovsfabric: publish tcp *:8080 -> web1 10.244.3.2:80"},
		{"specific addr udp", withAddr(pub("udp", 5353, web1, 53, "dns")), "ovsfabric: publish udp 172.30.0.11:5353 -> dns 10.244.3.2:53"},
		{"no name", pub("tcp", 1, web1, 65535, ""), "ovsfabric: publish tcp *:1 -> 10.244.3.2:65535"},
		{"sanitized name", pub("tcp", 80, web1, 80, `a b"c\d`+"\u00e9\n"), `ovsfabric: publish tcp *:80 -> a_b_c_d__ 10.244.3.2:80`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := commentPublish(tt.p); got != tt.want {
				t.Errorf("commentPublish() = %q, want %q", got, tt.want)
			}
		})
	}
	long := pub("tcp", 65535, web1, 65535, strings.Repeat("n", 300))
	long.HostAddr = netip.MustParseAddr("255.255.255.254")
	c := commentPublish(long)
	if len(c) > maxComment {
		t.Errorf("comment is %d bytes, want <= %d: %q", len(c), maxComment, c)
	}
	if !strings.HasSuffix(c, "~ 10.244.3.2:65535") {
		t.Errorf("shortened comment %q should keep the target and mark the cut", c)
	}
}

// TestDesiredIsDeterministic: the same rules in another order build the same
// table, so Reconcile does not rewrite it.
func TestDesiredIsDeterministic(t *testing.T) {
	a := Rules{Networks: defNet, Masquerade: true, Publish: []Publish{
		pub("udp", 53, web2, 53, "dns"), pub("tcp", 8080, web1, 80, "web1"), pub("tcp", 443, web2, 8443, "web2"),
	}}
	b := a
	b.Publish = []Publish{a.Publish[2], a.Publish[0], a.Publish[1]}
	a.Networks = []Network{defNet[0], blueNet, redNet}
	b.Networks = []Network{redNet, {Name: "default", CIDR: netip.MustParsePrefix("10.244.7.7/16"), Slice: netip.MustParsePrefix("10.244.3.9/24")}, blueNet}
	na, err := a.normalized()
	if err != nil {
		t.Fatal(err)
	}
	nb, err := b.normalized()
	if err != nil {
		t.Fatal(err)
	}
	da, db := desired(na), desired(nb)
	if len(da) != len(db) {
		t.Fatalf("chains: %d vs %d", len(da), len(db))
	}
	for i := range da {
		if da[i].name != db[i].name || len(da[i].rules) != len(db[i].rules) {
			t.Fatalf("chain %d differs: %s/%d vs %s/%d", i, da[i].name, len(da[i].rules), db[i].name, len(db[i].rules))
		}
		for j := range da[i].rules {
			ra, rb := da[i].rules[j], db[i].rules[j]
			if ra.comment != rb.comment || !sameExprs(ra.exprs, rb.exprs) {
				t.Errorf("chain %s rule %d differs: %q vs %q", da[i].name, j, ra.comment, rb.comment)
			}
		}
	}
}

// TestDesiredLayout checks which rules exist for which options.
func TestDesiredLayout(t *testing.T) {
	jumps := map[string][]string{chainPrerouting: {commentJumpPrerouting}, chainOutput: {commentJumpOutput}}
	layout := func(publish, post, fwd, between []string) map[string][]string {
		m := maps.Clone(jumps)
		m[chainPublish], m[chainPostrouting], m[chainForward], m[chainBetween] = publish, post, fwd, between
		return m
	}
	defFwd := []string{"ovsfabric: network default: forward within 10.244.0.0/16", "ovsfabric: network default: check forwarding out of 10.244.0.0/16"}
	defBetween := []string{"ovsfabric: network default: drop forwarding into 10.244.0.0/16 from another network"}
	three := []Network{redNet, defNet[0], blueNet}
	tests := []struct {
		name  string
		rules Rules
		want  map[string][]string // chain -> comments
	}{
		{"nothing", Rules{}, layout(nil, nil, nil, nil)},
		{"one network", Rules{Networks: defNet}, layout(nil, nil, defFwd, defBetween)},
		{"masquerade", Rules{Networks: defNet, Masquerade: true}, layout(nil, []string{
			"ovsfabric: network default: traffic to 10.244.0.0/16 keeps its source",
			"ovsfabric: network default: masquerade 10.244.3.0/24 to outside the networks",
		}, defFwd, defBetween)},
		{"masquerade, no slice here", Rules{Networks: []Network{{Name: "default", CIDR: cluster}}, Masquerade: true}, layout(nil, nil, defFwd, defBetween)},
		{"publish without masquerade still gets hairpin", Rules{Networks: defNet, Publish: []Publish{pub("tcp", 8080, web1, 80, "web1")}}, layout(
			[]string{"ovsfabric: publish tcp *:8080 -> web1 10.244.3.2:80"},
			[]string{"ovsfabric: network default: hairpin: masquerade DNATed traffic within 10.244.0.0/16"},
			defFwd, defBetween)},
		{"three networks, one internal, publish on blue", Rules{Networks: three, Masquerade: true, Publish: []Publish{pub("udp", 53, blue1, 53, "")}}, layout(
			[]string{"ovsfabric: publish udp *:53 -> 10.50.1.2:53"},
			[]string{
				"ovsfabric: network blue: hairpin: masquerade DNATed traffic within 10.50.0.0/16",
				"ovsfabric: network blue: traffic to 10.50.0.0/16 keeps its source",
				"ovsfabric: network red: traffic to 10.60.0.0/16 keeps its source",
				"ovsfabric: network default: traffic to 10.244.0.0/16 keeps its source",
				"ovsfabric: network blue: masquerade 10.50.1.0/24 to outside the networks",
				"ovsfabric: network default: masquerade 10.244.3.0/24 to outside the networks",
			},
			[]string{
				"ovsfabric: network blue: forward within 10.50.0.0/16",
				"ovsfabric: network red: forward within 10.60.0.0/16",
				"ovsfabric: network default: forward within 10.244.0.0/16",
				"ovsfabric: network red: internal: drop forwarding out of 10.60.0.0/16",
				"ovsfabric: network red: internal: drop forwarding into 10.60.0.0/16",
				"ovsfabric: network blue: check forwarding out of 10.50.0.0/16",
				"ovsfabric: network default: check forwarding out of 10.244.0.0/16",
			},
			[]string{
				"ovsfabric: network blue: drop forwarding into 10.50.0.0/16 from another network",
				"ovsfabric: network red: drop forwarding into 10.60.0.0/16 from another network",
				"ovsfabric: network default: drop forwarding into 10.244.0.0/16 from another network",
			})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			n, err := tt.rules.normalized()
			if err != nil {
				t.Fatal(err)
			}
			got := map[string][]string{}
			for _, c := range desired(n) {
				var cs []string
				for _, r := range c.rules {
					if len(r.comment) > maxComment {
						t.Errorf("comment %q is longer than %d bytes", r.comment, maxComment)
					}
					cs = append(cs, r.comment)
				}
				got[c.name] = cs
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("layout = %v, want %v", got, tt.want)
			}
		})
	}
}

// TestDecodeRoundTrip decodes the rules desired() builds (as Read does for the
// kernel's copy) and expects the normalized input back, less the slices no
// rule shows.
func TestDecodeRoundTrip(t *testing.T) {
	h := pub("udp", 5353, web2, 53, "dns")
	h.HostAddr = hostIP
	long := strings.Repeat("n", MaxNetworkName)
	tests := map[string]Rules{
		"masquerade":  {Networks: defNet, Masquerade: true},
		"no networks": {},
		"wide, two publishes": {Networks: []Network{{Name: "wide", CIDR: netip.MustParsePrefix("10.0.0.0/8"), Slice: netip.MustParsePrefix("10.9.0.0/16")}}, Masquerade: true,
			Publish: []Publish{pub("tcp", 8080, netip.MustParseAddr("10.9.9.9"), 80, "web1"), h}},
		"no masquerade":  {Networks: []Network{{Name: "n", CIDR: netip.MustParsePrefix("192.168.5.0/24"), Slice: netip.MustParsePrefix("192.168.5.64/26")}}, Publish: []Publish{pub("tcp", 1, netip.MustParseAddr("192.168.5.77"), 65535, "")}},
		"a /32 network":  {Networks: []Network{{Name: long, CIDR: netip.MustParsePrefix("10.244.3.2/32"), Slice: netip.MustParsePrefix("10.244.3.2/32")}}, Masquerade: true, Publish: []Publish{pub("tcp", 1, web1, 2, "a")}},
		"three networks": {Networks: []Network{redNet, defNet[0], blueNet, {Name: "far", CIDR: netip.MustParsePrefix("172.20.0.0/16")}}, Masquerade: true, Publish: []Publish{pub("tcp", 80, blue1, 80, "b"), h}},
	}
	for name, in := range tests {
		t.Run(name, func(t *testing.T) {
			n, err := in.normalized()
			if err != nil {
				t.Fatal(err)
			}
			var d decoder
			for _, c := range desired(n) {
				for _, r := range c.rules {
					if !d.rule(c.name, r.comment, r.exprs) {
						t.Errorf("rule %q in %s not recognized", r.comment, c.name)
					}
				}
			}
			if got, want := d.rules(n.Table), visible(n); !reflect.DeepEqual(got, want) {
				t.Errorf("decoded %+v, want %+v", got, want)
			}
		})
	}
}

// visible is normalized rules n as Read can see them: a slice only where a
// masquerade rule shows it.
func visible(n Rules) Rules {
	n.Networks = slices.Clone(n.Networks)
	for i := range n.Networks {
		if !n.Masquerade || n.Networks[i].Internal {
			n.Networks[i].Slice = netip.Prefix{}
		}
	}
	return n
}

func TestDecodeRejectsForeignRules(t *testing.T) {
	n, err := Rules{Networks: defNet, Masquerade: true, Publish: []Publish{pub("tcp", 8080, web1, 80, "")}}.normalized()
	if err != nil {
		t.Fatal(err)
	}
	dc := desired(n)
	pubRule := dc[2].rules[0].exprs
	masq := dc[3].rules[2].exprs
	within := dc[4].rules[0].exprs
	var d decoder
	// Drop the NAT expression, or the final masquerade or verdict: no longer ours.
	if d.rule(chainPublish, "", pubRule[:len(pubRule)-1]) {
		t.Error("truncated publish rule recognized")
	}
	if d.rule(chainPostrouting, "", masq[:len(masq)-1]) {
		t.Error("truncated masquerade rule recognized")
	}
	if d.rule(chainForward, "", within[:len(within)-1]) {
		t.Error("forward rule without its verdict recognized")
	}
	if d.rule("other", "", masq) {
		t.Error("rule in unknown chain recognized")
	}
	if d.rule(chainPrerouting, "", masq) {
		t.Error("masquerade rule recognized as jump")
	}
	if d.rule(chainForward, "", masq) {
		t.Error("masquerade rule recognized in forward")
	}
	if d.rule(chainBetween, "", within) {
		t.Error("accept rule recognized in between")
	}
	if got := d.rules(DefaultTable); len(got.Networks)+len(got.Publish) != 0 || got.Masquerade {
		t.Errorf("rejected rules left %+v", got)
	}
}

func TestSafeUserData(t *testing.T) {
	tests := []struct {
		in, want []byte
	}{
		{nil, nil},
		{[]byte{0}, []byte{}},
		{[]byte{0, 2, 'a', 0}, []byte{0, 2, 'a', 0}},
		{[]byte{0, 9, 'a', 0}, []byte{}},
		{[]byte{0, 1, 0, 5, 5}, []byte{0, 1, 0}},
	}
	for _, tt := range tests {
		if got := safeUserData(tt.in); !reflect.DeepEqual(got, tt.want) && len(got)+len(tt.want) > 0 {
			t.Errorf("safeUserData(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

package natrules

import (
	"errors"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

var (
	cluster = netip.MustParsePrefix("10.244.0.0/16")
	web1    = netip.MustParseAddr("10.244.3.2")
	web2    = netip.MustParseAddr("10.244.3.3")
	hostIP  = netip.MustParseAddr("172.30.0.11")
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
		{"empty publish, masquerade", Rules{ClusterCIDR: cluster, Masquerade: true}, ""},
		{"one publish", Rules{ClusterCIDR: cluster, Publish: []Publish{ok}}, ""},
		{"udp and tcp on same port", Rules{ClusterCIDR: cluster, Publish: []Publish{ok, pub("udp", 8080, web2, 53, "dns")}}, ""},
		{"two specific host addrs on same port", Rules{ClusterCIDR: cluster, Publish: []Publish{
			withAddr(ok, "172.30.0.11"), withAddr(pub("tcp", 8080, web2, 80, ""), "172.30.0.12")}}, ""},
		{"0.0.0.0 means any", Rules{ClusterCIDR: cluster, Publish: []Publish{withAddr(ok, "0.0.0.0")}}, ""},
		{"v4-mapped addresses accepted", Rules{ClusterCIDR: cluster, Publish: []Publish{
			{Proto: "tcp", HostAddr: netip.MustParseAddr("::ffff:172.30.0.11"), HostPort: 1, ContainerIP: netip.MustParseAddr("::ffff:10.244.3.2"), ContainerPort: 65535}}}, ""},
		{"custom table", Rules{Table: "fab_1", ClusterCIDR: cluster}, ""},
		{"host bits in CIDR are ignored", Rules{ClusterCIDR: netip.MustParsePrefix("10.244.3.1/16"), Publish: []Publish{ok}}, ""},

		{"bad table name", Rules{Table: "my-table", ClusterCIDR: cluster}, `table name "my-table"`},
		{"table name too long", Rules{Table: strings.Repeat("a", 65), ClusterCIDR: cluster}, "table name"},
		{"missing CIDR", Rules{Masquerade: true}, "cluster CIDR is missing"},
		{"IPv6 CIDR", Rules{ClusterCIDR: netip.MustParsePrefix("fd00::/64")}, "must be IPv4"},
		{"/0 CIDR", Rules{ClusterCIDR: netip.MustParsePrefix("0.0.0.0/0")}, "/0"},
		{"bad proto", Rules{ClusterCIDR: cluster, Publish: []Publish{pub("sctp", 80, web1, 80, "x")}}, `publish[0] (x): proto "sctp"`},
		{"upper-case proto", Rules{ClusterCIDR: cluster, Publish: []Publish{pub("TCP", 80, web1, 80, "")}}, `proto "TCP"`},
		{"empty proto", Rules{ClusterCIDR: cluster, Publish: []Publish{pub("", 80, web1, 80, "")}}, `proto ""`},
		{"host port 0", Rules{ClusterCIDR: cluster, Publish: []Publish{pub("tcp", 0, web1, 80, "")}}, "host port 0"},
		{"container port 0", Rules{ClusterCIDR: cluster, Publish: []Publish{pub("udp", 53, web1, 0, "")}}, "container port 0"},
		{"container IP outside cluster", Rules{ClusterCIDR: cluster, Publish: []Publish{pub("tcp", 80, netip.MustParseAddr("172.17.0.2"), 80, "")}}, "not inside the cluster CIDR 10.244.0.0/16"},
		{"container IP missing", Rules{ClusterCIDR: cluster, Publish: []Publish{pub("tcp", 80, netip.Addr{}, 80, "")}}, "container IP is missing"},
		{"container IP v6", Rules{ClusterCIDR: cluster, Publish: []Publish{pub("tcp", 80, netip.MustParseAddr("fd00::2"), 80, "")}}, "container IP fd00::2: must be IPv4"},
		{"host addr v6", Rules{ClusterCIDR: cluster, Publish: []Publish{withAddr(ok, "fd00::1")}}, "host address fd00::1: must be IPv4"},
		{"host addr loopback", Rules{ClusterCIDR: cluster, Publish: []Publish{withAddr(ok, "127.0.0.1")}}, "loopback"},
		{"host addr multicast", Rules{ClusterCIDR: cluster, Publish: []Publish{withAddr(ok, "224.0.0.1")}}, "unicast"},
		{"duplicate", Rules{ClusterCIDR: cluster, Publish: []Publish{ok, pub("tcp", 8080, web2, 81, "web2")}}, "publish[1] (web2): tcp *:8080 conflicts with publish[0] (tcp *:8080 -> web1 10.244.3.2:80)"},
		{"duplicate same specific addr", Rules{ClusterCIDR: cluster, Publish: []Publish{withAddr(ok, "172.30.0.11"), withAddr(ok, "172.30.0.11")}}, "conflicts with publish[0]"},
		{"any overlaps specific", Rules{ClusterCIDR: cluster, Publish: []Publish{withAddr(ok, "172.30.0.11"), pub("tcp", 8080, web2, 80, "")}}, "publish[1]: tcp *:8080 conflicts"},
		{"specific overlaps any", Rules{ClusterCIDR: cluster, Publish: []Publish{ok, withAddr(ok, "172.30.0.11")}}, "tcp 172.30.0.11:8080 conflicts"},
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
	for _, want := range []string{"cluster CIDR is missing", `proto "icmp"`, "host port 0", "container port 0"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q lacks %q", err, want)
		}
	}
}

// TestBadInputChangesNothing checks that every entry point rejects bad input
// before touching the kernel (these run without root).
func TestBadInputChangesNothing(t *testing.T) {
	if _, err := Reconcile(Rules{ClusterCIDR: cluster, Publish: []Publish{pub("tcp", 0, web1, 80, "")}}); !errors.Is(err, ErrInvalid) {
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
	a := Rules{ClusterCIDR: cluster, Masquerade: true, Publish: []Publish{
		pub("udp", 53, web2, 53, "dns"), pub("tcp", 8080, web1, 80, "web1"), pub("tcp", 443, web2, 8443, "web2"),
	}}
	b := a
	b.Publish = []Publish{a.Publish[2], a.Publish[0], a.Publish[1]}
	b.ClusterCIDR = netip.MustParsePrefix("10.244.7.7/16")
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
	tests := []struct {
		name  string
		rules Rules
		want  map[string][]string // chain -> comments
	}{
		{
			name:  "nothing",
			rules: Rules{ClusterCIDR: cluster},
			want: map[string][]string{
				chainPrerouting: {commentJumpPrerouting}, chainOutput: {commentJumpOutput},
				chainPublish: nil, chainPostrouting: nil,
			},
		},
		{
			name:  "masquerade only",
			rules: Rules{ClusterCIDR: cluster, Masquerade: true},
			want: map[string][]string{
				chainPrerouting: {commentJumpPrerouting}, chainOutput: {commentJumpOutput},
				chainPublish: nil, chainPostrouting: {"ovsfabric: masquerade 10.244.0.0/16 to outside the cluster"},
			},
		},
		{
			name:  "publish without masquerade still gets hairpin",
			rules: Rules{ClusterCIDR: cluster, Publish: []Publish{pub("tcp", 8080, web1, 80, "web1")}},
			want: map[string][]string{
				chainPrerouting: {commentJumpPrerouting}, chainOutput: {commentJumpOutput},
				chainPublish:     {"ovsfabric: publish tcp *:8080 -> web1 10.244.3.2:80"},
				chainPostrouting: {commentHairpin},
			},
		},
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
// kernel's copy) and expects the normalized input back.
func TestDecodeRoundTrip(t *testing.T) {
	h := pub("udp", 5353, web2, 53, "dns")
	h.HostAddr = hostIP
	tests := []Rules{
		{ClusterCIDR: cluster, Masquerade: true},
		{ClusterCIDR: netip.MustParsePrefix("10.0.0.0/8"), Masquerade: true, Publish: []Publish{pub("tcp", 8080, netip.MustParseAddr("10.9.9.9"), 80, "web1"), h}},
		{ClusterCIDR: netip.MustParsePrefix("192.168.5.0/24"), Publish: []Publish{pub("tcp", 1, netip.MustParseAddr("192.168.5.77"), 65535, "")}},
		{ClusterCIDR: netip.MustParsePrefix("10.244.3.2/32"), Masquerade: true, Publish: []Publish{pub("tcp", 1, web1, 2, "a")}},
	}
	for _, in := range tests {
		t.Run(in.ClusterCIDR.String(), func(t *testing.T) {
			n, err := in.normalized()
			if err != nil {
				t.Fatal(err)
			}
			got := Rules{Table: n.Table}
			for _, c := range desired(n) {
				for _, r := range c.rules {
					if !decodeRule(&got, c.name, r.comment, r.exprs) {
						t.Errorf("rule %q in %s not recognized", r.comment, c.name)
					}
				}
			}
			if !reflect.DeepEqual(got, n) {
				t.Errorf("decoded %+v, want %+v", got, n)
			}
		})
	}
}

func TestDecodeRejectsForeignRules(t *testing.T) {
	n, err := Rules{ClusterCIDR: cluster, Masquerade: true, Publish: []Publish{pub("tcp", 8080, web1, 80, "")}}.normalized()
	if err != nil {
		t.Fatal(err)
	}
	d := desired(n)
	pubRule := d[2].rules[0].exprs
	masq := d[3].rules[1].exprs
	var r Rules
	// Drop the NAT expression, or the final masquerade: no longer ours.
	if decodeRule(&r, chainPublish, "", pubRule[:len(pubRule)-1]) {
		t.Error("truncated publish rule recognized")
	}
	if decodeRule(&r, chainPostrouting, "", masq[:len(masq)-1]) {
		t.Error("truncated masquerade rule recognized")
	}
	if decodeRule(&r, "other", "", masq) {
		t.Error("rule in unknown chain recognized")
	}
	if decodeRule(&r, chainPrerouting, "", masq) {
		t.Error("masquerade rule recognized as jump")
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

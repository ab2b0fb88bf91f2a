package peers

import (
	"bytes"
	"encoding/json"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/hashicorp/memberlist"
)

func TestMetaRoundTrip(t *testing.T) {
	worst := Meta{
		Proto:       1 << 40,
		Addr:        netip.MustParseAddr("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
		Subnet:      netip.MustParsePrefix("2001:db8:ffff:ffff:ffff:ffff:ffff:ff00/120"),
		SubnetSince: 1<<63 - 1,
		Tunnel:      TunnelVXLAN,
		ClusterCIDR: netip.MustParsePrefix("2001:db8::/32"),
		MTU:         65535,
	}
	unclaimed := testMeta(3)
	unclaimed.Subnet, unclaimed.SubnetSince = netip.Prefix{}, 0
	noMTU := testMeta(4)
	noMTU.MTU = 0
	retaining := testMeta(5)
	retaining.SubnetSeq = 42
	retaining.Retained = []RetainedClaim{{Node: "gone-1", Subnet: netip.MustParsePrefix("10.244.9.0/24"), Seq: 7}, {Node: "gone-2", Subnet: netip.MustParsePrefix("10.244.10.0/24")}}
	for _, tc := range []struct {
		name string
		meta Meta
	}{
		{"ipv4", testMeta(3)},
		{"unclaimed", unclaimed},
		{"no mtu", noMTU},
		{"seq and retained", retaining},
		{"largest ipv6", worst},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := EncodeMeta(tc.meta)
			if err != nil {
				t.Fatal(err)
			}
			if len(b) > memberlist.MetaMaxSize {
				t.Fatalf("%d bytes > %d", len(b), memberlist.MetaMaxSize)
			}
			got, err := decodeMeta(b)
			if err != nil {
				t.Fatal(err)
			}
			if !got.Equal(tc.meta) {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tc.meta)
			}
			t.Logf("%d bytes: %s", len(b), b)
		})
	}
}

func TestMetaDecodeTolerant(t *testing.T) {
	// A newer node may add keys; they are ignored.
	got, err := decodeMeta([]byte(`{"v":1,"a":"10.0.0.1","u":"gre","c":"10.244.0.0/16","new":[1,2]}`))
	if err != nil {
		t.Fatal(err)
	}
	if got.Addr != netip.MustParseAddr("10.0.0.1") || got.Subnet.IsValid() {
		t.Fatalf("got %+v", got)
	}
	for _, bad := range [][]byte{nil, []byte("{"), []byte(`{"a":"not-an-ip"}`), bytes.Repeat([]byte(" "), memberlist.MetaMaxSize+1)} {
		if _, err := decodeMeta(bad); err == nil {
			t.Errorf("decodeMeta(%.20q) succeeded", bad)
		}
	}
}

// v1WireMeta is the metadata encoding of the first fabricd version (before claim sequence
// numbers and retained claims), kept here to prove that both versions read each other.
type v1WireMeta struct {
	Proto       int          `json:"v"`
	Addr        netip.Addr   `json:"a,omitzero"`
	Subnet      netip.Prefix `json:"s,omitzero"`
	SubnetSince int64        `json:"t,omitempty"`
	Tunnel      string       `json:"u,omitempty"`
	ClusterCIDR netip.Prefix `json:"c,omitzero"`
	MTU         int          `json:"m,omitempty"`
}

func TestMetaPreviousVersion(t *testing.T) {
	// What a node of the previous version announces decodes, with no Seq and nothing retained.
	old := v1WireMeta{Proto: 1, Addr: netip.MustParseAddr("10.0.0.1"), Subnet: netip.MustParsePrefix("10.244.3.0/24"),
		SubnetSince: 1700000000000, Tunnel: TunnelGRE, ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"), MTU: 1458}
	b, err := json.Marshal(old)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeMeta(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.SubnetSeq != 0 || got.Retained != nil || got.Subnet != old.Subnet || got.SubnetSince != old.SubnetSince || got.Validate() != nil {
		t.Fatalf("previous version's metadata decoded as %+v", got)
	}
	if err := DefaultCompatible(testMeta(1), got); err != nil && !strings.Contains(err.Error(), "tunnel") {
		t.Fatalf("previous version refused: %v", err)
	}
	// What this version announces decodes on a node of the previous version (json ignores
	// unknown keys there too), with the same claim and claim time.
	cur := testMeta(2)
	cur.SubnetSeq = 9
	cur.Retained = []RetainedClaim{{Node: "gone", Subnet: netip.MustParsePrefix("10.244.200.0/24"), Seq: 3}}
	b, err = EncodeMeta(cur)
	if err != nil {
		t.Fatal(err)
	}
	var v1 v1WireMeta
	if err := json.Unmarshal(b, &v1); err != nil {
		t.Fatalf("previous version cannot decode %s: %v", b, err)
	}
	if v1.Proto != ProtocolVersion || v1.Subnet != cur.Subnet || v1.SubnetSince != cur.SubnetSince || v1.Addr != cur.Addr {
		t.Fatalf("previous version reads %+v from %s", v1, b)
	}
}

func TestMetaValidate(t *testing.T) {
	mod := func(f func(*Meta)) Meta {
		m := testMeta(1)
		f(&m)
		return m
	}
	for _, tc := range []struct {
		name string
		meta Meta
		want string
	}{
		{"no proto", mod(func(m *Meta) { m.Proto = 0 }), "protocol version"},
		{"no addr", mod(func(m *Meta) { m.Addr = netip.Addr{} }), "underlay address"},
		{"unspecified addr", mod(func(m *Meta) { m.Addr = netip.IPv4Unspecified() }), "underlay address"},
		{"zone", mod(func(m *Meta) { m.Addr = netip.MustParseAddr("fe80::1%eth0") }), "zones"},
		{"tunnel", mod(func(m *Meta) { m.Tunnel = "geneve" }), "tunnel type"},
		{"no cluster", mod(func(m *Meta) { m.ClusterCIDR = netip.Prefix{} }), "cluster CIDR missing"},
		{"cluster host bits", mod(func(m *Meta) { m.ClusterCIDR = netip.MustParsePrefix("10.244.0.1/16") }), "host bits"},
		{"subnet outside", mod(func(m *Meta) { m.Subnet = netip.MustParsePrefix("10.245.1.0/24") }), "outside cluster"},
		{"subnet wider", mod(func(m *Meta) { m.Subnet = netip.MustParsePrefix("10.0.0.0/8") }), "outside cluster"},
		{"subnet host bits", mod(func(m *Meta) { m.Subnet = netip.MustParsePrefix("10.244.1.1/24") }), "host bits"},
		{"negative since", mod(func(m *Meta) { m.SubnetSince = -1 }), "negative"},
		{"retained outside", mod(func(m *Meta) {
			m.Retained = []RetainedClaim{{Node: "x", Subnet: netip.MustParsePrefix("10.245.1.0/24")}}
		}), "retained claim"},
		{"retained no name", mod(func(m *Meta) {
			m.Retained = []RetainedClaim{{Subnet: netip.MustParsePrefix("10.244.1.0/24")}}
		}), "retained claim"},
		{"mtu", mod(func(m *Meta) { m.MTU = 70000 }), "MTU"},
		{"encryption", mod(func(m *Meta) { m.Encryption = "ipsec" }), "encryption"},
		{"key without encryption", mod(func(m *Meta) { m.WireGuardKey = testWGKey }), "without encryption"},
		{"no key", mod(func(m *Meta) { m.Encryption, m.WireGuardPort = EncryptionWireGuard, 51820 }), "public key"},
		{"short key", mod(func(m *Meta) { m.Encryption, m.WireGuardKey, m.WireGuardPort = EncryptionWireGuard, "AAAA", 51820 }), "public key"},
		{"no port", mod(func(m *Meta) { m.Encryption, m.WireGuardKey = EncryptionWireGuard, testWGKey }), "WireGuard port"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.meta.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
			if _, err := EncodeMeta(tc.meta); err == nil {
				t.Fatal("EncodeMeta accepted invalid metadata")
			}
		})
	}
}

func TestDefaultCompatible(t *testing.T) {
	mod := func(f func(*Meta)) Meta {
		m := testMeta(2)
		f(&m)
		return m
	}
	for _, tc := range []struct {
		name   string
		remote Meta
		want   string
	}{
		{"same", testMeta(2), ""},
		{"other subnet and addr", testMeta(9), ""},
		{"tunnel", mod(func(m *Meta) { m.Tunnel = TunnelVXLAN }), "tunnel vxlan != local gre"},
		{"cluster", mod(func(m *Meta) { m.ClusterCIDR = netip.MustParsePrefix("10.0.0.0/8") }), "cluster CIDR 10.0.0.0/8 != local 10.244.0.0/16"},
		{"proto", mod(func(m *Meta) { m.Proto = 2 }), "protocol version 2 != local 1"},
		{"encryption", mod(func(m *Meta) { m.Encryption, m.WireGuardKey, m.WireGuardPort = EncryptionWireGuard, testWGKey, 51820 }), "encryption wireguard != local (none)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := DefaultCompatible(testMeta(1), tc.remote)
			if got := errString(err); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func TestParseMemberlistLine(t *testing.T) {
	for _, tc := range []struct {
		line  string
		level slog.Level
		msg   string
	}{
		{"[DEBUG] memberlist: Stream connection from=127.0.0.1:1\n", slog.LevelDebug, "Stream connection from=127.0.0.1:1"},
		{"[INFO] memberlist: Suspect b has failed, no acks received\n", slog.LevelInfo, "Suspect b has failed, no acks received"},
		{"[WARN] memberlist: Refuting a suspect message (from: a)", slog.LevelWarn, "Refuting a suspect message (from: a)"},
		{"[ERR] memberlist: Failed push/pull merge: x", slog.LevelError, "Failed push/pull merge: x"},
		{"[ERROR] something", slog.LevelError, "something"},
		{"[ERR] memberlist: Failed to send gossip to 127.0.0.1:2: write udp 127.0.0.1:1->127.0.0.1:2: use of closed network connection",
			slog.LevelDebug, "Failed to send gossip to 127.0.0.1:2: write udp 127.0.0.1:1->127.0.0.1:2: use of closed network connection"},
		{"Err: Could not set the deadline: x", slog.LevelInfo, "Err: Could not set the deadline: x"},
		{"\n", slog.LevelInfo, ""},
	} {
		level, msg := parseMemberlistLine(tc.line)
		if level != tc.level || msg != tc.msg {
			t.Errorf("parse(%q) = %v %q, want %v %q", tc.line, level, msg, tc.level, tc.msg)
		}
	}
}

func TestJoinAddr(t *testing.T) {
	for _, tc := range []struct {
		in   string
		port int
		want string
		err  bool
	}{
		{"10.0.0.1", 7946, "10.0.0.1:7946", false},
		{"10.0.0.1", 0, "10.0.0.1:7946", false},
		{"10.0.0.1:8000", 7946, "10.0.0.1:8000", false},
		{"host-a", 9000, "host-a:9000", false},
		{"host-a:9001", 9000, "host-a:9001", false},
		{"2001:db8::1", 7946, "[2001:db8::1]:7946", false},
		{"[2001:db8::1]", 7946, "[2001:db8::1]:7946", false},
		{"[2001:db8::1]:8000", 7946, "[2001:db8::1]:8000", false},
		{"", 7946, "", true},
		{"10.0.0.1:0", 7946, "", true},
		{"10.0.0.1:http", 7946, "", true},
		{":7946", 7946, "", true},
	} {
		got, err := joinAddr(tc.in, tc.port)
		if got != tc.want || (err != nil) != tc.err {
			t.Errorf("joinAddr(%q, %d) = %q, %v; want %q, err %v", tc.in, tc.port, got, err, tc.want, tc.err)
		}
	}
}

func TestJoinError(t *testing.T) {
	multi := func(s string) error { return errors.New("1 error occurred:\n\t* " + s + "\n\n") }
	for _, tc := range []struct {
		name         string
		err          error
		want         string
		incompatible bool
	}{
		{"refused", multi("failed to join 127.0.0.1:7946: " + refusalMarker + "node a (127.0.0.1:7946): tunnel gre != local vxlan"),
			"join 127.0.0.1:7946: incompatible cluster: node a (127.0.0.1:7946): tunnel gre != local vxlan", true},
		{"unreachable", multi("failed to join 127.0.0.1:7946: dial tcp 127.0.0.1:7946: connect: connection refused"),
			"join 127.0.0.1:7946: dial tcp 127.0.0.1:7946: connect: connection refused", false},
		{"key", multi("failed to join 127.0.0.1:7946: No installed keys could decrypt the message"),
			"join 127.0.0.1:7946: No installed keys could decrypt the message (do all members use the same gossip key?)", false},
		{"plain", errors.New("boom"), "join 127.0.0.1:7946: boom", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := joinError("127.0.0.1:7946", tc.err)
			if err.Error() != tc.want {
				t.Errorf("got  %q\nwant %q", err, tc.want)
			}
			if errors.Is(err, ErrIncompatible) != tc.incompatible {
				t.Errorf("errors.Is(ErrIncompatible) = %v", !tc.incompatible)
			}
		})
	}
}

func TestByeCodec(t *testing.T) {
	bye := encodeBye("node-b", 7)
	if name, nonce, err := decodeBye(bye); err != nil || name != "node-b" || nonce != 7 {
		t.Fatalf("decodeBye = %q %d %v", name, nonce, err)
	}
	if _, _, err := decodeBye(bye[:len(bye)-1]); err == nil {
		t.Fatal("decodeBye accepted a truncated message")
	}
}

func TestLogWriter(t *testing.T) {
	var buf bytes.Buffer
	w := &logWriter{log: slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelInfo}))}
	for _, l := range []string{"[DEBUG] memberlist: chatter\n", "[WARN] memberlist: Refuting a dead message (from: b)\n"} {
		if n, err := w.Write([]byte(l)); n != len(l) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	out := buf.String()
	if strings.Contains(out, "chatter") {
		t.Errorf("debug line logged at Info: %s", out)
	}
	if !strings.Contains(out, `level=WARN msg="Refuting a dead message (from: b)" src=memberlist`) {
		t.Errorf("warning not logged as such: %s", out)
	}
}

// testWGKey is a WireGuard public key as gossip carries it.
const testWGKey = "hIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="

// TestMetaWireGuard: a node with encryption fits, round-trips, and with the longest
// retained-claims list still fits memberlist's limit.
func TestMetaWireGuard(t *testing.T) {
	m := testMeta(1)
	m.Encryption, m.WireGuardKey, m.WireGuardPort = EncryptionWireGuard, testWGKey, 51820
	b, err := EncodeMeta(m)
	if err != nil {
		t.Fatal(err)
	}
	got, err := decodeMeta(b)
	if err != nil || !got.Equal(m) {
		t.Fatalf("round trip: %+v, %v; want %+v", got, err, m)
	}
	if !strings.Contains(string(b), `"e":"wireguard","wk":"`+testWGKey+`","wp":51820`) {
		t.Errorf("encoding %s lacks the WireGuard keys", b)
	}
	if err := DefaultCompatible(m, got); err != nil {
		t.Errorf("two WireGuard nodes: %v", err)
	}
}

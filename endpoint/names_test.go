package endpoint

import (
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/ovsdb"
)

func TestParseNames(t *testing.T) {
	for _, tc := range []struct {
		name    string
		aliases []string
		wantN   string
		wantA   []string
		err     string
	}{
		{"web", nil, "web", nil, ""},
		{" Web ", []string{"WWW", "api", "www"}, "web", []string{"api", "www"}, ""},
		{"", []string{"db"}, "", []string{"db"}, ""},
		{"my_web-1", nil, "my_web-1", nil, ""},
		{"web.default", nil, "", nil, "not allowed"},
		{"-web", nil, "", nil, "starts or ends"},
		{strings.Repeat("a", 64), nil, "", nil, "1 to 63"},
		{"web", []string{""}, "", nil, "--alias"},
		{"web", []string{"a b"}, "", nil, "--alias"},
		{"web", make([]string, maxAliases+1), "", nil, "at most"},
	} {
		n, a, err := parseNames(tc.name, tc.aliases)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) || api.StatusCode(err) != http.StatusBadRequest {
				t.Errorf("%q %q: err %v, want a 400 with %q", tc.name, tc.aliases, err, tc.err)
			}
			continue
		}
		if err != nil || n != tc.wantN || !reflect.DeepEqual(a, tc.wantA) {
			t.Errorf("%q %q = %q %q %v, want %q %q", tc.name, tc.aliases, n, a, err, tc.wantN, tc.wantA)
		}
	}
}

func TestDefaultName(t *testing.T) {
	for _, tc := range []struct {
		kind TargetKind
		t    api.Target
		want string
	}{
		{TargetContainer, api.Target{Name: "Web1"}, "web1"},
		{TargetContainer, api.Target{Name: "/web1"}, "web1"},
		{TargetContainer, api.Target{Name: "web.1"}, ""}, // not a label: no name
		{TargetNetNS, api.Target{Name: "blue", NetNS: "/var/run/netns/blue"}, "blue"},
		{TargetNetNS, api.Target{Name: "/proc/7/ns/net", NetNS: "/proc/7/ns/net"}, "net"},
		{TargetPID, api.Target{Name: "pid:7", NetNS: "/proc/7/ns/net"}, ""},
	} {
		if got := defaultName(tc.kind, tc.t); got != tc.want {
			t.Errorf("defaultName(%v, %+v) = %q, want %q", tc.kind, tc.t, got, tc.want)
		}
	}
}

// TestNamesTravel: names are stored on the port and in the shared record; a shared record
// of an older version (no names) still decodes, and bad names in one are refused.
func TestNamesTravel(t *testing.T) {
	r := Record{Port: "p1", Network: DefaultNetwork, Container: "web", NetNS: "/var/run/netns/web", IfName: "eth0",
		Addr: netip.MustParsePrefix("10.244.1.2/24"), Name: "web", Aliases: []string{"api", "www"}}
	spec := r.PortSpec("h1")
	if spec.ExternalIDs[ovsdb.KeyName] != "web" || spec.ExternalIDs[ovsdb.KeyAliases] != "api,www" {
		t.Errorf("external_ids %v", spec.ExternalIDs)
	}
	ids := map[string]string{ovsdb.KeyOwner: "h1", ovsdb.KeyRole: ovsdb.RoleContainer}
	for k, v := range spec.ExternalIDs {
		ids[k] = v
	}
	got, _ := Decode(ovsdb.PortInfo{Name: "p1", ExternalIDs: ids}, "h1")
	if got.Name != "web" || !reflect.DeepEqual(got.Aliases, []string{"api", "www"}) {
		t.Errorf("Decode: %+v", got)
	}
	cluster := netip.MustParsePrefix("10.244.0.0/16")
	a, err := DecodeShared("h1", EncodeShared(r), OnlyDefault(cluster))
	if err != nil || a.Name != "web" || !reflect.DeepEqual(a.Aliases, []string{"api", "www"}) || a.Network != DefaultNetwork {
		t.Errorf("shared round trip: %+v %v", a, err)
	}
	for _, tc := range []struct{ in, want string }{
		{`{"c":"web","a":"10.244.1.2/24"}`, ""},
		{`{"c":"web","a":"10.244.1.2/24","d":"web","al":["x","y"]}`, ""},
		{`{"c":"web","a":"10.244.1.2/24","d":"We b"}`, "not allowed"},
		{`{"c":"web","a":"10.244.1.2/24","al":[""]}`, "1 to 63"},
		{`{"c":"web","a":"10.244.1.2/24","al":[` + strings.Repeat(`"a",`, maxAliases) + `"a"]}`, "aliases"},
	} {
		_, err := decodeShared([]byte(tc.in), OnlyDefault(cluster))
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.60s: %v, want %q", tc.in, err, tc.want)
		}
	}
}

// TestResolvConf: a named netns gets /etc/netns/NAME/resolv.conf pointing at its gateway,
// unless the operator wrote one; detach removes only ours.
func TestResolvConf(t *testing.T) {
	dir := t.TempDir()
	s := settings(t)
	m := &Manager{s: s, log: slog.New(slog.DiscardHandler), netnsDir: filepath.Join(dir, "run"), etcNetns: filepath.Join(dir, "etc")}
	r := Record{NetNS: filepath.Join(dir, "run", "blue"), Addr: netip.MustParsePrefix("10.244.1.2/24")}
	f, err := m.writeResolvConf(r)
	if err != nil || f != filepath.Join(dir, "etc", "blue", "resolv.conf") {
		t.Fatalf("write: %q %v", f, err)
	}
	b, _ := os.ReadFile(f)
	if !strings.HasPrefix(string(b), resolvMark) || !strings.Contains(string(b), "nameserver 10.244.1.1\n") {
		t.Errorf("resolv.conf:\n%s", b)
	}
	m.removeResolvConf(r)
	if _, err := os.Stat(filepath.Join(dir, "etc", "blue")); !os.IsNotExist(err) {
		t.Errorf("not removed: %v", err)
	}
	// The operator's own file stays.
	own := filepath.Join(dir, "etc", "red", "resolv.conf")
	_ = os.MkdirAll(filepath.Dir(own), 0o755)
	_ = os.WriteFile(own, []byte("nameserver 9.9.9.9\n"), 0o644)
	red := Record{NetNS: filepath.Join(dir, "run", "red"), Addr: r.Addr}
	if f, err := m.writeResolvConf(red); f != "" || err != nil {
		t.Errorf("wrote over the operator's: %q %v", f, err)
	}
	m.removeResolvConf(red)
	if b, _ := os.ReadFile(own); string(b) != "nameserver 9.9.9.9\n" {
		t.Errorf("operator's file now %q", b)
	}
	// Not a named netns, or DNS off: nothing.
	if f, _ := m.writeResolvConf(Record{NetNS: "/proc/7/ns/net", Addr: r.Addr}); f != "" {
		t.Errorf("wrote %s for a pid netns", f)
	}
	m.s.DNS = false
	if f, _ := m.writeResolvConf(r); f != "" {
		t.Errorf("wrote %s with DNS off", f)
	}
}

// TestResolvConfMultiNetwork: a named netns on two networks keeps a resolv.conf naming the
// gateway of the network it keeps when it leaves the other, and loses it with its last.
func TestResolvConfMultiNetwork(t *testing.T) {
	dir := t.TempDir()
	m := &Manager{s: settings(t), log: slog.New(slog.DiscardHandler), netnsDir: filepath.Join(dir, "run"), etcNetns: filepath.Join(dir, "etc")}
	ns := filepath.Join(dir, "run", "multi")
	blue := Record{Port: "p-blue", NetNS: ns, IfName: "eth0", Network: "blue", Addr: netip.MustParsePrefix("10.50.1.2/24")}
	red := Record{Port: "p-red", NetNS: ns, IfName: "eth1", Network: "red", Addr: netip.MustParsePrefix("10.60.1.2/24")}
	other := Record{Port: "p-x", NetNS: filepath.Join(dir, "run", "x"), IfName: "eth0", Addr: netip.MustParsePrefix("10.50.1.3/24")}
	file := filepath.Join(dir, "etc", "multi", "resolv.conf")
	if _, err := m.writeResolvConf(blue); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		gone Record
		rest []Record
		want string // "": no file
	}{
		{blue, []Record{other, red}, "nameserver 10.60.1.1\n"},
		{red, []Record{other}, ""},
	} {
		m.resolverAfterDetach(tc.gone, tc.rest)
		b, err := os.ReadFile(file)
		switch {
		case tc.want == "" && !os.IsNotExist(err):
			t.Errorf("after detaching %s: %q %v, want no file", tc.gone.Network, b, err)
		case tc.want != "" && !strings.Contains(string(b), tc.want):
			t.Errorf("after detaching %s: %q %v, want %q", tc.gone.Network, b, err, tc.want)
		}
	}
}

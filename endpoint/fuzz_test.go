package endpoint

import (
	"net"
	"net/http"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/ovsfabric/ovsfabric/api"
)

// Fuzz targets for what reaches fabricd from outside: API request bodies, attach TARGETs,
// endpoint records other hosts share, and the YAML configuration. Their seed corpora run with the
// normal tests; `make fuzz` explores further.

func FuzzParseTarget(f *testing.F) {
	for _, s := range []string{"web1", "pid:4242", "/var/run/netns/blue", "/proc/1/ns/net", "", "pid:-1",
		"pid:99999999999", " pid:7 ", "a/b", "../x", "/a/../b", "x\x00y", strings.Repeat("a", 300)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		spec, err := ParseTarget(s)
		if err != nil {
			if api.StatusCode(err) != http.StatusBadRequest {
				t.Fatalf("%q: error %v is not a 400", s, err)
			}
			return
		}
		switch spec.Kind {
		case TargetPID:
			if spec.PID <= 0 || spec.PID > maxPID {
				t.Fatalf("%q: pid %d", s, spec.PID)
			}
		case TargetNetNS:
			if !strings.HasPrefix(spec.Name, "/") || strings.ContainsRune(spec.Name, 0) {
				t.Fatalf("%q: path %q", s, spec.Name)
			}
		case TargetContainer:
			if !containerName.MatchString(spec.Name) || len(spec.Name) > maxTargetName {
				t.Fatalf("%q: name %q", s, spec.Name)
			}
		default:
			t.Fatalf("%q: kind %d", s, spec.Kind)
		}
	})
}

func FuzzDecodeShared(f *testing.F) {
	for _, s := range []string{`{"c":"web","a":"10.244.1.2/24","m":"02:00:00:00:00:01"}`, `{}`, `null`,
		`{"c":"","a":"10.244.1.2/24"}`, `{"c":"x","a":"192.168.1.1/24"}`, `{"c":"x","a":"10.244.1.2/24","m":"01:00:5e:00:00:01"}`,
		`{"c":"x","a":"10.244.1.2/8"}`, `{"c":"x","a":"10.244.1.2/24","z":1}`, `{"c":"x","a":"10.244.1.2/24","p":["tcp:80:8080"]}`, `{"c":"x","a":"10.244.1.2/24","d":"web","al":["api","www"]}`, `{"c":"x","a":"10.244.1.2/24","d":"a.b","al":[""]}`} {
		f.Add([]byte(s))
	}
	cluster := netip.MustParsePrefix("10.244.0.0/16")
	f.Fuzz(func(t *testing.T, b []byte) {
		s, err := decodeShared(b, OnlyDefault(cluster))
		if err != nil {
			return
		}
		p, err := netip.ParsePrefix(s.Addr)
		if err != nil || !cluster.Contains(p.Addr()) || s.Container == "" {
			t.Fatalf("accepted %+v", s)
		}
	})
}

func TestSharedCodec(t *testing.T) {
	cluster := netip.MustParsePrefix("10.244.0.0/16")
	mac, _ := net.ParseMAC("02:00:0a:f4:01:02")
	r := Record{Port: "fab1234", Network: DefaultNetwork, Container: "web", ID: "abc", IfName: "eth0",
		Addr: netip.MustParsePrefix("10.244.1.2/24"), MAC: mac, Published: []PortMapping{{Proto: "tcp", HostPort: 8080, ContainerPort: 80}}}
	b := EncodeShared(r)
	if want := `{"c":"web","i":"abc","f":"eth0","a":"10.244.1.2/24","m":"02:00:0a:f4:01:02","p":["tcp:8080:80"]}`; string(b) != want {
		t.Errorf("EncodeShared = %s, want %s", b, want)
	}
	a, err := DecodeShared("h2", b, OnlyDefault(cluster))
	if err != nil {
		t.Fatal(err)
	}
	if want := (api.Attachment{Host: "h2", Container: "web", IP: "10.244.1.2/24", MAC: "02:00:0a:f4:01:02", Gateway: "10.244.1.1", Network: DefaultNetwork}); !reflect.DeepEqual(a, want) {
		t.Errorf("DecodeShared = %+v, want %+v", a, want)
	}
	if SharedKey(r) != "fab1234" {
		t.Errorf("SharedKey = %q", SharedKey(r))
	}
	for _, tc := range []struct {
		in, want string
	}{
		{`{"c":"web","a":"10.244.1.2/24","m":"02:00:00:00:00:01"}`, ""},
		{`{"c":"web","a":"10.244.1.2/24","later":1}`, ""}, // a key of a later version
		{`{"c":"web","a":"10.9.1.2/24"}`, "outside the CIDR"},
		{`{"c":"web","a":"10.244.1.2/24","n":"blue"}`, "unknown network"},
		{`{"c":"","a":"10.244.1.2/24"}`, "container name"},
		{`{"c":"a\u0007","a":"10.244.1.2/24"}`, "not printable"},
		{`{"c":"a","a":"10.244.1.2/24","m":"ff:ff:ff:ff:ff:ff"}`, "unicast"},
		{`{"c":"a","a":"10.244.1.2/24","p":["tcp:0:1"]}`, "published port"},
		{`{"c":"a","a":"10.244.1.2/24","f":"` + strings.Repeat("x", 65) + `"}`, "longer than"},
		{`garbage`, "decode"},
		{`{"c":"a","a":"10.244.1.2/24"} {}`, "trailing"},
		{`{"c":"` + strings.Repeat("a", MaxSharedSize) + `","a":"10.244.1.2/24"}`, "bytes"},
	} {
		_, err := decodeShared([]byte(tc.in), OnlyDefault(cluster))
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.60s: %v, want %q", tc.in, err, tc.want)
		}
	}
}

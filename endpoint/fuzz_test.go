package endpoint

import (
	"net/http"
	"net/netip"
	"strings"
	"testing"

	"github.com/ovsfabric/ovsfabric/api"
)

// Fuzz targets for what reaches fabricd from outside: API request bodies, attach TARGETs,
// attachments gossiped by peers, and the YAML configuration. Their seed corpora run with the
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

func FuzzDecodeSpread(f *testing.F) {
	for _, s := range []string{`[{"c":"web","ip":"10.244.1.2/24","m":"02:00:00:00:00:01"}]`, `[]`, `null`,
		`[{"c":"","ip":"10.244.1.2/24"}]`, `[{"c":"x","ip":"192.168.1.1/24"}]`, `[{"c":"x","ip":"10.244.1.2/24","m":"01:00:5e:00:00:01"}]`,
		`[{"c":"x","ip":"10.244.1.2/8"}]`, `[{"c":"x","ip":"10.244.1.2/24","z":1}]`} {
		f.Add([]byte(s))
	}
	cluster := netip.MustParsePrefix("10.244.0.0/16")
	f.Fuzz(func(t *testing.T, b []byte) {
		entries, err := decodeSpread(b, cluster)
		if err != nil {
			return
		}
		for _, e := range entries {
			p, err := netip.ParsePrefix(e.IP)
			if err != nil || !cluster.Contains(p.Addr()) || e.C == "" {
				t.Fatalf("accepted %+v", e)
			}
		}
	})
}

func TestDecodeSpread(t *testing.T) {
	cluster := netip.MustParsePrefix("10.244.0.0/16")
	for _, tc := range []struct {
		in, want string
	}{
		{`[{"c":"web","ip":"10.244.1.2/24","m":"02:00:00:00:00:01"}]`, ""},
		{`[{"c":"web","ip":"10.9.1.2/24"}]`, "outside the cluster CIDR"},
		{`[{"c":"","ip":"10.244.1.2/24"}]`, "container name"},
		{`[{"c":"a\u0007","ip":"10.244.1.2/24"}]`, "not printable"},
		{`[{"c":"a","ip":"10.244.1.2/24","m":"ff:ff:ff:ff:ff:ff"}]`, "unicast"},
		{`[{"c":"a","ip":"10.244.1.2/24","x":1}]`, "unknown field"},
		{`garbage`, "decode"},
		{`[] []`, "trailing"},
		{"[" + strings.Repeat(`{"c":"a","ip":"10.244.1.2/24"},`, maxSpreadEntries) + `{"c":"a","ip":"10.244.1.2/24"}]`, "bytes"},
	} {
		_, err := decodeSpread([]byte(tc.in), cluster)
		if (tc.want == "") != (err == nil) || err != nil && !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%.60s: %v, want %q", tc.in, err, tc.want)
		}
	}
}

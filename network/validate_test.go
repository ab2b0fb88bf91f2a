package network

import (
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/ovsfabric/ovsfabric/api"
)

var (
	defNet = Network{Name: Default, Subnet: netip.MustParsePrefix("10.244.0.0/16"), HostBits: 24}
	blue   = Network{Name: "blue", Subnet: netip.MustParsePrefix("10.50.0.0/16"), HostBits: 24, Key: 100, Origin: "h1", Created: 3}
)

func TestValidate(t *testing.T) {
	existing := []Network{defNet, blue}
	pfx := netip.MustParsePrefix
	tests := []struct {
		name string
		spec Spec
		kind error  // nil: valid
		msg  string // in the error
	}{
		{"ok", Spec{Name: "red", Subnet: pfx("10.60.0.0/16")}, nil, ""},
		{"ok all given", Spec{Name: "r-2", Subnet: pfx("10.60.0.0/20"), HostBits: 28, Key: MaxKey, Internal: true}, nil, ""},
		{"ok /29 small", Spec{Name: "tiny", Subnet: pfx("10.60.0.0/29")}, nil, ""},
		{"empty name", Spec{Subnet: pfx("10.60.0.0/16")}, api.ErrInvalid, "1 to 32"},
		{"long name", Spec{Name: strings.Repeat("a", MaxNameLen+1), Subnet: pfx("10.60.0.0/16")}, api.ErrInvalid, "1 to 32"},
		{"upper case", Spec{Name: "Red", Subnet: pfx("10.60.0.0/16")}, api.ErrInvalid, "DNS label"},
		{"leading dash", Spec{Name: "-red", Subnet: pfx("10.60.0.0/16")}, api.ErrInvalid, "DNS label"},
		{"trailing dash", Spec{Name: "red-", Subnet: pfx("10.60.0.0/16")}, api.ErrInvalid, "DNS label"},
		{"dot", Spec{Name: "red.x", Subnet: pfx("10.60.0.0/16")}, api.ErrInvalid, "DNS label"},
		{"default", Spec{Name: Default, Subnet: pfx("10.60.0.0/16")}, api.ErrInvalid, "cluster CIDR"},
		{"no subnet", Spec{Name: "red"}, api.ErrInvalid, "no subnet"},
		{"ipv6", Spec{Name: "red", Subnet: pfx("fd00::/64")}, api.ErrInvalid, "only IPv4"},
		{"not masked", Spec{Name: "red", Subnet: pfx("10.60.1.0/16")}, api.ErrInvalid, "did you mean 10.60.0.0/16"},
		{"loopback", Spec{Name: "red", Subnet: pfx("127.1.0.0/16")}, api.ErrInvalid, "reserved"},
		{"multicast", Spec{Name: "red", Subnet: pfx("230.0.0.0/16")}, api.ErrInvalid, "reserved"},
		{"/30 too small", Spec{Name: "red", Subnet: pfx("10.60.0.0/30")}, api.ErrInvalid, "host prefix /30"},
		{"host bits short", Spec{Name: "red", Subnet: pfx("10.60.0.0/16"), HostBits: 16}, api.ErrInvalid, "longer than the subnet"},
		{"host bits 31", Spec{Name: "red", Subnet: pfx("10.60.0.0/16"), HostBits: 31}, api.ErrInvalid, "at most /30"},
		{"too many slices", Spec{Name: "red", Subnet: pfx("10.0.0.0/8"), HostBits: 30}, api.ErrInvalid, "2^20"},
		{"key too big", Spec{Name: "red", Subnet: pfx("10.60.0.0/16"), Key: MaxKey + 1}, api.ErrInvalid, "tunnel key"},
		{"name exists", Spec{Name: "blue", Subnet: pfx("10.60.0.0/16")}, api.ErrConflict, "network blue already exists"},
		{"overlaps blue", Spec{Name: "red", Subnet: pfx("10.50.128.0/17")}, api.ErrConflict, "overlaps network blue (10.50.0.0/16)"},
		{"contains blue", Spec{Name: "red", Subnet: pfx("10.0.0.0/8")}, api.ErrConflict, "overlaps network"},
		{"overlaps default", Spec{Name: "red", Subnet: pfx("10.244.7.0/24")}, api.ErrConflict, "overlaps network default"},
		{"key taken", Spec{Name: "red", Subnet: pfx("10.60.0.0/16"), Key: 100}, api.ErrConflict, "is network blue's"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Validate(existing)
			if tt.kind == nil {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil || !errors.Is(err, tt.kind) || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Validate = %v, want %v containing %q", err, tt.kind, tt.msg)
			}
			if api.StatusCode(err) == 500 {
				t.Fatalf("error %v maps to 500", err)
			}
		})
	}
}

func TestDefaultHostBits(t *testing.T) {
	for _, tt := range []struct {
		subnet string
		want   int
	}{{"10.0.0.0/8", 24}, {"10.0.0.0/16", 24}, {"10.0.0.0/20", 24}, {"10.0.0.0/21", 25}, {"10.0.0.0/24", 28}, {"10.0.0.0/27", 30}, {"10.0.0.0/29", 30}} {
		if got := DefaultHostBits(netip.MustParsePrefix(tt.subnet)); got != tt.want {
			t.Errorf("DefaultHostBits(%s) = %d, want %d", tt.subnet, got, tt.want)
		}
	}
}

func TestComplete(t *testing.T) {
	s, err := Spec{Name: "red", Subnet: netip.MustParsePrefix("10.60.0.0/22")}.Complete([]Network{defNet, blue}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if s.HostBits != 26 || s.Key == 0 || s.Key > MaxKey {
		t.Fatalf("Complete = %+v", s)
	}
	// The automatic key is the name's, and skips keys in use.
	again, _ := Spec{Name: "red", Subnet: netip.MustParsePrefix("10.60.0.0/22")}.Complete([]Network{defNet}, nil)
	if again.Key != s.Key {
		t.Fatalf("auto key not deterministic: %d then %d", s.Key, again.Key)
	}
	skip, _ := Spec{Name: "red", Subnet: netip.MustParsePrefix("10.60.0.0/22")}.Complete([]Network{defNet}, map[uint32]bool{s.Key: true})
	if skip.Key == s.Key || skip.Key == 0 {
		t.Fatalf("auto key %d ignores the used key %d", skip.Key, s.Key)
	}
	if _, err := AutoKey("x", func(uint32) bool { return true }); err == nil {
		t.Fatal("AutoKey with every key taken succeeded")
	}
	// Wrap-around: the key after MaxKey is 1.
	k, _ := AutoKey("x", func(uint32) bool { return false })
	next, _ := AutoKey("x", func(c uint32) bool { return c == k })
	if want := k%MaxKey + 1; next != want {
		t.Fatalf("probe after %d = %d, want %d", k, next, want)
	}
}

func TestMatches(t *testing.T) {
	s := Spec{Name: "blue", Subnet: blue.Subnet}
	if !s.Matches(blue) {
		t.Fatal("spec without key and host prefix does not match")
	}
	for _, o := range []Spec{
		{Name: "blue", Subnet: blue.Subnet, Key: 7},
		{Name: "blue", Subnet: blue.Subnet, HostBits: 25},
		{Name: "blue", Subnet: blue.Subnet, Internal: true},
		{Name: "blue", Subnet: netip.MustParsePrefix("10.51.0.0/16")},
	} {
		if o.Matches(blue) {
			t.Errorf("%+v matches %+v", o, blue)
		}
	}
}

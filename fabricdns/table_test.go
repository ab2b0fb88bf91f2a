package fabricdns

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
)

func TestTableLookup(t *testing.T) {
	tab := testTable(t)
	addrs := func(s ...string) []netip.Addr {
		var out []netip.Addr
		for _, a := range s {
			out = append(out, netip.MustParseAddr(a))
		}
		return out
	}
	for _, tt := range []struct {
		network, name string
		want          []netip.Addr
	}{
		{"blue", "web", addrs("10.1.1.2")},
		{"BLUE", "WEB.", addrs("10.1.1.2")},
		{"red", "web", addrs("10.2.1.2")},
		{"blue", "api", addrs("10.1.1.10", "10.1.3.10")},
		{"blue", "api.v1", addrs("10.1.1.10")},
		{"blue", "db", addrs("10.1.2.3", "fd00:1::3")},
		{"blue", "secret", nil},
		{"green", "web", nil},
	} {
		if got := tab.Lookup(tt.network, tt.name); !slices.Equal(got, tt.want) {
			t.Errorf("Lookup(%q, %q) = %v, want %v", tt.network, tt.name, got, tt.want)
		}
	}
	if got := tab.Reverse("blue", netip.MustParseAddr("10.1.1.10")); !slices.Equal(got, []string{"api-1"}) {
		t.Errorf("Reverse = %q, want [api-1]", got)
	}
	if got := tab.Reverse("red", netip.MustParseAddr("10.1.1.10")); got != nil {
		t.Errorf("Reverse on the wrong network = %q, want nothing", got)
	}
	for _, tt := range []struct {
		network, addr string
		want          bool
	}{
		{"blue", "10.1.200.1", true},
		{"blue", "fd00:1::99", true},
		{"blue", "::ffff:10.1.0.1", true},
		{"blue", "10.2.0.1", false},
		{"red", "10.2.0.1", true},
		{"green", "10.2.0.1", false},
	} {
		if got := tab.Contains(tt.network, netip.MustParseAddr(tt.addr)); got != tt.want {
			t.Errorf("Contains(%q, %s) = %v, want %v", tt.network, tt.addr, got, tt.want)
		}
	}
	recs := tab.Records()
	if len(recs) != len(testRecords()) {
		t.Fatalf("Records() has %d, want %d", len(recs), len(testRecords()))
	}
	if r := recs[0]; r.Network != "blue" || r.Name != "api-1" || !slices.Equal(r.Aliases, []string{"api", "api.v1"}) || r.Origin != "h1" {
		t.Errorf("first record %+v, want blue/api-1 with aliases [api api.v1] from h1", r)
	}
}

func TestTableReplaceBadRecords(t *testing.T) {
	tab := testTable(t)
	good := Record{Network: "blue", Name: "ok", Addr: netip.MustParseAddr("10.1.9.9")}
	for _, tt := range []struct {
		name string
		bad  Record
		msg  string
	}{
		{"no address", Record{Network: "blue", Name: "x"}, "no valid address"},
		{"no network", Record{Name: "x", Addr: good.Addr}, "network"},
		{"no name", Record{Network: "blue", Addr: good.Addr}, "neither a name nor an alias"},
		{"label over 63", Record{Network: "blue", Name: strings.Repeat("a", 64), Addr: good.Addr}, "over DNS's 63"},
		{"name over 253", Record{Network: "blue", Name: strings.Repeat("abcdefg.", 32) + "x", Addr: good.Addr}, "over DNS's 253"},
		{"bad character", Record{Network: "blue", Name: "a b", Addr: good.Addr}, "character"},
		{"bad alias", Record{Network: "blue", Name: "x", Aliases: []string{"a..b"}, Addr: good.Addr}, "empty label"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			err := tab.Replace([]Record{good, tt.bad})
			if err == nil || !strings.Contains(err.Error(), tt.msg) {
				t.Fatalf("Replace error %v, want one saying %q", err, tt.msg)
			}
			if got := tab.Lookup("blue", "ok"); len(got) != 1 {
				t.Errorf("the good record was not applied: %v", got)
			}
			if len(tab.Records()) != 1 {
				t.Errorf("Records() = %v, want only the good one", tab.Records())
			}
		})
	}
	if err := tab.SetNetworks([]Network{{Name: "bad net", Subnets: []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}}}); err == nil {
		t.Error("SetNetworks accepted a bad network name")
	}
	if !tab.Contains("blue", netip.MustParseAddr("10.1.0.1")) {
		t.Error("a refused SetNetworks changed the networks")
	}
}

package network

import (
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

func TestCodecRoundTrip(t *testing.T) {
	n := Network{Name: "blue", Subnet: netip.MustParsePrefix("10.50.0.0/16"), HostBits: 24, Key: 4242, Internal: true, Origin: "h1", Created: 17}
	got, err := DecodeNetwork("blue", n.Encode())
	if err != nil || got != n {
		t.Fatalf("network round trip: %+v, %v", got, err)
	}
	if want := `{"s":"10.50.0.0/16","h":24,"k":4242,"i":true,"o":"h1","c":17}`; string(n.Encode()) != want {
		t.Fatalf("encoded %s, want %s", n.Encode(), want)
	}
	s := Slice{Network: "blue", Node: "h2", Prefix: netip.MustParsePrefix("10.50.3.0/24"), Seq: 21}
	if got, err := DecodeSlice("blue", "h2", s.Encode()); err != nil || got != s {
		t.Fatalf("slice round trip: %+v, %v", got, err)
	}
	r := Removal{Name: "blue", Origin: "h1", Created: 17}
	if got, err := DecodeRemoval("blue", r.Encode()); err != nil || got != r {
		t.Fatalf("removal round trip: %+v, %v", got, err)
	}
	// Keys are only added: unknown keys are ignored.
	if got, err := DecodeNetwork("blue", []byte(`{"s":"10.50.0.0/16","h":24,"k":4242,"i":true,"o":"h1","c":17,"later":[1,2]}`)); err != nil || got != n {
		t.Fatalf("unknown key: %+v, %v", got, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	for _, tt := range []struct {
		name, key, value, msg string
	}{
		{"not json", "blue", `{`, "bad value"},
		{"empty", "blue", ``, "value of 0 bytes"},
		{"bad name", "Blue", `{"s":"10.50.0.0/16","h":24,"k":1,"o":"h1","c":1}`, "DNS label"},
		{"default", "default", `{"s":"10.50.0.0/16","h":24,"k":1,"o":"h1","c":1}`, "cannot be defined"},
		{"no subnet", "blue", `{"h":24,"k":1,"o":"h1","c":1}`, "bad prefix"},
		{"unmasked", "blue", `{"s":"10.50.0.1/16","h":24,"k":1,"o":"h1","c":1}`, "did you mean"},
		{"key 0", "blue", `{"s":"10.50.0.0/16","h":24,"k":0,"o":"h1","c":1}`, "tunnel key 0"},
		{"host bits", "blue", `{"s":"10.50.0.0/16","h":8,"k":1,"o":"h1","c":1}`, "host prefix"},
		{"no origin", "blue", `{"s":"10.50.0.0/16","h":24,"k":1,"c":1}`, "host name"},
		{"created 0", "blue", `{"s":"10.50.0.0/16","h":24,"k":1,"o":"h1"}`, "creation time"},
		{"wrong type", "blue", `{"s":"10.50.0.0/16","h":"24","k":1,"o":"h1","c":1}`, "bad value"},
		{"huge", "blue", `{"s":"` + strings.Repeat("1", 2000) + `"}`, "bytes not in"},
	} {
		if _, err := DecodeNetwork(tt.key, []byte(tt.value)); err == nil || !strings.Contains(err.Error(), tt.msg) {
			t.Errorf("%s: DecodeNetwork = %v, want an error containing %q", tt.name, err, tt.msg)
		}
	}
	for _, v := range []string{`{"p":"10.50.3.1/24","q":1}`, `{"p":"10.50.3.0/24"}`, `{"p":"fd00::/64","q":1}`, `{"p":"10.50.3.0/31","q":1}`, `{"q":1}`} {
		if _, err := DecodeSlice("blue", "h1", []byte(v)); err == nil {
			t.Errorf("DecodeSlice(%s) succeeded", v)
		}
	}
	if _, err := DecodeSlice("blue", "", []byte(`{"p":"10.50.3.0/24","q":1}`)); err == nil {
		t.Error("DecodeSlice without a node succeeded")
	}
	for _, v := range []string{`{"o":"h1"}`, `{"c":3}`, `[]`} {
		if _, err := DecodeRemoval("blue", []byte(v)); err == nil {
			t.Errorf("DecodeRemoval(%s) succeeded", v)
		}
	}
}

func TestPersistedRoundTrip(t *testing.T) {
	p := Persisted{
		Networks: map[string]Network{"blue": blue},
		Slices:   map[string]Slice{"blue": {Network: "blue", Node: "h1", Prefix: netip.MustParsePrefix("10.50.9.0/24"), Seq: 5}},
		Removals: map[string]Removal{"red": {Name: "red", Origin: "h2", Created: 2}},
	}
	ids := p.Encode()
	ids["system-id"] = "x"                    // other tools' keys are ignored
	ids["ovsfabric-subnet"] = "10.244.3.0/24" // and fabricd's other keys
	ids[KeyNetPrefix+"bad"] = "{"
	got, errs := ParsePersisted("h1", ids)
	if len(errs) != 1 || !strings.Contains(errs[0].Error(), KeyNetPrefix+"bad") {
		t.Fatalf("errors %v, want one for the bad key", errs)
	}
	if !reflect.DeepEqual(got, p) {
		t.Fatalf("ParsePersisted = %+v, want %+v", got, p)
	}
}

func FuzzDecodeNetwork(f *testing.F) {
	f.Add("blue", string(blue.Encode()))
	f.Add("x", `{"s":"10.50.0.0/29","h":30,"k":16777215,"o":"h","c":4611686018427387903}`)
	f.Fuzz(func(t *testing.T, name, value string) {
		n, err := DecodeNetwork(name, []byte(value))
		if err != nil {
			return
		}
		again, err := DecodeNetwork(name, n.Encode())
		if err != nil || again != n {
			t.Fatalf("re-decode of %+v: %+v, %v", n, again, err)
		}
		if !n.Subnet.IsValid() || n.Key == 0 || n.Key > MaxKey || n.HostBits <= n.Subnet.Bits() || n.HostBits > MaxHostBits {
			t.Fatalf("decoded an invalid network %+v", n)
		}
	})
}

func FuzzDecodeSlice(f *testing.F) {
	f.Add("blue", "h1", `{"p":"10.50.3.0/24","q":21}`)
	f.Fuzz(func(t *testing.T, network, node, value string) {
		s, err := DecodeSlice(network, node, []byte(value))
		if err != nil {
			return
		}
		again, err := DecodeSlice(network, node, s.Encode())
		if err != nil || again != s {
			t.Fatalf("re-decode of %+v: %+v, %v", s, again, err)
		}
	})
}

func FuzzDecodeRemoval(f *testing.F) {
	f.Add("blue", `{"o":"h1","c":17}`)
	f.Fuzz(func(t *testing.T, name, value string) {
		r, err := DecodeRemoval(name, []byte(value))
		if err != nil {
			return
		}
		again, err := DecodeRemoval(name, r.Encode())
		if err != nil || again != r {
			t.Fatalf("re-decode of %+v: %+v, %v", r, again, err)
		}
	})
}

func FuzzParsePersisted(f *testing.F) {
	f.Add(KeyNetPrefix+"blue", string(blue.Encode()), KeySlicePrefix+"blue", `{"p":"10.50.3.0/24","q":21}`)
	f.Fuzz(func(t *testing.T, k1, v1, k2, v2 string) {
		p, _ := ParsePersisted("h1", map[string]string{k1: v1, k2: v2})
		again, errs := ParsePersisted("h1", p.Encode())
		if len(errs) > 0 || !reflect.DeepEqual(again, p) {
			t.Fatalf("re-parse of %+v: %+v, %v", p, again, errs)
		}
	})
}

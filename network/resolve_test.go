package network

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"reflect"
	"strings"
	"testing"
)

// def builds a definition for the resolution tests.
func def(name, subnet string, key uint32, origin string, created uint64) Network {
	return Network{Name: name, Subnet: netip.MustParsePrefix(subnet), HostBits: 24, Key: key, Origin: origin, Created: created}
}

func names(ns []Network) string {
	var out []string
	for _, n := range ns {
		out = append(out, fmt.Sprintf("%s@%s/%d", n.Name, n.Origin, n.Created))
	}
	return strings.Join(out, " ")
}

func TestResolve(t *testing.T) {
	tests := []struct {
		name      string
		defs      []Network
		removals  []Removal
		accepted  string
		conflicts map[string]string // name → part of the reason
		lost      string
	}{
		{
			name:     "disjoint",
			defs:     []Network{def("blue", "10.50.0.0/16", 1, "h1", 3), def("red", "10.60.0.0/16", 2, "h2", 4)},
			accepted: "blue@h1/3 red@h2/4",
		},
		{
			name:     "copies count once",
			defs:     []Network{def("blue", "10.50.0.0/16", 1, "h1", 3), def("blue", "10.50.0.0/16", 1, "h1", 3), def("blue", "10.50.0.0/16", 1, "h1", 3)},
			accepted: "blue@h1/3",
		},
		{
			name:     "same name: lower created wins",
			defs:     []Network{def("blue", "10.50.0.0/16", 1, "h1", 5), def("blue", "10.70.0.0/16", 2, "h2", 4)},
			accepted: "blue@h2/4",
			lost:     "blue@h1/5",
		},
		{
			name:     "same name, same created: lower origin wins",
			defs:     []Network{def("blue", "10.70.0.0/16", 2, "h2", 4), def("blue", "10.50.0.0/16", 1, "h1", 4)},
			accepted: "blue@h1/4",
			lost:     "blue@h2/4",
		},
		{
			name:      "overlap: the later is conflicted",
			defs:      []Network{def("blue", "10.50.0.0/16", 1, "h1", 3), def("red", "10.50.128.0/17", 2, "h2", 4)},
			accepted:  "blue@h1/3",
			conflicts: map[string]string{"red": "overlaps network blue (10.50.0.0/16)"},
		},
		{
			name:      "overlap with default",
			defs:      []Network{def("blue", "10.244.0.0/20", 1, "h1", 1)},
			conflicts: map[string]string{"blue": "overlaps network default"},
		},
		{
			name:      "key collision",
			defs:      []Network{def("red", "10.60.0.0/16", 7, "h2", 4), def("blue", "10.50.0.0/16", 7, "h1", 4)},
			accepted:  "blue@h1/4",
			conflicts: map[string]string{"red": "tunnel key 7 is network blue's"},
		},
		{
			name:     "a conflicted network does not block a later one",
			defs:     []Network{def("a", "10.50.0.0/16", 1, "h1", 1), def("b", "10.50.0.0/15", 2, "h1", 2), def("c", "10.51.0.0/16", 3, "h1", 3)},
			accepted: "a@h1/1 c@h1/3",
			conflicts: map[string]string{
				"b": "overlaps network a",
			},
		},
		{
			name:     "removal kills the winner and earlier copies",
			defs:     []Network{def("blue", "10.50.0.0/16", 1, "h1", 3), def("blue", "10.50.0.0/16", 1, "h1", 3), def("red", "10.60.0.0/16", 2, "h2", 4)},
			removals: []Removal{{Name: "blue", Origin: "h1", Created: 3}},
			accepted: "red@h2/4",
		},
		{
			name:     "removal kills the losers of the name too",
			defs:     []Network{def("blue", "10.50.0.0/16", 1, "h1", 3), def("blue", "10.51.0.0/16", 2, "h2", 3)},
			removals: []Removal{{Name: "blue", Origin: "h2", Created: 3}},
		},
		{
			name:     "a later create survives an old removal",
			defs:     []Network{def("blue", "10.50.0.0/16", 1, "h1", 3), def("blue", "10.51.0.0/16", 2, "h2", 9)},
			removals: []Removal{{Name: "blue", Origin: "h1", Created: 3}, {Name: "blue", Origin: "h3", Created: 2}},
			accepted: "blue@h2/9",
		},
		{
			name:     "default cannot be defined",
			defs:     []Network{def(Default, "10.50.0.0/16", 1, "h1", 1)},
			accepted: "",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := Resolve(defNet, tt.defs, tt.removals)
			if got := names(res.Accepted); got != tt.accepted {
				t.Errorf("accepted %q, want %q", got, tt.accepted)
			}
			if got := names(res.Lost); got != tt.lost {
				t.Errorf("lost %q, want %q", got, tt.lost)
			}
			if len(res.Conflicted) != len(tt.conflicts) {
				t.Errorf("conflicted %+v, want %v", res.Conflicted, tt.conflicts)
			}
			for name, want := range tt.conflicts {
				if got := res.ConflictOf(name); !strings.Contains(got, want) {
					t.Errorf("conflict of %s = %q, want %q", name, got, want)
				}
			}
		})
	}
}

// TestResolveShuffled: any order of the same records gives the same resolution.
func TestResolveShuffled(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	var defs []Network
	var removals []Removal
	for i := range 300 {
		// Names collide, subnets overlap, keys collide: every rule is exercised.
		name := fmt.Sprintf("n%d", rng.IntN(60))
		subnet := fmt.Sprintf("10.%d.0.0/%d", rng.IntN(100), 15+rng.IntN(3))
		p := netip.MustParsePrefix(subnet).Masked()
		n := Network{Name: name, Subnet: p, HostBits: 24, Key: uint32(1 + rng.IntN(200)), Origin: fmt.Sprintf("h%d", rng.IntN(5)), Created: uint64(1 + rng.IntN(100))}
		defs = append(defs, n)
		if i%7 == 0 {
			defs = append(defs, n) // a copy
		}
		if i%11 == 0 {
			removals = append(removals, Removal{Name: name, Origin: n.Origin, Created: n.Created})
		}
	}
	want := Resolve(defNet, defs, removals)
	if len(want.Accepted) == 0 || len(want.Conflicted) == 0 || len(want.Lost) == 0 {
		t.Fatalf("the input does not exercise every rule: %d accepted, %d conflicted, %d lost", len(want.Accepted), len(want.Conflicted), len(want.Lost))
	}
	for range 50 {
		d, r := append([]Network(nil), defs...), append([]Removal(nil), removals...)
		rng.Shuffle(len(d), func(i, j int) { d[i], d[j] = d[j], d[i] })
		rng.Shuffle(len(r), func(i, j int) { r[i], r[j] = r[j], r[i] })
		if got := Resolve(defNet, d, r); !reflect.DeepEqual(got, want) {
			t.Fatalf("shuffled input resolves otherwise:\n got %+v\nwant %+v", got, want)
		}
	}
	// Nothing accepted overlaps or shares a key.
	for i, a := range want.Accepted {
		if a.Subnet.Overlaps(defNet.Subnet) {
			t.Fatalf("%s overlaps default", a.Name)
		}
		for _, b := range want.Accepted[i+1:] {
			if a.Subnet.Overlaps(b.Subnet) || a.Key == b.Key {
				t.Fatalf("accepted %+v and %+v collide", a, b)
			}
		}
	}
}

func TestWinningSlices(t *testing.T) {
	n := def("blue", "10.50.0.0/16", 1, "h1", 1)
	s := func(node, p string, seq uint64) Slice {
		return Slice{Network: "blue", Node: node, Prefix: netip.MustParsePrefix(p), Seq: seq}
	}
	claims := []Slice{
		s("h1", "10.50.1.0/24", 5),
		s("h2", "10.50.1.0/24", 4), // lower seq: wins 10.50.1.0
		s("h3", "10.50.2.0/24", 7),
		s("h4", "10.50.2.0/24", 7), // same seq: h3 wins
		s("h5", "10.50.3.0/25", 1), // not a /24: ignored
		s("h6", "10.60.3.0/24", 1), // outside: ignored
		{Network: "red", Node: "h7", Prefix: netip.MustParsePrefix("10.50.4.0/24"), Seq: 1},
	}
	want := []Slice{s("h2", "10.50.1.0/24", 4), s("h3", "10.50.2.0/24", 7)}
	rng := rand.New(rand.NewPCG(3, 4))
	for range 20 {
		rng.Shuffle(len(claims), func(i, j int) { claims[i], claims[j] = claims[j], claims[i] })
		if got := WinningSlices(n, claims); !reflect.DeepEqual(got, want) {
			t.Fatalf("WinningSlices = %+v, want %+v", got, want)
		}
	}
	// The loser re-picks past every other claim; a full network says so.
	p, err := PickSlice(n, "h1", claims)
	if err != nil || p == netip.MustParsePrefix("10.50.1.0/24") || p == netip.MustParsePrefix("10.50.2.0/24") || !n.HasSlice(p) {
		t.Fatalf("PickSlice = %s, %v", p, err)
	}
	small := def("tiny", "10.70.0.0/23", 1, "h1", 1)
	full := []Slice{{Network: "tiny", Node: "h2", Prefix: netip.MustParsePrefix("10.70.0.0/24"), Seq: 1}, {Network: "tiny", Node: "h3", Prefix: netip.MustParsePrefix("10.70.1.0/24"), Seq: 1}}
	if _, err := PickSlice(small, "h1", full); err == nil || !strings.Contains(err.Error(), "exhausted") {
		t.Fatalf("PickSlice of a full network = %v", err)
	}
}

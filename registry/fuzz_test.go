package registry

import (
	"reflect"
	"testing"
)

// FuzzDecode feeds arbitrary bytes to every decoder and to a registry's delegate entry
// points: nothing may panic, what decodes must re-encode to the same values, and the
// registry's own state must stay decodable. The seeds (valid messages of every type) run
// in a plain `go test`.
func FuzzDecode(f *testing.F) {
	rec := Record{Kind: KindEndpoint, Key: "blue/c1", Origin: "a", Version: MakeVersion(1, 2), Created: 3, Value: []byte(`{"ip":"10.1.0.2/16"}`)}
	tomb := Record{Kind: KindNetwork, Key: "red", Origin: "a", Version: MakeVersion(1, 3), Created: 1, Deleted: true}
	f.Add(encodeDelta(&rec))
	f.Add(encodeDelta(&tomb))
	f.Add(encodeRequest(request{From: "b", ID: 7, Origin: "a", Since: MakeVersion(1, 1)}))
	f.Add(encodeRequest(request{From: "b", ID: 8, Origin: "a", Full: true}))
	parts, err := encodeParts(part{From: "a", ID: 7, Origin: "a", Full: true, W: MakeVersion(1, 3), Floor: 1}, []*Record{&rec, &tomb})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(parts[0])
	empty, _ := encodeParts(part{From: "a", ID: 9, Origin: "c"}, nil)
	f.Add(empty[0])
	f.Add(encodeDigest(digest{From: "b", Clock: 9, Entries: []digestEntry{
		{Origin: "a", W: MakeVersion(1, 3), M: MakeVersion(1, 5), Live: 2, Hash: 42},
		{Origin: "b", W: MakeVersion(2, 0), M: MakeVersion(2, 0)},
	}}))
	f.Add([]byte{MsgTag, msgDelta, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})

	f.Fuzz(func(t *testing.T, b []byte) {
		if r, err := decodeDelta(b); err == nil {
			again, err := decodeDelta(encodeDelta(&r))
			if err != nil || !reflect.DeepEqual(again, r) {
				t.Fatalf("delta round trip: %v, %v != %v", err, again, r)
			}
		}
		if q, err := decodeRequest(b); err == nil {
			if again, err := decodeRequest(encodeRequest(q)); err != nil || again != q {
				t.Fatalf("request round trip: %v, %v != %v", err, again, q)
			}
		}
		if p, err := decodePart(b); err == nil {
			recs := make([]*Record, len(p.Records))
			for i := range p.Records {
				recs[i] = &p.Records[i]
			}
			hdr := p
			hdr.Records = nil
			msgs, err := encodeParts(hdr, recs)
			if err != nil || len(msgs) != 1 && len(p.Records) > 0 {
				t.Fatalf("part re-encode: %d messages, %v", len(msgs), err)
			}
		}
		if d, err := decodeDigest(b); err == nil {
			if again, err := decodeDigest(encodeDigest(d)); err != nil || !reflect.DeepEqual(again, d) {
				t.Fatalf("digest round trip: %v, %v != %v", err, again, d)
			}
		}
		n := newNet(t)
		r := n.add("a", 1)
		n.add("b", 1)
		r.NotifyMsg(b)
		r.MergeRemoteState(b, false)
		n.settle()
		if _, err := decodeDigest(r.LocalState(false)); err != nil {
			t.Fatalf("own state does not decode: %v", err)
		}
	})
}

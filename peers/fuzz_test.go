package peers

import (
	"bytes"
	"encoding/json"
	"testing"
	"unicode/utf8"
)

// The fuzz targets below cover every decoder of what other members send: node metadata,
// gossiped states and goodbyes, push/pull payloads and keyring messages. Their seed corpora
// run with the normal tests; `make fuzz` explores further.

func FuzzDecodeMeta(f *testing.F) {
	for i := range 3 {
		b, err := EncodeMeta(testMeta(i + 1))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Add([]byte(`{"v":1,"a":"127.0.0.1","s":"10.9.0.0/24","u":"gre","c":"10.244.0.0/16"}`))
	f.Add([]byte(`{"v":1,"a":"::","m":-1}`))
	f.Add([]byte("\x00garbage"))
	f.Add(bytes.Repeat([]byte("{"), 600))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := decodeMeta(b)
		if err != nil {
			return
		}
		if m.Validate() != nil {
			return
		}
		if checkTunnelAddr(m.Addr, testMeta(1).Addr) != nil {
			return
		}
		// What passes every check re-encodes to metadata that decodes to the same value.
		enc, err := EncodeMeta(m)
		if err != nil {
			t.Fatalf("valid meta %+v does not encode: %v", m, err)
		}
		back, err := decodeMeta(enc)
		if err != nil || !back.Equal(m) {
			t.Fatalf("round trip: %+v != %+v (%v)", back, m, err)
		}
	})
}

func FuzzDecodeStates(f *testing.F) {
	m := &Membership{cfg: Config{Name: "a"}, states: map[string]stateEntry{
		"a": {ver: 1, data: []byte(`[{"c":"web","ip":"10.244.1.2/24"}]`)},
	}, peers: map[string]*peerRec{}}
	f.Add(m.encodeStates())
	f.Add([]byte{pushPullVersion, 1, 1, 'b', 5, 0})
	f.Add([]byte{pushPullVersion, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add([]byte{2})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		entries, err := decodeStates(b)
		if err != nil {
			return
		}
		if len(entries) > maxStateEntries {
			t.Fatalf("%d entries", len(entries))
		}
		for _, e := range entries {
			if e.name == "" || len(e.name) > maxNameLen || len(e.data) > MaxStateSize {
				t.Fatalf("entry out of bounds: %d-byte name, %d-byte data", len(e.name), len(e.data))
			}
		}
	})
}

func FuzzGossipMessage(f *testing.F) {
	f.Add(appendStateEntry([]byte{msgState}, "b", 7, []byte("[]")))
	f.Add(encodeBye("b", 42))
	req, _ := json.Marshal(keyReq{ID: 1, From: "b", Op: KeyInstall, Key: key(3)})
	f.Add(append([]byte{msgKeyReq}, req...))
	resp, _ := json.Marshal(keyResp{ID: 1, Node: "b", Keys: [][]byte{key(3)}})
	f.Add(append([]byte{msgKeyResp}, resp...))
	f.Add([]byte{msgKeyReq, '{', '}'})
	f.Add([]byte{msgBye, 0xff})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) == 0 {
			return
		}
		switch b[0] {
		case msgState:
			name, _, data, _, err := readStateEntry(b[1:])
			if err == nil && (name == "" || len(name) > maxNameLen || len(data) > MaxStateSize) {
				t.Fatalf("state entry out of bounds")
			}
		case msgBye:
			name, _, err := decodeBye(b)
			if err == nil && (name == "" || len(name) > maxNameLen) {
				t.Fatalf("goodbye name out of bounds")
			}
		case msgKeyReq:
			r, err := decodeKeyReq(b)
			if err == nil && (checkNodeName(r.From) != nil || r.Op != KeyList && len(r.Key) != 16 && len(r.Key) != 24 && len(r.Key) != 32) {
				t.Fatalf("accepted bad keyring request %+v", r)
			}
		case msgKeyResp:
			r, err := decodeKeyResp(b)
			if err == nil && (!utf8.ValidString(r.Node) || len(r.Keys) > MaxKeys) {
				t.Fatalf("accepted bad keyring answer %+v", r)
			}
		}
	})
}

func FuzzKeyringFile(f *testing.F) {
	f.Add([]byte(`["AAAAAAAAAAAAAAAAAAAAAA=="]`))
	f.Add([]byte(`[]`))
	f.Add([]byte(`["AAAAAAAAAAAAAAAAAAAAAA==","AAAAAAAAAAAAAAAAAAAAAA=="]`))
	f.Add([]byte(`{"k":1}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		keys, err := decodeKeyring(b)
		if err != nil {
			return
		}
		if len(keys) > MaxKeys {
			t.Fatalf("%d keys", len(keys))
		}
		for _, k := range keys {
			if len(k) != 16 && len(k) != 24 && len(k) != 32 {
				t.Fatalf("accepted a %d-byte key", len(k))
			}
		}
	})
}

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

func FuzzGossipMessage(f *testing.F) {
	f.Add(legacyStateMsg("b", 7, []byte("[]")))
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

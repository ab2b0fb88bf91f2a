package apiserver

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/endpoint"
)

// FuzzDecodeRequest: any request body is decoded or refused with a 400, and what decodes
// goes through the parsers of its fields without a panic.
func FuzzDecodeRequest(f *testing.F) {
	for _, s := range []string{`{"target":"web1","ip":"10.244.1.5"}`, `{"target":"x","spec":"8080:80/tcp"}`,
		`{"op":"install","key":"AAAAAAAAAAAAAAAAAAAAAA=="}`,
		`{"name":"blue","subnet":"10.9.0.0/16","host_prefix":24,"key":100,"internal":true}`, `{"name":"blue","force":true}`,
		`{"target":"web1","network":"blue"}`, `{"key":-1}`, `{"key":16777216}`, `{"host_prefix":1e3}`, `{"target":1}`, `{"bogus":true}`, `{}`, `[]`, `{"target":"a"}{}`, ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, v := range []any{&api.AttachRequest{}, &api.DetachRequest{}, &api.PublishRequest{}, &api.KeyringRequest{},
			&api.NetworkCreateRequest{}, &api.NetworkRemoveRequest{}} {
			w := httptest.NewRecorder()
			r := httptest.NewRequest(http.MethodPost, "/v1/x", bytes.NewReader(body))
			if !decode(w, r, v) {
				if w.Code != http.StatusBadRequest {
					t.Fatalf("refused with %d", w.Code)
				}
				continue
			}
			switch req := v.(type) {
			case *api.AttachRequest:
				_, _ = endpoint.ParseTarget(req.Target)
			case *api.PublishRequest:
				_, _ = endpoint.ParsePortSpec(req.Spec)
			case *api.KeyringRequest:
				if op, key, err := parseKeyringRequest(*req); err == nil && op != "list" && len(key) != 16 && len(key) != 24 && len(key) != 32 {
					t.Fatalf("accepted a %d-byte key", len(key))
				}
			}
		}
	})
}

package apiserver

import (
	"context"
	"encoding/base64"
	"net/http"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/peers"
)

// Keyring runs gossip keyring operations across the fabric (peers.Membership.KeyringOp).
type Keyring interface {
	KeyringOp(ctx context.Context, op peers.KeyOp, key []byte, local bool) ([]peers.KeyResult, error)
}

// SetKeyring gives the API its keyring; until then the keyring endpoints answer 503.
func (s *Server) SetKeyring(k Keyring) { s.keyring.Store(&k) }

// keyringRoutes registers GET and POST /v1/keyring.
func (s *Server) keyringRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/keyring", func(w http.ResponseWriter, r *http.Request) {
		s.runKeyring(w, r, api.KeyringRequest{Op: api.KeyringList})
	})
	mux.HandleFunc("POST /v1/keyring", func(w http.ResponseWriter, r *http.Request) {
		var req api.KeyringRequest
		if !decode(w, r, &req) {
			return
		}
		s.runKeyring(w, r, req)
	})
}

func (s *Server) runKeyring(w http.ResponseWriter, r *http.Request, req api.KeyringRequest) {
	op, key, err := parseKeyringRequest(req)
	if err != nil {
		writeError(w, err)
		return
	}
	k := s.keyring.Load()
	if k == nil {
		writeError(w, api.Errorf(api.ErrUnavailable, "gossip is not running yet"))
		return
	}
	res, err := (*k).KeyringOp(r.Context(), op, key, req.Local)
	if err != nil {
		writeError(w, api.WithKind(api.ErrInvalid, err))
		return
	}
	writeJSON(w, http.StatusOK, keyringResponse(op, res))
}

// parseKeyringRequest checks a keyring request at the edge: a known operation and, except
// for list, a standard-base64 AES key of 16, 24 or 32 bytes.
func parseKeyringRequest(req api.KeyringRequest) (peers.KeyOp, []byte, error) {
	op := peers.KeyOp(req.Op)
	switch op {
	case peers.KeyList:
		if req.Key != "" {
			return op, nil, api.Errorf(api.ErrInvalid, "keyring list takes no key")
		}
		return op, nil, nil
	case peers.KeyInstall, peers.KeyUse, peers.KeyRemove:
	default:
		return op, nil, api.Errorf(api.ErrInvalid, "keyring operation %q: want list, install, use or remove", req.Op)
	}
	key, err := base64.StdEncoding.DecodeString(req.Key)
	if err != nil {
		return op, nil, api.Errorf(api.ErrInvalid, "key is not standard base64: %v", err)
	}
	if n := len(key); n != 16 && n != 24 && n != 32 {
		return op, nil, api.Errorf(api.ErrInvalid, "key is %d bytes; AES needs 16, 24 or 32 (e.g. `head -c 32 /dev/urandom | base64`)", n)
	}
	return op, key, nil
}

// keyringResponse turns the members' results into the API's answer.
func keyringResponse(op peers.KeyOp, res []peers.KeyResult) api.KeyringResponse {
	out := api.KeyringResponse{Op: string(op), Hosts: []api.KeyringHost{}, Keys: []api.KeyringKey{}}
	idx := map[string]int{}
	for _, r := range res {
		h := api.KeyringHost{Node: r.Node, Keys: []string{}, Error: r.Err}
		if r.Err != "" {
			out.Failed++
		}
		for i, k := range r.Keys {
			s := base64.StdEncoding.EncodeToString(k)
			h.Keys = append(h.Keys, s)
			if i == 0 {
				h.Primary = s
			}
			j, ok := idx[s]
			if !ok {
				j = len(out.Keys)
				idx[s] = j
				out.Keys = append(out.Keys, api.KeyringKey{Key: s})
			}
			out.Keys[j].Installed++
			if i == 0 {
				out.Keys[j].Primary++
			}
		}
		out.Hosts = append(out.Hosts, h)
	}
	return out
}

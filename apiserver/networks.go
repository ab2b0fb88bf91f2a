package apiserver

import (
	"context"
	"net/http"

	"github.com/ovsfabric/ovsfabric/api"
)

// Networks is what the API needs of the fabric's networks (package network): create, list,
// inspect and remove, each fabric-wide. Its errors carry their kinds (api.ErrInvalid for a
// bad name or subnet, api.ErrConflict for an overlap or a network still in use,
// api.ErrNotFound for an unknown name), which set the answer's status.
type Networks interface {
	Create(ctx context.Context, req api.NetworkCreateRequest) (api.Network, error)
	List(ctx context.Context) ([]api.Network, error)
	Inspect(ctx context.Context, name string) (api.Network, error)
	Remove(ctx context.Context, req api.NetworkRemoveRequest) (api.Network, error)
}

// SetNetworks gives the API the fabric's networks; until then the network endpoints answer
// 503.
func (s *Server) SetNetworks(n Networks) { s.networks.Store(&n) }

// networkRoutes registers GET and POST /v1/networks, GET /v1/networks/{name} and POST
// /v1/networks/rm.
func (s *Server) networkRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/networks", func(w http.ResponseWriter, r *http.Request) {
		n, ok := s.loadNetworks(w)
		if !ok {
			return
		}
		list, err := n.List(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		if list == nil {
			list = []api.Network{}
		}
		writeJSON(w, http.StatusOK, list)
	})
	mux.HandleFunc("POST /v1/networks", func(w http.ResponseWriter, r *http.Request) {
		var req api.NetworkCreateRequest
		if !decode(w, r, &req) {
			return
		}
		if n, ok := s.loadNetworks(w); ok {
			answer(w)(n.Create(r.Context(), req))
		}
	})
	mux.HandleFunc("GET /v1/networks/{name}", func(w http.ResponseWriter, r *http.Request) {
		if n, ok := s.loadNetworks(w); ok {
			answer(w)(n.Inspect(r.Context(), r.PathValue("name")))
		}
	})
	mux.HandleFunc("POST /v1/networks/rm", func(w http.ResponseWriter, r *http.Request) {
		var req api.NetworkRemoveRequest
		if !decode(w, r, &req) {
			return
		}
		if n, ok := s.loadNetworks(w); ok {
			answer(w)(n.Remove(r.Context(), req))
		}
	})
}

// loadNetworks returns the networks, or answers 503 while fabricd has none yet.
func (s *Server) loadNetworks(w http.ResponseWriter) (Networks, bool) {
	n := s.networks.Load()
	if n == nil {
		writeError(w, api.Errorf(api.ErrUnavailable, "fabricd does not serve networks yet (still starting)"))
		return nil, false
	}
	return *n, true
}

// answer writes a network, or the error with its status.
func answer(w http.ResponseWriter) func(api.Network, error) {
	return func(n api.Network, err error) {
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, n)
	}
}

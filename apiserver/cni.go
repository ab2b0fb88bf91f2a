package apiserver

import (
	"context"
	"net/http"

	"github.com/ovsfabric/ovsfabric/api"
)

// CNIEndpoints is what the CNI routes need of this host's endpoints (package endpoint). The
// routes exist only when the Endpoints given to NewServer implement it.
type CNIEndpoints interface {
	CNIAdd(ctx context.Context, req api.CNIRequest) (api.CNIResult, error)
	CNIDel(ctx context.Context, req api.CNIRequest) error
	CNICheck(ctx context.Context, req api.CNIRequest) (api.CNIResult, error)
	CNIStatus(ctx context.Context, network string) error
	CNIGC(ctx context.Context, req api.CNIGCRequest) (api.CNIGCResult, error)
}

// cniRoutes serves the CNI plugin's requests (api/cni.go).
func (s *Server) cniRoutes(mux *http.ServeMux) {
	eps, ok := s.eps.(CNIEndpoints)
	if !ok {
		return
	}
	mux.HandleFunc("POST /v1/cni/add", func(w http.ResponseWriter, r *http.Request) {
		var req api.CNIRequest
		if !decode(w, r, &req) {
			return
		}
		res, err := eps.CNIAdd(r.Context(), req)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("POST /v1/cni/check", func(w http.ResponseWriter, r *http.Request) {
		var req api.CNIRequest
		if !decode(w, r, &req) {
			return
		}
		res, err := eps.CNICheck(r.Context(), req)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
	mux.HandleFunc("POST /v1/cni/del", func(w http.ResponseWriter, r *http.Request) {
		var req api.CNIRequest
		if !decode(w, r, &req) {
			return
		}
		if err := eps.CNIDel(r.Context(), req); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, api.Message{Message: "deleted"})
	})
	mux.HandleFunc("GET /v1/cni/status", func(w http.ResponseWriter, r *http.Request) {
		if err := eps.CNIStatus(r.Context(), r.URL.Query().Get("network")); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, api.Message{Message: "ready"})
	})
	mux.HandleFunc("POST /v1/cni/gc", func(w http.ResponseWriter, r *http.Request) {
		var req api.CNIGCRequest
		if !decode(w, r, &req) {
			return
		}
		res, err := eps.CNIGC(r.Context(), req)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, res)
	})
}

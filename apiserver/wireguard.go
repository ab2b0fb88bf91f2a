package apiserver

import (
	"context"
	"net/http"

	"github.com/ovsfabric/ovsfabric/api"
)

// WireGuard rotates this host's WireGuard key (controller.Controller.RotateWireGuardKey).
type WireGuard interface {
	RotateWireGuardKey(ctx context.Context) (api.WireGuardRotateResult, error)
}

// SetWireGuard gives the API the WireGuard key rotation; until then (or with --encryption
// none) POST /v1/wireguard/rotate answers 503.
func (s *Server) SetWireGuard(w WireGuard) { s.wireguard.Store(&w) }

// wireguardRoutes registers POST /v1/wireguard/rotate.
func (s *Server) wireguardRoutes(mux *http.ServeMux) {
	mux.HandleFunc("POST /v1/wireguard/rotate", func(w http.ResponseWriter, r *http.Request) {
		wg := s.wireguard.Load()
		if wg == nil {
			writeError(w, api.Errorf(api.ErrUnavailable, "this fabricd runs without encryption (--encryption none): no WireGuard key to rotate"))
			return
		}
		res, err := (*wg).RotateWireGuardKey(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		s.log.Info("WireGuard key rotated", "public_key", res.PublicKey, "old", res.OldPublicKey)
		writeJSON(w, http.StatusOK, res)
	})
}

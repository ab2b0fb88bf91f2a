package apiserver

import (
	"net/http"

	"github.com/ovsfabric/ovsfabric/api"
)

// DNS lists the names the fabric DNS serves (controller.Controller.DNSRecords).
type DNS interface {
	DNSRecords(network string) []api.DNSRecord
}

// SetDNS gives the API the fabric DNS; until then (or with --dns=false) GET /v1/dns
// answers 503.
func (s *Server) SetDNS(d DNS) { s.dns.Store(&d) }

// maxNetworkName bounds the ?network= filter (a DNS name's limit).
const maxNetworkName = 253

// dnsRoutes registers GET /v1/dns[?network=N]: the names known fabric-wide, with their
// origin host.
func (s *Server) dnsRoutes(mux *http.ServeMux) {
	mux.HandleFunc("GET /v1/dns", func(w http.ResponseWriter, r *http.Request) {
		d := s.dns.Load()
		if d == nil {
			writeError(w, api.Errorf(api.ErrUnavailable, "fabricd does not serve DNS (started with --dns=false)"))
			return
		}
		network := r.URL.Query().Get("network")
		if len(network) > maxNetworkName {
			writeError(w, api.Errorf(api.ErrInvalid, "network name longer than %d bytes", maxNetworkName))
			return
		}
		recs := (*d).DNSRecords(network)
		if recs == nil {
			recs = []api.DNSRecord{}
		}
		writeJSON(w, http.StatusOK, recs)
	})
}

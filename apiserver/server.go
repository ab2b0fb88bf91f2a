package apiserver

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
)

// Server is fabricd's local API on a unix socket (mode 0600: only root talks to fabricd;
// SetGroup opens it to a group).
type Server struct {
	loop     Loop
	eps      Endpoints
	log      *slog.Logger
	leave    func(context.Context) error
	srv      *http.Server
	ln       net.Listener
	gid      int // group of the socket, -1: root only
	keyring  atomic.Pointer[Keyring]
	dns      atomic.Pointer[DNS]
	networks atomic.Pointer[Networks]
	// wireguard is the WireGuard key rotation (nil: not encrypted).
	wireguard atomic.Pointer[WireGuard]
}

// Loop is what the API needs of the reconcile loop (package controller).
type Loop interface {
	Status() api.Status
	// RemoteAttachments are the other hosts' endpoints, as the registry spreads them.
	RemoteAttachments() []api.Attachment
}

// Endpoints is what the API needs of this host's endpoints (package endpoint).
type Endpoints interface {
	Attachments(ctx context.Context) ([]api.Attachment, error)
	Attach(ctx context.Context, req api.AttachRequest) (api.Attachment, error)
	// Detach removes the target's endpoint on req.Network, or on every network when it is
	// empty, and returns the endpoints removed.
	Detach(ctx context.Context, req api.DetachRequest) ([]api.Attachment, error)
	Publish(ctx context.Context, target, spec string) (api.Attachment, error)
	Unpublish(ctx context.Context, target, spec string) (api.Attachment, error)
}

// NewServer returns the API server over the loop and the endpoints. leave is called for
// POST /v1/leave.
func NewServer(loop Loop, eps Endpoints, log *slog.Logger, leave func(context.Context) error) *Server {
	s := &Server{loop: loop, eps: eps, log: log, leave: leave, gid: -1}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, loop.Status())
	})
	mux.HandleFunc("GET /v1/peers", func(w http.ResponseWriter, r *http.Request) {
		p := loop.Status().Peers
		if p == nil {
			p = []api.Peer{}
		}
		writeJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("POST /v1/leave", func(w http.ResponseWriter, r *http.Request) {
		if err := s.leave(r.Context()); err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, api.Message{Message: "left the fabric; fabricd is stopping"})
	})
	mux.HandleFunc("GET /v1/attachments", func(w http.ResponseWriter, r *http.Request) {
		a, err := eps.Attachments(r.Context())
		if err != nil {
			writeError(w, err)
			return
		}
		if r.URL.Query().Get("all") != "" {
			a = fabricWide(a, loop.RemoteAttachments())
		}
		writeJSON(w, http.StatusOK, a)
	})
	mux.HandleFunc("POST /v1/attachments", func(w http.ResponseWriter, r *http.Request) {
		var req api.AttachRequest
		if !decode(w, r, &req) {
			return
		}
		a, err := eps.Attach(r.Context(), req)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, a)
	})
	mux.HandleFunc("POST /v1/detach", func(w http.ResponseWriter, r *http.Request) {
		var req api.DetachRequest
		if !decode(w, r, &req) {
			return
		}
		as, err := eps.Detach(r.Context(), req)
		if err != nil {
			writeError(w, err)
			return
		}
		if as == nil {
			as = []api.Attachment{}
		}
		writeJSON(w, http.StatusOK, api.DetachResult{Detached: as})
	})
	for path, fn := range map[string]func(Endpoints, context.Context, string, string) (api.Attachment, error){
		"POST /v1/publish": Endpoints.Publish, "POST /v1/unpublish": Endpoints.Unpublish,
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			var req api.PublishRequest
			if !decode(w, r, &req) {
				return
			}
			a, err := fn(eps, r.Context(), req.Target, req.Spec)
			if err != nil {
				writeError(w, err)
				return
			}
			writeJSON(w, http.StatusOK, a)
		})
	}
	s.keyringRoutes(mux)
	s.dnsRoutes(mux)
	s.wireguardRoutes(mux)
	s.networkRoutes(mux)
	s.cniRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, api.Errorf(api.ErrNotFound, "no endpoint %s %s", r.Method, r.URL.Path))
	})
	s.srv = &http.Server{Handler: audit(log, mux), ConnContext: connContext, ReadHeaderTimeout: 10 * time.Second}
	return s
}

// Listen binds the socket at path, replacing a stale socket left by a crashed fabricd but
// refusing to start beside a live one.
func (s *Server) Listen(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("api socket dir: %w", err)
	}
	if c, err := net.Dial("unix", path); err == nil {
		c.Close()
		return fmt.Errorf("api socket %s: another fabricd is listening", path)
	}
	_ = os.Remove(path)
	old := umask(0o177)
	ln, err := net.Listen("unix", path)
	umask(old)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", path, err)
	}
	if err := s.socketMode(path); err != nil {
		ln.Close()
		return fmt.Errorf("api socket: %w", err)
	}
	s.ln = ln
	return nil
}

// Serve answers requests until Shutdown.
func (s *Server) Serve() error {
	if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Shutdown stops the server and removes its socket.
func (s *Server) Shutdown(ctx context.Context) error {
	err := s.srv.Shutdown(ctx)
	if s.ln != nil {
		_ = os.Remove(s.ln.Addr().String())
	}
	return err
}

// decode reads a JSON request body strictly; a malformed one is answered with 400.
func decode(w http.ResponseWriter, r *http.Request, v any) bool {
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, 1<<20))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		writeError(w, api.Errorf(api.ErrInvalid, "malformed request: %w", err))
		return false
	}
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

// writeError answers with err and the status its kind maps to (api.StatusCode, the only
// place errors become statuses).
func writeError(w http.ResponseWriter, err error) {
	writeJSON(w, api.StatusCode(err), api.Error{Error: err.Error(), CNICode: api.CNICode(err)})
}

// fabricWide is every endpoint of the fabric: this host's and the others', by host, then
// address.
func fabricWide(local, remote []api.Attachment) []api.Attachment {
	out := append(local, remote...)
	sort.Slice(out, func(i, j int) bool {
		if out[i].Host != out[j].Host {
			return out[i].Host < out[j].Host
		}
		return out[i].IP < out[j].IP
	})
	return out
}

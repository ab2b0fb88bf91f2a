package controller

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
	"sync/atomic"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
)

// Server is fabricd's local API on a unix socket (mode 0600: only root talks to fabricd;
// SetGroup opens it to a group).
type Server struct {
	ctrl    *Controller
	log     *slog.Logger
	leave   func(context.Context) error
	srv     *http.Server
	ln      net.Listener
	gid     int // group of the socket, -1: root only
	keyring atomic.Pointer[Keyring]
}

// NewServer returns the API server for ctrl. leave is called for POST /v1/leave.
func NewServer(ctrl *Controller, log *slog.Logger, leave func(context.Context) error) *Server {
	s := &Server{ctrl: ctrl, log: log, leave: leave, gid: -1}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, ctrl.Status())
	})
	mux.HandleFunc("GET /v1/peers", func(w http.ResponseWriter, r *http.Request) {
		p := ctrl.Status().Peers
		if p == nil {
			p = []api.Peer{}
		}
		writeJSON(w, http.StatusOK, p)
	})
	mux.HandleFunc("POST /v1/leave", func(w http.ResponseWriter, r *http.Request) {
		if err := s.leave(r.Context()); err != nil {
			writeError(w, http.StatusInternalServerError, err)
			return
		}
		writeJSON(w, http.StatusOK, api.Message{Message: "left the fabric; fabricd is stopping"})
	})
	mux.HandleFunc("GET /v1/attachments", func(w http.ResponseWriter, r *http.Request) {
		list := ctrl.Attachments
		if r.URL.Query().Get("all") != "" {
			list = ctrl.FabricAttachments
		}
		a, err := list(r.Context())
		if err != nil {
			writeError(w, httpCode(err), err)
			return
		}
		writeJSON(w, http.StatusOK, a)
	})
	mux.HandleFunc("POST /v1/attachments", func(w http.ResponseWriter, r *http.Request) {
		var req api.AttachRequest
		if !decode(w, r, &req) {
			return
		}
		a, err := ctrl.Attach(r.Context(), req)
		if err != nil {
			writeError(w, httpCode(err), err)
			return
		}
		writeJSON(w, http.StatusOK, a)
	})
	mux.HandleFunc("POST /v1/detach", func(w http.ResponseWriter, r *http.Request) {
		var req api.DetachRequest
		if !decode(w, r, &req) {
			return
		}
		a, err := ctrl.Detach(r.Context(), req.Target)
		if err != nil {
			writeError(w, httpCode(err), err)
			return
		}
		writeJSON(w, http.StatusOK, a)
	})
	for path, fn := range map[string]func(context.Context, string, string) (api.Attachment, error){
		"POST /v1/publish": ctrl.Publish, "POST /v1/unpublish": ctrl.Unpublish,
	} {
		mux.HandleFunc(path, func(w http.ResponseWriter, r *http.Request) {
			var req api.PublishRequest
			if !decode(w, r, &req) {
				return
			}
			a, err := fn(r.Context(), req.Target, req.Spec)
			if err != nil {
				writeError(w, httpCode(err), err)
				return
			}
			writeJSON(w, http.StatusOK, a)
		})
	}
	s.keyringRoutes(mux)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, fmt.Errorf("no endpoint %s %s", r.Method, r.URL.Path))
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
		writeError(w, http.StatusBadRequest, fmt.Errorf("malformed request: %w", err))
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

func writeError(w http.ResponseWriter, code int, err error) {
	writeJSON(w, code, api.Error{Error: err.Error()})
}

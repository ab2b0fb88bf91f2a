package apiserver

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/user"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Peer credentials of API callers. The socket is root's (0600) unless --api-group opens it
// to a group (0660), as docker.sock does; either way every request that changes something
// is logged with the caller's uid, gid and pid, read from the connection (SO_PEERCRED), so
// that what was done can be traced to who did it.

// Caller is who is on the other end of an API connection, as the kernel reports it.
type Caller struct {
	UID, GID uint32
	PID      int32
}

type callerKey struct{}

// CallerFrom returns the caller of the request whose context is ctx, when known.
func CallerFrom(ctx context.Context) (Caller, bool) {
	c, ok := ctx.Value(callerKey{}).(Caller)
	return c, ok
}

// connContext stores the peer credentials of a unix socket connection in its context
// (http.Server.ConnContext).
func connContext(ctx context.Context, c net.Conn) context.Context {
	uc, ok := c.(*net.UnixConn)
	if !ok {
		return ctx
	}
	cred, err := peerCred(uc)
	if err != nil {
		return ctx
	}
	return context.WithValue(ctx, callerKey{}, cred)
}

// peerCred reads SO_PEERCRED of a unix socket connection.
func peerCred(c *net.UnixConn) (Caller, error) {
	raw, err := c.SyscallConn()
	if err != nil {
		return Caller{}, err
	}
	var cred *unix.Ucred
	var credErr error
	if err := raw.Control(func(fd uintptr) {
		cred, credErr = unix.GetsockoptUcred(int(fd), unix.SOL_SOCKET, unix.SO_PEERCRED)
	}); err != nil {
		return Caller{}, err
	}
	if credErr != nil {
		return Caller{}, fmt.Errorf("SO_PEERCRED: %w", credErr)
	}
	return Caller{UID: cred.Uid, GID: cred.Gid, PID: cred.Pid}, nil
}

// audit logs every request that may change something (any method but GET and HEAD) with
// the caller's credentials and the answer's status.
func audit(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet || r.Method == http.MethodHead {
			next.ServeHTTP(w, r)
			return
		}
		sw := &statusWriter{ResponseWriter: w, code: http.StatusOK}
		start := time.Now()
		next.ServeHTTP(sw, r)
		took := time.Since(start).Round(100 * time.Microsecond)
		attrs := []any{"method", r.Method, "path", r.URL.Path, "status", sw.code}
		if c, ok := CallerFrom(r.Context()); ok {
			attrs = append(attrs, "uid", c.UID, "gid", c.GID, "pid", c.PID)
		} else {
			attrs = append(attrs, "uid", "unknown")
		}
		log.Info("api request", append(attrs, "took", took)...)
	})
}

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// SetGroup opens the API socket to the members of group (a name or a numeric gid): Listen
// then makes the socket root:group, mode 0660. Without it the socket is root-only (0600).
func (s *Server) SetGroup(group string) error {
	s.gid = -1
	if group == "" {
		return nil
	}
	gid, err := LookupGroup(group)
	if err != nil {
		return err
	}
	s.gid = gid
	return nil
}

// LookupGroup resolves --api-group (a group name or a numeric gid) to a gid.
func LookupGroup(group string) (int, error) {
	g, err := user.LookupGroup(group)
	if err != nil {
		if g, err = user.LookupGroupId(group); err != nil {
			return 0, fmt.Errorf("--api-group %q: no such group", group)
		}
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return 0, fmt.Errorf("--api-group %q: gid %q: %w", group, g.Gid, err)
	}
	return gid, nil
}

// socketMode applies the socket's ownership and mode: 0600, or root:group 0660.
func (s *Server) socketMode(path string) error {
	if s.gid < 0 {
		return os.Chmod(path, 0o600)
	}
	if err := os.Chown(path, -1, s.gid); err != nil {
		return fmt.Errorf("chown %s to gid %d: %w", path, s.gid, err)
	}
	return os.Chmod(path, 0o660)
}

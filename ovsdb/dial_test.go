package ovsdb

import (
	"bytes"
	"context"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/ovsdb/ovsdbtest"
)

func TestDialErrors(t *testing.T) {
	dir := shortTempDir(t)
	// A server that accepts and never answers: only the context ends the wait.
	silent := filepath.Join(dir, "silent.sock")
	l, err := net.Listen("unix", silent)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				c.Close()
			}
		}()
		for {
			conn, err := l.Accept()
			if err != nil {
				return
			}
			conns = append(conns, conn)
		}
	}()
	for _, tc := range []struct {
		name, endpoint string
		invalid        bool
		contains       string
	}{
		{"scheme", "http://x", true, "http://x"},
		{"empty unix", "unix:", true, "unix:"},
		{"tcp without port", "tcp:127.0.0.1", true, "tcp:127.0.0.1"},
		{"tcp bad port", "tcp:127.0.0.1:99999", true, "99999"},
		{"missing socket", "unix:" + filepath.Join(dir, "nothing.sock"), false, "nothing.sock"},
		{"silent server", "unix:" + silent, false, "silent.sock"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			start := time.Now()
			c, err := Dial(ctx, tc.endpoint)
			if err == nil {
				c.Close()
				t.Fatal("Dial succeeded")
			}
			if isErr(err, ErrInvalid) != tc.invalid {
				t.Errorf("err = %v, ErrInvalid = %v, want %v", err, isErr(err, ErrInvalid), tc.invalid)
			}
			if !strings.Contains(err.Error(), tc.contains) {
				t.Errorf("err = %q, does not name %q", err, tc.contains)
			}
			if tc.name == "silent server" && !isErr(err, context.DeadlineExceeded) {
				t.Errorf("err = %v, want context.DeadlineExceeded", err)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("Dial took %s with a 300ms deadline", d)
			}
		})
	}
}

func TestDialRelativeSocketAndLogger(t *testing.T) {
	ep := ovsdbtest.Start(t)
	sock := strings.TrimPrefix(ep, "unix:")
	t.Chdir(filepath.Dir(sock))
	var logs bytes.Buffer
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := Dial(ctx, "unix:"+filepath.Base(sock), WithLogger(slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelInfo}))))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if c.Endpoint() != ep {
		t.Errorf("Endpoint() = %s, want %s", c.Endpoint(), ep)
	}
	ensureBridge(t, c, "br-int", "h1")
	if _, err := c.ReconcileTunnels(ctx, "br-int", "h1", []TunnelSpec{tun("vxl-a", "10.0.0.2")}); err != nil {
		t.Fatal(err)
	}
	// libovsdb's per-update chatter stays below Info.
	if logs.Len() != 0 {
		t.Errorf("logged at Info level:\n%s", logs.String())
	}
	c.Close()
	c.Close() // idempotent
}

// TestReconnect restarts the real ovsdb-server under a client: writes wait for the reconnect
// and then work, and the cache is current again.
func TestReconnect(t *testing.T) {
	ep, restart := startOVSDBServerRestartable(t)
	ctx := context.Background()
	c := dial(t, ep)
	ensureBridge(t, c, "br-int", "h1")
	restart()
	wctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	res, err := c.ReconcileTunnels(wctx, "br-int", "h1", []TunnelSpec{tun("vxl-a", "10.0.0.2")})
	if err != nil || !res.Transacted {
		t.Fatalf("reconcile after server restart: %+v %v", res, err)
	}
	expectNoWrite(t, c, "repeat after restart", func() {
		if _, err := c.ReconcileTunnels(wctx, "br-int", "h1", []TunnelSpec{tun("vxl-a", "10.0.0.2")}); err != nil {
			t.Error(err)
		}
	})
}

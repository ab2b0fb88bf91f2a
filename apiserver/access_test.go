package apiserver

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/peers"
)

// syncBuf is a log destination safe for the server's goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// serve runs an API server (without a controller: only endpoints that need none are used)
// on a socket in a temporary directory.
func serve(t *testing.T, group string) (*Server, string, *syncBuf) {
	t.Helper()
	logs := &syncBuf{}
	s := NewServer(nil, nil, slog.New(slog.NewTextHandler(logs, nil)), func(context.Context) error { return errors.New("not here") })
	if err := s.SetGroup(group); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "api.sock")
	if err := s.Listen(path); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve() }()
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return s, path, logs
}

func TestSocketMode(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("changing a socket's group needs root")
	}
	for _, tc := range []struct {
		group string
		mode  os.FileMode
		gid   int
	}{
		{"", 0o600, os.Getgid()},
		{"nogroup", 0o660, 65534},
		{"65534", 0o660, 65534},
	} {
		_, path, _ := serve(t, tc.group)
		fi, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode().Perm() != tc.mode || int(st.Gid) != tc.gid || st.Uid != 0 {
			t.Errorf("group %q: socket mode %v uid %d gid %d, want %v root:%d", tc.group, fi.Mode().Perm(), st.Uid, st.Gid, tc.mode, tc.gid)
		}
	}
	s := NewServer(nil, nil, slog.Default(), nil)
	if err := s.SetGroup("no-such-group-ovsfabric"); err == nil || !strings.Contains(err.Error(), "no such group") {
		t.Errorf("unknown group: %v", err)
	}
}

func TestAuditLogsCallerOfChanges(t *testing.T) {
	_, path, logs := serve(t, "")
	c := api.NewClient(path)
	ctx := context.Background()
	_, err := c.ChangeKeyring(ctx, api.KeyringRequest{Op: "rotate"})
	var se *api.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusBadRequest {
		t.Fatalf("bad keyring op: %v", err)
	}
	want := fmt.Sprintf("uid=%d gid=%d pid=%d", os.Getuid(), os.Getgid(), os.Getpid())
	out := logs.String()
	if !strings.Contains(out, "method=POST path=/v1/keyring status=400 "+want) {
		t.Errorf("no audit line with %q in:\n%s", want, out)
	}
	// Reads are not logged.
	_, _ = c.Keyring(ctx)
	if strings.Contains(logs.String(), "method=GET") {
		t.Errorf("a GET was logged:\n%s", logs.String())
	}
}

func TestKeyringAPI(t *testing.T) {
	s, path, _ := serve(t, "")
	c := api.NewClient(path)
	ctx := context.Background()
	if _, err := c.Keyring(ctx); err == nil || !strings.Contains(err.Error(), "not running") {
		t.Fatalf("keyring before gossip: %v", err)
	}
	m, err := peers.Start(ctx, peers.Config{Name: "a", BindAddr: netip.MustParseAddr("127.0.0.1"), Meta: peers.Meta{
		Proto: peers.ProtocolVersion, Addr: netip.MustParseAddr("192.168.59.1"), Tunnel: peers.TunnelGRE,
		ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"),
	}, KeyringFile: filepath.Join(t.TempDir(), "keyring")})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Shutdown()
	s.SetKeyring(m)
	key := base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{1}, 32))
	r, err := c.ChangeKeyring(ctx, api.KeyringRequest{Op: api.KeyringInstall, Key: key})
	if err != nil {
		t.Fatal(err)
	}
	if r.Failed != 0 || len(r.Hosts) != 1 || r.Hosts[0].Primary != key || len(r.Keys) != 1 || r.Keys[0].Installed != 1 || r.Keys[0].Primary != 1 {
		t.Fatalf("install: %+v", r)
	}
	if !m.Encrypted() {
		t.Error("not encrypted after install")
	}
	r, err = c.ChangeKeyring(ctx, api.KeyringRequest{Op: api.KeyringRemove, Key: key})
	if err != nil || r.Failed != 1 || !strings.Contains(r.Hosts[0].Error, "primary") {
		t.Fatalf("removing the primary key: %+v, %v", r, err)
	}
	l, err := c.Keyring(ctx)
	if err != nil || l.Op != "list" || len(l.Hosts) != 1 || len(l.Hosts[0].Keys) != 1 {
		t.Fatalf("list: %+v, %v", l, err)
	}
}

func TestParseKeyringRequest(t *testing.T) {
	k16 := base64.StdEncoding.EncodeToString(make([]byte, 16))
	for _, tc := range []struct {
		req  api.KeyringRequest
		want string
	}{
		{api.KeyringRequest{Op: "list"}, ""},
		{api.KeyringRequest{Op: "install", Key: k16}, ""},
		{api.KeyringRequest{Op: "use", Key: k16}, ""},
		{api.KeyringRequest{Op: "remove", Key: k16}, ""},
		{api.KeyringRequest{Op: "list", Key: k16}, "takes no key"},
		{api.KeyringRequest{Op: "install"}, "0 bytes"},
		{api.KeyringRequest{Op: "install", Key: "!!"}, "base64"},
		{api.KeyringRequest{Op: "install", Key: base64.StdEncoding.EncodeToString(make([]byte, 20))}, "20 bytes"},
		{api.KeyringRequest{Op: "drop", Key: k16}, "want list"},
	} {
		_, key, err := parseKeyringRequest(tc.req)
		if tc.want == "" {
			if err != nil || tc.req.Op != "list" && len(key) != 16 {
				t.Errorf("%+v: %v", tc.req, err)
			}
		} else if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want %q", tc.req, err, tc.want)
		}
	}
}

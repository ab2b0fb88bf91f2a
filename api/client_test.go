package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/ovsdb/ovsdbtest"
)

// sockDir is a short directory for unix sockets (their paths are limited to 108 bytes).
func sockDir(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "apit")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// serve runs h on a unix socket until the test ends.
func serve(t *testing.T, h http.Handler) string {
	t.Helper()
	sock := filepath.Join(sockDir(t), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { srv.Close() })
	return sock
}

// hangUp listens on a unix socket and closes every connection after reading from it, as a
// server that does not speak HTTP does.
func hangUp(t *testing.T, reply string) string {
	t.Helper()
	sock := filepath.Join(sockDir(t), "s.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			_, _ = c.Read(buf)
			_, _ = c.Write([]byte(reply))
			c.Close()
		}
	}()
	return sock
}

// realOVSDB starts ovsdb-server from Open vSwitch with the Open_vSwitch schema, if installed.
func realOVSDB(t *testing.T) string {
	t.Helper()
	server, err := exec.LookPath("ovsdb-server")
	if err != nil {
		t.Skip("ovsdb-server not installed")
	}
	tool, err := exec.LookPath("ovsdb-tool")
	schema := "/usr/share/openvswitch/vswitch.ovsschema"
	if _, serr := os.Stat(schema); err != nil || serr != nil {
		t.Skip("ovsdb-tool or the vswitch schema not installed")
	}
	dir := sockDir(t)
	db, sock := filepath.Join(dir, "conf.db"), filepath.Join(dir, "db.sock")
	if out, err := exec.Command(tool, "create", db, schema).CombinedOutput(); err != nil {
		t.Fatalf("ovsdb-tool create: %v %s", err, out)
	}
	cmd := exec.Command(server, "--remote=punix:"+sock, "--unixctl="+filepath.Join(dir, "ctl"), "--no-chdir", db)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if c, err := net.Dial("unix", sock); err == nil {
			c.Close()
			return sock
		}
		if time.Now().After(deadline) {
			t.Fatal("ovsdb-server did not listen")
		}
	}
}

func TestClientSocketErrors(t *testing.T) {
	fabricd := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if r.URL.Path == "/v1/status" {
			fmt.Fprintln(w, `{"node": "h1"}`)
			return
		}
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintln(w, `{"error": "h1 is not attached on this host"}`)
	}))
	// Docker answers an unknown path with a JSON body of its own shape.
	docker := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusNotFound)
		fmt.Fprintln(w, `{"message":"page not found"}`)
	}))
	plain := serve(t, http.NotFoundHandler()) // "404 page not found", text/plain
	textOK := serve(t, http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "hello") }))
	dir := sockDir(t)
	regular := filepath.Join(dir, "file")
	_ = os.WriteFile(regular, nil, 0o600)
	stale := filepath.Join(dir, "stale.sock") // a socket nobody listens on
	if ln, err := net.Listen("unix", stale); err == nil {
		ln.(*net.UnixListener).SetUnlinkOnClose(false)
		ln.Close()
	}

	for _, tc := range []struct {
		name   string
		socket string
		is     error // nil: success
		say    string
	}{
		{"fabricd", fabricd, nil, ""},
		{"ovsdb (in-memory)", strings.TrimPrefix(ovsdbtest.Start(t), "unix:"), ErrNotFabricd, "is not a fabricd API socket"},
		{"closes at once", hangUp(t, ""), ErrNotFabricd, "is not a fabricd API socket"},
		{"answers JSON-RPC", hangUp(t, `{"id":null,"error":"syntax error"}`), ErrNotFabricd, "is not a fabricd API socket"},
		{"docker", docker, ErrNotFabricd, "page not found"},
		{"plain 404", plain, ErrNotFabricd, "is not a fabricd API socket"},
		{"text 200", textOK, ErrNotFabricd, "is not a fabricd API socket"},
		{"regular file", regular, ErrNotFabricd, "not a socket"},
		{"missing", filepath.Join(dir, "none.sock"), ErrNotRunning, "FABRICCTL_SOCKET"},
		{"stale socket", stale, ErrNotRunning, "no API socket at"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			st, err := NewClient(tc.socket).Status(ctx)
			if tc.is == nil {
				if err != nil || st.Node != "h1" {
					t.Fatalf("status: %+v %v", st, err)
				}
				return
			}
			if !errors.Is(err, tc.is) || !strings.Contains(err.Error(), tc.say) || !strings.Contains(err.Error(), tc.socket) {
				t.Errorf("err = %v, want %v naming the socket and saying %q", err, tc.is, tc.say)
			}
		})
	}
	// fabricd's own errors pass through as they are.
	_, err := NewClient(fabricd).Detach(context.Background(), DetachRequest{Target: "h1"})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 404 || se.Message != "h1 is not attached on this host" {
		t.Errorf("fabricd error: %v", err)
	}
}

func TestClientRealOVSDBSocket(t *testing.T) {
	sock := realOVSDB(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := NewClient(sock).Status(ctx)
	t.Log(err)
	if !errors.Is(err, ErrNotFabricd) || !strings.Contains(err.Error(), sock+" is not a fabricd API socket") {
		t.Errorf("err = %v, want %q", err, sock+" is not a fabricd API socket")
	}
}

// TestClientPermissionDenied connects as an unprivileged user (uid 65534) in a child process
// to a root-only socket, as fabricctl run by a user does.
func TestClientPermissionDenied(t *testing.T) {
	if sock := os.Getenv("APITEST_SOCKET"); sock != "" {
		_, err := NewClient(sock).Status(context.Background())
		fmt.Println(err)
		if !errors.Is(err, ErrPermission) {
			os.Exit(3)
		}
		os.Exit(0)
	}
	if os.Getuid() != 0 {
		// Not root: a socket of mode 0 is refused to us directly.
		sock := serve(t, http.NotFoundHandler())
		_ = os.Chmod(sock, 0)
		_, err := NewClient(sock).Status(context.Background())
		if !errors.Is(err, ErrPermission) || !strings.Contains(err.Error(), "root-only (see fabricd's --api-group") {
			t.Errorf("err = %v", err)
		}
		return
	}
	sock := serve(t, http.NotFoundHandler())
	_ = os.Chmod(filepath.Dir(sock), 0o755) // the socket itself, mode 0600, is what refuses
	_ = os.Chmod(sock, 0o600)
	// A copy of the test binary that uid 65534 may run (go test's build dir is root-only).
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	dir := sockDir(t)
	_ = os.Chmod(dir, 0o755)
	exe = filepath.Join(dir, "api.test")
	if err := os.WriteFile(exe, bin, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(exe, "-test.run", "^TestClientPermissionDenied$")
	cmd.Env = append(os.Environ(), "APITEST_SOCKET="+sock)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	t.Logf("as uid 65534: %s", bytes.TrimSpace(out))
	if err != nil || !strings.Contains(string(out), "permission denied: the socket "+sock+" is root-only (see fabricd's --api-group") {
		t.Errorf("as uid 65534: %v\n%s", err, out)
	}
}

// TestClientNetworkRequests: each network call and Detach sends its method, path and body,
// and decodes the answer's shape.
func TestClientNetworkRequests(t *testing.T) {
	type got struct{ method, path, body string }
	var last got
	sock := serve(t, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		last = got{r.Method, r.URL.EscapedPath(), strings.TrimSpace(string(b))}
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/v1/networks":
			if r.Method == http.MethodGet {
				fmt.Fprintln(w, `[{"name":"blue","subnet":"10.9.0.0/16"}]`)
				return
			}
			fmt.Fprintln(w, `{"name":"blue","subnet":"10.9.0.0/16","key":7}`)
		case "/v1/detach":
			fmt.Fprintln(w, `{"detached":[{"network":"blue","ip":"10.9.1.2"},{"network":"default","ip":"10.244.1.2"}]}`)
		default:
			fmt.Fprintln(w, `{"name":"blue","slices":[{"host":"h1","slice":"10.9.1.0/24"}]}`)
		}
	}))
	c := NewClient(sock)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		call func() (any, error)
		want got
		res  string
	}{
		{"create", func() (any, error) {
			return c.CreateNetwork(ctx, NetworkCreateRequest{Name: "blue", Subnet: "10.9.0.0/16", Internal: true})
		}, got{"POST", "/v1/networks", `{"name":"blue","subnet":"10.9.0.0/16","internal":true}`}, "blue 10.9.0.0/16 key 7 slices 0"},
		{"list", func() (any, error) { return c.Networks(ctx) },
			got{"GET", "/v1/networks", ""}, "[blue 10.9.0.0/16 key 0 slices 0]"},
		{"inspect", func() (any, error) { return c.Network(ctx, "blue") },
			got{"GET", "/v1/networks/blue", ""}, "blue  key 0 slices 1"},
		{"rm", func() (any, error) { return c.RemoveNetwork(ctx, NetworkRemoveRequest{Name: "blue", Force: true}) },
			got{"POST", "/v1/networks/rm", `{"name":"blue","force":true}`}, "blue  key 0 slices 1"},
		{"detach", func() (any, error) { return c.Detach(ctx, DetachRequest{Target: "web", Network: "blue"}) },
			got{"POST", "/v1/detach", `{"target":"web","network":"blue"}`}, "2 blue,default"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			last = got{}
			v, err := tc.call()
			if err != nil {
				t.Fatal(err)
			}
			if last != tc.want {
				t.Errorf("sent %+v, want %+v", last, tc.want)
			}
			brief := func(n Network) string {
				return fmt.Sprintf("%s %s key %d slices %d", n.Name, n.Subnet, n.Key, len(n.Slices))
			}
			var res string
			switch v := v.(type) {
			case Network:
				res = brief(v)
			case []Network:
				res = "[" + brief(v[0]) + "]"
			case []Attachment:
				res = fmt.Sprintf("%d %s,%s", len(v), v[0].Network, v[1].Network)
			}
			if res != tc.res {
				t.Errorf("answer %s, want %s", res, tc.res)
			}
		})
	}
	// A name that would name another path is refused before it is sent.
	for _, name := range []string{"", ".", ".."} {
		last = got{}
		if _, err := c.Network(ctx, name); !errors.Is(err, ErrInvalid) || last != (got{}) {
			t.Errorf("network %q: %v, sent %+v", name, err, last)
		}
	}
	if _, err := c.Network(ctx, "a/b"); err != nil || last.path != "/v1/networks/a%2Fb" {
		t.Errorf("a/b: %v, sent %+v", err, last)
	}
}

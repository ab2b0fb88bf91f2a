package apiserver

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"path/filepath"
	"reflect"
	"testing"

	"github.com/ovsfabric/ovsfabric/api"
)

// cniEndpoints answers the CNI routes from fixed values and records the requests.
type cniEndpoints struct {
	Endpoints // not called
	got       []any
	err       error
}

func (e *cniEndpoints) CNIAdd(_ context.Context, req api.CNIRequest) (api.CNIResult, error) {
	e.got = append(e.got, req)
	return api.CNIResult{Attachment: api.Attachment{IP: "10.244.1.2/24"}, Network: req.Network}, e.err
}
func (e *cniEndpoints) CNIDel(_ context.Context, req api.CNIRequest) error {
	e.got = append(e.got, req)
	return e.err
}
func (e *cniEndpoints) CNICheck(_ context.Context, req api.CNIRequest) (api.CNIResult, error) {
	e.got = append(e.got, req)
	return api.CNIResult{}, e.err
}
func (e *cniEndpoints) CNIStatus(_ context.Context, network string) error {
	e.got = append(e.got, "status "+network)
	return e.err
}
func (e *cniEndpoints) CNIGC(_ context.Context, req api.CNIGCRequest) (api.CNIGCResult, error) {
	e.got = append(e.got, req)
	return api.CNIGCResult{Removed: []string{"a/eth0"}}, e.err
}

func serveEndpoints(t *testing.T, eps Endpoints) *api.Client {
	t.Helper()
	s := NewServer(nil, eps, slog.New(slog.DiscardHandler), nil)
	path := filepath.Join(t.TempDir(), "api.sock")
	if err := s.Listen(path); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve() }()
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return api.NewClient(path)
}

func TestCNIRoutes(t *testing.T) {
	ctx := context.Background()
	eps := &cniEndpoints{}
	c := serveEndpoints(t, eps)
	req := api.CNIRequest{ContainerID: "a", IfName: "eth0", NetNS: "/x", Network: "default", Config: "fab", Publish: []string{"80:80/tcp"}}
	res, err := c.CNIAdd(ctx, req)
	if err != nil || res.IP != "10.244.1.2/24" || res.Network != "default" {
		t.Fatalf("add: %+v %v", res, err)
	}
	gc, err := c.CNIGC(ctx, api.CNIGCRequest{Network: "default", Config: "fab", Valid: []api.CNIGCItem{{ContainerID: "b", IfName: "eth0"}}})
	if err != nil || !reflect.DeepEqual(gc.Removed, []string{"a/eth0"}) {
		t.Fatalf("gc: %+v %v", gc, err)
	}
	if err := c.CNIDel(ctx, req); err != nil {
		t.Fatal(err)
	}
	if err := c.CNIStatus(ctx, "blue net"); err != nil {
		t.Fatal(err)
	}
	want := []any{req, api.CNIGCRequest{Network: "default", Config: "fab", Valid: []api.CNIGCItem{{ContainerID: "b", IfName: "eth0"}}}, req, "status blue net"}
	if !reflect.DeepEqual(eps.got, want) {
		t.Errorf("requests\n got %+v\nwant %+v", eps.got, want)
	}

	// An error keeps its kind (the HTTP status) and its CNI code across the socket.
	eps.err = api.WithCNICode(api.CNIErrUnknownNetwork, api.Errorf(api.ErrNotFound, "unknown network %q", "blue"))
	_, err = c.CNIAdd(ctx, req)
	var se *api.StatusError
	if !errors.As(err, &se) || se.Code != http.StatusNotFound || api.CNICode(err) != api.CNIErrUnknownNetwork || err.Error() != `unknown network "blue"` {
		t.Errorf("error across the socket: %#v", err)
	}
	eps.err = api.Errorf(api.ErrUnavailable, "starting")
	if err := c.CNIStatus(ctx, ""); !errors.Is(err, api.ErrUnavailable) || api.CNICode(err) != 0 {
		t.Errorf("status: %v (code %d)", err, api.CNICode(err))
	}

	// Strict decoding: an unknown field is a 400.
	err = c.Do(ctx, http.MethodPost, "/v1/cni/add", map[string]any{"container_id": "a", "bogus": 1}, nil)
	if !errors.Is(err, api.ErrInvalid) {
		t.Errorf("unknown field: %v", err)
	}
}

func TestCNIRoutesNeedCNIEndpoints(t *testing.T) {
	c := serveEndpoints(t, nil)
	if err := c.CNIStatus(context.Background(), ""); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("CNI route without CNI endpoints: %v", err)
	}
}

package apiserver

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/ovsfabric/ovsfabric/api"
)

// fakeNetworks is a fabric's networks held in a map, refusing what the real ones refuse with
// the same kinds of errors; it records the requests it gets.
type fakeNetworks struct {
	nets map[string]api.Network
	// endpoints counts each network's endpoints by host (rm is refused while any).
	endpoints map[string]map[string]int
	got       []any
}

func (f *fakeNetworks) Create(_ context.Context, req api.NetworkCreateRequest) (api.Network, error) {
	f.got = append(f.got, req)
	if req.Name == "" || req.Subnet == "" {
		return api.Network{}, api.Errorf(api.ErrInvalid, "a network needs a name and a subnet")
	}
	if n, ok := f.nets[req.Name]; ok && n.Subnet != req.Subnet {
		return n, api.Errorf(api.ErrConflict, "network %s exists with subnet %s", req.Name, n.Subnet)
	}
	n := api.Network{Name: req.Name, Subnet: req.Subnet, HostPrefix: 24, Key: 100, Internal: req.Internal, Origin: "h1"}
	f.nets[req.Name] = n
	return n, nil
}

func (f *fakeNetworks) List(context.Context) ([]api.Network, error) {
	f.got = append(f.got, "list")
	var out []api.Network
	for _, n := range f.nets {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (f *fakeNetworks) Inspect(_ context.Context, name string) (api.Network, error) {
	f.got = append(f.got, "inspect "+name)
	n, ok := f.nets[name]
	if !ok {
		return api.Network{}, api.Errorf(api.ErrNotFound, "no network %q", name)
	}
	n.Slices = []api.NetworkSlice{{Host: "h1", Slice: "10.9.1.0/24"}}
	return n, nil
}

func (f *fakeNetworks) Remove(_ context.Context, req api.NetworkRemoveRequest) (api.Network, error) {
	f.got = append(f.got, req)
	n, ok := f.nets[req.Name]
	if !ok {
		return api.Network{}, api.Errorf(api.ErrNotFound, "no network %q", req.Name)
	}
	if hosts := f.endpoints[req.Name]; len(hosts) > 0 && !req.Force {
		var where []string
		for h, c := range hosts {
			where = append(where, h+" ("+strconv.Itoa(c)+")")
		}
		sort.Strings(where)
		return n, api.Errorf(api.ErrConflict, "network %s has endpoints on %s; detach them or use --force", req.Name, strings.Join(where, ", "))
	}
	delete(f.nets, req.Name)
	return n, nil
}

func TestNetworkRoutes(t *testing.T) {
	s, path, _ := serve(t, "")
	c := api.NewClient(path)
	ctx := context.Background()

	// Before fabricd hands the server its networks, every route says so with a 503.
	for name, call := range map[string]func() error{
		"create":  func() error { _, err := c.CreateNetwork(ctx, api.NetworkCreateRequest{Name: "blue"}); return err },
		"list":    func() error { _, err := c.Networks(ctx); return err },
		"inspect": func() error { _, err := c.Network(ctx, "blue"); return err },
		"rm":      func() error { _, err := c.RemoveNetwork(ctx, api.NetworkRemoveRequest{Name: "blue"}); return err },
	} {
		if err := call(); !errors.Is(err, api.ErrUnavailable) {
			t.Errorf("%s without networks: %v, want a 503", name, err)
		}
	}

	f := &fakeNetworks{nets: map[string]api.Network{}, endpoints: map[string]map[string]int{}}
	s.SetNetworks(f)
	empty, err := c.Networks(ctx)
	if err != nil || empty == nil || len(empty) != 0 {
		t.Fatalf("no networks: %#v %v, want an empty list", empty, err)
	}
	blue := api.NetworkCreateRequest{Name: "blue", Subnet: "10.9.0.0/16", Internal: true}
	n, err := c.CreateNetwork(ctx, blue)
	if err != nil || n.Name != "blue" || n.Key != 100 || !n.Internal {
		t.Fatalf("create: %+v %v", n, err)
	}
	if _, err := c.CreateNetwork(ctx, api.NetworkCreateRequest{Name: "red", Subnet: "10.10.0.0/16"}); err != nil {
		t.Fatal(err)
	}
	list, err := c.Networks(ctx)
	if err != nil || len(list) != 2 || list[0].Name != "blue" || list[1].Name != "red" {
		t.Fatalf("list: %+v %v", list, err)
	}
	n, err = c.Network(ctx, "blue")
	if err != nil || n.Subnet != "10.9.0.0/16" || len(n.Slices) != 1 {
		t.Fatalf("inspect: %+v %v", n, err)
	}
	f.endpoints["blue"] = map[string]int{"h2": 2, "h3": 1}

	// Errors keep their kind, hence their status, and their message as fabricd wrote it.
	for _, tc := range []struct {
		name string
		call func() error
		code int
		say  string
	}{
		{"create without a subnet", func() error { _, err := c.CreateNetwork(ctx, api.NetworkCreateRequest{Name: "x"}); return err },
			http.StatusBadRequest, "needs a name and a subnet"},
		{"create a name taken otherwise", func() error {
			_, err := c.CreateNetwork(ctx, api.NetworkCreateRequest{Name: "blue", Subnet: "10.11.0.0/16"})
			return err
		}, http.StatusConflict, "network blue exists with subnet 10.9.0.0/16"},
		{"inspect unknown", func() error { _, err := c.Network(ctx, "green"); return err }, http.StatusNotFound, `no network "green"`},
		{"rm unknown", func() error { _, err := c.RemoveNetwork(ctx, api.NetworkRemoveRequest{Name: "green"}); return err },
			http.StatusNotFound, `no network "green"`},
		{"rm in use", func() error { _, err := c.RemoveNetwork(ctx, api.NetworkRemoveRequest{Name: "blue"}); return err },
			http.StatusConflict, "network blue has endpoints on h2 (2), h3 (1); detach them or use --force"},
		// Strict decoding: an unknown field, a wrong type or no body at all is a 400 that
		// reaches no network.
		{"create unknown field", func() error {
			return c.Do(ctx, http.MethodPost, "/v1/networks", map[string]any{"name": "x", "subnet": "10.12.0.0/16", "vni": 5}, nil)
		}, http.StatusBadRequest, `unknown field "vni"`},
		{"create wrong type", func() error {
			return c.Do(ctx, http.MethodPost, "/v1/networks", map[string]any{"name": "x", "subnet": "10.12.0.0/16", "key": "5"}, nil)
		}, http.StatusBadRequest, "malformed request"},
		{"create negative key", func() error {
			return c.Do(ctx, http.MethodPost, "/v1/networks", map[string]any{"name": "x", "subnet": "10.12.0.0/16", "key": -1}, nil)
		}, http.StatusBadRequest, "malformed request"},
		{"rm unknown field", func() error {
			return c.Do(ctx, http.MethodPost, "/v1/networks/rm", map[string]any{"name": "blue", "forced": true}, nil)
		}, http.StatusBadRequest, `unknown field "forced"`},
		{"rm without a body", func() error { return c.Do(ctx, http.MethodPost, "/v1/networks/rm", nil, nil) },
			http.StatusBadRequest, "malformed request"},
		{"delete is no method of a network", func() error { return c.Do(ctx, http.MethodDelete, "/v1/networks/blue", nil, nil) },
			http.StatusNotFound, "no endpoint DELETE /v1/networks/blue"},
	} {
		var se *api.StatusError
		if err := tc.call(); !errors.As(err, &se) || se.Code != tc.code || !strings.Contains(se.Message, tc.say) {
			t.Errorf("%s: %v, want a %d saying %q", tc.name, err, tc.code, tc.say)
		}
	}
	n, err = c.RemoveNetwork(ctx, api.NetworkRemoveRequest{Name: "blue", Force: true})
	if err != nil || n.Name != "blue" {
		t.Fatalf("rm --force: %+v %v", n, err)
	}
	if _, err := c.Network(ctx, "blue"); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("inspect after rm: %v", err)
	}

	// The requests that decoded reached the networks as sent; the malformed ones did not.
	want := []any{"list", blue, api.NetworkCreateRequest{Name: "red", Subnet: "10.10.0.0/16"}, "list", "inspect blue",
		api.NetworkCreateRequest{Name: "x"}, api.NetworkCreateRequest{Name: "blue", Subnet: "10.11.0.0/16"}, "inspect green",
		api.NetworkRemoveRequest{Name: "green"}, api.NetworkRemoveRequest{Name: "blue"},
		api.NetworkRemoveRequest{Name: "blue", Force: true}, "inspect blue"}
	if !reflect.DeepEqual(f.got, want) {
		t.Errorf("requests\n got %+v\nwant %+v", f.got, want)
	}
}

// detachEndpoints answers detach with the endpoints of the request's network, or all.
type detachEndpoints struct {
	Endpoints // not called
	eps       []api.Attachment
	got       []api.DetachRequest
}

func (e *detachEndpoints) Detach(_ context.Context, req api.DetachRequest) ([]api.Attachment, error) {
	e.got = append(e.got, req)
	var out []api.Attachment
	for _, a := range e.eps {
		if a.Container == req.Target && (req.Network == "" || a.Network == req.Network) {
			out = append(out, a)
		}
	}
	if out == nil {
		return nil, api.Errorf(api.ErrNotFound, "%s is not attached on this host", req.Target)
	}
	return out, nil
}

func TestDetachRoute(t *testing.T) {
	ctx := context.Background()
	eps := &detachEndpoints{eps: []api.Attachment{
		{Container: "web", Network: "default", IP: "10.244.1.2", Published: []string{"tcp:8080:80"}},
		{Container: "web", Network: "blue", IP: "10.9.1.2"},
	}}
	c := serveEndpoints(t, eps)
	one, err := c.Detach(ctx, api.DetachRequest{Target: "web", Network: "blue"})
	if err != nil || len(one) != 1 || one[0].IP != "10.9.1.2" {
		t.Errorf("detach from blue: %+v %v", one, err)
	}
	all, err := c.Detach(ctx, api.DetachRequest{Target: "web"})
	if err != nil || len(all) != 2 || !reflect.DeepEqual(all[0].Published, []string{"tcp:8080:80"}) {
		t.Errorf("detach from all: %+v %v", all, err)
	}
	if _, err := c.Detach(ctx, api.DetachRequest{Target: "db"}); !errors.Is(err, api.ErrNotFound) {
		t.Errorf("detach unknown: %v", err)
	}
	if err := c.Do(ctx, http.MethodPost, "/v1/detach", map[string]any{"target": "web", "networks": []string{"blue"}}, nil); !errors.Is(err, api.ErrInvalid) {
		t.Errorf("unknown field: %v", err)
	}
	want := []api.DetachRequest{{Target: "web", Network: "blue"}, {Target: "web"}, {Target: "db"}}
	if !reflect.DeepEqual(eps.got, want) {
		t.Errorf("requests %+v, want %+v", eps.got, want)
	}
}

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/apiserver"
)

// fakeNetworks answers the network routes from fixed networks and records the requests.
type fakeNetworks struct {
	nets map[string]api.Network
	// winner, when set, is the definition a create of its name meets (another host's won).
	winner *api.Network
	got    []any
}

func (f *fakeNetworks) Create(_ context.Context, req api.NetworkCreateRequest) (api.Network, error) {
	f.got = append(f.got, req)
	if f.winner != nil && f.winner.Name == req.Name {
		return *f.winner, nil
	}
	hp := req.HostPrefix
	if hp == 0 {
		hp = 24
	}
	key := req.Key
	if key == 0 {
		key = 101
	}
	return api.Network{Name: req.Name, Subnet: req.Subnet, HostPrefix: hp, Key: key, Internal: req.Internal, Origin: "h1", Created: 9,
		Slice: "10.9.1.0/24", Gateway: "10.9.1.1"}, nil
}

func (f *fakeNetworks) List(context.Context) ([]api.Network, error) {
	f.got = append(f.got, "list")
	return []api.Network{f.nets["default"], f.nets["blue"], f.nets["red"]}, nil
}

func (f *fakeNetworks) Inspect(_ context.Context, name string) (api.Network, error) {
	f.got = append(f.got, "inspect "+name)
	n, ok := f.nets[name]
	if !ok {
		return n, api.Errorf(api.ErrNotFound, "no network %q", name)
	}
	return n, nil
}

func (f *fakeNetworks) Remove(_ context.Context, req api.NetworkRemoveRequest) (api.Network, error) {
	f.got = append(f.got, req)
	if !req.Force {
		return api.Network{}, api.Errorf(api.ErrConflict, "network %s still has endpoints on h1 (1), h2 (2); detach them or use --force", req.Name)
	}
	return f.nets[req.Name], nil
}

// fakeEndpoints answers attach, detach and ls from fixed endpoints and records the requests.
type fakeEndpoints struct {
	apiserver.Endpoints // publish and unpublish: not called
	eps                 []api.Attachment
	got                 []any
}

func (e *fakeEndpoints) Attachments(context.Context) ([]api.Attachment, error) { return e.eps, nil }

func (e *fakeEndpoints) Attach(_ context.Context, req api.AttachRequest) (api.Attachment, error) {
	e.got = append(e.got, req)
	return api.Attachment{Host: "h1", Container: req.Target, Network: req.Network, IfName: "eth1", IP: "10.9.1.2/24", MAC: "02:00:00:00:00:10",
		Gateway: "10.9.1.1", MTU: 1450, Port: "fab1234"}, nil
}

func (e *fakeEndpoints) Detach(_ context.Context, req api.DetachRequest) ([]api.Attachment, error) {
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

// fakeLoop is the reconcile loop's part of ls --all: the other hosts' endpoints.
type fakeLoop struct{ remote []api.Attachment }

func (l fakeLoop) Status() api.Status                  { return api.Status{Node: "h1"} }
func (l fakeLoop) RemoteAttachments() []api.Attachment { return l.remote }

// testNets are the networks the fake fabric holds: default, blue (internal, with endpoints
// on two hosts) and red (not served: its subnet overlaps blue's).
func testNets() map[string]api.Network {
	return map[string]api.Network{
		"default": {Name: "default", Subnet: "10.244.0.0/16", HostPrefix: 24, Slice: "10.244.1.0/24", Gateway: "10.244.1.1", EndpointsHere: 1, EndpointsFabric: 3,
			Slices: []api.NetworkSlice{{Host: "h1", Slice: "10.244.1.0/24"}}},
		"blue": {Name: "blue", Subnet: "10.9.0.0/16", HostPrefix: 24, Key: 101, Internal: true, Origin: "h2", Created: 7,
			Slice: "10.9.1.0/24", Gateway: "10.9.1.1", EndpointsHere: 1, EndpointsFabric: 2,
			Slices: []api.NetworkSlice{{Host: "h1", Slice: "10.9.1.0/24"}, {Host: "h2", Slice: "10.9.2.0/24"}},
			Endpoints: []api.Attachment{
				{Host: "h1", Container: "web", IP: "10.9.1.2", MAC: "02:00:00:00:00:10", IfName: "eth1", Name: "web"},
				{Host: "h2", Container: "db", IP: "10.9.2.2", MAC: "02:00:00:00:00:20", IfName: "eth0"},
			}},
		"red": {Name: "red", Subnet: "10.9.128.0/17", HostPrefix: 24, Key: 102, Origin: "h3", Created: 8,
			Conflict: "subnet 10.9.128.0/17 overlaps blue's 10.9.0.0/16 (created before it)"},
	}
}

// fabricd serves the real API server over the fakes on a socket in a temporary directory.
func fabricd(t *testing.T, nets *fakeNetworks, eps *fakeEndpoints, remote []api.Attachment) string {
	t.Helper()
	s := apiserver.NewServer(fakeLoop{remote}, eps, slog.New(slog.DiscardHandler), nil)
	s.SetNetworks(nets)
	path := filepath.Join(t.TempDir(), "api.sock")
	if err := s.Listen(path); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve() }()
	t.Cleanup(func() { _ = s.Shutdown(context.Background()) })
	return path
}

// run runs fabricctl with args against the socket and returns what it printed.
func run(socket string, args ...string) (string, error) {
	var out bytes.Buffer
	root := newRoot(&out)
	root.SetArgs(append([]string{"--socket", socket}, args...))
	err := root.Execute()
	return out.String(), err
}

func TestNetworkCommands(t *testing.T) {
	nets := &fakeNetworks{nets: testNets(), winner: &api.Network{Name: "green", Subnet: "10.30.0.0/16", HostPrefix: 24, Key: 5, Origin: "h3", Created: 4}}
	sock := fabricd(t, nets, &fakeEndpoints{}, nil)
	for _, tc := range []struct {
		name string
		args []string
		out  string // exact output; "" with err: nothing printed
		err  string // the error contains it; "": no error
		req  any    // the request fabricd got; nil: none
	}{
		{"create", []string{"network", "create", "blue", "--subnet", "10.9.0.0/16", "--internal"},
			"network blue: subnet 10.9.0.0/16, host prefix /24, key 101, internal\nthis host's slice: 10.9.1.0/24 (gateway 10.9.1.1)\n", "",
			api.NetworkCreateRequest{Name: "blue", Subnet: "10.9.0.0/16", Internal: true}},
		{"create with every flag", []string{"network", "create", "db", "--subnet", "10.10.0.0/20", "--host-prefix", "26", "--key", "4242"},
			"network db: subnet 10.10.0.0/20, host prefix /26, key 4242\nthis host's slice: 10.9.1.0/24 (gateway 10.9.1.1)\n", "",
			api.NetworkCreateRequest{Name: "db", Subnet: "10.10.0.0/20", HostPrefix: 26, Key: 4242}},
		{"create meets another host's definition", []string{"network", "create", "green", "--subnet", "10.20.0.0/16"},
			"network green: subnet 10.30.0.0/16, host prefix /24, key 5\n", "network green exists with another definition (shown above, created by h3); yours was not applied",
			api.NetworkCreateRequest{Name: "green", Subnet: "10.20.0.0/16"}},
		{"create without --subnet", []string{"network", "create", "x"}, "", "--subnet is required", nil},
		{"create with a typo in --subnet", []string{"network", "create", "x", "--subnet", "10.9.0/16"}, "", `--subnet "10.9.0/16" is not a CIDR`, nil},
		{"create with an address for --subnet", []string{"network", "create", "x", "--subnet", "10.9.0.0"}, "", `--subnet "10.9.0.0" is not a CIDR`, nil},
		{"create IPv6", []string{"network", "create", "x", "--subnet", "fd00::/64"}, "", "--subnet fd00::/64: networks are IPv4", nil},
		{"create with a host prefix shorter than the subnet", []string{"network", "create", "x", "--subnet", "10.9.0.0/16", "--host-prefix", "8"},
			"", "--host-prefix 8: a host's slice of 10.9.0.0/16 needs a prefix length from 16 to 32", nil},
		{"create with a key beyond 32 bits", []string{"network", "create", "x", "--subnet", "10.9.0.0/16", "--key", "4294967296"}, "", "--key", nil},
		{"create without a name", []string{"network", "create", "--subnet", "10.9.0.0/16"}, "", "accepts 1 arg(s)", nil},
		{"ls", []string{"network", "ls"}, `NAME     SUBNET         KEY  SLICE          ENDPOINTS  FLAGS
default  10.244.0.0/16  0    10.244.1.0/24  1/3        -
blue     10.9.0.0/16    101  10.9.1.0/24    1/2        internal
red      10.9.128.0/17  102  -              0/0        conflict
red: not served: subnet 10.9.128.0/17 overlaps blue's 10.9.0.0/16 (created before it)
`, "", "list"},
		{"inspect", []string{"network", "inspect", "blue"}, `name:       blue
subnet:     10.9.0.0/16 (host prefix /24)
key:        101
flags:      internal
origin:     h2 (Lamport time 7)
this host:  10.9.1.0/24 (gateway 10.9.1.1)
endpoints:  1 here, 2 in the fabric

HOST  SLICE
h1    10.9.1.0/24
h2    10.9.2.0/24

HOST  CONTAINER  IP        MAC                IFNAME  NAME
h1    web        10.9.1.2  02:00:00:00:00:10  eth1    web
h2    db         10.9.2.2  02:00:00:00:00:20  eth0    -
`, "", "inspect blue"},
		{"inspect default", []string{"network", "inspect", "default"}, `name:       default
subnet:     10.244.0.0/16 (host prefix /24)
key:        0
flags:      -
origin:     - (the cluster CIDR)
this host:  10.244.1.0/24 (gateway 10.244.1.1)
endpoints:  1 here, 3 in the fabric

HOST  SLICE
h1    10.244.1.0/24

(no endpoints)
`, "", "inspect default"},
		{"inspect a conflict", []string{"network", "inspect", "red"}, `name:        red
subnet:      10.9.128.0/17 (host prefix /24)
key:         102
flags:       -
origin:      h3 (Lamport time 8)
this host:   - (no slice)
endpoints:   0 here, 0 in the fabric
not served:  subnet 10.9.128.0/17 overlaps blue's 10.9.0.0/16 (created before it)

(no host serves it yet)

(no endpoints)
`, "", "inspect red"},
		{"inspect unknown", []string{"network", "inspect", "green"}, "", `no network "green"`, "inspect green"},
		{"rm refused", []string{"network", "rm", "blue"}, "", "network blue still has endpoints on h1 (1), h2 (2); detach them or use --force",
			api.NetworkRemoveRequest{Name: "blue"}},
		{"rm --force", []string{"network", "rm", "blue", "--force"}, "removed network blue (10.9.0.0/16)\n2 endpoints lost it (1 on this host)\n", "",
			api.NetworkRemoveRequest{Name: "blue", Force: true}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			nets.got = nil
			out, err := run(sock, tc.args...)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("error %v, want one saying %q", err, tc.err)
			}
			if (tc.out != "" || tc.err == "") && out != tc.out {
				t.Errorf("output:\n%s\nwant:\n%s", out, tc.out)
			}
			var want []any
			if tc.req != nil {
				want = []any{tc.req}
			}
			if !reflect.DeepEqual(nets.got, want) {
				t.Errorf("fabricd got %+v, want %+v", nets.got, want)
			}
		})
	}
}

// TestNetworkJSON: -o json prints fabricd's answers as they are.
func TestNetworkJSON(t *testing.T) {
	sock := fabricd(t, &fakeNetworks{nets: testNets()}, &fakeEndpoints{}, nil)
	out, err := run(sock, "network", "ls", "-o", "json")
	var list []api.Network
	if err != nil || json.Unmarshal([]byte(out), &list) != nil || len(list) != 3 || list[2].Conflict == "" {
		t.Errorf("ls -o json: %v\n%s", err, out)
	}
	out, err = run(sock, "network", "inspect", "blue", "-o", "json")
	var n api.Network
	if err != nil || json.Unmarshal([]byte(out), &n) != nil || !reflect.DeepEqual(n, testNets()["blue"]) {
		t.Errorf("inspect -o json: %v\n%s", err, out)
	}
}

func TestAttachDetachLs(t *testing.T) {
	eps := &fakeEndpoints{eps: []api.Attachment{
		{Host: "h1", Container: "web", Network: "default", IP: "10.244.1.2", MAC: "02:00:00:00:00:01", Port: "fabaaaa", Published: []string{"tcp:8080:80"}, NetNS: "/run/netns/web"},
		{Host: "h1", Container: "web", Network: "blue", IP: "10.9.1.2", MAC: "02:00:00:00:00:10", Port: "fabbbbb", NetNS: "/run/netns/web"},
	}}
	remote := []api.Attachment{{Host: "h2", Container: "db", IP: "10.244.2.2", MAC: "02:00:00:00:00:02", Port: "fabcccc", NetNS: "/run/netns/db"}}
	sock := fabricd(t, &fakeNetworks{nets: testNets()}, eps, remote)
	for _, tc := range []struct {
		name string
		args []string
		out  string
		err  string
		req  any
	}{
		{"attach", []string{"attach", "web"}, "", "", api.AttachRequest{Target: "web", Network: "default"}},
		{"attach a second network", []string{"attach", "web", "--network", "blue", "--ip", "10.9.1.2/24", "--ifname", "eth1", "--mac", "02:00:00:00:00:10"},
			`container:  web (attached)
network:    blue
ip:         10.9.1.2/24
mac:        02:00:00:00:00:10
gateway:    10.9.1.1
mtu:        1450
interface:  eth1
port:       fab1234
`, "", api.AttachRequest{Target: "web", Network: "blue", IP: "10.9.1.2/24", IfName: "eth1", MAC: "02:00:00:00:00:10"}},
		{"attach with a bad --ip", []string{"attach", "web", "--ip", "10.9.1"}, "", `--ip "10.9.1" is not an IP address`, nil},
		{"attach with a bad --mac", []string{"attach", "web", "--mac", "02:00:00"}, "", `--mac "02:00:00" is not a MAC address`, nil},
		{"detach from one network", []string{"detach", "web", "--network", "blue"}, "detached web from blue (10.9.1.2, port fabbbbb)\n", "",
			api.DetachRequest{Target: "web", Network: "blue"}},
		{"detach from every network", []string{"detach", "web"},
			"detached web from default (10.244.1.2, port fabaaaa)\nremoved published ports: tcp:8080:80\ndetached web from blue (10.9.1.2, port fabbbbb)\n", "",
			api.DetachRequest{Target: "web"}},
		{"detach unknown", []string{"detach", "db"}, "", "db is not attached on this host", api.DetachRequest{Target: "db"}},
		{"ls", []string{"ls"}, `HOST  CONTAINER  NETWORK  IP          MAC                PORT     PUBLISHED    NETNS
h1    web        default  10.244.1.2  02:00:00:00:00:01  fabaaaa  tcp:8080:80  /run/netns/web
h1    web        blue     10.9.1.2    02:00:00:00:00:10  fabbbbb  -            /run/netns/web
`, "", nil},
		// A host that predates networks names none: its endpoints are on the default one.
		{"ls --all", []string{"ls", "--all"}, `HOST  CONTAINER  NETWORK  IP          MAC                PORT     PUBLISHED    NETNS
h1    web        default  10.244.1.2  02:00:00:00:00:01  fabaaaa  tcp:8080:80  /run/netns/web
h1    web        blue     10.9.1.2    02:00:00:00:00:10  fabbbbb  -            /run/netns/web
h2    db         default  10.244.2.2  02:00:00:00:00:02  fabcccc  -            /run/netns/db
`, "", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			eps.got = nil
			out, err := run(sock, tc.args...)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("error %v, want one saying %q", err, tc.err)
			}
			if tc.out != "" && out != tc.out {
				t.Errorf("output:\n%s\nwant:\n%s", out, tc.out)
			}
			var want []any
			if tc.req != nil {
				want = []any{tc.req}
			}
			if !reflect.DeepEqual(eps.got, want) {
				t.Errorf("fabricd got %+v, want %+v", eps.got, want)
			}
		})
	}
	out, err := run(sock, "detach", "web", "-o", "json")
	var res api.DetachResult
	if err != nil || json.Unmarshal([]byte(out), &res) != nil || len(res.Detached) != 2 {
		t.Errorf("detach -o json: %v\n%s", err, out)
	}
}

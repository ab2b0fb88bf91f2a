package dockerplugin

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"testing"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/ovsdb"
	"github.com/ovsfabric/ovsfabric/ovsdb/ovsdbtest"
)

// fakeFabric stands for fabricd (the real one runs in the lab test, e2e.TestDockerPlugin):
// networks in a list, addresses from 10.70.3.0/24, endpoints in a map.
type fakeFabric struct {
	mu        sync.Mutex
	nets      []api.Network
	next      int
	endpoints map[string]EndpointInfo
	published map[string][]string
}

func (f *fakeFabric) Networks(context.Context) ([]api.Network, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]api.Network(nil), f.nets...), nil
}

func (f *fakeFabric) CreateNetwork(_ context.Context, req api.NetworkCreateRequest) (api.Network, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := api.Network{Name: req.Name, Subnet: req.Subnet, Slice: "10.70.3.0/24", Gateway: "10.70.3.1"}
	f.nets = append(f.nets, n)
	return n, nil
}

func (f *fakeFabric) Hold(_ context.Context, network string, want netip.Addr) (netip.Prefix, netip.Addr, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if want.IsValid() {
		if !netip.MustParsePrefix("10.70.3.0/24").Contains(want) {
			return netip.Prefix{}, netip.Addr{}, api.Errorf(api.ErrInvalid, "%s is outside this host's slice", want)
		}
		return netip.PrefixFrom(want, 24), netip.MustParseAddr("10.70.3.1"), nil
	}
	f.next++
	return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 70, 3, byte(1 + f.next)}), 24), netip.MustParseAddr("10.70.3.1"), nil
}

func (f *fakeFabric) Release(netip.Addr) {}

func (f *fakeFabric) CreateEndpoint(_ context.Context, e Endpoint) (EndpointInfo, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	info := EndpointInfo{Network: e.Network, Addr: e.Addr, MAC: net.HardwareAddr{2, 0, 0, 0, 0, 1}, Peer: "dk" + e.ID[:11]}
	f.endpoints[e.ID] = info
	return info, nil
}

func (f *fakeFabric) Endpoint(_ context.Context, id string) (EndpointInfo, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	e, ok := f.endpoints[id]
	return e, ok, nil
}

func (f *fakeFabric) DeleteEndpoint(_ context.Context, id string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.endpoints, id)
	return nil
}

func (f *fakeFabric) Publish(_ context.Context, id string, specs []string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.endpoints[id]; !ok {
		return api.Errorf(api.ErrNotFound, "no endpoint %s", id)
	}
	f.published[id] = specs
	return nil
}

func (f *fakeFabric) Unnamed(context.Context) ([]string, error)                { return nil, nil }
func (f *fakeFabric) SetNames(context.Context, string, string, []string) error { return nil }

// call posts body to method and decodes the answer.
func call(t *testing.T, d *Driver, method, body string) (int, map[string]any) {
	t.Helper()
	w := httptest.NewRecorder()
	d.ServeHTTP(w, httptest.NewRequest(http.MethodPost, "/"+method, strings.NewReader(body)))
	var out map[string]any
	if err := json.NewDecoder(bytes.NewReader(w.Body.Bytes())).Decode(&out); err != nil {
		t.Fatalf("%s: answer %q: %v", method, w.Body.String(), err)
	}
	return w.Code, out
}

// TestDriver walks Docker's calls for a network and an endpoint, with the mapping persisted
// in (in-memory) OVSDB and read back by a new driver, and checks the refusals.
func TestDriver(t *testing.T) {
	ctx := context.Background()
	store, err := ovsdb.Dial(ctx, ovsdbtest.Start(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(store.Close)
	fab := &fakeFabric{endpoints: map[string]EndpointInfo{}, published: map[string][]string{}}
	log := slog.New(slog.DiscardHandler)
	d := New(fab, store, log)
	if err := d.Load(ctx); err != nil {
		t.Fatal(err)
	}

	if code, out := call(t, d, "Plugin.Activate", ""); code != 200 || len(out["Implements"].([]any)) != 2 {
		t.Fatalf("activate: %d %v", code, out)
	}
	if _, out := call(t, d, "NetworkDriver.GetCapabilities", ""); out["Scope"] != "local" {
		t.Fatalf("capabilities: %v", out)
	}
	if _, out := call(t, d, "IpamDriver.RequestPool", `{"AddressSpace":"ovsfabric","Pool":"10.70.0.0/16"}`); out["PoolID"] != "10.70.0.0/16" {
		t.Fatalf("pool: %v", out)
	}
	if _, out := call(t, d, "IpamDriver.RequestAddress", `{"PoolID":"10.70.0.0/16","Options":{"RequestAddressType":"com.docker.network.gateway"}}`); out["Address"] != "10.70.0.1/16" {
		t.Fatalf("gateway before the network exists: %v", out)
	}
	create := func(opts string) string {
		return `{"NetworkID":"` + netID + `","Options":{"com.docker.network.generic":{` + opts + `}},"IPv4Data":[{"AddressSpace":"ovsfabric","Pool":"10.70.0.0/16","Gateway":"10.70.0.1/16"}]}`
	}
	// Without the Docker API fabricd cannot learn the name: refused, nothing recorded.
	if code, out := call(t, d, "NetworkDriver.CreateNetwork", create("")); code != 400 || !strings.Contains(out["Err"].(string), "-o ovsfabric.network=NAME") {
		t.Fatalf("unnamed new subnet without a Syncer: %d %v", code, out)
	}
	if ids, _ := store.SystemExternalIDs(ctx); ids[storeKeyPrefix+netID] != "" {
		t.Fatal("a refused network was recorded")
	}
	if code, out := call(t, d, "NetworkDriver.CreateNetwork", create(`"ovsfabric.network":"blue"`)); code != 200 {
		t.Fatalf("create: %d %v", code, out)
	}
	if len(fab.nets) != 1 || fab.nets[0].Name != "blue" || fab.nets[0].Subnet != "10.70.0.0/16" {
		t.Fatalf("fabric networks: %+v", fab.nets)
	}
	if code, out := call(t, d, "IpamDriver.RequestPool", `{"Pool":"10.70.8.0/24"}`); code != 409 || !strings.Contains(out["Err"].(string), "overlaps fabric network blue") {
		t.Fatalf("overlapping pool: %d %v", code, out)
	}

	// A restarted fabricd knows the network.
	d = New(fab, store, log)
	if err := d.Load(ctx); err != nil {
		t.Fatal(err)
	}
	if got := d.Mapped()[netID]; got != "blue" {
		t.Fatalf("mapping after a restart: %q", got)
	}
	_, out := call(t, d, "IpamDriver.RequestAddress", `{"PoolID":"10.70.0.0/16","Address":"","Options":null}`)
	addr, _ := out["Address"].(string)
	if addr != "10.70.3.2/24" {
		t.Fatalf("address: %v", out)
	}
	if code, out := call(t, d, "IpamDriver.RequestAddress", `{"PoolID":"10.70.0.0/16","Address":"10.70.9.9"}`); code != 400 || !strings.Contains(out["Err"].(string), "outside") {
		t.Fatalf("--ip outside: %d %v", code, out)
	}
	ep := `"NetworkID":"` + netID + `","EndpointID":"` + epID + `"`
	if _, out := call(t, d, "NetworkDriver.CreateEndpoint", `{`+ep+`,"Interface":{"Address":"`+addr+`","MacAddress":""}}`); out["Interface"].(map[string]any)["MacAddress"] != "02:00:00:00:00:01" {
		t.Fatalf("create endpoint: %v", out)
	}
	_, out = call(t, d, "NetworkDriver.Join", `{`+ep+`,"SandboxKey":"/var/run/docker/netns/x"}`)
	b, _ := json.Marshal(out)
	if want := `{"DisableGatewayService":false,"Gateway":"10.70.3.1","InterfaceName":{"DstPrefix":"eth","SrcName":"dk22222222222"},"StaticRoutes":[{"Destination":"10.70.0.0/16","NextHop":"10.70.3.1","RouteType":0}]}`; string(b) != want {
		t.Fatalf("join:\n got %s\nwant %s", b, want)
	}
	portmap := `{` + ep + `,"Options":{"com.docker.network.portmap":[{"Proto":6,"IP":"","Port":80,"HostIP":"","HostPort":8080,"HostPortEnd":8080}]}}`
	if code, out := call(t, d, "NetworkDriver.ProgramExternalConnectivity", portmap); code != 200 || strings.Join(fab.published[epID], ",") != "8080:80/tcp" {
		t.Fatalf("-p 8080:80: %d %v %v", code, out, fab.published)
	}
	if code, _ := call(t, d, "NetworkDriver.ProgramExternalConnectivity", `{`+ep+`,"Options":{"com.docker.network.portmap":[{"Proto":6,"Port":80,"HostPort":0}]}}`); code != 400 {
		t.Fatalf("-p 80 without a host port: %d", code)
	}
	other := `"NetworkID":"` + strings.Repeat("9", 64) + `","EndpointID":"` + epID + `"`
	if code, out := call(t, d, "NetworkDriver.CreateEndpoint", `{`+other+`,"Interface":{"Address":"10.70.3.9/24"}}`); code != 404 || !strings.Contains(out["Err"].(string), "not an ovsfabric network known here") {
		t.Fatalf("unknown network: %d %v", code, out)
	}
	if code, _ := call(t, d, "NetworkDriver.AllocateNetwork", `{}`); code != 400 {
		t.Fatalf("swarm call: %d", code)
	}
	call(t, d, "NetworkDriver.DeleteEndpoint", `{`+ep+`}`)
	if len(fab.endpoints) != 0 {
		t.Fatalf("endpoints after delete: %v", fab.endpoints)
	}
	call(t, d, "NetworkDriver.DeleteNetwork", `{"NetworkID":"`+netID+`"}`)
	if ids, _ := store.SystemExternalIDs(ctx); ids[storeKeyPrefix+netID] != "" || len(d.Mapped()) != 0 {
		t.Fatalf("network still recorded after delete: %v", ids)
	}
}

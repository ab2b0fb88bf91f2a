package dockerplugin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
)

// DriverName is the plugin's name: `docker network create -d ovsfabric --ipam-driver
// ovsfabric`, and its socket DefaultSocket.
const DriverName = "ovsfabric"

// DefaultSocket is where dockerd looks for the plugin.
const DefaultSocket = "/run/docker/plugins/" + DriverName + ".sock"

// addressSpace is the IPAM address space of every pool the plugin gives.
const addressSpace = DriverName

// storeKeyPrefix starts the Open_vSwitch external_ids key persisting a Docker network's
// fabric network: ovsfabric-docker-net.DOCKERNETWORKID.
const storeKeyPrefix = "ovsfabric-docker-net."

// waitNetwork bounds how long an endpoint or address request waits for a fabric network
// the Syncer is creating, or for this host's slice of a new network.
const waitNetwork = 20 * time.Second

// Endpoint is an endpoint as the plugin creates it.
type Endpoint struct {
	ID      string
	Network string
	Addr    netip.Prefix
	MAC     net.HardwareAddr
}

// EndpointInfo is an endpoint as fabricd recorded it: its address and MAC, and the name on
// the host of the veth end Docker moves into the container.
type EndpointInfo struct {
	Network string
	Addr    netip.Prefix
	MAC     net.HardwareAddr
	Peer    string
}

// Fabric is what the plugin needs of fabricd: the networks and this host's endpoints.
// Errors are api kinds.
type Fabric interface {
	Networks(ctx context.Context) ([]api.Network, error)
	CreateNetwork(ctx context.Context, req api.NetworkCreateRequest) (api.Network, error)
	// Hold picks and holds an address of this host's slice of network (want when valid);
	// Release frees one no endpoint took.
	Hold(ctx context.Context, network string, want netip.Addr) (addr netip.Prefix, gateway netip.Addr, err error)
	Release(ip netip.Addr)
	CreateEndpoint(ctx context.Context, e Endpoint) (EndpointInfo, error)
	Endpoint(ctx context.Context, id string) (EndpointInfo, bool, error)
	DeleteEndpoint(ctx context.Context, id string) error
	// Publish sets an endpoint's published ports (HOSTPORT:CONTAINERPORT/PROTO).
	Publish(ctx context.Context, id string, specs []string) error
	// Unnamed lists the IDs of this host's endpoints that have no DNS name yet; SetNames
	// records an endpoint's container name and aliases.
	Unnamed(ctx context.Context) ([]string, error)
	SetNames(ctx context.Context, id, container string, aliases []string) error
}

// Store persists the Docker network mapping (OVSDB's Open_vSwitch external_ids).
type Store interface {
	SystemExternalIDs(ctx context.Context) (map[string]string, error)
	SetSystemExternalIDs(ctx context.Context, set map[string]string, del []string) error
}

// mapping is a Docker network's fabric network, as persisted: the name is empty while the
// Syncer has not created the network yet; Err says why it could not.
type mapping struct {
	Network string `json:"n,omitempty"`
	Subnet  string `json:"s"`
	Err     string `json:"e,omitempty"`
}

// Driver serves the plugin protocol.
type Driver struct {
	fab   Fabric
	store Store
	log   *slog.Logger

	mu       sync.Mutex
	networks map[string]mapping // by Docker network ID
	// pending wakes the Syncer when a network awaits its name.
	pending chan struct{}
	// naming says a Syncer runs: a new subnet without -o ovsfabric.network can be named.
	naming bool
}

// New returns a driver; Load reads the persisted mapping before it serves.
func New(fab Fabric, store Store, log *slog.Logger) *Driver {
	return &Driver{fab: fab, store: store, log: log, networks: map[string]mapping{}, pending: make(chan struct{}, 1)}
}

// Load reads the persisted Docker network mapping.
func (d *Driver) Load(ctx context.Context) error {
	ids, err := d.store.SystemExternalIDs(ctx)
	if err != nil {
		return fmt.Errorf("read docker networks: %w", err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for k, v := range ids {
		id, ok := strings.CutPrefix(k, storeKeyPrefix)
		if !ok {
			continue
		}
		var m mapping
		if err := json.Unmarshal([]byte(v), &m); err != nil || checkID("network ID", id) != nil {
			d.log.Warn("ignoring an unreadable docker network record", "key", k, "value", v)
			continue
		}
		d.networks[id] = m
	}
	return nil
}

func (d *Driver) save(ctx context.Context, id string, m *mapping) error {
	key := storeKeyPrefix + id
	if m == nil {
		return d.store.SetSystemExternalIDs(ctx, nil, []string{key})
	}
	b, _ := json.Marshal(m)
	return d.store.SetSystemExternalIDs(ctx, map[string]string{key: string(b)}, nil)
}

// Mapped are the fabric networks Docker networks here map to, by Docker network ID.
func (d *Driver) Mapped() map[string]string {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]string{}
	for id, m := range d.networks {
		out[id] = m.Network
	}
	return out
}

// Listen serves the plugin on the unix socket path (its directory created) until ctx ends.
// A stale socket file is replaced; the socket is removed on return.
func (d *Driver) Listen(ctx context.Context, path string) (net.Listener, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return nil, fmt.Errorf("docker plugin socket: %w", err)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("docker plugin socket %s: another process serves it", path)
	}
	_ = os.Remove(path)
	var lc net.ListenConfig
	l, err := lc.Listen(ctx, "unix", path)
	if err != nil {
		return nil, fmt.Errorf("docker plugin socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		l.Close()
		return nil, fmt.Errorf("docker plugin socket: %w", err)
	}
	return l, nil
}

// Serve serves the protocol on l until ctx ends.
func (d *Driver) Serve(ctx context.Context, l net.Listener) error {
	srv := &http.Server{Handler: d, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()
	if err := srv.Serve(l); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// ServeHTTP answers one call: POST /Method.
func (d *Driver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	method := strings.TrimPrefix(r.URL.Path, "/")
	if r.Method != http.MethodPost {
		reply(w, http.StatusMethodNotAllowed, errorResponse{Err: "POST only"})
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody+1))
	if err != nil {
		reply(w, http.StatusBadRequest, errorResponse{Err: err.Error()})
		return
	}
	start := time.Now()
	d.log.Debug("docker plugin request", "method", method, "body", string(body))
	res, err := d.call(r.Context(), method, body)
	if err != nil {
		d.log.Info("docker plugin call refused", "method", method, "err", err, "took", time.Since(start).Round(time.Millisecond))
		reply(w, statusOf(err), errorResponse{Err: err.Error()})
		return
	}
	took := time.Since(start).Round(100 * time.Microsecond)
	if !perContainer[method] {
		d.log.Debug("docker plugin call", "method", method, "took", took)
	} else {
		// One line per container, like the attach's own, with its endpoint (make bench
		// adds up a container's calls).
		var ep struct{ EndpointID string }
		_ = json.Unmarshal(body, &ep) // decoded strictly by call already; the ID is only for the log
		d.log.Info("docker plugin call", "method", method, "endpoint", short(ep.EndpointID), "took", took)
	}
	reply(w, http.StatusOK, res)
}

// perContainer are the calls Docker makes once for each container it connects: `docker run`
// waits for each in turn.
var perContainer = map[string]bool{
	"IpamDriver.RequestAddress":    true,
	"NetworkDriver.CreateEndpoint": true,
	"NetworkDriver.Join":           true,
}

// statusOf maps an error to the HTTP status Docker sees (it prints Err either way).
func statusOf(err error) int {
	if errors.Is(err, errBadRequest) {
		return http.StatusBadRequest
	}
	return api.StatusCode(err)
}

func reply(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/vnd.docker.plugins.v1+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

type empty struct{}

// call dispatches a call by method name.
func (d *Driver) call(ctx context.Context, method string, body []byte) (any, error) {
	switch method {
	case "Plugin.Activate":
		return activateResponse{Implements: []string{"NetworkDriver", "IpamDriver"}}, nil
	case "NetworkDriver.GetCapabilities":
		// local: a global scope needs swarm; fabricd keeps the hosts in step itself.
		return capabilitiesResponse{Scope: "local", ConnectivityScope: "global"}, nil
	case "IpamDriver.GetCapabilities":
		return ipamCapabilitiesResponse{}, nil
	case "IpamDriver.GetDefaultAddressSpaces":
		return addressSpacesResponse{LocalDefaultAddressSpace: addressSpace, GlobalDefaultAddressSpace: addressSpace}, nil
	case "NetworkDriver.DiscoverNew", "NetworkDriver.DiscoverDelete":
		return empty{}, nil
	case "NetworkDriver.AllocateNetwork", "NetworkDriver.FreeNetwork":
		return nil, api.Errorf(api.ErrInvalid, "ovsfabric is a local-scope driver: swarm networks are not supported")
	}
	req, err := decodeRequest(method, body)
	if err != nil {
		return nil, err
	}
	switch r := req.(type) {
	case requestPool:
		return d.requestPool(ctx, r)
	case requestAddress:
		return d.requestAddress(ctx, r)
	case releaseAddress:
		d.fab.Release(r.Addr)
		return empty{}, nil
	case createNetwork:
		return d.createNetwork(ctx, r)
	case createEndpoint:
		return d.createEndpoint(ctx, r)
	case join:
		return d.join(ctx, r)
	case programExternal:
		if err := d.fab.Publish(ctx, r.ID, r.Publish); err != nil {
			return nil, err
		}
		return empty{}, nil
	}
	switch method {
	case "IpamDriver.ReleasePool", "NetworkDriver.Leave":
		return empty{}, nil
	case "NetworkDriver.RevokeExternalConnectivity":
		if err := d.fab.Publish(ctx, req.(endpointRef).ID, nil); err != nil && !errors.Is(err, api.ErrNotFound) {
			return nil, err
		}
		return empty{}, nil
	case "NetworkDriver.DeleteNetwork":
		return d.deleteNetwork(ctx, req.(string))
	case "NetworkDriver.DeleteEndpoint":
		ref := req.(endpointRef)
		if err := d.fab.DeleteEndpoint(ctx, ref.ID); err != nil {
			return nil, err
		}
		return empty{}, nil
	case "NetworkDriver.EndpointOperInfo":
		ref := req.(endpointRef)
		e, ok, err := d.fab.Endpoint(ctx, ref.ID)
		if err != nil {
			return nil, err
		}
		v := map[string]string{}
		if ok {
			v["ovsfabric.network"], v["ovsfabric.port"], v["ovsfabric.address"] = e.Network, e.Peer, e.Addr.String()
		}
		return infoResponse{Value: v}, nil
	}
	return nil, api.Errorf(api.ErrNotFound, "unknown plugin method %.80q", method)
}

// byPool is the fabric network whose subnet is pool (ok=false: none); overlap, when set,
// is another network pool overlaps.
func byPool(nets []api.Network, pool netip.Prefix) (n api.Network, ok bool, overlap string) {
	for _, x := range nets {
		s, err := netip.ParsePrefix(x.Subnet)
		if err != nil {
			continue
		}
		if s == pool {
			return x, true, ""
		}
		if s.Overlaps(pool) && overlap == "" {
			overlap = fmt.Sprintf("%s (%s)", x.Name, s)
		}
	}
	return api.Network{}, false, overlap
}

func byName(nets []api.Network, name string) (api.Network, bool) {
	for _, x := range nets {
		if x.Name == name {
			return x, true
		}
	}
	return api.Network{}, false
}

// requestPool gives the pool of a Docker network: the subnet of a fabric network, or a
// new subnet the Syncer will create a fabric network for (checked against the others now,
// so a bad one leaves nothing behind).
func (d *Driver) requestPool(ctx context.Context, r requestPool) (any, error) {
	nets, err := d.fab.Networks(ctx)
	if err != nil {
		return nil, err
	}
	if r.Name != "" {
		n, ok := byName(nets, r.Name)
		if !ok {
			if !r.Pool.IsValid() {
				return nil, api.Errorf(api.ErrNotFound, "no fabric network %q: give --subnet to create it", r.Name)
			}
		} else {
			s, _ := netip.ParsePrefix(n.Subnet)
			if r.Pool.IsValid() && r.Pool != s {
				return nil, api.Errorf(api.ErrConflict, "fabric network %s has subnet %s, not %s", n.Name, s, r.Pool)
			}
			r.Pool = s
		}
	}
	n, ok, overlap := byPool(nets, r.Pool)
	switch {
	case ok && n.Conflict != "":
		return nil, api.Errorf(api.ErrConflict, "fabric network %s (%s) is not served: %s", n.Name, n.Subnet, n.Conflict)
	case !ok && overlap != "":
		return nil, api.Errorf(api.ErrConflict, "subnet %s overlaps fabric network %s: give that network's exact subnet, or another one", r.Pool, overlap)
	}
	return requestPoolResponse{PoolID: r.Pool.String(), Pool: r.Pool.String(), Data: map[string]string{}}, nil
}

// retryable says whether a network or address error may pass: no such network yet (the
// Syncer is creating it), no slice of it yet.
func retryable(err error) bool {
	return errors.Is(err, api.ErrNotFound) || errors.Is(err, api.ErrConflict) && strings.Contains(err.Error(), "yet")
}

// networkOfPool waits (up to waitNetwork) for the fabric network of pool.
func (d *Driver) networkOfPool(ctx context.Context, pool netip.Prefix) (api.Network, error) {
	deadline := time.Now().Add(waitNetwork)
	for {
		nets, err := d.fab.Networks(ctx)
		if err != nil {
			return api.Network{}, err
		}
		if n, ok, _ := byPool(nets, pool); ok {
			if n.Conflict != "" {
				return api.Network{}, api.Errorf(api.ErrConflict, "fabric network %s (%s) is not served: %s", n.Name, n.Subnet, n.Conflict)
			}
			return n, nil
		}
		if time.Now().After(deadline) {
			return api.Network{}, api.Errorf(api.ErrNotFound, "no fabric network has subnet %s (was the Docker network created while fabricd could not create it? see fabricd's log)", pool)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return api.Network{}, err
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return api.Errorf(api.ErrUnavailable, "%v", ctx.Err())
	case <-t.C:
		return nil
	}
}

// requestAddress gives an address of this host's slice: the gateway's for the network's
// gateway, else one held for the endpoint Docker creates next.
func (d *Driver) requestAddress(ctx context.Context, r requestAddress) (any, error) {
	if r.Gateway {
		// docker network create asks for the gateway before CreateNetwork: the fabric
		// network may not exist yet. Each host's containers get their own slice's gateway
		// in Join; this one is what `docker network inspect` shows.
		nets, err := d.fab.Networks(ctx)
		if err != nil {
			return nil, err
		}
		var gw netip.Prefix
		if n, ok, _ := byPool(nets, r.Pool); ok && n.Gateway != "" {
			if g, err := netip.ParseAddr(n.Gateway); err == nil {
				gw = netip.PrefixFrom(g, r.Pool.Bits())
			}
		}
		if r.Addr.IsValid() {
			gw = netip.PrefixFrom(r.Addr, r.Pool.Bits())
		}
		if !gw.IsValid() {
			gw = netip.PrefixFrom(r.Pool.Addr().Next(), r.Pool.Bits())
		}
		return requestAddressResponse{Address: gw.String(), Data: map[string]string{}}, nil
	}
	n, err := d.networkOfPool(ctx, r.Pool)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(waitNetwork)
	for {
		addr, _, err := d.fab.Hold(ctx, n.Name, r.Addr)
		if err == nil {
			d.log.Info("docker address", "network", n.Name, "asked", r.Addr, "address", addr)
			return requestAddressResponse{Address: addr.String(), Data: map[string]string{}}, nil
		}
		if !retryable(err) || time.Now().After(deadline) {
			return nil, err
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
}

// createNetwork maps a Docker network to its fabric network: the one of its pool, or the
// one -o ovsfabric.network names (created with the pool when missing). A new pool without
// a name is left to the Syncer, which learns the Docker network's name from the Docker API.
func (d *Driver) createNetwork(ctx context.Context, r createNetwork) (any, error) {
	if r.AddressSpace != addressSpace {
		return nil, api.Errorf(api.ErrInvalid, "an ovsfabric network needs the ovsfabric IPAM driver (its addresses come from each host's slice): add --ipam-driver %s", DriverName)
	}
	nets, err := d.fab.Networks(ctx)
	if err != nil {
		return nil, err
	}
	m := mapping{Subnet: r.Pool.String()}
	d.mu.Lock()
	naming := d.naming
	d.mu.Unlock()
	if n, ok, _ := byPool(nets, r.Pool); ok {
		if r.Name != "" && r.Name != n.Name {
			return nil, api.Errorf(api.ErrConflict, "subnet %s is fabric network %s's, not %s's", r.Pool, n.Name, r.Name)
		}
		m.Network = n.Name
	} else if r.Name == "" && !naming {
		return nil, api.Errorf(api.ErrInvalid, "subnet %s is no fabric network's, and fabricd cannot learn this Docker network's name (it has no --docker-host): add -o %s=NAME", r.Pool, OptNetwork)
	} else if r.Name != "" {
		if n, ok := byName(nets, r.Name); ok {
			return nil, api.Errorf(api.ErrConflict, "fabric network %s has subnet %s, not %s", n.Name, n.Subnet, r.Pool)
		}
		if _, err := d.fab.CreateNetwork(ctx, api.NetworkCreateRequest{Name: r.Name, Subnet: r.Pool.String(), Internal: r.Internal}); err != nil {
			return nil, err
		}
		m.Network = r.Name
	}
	if err := d.save(ctx, r.ID, &m); err != nil {
		return nil, fmt.Errorf("persist docker network %.12s: %w", r.ID, err)
	}
	d.mu.Lock()
	d.networks[r.ID] = m
	d.mu.Unlock()
	if m.Network == "" {
		d.poke()
	}
	d.log.Info("docker network", "id", r.ID[:12], "fabric_network", m.Network, "subnet", m.Subnet)
	return empty{}, nil
}

// poke wakes the Syncer.
func (d *Driver) poke() {
	select {
	case d.pending <- struct{}{}:
	default:
	}
}

func (d *Driver) deleteNetwork(ctx context.Context, id string) (any, error) {
	if err := d.save(ctx, id, nil); err != nil {
		return nil, fmt.Errorf("forget docker network %.12s: %w", id, err)
	}
	d.mu.Lock()
	delete(d.networks, id)
	d.mu.Unlock()
	return empty{}, nil
}

// network is the fabric network of Docker network id, waiting (up to waitNetwork) while
// the Syncer creates it.
func (d *Driver) network(ctx context.Context, id string) (mapping, error) {
	deadline := time.Now().Add(waitNetwork)
	for {
		d.mu.Lock()
		m, ok := d.networks[id]
		d.mu.Unlock()
		switch {
		case !ok:
			return mapping{}, api.Errorf(api.ErrNotFound, "docker network %.12s is not an ovsfabric network known here", id)
		case m.Err != "":
			return mapping{}, api.Errorf(api.ErrConflict, "docker network %.12s has no fabric network: %s", id, m.Err)
		case m.Network != "":
			return m, nil
		case time.Now().After(deadline):
			return mapping{}, api.Errorf(api.ErrUnavailable, "docker network %.12s: its fabric network (subnet %s) is not created yet", id, m.Subnet)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return mapping{}, err
		}
	}
}

func (d *Driver) createEndpoint(ctx context.Context, r createEndpoint) (any, error) {
	m, err := d.network(ctx, r.NetworkID)
	if err != nil {
		return nil, err
	}
	if !r.Addr.IsValid() {
		return nil, api.Errorf(api.ErrInvalid, "endpoint without an IPv4 address: the network's IPAM driver must be %s", DriverName)
	}
	e, err := d.fab.CreateEndpoint(ctx, Endpoint{ID: r.ID, Network: m.Network, Addr: r.Addr, MAC: r.MAC})
	if err != nil {
		return nil, err
	}
	if r.MAC != nil {
		return createEndpointResponse{}, nil // Docker's own: it must not be given back
	}
	return createEndpointResponse{Interface: &endpointInterface{MacAddress: e.MAC.String()}}, nil
}

func (d *Driver) join(ctx context.Context, r join) (any, error) {
	m, err := d.network(ctx, r.NetworkID)
	if err != nil {
		return nil, err
	}
	e, ok, err := d.fab.Endpoint(ctx, r.ID)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, api.Errorf(api.ErrNotFound, "no endpoint %.12s on this host", r.ID)
	}
	// Docker lists the container's endpoint (its name, its aliases) only after the join:
	// the Syncer names it a moment later.
	time.AfterFunc(time.Second, d.poke)
	gw := e.Addr.Masked().Addr().Next()
	res := joinResponse{InterfaceName: interfaceName{SrcName: e.Peer, DstPrefix: "eth"}, Gateway: gw.String()}
	// The rest of the network lies behind the gateway too: this matters when the network
	// is not the container's first (Docker routes the default through that one only).
	if s, err := netip.ParsePrefix(m.Subnet); err == nil && s != e.Addr.Masked() {
		res.StaticRoutes = []staticRoute{{Destination: s.String(), RouteType: 0, NextHop: gw.String()}}
	}
	return res, nil
}

package dockerplugin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
)

// maxBody bounds a request's body: Docker's requests are a few hundred bytes.
const maxBody = 1 << 20

// Option keys.
const (
	// OptNetwork names the fabric network of a Docker network: `-o ovsfabric.network=NAME`
	// (driver option) or `--ipam-opt ovsfabric.network=NAME`.
	OptNetwork = "ovsfabric.network"
	// genericOptions holds the -o options in CreateNetwork's Options.
	genericOptions = "com.docker.network.generic"
	// internalOption is `docker network create --internal`.
	internalOption = "com.docker.network.internal"
	// requestAddressType says what RequestAddress is for; gatewayAddress: the network's
	// gateway.
	requestAddressType = "RequestAddressType"
	gatewayAddress     = "com.docker.network.gateway"
)

// errBadRequest marks requests that do not decode; they change nothing.
var errBadRequest = errors.New("bad request")

func badf(format string, args ...any) error {
	return fmt.Errorf("%w: %s", errBadRequest, fmt.Sprintf(format, args...))
}

// decodeJSON decodes exactly one JSON object of at most maxBody bytes into v.
func decodeJSON(body []byte, v any) error {
	if len(body) > maxBody {
		return badf("body of %d bytes is larger than %d", len(body), maxBody)
	}
	if len(bytes.TrimSpace(body)) == 0 {
		return nil // Docker sends no body to the argument-less calls
	}
	d := json.NewDecoder(bytes.NewReader(body))
	if err := d.Decode(v); err != nil {
		return badf("%v", err)
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return badf("trailing data after the JSON object")
	}
	return nil
}

// checkID checks a Docker network or endpoint ID: 64 lower-case hex digits.
func checkID(what, id string) error {
	if len(id) != 64 {
		return badf("%s %.80q is not a Docker ID (64 hex digits)", what, id)
	}
	for _, c := range id {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return badf("%s %.80q is not a Docker ID (64 hex digits)", what, id)
		}
	}
	return nil
}

// parsePool parses an IPv4 pool in CIDR form, which must be its network address.
func parsePool(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, badf("pool %.80q is not an IPv4 CIDR", s)
	}
	if p != p.Masked() {
		return netip.Prefix{}, badf("pool %s has host bits set: did you mean %s?", p, p.Masked())
	}
	return p, nil
}

// createNetwork is CreateNetwork decoded.
type createNetwork struct {
	ID           string
	AddressSpace string
	Pool         netip.Prefix
	// Name is -o ovsfabric.network (empty: by pool).
	Name     string
	Internal bool
}

func decodeCreateNetwork(body []byte) (createNetwork, error) {
	var r createNetworkRequest
	if err := decodeJSON(body, &r); err != nil {
		return createNetwork{}, err
	}
	if err := checkID("network ID", r.NetworkID); err != nil {
		return createNetwork{}, err
	}
	if len(r.IPv6Data) > 0 {
		return createNetwork{}, badf("ovsfabric networks are IPv4 only: drop --ipv6")
	}
	if len(r.IPv4Data) != 1 {
		return createNetwork{}, badf("an ovsfabric network has exactly one IPv4 pool (got %d): give one --subnet", len(r.IPv4Data))
	}
	pool, err := parsePool(r.IPv4Data[0].Pool)
	if err != nil {
		return createNetwork{}, err
	}
	c := createNetwork{ID: r.NetworkID, AddressSpace: r.IPv4Data[0].AddressSpace, Pool: pool}
	if g, ok := r.Options[genericOptions]; ok && g != nil {
		m, ok := g.(map[string]any)
		if !ok {
			return createNetwork{}, badf("%s is not an object", genericOptions)
		}
		for k, v := range m {
			s, ok := v.(string)
			switch {
			case k != OptNetwork:
				return createNetwork{}, badf("unknown option -o %.60s (ovsfabric knows -o %s=NAME)", k, OptNetwork)
			case !ok || s == "":
				return createNetwork{}, badf("-o %s wants a network name", OptNetwork)
			}
			c.Name = s
		}
	}
	if v, ok := r.Options[internalOption]; ok {
		b, ok := v.(bool)
		if !ok {
			return createNetwork{}, badf("%s is not a boolean", internalOption)
		}
		c.Internal = b
	}
	return c, nil
}

// endpointRef names an endpoint of a network.
type endpointRef struct {
	NetworkID, ID string
}

func decodeEndpointRef(body []byte) (endpointRef, error) {
	var r endpointRequest
	if err := decodeJSON(body, &r); err != nil {
		return endpointRef{}, err
	}
	if err := checkID("network ID", r.NetworkID); err != nil {
		return endpointRef{}, err
	}
	if err := checkID("endpoint ID", r.EndpointID); err != nil {
		return endpointRef{}, err
	}
	return endpointRef{NetworkID: r.NetworkID, ID: r.EndpointID}, nil
}

func decodeNetworkRef(body []byte) (string, error) {
	var r networkRequest
	if err := decodeJSON(body, &r); err != nil {
		return "", err
	}
	return r.NetworkID, checkID("network ID", r.NetworkID)
}

// createEndpoint is CreateEndpoint decoded.
type createEndpoint struct {
	endpointRef
	// Addr is the address our IPAM gave (invalid: none was).
	Addr netip.Prefix
	// MAC is Docker's choice (--mac-address), nil for ours.
	MAC net.HardwareAddr
}

func decodeCreateEndpoint(body []byte) (createEndpoint, error) {
	var r createEndpointRequest
	if err := decodeJSON(body, &r); err != nil {
		return createEndpoint{}, err
	}
	c := createEndpoint{endpointRef: endpointRef{NetworkID: r.NetworkID, ID: r.EndpointID}}
	if err := checkID("network ID", r.NetworkID); err != nil {
		return createEndpoint{}, err
	}
	if err := checkID("endpoint ID", r.EndpointID); err != nil {
		return createEndpoint{}, err
	}
	if r.Interface == nil {
		return c, nil
	}
	if r.Interface.AddressIPv6 != "" {
		return createEndpoint{}, badf("ovsfabric networks are IPv4 only (got %.60s)", r.Interface.AddressIPv6)
	}
	if a := r.Interface.Address; a != "" {
		p, err := netip.ParsePrefix(a)
		if err != nil || !p.Addr().Is4() {
			return createEndpoint{}, badf("address %.60q is not IPv4 ADDR/BITS", a)
		}
		c.Addr = p
	}
	if m := r.Interface.MacAddress; m != "" {
		hw, err := net.ParseMAC(m)
		if err != nil || len(hw) != 6 || hw[0]&1 == 1 || [6]byte(hw) == [6]byte{} {
			return createEndpoint{}, badf("MAC %.60q is not a unicast Ethernet address", m)
		}
		c.MAC = hw
	}
	return c, nil
}

// join is Join decoded.
type join struct {
	endpointRef
	SandboxKey string
}

func decodeJoin(body []byte) (join, error) {
	var r joinRequest
	if err := decodeJSON(body, &r); err != nil {
		return join{}, err
	}
	if err := checkID("network ID", r.NetworkID); err != nil {
		return join{}, err
	}
	if err := checkID("endpoint ID", r.EndpointID); err != nil {
		return join{}, err
	}
	return join{endpointRef: endpointRef{NetworkID: r.NetworkID, ID: r.EndpointID}, SandboxKey: r.SandboxKey}, nil
}

// requestPool is RequestPool decoded.
type requestPool struct {
	// Pool is --subnet (invalid: none given).
	Pool netip.Prefix
	// Name is --ipam-opt ovsfabric.network.
	Name string
}

func decodeRequestPool(body []byte) (requestPool, error) {
	var r requestPoolRequest
	if err := decodeJSON(body, &r); err != nil {
		return requestPool{}, err
	}
	if r.V6 {
		return requestPool{}, badf("ovsfabric networks are IPv4 only: drop --ipv6")
	}
	if r.SubPool != "" {
		return requestPool{}, badf("--ip-range is not supported: every host takes its own slice of the subnet")
	}
	var p requestPool
	for k, v := range r.Options {
		if k != OptNetwork {
			return requestPool{}, badf("unknown --ipam-opt %.60s (ovsfabric knows %s=NAME)", k, OptNetwork)
		}
		p.Name = v
	}
	if r.Pool != "" {
		pool, err := parsePool(r.Pool)
		if err != nil {
			return requestPool{}, err
		}
		p.Pool = pool
	}
	if !p.Pool.IsValid() && p.Name == "" {
		return requestPool{}, badf("give --subnet CIDR (a fabric network's subnet, or a new one), or --ipam-opt %s=NAME", OptNetwork)
	}
	return p, nil
}

// requestAddress is RequestAddress decoded.
type requestAddress struct {
	Pool netip.Prefix
	// Addr is the address asked for (--ip, --gateway), invalid for any.
	Addr netip.Addr
	// Gateway says the request is for the network's gateway.
	Gateway bool
}

func decodeRequestAddress(body []byte) (requestAddress, error) {
	var r requestAddressRequest
	if err := decodeJSON(body, &r); err != nil {
		return requestAddress{}, err
	}
	pool, err := parsePool(r.PoolID)
	if err != nil {
		return requestAddress{}, fmt.Errorf("pool ID: %w", err)
	}
	a := requestAddress{Pool: pool, Gateway: r.Options[requestAddressType] == gatewayAddress}
	if r.Address != "" {
		if a.Addr, err = netip.ParseAddr(r.Address); err != nil || !a.Addr.Is4() {
			return requestAddress{}, badf("address %.60q is not an IPv4 address", r.Address)
		}
		if !pool.Contains(a.Addr) {
			return requestAddress{}, badf("address %s is outside the network's subnet %s", a.Addr, pool)
		}
	}
	return a, nil
}

// releaseAddress is ReleaseAddress decoded.
type releaseAddress struct {
	Pool netip.Prefix
	Addr netip.Addr
}

func decodeReleaseAddress(body []byte) (releaseAddress, error) {
	var r releaseAddressRequest
	if err := decodeJSON(body, &r); err != nil {
		return releaseAddress{}, err
	}
	pool, err := parsePool(r.PoolID)
	if err != nil {
		return releaseAddress{}, fmt.Errorf("pool ID: %w", err)
	}
	a, err := netip.ParseAddr(r.Address)
	if err != nil || !a.Is4() {
		return releaseAddress{}, badf("address %.60q is not an IPv4 address", r.Address)
	}
	return releaseAddress{Pool: pool, Addr: a}, nil
}

// decodeRequest decodes the body of a call by its method; the fuzz target's entry.
func decodeRequest(method string, body []byte) (any, error) {
	switch method {
	case "NetworkDriver.CreateNetwork":
		return decodeCreateNetwork(body)
	case "NetworkDriver.DeleteNetwork":
		return decodeNetworkRef(body)
	case "NetworkDriver.CreateEndpoint":
		return decodeCreateEndpoint(body)
	case "NetworkDriver.Join":
		return decodeJoin(body)
	case "NetworkDriver.ProgramExternalConnectivity":
		return decodeProgramExternal(body)
	case "NetworkDriver.Leave", "NetworkDriver.DeleteEndpoint", "NetworkDriver.EndpointOperInfo",
		"NetworkDriver.RevokeExternalConnectivity":
		return decodeEndpointRef(body)
	case "IpamDriver.RequestPool":
		return decodeRequestPool(body)
	case "IpamDriver.RequestAddress":
		return decodeRequestAddress(body)
	case "IpamDriver.ReleaseAddress":
		return decodeReleaseAddress(body)
	}
	var v map[string]any
	return v, decodeJSON(body, &v)
}

// mustPrefix parses a persisted subnet (invalid when it does not parse).
func mustPrefix(s string) netip.Prefix {
	p, _ := netip.ParsePrefix(s)
	return p
}

// portMapOption holds `docker run -p` in ProgramExternalConnectivity's Options.
const portMapOption = "com.docker.network.portmap"

// portBinding is one of Docker's port bindings (libnetwork types.PortBinding).
type portBinding struct {
	Proto       int
	IP          string
	Port        int
	HostIP      string
	HostPort    int
	HostPortEnd int
}

type programExternalRequest struct {
	NetworkID  string
	EndpointID string
	Options    map[string]json.RawMessage
}

// programExternal is ProgramExternalConnectivity decoded: the endpoint's published ports
// as HOSTPORT:CONTAINERPORT/PROTO.
type programExternal struct {
	endpointRef
	Publish []string
}

func decodeProgramExternal(body []byte) (programExternal, error) {
	var r programExternalRequest
	if err := decodeJSON(body, &r); err != nil {
		return programExternal{}, err
	}
	if err := checkID("network ID", r.NetworkID); err != nil {
		return programExternal{}, err
	}
	if err := checkID("endpoint ID", r.EndpointID); err != nil {
		return programExternal{}, err
	}
	p := programExternal{endpointRef: endpointRef{NetworkID: r.NetworkID, ID: r.EndpointID}}
	raw, ok := r.Options[portMapOption]
	if !ok || string(raw) == "null" {
		return p, nil
	}
	var pbs []portBinding
	if err := json.Unmarshal(raw, &pbs); err != nil {
		return programExternal{}, badf("%s: %v", portMapOption, err)
	}
	for _, b := range pbs {
		proto := map[int]string{6: "tcp", 17: "udp"}[b.Proto]
		switch {
		case proto == "":
			return programExternal{}, badf("-p: protocol %d: only tcp and udp are published", b.Proto)
		case b.HostPort == 0:
			return programExternal{}, badf("-p %d/%s: give the host port too (-p HOSTPORT:%d)", b.Port, proto, b.Port)
		case b.HostPortEnd != 0 && b.HostPortEnd != b.HostPort:
			return programExternal{}, badf("-p %d-%d: host port ranges are not supported", b.HostPort, b.HostPortEnd)
		case b.HostIP != "" && b.HostIP != "0.0.0.0":
			return programExternal{}, badf("-p %s:%d:%d: ports are published on the host's address; drop the host IP", b.HostIP, b.HostPort, b.Port)
		case b.Port < 1 || b.Port > 65535 || b.HostPort < 1 || b.HostPort > 65535:
			return programExternal{}, badf("-p %d:%d: ports are 1 to 65535", b.HostPort, b.Port)
		}
		p.Publish = append(p.Publish, fmt.Sprintf("%d:%d/%s", b.HostPort, b.Port, proto))
	}
	return p, nil
}

package dockerplugin

// The JSON of libnetwork's remote driver and IPAM APIs (docker/libnetwork
// drivers/remote/api and ipams/remote/api), as dockerd 20.10 sends and expects it. Docker
// adds fields between versions: unknown fields are ignored, the ones below are checked.

// errorResponse is every failed call's answer; Docker prints Err.
type errorResponse struct {
	Err string
}

type activateResponse struct {
	Implements []string
}

type capabilitiesResponse struct {
	Scope             string
	ConnectivityScope string
}

type ipamData struct {
	AddressSpace string
	Pool         string
	Gateway      string
	AuxAddresses map[string]string
}

type createNetworkRequest struct {
	NetworkID string
	Options   map[string]any
	IPv4Data  []ipamData
	IPv6Data  []ipamData
}

type networkRequest struct {
	NetworkID string
}

type endpointInterface struct {
	Address     string
	AddressIPv6 string
	MacAddress  string
}

type createEndpointRequest struct {
	NetworkID  string
	EndpointID string
	Interface  *endpointInterface
	Options    map[string]any
}

type createEndpointResponse struct {
	Interface *endpointInterface `json:",omitempty"`
}

type endpointRequest struct {
	NetworkID  string
	EndpointID string
}

type infoResponse struct {
	Value map[string]string
}

type joinRequest struct {
	NetworkID  string
	EndpointID string
	SandboxKey string
	Options    map[string]any
}

type interfaceName struct {
	SrcName   string
	DstPrefix string
}

type staticRoute struct {
	Destination string
	RouteType   int
	NextHop     string
}

type joinResponse struct {
	InterfaceName         interfaceName
	Gateway               string
	StaticRoutes          []staticRoute `json:",omitempty"`
	DisableGatewayService bool
}

type ipamCapabilitiesResponse struct {
	RequiresMACAddress    bool
	RequiresRequestReplay bool
}

type addressSpacesResponse struct {
	LocalDefaultAddressSpace  string
	GlobalDefaultAddressSpace string
}

type requestPoolRequest struct {
	AddressSpace string
	Pool         string
	SubPool      string
	Options      map[string]string
	V6           bool
}

type requestPoolResponse struct {
	PoolID string
	Pool   string
	Data   map[string]string
}

type requestAddressRequest struct {
	PoolID  string
	Address string
	Options map[string]string
}

type requestAddressResponse struct {
	Address string
	Data    map[string]string
}

type releaseAddressRequest struct {
	PoolID  string
	Address string
}

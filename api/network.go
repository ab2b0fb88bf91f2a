package api

// NetworkCreateRequest asks fabricd to create a network fabric-wide (POST /v1/networks).
type NetworkCreateRequest struct {
	// Name is the network's name: a DNS label (lower case letters, digits, '-'), at most 32
	// bytes; "default" is the network of the cluster CIDR and cannot be created.
	Name string `json:"name"`
	// Subnet is the network's CIDR (IPv4); it must not overlap another network's.
	Subnet string `json:"subnet"`
	// HostPrefix is the prefix length of each host's slice of Subnet; 0 chooses (24, or
	// the subnet's own length + 4 for subnets smaller than a /20).
	HostPrefix int `json:"host_prefix,omitempty"`
	// Key is the tunnel key (VXLAN VNI / GRE key, 1 to 16777215) unique in the fabric; 0
	// chooses one.
	Key uint32 `json:"key,omitempty"`
	// Internal networks have no egress, no masquerade and no published ports.
	Internal bool `json:"internal,omitempty"`
}

// Network is a network as fabricd shows it (GET /v1/networks, GET /v1/networks/NAME).
type Network struct {
	Name       string `json:"name"`
	Subnet     string `json:"subnet"`
	HostPrefix int    `json:"host_prefix"`
	Key        uint32 `json:"key"`
	Internal   bool   `json:"internal,omitempty"`
	// Origin is the host that created the network ("" for default); Created the Lamport
	// time of its creation, which decides between concurrent creates of one name.
	Origin  string `json:"origin,omitempty"`
	Created uint64 `json:"created,omitempty"`
	// Slice is this host's slice of the network and Gateway this host's gateway address
	// in it (both empty while this host has none).
	Slice   string `json:"slice,omitempty"`
	Gateway string `json:"gateway,omitempty"`
	// EndpointsHere counts the network's endpoints on this host, EndpointsFabric those of
	// every host (as the registry shows them).
	EndpointsHere   int `json:"endpoints_here"`
	EndpointsFabric int `json:"endpoints_fabric"`
	// Conflict, when set, says why the network is not served (its subnet or key collides
	// with a network created before it).
	Conflict string `json:"conflict,omitempty"`
	// Slices (inspect only) are every host's slice of the network.
	Slices []NetworkSlice `json:"slices,omitempty"`
	// Endpoints (inspect only) are the network's endpoints on every host.
	Endpoints []Attachment `json:"endpoints,omitempty"`
}

// NetworkSlice is one host's slice of a network.
type NetworkSlice struct {
	Host  string `json:"host"`
	Slice string `json:"slice"`
}

// NetworkRemoveRequest asks fabricd to remove a network fabric-wide (POST /v1/networks/rm).
type NetworkRemoveRequest struct {
	Name string `json:"name"`
	// Force removes the network although hosts still have endpoints on it (they lose it).
	Force bool `json:"force,omitempty"`
}

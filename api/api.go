// Package api is the contract between fabricd and fabricctl: the JSON types of fabricd's local
// HTTP API (served on a unix socket, mode 0600, or 0660 for fabricd's --api-group) and a
// small client for it.
//
// Endpoints:
//
//	GET  /v1/status   -> Status
//	GET  /v1/peers    -> []Peer
//	POST /v1/leave    -> Message   (leave the fabric gracefully, then fabricd exits)
//	GET  /v1/attachments[?all=1] -> []Attachment (all: every host's, spread by gossip)
//	POST /v1/attachments AttachRequest -> Attachment
//	POST /v1/detach   DetachRequest -> DetachResult (the endpoints as they were: Published lists the ports it removed)
//	POST /v1/publish  PublishRequest -> Attachment
//	POST /v1/unpublish PublishRequest -> Attachment
//	GET  /v1/networks -> []Network
//	POST /v1/networks NetworkCreateRequest -> Network (the definition that stands)
//	GET  /v1/networks/NAME -> Network (with every host's slice and the fabric's endpoints)
//	POST /v1/networks/rm NetworkRemoveRequest -> Network (as it was)
//	GET  /v1/keyring  -> KeyringResponse (every live member's gossip keyring)
//	POST /v1/keyring  KeyringRequest -> KeyringResponse (install, use or remove a key everywhere)
//	POST /v1/cni/...  the CNI plugin's commands (cni.go)
//	POST /v1/wireguard/rotate -> WireGuardRotateResult (replace this host's WireGuard key fabric-wide)
//
// Every error is a JSON Error with an HTTP status: 400 for a malformed or invalid request,
// 404 for an unknown object, 409 for a conflict with the current state (a host port already
// published or used by fabricd itself, a container attached otherwise, a port name owned by
// someone else), 503 while fabricd is still starting, 500 for a failure inside fabricd. The
// statuses are the error kinds of errors.go (StatusCode); the client's StatusError unwraps
// to them. Every answer, errors included, is
// application/json: the client takes anything else for another server on the socket.
package api

import "time"

// Status is one host's view of itself.
type Status struct {
	Node        string    `json:"node"`
	Underlay    string    `json:"underlay"`
	Subnet      string    `json:"subnet"`
	Gateway     string    `json:"gateway"`
	ClusterCIDR string    `json:"cluster_cidr"`
	Tunnel      string    `json:"tunnel"`
	MTU         int       `json:"mtu"`
	Datapath    string    `json:"datapath"`
	Bridge      string    `json:"bridge"`
	Peers       []Peer    `json:"peers"`
	Rejected    []string  `json:"rejected,omitempty"`
	LastSync    time.Time `json:"last_sync"`
	LastError   string    `json:"last_error,omitempty"`
	Syncs       uint64    `json:"syncs"`
	// Encryption is the data plane's encryption ("none" or "wireguard"); WireGuard its
	// interface, with encryption.
	Encryption string     `json:"encryption,omitempty"`
	WireGuard  *WireGuard `json:"wireguard,omitempty"`
	// TunnelMode is "per-peer" (a tunnel port per peer) or "flow" (one flow-based port).
	TunnelMode string `json:"tunnel_mode,omitempty"`
}

// Peer is another node as this host sees it, with the tunnel port fabricd keeps toward it.
type Peer struct {
	Name   string    `json:"name"`
	Addr   string    `json:"addr"`
	Subnet string    `json:"subnet"`
	State  string    `json:"state"`
	Since  time.Time `json:"since"`
	Tunnel string    `json:"tunnel_port,omitempty"`
	// Cookie, in flow tunnel mode, selects the flows that send to the peer (its to-peer
	// flows on the shared port), as ovs-ofctl takes it: cookie=<Cookie>.
	Cookie string `json:"cookie,omitempty"`
	// Note says why no tunnel is kept toward the peer, when none is.
	Note string `json:"note,omitempty"`
	// WireGuard is the peer's WireGuard handshake state (HandshakeState), with encryption:
	// "no key" when this host has no WireGuard peer for it (it carries no traffic).
	WireGuard string `json:"wireguard,omitempty"`
}

// Message is a plain answer to a request that returns no object.
type Message struct {
	Message string `json:"message"`
}

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
	// CNICode is the CNI error code of an error of the CNI endpoints (api/cni.go).
	CNICode uint `json:"cni_code,omitempty"`
}

// AttachRequest asks fabricd to attach a container (POST /v1/attachments).
type AttachRequest struct {
	// Target is a Docker or Podman container name or ID, "pid:PID", or a netns path
	// (/var/run/netns/NAME, /proc/PID/ns/net).
	Target string `json:"target"`
	// IP is a fixed address inside this host's subnet; empty allocates the lowest free one.
	IP string `json:"ip,omitempty"`
	// IfName is the interface name inside the container; empty means eth0 on the
	// container's first network and the next free ethN on each further one.
	IfName string `json:"ifname,omitempty"`
	// MAC is a fixed MAC address; empty generates one.
	MAC string `json:"mac,omitempty"`
	// Name is the endpoint's DNS name (a label); empty means the container's name (a Docker
	// or Podman container's, a netns path's base name; none for pid:PID).
	Name string `json:"name,omitempty"`
	// Aliases are further DNS names; several endpoints may share one.
	Aliases []string `json:"aliases,omitempty"`
	// Network is the network to attach to; empty means "default". A container attached to
	// several networks has one interface per network; its default route goes through the
	// first.
	Network string `json:"network,omitempty"`
}

// DetachRequest asks fabricd to detach a container (POST /v1/detach).
type DetachRequest struct {
	Target string `json:"target"`
	// Network detaches only the container's endpoint on that network; empty detaches it
	// from every network.
	Network string `json:"network,omitempty"`
}

// DetachResult is the answer to a DetachRequest: the endpoints removed.
type DetachResult struct {
	Detached []Attachment `json:"detached"`
}

// PublishRequest publishes or unpublishes a container port (POST /v1/publish, /v1/unpublish).
type PublishRequest struct {
	Target string `json:"target"`
	// Spec is HOSTPORT:CONTAINERPORT[/tcp|udp] (tcp when omitted).
	Spec string `json:"spec"`
}

// Attachment is a container attached to the fabric on some host.
type Attachment struct {
	Host      string `json:"host"`
	Container string `json:"container"`
	ID        string `json:"id,omitempty"`
	NetNS     string `json:"netns"`
	IfName    string `json:"ifname"`
	IP        string `json:"ip"`
	MAC       string `json:"mac"`
	Gateway   string `json:"gateway"`
	MTU       int    `json:"mtu"`
	Port      string `json:"port"`
	// Published are the container's published ports as PROTO:HOSTPORT:CONTAINERPORT.
	Published []string `json:"published,omitempty"`
	// Network is the endpoint's network; Name and Aliases its DNS names; Nameserver the
	// fabric DNS server it is told to ask (its gateway, when fabricd serves DNS).
	Network    string   `json:"network,omitempty"`
	Name       string   `json:"name,omitempty"`
	Aliases    []string `json:"aliases,omitempty"`
	Nameserver string   `json:"nameserver,omitempty"`
	// Unchanged is set when an attach request found the container attached already with the
	// same parameters and changed nothing.
	Unchanged bool `json:"unchanged,omitempty"`
}

// Target is a resolved attach target: where a container's network namespace is and how to
// name it. Container runtime adapters (package containers) resolve names to it, so that
// they depend on this package only.
type Target struct {
	// Key identifies the container across restarts of fabricd: the container ID, or the
	// netns path for a bare namespace. Port names derive from it.
	Key string
	// Name is what operators call it (container name, netns name, pid:N).
	Name  string
	ID    string
	NetNS string
	// ResolvConf is the container runtime's resolv.conf of a Docker/Podman container (its
	// ResolvConfPath, bind-mounted over the container's /etc/resolv.conf); empty for the
	// others.
	ResolvConf string
}

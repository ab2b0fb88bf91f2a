// Package api is the contract between fabricd and fabricctl: the JSON types of fabricd's local
// HTTP API (served on a unix socket, mode 0600) and a small client for it.
//
// Endpoints:
//
//	GET  /v1/status   -> Status
//	GET  /v1/peers    -> []Peer
//	POST /v1/leave    -> Message   (leave the fabric gracefully, then fabricd exits)
//
// Every error is a JSON Error with an HTTP status: 400 for a malformed or invalid request,
// 404 for an unknown object, 409 for a conflict, 500 for a failure inside fabricd.
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
}

// Peer is another node as this host sees it, with the tunnel port fabricd keeps toward it.
type Peer struct {
	Name   string    `json:"name"`
	Addr   string    `json:"addr"`
	Subnet string    `json:"subnet"`
	State  string    `json:"state"`
	Since  time.Time `json:"since"`
	Tunnel string    `json:"tunnel_port,omitempty"`
	// Note says why no tunnel is kept toward the peer, when none is.
	Note string `json:"note,omitempty"`
}

// Message is a plain answer to a request that returns no object.
type Message struct {
	Message string `json:"message"`
}

// Error is the body of every error response.
type Error struct {
	Error string `json:"error"`
}

package api

import (
	"context"
	"errors"
	"net/http"
	"net/url"
)

// The CNI endpoints of fabricd's API, which the CNI plugin (cmd/ovsfabric-cni) forwards its
// commands to:
//
//	POST /v1/cni/add    CNIRequest   -> CNIResult
//	POST /v1/cni/del    CNIRequest   -> Message (also when the endpoint is already gone)
//	POST /v1/cni/check  CNIRequest   -> CNIResult
//	GET  /v1/cni/status?network=N    -> Message (503 while fabricd cannot serve an ADD on N)
//	POST /v1/cni/gc     CNIGCRequest -> CNIGCResult
//
// Their errors carry a CNI error code (Error.CNICode) for the plugin to hand on.

// CNI error codes: the specification's well-known ones fabricd and the plugin use, and the
// plugin's own (100 and up).
const (
	CNIErrIncompatibleVersion uint = 1
	CNIErrUnknownContainer    uint = 3
	CNIErrInvalidEnv          uint = 4
	CNIErrIOFailure           uint = 5
	CNIErrDecoding            uint = 6
	CNIErrInvalidConfig       uint = 7
	CNIErrTryAgainLater       uint = 11
	CNIErrNotAvailable        uint = 50
	// CNIErrUnknownNetwork: the configuration's network does not exist on this fabric.
	CNIErrUnknownNetwork uint = 100
	// CNIErrAddress: the requested address (CNI_ARGS IP=, the ips capability) is not one this
	// host can give: outside its slice, or in use.
	CNIErrAddress uint = 101
	// CNIErrExists: ADD for a (container ID, ifname) that is already attached.
	CNIErrExists uint = 102
	// CNIErrCheckFailed: CHECK found the endpoint not as ADD made it.
	CNIErrCheckFailed uint = 103
	// CNIErrPortMapping: a requested port mapping cannot be published.
	CNIErrPortMapping uint = 104
)

// CNIRequest is one CNI command as the plugin forwards it.
type CNIRequest struct {
	// ContainerID and IfName are the CNI key of the endpoint.
	ContainerID string `json:"container_id"`
	IfName      string `json:"ifname"`
	// NetNS is the container's network namespace path (empty for DEL when it is gone).
	NetNS string `json:"netns,omitempty"`
	// Network is the fabric network to attach to.
	Network string `json:"network"`
	// Config is the name of the CNI network configuration (GC works per configuration).
	Config string `json:"config,omitempty"`
	// Name is the container's name, when the runtime says it (CNI_ARGS K8S_POD_NAME).
	Name string `json:"name,omitempty"`
	// IP and MAC are a fixed address and MAC (CNI_ARGS IP=/MAC=, capabilities ips/mac).
	IP  string `json:"ip,omitempty"`
	MAC string `json:"mac,omitempty"`
	// Publish are port mappings to publish, HOSTPORT:CONTAINERPORT/PROTO.
	Publish []string `json:"publish,omitempty"`
	// Aliases are DNS names for the endpoint.
	Aliases []string `json:"aliases,omitempty"`
}

// CNIResult is the endpoint an ADD made (or CHECK verified), for the plugin to turn into a
// CNI result of the configuration's version.
type CNIResult struct {
	Attachment
	Network string   `json:"network"`
	HostMAC string   `json:"host_mac,omitempty"`
	Aliases []string `json:"aliases,omitempty"`
	// Routes are the destinations the container routes via Gateway through this interface:
	// 0.0.0.0/0 on its first network, that network's CIDR on a further one (the default
	// route stays with the first). Empty from a fabricd before networks: the default route.
	Routes []string `json:"routes,omitempty"`
}

// CNIGCRequest lists the attachments the runtime still uses (cni.dev/valid-attachments).
type CNIGCRequest struct {
	Network string      `json:"network"`
	Config  string      `json:"config"`
	Valid   []CNIGCItem `json:"valid"`
}

// CNIGCItem is one valid attachment.
type CNIGCItem struct {
	ContainerID string `json:"container_id"`
	IfName      string `json:"ifname"`
}

// CNIGCResult lists the keys GC removed.
type CNIGCResult struct {
	Removed []string `json:"removed"`
}

// cniCodeError is an error with a CNI error code.
type cniCodeError struct {
	code uint
	err  error
}

func (e *cniCodeError) Error() string { return e.err.Error() }
func (e *cniCodeError) Unwrap() error { return e.err }

// WithCNICode gives err a CNI error code (keeping its kind and message); nil stays nil.
func WithCNICode(code uint, err error) error {
	if err == nil {
		return nil
	}
	return &cniCodeError{code: code, err: err}
}

// CNICode is the CNI error code err carries: its own (WithCNICode, or a client's StatusError
// that received one), else 0.
func CNICode(err error) uint {
	var ce *cniCodeError
	if errors.As(err, &ce) {
		return ce.code
	}
	var se *StatusError
	if errors.As(err, &se) {
		return se.CNICode
	}
	return 0
}

// CNIAdd forwards a CNI ADD.
func (c *Client) CNIAdd(ctx context.Context, req CNIRequest) (CNIResult, error) {
	var r CNIResult
	return r, c.Do(ctx, http.MethodPost, "/v1/cni/add", req, &r)
}

// CNIDel forwards a CNI DEL.
func (c *Client) CNIDel(ctx context.Context, req CNIRequest) error {
	return c.Do(ctx, http.MethodPost, "/v1/cni/del", req, &Message{})
}

// CNICheck forwards a CNI CHECK.
func (c *Client) CNICheck(ctx context.Context, req CNIRequest) (CNIResult, error) {
	var r CNIResult
	return r, c.Do(ctx, http.MethodPost, "/v1/cni/check", req, &r)
}

// CNIStatus forwards a CNI STATUS: nil when fabricd is ready for ADDs on network (empty:
// the default network).
func (c *Client) CNIStatus(ctx context.Context, network string) error {
	path := "/v1/cni/status"
	if network != "" {
		path += "?network=" + url.QueryEscape(network)
	}
	return c.Do(ctx, http.MethodGet, path, nil, &Message{})
}

// CNIGC forwards a CNI GC.
func (c *Client) CNIGC(ctx context.Context, req CNIGCRequest) (CNIGCResult, error) {
	var r CNIGCResult
	return r, c.Do(ctx, http.MethodPost, "/v1/cni/gc", req, &r)
}

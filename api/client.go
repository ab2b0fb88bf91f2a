package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"
)

// Client talks to fabricd's API socket.
type Client struct {
	socket string
	http   *http.Client
}

// NewClient returns a client for the API socket at path.
func NewClient(path string) *Client {
	return &Client{
		socket: path,
		http: &http.Client{
			Timeout: 60 * time.Second,
			Transport: &http.Transport{
				DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
					var d net.Dialer
					return d.DialContext(ctx, "unix", path)
				},
			},
		},
	}
}

// ErrNotRunning is returned when nothing listens on the socket.
var ErrNotRunning = errors.New("fabricd is not running")

// ErrNotFabricd is returned when the socket answers, but not as fabricd's API does (an OVSDB
// or Docker socket, say).
var ErrNotFabricd = errors.New("not a fabricd API socket")

// ErrPermission is returned when the caller may not connect to the socket.
var ErrPermission = errors.New("permission denied")

// SocketEnv is the environment variable that names the API socket when no --socket is given.
const SocketEnv = "FABRICCTL_SOCKET"

// DefaultSocket is where fabricd listens unless told otherwise.
const DefaultSocket = "/run/ovsfabric/fabricd.sock"

// Do sends a request with an optional JSON body and decodes the JSON answer into out.
func (c *Client) Do(ctx context.Context, method, path string, in, out any) error {
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			return fmt.Errorf("encode request: %w", err)
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, "http://fabricd"+path, body)
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return c.transportError(method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return c.transportError(method, path, err)
	}
	// fabricd answers every request, errors included, with a JSON body; anything else is some
	// other server on the socket (Docker's "page not found", for one).
	if !isJSON(resp.Header.Get("Content-Type")) {
		return c.notFabricd(fmt.Sprintf("it answered %q", summary(resp.Status, data)))
	}
	if resp.StatusCode >= 300 {
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return &StatusError{Code: resp.StatusCode, Message: e.Error, CNICode: e.CNICode}
		}
		return c.notFabricd(fmt.Sprintf("it answered %q", summary(resp.Status, data)))
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode answer of %s %s: %w", method, path, err)
		}
	}
	return nil
}

// transportError explains a failure to talk HTTP over the socket: nothing listening, no
// permission, or a server that does not speak HTTP (ovsdb-server closes the connection).
func (c *Client) transportError(method, path string, err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED):
		if fi, serr := os.Stat(c.socket); serr == nil && fi.Mode()&os.ModeSocket == 0 {
			return c.notFabricd("it is not a socket")
		}
		return fmt.Errorf("%w: no API socket at %s (start it with `fabricd --api-socket %s ...`, or point --socket or %s at the right path)", ErrNotRunning, c.socket, c.socket, SocketEnv)
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("%w: the socket %s is root-only (see fabricd's --api-group, or run as root)", ErrPermission, c.socket)
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET):
		return c.notFabricd("it closed the connection without an HTTP answer")
	case strings.Contains(err.Error(), "malformed HTTP"):
		return c.notFabricd("it answered something other than HTTP")
	}
	return fmt.Errorf("%s %s on %s: %w", method, path, c.socket, err)
}

func (c *Client) notFabricd(why string) error {
	return fmt.Errorf("%s is %w (%s); point --socket or %s at fabricd's --api-socket", c.socket, ErrNotFabricd, why, SocketEnv)
}

func isJSON(contentType string) bool {
	mt, _, _ := strings.Cut(contentType, ";")
	return strings.EqualFold(strings.TrimSpace(mt), "application/json")
}

// summary is a short form of an answer for an error message.
func summary(status string, body []byte) string {
	b := strings.Join(strings.Fields(string(body)), " ")
	if len(b) > 80 {
		b = b[:80] + "..."
	}
	if b == "" {
		return status
	}
	return status + ": " + b
}

// StatusError is an error answer of the API.
type StatusError struct {
	Code    int
	Message string
	// CNICode is the CNI error code the answer carries (0: none).
	CNICode uint
}

// Error returns the server's message.
func (e *StatusError) Error() string { return e.Message }

// Status fetches the host's status.
func (c *Client) Status(ctx context.Context) (Status, error) {
	var s Status
	return s, c.Do(ctx, http.MethodGet, "/v1/status", nil, &s)
}

// Peers fetches the host's view of its peers.
func (c *Client) Peers(ctx context.Context) ([]Peer, error) {
	var p []Peer
	return p, c.Do(ctx, http.MethodGet, "/v1/peers", nil, &p)
}

// Leave asks fabricd to leave the fabric gracefully and exit.
func (c *Client) Leave(ctx context.Context) (Message, error) {
	var m Message
	return m, c.Do(ctx, http.MethodPost, "/v1/leave", nil, &m)
}

// Attach attaches a container.
func (c *Client) Attach(ctx context.Context, req AttachRequest) (Attachment, error) {
	var a Attachment
	return a, c.Do(ctx, http.MethodPost, "/v1/attachments", req, &a)
}

// Detach detaches a container from one network (req.Network) or from every network, and
// returns the endpoints it removed (each with the published ports it removed).
func (c *Client) Detach(ctx context.Context, req DetachRequest) ([]Attachment, error) {
	var r DetachResult
	return r.Detached, c.Do(ctx, http.MethodPost, "/v1/detach", req, &r)
}

// Attachments lists this host's attachments.
func (c *Client) Attachments(ctx context.Context) ([]Attachment, error) {
	var a []Attachment
	return a, c.Do(ctx, http.MethodGet, "/v1/attachments", nil, &a)
}

// FabricAttachments lists the attachments of every host of the fabric, as gossip spreads them.
func (c *Client) FabricAttachments(ctx context.Context) ([]Attachment, error) {
	var a []Attachment
	return a, c.Do(ctx, http.MethodGet, "/v1/attachments?all=1", nil, &a)
}

// Publish publishes a container port on this host's underlay address.
func (c *Client) Publish(ctx context.Context, target, spec string) (Attachment, error) {
	var a Attachment
	return a, c.Do(ctx, http.MethodPost, "/v1/publish", PublishRequest{Target: target, Spec: spec}, &a)
}

// Unpublish removes a published port.
func (c *Client) Unpublish(ctx context.Context, target, spec string) (Attachment, error) {
	var a Attachment
	return a, c.Do(ctx, http.MethodPost, "/v1/unpublish", PublishRequest{Target: target, Spec: spec}, &a)
}

// CreateNetwork creates a network fabric-wide. The answer is the network as it stands after
// the create: another host's definition when one of the same name won.
func (c *Client) CreateNetwork(ctx context.Context, req NetworkCreateRequest) (Network, error) {
	var n Network
	return n, c.Do(ctx, http.MethodPost, "/v1/networks", req, &n)
}

// Networks lists the networks of the fabric.
func (c *Client) Networks(ctx context.Context) ([]Network, error) {
	var n []Network
	return n, c.Do(ctx, http.MethodGet, "/v1/networks", nil, &n)
}

// Network fetches one network with every host's slice and the endpoints of the fabric.
func (c *Client) Network(ctx context.Context, name string) (Network, error) {
	var n Network
	// The name is a path segment: one that is empty or a dot segment would name another path.
	if name == "" || name == "." || name == ".." {
		return n, Errorf(ErrInvalid, "network name %q is not a DNS label", name)
	}
	return n, c.Do(ctx, http.MethodGet, "/v1/networks/"+url.PathEscape(name), nil, &n)
}

// RemoveNetwork removes a network fabric-wide and returns it as it was.
func (c *Client) RemoveNetwork(ctx context.Context, req NetworkRemoveRequest) (Network, error) {
	var n Network
	return n, c.Do(ctx, http.MethodPost, "/v1/networks/rm", req, &n)
}

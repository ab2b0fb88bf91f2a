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
	"os"
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
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ECONNREFUSED) {
			return fmt.Errorf("%w: no API socket at %s (start it with `fabricd --api-socket %s ...`, or point --socket at the right path)", ErrNotRunning, c.socket, c.socket)
		}
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("read answer: %w", err)
	}
	if resp.StatusCode >= 300 {
		var e Error
		if json.Unmarshal(data, &e) == nil && e.Error != "" {
			return &StatusError{Code: resp.StatusCode, Message: e.Error}
		}
		return &StatusError{Code: resp.StatusCode, Message: string(bytes.TrimSpace(data))}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return fmt.Errorf("decode answer: %w", err)
		}
	}
	return nil
}

// StatusError is an error answer of the API.
type StatusError struct {
	Code    int
	Message string
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

// Detach detaches a container.
func (c *Client) Detach(ctx context.Context, target string) (Attachment, error) {
	var a Attachment
	return a, c.Do(ctx, http.MethodPost, "/v1/detach", DetachRequest{Target: target}, &a)
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

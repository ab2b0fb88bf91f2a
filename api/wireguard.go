package api

import (
	"context"
	"net/http"
	"time"
)

// WireGuard is this host's WireGuard interface as `fabricctl status` shows it (Status.WireGuard,
// with --encryption wireguard).
type WireGuard struct {
	Interface string `json:"interface"`
	// Implementation is "kernel" or "userspace" (wireguard-go).
	Implementation string `json:"implementation"`
	// PID is the userspace device process (ovsfabric-wg), which outlives fabricd; 0 otherwise.
	PID        int    `json:"pid,omitempty"`
	PublicKey  string `json:"public_key"`
	ListenPort int    `json:"listen_port"`
	// Peers is each WireGuard peer's state, by peer name ("" for a key no peer announces).
	Peers []WireGuardPeer `json:"peers,omitempty"`
	// Error is why the interface could not be read, when it could not.
	Error string `json:"error,omitempty"`
}

// WireGuardPeer is one WireGuard peer's state.
type WireGuardPeer struct {
	Name       string   `json:"name,omitempty"`
	PublicKey  string   `json:"public_key"`
	Endpoint   string   `json:"endpoint,omitempty"`
	AllowedIPs []string `json:"allowed_ips"`
	// LatestHandshake is zero when no handshake ever completed.
	LatestHandshake time.Time `json:"latest_handshake,omitzero"`
	RxBytes         int64     `json:"rx_bytes"`
	TxBytes         int64     `json:"tx_bytes"`
}

// HandshakeFresh is how old a WireGuard peer's latest handshake may be while the link counts
// as up: WireGuard renews the session every 2 minutes of traffic, and fabricd's persistent
// keepalive (25 s) keeps idle links renewing; after 3 minutes a session is expired.
const HandshakeFresh = 3 * time.Minute

// HandshakeState is a WireGuard peer's handshake state as `fabricctl peers` prints it:
// "ok (12s ago)", "stale (5m0s ago)" or "never".
func HandshakeState(last, now time.Time) string {
	if last.IsZero() {
		return "never"
	}
	age := now.Sub(last).Round(time.Second)
	if age < 0 {
		age = 0
	}
	if age > HandshakeFresh {
		return "stale (" + age.String() + " ago)"
	}
	return "ok (" + age.String() + " ago)"
}

// WireGuardRotateResult is the answer to POST /v1/wireguard/rotate.
type WireGuardRotateResult struct {
	OldPublicKey string `json:"old_public_key"`
	PublicKey    string `json:"public_key"`
}

// RotateWireGuardKey replaces this host's WireGuard key fabric-wide (POST /v1/wireguard/rotate).
func (c *Client) RotateWireGuardKey(ctx context.Context) (WireGuardRotateResult, error) {
	var r WireGuardRotateResult
	err := c.Do(ctx, http.MethodPost, "/v1/wireguard/rotate", nil, &r)
	return r, err
}

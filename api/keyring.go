package api

import (
	"context"
	"net/http"
)

// Keyring operations (KeyringRequest.Op).
const (
	KeyringList    = "list"
	KeyringInstall = "install"
	KeyringUse     = "use"
	KeyringRemove  = "remove"
)

// KeyringRequest changes the gossip keyring of every live member (POST /v1/keyring):
// install a key, use an installed key as the primary (encrypting) one, or remove a key.
type KeyringRequest struct {
	// Op is install, use or remove (list is GET /v1/keyring).
	Op string `json:"op"`
	// Key is the AES key in standard base64: 16, 24 or 32 bytes.
	Key string `json:"key"`
	// Local changes only this host's keyring: to repair a host that was down during a
	// rotation and now cannot talk to the others.
	Local bool `json:"local,omitempty"`
}

// KeyringResponse is every member's answer to a keyring operation.
type KeyringResponse struct {
	Op string `json:"op"`
	// Hosts holds one answer per member, the host that ran the operation first.
	Hosts []KeyringHost `json:"hosts"`
	// Keys sums up the keys found on the hosts that answered.
	Keys []KeyringKey `json:"keys"`
	// Failed counts the hosts that failed or did not answer.
	Failed int `json:"failed"`
}

// KeyringHost is one member's keyring after the operation.
type KeyringHost struct {
	Node string `json:"node"`
	// Primary is the key the host encrypts with (empty: the host does not encrypt).
	Primary string   `json:"primary,omitempty"`
	Keys    []string `json:"keys"`
	Error   string   `json:"error,omitempty"`
}

// KeyringKey is one key and on how many hosts it is installed and primary.
type KeyringKey struct {
	Key       string `json:"key"`
	Installed int    `json:"installed"`
	Primary   int    `json:"primary"`
}

// Keyring lists the keyrings of every live member.
func (c *Client) Keyring(ctx context.Context) (KeyringResponse, error) {
	var r KeyringResponse
	return r, c.Do(ctx, http.MethodGet, "/v1/keyring", nil, &r)
}

// ChangeKeyring runs a keyring operation on every live member (or this host only).
func (c *Client) ChangeKeyring(ctx context.Context, req KeyringRequest) (KeyringResponse, error) {
	var r KeyringResponse
	return r, c.Do(ctx, http.MethodPost, "/v1/keyring", req, &r)
}

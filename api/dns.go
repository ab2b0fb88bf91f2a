package api

import (
	"context"
	"net/http"
	"net/url"
)

// DNSRecord is one endpoint's names as the fabric DNS serves them (GET /v1/dns).
type DNSRecord struct {
	Network string   `json:"network"`
	Name    string   `json:"name,omitempty"`
	Aliases []string `json:"aliases,omitempty"`
	IP      string   `json:"ip"`
	// Host is the origin host: where the endpoint is.
	Host string `json:"host"`
}

// DNSRecords lists the names known fabric-wide; network, when not empty, keeps only that
// network's.
func (c *Client) DNSRecords(ctx context.Context, network string) ([]DNSRecord, error) {
	path := "/v1/dns"
	if network != "" {
		path += "?network=" + url.QueryEscape(network)
	}
	var out []DNSRecord
	return out, c.Do(ctx, http.MethodGet, path, nil, &out)
}

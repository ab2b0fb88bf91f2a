package apiserver

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/ovsfabric/ovsfabric/api"
)

// dnsList is a fabric DNS holding fixed records.
type dnsList []api.DNSRecord

func (d dnsList) DNSRecords(network string) []api.DNSRecord {
	var out []api.DNSRecord
	for _, r := range d {
		if network == "" || r.Network == network {
			out = append(out, r)
		}
	}
	return out
}

func TestDNSAPI(t *testing.T) {
	s, path, _ := serve(t, "")
	c := api.NewClient(path)
	ctx := context.Background()
	if _, err := c.DNSRecords(ctx, ""); api.StatusCode(err) != http.StatusServiceUnavailable {
		t.Fatalf("without DNS: %v, want a 503", err)
	}
	s.SetDNS(dnsList{{Network: "default", Name: "web", IP: "10.244.1.2", Host: "h1"}, {Network: "blue", Name: "db", IP: "10.9.0.2", Host: "h2"}})
	all, err := c.DNSRecords(ctx, "")
	if err != nil || len(all) != 2 {
		t.Fatalf("all: %+v %v", all, err)
	}
	blue, err := c.DNSRecords(ctx, "blue")
	if err != nil || len(blue) != 1 || blue[0].Name != "db" || blue[0].Host != "h2" {
		t.Fatalf("blue: %+v %v", blue, err)
	}
	none, err := c.DNSRecords(ctx, "red")
	if err != nil || none == nil || len(none) != 0 {
		t.Fatalf("red: %#v %v (want an empty list)", none, err)
	}
	if _, err := c.DNSRecords(ctx, strings.Repeat("n", 300)); api.StatusCode(err) != http.StatusBadRequest {
		t.Fatalf("long network: %v, want a 400", err)
	}
}

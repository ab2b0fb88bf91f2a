package fabricdns_test

import (
	"log/slog"
	"net/netip"

	"github.com/ovsfabric/ovsfabric/fabricdns"
)

// How fabricd wires the server: one table and one server for the process; on every reconcile
// the networks, every endpoint record in the registry and the listeners (this host's gateway
// per network) are handed over whole.
func Example() {
	tab := fabricdns.NewTable()
	srv, err := fabricdns.New(fabricdns.Config{Directory: tab, Logger: slog.Default()})
	if err != nil {
		panic(err)
	}
	defer srv.Close()

	// On every reconcile:
	_ = tab.SetNetworks([]fabricdns.Network{{Name: "blue", Subnets: []netip.Prefix{netip.MustParsePrefix("10.1.0.0/16")}}})
	_ = tab.Replace([]fabricdns.Record{{Network: "blue", Name: "web", Aliases: []string{"www"}, Addr: netip.MustParseAddr("10.1.3.2"), Origin: "host-a"}})
	if err := srv.Set([]fabricdns.Listener{{Network: "blue", Addr: netip.MustParseAddr("10.1.3.1")}}); err != nil {
		slog.Warn("fabric DNS", "err", err) // e.g. port 53 taken; the other networks are served
	}
}

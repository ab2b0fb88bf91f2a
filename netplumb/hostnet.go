package netplumb

import (
	"context"
	"fmt"
	"net/netip"
)

// HostState is the host network fabricd wants in its namespace, set as a whole by
// HostNet.Set (level-triggered, in the spirit of Tailscale's router.Set): the gateway port
// up with the fabric MTU and its address, IPv4 forwarding on, no ICMP redirects out of the
// gateway, and exactly fabricd's routes.
type HostState struct {
	// GatewayDev is the gateway port (fabric0). Empty leaves the gateway alone and sets only
	// the routes (a node withdrawing from the fabric keeps its local containers reachable).
	GatewayDev string
	// MTU is the gateway's MTU.
	MTU int
	// Addr is the gateway's address; other addresses of GatewayDev inside Scope are removed.
	Addr  netip.Prefix
	Scope netip.Prefix
	// Routes are all of fabricd's routes (protocol 147); others of that protocol go.
	Routes []Route
}

// HostChanges says what a Set changed.
type HostChanges struct {
	// Link is set when the gateway was brought up or its MTU changed; Addr when its address
	// changed.
	Link, Addr bool
	Routes     RouteChanges
}

// HostNet sets the host network of the namespace fabricd runs in, through netlink and
// sysctls.
type HostNet struct{}

// Set makes the host network match want, changing only what differs.
func (HostNet) Set(ctx context.Context, want HostState) (HostChanges, error) {
	var ch HostChanges
	if dev := want.GatewayDev; dev != "" {
		if err := WaitLink(ctx, dev); err != nil {
			return ch, fmt.Errorf("gateway port %s: %w", dev, err)
		}
		var err error
		if ch.Link, err = SetLinkUp(dev, want.MTU); err != nil {
			return ch, fmt.Errorf("gateway port %s up: %w", dev, err)
		}
		if ch.Addr, err = ReconcileAddrs(dev, []netip.Prefix{want.Addr}, want.Scope); err != nil {
			return ch, fmt.Errorf("gateway address %s: %w", want.Addr, err)
		}
		if err := SetForwarding(true); err != nil {
			return ch, fmt.Errorf("enable forwarding: %w", err)
		}
		if err := DisableRedirects(dev); err != nil {
			return ch, fmt.Errorf("disable redirects: %w", err)
		}
	}
	rc, err := ReconcileRoutes(want.Routes)
	if err != nil {
		return ch, fmt.Errorf("reconcile routes: %w", err)
	}
	ch.Routes = rc
	return ch, nil
}

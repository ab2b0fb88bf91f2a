package netplumb

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
)

// HostState is the host network fabricd wants in its namespace, set as a whole by
// HostNet.Set (level-triggered, in the spirit of Tailscale's router.Set): the gateway port
// up with the fabric MTU and one address per network this host serves, IPv4 forwarding on,
// no ICMP redirects out of the gateway, and exactly fabricd's routes.
type HostState struct {
	// GatewayDev is the gateway port (fabric0). Empty leaves the gateway alone and sets only
	// the routes (a node withdrawing from the fabric keeps its local containers reachable).
	GatewayDev string
	// MTU is the gateway's MTU.
	MTU int
	// Addrs are the gateway's addresses, one per network this host serves (the first host
	// address of its slice, with the slice's prefix length). Each must lie inside one of
	// Scopes.
	Addrs []netip.Prefix
	// Scopes are the CIDRs of the fabric's networks: addresses of GatewayDev inside any of
	// them that are not in Addrs are removed (a network this host stopped serving, a slice
	// it gave up); addresses outside every scope (an operator's) stay.
	Scopes []netip.Prefix
	// Routes are all of fabricd's routes (protocol 147); others of that protocol go.
	Routes []Route
}

// HostChanges says what a Set changed.
type HostChanges struct {
	// Link is set when the gateway was brought up or its MTU changed.
	Link bool
	// Addrs are the gateway addresses added and removed.
	Addrs  AddrChanges
	Routes RouteChanges
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
		if err := checkScopes(want.Addrs, want.Scopes); err != nil {
			return ch, fmt.Errorf("gateway port %s: %w", dev, err)
		}
		var err error
		if ch.Link, err = SetLinkUp(dev, want.MTU); err != nil {
			return ch, fmt.Errorf("gateway port %s up: %w", dev, err)
		}
		if ch.Addrs, err = ReconcileAddrsIn(dev, want.Addrs, want.Scopes); err != nil {
			return ch, fmt.Errorf("gateway addresses %v: %w", want.Addrs, err)
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

// checkScopes refuses a gateway address outside every scope: it could never be removed
// again once its network is gone.
func checkScopes(addrs, scopes []netip.Prefix) error {
	for _, s := range scopes {
		if !s.IsValid() {
			return invalidf("gateway scope: no prefix (want a network CIDR such as 10.244.0.0/16)")
		}
	}
	for _, a := range addrs {
		if err := checkAddr("gateway address", a); err != nil {
			return err
		}
		if !slices.ContainsFunc(scopes, func(s netip.Prefix) bool { return s.Contains(a.Addr()) }) {
			return invalidf("gateway address %s is inside none of the networks %v", a, scopes)
		}
	}
	return nil
}

// LinkIndex is the interface index of dev: a device deleted and made again (ovs-vswitchd
// recreating the gateway port) has a new one, so it tells whether the device a Set
// configured is still the one there. One netlink request, no dump.
func (HostNet) LinkIndex(dev string) (int, error) {
	if err := checkIfName("link", dev); err != nil {
		return 0, err
	}
	h, err := hostHandle()
	if err != nil {
		return 0, err
	}
	defer h.Close()
	l, err := h.LinkByName(dev)
	if err != nil {
		return 0, linkErr(dev, err)
	}
	return l.Attrs().Index, nil
}

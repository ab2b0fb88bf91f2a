package main

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/containernetworking/cni/pkg/types"
	current "github.com/containernetworking/cni/pkg/types/100"

	"github.com/ovsfabric/ovsfabric/api"
)

// buildResult turns fabricd's answer into a CNI result (the current type; PrintResult
// converts it to the configuration's version): the host and container interfaces with the
// MTU, the address with its gateway, the routes via the gateway (the default route on the
// container's first network, the network's CIDR on a further one), and DNS when fabricd
// serves it (the network's gateway on this host as nameserver, the network's name as search
// domain, so that `web` finds `web.NETWORK`).
func buildResult(r api.CNIResult) (*current.Result, error) {
	addr, err := netip.ParsePrefix(r.IP)
	if err != nil {
		return nil, fmt.Errorf("fabricd answered address %q: %w", r.IP, err)
	}
	gw, err := netip.ParseAddr(r.Gateway)
	if err != nil {
		return nil, fmt.Errorf("fabricd answered gateway %q: %w", r.Gateway, err)
	}
	dsts := r.Routes
	if len(dsts) == 0 {
		dsts = []string{"0.0.0.0/0"} // a fabricd from before networks
	}
	var routes []*types.Route
	for _, d := range dsts {
		p, err := netip.ParsePrefix(d)
		if err != nil {
			return nil, fmt.Errorf("fabricd answered route %q: %w", d, err)
		}
		routes = append(routes, &types.Route{Dst: ipNet(p.Masked()), GW: gw.AsSlice()})
	}
	container := 1
	res := &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: r.Port, Mac: r.HostMAC, Mtu: r.MTU},
			{Name: r.IfName, Mac: r.MAC, Mtu: r.MTU, Sandbox: r.NetNS},
		},
		IPs:    []*current.IPConfig{{Interface: &container, Address: ipNet(addr), Gateway: gw.AsSlice()}},
		Routes: routes,
	}
	if r.Nameserver != "" {
		res.DNS = types.DNS{Nameservers: []string{r.Nameserver}, Search: []string{r.Network}}
	}
	return res, nil
}

// ipNet is p as a net.IPNet, keeping the host bits.
func ipNet(p netip.Prefix) net.IPNet {
	return net.IPNet{IP: p.Addr().AsSlice(), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}

// checkPrev verifies that the result ADD returned (prevResult) names what fabricd has.
func checkPrev(prev types.Result, r api.CNIResult) error {
	if prev == nil {
		return nil
	}
	res, err := current.NewResultFromResult(prev)
	if err != nil {
		return types.NewError(types.ErrDecodingFailure, fmt.Sprintf("prevResult: %v", err), "")
	}
	for _, ip := range res.IPs {
		if ip.Address.String() == r.IP {
			return nil
		}
	}
	return types.NewError(api.CNIErrCheckFailed, fmt.Sprintf("prevResult does not list the endpoint's address %s", r.IP), "")
}

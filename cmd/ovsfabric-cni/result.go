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
// MTU, the address with its gateway, the default route, and DNS (the network's gateway as
// nameserver, the network's name as search domain).
func buildResult(r api.CNIResult) (*current.Result, error) {
	addr, err := netip.ParsePrefix(r.IP)
	if err != nil {
		return nil, fmt.Errorf("fabricd answered address %q: %w", r.IP, err)
	}
	gw, err := netip.ParseAddr(r.Gateway)
	if err != nil {
		return nil, fmt.Errorf("fabricd answered gateway %q: %w", r.Gateway, err)
	}
	ipnet := net.IPNet{IP: addr.Addr().AsSlice(), Mask: net.CIDRMask(addr.Bits(), 32)}
	container := 1
	return &current.Result{
		CNIVersion: current.ImplementedSpecVersion,
		Interfaces: []*current.Interface{
			{Name: r.Port, Mac: r.HostMAC, Mtu: r.MTU},
			{Name: r.IfName, Mac: r.MAC, Mtu: r.MTU, Sandbox: r.NetNS},
		},
		IPs:    []*current.IPConfig{{Interface: &container, Address: ipnet, Gateway: gw.AsSlice()}},
		Routes: []*types.Route{{Dst: net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}, GW: gw.AsSlice()}},
		DNS:    types.DNS{Nameservers: []string{gw.String()}, Search: []string{r.Network}},
	}, nil
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

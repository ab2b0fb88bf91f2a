package main

import (
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/containernetworking/cni/pkg/types"

	"github.com/ovsfabric/ovsfabric/api"
)

// NetConf is the plugin's network configuration.
type NetConf struct {
	types.PluginConf
	// Network is the fabric network to attach to; the configuration's name when empty.
	Network string `json:"network,omitempty"`
	// Socket is fabricd's API socket; api.DefaultSocket when empty.
	Socket string `json:"socket,omitempty"`
	// RuntimeConfig holds the capabilities the runtime fills in.
	RuntimeConfig RuntimeConfig `json:"runtimeConfig,omitempty"`
}

// RuntimeConfig is the capability arguments the plugin understands (CNI conventions).
type RuntimeConfig struct {
	// IPs: the ips capability, addresses with or without a prefix length.
	IPs []string `json:"ips,omitempty"`
	// MAC: the mac capability.
	MAC string `json:"mac,omitempty"`
	// PortMappings: the portMappings capability.
	PortMappings []PortMapping `json:"portMappings,omitempty"`
	// Aliases: the aliases capability, network name → names.
	Aliases map[string][]string `json:"aliases,omitempty"`
}

// PortMapping is one entry of the portMappings capability.
type PortMapping struct {
	HostPort      int    `json:"hostPort"`
	ContainerPort int    `json:"containerPort"`
	Protocol      string `json:"protocol,omitempty"`
	HostIP        string `json:"hostIP,omitempty"`
}

// Args are the CNI_ARGS the plugin understands.
type Args struct {
	types.CommonArgs
	IP           types.UnmarshallableString `json:"IP,omitempty"`
	MAC          types.UnmarshallableString `json:"MAC,omitempty"`
	K8S_POD_NAME types.UnmarshallableString //nolint:revive // the CNI_ARGS key
}

// parseConf parses the network configuration.
func parseConf(stdin []byte) (NetConf, error) {
	var c NetConf
	if err := json.Unmarshal(stdin, &c); err != nil {
		return c, types.NewError(types.ErrDecodingFailure, fmt.Sprintf("malformed network configuration: %v", err), "")
	}
	if c.Name == "" {
		return c, types.NewError(types.ErrInvalidNetworkConfig, "network configuration has no name", "")
	}
	if c.Network == "" {
		c.Network = c.Name
	}
	if c.Socket == "" {
		c.Socket = api.DefaultSocket
	}
	if !strings.HasPrefix(c.Socket, "/") {
		return c, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("socket %q is not an absolute path", c.Socket), "")
	}
	return c, nil
}

// request builds the request forwarded to fabricd from the configuration, the container's
// key and netns, and CNI_ARGS. Capabilities win over CNI_ARGS (they are the newer way).
func request(c NetConf, containerID, ifname, netns, args string) (api.CNIRequest, error) {
	req := api.CNIRequest{ContainerID: containerID, IfName: ifname, NetNS: netns, Network: c.Network, Config: c.Name}
	var a Args
	if err := types.LoadArgs(args, &a); err != nil {
		return req, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("CNI_ARGS: %v", err), "")
	}
	req.Name = string(a.K8S_POD_NAME)
	req.IP, req.MAC = string(a.IP), string(a.MAC)
	rc := c.RuntimeConfig
	switch len(rc.IPs) {
	case 0:
	case 1:
		req.IP = rc.IPs[0]
	default:
		return req, types.NewError(types.ErrInvalidNetworkConfig, fmt.Sprintf("runtimeConfig ips %v: this fabric gives one IPv4 address per interface", rc.IPs), "")
	}
	if req.IP != "" {
		ip, err := parseIP(req.IP)
		if err != nil {
			return req, types.NewError(api.CNIErrAddress, err.Error(), "")
		}
		req.IP = ip.String()
	}
	if rc.MAC != "" {
		req.MAC = rc.MAC
	}
	if req.MAC != "" {
		if _, err := net.ParseMAC(req.MAC); err != nil {
			return req, types.NewError(types.ErrInvalidEnvironmentVariables, fmt.Sprintf("MAC %q is not a MAC address", req.MAC), "")
		}
	}
	for _, pm := range rc.PortMappings {
		proto := strings.ToLower(pm.Protocol)
		if proto == "" {
			proto = "tcp"
		}
		req.Publish = append(req.Publish, fmt.Sprintf("%d:%d/%s", pm.HostPort, pm.ContainerPort, proto))
	}
	req.Aliases = rc.Aliases[c.Name]
	return req, nil
}

// parseIP reads an address given as ADDR or ADDR/BITS (the ips capability carries CIDRs).
func parseIP(s string) (netip.Addr, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		s = p.Addr().String()
	}
	ip, err := netip.ParseAddr(s)
	if err != nil || !ip.Is4() {
		return netip.Addr{}, fmt.Errorf("IP %q is not an IPv4 address", s)
	}
	return ip, nil
}

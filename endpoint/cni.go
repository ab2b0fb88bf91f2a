package endpoint

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/netplumb"
)

// The CNI plugin's side of the endpoints: the plugin (cmd/ovsfabric-cni) forwards each CNI
// command here, and fabricd attaches and detaches with the same code as fabricctl attach.
// A CNI endpoint is keyed by (container ID, ifname), recorded on its port (Record.CNIKey).

// Links read back the two ends of an endpoint for CNI CHECK (variables for tests).
var (
	containerLink = netplumb.ContainerLink
	hostLink      = netplumb.HostLink
)

// cniReadyWait bounds how long CNI STATUS waits for the first reconcile.
const cniReadyWait = 2 * time.Second

// CNIKey is the key of a CNI endpoint: CONTAINERID/IFNAME.
func CNIKey(containerID, ifname string) string { return containerID + "/" + ifname }

// cniTarget is the attach target of a CNI request: the port name derives from the CNI key,
// so that one container may have several interfaces.
func cniTarget(req api.CNIRequest) api.Target {
	name := req.Name
	if name == "" {
		id := req.ContainerID
		if len(id) > 12 {
			id = id[:12]
		}
		name = "cni-" + id
	}
	return api.Target{Key: "cni:" + CNIKey(req.ContainerID, req.IfName), Name: name, ID: req.ContainerID, NetNS: req.NetNS}
}

// checkCNIRequest validates what every CNI command needs: the key and a network name.
// Whether the network exists is for the commands to decide: ADD needs it served here, DEL
// and GC of a network that is gone have nothing to do.
func checkCNIRequest(req api.CNIRequest) error {
	if req.ContainerID == "" {
		return api.WithCNICode(api.CNIErrInvalidEnv, api.Errorf(api.ErrInvalid, "no container ID (CNI_CONTAINERID)"))
	}
	if strings.ContainsAny(req.ContainerID, "/,") || len(req.ContainerID) > 256 {
		return api.WithCNICode(api.CNIErrInvalidEnv, api.Errorf(api.ErrInvalid, "container ID %.80q: want at most 256 bytes without / or ,", req.ContainerID))
	}
	if err := fabric.ValidIfName(req.IfName); err != nil {
		return api.WithCNICode(api.CNIErrInvalidEnv, api.Errorf(api.ErrInvalid, "CNI_IFNAME: %v", err))
	}
	return checkNetworkName(req.Network)
}

func checkNetworkName(network string) error {
	if network == "" {
		return api.WithCNICode(api.CNIErrInvalidConfig, api.Errorf(api.ErrInvalid, "no network given"))
	}
	return nil
}

// cniNetwork is the fabric network name as this host serves it, for an ADD (or STATUS): an
// unknown network is CNI's "unknown network"; one this host has no slice of yet (or that is
// not served because of a conflict) is worth trying again later.
func (m *Manager) cniNetwork(name string) (Network, error) {
	if err := checkNetworkName(name); err != nil {
		return Network{}, err
	}
	nw, err := m.loop.Network(name)
	switch {
	case err == nil:
		return nw, nil
	case errors.Is(err, api.ErrNotFound):
		return nw, api.WithCNICode(api.CNIErrUnknownNetwork, api.Errorf(api.ErrNotFound,
			"unknown network %q: this fabric has no such network (`fabricctl network ls` lists them; `fabricctl network create` makes one)", name))
	case errors.Is(err, api.ErrConflict), errors.Is(err, api.ErrUnavailable):
		return nw, api.WithCNICode(api.CNIErrTryAgainLater, err)
	}
	return nw, err
}

// cniRoutes are the destinations of an endpoint's routes as a CNI result lists them.
func cniRoutes(routes []netip.Prefix) []string {
	if len(routes) == 0 {
		return []string{"0.0.0.0/0"}
	}
	out := make([]string, len(routes))
	for k, p := range routes {
		out[k] = p.String()
	}
	return out
}

// cniRecord finds the endpoint of a CNI key on network among rs.
func cniRecord(rs []Record, network, key string) (Record, bool) {
	for _, r := range rs {
		if r.CNIKey == key && r.Network == network {
			return r, true
		}
	}
	return Record{}, false
}

// CNIAdd attaches a container for CNI ADD: the endpoint of (container ID, ifname) on the
// request's network, with its published ports and aliases, all or nothing. An ADD for a key
// that is attached already is refused.
func (m *Manager) CNIAdd(ctx context.Context, req api.CNIRequest) (api.CNIResult, error) {
	if err := checkCNIRequest(req); err != nil {
		return api.CNIResult{}, err
	}
	nw, err := m.cniNetwork(req.Network)
	if err != nil {
		return api.CNIResult{}, err
	}
	if req.NetNS == "" || !m.host.NetNSExists(req.NetNS) {
		return api.CNIResult{}, api.WithCNICode(api.CNIErrUnknownContainer, api.Errorf(api.ErrNotFound, "network namespace %q does not exist (CNI_NETNS)", req.NetNS))
	}
	key := CNIKey(req.ContainerID, req.IfName)
	if nw.Internal && len(req.Publish) > 0 {
		return api.CNIResult{}, api.WithCNICode(api.CNIErrPortMapping, api.Errorf(api.ErrInvalid, "portMappings: network %s is internal: it has no published ports", nw.Name))
	}
	var pub []PortMapping
	for _, spec := range req.Publish {
		pm, err := ParsePortSpec(spec)
		if err != nil {
			return api.CNIResult{}, api.WithCNICode(api.CNIErrPortMapping, api.Errorf(api.ErrInvalid, "portMappings: %v", err))
		}
		if use := m.reservedPort(pm.Proto, pm.HostPort); use != "" {
			return api.CNIResult{}, api.WithCNICode(api.CNIErrPortMapping, api.Errorf(api.ErrConflict, "portMappings: %s port %d on this host is %s", pm.Proto, pm.HostPort, use))
		}
		if slices.ContainsFunc(pub, func(o PortMapping) bool { return o.Proto == pm.Proto && o.HostPort == pm.HostPort }) {
			return api.CNIResult{}, api.WithCNICode(api.CNIErrPortMapping, api.Errorf(api.ErrInvalid, "portMappings: %s port %d is mapped twice", pm.Proto, pm.HostPort))
		}
		pub = append(pub, pm)
	}
	// Aliases are DNS names like those of fabricctl attach --alias: checked the same way.
	_, aliases, err := parseNames("", req.Aliases)
	if err != nil {
		return api.CNIResult{}, api.WithCNICode(api.CNIErrInvalidConfig, err)
	}
	rs, err := m.records(ctx)
	if err != nil {
		return api.CNIResult{}, err
	}
	if r, ok := cniRecord(rs, req.Network, key); ok {
		return api.CNIResult{}, api.WithCNICode(api.CNIErrExists, api.Errorf(api.ErrConflict, "container %s interface %s is already attached to network %s as %s (port %s): DEL it first", req.ContainerID, req.IfName, req.Network, addrText(r.Addr), r.Port))
	}
	// One interface joins one network: the same key on another network is another
	// configuration asking for an interface the container has.
	for _, r := range rs {
		if r.CNIKey == key {
			return api.CNIResult{}, api.WithCNICode(api.CNIErrExists, api.Errorf(api.ErrConflict, "container %s interface %s is already attached to network %s as %s (port %s): give this network another CNI_IFNAME", req.ContainerID, req.IfName, r.Network, addrText(r.Addr), r.Port))
		}
	}
	for _, r := range rs {
		for _, o := range r.Published {
			if slices.ContainsFunc(pub, func(pm PortMapping) bool { return pm.Proto == o.Proto && pm.HostPort == o.HostPort }) {
				return api.CNIResult{}, api.WithCNICode(api.CNIErrPortMapping, api.Errorf(api.ErrConflict, "portMappings: %s port %d is already published by %s", o.Proto, o.HostPort, r.Container))
			}
		}
	}
	if req.IP != "" {
		ip, err := netip.ParseAddr(req.IP)
		if err != nil {
			return api.CNIResult{}, api.WithCNICode(api.CNIErrAddress, api.Errorf(api.ErrInvalid, "IP %.80q is not an IPv4 address", req.IP))
		}
		if !nw.Slice.Contains(ip) {
			return api.CNIResult{}, api.WithCNICode(api.CNIErrAddress, api.Errorf(api.ErrInvalid, "IP %s is outside this host's slice %s of network %s", ip, nw.Slice, nw.Name))
		}
	}
	t := cniTarget(req)
	var routes []netip.Prefix
	a, err := m.attach(ctx, api.AttachRequest{Target: t.Name, Network: nw.Name, IP: req.IP, IfName: req.IfName, MAC: req.MAC, Aliases: aliases}, &t, func(r *Record) {
		routes = r.Routes
		r.CNIKey = key
		r.CNIConfig = req.Config
		r.Published = pub
	})
	if err != nil {
		switch {
		case req.IP != "" && api.StatusCode(err) < 500 && strings.Contains(err.Error(), "--ip"):
			err = api.WithCNICode(api.CNIErrAddress, err)
		case errors.Is(err, api.ErrUnavailable):
			err = api.WithCNICode(api.CNIErrTryAgainLater, err)
		}
		return api.CNIResult{}, err
	}
	if a.Unchanged {
		// A concurrent ADD of the same key recorded it between the check above and attach.
		return api.CNIResult{}, api.WithCNICode(api.CNIErrExists, api.Errorf(api.ErrConflict, "container %s interface %s is already attached to network %s as %s (port %s): DEL it first", req.ContainerID, req.IfName, req.Network, a.IP, a.Port))
	}
	if len(pub) > 0 {
		if err := m.cniPublish(ctx, a.Port); err != nil {
			return api.CNIResult{}, api.WithCNICode(api.CNIErrPortMapping, err)
		}
	}
	res := api.CNIResult{Attachment: a, Network: nw.Name, Aliases: aliases, Routes: cniRoutes(routes)}
	if l, err := hostLink(a.Port); err == nil {
		res.HostMAC = l.MAC.String()
	}
	return res, nil
}

// cniPublish applies the NAT table after the ADD of port, which records published ports;
// when that fails it removes the endpoint again, so that a failed ADD leaves nothing.
func (m *Manager) cniPublish(ctx context.Context, port string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs, err := m.records(ctx)
	if err != nil {
		return err
	}
	m.gen++
	nerr := m.applyNATLocked(rs)
	if nerr == nil {
		return nil
	}
	for _, r := range rs {
		if r.Port == port {
			if err := m.removeLocked(ctx, r, without(rs, port)); err != nil {
				m.log.Error("roll back endpoint after failed publish", "port", port, "err", err)
			}
			if err := m.applyNATLocked(without(rs, port)); err != nil {
				m.log.Error("NAT table after rollback", "err", err)
			}
		}
	}
	return fmt.Errorf("publish ports: %w", nerr)
}

// CNIDel detaches the endpoint of a CNI key. It succeeds when there is none (already
// deleted, never added, network unknown) and when its network namespace is gone.
func (m *Manager) CNIDel(ctx context.Context, req api.CNIRequest) error {
	if err := checkCNIRequest(req); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rs, err := m.records(ctx)
	if err != nil {
		return err
	}
	r, ok := cniRecord(rs, req.Network, CNIKey(req.ContainerID, req.IfName))
	if !ok {
		return nil
	}
	return m.removeCNILocked(ctx, rs, r)
}

// removeCNILocked removes endpoint r of rs, as Detach does; mu must be held.
func (m *Manager) removeCNILocked(ctx context.Context, rs []Record, r Record) error {
	if err := m.removeLocked(ctx, r, without(rs, r.Port)); err != nil {
		return err
	}
	if len(r.Published) > 0 {
		return m.applyNATLocked(without(rs, r.Port))
	}
	return nil
}

// CNICheck verifies the endpoint of a CNI key: its OVS port, the host veth, and inside the
// container the interface with its MAC, address, MTU and default route. The error says
// precisely what differs.
func (m *Manager) CNICheck(ctx context.Context, req api.CNIRequest) (api.CNIResult, error) {
	if err := checkCNIRequest(req); err != nil {
		return api.CNIResult{}, err
	}
	key := CNIKey(req.ContainerID, req.IfName)
	rs, err := m.records(ctx)
	if err != nil {
		return api.CNIResult{}, err
	}
	r, ok := cniRecord(rs, req.Network, key)
	if !ok {
		if _, err := m.cniNetwork(req.Network); api.CNICode(err) == api.CNIErrUnknownNetwork {
			return api.CNIResult{}, err
		}
		return api.CNIResult{}, checkFailed(api.ErrNotFound, "no endpoint for container %s interface %s on network %s (no OVS port of %s records it)", req.ContainerID, req.IfName, req.Network, m.s.Bridge)
	}
	if req.NetNS != "" && req.NetNS != r.NetNS {
		return api.CNIResult{}, checkFailed(api.ErrConflict, "endpoint %s was added in netns %s, not %s", key, r.NetNS, req.NetNS)
	}
	host, err := hostLink(r.Port)
	if err != nil {
		return api.CNIResult{}, checkFailed(api.ErrConflict, "OVS port %s: its host veth: %v", r.Port, err)
	}
	c, err := containerLink(r.NetNS, r.IfName)
	if err != nil {
		return api.CNIResult{}, checkFailed(api.ErrConflict, "interface %s: %v", r.IfName, err)
	}
	if c.PeerIndex != host.Index {
		return api.CNIResult{}, checkFailed(api.ErrConflict, "interface %s in %s is not the peer of the host veth %s of OVS port %s", r.IfName, r.NetNS, r.Port, r.Port)
	}
	if r.MAC != nil && c.MAC.String() != r.MAC.String() {
		return api.CNIResult{}, checkFailed(api.ErrConflict, "interface %s has MAC %s, not %s", r.IfName, c.MAC, r.MAC)
	}
	if !c.Up {
		return api.CNIResult{}, checkFailed(api.ErrConflict, "interface %s is down", r.IfName)
	}
	if !slices.Contains(c.Addrs, r.Addr) {
		return api.CNIResult{}, checkFailed(api.ErrConflict, "interface %s lacks its address %s (has %v)", r.IfName, addrText(r.Addr), c.Addrs)
	}
	gw := r.Gateway()
	if len(r.Routes) == 0 && c.Gateway != gw {
		return api.CNIResult{}, checkFailed(api.ErrConflict, "interface %s has no default route via %s (default gateway: %v)", r.IfName, gw, c.Gateway)
	}
	for _, dst := range r.Routes {
		if !slices.Contains(c.Routes, netplumb.Route{Dst: dst, Gateway: gw, Dev: r.IfName}) {
			return api.CNIResult{}, checkFailed(api.ErrConflict, "interface %s has no route to network %s (%s) via %s (routes: %v)", r.IfName, r.Network, dst, gw, routeText(c.Routes))
		}
	}
	if m.mtu > 0 && c.MTU != m.mtu {
		return api.CNIResult{}, checkFailed(api.ErrConflict, "interface %s has MTU %d, not %d", r.IfName, c.MTU, m.mtu)
	}
	return api.CNIResult{Attachment: m.api(r), Network: r.Network, HostMAC: host.MAC.String(), Aliases: r.Aliases, Routes: cniRoutes(r.Routes)}, nil
}

// routeText shows routes as `ip route` does, for an error.
func routeText(rs []netplumb.Route) []string {
	out := make([]string, 0, len(rs))
	for _, r := range rs {
		out = append(out, fmt.Sprintf("%s via %s dev %s", r.Dst, r.Gateway, r.Dev))
	}
	return out
}

func checkFailed(kind error, format string, args ...any) error {
	return api.WithCNICode(api.CNIErrCheckFailed, api.Errorf(kind, format, args...))
}

// CNIStatus is nil when fabricd can serve an ADD on network (empty: the default one): its
// bridge and gateway are built and it holds a slice of the network.
func (m *Manager) CNIStatus(ctx context.Context, network string) error {
	if network == "" {
		network = DefaultNetwork
	}
	wctx, cancel := context.WithTimeout(ctx, cniReadyWait)
	defer cancel()
	if err := m.loop.WaitReady(wctx); err != nil {
		if !errors.Is(err, api.ErrUnavailable) {
			err = api.Errorf(api.ErrUnavailable, "fabricd has not built %s yet: %v", m.s.Bridge, err)
		}
		return api.WithCNICode(api.CNIErrNotAvailable, err)
	}
	nw, err := m.cniNetwork(network)
	if err != nil {
		return api.WithCNICode(api.CNIErrNotAvailable, api.Errorf(api.ErrUnavailable, "%s", err.Error()))
	}
	if !nw.Slice.IsValid() {
		return api.WithCNICode(api.CNIErrNotAvailable, api.Errorf(api.ErrUnavailable, "this host has no slice of network %s yet", nw.Name))
	}
	return nil
}

// CNIGC removes the endpoints the request's CNI configuration made on its network whose keys
// are not valid any more; endpoints attached otherwise, or through another configuration,
// are never touched.
func (m *Manager) CNIGC(ctx context.Context, req api.CNIGCRequest) (api.CNIGCResult, error) {
	res := api.CNIGCResult{Removed: []string{}}
	if err := checkNetworkName(req.Network); err != nil {
		return res, err
	}
	valid := map[string]bool{}
	for _, v := range req.Valid {
		valid[CNIKey(v.ContainerID, v.IfName)] = true
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	rs, err := m.records(ctx)
	if err != nil {
		return res, err
	}
	for _, r := range rs {
		if r.CNIKey == "" || r.Network != req.Network || r.CNIConfig != req.Config || valid[r.CNIKey] {
			continue
		}
		if err := m.removeCNILocked(ctx, rs, r); err != nil {
			return res, fmt.Errorf("gc %s: %w", r.CNIKey, err)
		}
		rs = without(rs, r.Port)
		res.Removed = append(res.Removed, r.CNIKey)
	}
	return res, nil
}

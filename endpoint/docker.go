package endpoint

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/netplumb"
)

// The Docker plugin's side of the endpoints (package dockerplugin, wired by cmd/fabricd).
// Docker's remote driver protocol splits an attach in three: the IPAM hands out an address
// (DockerHold), the driver creates the endpoint (DockerAttach: a veth whose both ends stay
// on the host, the host end an OVS port like any other endpoint's, recorded with the Docker
// endpoint ID), and Docker itself moves the other end into the container and sets its
// address. DeleteEndpoint removes it all (DockerDetach). The loop never prunes these
// endpoints: Docker owns their life.

// dockerKeyPrefix starts the target key of a Docker endpoint.
const dockerKeyPrefix = "docker-endpoint:"

// hostVeth makes a Docker endpoint's veth and linkExists looks for its host end
// (variables for tests).
var (
	hostVeth   = netplumb.HostVeth
	linkExists = netplumb.LinkExists
)

// dockerVethAlive says whether Docker endpoint r's host veth is there (or cannot be told).
func dockerVethAlive(r Record) bool {
	ok, err := linkExists(r.Port)
	return ok || err != nil
}

func isDockerTarget(t api.Target) bool { return strings.HasPrefix(t.Key, dockerKeyPrefix) }

// DockerEndpoint is an endpoint the Docker plugin creates.
type DockerEndpoint struct {
	// ID is Docker's endpoint ID.
	ID string
	// Network is the fabric network.
	Network string
	// Addr is the address DockerHold gave, with this host's slice's prefix length.
	Addr netip.Prefix
	// MAC is the container interface's; nil chooses one.
	MAC net.HardwareAddr
}

// DockerInfo is a Docker endpoint as recorded.
type DockerInfo struct {
	Network string
	Addr    netip.Prefix
	MAC     net.HardwareAddr
	// Port is the host end (the OVS port); Peer the other end's name on the host, which
	// Docker moves into the container.
	Port, Peer string
}

func dockerTarget(id string) api.Target {
	short := id
	if len(short) > 12 {
		short = short[:12]
	}
	return api.Target{Key: dockerKeyPrefix + id, Name: "docker:" + short}
}

// DockerNames are the host end (OVS port) and peer names of Docker endpoint id on network.
func DockerNames(id, network string) (port, peer string) {
	port = portNameOf(dockerTarget(id), network)
	return port, "dk" + strings.TrimPrefix(port, "vf")
}

// DockerHold picks an address of this host's slice of network for a Docker endpoint about
// to be created — want when valid — and holds it until DockerAttach takes it or
// DockerRelease frees it. It returns the address with the slice's prefix length and the
// slice's gateway. Errors are api kinds: an address outside the slice, taken or special is
// ErrInvalid, an exhausted slice ErrConflict.
func (m *Manager) DockerHold(ctx context.Context, network string, want netip.Addr) (netip.Prefix, netip.Addr, error) {
	nw, err := m.loop.Network(network)
	if err != nil {
		return netip.Prefix{}, netip.Addr{}, err
	}
	slice := nw.Slice
	m.mu.Lock()
	defer m.mu.Unlock()
	rs, err := m.records(ctx)
	if err != nil {
		return netip.Prefix{}, netip.Addr{}, err
	}
	used := map[netip.Addr]bool{}
	for _, r := range m.inflight {
		used[r.ip] = true
	}
	for ip := range m.holds {
		used[ip] = true
	}
	for _, r := range rs {
		if r.Addr.IsValid() {
			used[r.Addr.Addr()] = true
		}
	}
	ip := want
	if ip.IsValid() {
		if !slice.Contains(ip) {
			return netip.Prefix{}, netip.Addr{}, api.Errorf(api.ErrInvalid, "%s is outside this host's slice %s of network %s (other hosts own the rest of %s)", ip, slice, network, nw.CIDR)
		}
		if used[ip] {
			return netip.Prefix{}, netip.Addr{}, api.Errorf(api.ErrInvalid, "%s is already in use on network %s", ip, network)
		}
		if err := fabric.CheckContainerIP(slice, ip, used); err != nil {
			return netip.Prefix{}, netip.Addr{}, api.Errorf(api.ErrInvalid, "%v", err)
		}
	} else if ip, err = fabric.AllocateIP(slice, used); err != nil {
		return netip.Prefix{}, netip.Addr{}, api.Errorf(api.ErrConflict, "network %s: %v", network, err)
	}
	m.holds[ip] = "a Docker endpoint being created"
	return netip.PrefixFrom(ip, slice.Bits()), fabric.Gateway(slice), nil
}

// DockerRelease frees an address DockerHold gave that no endpoint took (Docker's
// ReleaseAddress; an address an endpoint holds is freed by DockerDetach).
func (m *Manager) DockerRelease(ip netip.Addr) {
	m.mu.Lock()
	delete(m.holds, ip)
	m.mu.Unlock()
}

// DockerAttach creates Docker endpoint e: the veth pair on the host (the peer named as
// DockerNames says, for Docker to move), the host end an OVS port recording the endpoint,
// its flows, all or nothing. Repeating it changes nothing.
func (m *Manager) DockerAttach(ctx context.Context, e DockerEndpoint) (DockerInfo, error) {
	if !e.Addr.IsValid() {
		return DockerInfo{}, api.Errorf(api.ErrInvalid, "endpoint %s has no IPv4 address (is the network's IPAM driver ovsfabric?)", e.ID)
	}
	t := dockerTarget(e.ID)
	port, peer := DockerNames(e.ID, e.Network)
	req := api.AttachRequest{Target: t.Name, Network: e.Network, IP: e.Addr.Addr().String(), IfName: peer}
	if e.MAC != nil {
		req.MAC = e.MAC.String()
	}
	plumb := func(a netplumb.Attachment) (netplumb.AttachResult, error) {
		return hostVeth(netplumb.HostVethPair{HostIf: a.HostIf, PeerIf: peer, MAC: a.MAC, MTU: a.MTU, Datapath: a.Datapath})
	}
	// Docker sets the container's routes (the default through its first network, ours from
	// the Join reply): the record keeps none.
	a, err := m.attachWith(ctx, req, &t, func(r *Record) { r.DockerEP, r.Routes = e.ID, nil }, plumb)
	if err != nil {
		return DockerInfo{}, err
	}
	mac, _ := net.ParseMAC(a.MAC)
	addr, _ := netip.ParsePrefix(a.IP)
	return DockerInfo{Network: e.Network, Addr: addr, MAC: mac, Port: port, Peer: peer}, nil
}

// DockerEndpointOf is Docker endpoint id as its port records it (ok=false: none).
func (m *Manager) DockerEndpointOf(ctx context.Context, id string) (DockerInfo, bool, error) {
	rs, err := m.records(ctx)
	if err != nil {
		return DockerInfo{}, false, err
	}
	for _, r := range rs {
		if r.DockerEP == id {
			port, peer := DockerNames(id, r.Network)
			return DockerInfo{Network: r.Network, Addr: r.Addr, MAC: r.MAC, Port: port, Peer: peer}, true, nil
		}
	}
	return DockerInfo{}, false, nil
}

// DockerDetach removes Docker endpoint id (its port, veth and address); none is no error.
func (m *Manager) DockerDetach(ctx context.Context, id string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	rs, err := m.records(ctx)
	if err != nil {
		return err
	}
	for _, r := range rs {
		if r.DockerEP != id {
			continue
		}
		if err := m.removeLocked(ctx, r, without(rs, r.Port)); err != nil {
			return fmt.Errorf("docker endpoint %.12s: %w", id, err)
		}
		if len(r.Published) > 0 {
			return m.applyNATLocked(without(rs, r.Port))
		}
		return nil
	}
	return nil
}

// DockerNamed is a Docker endpoint's identity for names: its ID and DNS name ("" while
// unknown).
type DockerNamed struct {
	ID, Name string
}

// DockerEndpoints lists this host's Docker endpoints with their names.
func (m *Manager) DockerEndpoints(ctx context.Context) ([]DockerNamed, error) {
	rs, err := m.records(ctx)
	if err != nil {
		return nil, err
	}
	var out []DockerNamed
	for _, r := range rs {
		if r.DockerEP != "" {
			out = append(out, DockerNamed{ID: r.DockerEP, Name: r.Name})
		}
	}
	return out, nil
}

// DockerSetNames records a Docker endpoint's container name and DNS names (Docker tells
// them only through its API, after the endpoint exists). A name that is no DNS label is
// left out (the container keeps the others).
func (m *Manager) DockerSetNames(ctx context.Context, id, container string, aliases []string) error {
	name := strings.ToLower(container)
	if CheckName(name) != nil {
		name = ""
	}
	var keep []string
	for _, a := range aliases {
		if a = strings.ToLower(a); CheckName(a) == nil && a != name {
			keep = append(keep, a)
		}
	}
	_, keep, err := parseNames("", keep)
	if err != nil {
		return err
	}
	return m.dockerUpdate(ctx, id, func(r *Record) error {
		r.Container, r.Name, r.Aliases = container, name, keep
		return nil
	})
}

// DockerPublish sets the published ports (HOSTPORT:CONTAINERPORT/PROTO) of a Docker
// endpoint: `docker run -p`, through the same NAT as fabricctl publish.
func (m *Manager) DockerPublish(ctx context.Context, id string, specs []string) error {
	var pub []PortMapping
	for _, s := range specs {
		pm, err := ParsePortSpec(s)
		if err != nil {
			return api.Errorf(api.ErrInvalid, "-p: %v", err)
		}
		if use := m.reservedPort(pm.Proto, pm.HostPort); use != "" {
			return api.Errorf(api.ErrConflict, "-p: %s port %d on this host is %s", pm.Proto, pm.HostPort, use)
		}
		pub = append(pub, pm)
	}
	return m.dockerUpdate(ctx, id, func(r *Record) error {
		if len(pub) > 0 {
			if n, ok := m.networkOf(*r); ok && n.Internal {
				return api.Errorf(api.ErrInvalid, "-p: network %s is internal: it has no published ports", n.Name)
			}
		}
		r.Published = pub
		return nil
	})
}

// dockerUpdate changes Docker endpoint id's record and applies the change: its port's
// external_ids and the NAT table.
func (m *Manager) dockerUpdate(ctx context.Context, id string, change func(*Record) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	all, err := m.records(ctx)
	if err != nil {
		return err
	}
	i := -1
	for j, r := range all {
		if r.DockerEP == id {
			i = j
		}
	}
	if i < 0 {
		return api.Errorf(api.ErrNotFound, "no Docker endpoint %.12s on this host", id)
	}
	r := all[i]
	before := r.PortSpec(m.s.Name)
	if err := change(&r); err != nil {
		return err
	}
	for _, o := range all {
		if o.Port == r.Port {
			continue
		}
		for _, op := range o.Published {
			for _, pm := range r.Published {
				if op.Proto == pm.Proto && op.HostPort == pm.HostPort {
					return api.Errorf(api.ErrConflict, "-p: %s port %d is already published by %s", pm.Proto, pm.HostPort, o.Container)
				}
			}
		}
	}
	after := r.PortSpec(m.s.Name)
	if fmt.Sprint(before) == fmt.Sprint(after) {
		return nil
	}
	m.gen++
	if err := m.sw.EnsurePort(ctx, m.s.Bridge, after); err != nil {
		return portError(fmt.Errorf("record docker endpoint %.12s on %s: %w", id, r.Port, err))
	}
	all[i] = r
	m.loop.Kick() // spread the names
	return m.applyNATLocked(all)
}

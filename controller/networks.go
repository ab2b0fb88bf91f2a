package controller

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/endpoint"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/network"
)

// Networks is what the loop needs of the network book (network.Book): the networks
// besides the default one, this host's slices of them, and creating and removing them.
type Networks interface {
	// Sync resolves the networks the registry holds, adopts and persists them, claims this
	// host's slices, and returns the view (level-triggered; called at every sync).
	Sync(ctx context.Context) (network.View, error)
	// View is the view the last Sync returned.
	View() network.View
	// LoadedClock is the highest Lamport time of the records loaded from OVSDB at start (0:
	// this host had no networks, slices or removals).
	LoadedClock() uint64
	Create(ctx context.Context, spec network.Spec) (network.Network, error)
	Remove(ctx context.Context, name string) (network.Network, error)
}

// SetNetworks attaches the network book; without it the fabric has the default network only.
func (c *Controller) SetNetworks(n Networks) { c.nets = n }

// networkFacts are the networks of view as the plan takes them.
func (c *Controller) networkFacts(view network.View) []fabric.NetworkFacts {
	out := make([]fabric.NetworkFacts, 0, len(view.Networks))
	for _, n := range view.Networks {
		if n.Name == network.Default {
			continue
		}
		nf := fabric.NetworkFacts{Name: n.Name, Key: n.Key, CIDR: n.Subnet, Internal: n.Internal, Slice: view.Local[n.Name]}
		for _, s := range view.Slices[n.Name] {
			if s.Node != c.s.Name {
				nf.PeerSlices = append(nf.PeerSlices, fabric.PeerSlice{Peer: s.Node, Slice: s.Prefix})
			}
		}
		out = append(out, nf)
	}
	return out
}

// syncNetworks runs the book's Sync (nothing without a book).
func (c *Controller) syncNetworks(ctx context.Context) ([]fabric.NetworkFacts, error) {
	if c.nets == nil {
		return nil, nil
	}
	view, err := c.nets.Sync(ctx)
	if err != nil {
		return nil, fmt.Errorf("networks: %w", err)
	}
	return c.networkFacts(view), nil
}

// Network is network name as this host serves it (endpoint.Loop): its CIDR and this host's
// slice. An unknown network is api.ErrNotFound; one this host has no slice of yet (or that
// conflicts with an older one) api.ErrConflict.
func (c *Controller) Network(name string) (endpoint.Network, error) {
	c.mu.Lock()
	d := c.desired
	claim := c.claim.Subnet
	c.mu.Unlock()
	for _, n := range d.Networks {
		if n.Name == name && n.Gateway.IsValid() {
			return endpoint.Network{Name: n.Name, CIDR: n.CIDR, Slice: n.Gateway.Masked(), Internal: n.Internal}, nil
		}
	}
	if name == network.Default {
		if claim.IsValid() {
			return endpoint.Network{Name: name, CIDR: c.s.Cluster, Slice: claim}, nil
		}
		return endpoint.Network{}, api.Errorf(api.ErrConflict, "this host has no subnet yet; retry in a few seconds")
	}
	if c.nets != nil {
		view := c.nets.View()
		if why, ok := view.Conflicts[name]; ok {
			return endpoint.Network{}, api.Errorf(api.ErrConflict, "network %s is not served: %s", name, why)
		}
		if why, ok := view.NoSlice[name]; ok {
			return endpoint.Network{}, api.Errorf(api.ErrConflict, "this host has no slice of network %s: %s", name, why)
		}
		if n, ok := view.Network(name); ok {
			return endpoint.Network{}, api.Errorf(api.ErrConflict, "this host has no slice of network %s (%s) yet; retry in a few seconds", name, n.Subnet)
		}
	}
	return endpoint.Network{}, api.Errorf(api.ErrNotFound, "no network %q (`fabricctl network ls` lists them; `fabricctl network create` makes one)", name)
}

// Networks are every network of the fabric (endpoint.Loop), default first, with this
// host's slice of those it serves.
func (c *Controller) Networks() []endpoint.Network {
	c.mu.Lock()
	d := c.planned // the sync in progress (its NAT pass calls this), else the last one
	claim := c.claim.Subnet
	c.mu.Unlock()
	served := map[string]fabric.NetworkPlan{}
	for _, n := range d.Networks {
		served[n.Name] = n
	}
	out := []endpoint.Network{{Name: network.Default, CIDR: c.s.Cluster, Slice: claim}}
	if c.nets == nil {
		return out
	}
	for _, n := range c.nets.View().Networks {
		if n.Name == network.Default {
			continue
		}
		e := endpoint.Network{Name: n.Name, CIDR: n.Subnet, Internal: n.Internal}
		// The plan and the book's view may disagree for a moment (a definition that lost
		// to another of its name since): a slice outside the network is no slice.
		if p, ok := served[n.Name]; ok && p.CIDR == n.Subnet {
			e.Slice = p.Gateway.Masked()
		}
		out = append(out, e)
	}
	return out
}

// networkCIDRs are the CIDRs of every network of the fabric.
func (c *Controller) networkCIDRs() []netip.Prefix {
	var out []netip.Prefix
	for _, n := range c.Networks() {
		out = append(out, n.CIDR)
	}
	return out
}

// networkCIDR is the CIDR of a network the fabric knows (endpoint.NetworkCIDR), for
// checking the endpoint records other hosts share.
func (c *Controller) networkCIDR(name string) (netip.Prefix, bool) {
	if name == network.Default {
		return c.s.Cluster, true
	}
	if c.nets == nil {
		return netip.Prefix{}, false
	}
	for _, n := range c.nets.View().Networks {
		if n.Name == name {
			return n.Subnet, true
		}
	}
	return netip.Prefix{}, false
}

// createWait bounds how long a create waits for this host's loop to serve the new network,
// so that an attach right after it finds it.
const createWait = 3 * time.Second

// CreateNetwork creates a network fabric-wide (the API's POST /v1/networks).
func (c *Controller) CreateNetwork(ctx context.Context, req api.NetworkCreateRequest) (api.Network, error) {
	if c.nets == nil {
		return api.Network{}, api.Errorf(api.ErrUnavailable, "this fabricd serves no networks besides %s", network.Default)
	}
	sub, err := netip.ParsePrefix(req.Subnet)
	if err != nil {
		return api.Network{}, api.Errorf(api.ErrInvalid, "--subnet %q is not a CIDR such as 10.50.0.0/16", req.Subnet)
	}
	n, err := c.nets.Create(ctx, network.Spec{Name: req.Name, Subnet: sub, HostBits: req.HostPrefix, Key: req.Key, Internal: req.Internal})
	if err != nil {
		return api.Network{}, err
	}
	// Served here once a sync has planned it (or the wait ends: it is created anyway).
	wctx, cancel := context.WithTimeout(ctx, createWait)
	defer cancel()
	for {
		c.Kick()
		if _, err := c.Network(n.Name); err == nil || wctx.Err() != nil {
			break
		}
		select {
		case <-wctx.Done():
		case <-time.After(20 * time.Millisecond):
		}
	}
	return c.InspectNetwork(ctx, n.Name)
}

// ListNetworks lists the networks (GET /v1/networks): default first, then by name, the
// conflicted ones too, with this host's slice and the endpoint counts.
func (c *Controller) ListNetworks(ctx context.Context) ([]api.Network, error) {
	here, fabricWide := c.endpointCounts()
	out := []api.Network{c.defaultNetworkAPI()}
	if c.nets != nil {
		view := c.nets.View()
		for _, n := range view.Networks {
			if n.Name == network.Default {
				continue
			}
			out = append(out, c.networkAPI(n, view))
		}
		// Conflicted definitions that lost to no other of their name are listed too.
		for name, why := range view.Conflicts {
			if !slices.ContainsFunc(out, func(a api.Network) bool { return a.Name == name }) {
				out = append(out, api.Network{Name: name, Conflict: why})
			}
		}
	}
	for k := range out {
		out[k].EndpointsHere, out[k].EndpointsFabric = here[out[k].Name], fabricWide[out[k].Name]
	}
	sort.SliceStable(out[1:], func(i, j int) bool { return out[1+i].Name < out[1+j].Name })
	return out, nil
}

// InspectNetwork is one network (GET /v1/networks/NAME) with every host's slice and the
// endpoints on it fabric-wide.
func (c *Controller) InspectNetwork(ctx context.Context, name string) (api.Network, error) {
	all, err := c.ListNetworks(ctx)
	if err != nil {
		return api.Network{}, err
	}
	i := slices.IndexFunc(all, func(a api.Network) bool { return a.Name == name })
	if i < 0 {
		return api.Network{}, api.Errorf(api.ErrNotFound, "no network %q", name)
	}
	a := all[i]
	if name == network.Default {
		c.mu.Lock()
		if c.claim.Subnet.IsValid() {
			a.Slices = append(a.Slices, api.NetworkSlice{Host: c.s.Name, Slice: c.claim.Subnet.String()})
		}
		for _, p := range c.peerView {
			if p.Subnet.IsValid() && !p.Gone(c.now(), c.s.DeadPeerGrace) {
				a.Slices = append(a.Slices, api.NetworkSlice{Host: p.Name, Slice: p.Subnet.String()})
			}
		}
		c.mu.Unlock()
	} else if c.nets != nil {
		for _, s := range c.nets.View().Slices[name] {
			a.Slices = append(a.Slices, api.NetworkSlice{Host: s.Node, Slice: s.Prefix.String()})
		}
	}
	sort.Slice(a.Slices, func(i, j int) bool { return a.Slices[i].Host < a.Slices[j].Host })
	for _, e := range c.allEndpoints() {
		if e.Network == name {
			a.Endpoints = append(a.Endpoints, e)
		}
	}
	return a, nil
}

// RemoveNetwork removes a network fabric-wide (POST /v1/networks/rm): refused while any
// host has an endpoint on it, unless force (those endpoints then lose the network).
func (c *Controller) RemoveNetwork(ctx context.Context, req api.NetworkRemoveRequest) (api.Network, error) {
	if req.Name == network.Default {
		return api.Network{}, api.Errorf(api.ErrInvalid, "the network %s (the cluster CIDR) cannot be removed", network.Default)
	}
	if c.nets == nil {
		return api.Network{}, api.Errorf(api.ErrNotFound, "no network %q", req.Name)
	}
	if !req.Force {
		byHost := map[string]int{}
		for _, e := range c.allEndpoints() {
			if e.Network == req.Name {
				byHost[e.Host]++
			}
		}
		if len(byHost) > 0 {
			hosts := make([]string, 0, len(byHost))
			for h, n := range byHost {
				hosts = append(hosts, fmt.Sprintf("%s (%d)", h, n))
			}
			sort.Strings(hosts)
			return api.Network{}, api.Errorf(api.ErrConflict, "network %s still has endpoints on %s; detach them first, or remove it with --force", req.Name, strings.Join(hosts, ", "))
		}
	}
	n, err := c.nets.Remove(ctx, req.Name)
	if err != nil {
		return api.Network{}, err
	}
	c.Kick()
	return api.Network{Name: n.Name, Subnet: n.Subnet.String(), HostPrefix: n.HostBits, Key: n.Key, Internal: n.Internal, Origin: n.Origin, Created: n.Created}, nil
}

// defaultNetworkAPI is the default network as the API shows it.
func (c *Controller) defaultNetworkAPI() api.Network {
	c.mu.Lock()
	defer c.mu.Unlock()
	a := api.Network{Name: network.Default, Subnet: c.s.Cluster.String(), HostPrefix: c.s.SubnetPrefix}
	if c.claim.Subnet.IsValid() {
		a.Slice = c.claim.Subnet.String()
		a.Gateway = fabric.Gateway(c.claim.Subnet).String()
	}
	return a
}

// networkAPI is network n of view as the API shows it.
func (c *Controller) networkAPI(n network.Network, view network.View) api.Network {
	a := api.Network{Name: n.Name, Subnet: n.Subnet.String(), HostPrefix: n.HostBits, Key: n.Key, Internal: n.Internal, Origin: n.Origin, Created: n.Created}
	if s, ok := view.Local[n.Name]; ok && s.IsValid() {
		a.Slice, a.Gateway = s.String(), fabric.Gateway(s).String()
	}
	a.Conflict = view.Conflicts[n.Name]
	return a
}

// allEndpoints are this host's endpoints (from the last sync) and the other hosts'.
func (c *Controller) allEndpoints() []api.Attachment {
	c.mu.Lock()
	local := slices.Clone(c.localEndpoints)
	c.mu.Unlock()
	mtu, _ := c.s.MTU()
	out := make([]api.Attachment, 0, len(local))
	for _, r := range local {
		out = append(out, r.API(c.s.Name, mtu))
	}
	return append(out, c.RemoteAttachments()...)
}

// endpointCounts counts the endpoints per network, on this host and fabric-wide.
func (c *Controller) endpointCounts() (here, fabricWide map[string]int) {
	here, fabricWide = map[string]int{}, map[string]int{}
	for _, e := range c.allEndpoints() {
		n := e.Network
		if n == "" {
			n = network.Default
		}
		if e.Host == c.s.Name {
			here[n]++
		}
		fabricWide[n]++
	}
	return here, fabricWide
}

package ovsdb

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/ovsfabric/ovsfabric/ovsdb/vswitchd"
)

// PortInfo is a port as OVSDB has it, with its interface (the first, for a bond).
type PortInfo struct {
	Name   string
	Bridge string
	// Type is Interface.type: "" for a kernel device such as a veth, "internal", "gre", ….
	Type    string
	Options map[string]string
	// ExternalIDs is the Port row's external_ids; IfaceExternalIDs the Interface row's. For
	// ports fabricd made both hold the same ovsfabric-* keys.
	ExternalIDs      map[string]string
	IfaceExternalIDs map[string]string
	Protected        bool
	// MAC is the requested Interface.mac ("" when unset); MACInUse what ovs-vswitchd reports.
	MAC      string
	MACInUse string
	// OfportRequest is Interface.ofport_request (0 when unset). Ofport is the OpenFlow port
	// number ovs-vswitchd assigned: 0 while not yet assigned, -1 when it failed (see Error).
	OfportRequest int
	Ofport        int
	// Error is Interface.error: why ovs-vswitchd could not set the interface up.
	Error string
}

// Owner is the port's external_ids:ovsfabric-owner ("" when nobody in the fabric claims it).
func (p PortInfo) Owner() string { return p.ExternalIDs[KeyOwner] }

// Role is the port's external_ids:ovsfabric-role.
func (p PortInfo) Role() string { return p.ExternalIDs[KeyRole] }

// BridgeInfo is a bridge as OVSDB has it.
type BridgeInfo struct {
	Name         string
	DatapathType string
	FailMode     string
	Protocols    []string
	ExternalIDs  map[string]string
	// Ports names every port of the bridge, whoever owns it, sorted.
	Ports []string
}

// Inventory is what one node owns in OVSDB: its bridges, and its ports on any bridge.
type Inventory struct {
	Bridges []BridgeInfo
	Ports   []PortInfo
}

// snapshot is one read of the bridge tables from the cache, indexed.
type snapshot struct {
	root         *vswitchd.OpenvSwitch
	bridges      map[string]*vswitchd.Bridge    // by name
	ports        map[string]*vswitchd.Port      // by UUID
	portByName   map[string]*vswitchd.Port      // by name
	ifaces       map[string]*vswitchd.Interface // by UUID
	ifaceByName  map[string]*vswitchd.Interface // by name
	bridgeOfPort map[string]string              // port UUID -> bridge name
}

// snapshot reads the cache, or returns the last read while no cache event or commit has
// happened since. It is shared: callers must not modify it. The root row is optional here;
// writers check it.
func (c *Client) snapshot(ctx context.Context) (*snapshot, error) {
	g := c.gen.Load()
	c.snapMu.Lock()
	if c.snap != nil && c.snapGen == g {
		s := c.snap
		c.snapMu.Unlock()
		return s, nil
	}
	c.snapMu.Unlock()
	s, err := c.readSnapshot(ctx)
	if err != nil {
		return nil, err
	}
	c.snapMu.Lock()
	c.snap, c.snapGen = s, g
	c.snapMu.Unlock()
	return s, nil
}

// readSnapshot copies the bridge tables out of the cache and indexes them.
func (c *Client) readSnapshot(ctx context.Context) (*snapshot, error) {
	var (
		rs []vswitchd.OpenvSwitch
		bs []vswitchd.Bridge
		ps []vswitchd.Port
		is []vswitchd.Interface
	)
	if err := c.ovs.List(ctx, &rs); err != nil {
		return nil, fmt.Errorf("read Open_vSwitch table: %w", err)
	}
	if err := c.ovs.List(ctx, &bs); err != nil {
		return nil, fmt.Errorf("read Bridge table: %w", err)
	}
	if err := c.ovs.List(ctx, &ps); err != nil {
		return nil, fmt.Errorf("read Port table: %w", err)
	}
	if err := c.ovs.List(ctx, &is); err != nil {
		return nil, fmt.Errorf("read Interface table: %w", err)
	}
	s := &snapshot{
		bridges: make(map[string]*vswitchd.Bridge, len(bs)),
		ports:   make(map[string]*vswitchd.Port, len(ps)), portByName: make(map[string]*vswitchd.Port, len(ps)),
		ifaces: make(map[string]*vswitchd.Interface, len(is)), ifaceByName: make(map[string]*vswitchd.Interface, len(is)),
		bridgeOfPort: make(map[string]string, len(ps)),
	}
	if len(rs) == 1 {
		s.root = &rs[0]
	}
	for i := range bs {
		s.bridges[bs[i].Name] = &bs[i]
		for _, p := range bs[i].Ports {
			s.bridgeOfPort[p] = bs[i].Name
		}
	}
	for i := range ps {
		s.ports[ps[i].UUID] = &ps[i]
		s.portByName[ps[i].Name] = &ps[i]
	}
	for i := range is {
		s.ifaces[is[i].UUID] = &is[i]
		s.ifaceByName[is[i].Name] = &is[i]
	}
	return s, nil
}

// needRoot returns the root row, or the error explaining its absence.
func (s *snapshot) needRoot(c *Client) (*vswitchd.OpenvSwitch, error) {
	if s.root == nil {
		return nil, fmt.Errorf("%w: the Open_vSwitch table at %s has no row (run `ovs-vsctl init`)", ErrNotFound, c.endpoint)
	}
	return s.root, nil
}

func (s *snapshot) iface(p *vswitchd.Port) *vswitchd.Interface {
	if p == nil || len(p.Interfaces) == 0 {
		return nil
	}
	// A bond's interfaces are a set: pick the lowest UUID so the choice is stable.
	return s.ifaces[slices.Min(p.Interfaces)]
}

func (s *snapshot) portInfo(p *vswitchd.Port) PortInfo {
	pi := PortInfo{Name: p.Name, Bridge: s.bridgeOfPort[p.UUID], ExternalIDs: cloneMap(p.ExternalIDs), Protected: p.Protected}
	if i := s.iface(p); i != nil {
		pi.Type, pi.Options, pi.IfaceExternalIDs = i.Type, cloneMap(i.Options), cloneMap(i.ExternalIDs)
		pi.MAC, pi.MACInUse, pi.Error = deref(i.MAC), deref(i.MACInUse), deref(i.Error)
		pi.Ofport, pi.OfportRequest = deref(i.Ofport), deref(i.OfportRequest)
	}
	return pi
}

func (s *snapshot) bridgeInfo(b *vswitchd.Bridge) BridgeInfo {
	bi := BridgeInfo{Name: b.Name, DatapathType: b.DatapathType, FailMode: deref(b.FailMode),
		Protocols: slices.Sorted(slices.Values(b.Protocols)), ExternalIDs: cloneMap(b.ExternalIDs)}
	for _, u := range b.Ports {
		if p := s.ports[u]; p != nil {
			bi.Ports = append(bi.Ports, p.Name)
		}
	}
	sort.Strings(bi.Ports)
	return bi
}

func deref[T any](p *T) T {
	var zero T
	if p == nil {
		return zero
	}
	return *p
}

// cloneMap copies m, giving an empty (not nil) map for nil so callers can index and compare.
func cloneMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	maps.Copy(out, m)
	return out
}

// Ports lists every port of bridge, whoever owns it, with its interface, sorted by name, from
// the cache. A missing bridge is ErrNotFound.
func (c *Client) Ports(ctx context.Context, bridge string) ([]PortInfo, error) {
	s, err := c.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	b := s.bridges[bridge]
	if b == nil {
		return nil, fmt.Errorf("bridge %s: %w", bridge, ErrNotFound)
	}
	out := make([]PortInfo, 0, len(b.Ports))
	for _, u := range b.Ports {
		if p := s.ports[u]; p != nil {
			out = append(out, s.portInfo(p))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Owned lists, from the cache, what owner made: the bridges whose external_ids name it as
// owner, and its ports on any bridge, each sorted by name. This is how a restarted fabricd
// finds its tunnels and container attachments, and what a cleanup would remove.
func (c *Client) Owned(ctx context.Context, owner string) (Inventory, error) {
	if err := validOwner(owner); err != nil {
		return Inventory{}, err
	}
	s, err := c.snapshot(ctx)
	if err != nil {
		return Inventory{}, err
	}
	var inv Inventory
	for _, b := range s.bridges {
		if b.ExternalIDs[KeyOwner] == owner {
			inv.Bridges = append(inv.Bridges, s.bridgeInfo(b))
		}
	}
	for _, p := range s.ports {
		if p.ExternalIDs[KeyOwner] == owner && s.bridgeOfPort[p.UUID] != "" {
			inv.Ports = append(inv.Ports, s.portInfo(p))
		}
	}
	sort.Slice(inv.Bridges, func(i, j int) bool { return inv.Bridges[i].Name < inv.Bridges[j].Name })
	sort.Slice(inv.Ports, func(i, j int) bool { return inv.Ports[i].Name < inv.Ports[j].Name })
	return inv, nil
}

// WaitPort waits until ovs-vswitchd has numbered port name of bridge (ofport > 0, so it is
// in the datapath) and returns it. It re-reads the cache on every OVSDB change event rather
// than polling. A port ovs-vswitchd reports it cannot add is an error at once; so is the
// end of ctx.
func (c *Client) WaitPort(ctx context.Context, bridge, name string) (PortInfo, error) {
	for {
		tick := c.nextTick() // taken before the read, so no event in between is missed
		ports, err := c.Ports(ctx, bridge)
		if err != nil {
			return PortInfo{}, err
		}
		if i := sort.Search(len(ports), func(i int) bool { return ports[i].Name >= name }); i < len(ports) && ports[i].Name == name {
			switch p := ports[i]; {
			case p.Ofport > 0:
				return p, nil
			case p.Error != "":
				return p, fmt.Errorf("ovs-vswitchd cannot add port %s: %s", name, p.Error)
			}
		}
		select {
		case <-ctx.Done():
			return PortInfo{}, fmt.Errorf("port %s has no OpenFlow port number: %w", name, ctx.Err())
		case <-tick:
		}
	}
}

package ovsdb

import (
	"context"
	"fmt"
	"maps"
	"net/netip"
	"sort"
	"strconv"

	"github.com/ovn-org/libovsdb/model"
	libovsdb "github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovsfabric/ovsfabric/ovsdb/vswitchd"
)

// BridgeSpec is a bridge fabricd wants.
type BridgeSpec struct {
	Name string
	// DatapathType is "system" (kernel) or "netdev" (userspace).
	DatapathType string
	// FailMode is "standalone", "secure", or "" (OVS default, standalone).
	FailMode    string
	Owner       string
	ExternalIDs map[string]string
}

// PortSpec is one port (with its one interface) fabricd wants on a bridge.
type PortSpec struct {
	Name string
	// Type is the interface type: "" (a kernel device such as a veth), "internal", "gre",
	// "vxlan", …
	Type    string
	Options map[string]string
	Owner   string
	// Role is the value of external_ids:ovsfabric-role.
	Role        string
	ExternalIDs map[string]string
	// Protected ports never forward to each other (split horizon between tunnels).
	Protected bool
}

// TunnelSpec is one tunnel port toward a peer.
type TunnelSpec struct {
	Name     string
	Type     string // gre or vxlan
	RemoteIP netip.Addr
	// Key is options:key: "" (none), "flow", or a number.
	Key     string
	Options map[string]string
	// Peer is the peer node's name, recorded as external_ids:ovsfabric-peer.
	Peer        string
	Protected   bool
	ExternalIDs map[string]string
}

// Result says what a reconcile changed.
type Result struct {
	Added, Updated, Removed []string
	// Transacted is whether a transaction was sent at all.
	Transacted bool
}

// PortInfo is a port as OVSDB has it, with its (first) interface.
type PortInfo struct {
	Name        string
	Bridge      string
	Type        string
	Options     map[string]string
	ExternalIDs map[string]string
	Protected   bool
	Ofport      int
	MACInUse    string
	// Error is the interface's error column: why ovs-vswitchd could not set it up.
	Error string
}

func (t TunnelSpec) port(owner string) PortSpec {
	opts := map[string]string{"remote_ip": t.RemoteIP.String()}
	if t.Key != "" {
		opts["key"] = t.Key
	}
	maps.Copy(opts, t.Options)
	ids := map[string]string{KeyPeer: t.Peer}
	maps.Copy(ids, t.ExternalIDs)
	return PortSpec{Name: t.Name, Type: t.Type, Options: opts, Owner: owner, Role: RoleTunnel, ExternalIDs: ids, Protected: t.Protected}
}

// ids is the complete external_ids of the port's rows: the spec's plus ownership.
func (p PortSpec) ids() map[string]string {
	out := map[string]string{}
	maps.Copy(out, p.ExternalIDs)
	out[KeyOwner] = p.Owner
	out[KeyRole] = p.Role
	for k, v := range out {
		if v == "" {
			delete(out, k)
		}
	}
	return out
}

func (p PortSpec) validate() error {
	if err := validName("port", p.Name); err != nil {
		return err
	}
	return validOwner(p.Owner)
}

// snapshot is a consistent read of the bridge tables from the cache.
type snapshot struct {
	bridges map[string]*vswitchd.Bridge // by name
	ports   map[string]*vswitchd.Port   // by UUID
	ifaces  map[string]*vswitchd.Interface
	portOf  map[string]string // port UUID -> bridge name
}

func (c *Client) snapshot(ctx context.Context) (*snapshot, error) {
	var bs []vswitchd.Bridge
	var ps []vswitchd.Port
	var is []vswitchd.Interface
	if err := c.ovs.List(ctx, &bs); err != nil {
		return nil, fmt.Errorf("list bridges: %w", err)
	}
	if err := c.ovs.List(ctx, &ps); err != nil {
		return nil, fmt.Errorf("list ports: %w", err)
	}
	if err := c.ovs.List(ctx, &is); err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	s := &snapshot{bridges: map[string]*vswitchd.Bridge{}, ports: map[string]*vswitchd.Port{}, ifaces: map[string]*vswitchd.Interface{}, portOf: map[string]string{}}
	for i := range bs {
		s.bridges[bs[i].Name] = &bs[i]
		for _, p := range bs[i].Ports {
			s.portOf[p] = bs[i].Name
		}
	}
	for i := range ps {
		s.ports[ps[i].UUID] = &ps[i]
	}
	for i := range is {
		s.ifaces[is[i].UUID] = &is[i]
	}
	return s, nil
}

// portByName finds a port of bridge by name.
func (s *snapshot) portByName(bridge, name string) *vswitchd.Port {
	b := s.bridges[bridge]
	if b == nil {
		return nil
	}
	for _, u := range b.Ports {
		if p := s.ports[u]; p != nil && p.Name == name {
			return p
		}
	}
	return nil
}

// anyPortNamed finds a port by name on any bridge (names are unique per switch).
func (s *snapshot) anyPortNamed(name string) *vswitchd.Port {
	for _, p := range s.ports {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func (s *snapshot) iface(p *vswitchd.Port) *vswitchd.Interface {
	if p == nil || len(p.Interfaces) == 0 {
		return nil
	}
	return s.ifaces[p.Interfaces[0]]
}

// namedUUID makes a valid OVSDB named-uuid for a row created in this transaction.
func namedUUID(kind string, i int) string { return "ovsfabric_" + kind + "_" + strconv.Itoa(i) }

// EnsureBridge creates the bridge with its local internal port (as `ovs-vsctl add-br` does)
// or updates the columns that differ. Nothing is sent when nothing differs. A bridge of the
// same name that another owner made is used as it is, not changed.
func (c *Client) EnsureBridge(ctx context.Context, spec BridgeSpec) error {
	if err := validName("bridge", spec.Name); err != nil {
		return err
	}
	if err := validOwner(spec.Owner); err != nil {
		return err
	}
	ids := map[string]string{}
	maps.Copy(ids, spec.ExternalIDs)
	ids[KeyOwner], ids[KeyRole] = spec.Owner, RoleBridge
	s, err := c.snapshot(ctx)
	if err != nil {
		return err
	}
	var failMode *string
	if spec.FailMode != "" {
		fm := spec.FailMode
		failMode = &fm
	}
	if b := s.bridges[spec.Name]; b != nil {
		if b.ExternalIDs[KeyOwner] != spec.Owner {
			return fmt.Errorf("bridge %s: %w (external_ids:%s=%q)", spec.Name, ErrNotOwned, KeyOwner, b.ExternalIDs[KeyOwner])
		}
		if b.DatapathType == spec.DatapathType && maps.Equal(b.ExternalIDs, ids) && ptrEq(b.FailMode, failMode) {
			return nil
		}
		row := &vswitchd.Bridge{UUID: b.UUID, DatapathType: spec.DatapathType, ExternalIDs: ids, FailMode: failMode}
		ops, err := c.ovs.Where(row).Update(row, &row.DatapathType, &row.ExternalIDs, &row.FailMode)
		if err != nil {
			return fmt.Errorf("update bridge %s: %w", spec.Name, err)
		}
		if _, err := c.transact(ctx, "update bridge "+spec.Name, ops); err != nil {
			return err
		}
		return c.waitCache(ctx, "update bridge "+spec.Name, func() bool {
			s, err := c.snapshot(ctx)
			return err == nil && s.bridges[spec.Name] != nil && s.bridges[spec.Name].DatapathType == spec.DatapathType && maps.Equal(s.bridges[spec.Name].ExternalIDs, ids)
		})
	}
	if p := s.anyPortNamed(spec.Name); p != nil {
		return invalid("bridge %s: a port of that name exists already", spec.Name)
	}
	root, err := c.root(ctx)
	if err != nil {
		return err
	}
	iface := &vswitchd.Interface{UUID: namedUUID("iface", 0), Name: spec.Name, Type: "internal", ExternalIDs: ids}
	port := &vswitchd.Port{UUID: namedUUID("port", 0), Name: spec.Name, Interfaces: []string{iface.UUID}, ExternalIDs: ids}
	br := &vswitchd.Bridge{UUID: namedUUID("bridge", 0), Name: spec.Name, DatapathType: spec.DatapathType, FailMode: failMode, Ports: []string{port.UUID}, ExternalIDs: ids}
	ops, err := c.ovs.Create(iface, port, br)
	if err != nil {
		return fmt.Errorf("create bridge %s: %w", spec.Name, err)
	}
	rootRow := &vswitchd.OpenvSwitch{UUID: root.UUID}
	mut, err := c.ovs.Where(rootRow).Mutate(rootRow, model.Mutation{Field: &rootRow.Bridges, Mutator: libovsdb.MutateOperationInsert, Value: []string{br.UUID}})
	if err != nil {
		return fmt.Errorf("add bridge %s to Open_vSwitch: %w", spec.Name, err)
	}
	if _, err := c.transact(ctx, "create bridge "+spec.Name, append(ops, mut...)); err != nil {
		return err
	}
	return c.waitCache(ctx, "create bridge "+spec.Name, func() bool {
		s, err := c.snapshot(ctx)
		return err == nil && s.portByName(spec.Name, spec.Name) != nil
	})
}

func ptrEq(a, b *string) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}

// EnsurePort creates the port (and its interface) on bridge or updates the columns that
// differ; nothing is sent when nothing differs. A port of that name that another owner made
// is an error and is not changed.
func (c *Client) EnsurePort(ctx context.Context, bridge string, spec PortSpec) error {
	if err := validName("bridge", bridge); err != nil {
		return err
	}
	if err := spec.validate(); err != nil {
		return err
	}
	_, err := c.reconcile(ctx, bridge, spec.Owner, []PortSpec{spec}, func(*vswitchd.Port) bool { return false })
	return err
}

// DeletePort deletes the port named name from bridge when owner owns it. A missing port is not
// an error; a port owned by someone else is.
func (c *Client) DeletePort(ctx context.Context, bridge, name, owner string) error {
	if err := validName("port", name); err != nil {
		return err
	}
	if err := validOwner(owner); err != nil {
		return err
	}
	_, err := c.reconcile(ctx, bridge, owner, nil, func(p *vswitchd.Port) bool { return p.Name == name })
	return err
}

// ReconcileTunnels makes the bridge's set of tunnel ports owned by owner exactly desired, in
// one transaction that adds, updates and deletes only what differs, and sends nothing when
// nothing differs. Ports owned by others are never touched; a desired name held by one is an
// error before anything is sent.
func (c *Client) ReconcileTunnels(ctx context.Context, bridge, owner string, desired []TunnelSpec) (Result, error) {
	if err := validName("bridge", bridge); err != nil {
		return Result{}, err
	}
	if err := validOwner(owner); err != nil {
		return Result{}, err
	}
	specs := make([]PortSpec, 0, len(desired))
	seen := map[string]bool{}
	for _, t := range desired {
		if err := t.validate(); err != nil {
			return Result{}, err
		}
		if seen[t.Name] {
			return Result{}, invalid("tunnel %s is listed twice", t.Name)
		}
		seen[t.Name] = true
		specs = append(specs, t.port(owner))
	}
	return c.reconcile(ctx, bridge, owner, specs, func(p *vswitchd.Port) bool {
		return p.ExternalIDs[KeyRole] == RoleTunnel && !seen[p.Name]
	})
}

// reconcile ensures every spec on bridge and deletes the owner's ports for which stale says
// so, in one transaction.
func (c *Client) reconcile(ctx context.Context, bridge, owner string, specs []PortSpec, stale func(*vswitchd.Port) bool) (Result, error) {
	s, err := c.snapshot(ctx)
	if err != nil {
		return Result{}, err
	}
	br := s.bridges[bridge]
	if br == nil {
		if len(specs) == 0 {
			return Result{}, nil // nothing to delete from a bridge that is not there
		}
		return Result{}, fmt.Errorf("bridge %s: %w", bridge, ErrNotFound)
	}
	var res Result
	var ops []libovsdb.Operation
	var newPorts, oldPorts []string
	for i, spec := range specs {
		ids := spec.ids()
		p := s.anyPortNamed(spec.Name)
		if p == nil {
			iface := &vswitchd.Interface{UUID: namedUUID("iface", i), Name: spec.Name, Type: spec.Type, Options: spec.Options, ExternalIDs: ids}
			port := &vswitchd.Port{UUID: namedUUID("port", i), Name: spec.Name, Interfaces: []string{iface.UUID}, ExternalIDs: ids, Protected: spec.Protected}
			o, err := c.ovs.Create(iface, port)
			if err != nil {
				return Result{}, fmt.Errorf("create port %s: %w", spec.Name, err)
			}
			ops = append(ops, o...)
			newPorts = append(newPorts, port.UUID)
			res.Added = append(res.Added, spec.Name)
			continue
		}
		if p.ExternalIDs[KeyOwner] != owner {
			return Result{}, fmt.Errorf("port %s: %w (external_ids:%s=%q)", spec.Name, ErrNotOwned, KeyOwner, p.ExternalIDs[KeyOwner])
		}
		if s.portOf[p.UUID] != bridge {
			return Result{}, invalid("port %s is on bridge %s, not %s", spec.Name, s.portOf[p.UUID], bridge)
		}
		iface := s.iface(p)
		if iface == nil {
			return Result{}, fmt.Errorf("port %s has no interface", spec.Name)
		}
		updated := false
		if p.Protected != spec.Protected || !maps.Equal(p.ExternalIDs, ids) {
			row := &vswitchd.Port{UUID: p.UUID, Protected: spec.Protected, ExternalIDs: ids}
			o, err := c.ovs.Where(row).Update(row, &row.Protected, &row.ExternalIDs)
			if err != nil {
				return Result{}, fmt.Errorf("update port %s: %w", spec.Name, err)
			}
			ops, updated = append(ops, o...), true
		}
		if iface.Type != spec.Type || !mapsEqualNil(iface.Options, spec.Options) || !maps.Equal(iface.ExternalIDs, ids) {
			row := &vswitchd.Interface{UUID: iface.UUID, Type: spec.Type, Options: spec.Options, ExternalIDs: ids}
			o, err := c.ovs.Where(row).Update(row, &row.Type, &row.Options, &row.ExternalIDs)
			if err != nil {
				return Result{}, fmt.Errorf("update interface %s: %w", spec.Name, err)
			}
			ops, updated = append(ops, o...), true
		}
		if updated {
			res.Updated = append(res.Updated, spec.Name)
		}
	}
	for _, u := range br.Ports {
		p := s.ports[u]
		if p == nil || p.ExternalIDs[KeyOwner] != owner || !stale(p) {
			continue
		}
		oldPorts = append(oldPorts, p.UUID)
		res.Removed = append(res.Removed, p.Name)
		o, err := c.ovs.Where(&vswitchd.Port{UUID: p.UUID}).Delete()
		if err != nil {
			return Result{}, fmt.Errorf("delete port %s: %w", p.Name, err)
		}
		ops = append(ops, o...)
		for _, iu := range p.Interfaces {
			o, err := c.ovs.Where(&vswitchd.Interface{UUID: iu}).Delete()
			if err != nil {
				return Result{}, fmt.Errorf("delete interface of %s: %w", p.Name, err)
			}
			ops = append(ops, o...)
		}
	}
	if len(ops) == 0 {
		return res, nil
	}
	brRow := &vswitchd.Bridge{UUID: br.UUID}
	var muts []model.Mutation
	if len(oldPorts) > 0 {
		muts = append(muts, model.Mutation{Field: &brRow.Ports, Mutator: libovsdb.MutateOperationDelete, Value: oldPorts})
	}
	if len(newPorts) > 0 {
		muts = append(muts, model.Mutation{Field: &brRow.Ports, Mutator: libovsdb.MutateOperationInsert, Value: newPorts})
	}
	if len(muts) > 0 {
		o, err := c.ovs.Where(brRow).Mutate(brRow, muts...)
		if err != nil {
			return Result{}, fmt.Errorf("mutate ports of %s: %w", bridge, err)
		}
		// The bridge mutation goes first: rows deleted later in the transaction must no longer
		// be referenced when it commits.
		ops = append(o, ops...)
	}
	what := fmt.Sprintf("reconcile ports of %s (+%d ~%d -%d)", bridge, len(res.Added), len(res.Updated), len(res.Removed))
	if _, err := c.transact(ctx, what, ops); err != nil {
		return Result{}, err
	}
	res.Transacted = true
	sort.Strings(res.Added)
	sort.Strings(res.Updated)
	sort.Strings(res.Removed)
	want := map[string]bool{}
	for _, spec := range specs {
		want[spec.Name] = true
	}
	return res, c.waitCache(ctx, what, func() bool {
		s, err := c.snapshot(ctx)
		if err != nil {
			return false
		}
		for n := range want {
			if s.portByName(bridge, n) == nil {
				return false
			}
		}
		for _, n := range res.Removed {
			if s.portByName(bridge, n) != nil {
				return false
			}
		}
		for _, n := range res.Updated {
			p := s.portByName(bridge, n)
			for _, spec := range specs {
				if spec.Name == n && (p == nil || !maps.Equal(p.ExternalIDs, spec.ids()) || s.iface(p) == nil || !mapsEqualNil(s.iface(p).Options, spec.Options) || s.iface(p).Type != spec.Type) {
					return false
				}
			}
		}
		return true
	})
}

// mapsEqualNil treats nil and empty maps as equal (OVSDB does).
func mapsEqualNil(a, b map[string]string) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	return maps.Equal(a, b)
}

// Ports lists the ports of bridge with their first interface, sorted by name.
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
		p := s.ports[u]
		if p == nil {
			continue
		}
		pi := PortInfo{Name: p.Name, Bridge: bridge, ExternalIDs: maps.Clone(p.ExternalIDs), Protected: p.Protected}
		if i := s.iface(p); i != nil {
			pi.Type, pi.Options = i.Type, maps.Clone(i.Options)
			if i.Ofport != nil {
				pi.Ofport = *i.Ofport
			}
			if i.MACInUse != nil {
				pi.MACInUse = *i.MACInUse
			}
			if i.Error != nil {
				pi.Error = *i.Error
			}
		}
		out = append(out, pi)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// Owned lists the ports owner made on any bridge.
func (c *Client) Owned(ctx context.Context, owner string) ([]PortInfo, error) {
	s, err := c.snapshot(ctx)
	if err != nil {
		return nil, err
	}
	var out []PortInfo
	names := make([]string, 0, len(s.bridges))
	for n := range s.bridges {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		ps, err := c.Ports(ctx, n)
		if err != nil {
			return nil, err
		}
		for _, p := range ps {
			if p.ExternalIDs[KeyOwner] == owner {
				out = append(out, p)
			}
		}
	}
	return out, nil
}

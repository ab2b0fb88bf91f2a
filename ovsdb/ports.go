package ovsdb

import (
	"context"
	"fmt"
	"maps"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	libovsdb "github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovsfabric/ovsfabric/ovsdb/vswitchd"
)

// PortSpec is one port, with its one interface of the same name, that fabricd wants on a
// bridge: the gateway's internal port, or the host end of a container's veth.
//
// The spec is the whole truth for the columns it covers: Interface type, options, mac and
// ofport_request, and Port protected are set exactly as given (a zero value clears the
// column). external_ids are merged: every ovsfabric-* key is exactly the spec's (Owner, Role and
// ExternalIDs, a key with an empty value counting as absent); other keys are added or updated
// when the spec has them and otherwise left as they are.
type PortSpec struct {
	// Name of the port and of its interface; for a veth, the host-side device name.
	Name string
	// Type is the interface type: "" (a kernel device such as a veth), "internal", …; tunnel
	// types are refused here (ReconcileTunnels makes tunnels).
	Type string
	// Options is Interface.options.
	Options map[string]string
	// Owner is the node name recorded as external_ids:ovsfabric-owner. Required.
	Owner string
	// Role is external_ids:ovsfabric-role: RoleGateway, RoleContainer, or another role that
	// is not RoleBridge or RoleTunnel. Required.
	Role string
	// ExternalIDs are further external_ids, written to both the Port and the Interface row
	// (KeyContainer, KeyNetNS, KeyIP, KeyMAC, KeyIfName, … for a container).
	ExternalIDs map[string]string
	// MAC is Interface.mac, the address ovs-vswitchd gives an internal port ("" lets OVS pick).
	MAC string
	// Protected ports never forward to each other (Port.protected).
	Protected bool
	// OfportRequest is Interface.ofport_request, 1..65279 (0: OVS chooses the OpenFlow port).
	OfportRequest int
}

// TunnelSpec is one tunnel port toward a peer, made by ReconcileTunnels as a Port and an
// Interface of type Type with options:remote_ip=RemoteIP.
type TunnelSpec struct {
	// Name of the port and interface, at most 15 bytes (see fabric's tunnel naming).
	Name string
	// Type is "gre" or "vxlan".
	Type string
	// RemoteIP is the peer's underlay address (options:remote_ip). An IPv4-mapped IPv6
	// address is written as plain IPv4.
	RemoteIP netip.Addr
	// RemoteFlow makes a flow-based port, options:remote_ip=flow, instead of RemoteIP (which
	// must then be unset): one port for every peer, whose flows set tun_dst. Peer may be
	// empty then.
	RemoteFlow bool
	// Key is options:key: "" (none), "flow", or a decimal key (VNI up to 2^24-1 for VXLAN).
	Key string
	// Options are further interface options (dst_port, local_ip, tos, csum, …); not remote_ip
	// or key, which have their own fields.
	Options map[string]string
	// Peer is the peer node's name, recorded as external_ids:ovsfabric-peer.
	Peer string
	// Protected ports never forward to each other: set it on every tunnel for split horizon
	// in a full mesh.
	Protected bool
	// ExternalIDs are further external_ids for the Port and Interface rows.
	ExternalIDs map[string]string
}

// Result says what a reconcile changed, by port name, each list sorted.
type Result struct {
	Added, Updated, Removed []string
	// Transacted is whether a transaction was sent at all; false when nothing differed.
	Transacted bool
}

// portWant is the normalised desired state of one port and its interface.
type portWant struct {
	name, role, ifType, mac string
	ids, options            map[string]string
	protected               bool
	ofportReq               int
}

// managedIDs is the complete set of external_ids a spec asks for: its own plus owner and role,
// without empty values.
func managedIDs(extra map[string]string, owner, role string) map[string]string {
	out := make(map[string]string, len(extra)+2)
	for k, v := range extra {
		if v != "" {
			out[k] = v
		}
	}
	out[KeyOwner], out[KeyRole] = owner, role
	return out
}

// staleKeys are the ovsfabric-* keys of have that want no longer has.
func staleKeys(have, want map[string]string) []string {
	var out []string
	for k := range have {
		if _, ok := want[k]; !ok && strings.HasPrefix(k, KeyPrefix) {
			out = append(out, k)
		}
	}
	return out
}

func (p PortSpec) want() portWant {
	w := portWant{name: p.Name, role: p.Role, ifType: p.Type, ids: managedIDs(p.ExternalIDs, p.Owner, p.Role),
		options: maps.Clone(p.Options), protected: p.Protected, ofportReq: p.OfportRequest}
	if p.MAC != "" {
		hw, _ := net.ParseMAC(p.MAC) // validated
		w.mac = hw.String()
	}
	return w
}

func (t TunnelSpec) want(owner string) portWant {
	opts := make(map[string]string, len(t.Options)+2)
	maps.Copy(opts, t.Options)
	opts["remote_ip"] = t.RemoteIP.Unmap().String()
	if t.RemoteFlow {
		opts["remote_ip"] = "flow"
	}
	if t.Key != "" {
		opts["key"] = t.Key
	}
	ids := map[string]string{KeyPeer: t.Peer}
	maps.Copy(ids, t.ExternalIDs)
	return portWant{name: t.Name, role: RoleTunnel, ifType: t.Type, ids: managedIDs(ids, owner, RoleTunnel),
		options: opts, protected: t.Protected}
}

// tunnelIdentity is what makes two tunnel interfaces the same to ovs-vswitchd, which refuses
// the second of two tunnels with equal type, remote_ip, key and other options.
func (w portWant) tunnelIdentity() string {
	keys := slices.Sorted(maps.Keys(w.options))
	var b strings.Builder
	b.WriteString(w.ifType)
	for _, k := range keys {
		fmt.Fprintf(&b, " %s=%s", k, w.options[k])
	}
	return b.String()
}

// EnsurePort creates the port (with its interface) on bridge, or updates the columns that
// differ from spec, in one transaction; nothing is sent when nothing differs. A port of that
// name that carries no owner or another owner's is ErrNotOwned, one of another role
// ErrConflict, both before anything is sent. A port of this owner found on another bridge is
// moved to this one.
func (c *Client) EnsurePort(ctx context.Context, bridge string, spec PortSpec) error {
	if err := validName("bridge", bridge); err != nil {
		return err
	}
	if err := spec.validate(); err != nil {
		return err
	}
	_, err := c.reconcile(ctx, "ensure port "+spec.Name+" on "+bridge, bridge, spec.Owner, []portWant{spec.want()}, nil)
	return err
}

// EnsurePorts is EnsurePort for several ports of one owner in one transaction (so
// ovs-vswitchd reconfigures the bridge once for all of them): all or nothing. The specs must
// name distinct ports and request distinct OpenFlow port numbers; every spec and collision
// is checked before anything is sent.
func (c *Client) EnsurePorts(ctx context.Context, bridge string, specs []PortSpec) error {
	if err := validName("bridge", bridge); err != nil {
		return err
	}
	if len(specs) == 0 {
		return nil
	}
	wants := make([]portWant, 0, len(specs))
	names := make(map[string]bool, len(specs))
	ofports := make(map[int]string, len(specs))
	for _, spec := range specs {
		if err := spec.validate(); err != nil {
			return err
		}
		if spec.Owner != specs[0].Owner {
			return invalid("ports %s and %s have different owners", specs[0].Name, spec.Name)
		}
		if names[spec.Name] {
			return invalid("port %s is listed twice", spec.Name)
		}
		names[spec.Name] = true
		if n := spec.OfportRequest; n != 0 {
			if other, dup := ofports[n]; dup {
				return invalid("ports %s and %s both request OpenFlow port %d", other, spec.Name, n)
			}
			ofports[n] = spec.Name
		}
		wants = append(wants, spec.want())
	}
	what := fmt.Sprintf("ensure %d ports on %s", len(specs), bridge)
	_, err := c.reconcile(ctx, what, bridge, specs[0].Owner, wants, nil)
	return err
}

// DeletePort deletes the port name (and its interface) from bridge when owner owns it. A port
// that is not on bridge is not an error (deleting is idempotent); a port without owner's
// external_ids:ovsfabric-owner is ErrNotOwned and is left alone, as is a bridge's local port
// (ErrConflict).
func (c *Client) DeletePort(ctx context.Context, bridge, name, owner string) error {
	if err := validName("bridge", bridge); err != nil {
		return err
	}
	if err := validName("port", name); err != nil {
		return err
	}
	if err := validOwner(owner); err != nil {
		return err
	}
	s, err := c.snapshot(ctx)
	if err != nil {
		return err
	}
	p := s.portByName[name]
	if p == nil || s.bridgeOfPort[p.UUID] != bridge {
		return nil
	}
	if err := checkOwner("port", p.Name, p.ExternalIDs, owner); err != nil {
		return err
	}
	if p.ExternalIDs[KeyRole] == RoleBridge || name == bridge {
		return fmt.Errorf("port %s is the local port of bridge %s: %w", name, bridge, ErrConflict)
	}
	_, err = c.reconcileWith(ctx, s, "delete port "+name+" from "+bridge, bridge, owner, nil,
		func(q *vswitchd.Port) bool { return q.UUID == p.UUID })
	return err
}

// ReconcileTunnels makes the set of tunnel ports (external_ids:ovsfabric-role=tunnel) that owner
// has on bridge exactly desired, in one transaction that adds, updates and deletes only what
// differs (Port and Interface rows and one mutation of Bridge.ports). When nothing differs no
// transaction is sent. desired nil removes all of owner's tunnels from the bridge; a missing
// bridge is then not an error.
//
// Everything is checked before anything is sent: names, types, remote IPs, keys, duplicate
// names or duplicate tunnel configurations (ovs-vswitchd refuses the second of two tunnels to
// the same endpoint with the same key and options), and collisions: a desired name held by a
// port without owner's ownership is ErrNotOwned, by one of owner's non-tunnel ports ErrConflict.
// Ports owner does not own are never touched.
func (c *Client) ReconcileTunnels(ctx context.Context, bridge, owner string, desired []TunnelSpec) (Result, error) {
	if err := validName("bridge", bridge); err != nil {
		return Result{}, err
	}
	if err := validOwner(owner); err != nil {
		return Result{}, err
	}
	wants := make([]portWant, 0, len(desired))
	byName := make(map[string]bool, len(desired))
	byIdentity := make(map[string]string, len(desired))
	for _, t := range desired {
		if err := t.validate(owner); err != nil {
			return Result{}, err
		}
		if byName[t.Name] {
			return Result{}, invalid("tunnel %s is listed twice", t.Name)
		}
		byName[t.Name] = true
		w := t.want(owner)
		if other, dup := byIdentity[w.tunnelIdentity()]; dup {
			return Result{}, invalid("tunnels %s and %s have the same type, remote IP, key and options; ovs-vswitchd would refuse one", other, t.Name)
		}
		byIdentity[w.tunnelIdentity()] = t.Name
		wants = append(wants, w)
	}
	what := fmt.Sprintf("reconcile %d tunnels on %s", len(desired), bridge)
	return c.reconcile(ctx, what, bridge, owner, wants, func(p *vswitchd.Port) bool {
		return p.ExternalIDs[KeyRole] == RoleTunnel && !byName[p.Name]
	})
}

// checkOwner refuses a row whose owner is not owner.
func checkOwner(kind, name string, ids map[string]string, owner string) error {
	switch o, ok := ids[KeyOwner]; {
	case !ok:
		return fmt.Errorf("%s %s exists and has no external_ids:%s (made by someone else): %w", kind, name, KeyOwner, ErrNotOwned)
	case o != owner:
		return fmt.Errorf("%s %s exists and is owned by %q, not %q: %w", kind, name, o, owner, ErrNotOwned)
	}
	return nil
}

// reconcile reads the cache and applies reconcileWith.
func (c *Client) reconcile(ctx context.Context, what, bridge, owner string, wants []portWant, stale func(*vswitchd.Port) bool) (Result, error) {
	s, err := c.snapshot(ctx)
	if err != nil {
		return Result{}, err
	}
	return c.reconcileWith(ctx, s, what, bridge, owner, wants, stale)
}

// portPlan pairs a wanted port with what exists of it.
type portPlan struct {
	want  portWant
	port  *vswitchd.Port
	iface *vswitchd.Interface
}

// reconcileWith makes every wanted port exist on bridge as wanted and deletes the ports of
// bridge that owner owns and stale reports, in one transaction, or none when nothing differs.
// Every collision is checked before any operation is built.
func (c *Client) reconcileWith(ctx context.Context, s *snapshot, what, bridge, owner string, wants []portWant, stale func(*vswitchd.Port) bool) (Result, error) {
	br := s.bridges[bridge]
	if br == nil {
		if len(wants) == 0 {
			return Result{}, nil // nothing to delete from a bridge that is not there
		}
		return Result{}, fmt.Errorf("%s: bridge %s: %w", what, bridge, ErrNotFound)
	}
	plans := make([]portPlan, len(wants))
	for k, w := range wants {
		plans[k].want = w
		p := s.portByName[w.name]
		if p == nil {
			if i := s.ifaceByName[w.name]; i != nil {
				return Result{}, fmt.Errorf("%s: an interface named %s exists in another port: %w", what, w.name, ErrConflict)
			}
			continue
		}
		if err := checkOwner("port", w.name, p.ExternalIDs, owner); err != nil {
			return Result{}, fmt.Errorf("%s: %w", what, err)
		}
		if r := p.ExternalIDs[KeyRole]; r != w.role {
			return Result{}, fmt.Errorf("%s: port %s exists as role %q, want %q: %w", what, w.name, r, w.role, ErrConflict)
		}
		i := s.iface(p)
		if len(p.Interfaces) != 1 || i == nil || i.Name != w.name {
			return Result{}, fmt.Errorf("%s: port %s is not a single interface of the same name: %w", what, w.name, ErrConflict)
		}
		plans[k].port, plans[k].iface = p, i
	}

	var (
		res                     Result
		guards, writes, deletes []libovsdb.Operation
		inserts, removes        []string            // port UUIDs for bridge.ports
		moves                   map[string][]string // other bridge -> port UUIDs leaving it
	)
	for k, pl := range plans {
		w := pl.want
		if pl.port == nil {
			iface := &vswitchd.Interface{UUID: namedUUID("iface", k), Name: w.name, Type: w.ifType, Options: w.options,
				ExternalIDs: w.ids, MAC: ptrIf(w.mac != "", w.mac), OfportRequest: ptrIf(w.ofportReq != 0, w.ofportReq)}
			port := &vswitchd.Port{UUID: namedUUID("port", k), Name: w.name, Interfaces: []string{iface.UUID},
				ExternalIDs: w.ids, Protected: w.protected}
			ops, err := c.ovs.Create(iface, port)
			if err != nil {
				return Result{}, fmt.Errorf("%s: build insert of %s: %w", what, w.name, err)
			}
			writes = append(writes, ops...)
			inserts = append(inserts, port.UUID)
			res.Added = append(res.Added, w.name)
			continue
		}
		ops, err := c.portUpdates(pl.port, pl.iface, w)
		if err != nil {
			return Result{}, fmt.Errorf("%s: %w", what, err)
		}
		if on := s.bridgeOfPort[pl.port.UUID]; on != bridge {
			if on != "" {
				if moves == nil {
					moves = map[string][]string{}
				}
				moves[on] = append(moves[on], pl.port.UUID)
			}
			inserts = append(inserts, pl.port.UUID)
		} else if len(ops) == 0 {
			continue
		}
		guards = append(guards, waitRow(vswitchd.PortTable, pl.port.UUID, w.name), waitRow(vswitchd.InterfaceTable, pl.iface.UUID, w.name))
		writes = append(writes, ops...)
		res.Updated = append(res.Updated, w.name)
	}
	if stale != nil {
		for _, u := range br.Ports {
			p := s.ports[u]
			if p == nil || p.ExternalIDs[KeyOwner] != owner || !stale(p) {
				continue
			}
			removes = append(removes, u)
			res.Removed = append(res.Removed, p.Name)
			// Port and Interface are not root tables: OVSDB would collect them once unreferenced,
			// but deleting them explicitly does not depend on that.
			deletes = append(deletes, libovsdb.Operation{Op: libovsdb.OperationDelete, Table: vswitchd.PortTable, Where: uuidIs(u)})
			for _, iu := range p.Interfaces {
				deletes = append(deletes, libovsdb.Operation{Op: libovsdb.OperationDelete, Table: vswitchd.InterfaceTable, Where: uuidIs(iu)})
			}
		}
	}
	if len(writes)+len(deletes)+len(inserts) == 0 {
		return res, nil
	}
	root, err := s.needRoot(c)
	if err != nil {
		return Result{}, fmt.Errorf("%s: %w", what, err)
	}
	brRow := &vswitchd.Bridge{UUID: br.UUID}
	if len(inserts) > 0 {
		// New ports must land on a bridge that still exists, or OVSDB would drop them silently.
		guards = append(guards, waitRow(vswitchd.BridgeTable, br.UUID, bridge))
	}
	if len(inserts)+len(removes) > 0 {
		muts, err := c.ovs.Where(brRow).Mutate(brRow, setMutations(&brRow.Ports, inserts, removes)...)
		if err != nil {
			return Result{}, fmt.Errorf("%s: build mutation of %s ports: %w", what, bridge, err)
		}
		writes = append(writes, muts...)
	}
	for _, on := range slices.Sorted(maps.Keys(moves)) {
		other := &vswitchd.Bridge{UUID: s.bridges[on].UUID}
		muts, err := c.ovs.Where(other).Mutate(other, setMutations(&other.Ports, nil, moves[on])...)
		if err != nil {
			return Result{}, fmt.Errorf("%s: build mutation of %s ports: %w", what, on, err)
		}
		writes = append(writes, muts...)
	}
	ops := slices.Concat(guards, writes, deletes)
	sort.Strings(res.Added)
	sort.Strings(res.Updated)
	sort.Strings(res.Removed)
	what = fmt.Sprintf("%s (+%d ~%d -%d)", what, len(res.Added), len(res.Updated), len(res.Removed))
	if err := c.commit(ctx, what, root.UUID, ops); err != nil {
		return Result{}, err
	}
	res.Transacted = true
	c.log.Debug("ports reconciled", "bridge", bridge, "added", res.Added, "updated", res.Updated, "removed", res.Removed)
	return res, nil
}

// portUpdates returns the operations that make an existing port and its interface match w,
// touching only the columns that differ; none when nothing differs.
func (c *Client) portUpdates(p *vswitchd.Port, i *vswitchd.Interface, w portWant) ([]libovsdb.Operation, error) {
	var ops []libovsdb.Operation
	prow := &vswitchd.Port{UUID: p.UUID, Protected: w.protected}
	if p.Protected != w.protected {
		o, err := c.ovs.Where(prow).Update(prow, &prow.Protected)
		if err != nil {
			return nil, fmt.Errorf("build update of port %s: %w", w.name, err)
		}
		ops = append(ops, o...)
	}
	if muts := mapMutations(&prow.ExternalIDs, p.ExternalIDs, w.ids, staleKeys(p.ExternalIDs, w.ids)); len(muts) > 0 {
		o, err := c.ovs.Where(prow).Mutate(prow, muts...)
		if err != nil {
			return nil, fmt.Errorf("build external_ids mutation of port %s: %w", w.name, err)
		}
		ops = append(ops, o...)
	}
	irow := &vswitchd.Interface{UUID: i.UUID, Type: w.ifType, Options: w.options,
		MAC: ptrIf(w.mac != "", w.mac), OfportRequest: ptrIf(w.ofportReq != 0, w.ofportReq)}
	var fields []any
	if i.Type != w.ifType {
		fields = append(fields, &irow.Type)
	}
	if !mapsEqual(i.Options, w.options) {
		fields = append(fields, &irow.Options)
	}
	if deref(i.MAC) != w.mac {
		fields = append(fields, &irow.MAC)
	}
	if deref(i.OfportRequest) != w.ofportReq {
		fields = append(fields, &irow.OfportRequest)
	}
	if len(fields) > 0 {
		o, err := c.ovs.Where(irow).Update(irow, fields...)
		if err != nil {
			return nil, fmt.Errorf("build update of interface %s: %w", w.name, err)
		}
		ops = append(ops, o...)
	}
	if muts := mapMutations(&irow.ExternalIDs, i.ExternalIDs, w.ids, staleKeys(i.ExternalIDs, w.ids)); len(muts) > 0 {
		o, err := c.ovs.Where(irow).Mutate(irow, muts...)
		if err != nil {
			return nil, fmt.Errorf("build external_ids mutation of interface %s: %w", w.name, err)
		}
		ops = append(ops, o...)
	}
	return ops, nil
}

// waitRow is a guard operation: the transaction aborts unless the row uuid still exists with
// that name (OVSDB "wait" with timeout 0).
func waitRow(table, uuid, name string) libovsdb.Operation {
	zero := 0
	return libovsdb.Operation{
		Op: libovsdb.OperationWait, Table: table, Timeout: &zero, Where: uuidIs(uuid),
		Columns: []string{"name"}, Until: string(libovsdb.WaitConditionEqual), Rows: []libovsdb.Row{{"name": name}},
	}
}

// namedUUID names a row created in this transaction (an OVSDB <id>: letters, digits, '_').
func namedUUID(kind string, i int) string { return "ovsfabric_" + kind + "_" + strconv.Itoa(i) }

func ptrIf[T any](ok bool, v T) *T {
	if !ok {
		return nil
	}
	return &v
}

// mapsEqual treats nil and empty maps as equal, as OVSDB does.
func mapsEqual(a, b map[string]string) bool {
	return len(a) == len(b) && maps.Equal(a, b)
}

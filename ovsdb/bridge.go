package ovsdb

import (
	"context"
	"fmt"
	"slices"

	"github.com/ovn-org/libovsdb/model"
	libovsdb "github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovsfabric/ovsfabric/ovsdb/vswitchd"
)

// BridgeSpec is a bridge fabricd wants. Like PortSpec it is the whole truth for the columns it
// covers (datapath_type, fail_mode, protocols: a zero value means OVS's default and clears the
// column) and merges external_ids (ovsfabric-* keys exact, others left alone).
type BridgeSpec struct {
	Name string
	// DatapathType is "system" (kernel), "netdev" (userspace), or "" (OVS's default, system).
	DatapathType string
	// FailMode is "standalone", "secure", or "" (OVS's default, standalone).
	FailMode string
	// Owner is the node name recorded as external_ids:ovsfabric-owner. Required.
	Owner string
	// ExternalIDs are further external_ids for the Bridge row.
	ExternalIDs map[string]string
	// Protocols are the OpenFlow versions to enable ("OpenFlow13", …); empty for OVS's default.
	Protocols []string
}

// EnsureBridge makes the bridge exist as spec says, in one transaction, or sends nothing when
// nothing differs.
//
// A missing bridge is created as `ovs-vsctl add-br` does: the Bridge row, its local port and
// internal interface of the same name (both tagged with the owner and RoleBridge), and the
// bridge added to Open_vSwitch.bridges by mutation. An existing bridge of this owner gets only
// its differing columns updated (and its local port or its place in Open_vSwitch.bridges back,
// should either be missing). An existing bridge without this owner is ErrNotOwned and is not
// changed; an operator can hand a bridge over with
// `ovs-vsctl br-set-external-id BRIDGE ovsfabric-owner NODE`.
func (c *Client) EnsureBridge(ctx context.Context, spec BridgeSpec) error {
	if err := spec.validate(); err != nil {
		return err
	}
	what := "ensure bridge " + spec.Name
	ids := managedIDs(spec.ExternalIDs, spec.Owner, RoleBridge)
	protocols := slices.Sorted(slices.Values(spec.Protocols))
	s, err := c.snapshot(ctx)
	if err != nil {
		return err
	}
	root, err := s.needRoot(c)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	b := s.bridges[spec.Name]
	if b == nil {
		if p := s.portByName[spec.Name]; p != nil {
			return fmt.Errorf("%s: a port of that name exists on bridge %q: %w", what, s.bridgeOfPort[p.UUID], ErrConflict)
		}
		if i := s.ifaceByName[spec.Name]; i != nil {
			return fmt.Errorf("%s: an interface of that name exists: %w", what, ErrConflict)
		}
		return c.createBridge(ctx, what, root.UUID, spec, ids, protocols)
	}
	if err := checkOwner("bridge", spec.Name, b.ExternalIDs, spec.Owner); err != nil {
		return fmt.Errorf("%s: %w (hand it over with `ovs-vsctl br-set-external-id %s %s %s`)", what, err, spec.Name, KeyOwner, spec.Owner)
	}

	var guards, ops []libovsdb.Operation
	brow := &vswitchd.Bridge{UUID: b.UUID, DatapathType: spec.DatapathType, FailMode: ptrIf(spec.FailMode != "", spec.FailMode), Protocols: protocols}
	var fields []any
	if b.DatapathType != spec.DatapathType {
		fields = append(fields, &brow.DatapathType)
	}
	if deref(b.FailMode) != spec.FailMode {
		fields = append(fields, &brow.FailMode)
	}
	if !slices.Equal(slices.Sorted(slices.Values(b.Protocols)), protocols) {
		fields = append(fields, &brow.Protocols)
	}
	if len(fields) > 0 {
		o, err := c.ovs.Where(brow).Update(brow, fields...)
		if err != nil {
			return fmt.Errorf("%s: build update: %w", what, err)
		}
		ops = append(ops, o...)
	}
	if muts := mapMutations(&brow.ExternalIDs, b.ExternalIDs, ids, staleKeys(b.ExternalIDs, ids)); len(muts) > 0 {
		o, err := c.ovs.Where(brow).Mutate(brow, muts...)
		if err != nil {
			return fmt.Errorf("%s: build external_ids mutation: %w", what, err)
		}
		ops = append(ops, o...)
	}
	if lp := s.portByName[spec.Name]; lp == nil {
		// The local port was deleted by hand; without it the bridge has no device.
		port, o, err := c.localPort(spec.Name, ids)
		if err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
		ops = append(ops, o...)
		m, err := c.ovs.Where(brow).Mutate(brow, setMutations(&brow.Ports, []string{port}, nil)...)
		if err != nil {
			return fmt.Errorf("%s: build mutation of ports: %w", what, err)
		}
		ops = append(ops, m...)
	}
	if !slices.Contains(root.Bridges, b.UUID) {
		rootRow := &vswitchd.OpenvSwitch{UUID: root.UUID}
		m, err := c.ovs.Where(rootRow).Mutate(rootRow, setMutations(&rootRow.Bridges, []string{b.UUID}, nil)...)
		if err != nil {
			return fmt.Errorf("%s: build mutation of Open_vSwitch bridges: %w", what, err)
		}
		ops = append(ops, m...)
	}
	if len(ops) == 0 {
		return nil
	}
	guards = append(guards, waitRow(vswitchd.BridgeTable, b.UUID, spec.Name))
	return c.commit(ctx, what, root.UUID, append(guards, ops...))
}

// createBridge inserts the bridge with its local port and adds it to Open_vSwitch.bridges.
func (c *Client) createBridge(ctx context.Context, what, rootUUID string, spec BridgeSpec, ids map[string]string, protocols []string) error {
	port, ops, err := c.localPort(spec.Name, ids)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	br := &vswitchd.Bridge{UUID: namedUUID("bridge", 0), Name: spec.Name, DatapathType: spec.DatapathType,
		FailMode: ptrIf(spec.FailMode != "", spec.FailMode), Protocols: protocols, Ports: []string{port}, ExternalIDs: ids}
	o, err := c.ovs.Create(br)
	if err != nil {
		return fmt.Errorf("%s: build insert: %w", what, err)
	}
	ops = append(ops, o...)
	rootRow := &vswitchd.OpenvSwitch{UUID: rootUUID}
	m, err := c.ovs.Where(rootRow).Mutate(rootRow, setMutations(&rootRow.Bridges, []string{br.UUID}, nil)...)
	if err != nil {
		return fmt.Errorf("%s: build mutation of Open_vSwitch bridges: %w", what, err)
	}
	return c.commit(ctx, what, rootUUID, append(ops, m...))
}

// localPort builds the inserts of a bridge's local port and its internal interface, returning
// the port's named UUID.
func (c *Client) localPort(name string, ids map[string]string) (string, []libovsdb.Operation, error) {
	i := &vswitchd.Interface{UUID: namedUUID("local_iface", 0), Name: name, Type: "internal", ExternalIDs: ids}
	p := &vswitchd.Port{UUID: namedUUID("local_port", 0), Name: name, Interfaces: []string{i.UUID}, ExternalIDs: ids}
	ops, err := c.ovs.Create(i, p)
	if err != nil {
		return "", nil, fmt.Errorf("build insert of local port %s: %w", name, err)
	}
	return p.UUID, ops, nil
}

// setMutations returns the mutations that insert add into and delete del from a set column of
// UUIDs, leaving every other member alone.
func setMutations(field *[]string, add, del []string) []model.Mutation {
	var muts []model.Mutation
	if len(del) > 0 {
		muts = append(muts, model.Mutation{Field: field, Mutator: libovsdb.MutateOperationDelete, Value: del})
	}
	if len(add) > 0 {
		muts = append(muts, model.Mutation{Field: field, Mutator: libovsdb.MutateOperationInsert, Value: add})
	}
	return muts
}

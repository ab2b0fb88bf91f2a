package ovsdb

import (
	"context"
	"fmt"

	"github.com/ovn-org/libovsdb/model"
	libovsdb "github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovsfabric/ovsfabric/ovsdb/vswitchd"
)

// OtherConfigFlowRestoreWait is the Open_vSwitch other_config key that makes a starting
// ovs-vswitchd leave the datapath's flows alone and add no default (NORMAL) flow until it is
// removed. OVS's own ovs-ctl sets it around `restart` and `force-reload-kmod` and removes it
// after ovs-save has put the saved flows back.
const OtherConfigFlowRestoreWait = "flow-restore-wait"

// KeyRestoreWait, in the Open_vSwitch row's external_ids, marks a flow-restore-wait set by
// `fabricctl ovs prepare-restart`; its value is the identity of the ovs-vswitchd that served
// the bridge then (flows.OFCtl.ServerID). fabricd removes the flag only when this mark is
// there and a different ovs-vswitchd has since received fabricd's whole pipeline; a flag
// without the mark (ovs-ctl's, an operator's) is left to whoever set it.
const KeyRestoreWait = "ovsfabric-restore-wait"

// RestoreWait is the state of flow-restore-wait in the Open_vSwitch row.
type RestoreWait struct {
	// Set is true when other_config:flow-restore-wait is "true".
	Set bool
	// Mark is external_ids:ovsfabric-restore-wait ("" when absent): the ovs-vswitchd that
	// served the bridge when fabricctl set the flag.
	Mark string
}

// FlowRestoreWait reads flow-restore-wait and fabricd's mark from the cache.
func (c *Client) FlowRestoreWait(ctx context.Context) (RestoreWait, error) {
	r, err := c.root(ctx)
	if err != nil {
		return RestoreWait{}, err
	}
	return RestoreWait{Set: r.OtherConfig[OtherConfigFlowRestoreWait] == "true", Mark: r.ExternalIDs[KeyRestoreWait]}, nil
}

// PrepareRestart sets flow-restore-wait and fabricd's mark (mark: the identity of the
// ovs-vswitchd running now) in one transaction, before a planned restart of ovs-vswitchd.
// Keys others wrote are left alone.
func (c *Client) PrepareRestart(ctx context.Context, mark string) error {
	if mark == "" {
		return invalid("prepare restart: empty ovs-vswitchd identity (is ovs-vswitchd running?)")
	}
	r, err := c.root(ctx)
	if err != nil {
		return err
	}
	row := &vswitchd.OpenvSwitch{UUID: r.UUID}
	muts := mapMutations(&row.OtherConfig, r.OtherConfig, map[string]string{OtherConfigFlowRestoreWait: "true"}, nil)
	muts = append(muts, mapMutations(&row.ExternalIDs, r.ExternalIDs, map[string]string{KeyRestoreWait: mark}, nil)...)
	if len(muts) == 0 {
		return nil
	}
	ops, err := c.ovs.Where(row).Mutate(row, muts...)
	if err != nil {
		return fmt.Errorf("set flow-restore-wait: build mutation: %w", err)
	}
	return c.commit(ctx, "set flow-restore-wait", r.UUID, ops)
}

// ClearRestoreWait removes flow-restore-wait=true and fabricd's mark, in one transaction
// that applies only while the mark still has the value mark: when someone prepared another
// restart meanwhile (another mark), nothing is removed. A flag someone set to another value
// stays too.
func (c *Client) ClearRestoreWait(ctx context.Context, mark string) error {
	r, err := c.root(ctx)
	if err != nil {
		return err
	}
	row := &vswitchd.OpenvSwitch{UUID: r.UUID}
	ours := model.Condition{Field: &row.ExternalIDs, Function: libovsdb.ConditionIncludes, Value: map[string]string{KeyRestoreWait: mark}}
	ops, err := c.ovs.WhereAll(row, ours).Mutate(row,
		model.Mutation{Field: &row.OtherConfig, Mutator: libovsdb.MutateOperationDelete, Value: map[string]string{OtherConfigFlowRestoreWait: "true"}},
		model.Mutation{Field: &row.ExternalIDs, Mutator: libovsdb.MutateOperationDelete, Value: map[string]string{KeyRestoreWait: mark}},
	)
	if err != nil {
		return fmt.Errorf("clear flow-restore-wait: build mutation: %w", err)
	}
	return c.commit(ctx, "clear flow-restore-wait", r.UUID, ops)
}

// Package endpoint manages this host's endpoints: one container interface on one network
// (today the network "default", the cluster CIDR). It attaches, detaches and publishes
// (veth and address through host plumbing, the OVS port through OVSDB, DNAT through the
// NAT table), reserves addresses for attaches in flight, prunes endpoints whose container
// is gone, and checks the endpoint lists peers gossip.
//
// The endpoint Record, with its one codec to and from an OVS port's external_ids, is the
// typed form every other package reads: the reconcile loop decodes its port snapshot with
// Records, and hands that snapshot to Manager.Sync.
//
// The package depends on ovsdb, host plumbing (netplumb) and NAT (natrules) through narrow
// interfaces, and on the reconcile loop only through the Loop interface it defines.
package endpoint

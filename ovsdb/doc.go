// Package ovsdb is everything fabricd says to Open vSwitch's database, through
// ovn-org/libovsdb and the typed models of the Open_vSwitch schema in ovsdb/vswitchd.
//
// It offers a narrow set of idempotent operations: ensure a bridge, ensure or delete one port,
// reconcile the complete set of a node's tunnel ports in one transaction, read back what
// exists or what a node owns, and keep fabricd's own keys in the Open_vSwitch table.
//
// # Ownership
//
// Everything created carries external_ids:ovsfabric-owner=<node> and ovsfabric-role (bridge,
// gateway, tunnel, container) on its Bridge, or on both its Port and Interface rows. Rows
// without this node as owner are never changed or deleted: a wanted name held by one is an
// error (ErrNotOwned) before anything is sent. `ovs-vsctl list Interface` shows why each row
// exists.
//
// # Reads, writes, idempotence
//
// A Client keeps a cache of the Open_vSwitch, Bridge, Port and Interface tables (the columns
// fabricd reads) through an OVSDB monitor. Every operation validates its input (ErrInvalid),
// reads the cache, compares exactly and sends one transaction that changes only the columns
// that differ, or no transaction at all when nothing differs, so a level-triggered reconcile
// loop can call it as often as it likes; Client.Transactions counts what was sent. Set and
// map columns (Bridge.ports, Open_vSwitch.bridges, external_ids) are changed by mutation, so
// concurrent writers' members and keys survive, and each transaction guards the rows it
// updates with OVSDB "wait" operations, so a cache that was stale makes the server abort the
// whole transaction (ErrStale) instead of applying half of it. A write returns once the
// cache shows it: an immediate second call sees its effect and sends nothing.
//
// # Use from a controller
//
//	sw, err := ovsdb.Dial(ctx, "unix:/run/openvswitch/db.sock", ovsdb.WithLogger(log))
//	...
//	defer sw.Close()
//	err = sw.EnsureBridge(ctx, ovsdb.BridgeSpec{Name: "br-int", DatapathType: "netdev", FailMode: "standalone", Owner: node})
//	err = sw.EnsurePort(ctx, "br-int", ovsdb.PortSpec{Name: "fabric0", Type: "internal", Owner: node, Role: ovsdb.RoleGateway})
//	res, err := sw.ReconcileTunnels(ctx, "br-int", node, tunnels) // the complete desired set
//	for range sw.Changes() { /* reconcile again: someone (maybe an operator) changed OVSDB */ }
//
// Changes fires for this client's own writes too; the reconcile that follows finds nothing
// to do and sends nothing. Tunnel and container ports fabricd made are found again after a
// restart with Ports or Owned, from their external_ids.
//
// # Differences from ovs-vsctl
//
// Writes bump Open_vSwitch.next_cfg as ovs-vsctl does, but do not wait for ovs-vswitchd to
// apply them (like ovs-vsctl --no-wait): ofport, mac_in_use and error appear in PortInfo once
// ovs-vswitchd has filled them in, and Changes fires when it does.
package ovsdb

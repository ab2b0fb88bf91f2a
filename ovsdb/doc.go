// Package ovsdb is everything fabricd says to Open vSwitch's database, through
// ovn-org/libovsdb and the typed models of the Open_vSwitch schema in ovsdb/vswitchd.
//
// It offers a narrow set of idempotent operations: ensure a bridge, ensure or delete one port,
// reconcile the complete set of a node's tunnel ports in one transaction, read back ports, and
// keep fabricd's own keys in the Open_vSwitch table. Each compares the wanted state with the
// client's cache first and sends no transaction when nothing differs, so a reconcile loop can
// call it as often as it likes.
//
// Everything created carries external_ids:ovsfabric-owner=<node> and ovsfabric-role on both
// its Port and Interface rows; rows owned by anyone else are never changed or deleted, so
// `ovs-vsctl show` and `ovs-vsctl list Interface` explain what fabricd made and why.
package ovsdb

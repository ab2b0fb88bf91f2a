// Package netplumb is everything fabricd does to the Linux kernel network stack through
// netlink: the container veth (Attach/Detach), addresses and link state of the gateway port,
// the routes toward peer subnets, IPv4 forwarding, TX checksum offload, and underlay
// detection.
//
// # Which network namespace
//
// Host-side functions work in the network namespace of the calling OS thread, "the current
// netns": the root namespace on a real machine, a lab host's namespace in tests. A caller that
// switches namespaces must lock its goroutine to its OS thread (runtime.LockOSThread, or run
// inside ns.NetNS.Do of containernetworking/plugins/pkg/ns) for the whole call. The container
// side is reached by netns path (/var/run/netns/NAME, /proc/PID/ns/net): netlink requests go
// through a netlink socket opened inside that namespace (netlink.NewHandleAt), and the one
// ioctl that needs it (ethtool) runs on a locked thread that enters the namespace through
// pkg/ns and leaves it again. No function changes the namespace of the caller's thread.
//
// # Ownership
//
// Routes written here carry the protocol number RouteProtocol, and ReconcileRoutes lists,
// replaces and deletes only routes with that protocol in the main table, so routes made by
// anyone else (the kernel's connected routes, DHCP, an operator, another CNI) are never
// touched. ReconcileAddrs removes only addresses inside the scopes it is given, on the one
// device it is given. Detach deletes only veth devices.
//
// # Errors
//
// Every error says what was being done to which object. Requests that are refused before the
// kernel is changed because the caller asked for something impossible (bad names, addresses,
// MTU, missing namespace, a name already taken) match ErrInvalid (see IsInvalid); name
// conflicts also match ErrExists; a missing link matches ErrLinkNotFound.
package netplumb

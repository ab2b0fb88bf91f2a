// Package wireguard is fabricd's WireGuard link between hosts: a node key pair kept on disk
// (LoadOrCreateKey), and a Device that runs one WireGuard interface — kernel WireGuard when
// the kernel has it, else userspace wireguard-go on a TUN, in a device process of its own
// that outlives its opener (ProcessOptions, Serve: cmd/ovsfabric-wg) or embedded — configured level-
// triggered (Device.Set applies only what differs, through wgctrl in both cases) and reported
// by Device.Status in the terms of `wg show`.
//
// The package knows nothing of gossip, routes or OVS: the controller decides the peers (public
// key, endpoint, allowed IPs from gossip) and the routes toward the interface.
package wireguard

// Package lab builds a multi-host Open vSwitch lab on one machine: every "host" is a network
// namespace running its own ovsdb-server and ovs-vswitchd (own database, sockets, pidfiles,
// logs and run directory under the lab directory), joined by an underlay — a Linux bridge in a
// lab-owned namespace with one veth per host. For the userspace datapath each host's underlay
// NIC sits on an OVS bridge br-phy that holds the host's underlay address, because userspace
// tunnels route through an OVS bridge. Containers are network namespaces too.
//
// Everything the lab makes is recorded in <dir>/state.json as it is made, so Down removes it
// all — killing only the processes it started, by PID, a host's private dockerd with its
// containers, mounts and cgroups included (Host.StartDocker) — even after the harness crashed.
// The lab never touches the root namespace's addresses, routes or firewall.
package lab

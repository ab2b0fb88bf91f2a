// Package flows is ovsfabric's routed OpenFlow pipeline on br-int: Plan turns what a host
// knows (its gateway port, and for each network it serves: the network's CIDR, tunnel key,
// this host's slice and gateway address, the local containers, and the peers' slices) into
// the complete set of OpenFlow flows ovsfabric wants on the bridge, and Reconcile makes the
// bridge hold exactly those flows by changing only what differs.
//
// # The pipeline
//
// Table 0 admits from a container only IPv4 and ARP from its own address and MAC (port
// security) and puts the packet's network (its tunnel key) in RegNetwork; what the gateway
// port sends gets the network its destination lies in. Traffic from a local container to a
// peer's slice of its network is routed inside Open vSwitch: it gets the network's tunnel key,
// this host's gateway MAC as Ethernet source and RouterMAC as destination, one TTL decrement,
// and leaves through that peer's tunnel port. Traffic arriving from a tunnel with network X's
// key for a local address of X is delivered straight to its port. Containers' ARP requests
// for their network's gateway (and the host kernel's for peer slices) are answered by OVS
// itself. Nothing but IPv4 for a local address is accepted from a tunnel, and nothing but
// routed IPv4 is ever sent into one. IPv4 for destinations outside every network goes to the
// gateway port, where the host kernel NATs it, except from an internal network; everything
// else stays on the host, switched by network and destination MAC among the network's ports.
// Nothing routes, switches, floods or answers ARP from one network into another.
// docs/pipeline.md describes every table, priority and register.
//
// # Ownership
//
// Every flow carries a cookie whose top 16 bits are CookieBase (0x0fab): ovsfabric's flows
// are found with the cookie mask CookieMask, and flows with any other cookie (the bridge's own
// priority-0 NORMAL flow, an operator's) are never changed or deleted. The next 16 bits say
// what the flow is for (see Purpose), and the low 32 bits identify the flow: a hash of its
// table, priority and match. That makes the cookie a stable name for a flow, so Reconcile can
// delete exactly one flow by its cookie.
//
// # Reconcile
//
// Reconcile dumps ovsfabric's flows, compares them with the desired ones (normalized: match
// fields in any order, the action spelling ovs-ofctl prints) and applies only the difference,
// deletions and additions together in one atomic OpenFlow bundle. Nothing is flushed and
// reloaded, so a restarting fabricd never drops a packet, and a reconcile whose input did not
// change sends nothing at all.
//
// Plan is pure and deterministic; Reconcile works against the narrow Switch interface, which
// OFCtl implements with github.com/digitalocean/go-openvswitch (ovs-ofctl).
package flows

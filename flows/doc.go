// Package flows is ovsfabric's routed OpenFlow pipeline on br-int: Plan turns what a host
// knows (its gateway port, subnet, local containers, and one tunnel per peer subnet) into the
// complete set of OpenFlow flows ovsfabric wants on the bridge, and Reconcile makes the bridge
// hold exactly those flows by changing only what differs.
//
// # The pipeline
//
// Traffic from a local container to a peer's subnet is routed inside Open vSwitch: its
// Ethernet source becomes this host's gateway MAC and its destination RouterMAC, the TTL is
// decremented once, and it leaves through that peer's tunnel port. Traffic arriving from a
// tunnel for a local address is delivered straight to its port with the gateway MAC as source
// and the container's MAC as destination. Containers' ARP requests for the gateway (and the
// host kernel's for addresses in peer subnets) are answered by OVS itself. Nothing but IPv4
// for a local address is accepted from a tunnel, and nothing but routed IPv4 is ever sent
// into one: no ARP and no broadcast crosses a tunnel. IPv4 for destinations outside the
// cluster CIDR goes to the gateway port, where the host kernel NATs it; everything else stays
// on the host, switched by destination MAC among the known local ports. docs/pipeline.md
// describes every table and priority.
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

// Package natrules owns the nftables table that fabricd uses for NAT and for
// the isolation of its networks in the host kernel: outbound masquerade for
// container traffic leaving the fabric's networks, published ports (DNAT from a
// host address and port to a container address and port), and a forward
// filter that keeps the host from routing between two networks.
//
// It replaces rules people used to type by hand, such as
//
//	iptables -t nat -A POSTROUTING -s 10.244.0.0/16 ! -d 10.244.0.0/16 -j MASQUERADE
//	iptables -t nat -A PREROUTING -p tcp --dport 8080 -j DNAT --to 10.244.3.2:80
//	iptables -A FORWARD -s 10.244.0.0/16 -d 10.50.0.0/16 -j DROP
//
// with one table of family ip (by default "ovsfabric") that this package
// creates, rewrites and deletes as a whole. It never reads or changes any other
// table, so rules written by iptables-nft, Docker, firewalld or an operator
// keep working side by side.
//
// # Layout of the table
//
// For two networks, default (10.244.0.0/16, this host's slice 10.244.3.0/24)
// and the internal red (10.60.0.0/16), Masquerade on and two published ports,
// the table looks like this (`nft list table ip ovsfabric`, counters omitted):
//
//	table ip ovsfabric {
//		chain prerouting {
//			type nat hook prerouting priority dstnat; policy accept;
//			fib daddr type local jump publish comment "ovsfabric: published ports, traffic to this host"
//		}
//		chain output {
//			type nat hook output priority -100; policy accept;
//			ip daddr != 127.0.0.0/8 fib daddr type local jump publish comment "ovsfabric: published ports, connections from this host"
//		}
//		chain publish {
//			tcp dport 8080 dnat to 10.244.3.2:80 comment "ovsfabric: publish tcp *:8080 -> web1 10.244.3.2:80"
//			ip daddr 172.30.0.11 udp dport 5353 dnat to 10.244.3.3:53 comment "ovsfabric: publish udp 172.30.0.11:5353 -> dns 10.244.3.3:53"
//		}
//		chain postrouting {
//			type nat hook postrouting priority srcnat; policy accept;
//			ct status dnat ip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 masquerade comment "ovsfabric: network default: hairpin: masquerade DNATed traffic within 10.244.0.0/16"
//			ip daddr 10.60.0.0/16 return comment "ovsfabric: network red: traffic to 10.60.0.0/16 keeps its source"
//			ip daddr 10.244.0.0/16 return comment "ovsfabric: network default: traffic to 10.244.0.0/16 keeps its source"
//			ip saddr 10.244.3.0/24 masquerade comment "ovsfabric: network default: masquerade 10.244.3.0/24 to outside the networks"
//		}
//		chain forward {
//			type filter hook forward priority filter; policy accept;
//			ip saddr 10.60.0.0/16 ip daddr 10.60.0.0/16 accept comment "ovsfabric: network red: forward within 10.60.0.0/16"
//			ip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 accept comment "ovsfabric: network default: forward within 10.244.0.0/16"
//			ip saddr 10.60.0.0/16 drop comment "ovsfabric: network red: internal: drop forwarding out of 10.60.0.0/16"
//			ip daddr 10.60.0.0/16 drop comment "ovsfabric: network red: internal: drop forwarding into 10.60.0.0/16"
//			ip saddr 10.244.0.0/16 goto between comment "ovsfabric: network default: check forwarding out of 10.244.0.0/16"
//		}
//		chain between {
//			ip daddr 10.60.0.0/16 drop comment "ovsfabric: network red: drop forwarding into 10.60.0.0/16 from another network"
//			ip daddr 10.244.0.0/16 drop comment "ovsfabric: network default: drop forwarding into 10.244.0.0/16 from another network"
//		}
//	}
//
// Networks appear in the order of their CIDRs; every per-network chain grows by
// a constant number of rules per network (no sets, so the table holds nothing
// but chains and rules), and a packet walks each chain at most once.
//
// Masquerade: only the slice of this host (Network.Slice) of a network that is
// not internal is masqueraded, and only toward destinations outside every
// network's CIDR: traffic between hosts of one network keeps its source. A
// network without a slice on this host gets no masquerade rule but all of its
// isolation rules.
//
// Isolation: the forward chain accepts traffic within one network, drops
// anything an internal network would send out or receive from outside, and
// sends the rest of the traffic of a network to the chain between, which drops
// it when it is headed into another network. What is left (a network to the
// outside, the outside into a network that is not internal) is accepted. The
// filter holds whatever the routes and OVS do: the host kernel never forwards
// one network's packet into another, also not after a published port's DNAT
// (a container reaches published ports of its own network, by hairpin, and of
// no other).
//
// Published ports are matched only for destination addresses that are local
// to the host (fib daddr type local); when Publish.HostAddr is set, only for
// that address. Connections to 127.0.0.0/8 are not translated: DNAT of
// loopback traffic to a container would need route_localnet and is
// deliberately not supported. A published port must target an address in a
// network that is not internal.
//
// Hairpin: when a container reaches a published port (its own or one of
// another container of its network), the DNATed packet goes from one address
// of the network to another and the reply would bypass the host's conntrack
// entry. The hairpin rule of each network with a published port therefore
// masquerades connections that were DNATed (by any table) and stay within the
// network; the server then sees the host's gateway address toward it (e.g.
// 10.244.3.1). It is present independently of Masquerade. Clients outside the
// fabric keep their own address: the reply is routed back through the host
// (the containers' default gateway), where conntrack reverses the DNAT.
//
// # Reconcile
//
// Reconcile is level-triggered and idempotent. It computes the desired table,
// reads what the kernel has, and if both match (table flags, chain set with
// type, hook, priority and policy, and every rule's expressions and comment in
// order, ignoring counter values; nothing else in the table) it writes
// nothing. Otherwise it rewrites the table in one nftables transaction: flush
// every chain of the table, delete chains that should not exist or whose type
// or hook is wrong, (re)create chains, add all rules, commit. If someone added
// sets, maps, stateful objects or flowtables to the table, the transaction
// deletes and recreates the table instead. Either way packets see the old or
// the new rule set, never an empty one.
//
// All functions operate in the network namespace of the calling OS thread;
// to target another namespace, call them inside ns.Do (containernetworking
// plugins pkg/ns) or with the thread switched by vishvananda/netns.
// Reconcile, Read and Delete for the same table in the same namespace must not
// run concurrently with each other (fabricd's single reconcile loop satisfies
// that).
package natrules

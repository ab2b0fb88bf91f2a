// Package natrules owns the nftables table that fabricd uses for NAT: outbound
// masquerade for container traffic leaving the cluster CIDR, and published
// ports (DNAT from a host address and port to a container address and port).
//
// It replaces rules people used to type by hand, such as
//
//	iptables -t nat -A POSTROUTING -s 10.244.0.0/16 ! -d 10.244.0.0/16 -j MASQUERADE
//	iptables -t nat -A PREROUTING -p tcp --dport 8080 -j DNAT --to 10.244.3.2:80
//
// with one table of family ip (by default "ovsfabric") that this package
// creates, rewrites and deletes as a whole. It never reads or changes any other
// table, so rules written by iptables-nft, Docker, firewalld or an operator
// keep working side by side.
//
// # Layout of the table
//
// For Rules{ClusterCIDR: 10.244.0.0/16, Masquerade: true, Publish: ...} the
// table looks like this (`nft list table ip ovsfabric`, counters omitted):
//
//	table ip ovsfabric {
//		chain prerouting {
//			type nat hook prerouting priority dstnat; policy accept;
//			fib daddr type local counter jump publish comment "ovsfabric: published ports, traffic to this host"
//		}
//		chain output {
//			type nat hook output priority -100; policy accept;
//			ip daddr != 127.0.0.0/8 fib daddr type local counter jump publish comment "ovsfabric: published ports, connections from this host"
//		}
//		chain publish {
//			tcp dport 8080 counter dnat to 10.244.3.2:80 comment "ovsfabric: publish tcp *:8080 -> web1 10.244.3.2:80"
//			ip daddr 172.30.0.11 udp dport 5353 counter dnat to 10.244.3.3:53 comment "ovsfabric: publish udp 172.30.0.11:5353 -> dns 10.244.3.3:53"
//		}
//		chain postrouting {
//			type nat hook postrouting priority srcnat; policy accept;
//			ct status dnat ip saddr 10.244.0.0/16 ip daddr 10.244.0.0/16 counter masquerade comment "ovsfabric: hairpin: masquerade DNATed traffic from the cluster to the cluster"
//			ip saddr 10.244.0.0/16 ip daddr != 10.244.0.0/16 counter masquerade comment "ovsfabric: masquerade 10.244.0.0/16 to outside the cluster"
//		}
//	}
//
// Published ports are matched only for destination addresses that are local
// to the host (fib daddr type local); when Publish.HostAddr is set, only for
// that address. Connections to 127.0.0.0/8 are not translated: DNAT of
// loopback traffic to a container would need route_localnet and is
// deliberately not supported.
//
// Hairpin: when a container reaches a published port (its own or one of
// another container), the DNATed packet goes from one cluster address to
// another and the reply would bypass the host's conntrack entry. The hairpin
// rule therefore masquerades connections that were DNATed (by any table) and
// go from the cluster CIDR to the cluster CIDR; the server then sees the
// gateway address of the host (e.g. 10.244.3.1). This rule is present whenever
// Publish is not empty, independently of Masquerade. Clients outside the
// cluster keep their own address: the reply is routed back through the host
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

// Package fabric is ovsfabric's model and pure planning: node identity, per-host subnet
// allocation out of the cluster CIDR, IP allocation inside a subnet, deterministic port naming,
// MTU math, and Plan, which turns facts (config, peers) into the desired state of one host.
//
// Nothing here does I/O. The controller gathers facts, calls Plan and applies the difference
// to OVSDB and the kernel, so everything in this package is tested table-driven without root.
package fabric

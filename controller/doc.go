// Package controller is fabricd's brain: one level-triggered reconcile loop that gathers facts
// (configuration, live peers from gossip, what exists in OVSDB), asks fabric.Plan for the
// desired state, and applies only the difference to OVSDB and the kernel. It runs on every
// membership event, every OVSDB change and a periodic resync, so whatever drifts (an operator's
// `ovs-vsctl del-port`, a deleted route) converges back.
//
// External systems sit behind the narrow interfaces Switch (OVSDB), HostNet (the host
// network, set as a whole), flows.Switch (OpenFlow), Membership (gossip) and Endpoints
// (package endpoint, which the loop hands each sync's port snapshot to prune and NAT), so the
// logic is unit-tested without root; the lab tests prove the real thing. The data-path mode
// is a pipeline: routed or L2.
//
// The package also keeps the reconcile metrics (Prometheus). The local API is served by
// package apiserver.
package controller

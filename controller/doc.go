// Package controller is fabricd's brain: one level-triggered reconcile loop that gathers facts
// (configuration, live peers from gossip, what exists in OVSDB), asks fabric.Plan for the
// desired state, and applies only the difference to OVSDB and the kernel. It runs on every
// membership event, every OVSDB change and a periodic resync, so whatever drifts (an operator's
// `ovs-vsctl del-port`, a deleted route) converges back.
//
// External systems sit behind the narrow interfaces Switch, Kernel and Membership, so the logic
// is unit-tested without root; the lab tests prove the real thing.
//
// The package also keeps the reconcile metrics (Prometheus). The local API is served by
// package apiserver.
package controller

// Package dockerplugin serves Docker's remote network driver and IPAM driver protocols on
// one unix socket (/run/docker/plugins/ovsfabric.sock), so that fabric networks are native
// Docker networks: `docker network create -d ovsfabric --ipam-driver ovsfabric --subnet
// CIDR NAME` and `docker run --network NAME`.
//
// The protocol (libnetwork's remote API, v1 JSON over HTTP POST) is decoded here, once, into
// typed values: IDs checked, pools, addresses and MACs parsed. Each Docker network maps to a
// fabric network, by its pool: the IPAM pool is the fabric network's subnet, and the pool ID
// is that subnet. The Docker network ID ↔ fabric network mapping is persisted in OVSDB
// (Open_vSwitch external_ids ovsfabric-docker-net.ID), so restarts of fabricd or dockerd
// lose nothing. CreateNetwork does not carry the Docker network's name: a network created
// with a subnet no fabric network has is created fabric-wide by the Syncer, in the
// background, once the Docker API can tell its name (never from inside a handler: dockerd
// waits on its plugins, and calling it back from a handler can deadlock it). The Syncer
// also creates, through the Docker API, the Docker network of every fabric network that
// has none on this host.
//
// An endpoint is the endpoint manager's: CreateEndpoint makes a veth pair whose host end
// is an OVS port and whose other end Docker moves into the container (Join names it), with
// the address the IPAM gave from this host's slice of the network.
package dockerplugin

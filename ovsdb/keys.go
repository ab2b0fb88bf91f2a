package ovsdb

// KeyPrefix starts every external_ids key fabricd owns. On the rows fabricd made, keys with this
// prefix are exactly what the spec says (a key the spec no longer has is deleted); keys without
// it, written by an operator or another tool, are left alone.
const KeyPrefix = "ovsfabric-"

// external_ids keys fabricd writes on the rows it owns (all of a container port's keys are
// here; package endpoint is their one codec) (Bridge, Port and Interface; a port's
// keys are written to both its Port and its Interface row).
const (
	// KeyOwner is the name of the node that created the row. Rows without it, or with another
	// node's name, are never changed or deleted.
	KeyOwner = "ovsfabric-owner"
	// KeyRole says what the row is for: one of the Role constants.
	KeyRole = "ovsfabric-role"
	// KeyPeer is the peer node a tunnel port leads to.
	KeyPeer = "ovsfabric-peer"
	// KeyContainer is the name of an attached container (container name, netns name, pid:N).
	KeyContainer = "ovsfabric-container"
	// KeyContainerID is the Docker/Podman ID of an attached container, when it has one.
	KeyContainerID = "ovsfabric-container-id"
	// KeyNetNS is the network namespace path of an attached container.
	KeyNetNS = "ovsfabric-netns"
	// KeyIfName is the interface name inside the container (e.g. eth0).
	KeyIfName = "ovsfabric-ifname"
	// KeyIP is the container's address with prefix length (10.244.3.2/24).
	KeyIP = "ovsfabric-ip"
	// KeyMAC is the container interface's MAC address.
	KeyMAC = "ovsfabric-mac"
	// KeyPublish lists a container port's published ports (PROTO:HOSTPORT:CONTAINERPORT,
	// comma-separated): OVSDB keeps them with the endpoint, so they survive restarts and
	// vanish with a detach.
	KeyPublish = "ovsfabric-publish"
	// KeyNetwork is the network of an endpoint; absent means the network "default" (the
	// cluster CIDR), which is all there is until networks land.
	KeyNetwork = "ovsfabric-network"
	// KeyName is an endpoint's DNS name.
	KeyName = "ovsfabric-name"
	// KeyCNI marks an endpoint made through the CNI plugin with its CNI key
	// (CONTAINERID/IFNAME): DEL, CHECK and GC find it by that key, and GC touches no other.
	KeyCNI = "ovsfabric-cni-key"
	// KeyCNIConfig is the name of the CNI network configuration that made an endpoint: CNI
	// GC is per configuration.
	KeyCNIConfig = "ovsfabric-cni-config"
	// KeyAliases lists an endpoint's DNS aliases (comma-separated), from CNI's aliases
	// capability, and the further names given with fabricctl attach --alias.
	KeyAliases = "ovsfabric-aliases"
	// KeyRoutes lists the destinations an endpoint routes via its gateway (comma-separated
	// CIDRs) when it does not carry the container's default route: an endpoint on a
	// container's further network routes only that network. Absent: the default route.
	KeyRoutes = "ovsfabric-routes"
	// KeyResolvConf is the container runtime's resolv.conf of a Docker/Podman endpoint
	// (its ResolvConfPath), which attach pointed at the fabric DNS: detach restores it.
	KeyResolvConf = "ovsfabric-resolv-conf"
	// KeyDocker marks an endpoint made through the Docker network plugin with its Docker
	// endpoint ID: DeleteEndpoint and Join find it by that ID, and the loop never prunes it
	// (Docker removes its endpoints itself).
	KeyDocker = "ovsfabric-docker-endpoint"
)

// Values of KeyRole.
const (
	// RoleBridge marks a bridge fabricd created, and that bridge's local port.
	RoleBridge = "bridge"
	// RoleGateway marks the internal port holding the node's gateway address (fabric0).
	RoleGateway = "gateway"
	// RoleTunnel marks a tunnel port toward a peer; only ReconcileTunnels creates and deletes
	// these.
	RoleTunnel = "tunnel"
	// RoleContainer marks the host end of a container's veth.
	RoleContainer = "container"
)

package ovsdb

// external_ids keys fabricd writes on the rows it owns.
const (
	// KeyOwner is the name of the node that created the row. Rows without it, or with another
	// node's name, are never touched.
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
	// KeyIfName is the interface name inside the container.
	KeyIfName = "ovsfabric-ifname"
	// KeyIP is the container's address with prefix length.
	KeyIP = "ovsfabric-ip"
	// KeyMAC is the container interface's MAC address.
	KeyMAC = "ovsfabric-mac"
)

// Values of KeyRole.
const (
	RoleBridge    = "bridge"
	RoleGateway   = "gateway"
	RoleTunnel    = "tunnel"
	RoleContainer = "container"
)

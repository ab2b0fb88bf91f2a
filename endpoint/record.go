package endpoint

import (
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/fabric"
	"github.com/ovsfabric/ovsfabric/ovsdb"
)

// DefaultNetwork is the network every endpoint is on until networks land: the cluster CIDR.
const DefaultNetwork = "default"

// Record is one endpoint as its OVS port records it (external_ids, see Decode and PortSpec):
// the durable truth, read back after a restart.
type Record struct {
	// Port is the OVS port, and the host end of the veth.
	Port string
	// Network is the endpoint's network (DefaultNetwork unless the port says otherwise).
	Network string
	// Container is what operators call the container (name, netns name, pid:N); ID its
	// Docker/Podman ID, when it has one; NetNS its network namespace path.
	Container, ID, NetNS string
	// IfName is the interface inside the container (eth0).
	IfName string
	// Addr is the container's address with its subnet's prefix length (10.244.3.2/24);
	// invalid when the port holds none that parses.
	Addr netip.Prefix
	// MAC is the container interface's MAC address (nil when the port holds none that parses).
	MAC net.HardwareAddr
	// Published are its published ports; Unreadable what the port lists that does not parse
	// (kept as it is, shown, and ignored by NAT).
	Published  []PortMapping
	Unreadable []string
	// Name is the endpoint's DNS name (empty: none); Aliases its further names. Both are
	// DNS labels in lower case (see CheckName).
	Name string
	// CNIKey is the CNI key (CONTAINERID/IFNAME) of an endpoint made through the CNI
	// plugin, empty for the others.
	CNIKey string
	// CNIConfig is the name of the CNI network configuration that made it.
	CNIConfig string
	Aliases   []string
	// DockerEP is the Docker endpoint ID of an endpoint made through the Docker plugin.
	DockerEP string
	// Routes are the destinations the container routes via the endpoint's gateway when the
	// endpoint does not carry its default route (it is on the container's further network:
	// that network's CIDR); empty for the default route.
	Routes []netip.Prefix
	// ResolvConf is the container runtime's resolv.conf (Docker/Podman), pointed at the
	// fabric DNS while the container is attached; empty for other targets.
	ResolvConf string
	// OfportRequest is the OpenFlow port number fabricd chose for the port (its
	// Interface.ofport_request; 0: OVS chooses, as for ports attached before fabricd chose).
	OfportRequest int
}

// Decode reads the endpoint a port records, when it is a container port owner made.
func Decode(p ovsdb.PortInfo, owner string) (Record, bool) {
	ids := p.ExternalIDs
	if ids[ovsdb.KeyOwner] != owner || ids[ovsdb.KeyRole] != ovsdb.RoleContainer {
		return Record{}, false
	}
	r := Record{
		Port: p.Name, Network: ids[ovsdb.KeyNetwork], Container: ids[ovsdb.KeyContainer], ID: ids[ovsdb.KeyContainerID],
		NetNS: ids[ovsdb.KeyNetNS], IfName: ids[ovsdb.KeyIfName], CNIKey: ids[ovsdb.KeyCNI],
		CNIConfig: ids[ovsdb.KeyCNIConfig], ResolvConf: ids[ovsdb.KeyResolvConf], DockerEP: ids[ovsdb.KeyDocker], OfportRequest: p.OfportRequest,
	}
	if r.Network == "" {
		r.Network = DefaultNetwork
	}
	r.Name, r.Aliases = decodeNames(ids[ovsdb.KeyName], ids[ovsdb.KeyAliases])
	r.Addr, _ = netip.ParsePrefix(ids[ovsdb.KeyIP])
	r.MAC, _ = net.ParseMAC(ids[ovsdb.KeyMAC])
	if v := ids[ovsdb.KeyRoutes]; v != "" {
		for _, s := range strings.Split(v, ",") {
			if p, err := netip.ParsePrefix(s); err == nil {
				r.Routes = append(r.Routes, p)
			}
		}
	}
	if v := ids[ovsdb.KeyPublish]; v != "" {
		for _, s := range strings.Split(v, ",") {
			if m, err := parseStored(s); err == nil {
				r.Published = append(r.Published, m)
			} else {
				r.Unreadable = append(r.Unreadable, s)
			}
		}
	}
	return r, true
}

// Records decodes owner's endpoints from a snapshot of a bridge's ports, in port order.
func Records(ports []ovsdb.PortInfo, owner string) []Record {
	var out []Record
	for _, p := range ports {
		if r, ok := Decode(p, owner); ok {
			out = append(out, r)
		}
	}
	return out
}

// PortSpec is the OVS port recording r, owned by owner: what Decode reads back.
func (r Record) PortSpec(owner string) ovsdb.PortSpec {
	ids := map[string]string{
		ovsdb.KeyContainer: r.Container, ovsdb.KeyNetNS: r.NetNS, ovsdb.KeyIfName: r.IfName,
		ovsdb.KeyIP: addrText(r.Addr), ovsdb.KeyMAC: r.MAC.String(),
	}
	if r.ID != "" {
		ids[ovsdb.KeyContainerID] = r.ID
	}
	if r.Network != "" && r.Network != DefaultNetwork {
		ids[ovsdb.KeyNetwork] = r.Network
	}
	if pub := r.publishedText(); len(pub) > 0 {
		ids[ovsdb.KeyPublish] = strings.Join(pub, ",")
	}
	if r.Name != "" {
		ids[ovsdb.KeyName] = r.Name
	}
	if r.CNIKey != "" {
		ids[ovsdb.KeyCNI] = r.CNIKey
	}
	if r.CNIConfig != "" {
		ids[ovsdb.KeyCNIConfig] = r.CNIConfig
	}
	if r.DockerEP != "" {
		ids[ovsdb.KeyDocker] = r.DockerEP
	}
	if len(r.Aliases) > 0 {
		ids[ovsdb.KeyAliases] = strings.Join(r.Aliases, ",")
	}
	if len(r.Routes) > 0 {
		dsts := make([]string, len(r.Routes))
		for k, p := range r.Routes {
			dsts[k] = p.String()
		}
		ids[ovsdb.KeyRoutes] = strings.Join(dsts, ",")
	}
	if r.ResolvConf != "" {
		ids[ovsdb.KeyResolvConf] = r.ResolvConf
	}
	return ovsdb.PortSpec{Name: r.Port, Owner: owner, Role: ovsdb.RoleContainer, ExternalIDs: ids, OfportRequest: r.OfportRequest}
}

// publishedText is the published ports as stored, sorted, the unreadable ones included.
func (r Record) publishedText() []string {
	out := make([]string, 0, len(r.Published)+len(r.Unreadable))
	for _, m := range r.Published {
		out = append(out, m.String())
	}
	out = append(out, r.Unreadable...)
	slices.Sort(out)
	return out
}

// Gateway is the gateway of the endpoint's subnet (invalid without an address).
func (r Record) Gateway() netip.Addr {
	if !r.Addr.IsValid() {
		return netip.Addr{}
	}
	return fabric.Gateway(r.Addr.Masked())
}

// API is the record as the API shows it, on host with the fabric's MTU.
func (r Record) API(host string, mtu int) api.Attachment {
	a := api.Attachment{
		Host: host, Container: r.Container, ID: r.ID, NetNS: r.NetNS, IfName: r.IfName,
		IP: addrText(r.Addr), MAC: r.MAC.String(), MTU: mtu, Port: r.Port,
	}
	if gw := r.Gateway(); gw.IsValid() {
		a.Gateway = gw.String()
	}
	if pub := r.publishedText(); len(pub) > 0 {
		a.Published = pub
	}
	a.Network, a.Name, a.Aliases = r.Network, r.Name, r.Aliases
	return a
}

func addrText(p netip.Prefix) string {
	if !p.IsValid() {
		return ""
	}
	return p.String()
}

// PortMapping is one published port.
type PortMapping struct {
	Proto         string
	HostPort      uint16
	ContainerPort uint16
}

// String is the mapping as stored in external_ids: PROTO:HOSTPORT:CONTAINERPORT.
func (m PortMapping) String() string {
	return fmt.Sprintf("%s:%d:%d", m.Proto, m.HostPort, m.ContainerPort)
}

// ParsePortSpec parses HOSTPORT:CONTAINERPORT[/tcp|udp] as typed by operators.
func ParsePortSpec(spec string) (PortMapping, error) {
	m := PortMapping{Proto: "tcp"}
	ports, proto, hasProto := strings.Cut(strings.TrimSpace(spec), "/")
	if hasProto {
		m.Proto = strings.ToLower(proto)
		if m.Proto != "tcp" && m.Proto != "udp" {
			return m, fmt.Errorf("port spec %q: protocol %q is not tcp or udp", spec, proto)
		}
	}
	hp, cp, ok := strings.Cut(ports, ":")
	if !ok {
		return m, fmt.Errorf("port spec %q: want HOSTPORT:CONTAINERPORT[/tcp|udp]", spec)
	}
	var err error
	if m.HostPort, err = parsePort(hp); err != nil {
		return m, fmt.Errorf("port spec %q: host port: %w", spec, err)
	}
	if m.ContainerPort, err = parsePort(cp); err != nil {
		return m, fmt.Errorf("port spec %q: container port: %w", spec, err)
	}
	return m, nil
}

func parsePort(s string) (uint16, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > 65535 {
		return 0, fmt.Errorf("%q is not a port number (1-65535)", s)
	}
	return uint16(n), nil
}

// parseStored reads the stored form PROTO:HOSTPORT:CONTAINERPORT.
func parseStored(s string) (PortMapping, error) {
	parts := strings.Split(s, ":")
	if len(parts) != 3 {
		return PortMapping{}, fmt.Errorf("bad stored mapping %q", s)
	}
	return ParsePortSpec(parts[1] + ":" + parts[2] + "/" + parts[0])
}

package ovsdb

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ovsfabric/ovsfabric/ovsdb/vswitchd"
)

// ErrInvalid wraps every error about bad input. Nothing has been sent to OVSDB when it is
// returned.
var ErrInvalid = errors.New("invalid input")

// ErrNotFound is returned when a bridge, or the Open_vSwitch root row, does not exist.
var ErrNotFound = errors.New("not found")

// ErrNotOwned is returned when an operation would change or delete a row that carries no
// external_ids:ovsfabric-owner or another node's. Nothing has been sent.
var ErrNotOwned = errors.New("not owned by this node")

// ErrConflict is returned when a name is held by a row this node owns but of another kind (a
// container port where a tunnel is wanted, a port that is not a single interface of the same
// name). Nothing has been sent.
var ErrConflict = errors.New("conflicts with an existing row")

// ErrStale is returned when OVSDB changed between reading the cache and committing (a row the
// transaction updates was deleted meanwhile, the bridge went away, or a name it inserts was
// taken). The server aborted the whole transaction: nothing was applied. Calling again works
// from the newer cache.
var ErrStale = errors.New("database changed concurrently, nothing applied; retry")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// maxNameLen is IFNAMSIZ-1: the kernel's limit for the device behind a bridge or port.
const maxNameLen = 15

// validName checks a bridge or port name the way the kernel checks a device name (dev_valid_name):
// 1 to 15 bytes, not "." or "..", no '/', ':' or whitespace; and printable ASCII only, so names
// survive shells and ovs-vsctl unquoted.
func validName(what, name string) error {
	if name == "" {
		return invalid("%s name is empty", what)
	}
	if len(name) > maxNameLen {
		return invalid("%s name %q is %d bytes, more than %d (IFNAMSIZ-1)", what, name, len(name), maxNameLen)
	}
	if name == "." || name == ".." {
		return invalid("%s name %q is not a valid device name", what, name)
	}
	for i := 0; i < len(name); i++ {
		if b := name[i]; b <= ' ' || b > '~' || b == '/' || b == ':' {
			return invalid("%s name %q contains %q at byte %d (allowed: printable ASCII except '/', ':' and space)", what, name, rune(b), i)
		}
	}
	return nil
}

func validOwner(owner string) error {
	if owner == "" {
		return invalid("owner is empty")
	}
	if strings.TrimSpace(owner) != owner {
		return invalid("owner %q has leading or trailing space", owner)
	}
	return nil
}

// validIDs checks caller-supplied external_ids: non-empty keys, and no KeyOwner or KeyRole that
// would contradict the spec's Owner and role.
func validIDs(what string, ids map[string]string, owner, role string) error {
	for k, v := range ids {
		switch {
		case k == "":
			return invalid("%s: empty external_ids key", what)
		case k == KeyOwner && v != owner:
			return invalid("%s: external_ids %s=%q contradicts Owner %q (set Owner instead)", what, KeyOwner, v, owner)
		case k == KeyRole && v != role:
			return invalid("%s: external_ids %s=%q contradicts role %q", what, KeyRole, v, role)
		}
	}
	return nil
}

func validOptions(what string, opts map[string]string) error {
	for k := range opts {
		if k == "" {
			return invalid("%s: empty options key", what)
		}
	}
	return nil
}

// validIfaceType checks the shape of an Interface.type; which types exist is ovs-vswitchd's
// business (see IfaceTypes), and an unsupported one shows in PortInfo.Error.
func validIfaceType(what, t string) error {
	for i := 0; i < len(t); i++ {
		b := t[i]
		if !(b >= 'a' && b <= 'z' || b >= '0' && b <= '9' || b == '_' || b == '-') {
			return invalid("%s: interface type %q is not a type name", what, t)
		}
	}
	return nil
}

// tunnelTypes are the Interface types ReconcileTunnels builds.
var tunnelTypes = []string{"gre", "vxlan"}

func isTunnelType(t string) bool {
	for _, tt := range tunnelTypes {
		if t == tt {
			return true
		}
	}
	return false
}

// maxKey is the largest options:key per tunnel type: a 24-bit VNI for VXLAN, the 32-bit GRE key.
var maxKey = map[string]uint64{"vxlan": 1<<24 - 1, "gre": 1<<32 - 1}

func (t TunnelSpec) validate(owner string) error {
	if err := validName("tunnel port", t.Name); err != nil {
		return err
	}
	if !isTunnelType(t.Type) {
		return invalid("tunnel %s: unknown type %q (want one of %s)", t.Name, t.Type, strings.Join(tunnelTypes, ", "))
	}
	a := t.RemoteIP
	switch {
	case t.RemoteFlow && a.IsValid():
		return invalid("tunnel %s: remote IP %s given for a flow-based port (remote_ip=flow)", t.Name, a)
	case t.RemoteFlow:
	case !a.IsValid():
		return invalid("tunnel %s: no remote IP", t.Name)
	case a.Zone() != "":
		return invalid("tunnel %s: remote IP %s has a zone; OVS takes none", t.Name, a)
	case a.Unmap().IsUnspecified(), a.IsMulticast(), a.Unmap() == netip.AddrFrom4([4]byte{255, 255, 255, 255}),
		a.Unmap().IsLoopback(), a.Unmap().IsInterfaceLocalMulticast():
		return invalid("tunnel %s: remote IP %s cannot be a tunnel endpoint", t.Name, a)
	}
	if t.Key != "" && t.Key != "flow" {
		n, err := strconv.ParseUint(t.Key, 10, 64)
		if err != nil || n > maxKey[t.Type] {
			return invalid("tunnel %s: key %q is neither \"flow\" nor a decimal %s key up to %d", t.Name, t.Key, t.Type, maxKey[t.Type])
		}
	}
	for k := range t.Options {
		if k == "remote_ip" || k == "key" {
			return invalid("tunnel %s: set options:%s through its TunnelSpec field, not Options", t.Name, k)
		}
	}
	if err := validOptions("tunnel "+t.Name, t.Options); err != nil {
		return err
	}
	return validIDs("tunnel "+t.Name, t.ExternalIDs, owner, RoleTunnel)
}

func (p PortSpec) validate() error {
	if err := validName("port", p.Name); err != nil {
		return err
	}
	if err := validOwner(p.Owner); err != nil {
		return err
	}
	switch p.Role {
	case "":
		return invalid("port %s: Role is empty", p.Name)
	case RoleBridge:
		return invalid("port %s: role %q belongs to a bridge's local port, which EnsureBridge makes", p.Name, p.Role)
	case RoleTunnel:
		return invalid("port %s: tunnel ports are made by ReconcileTunnels, not EnsurePort", p.Name)
	}
	if err := validIfaceType("port "+p.Name, p.Type); err != nil {
		return err
	}
	if isTunnelType(p.Type) {
		return invalid("port %s: type %s is a tunnel; use ReconcileTunnels", p.Name, p.Type)
	}
	if p.MAC != "" {
		if hw, err := net.ParseMAC(p.MAC); err != nil || len(hw) != 6 {
			return invalid("port %s: MAC %q is not an Ethernet address like 02:00:00:00:00:01", p.Name, p.MAC)
		}
	}
	if p.OfportRequest < 0 || p.OfportRequest > 65279 {
		return invalid("port %s: OfportRequest %d out of range 1..65279 (0: let OVS choose)", p.Name, p.OfportRequest)
	}
	if err := validOptions("port "+p.Name, p.Options); err != nil {
		return err
	}
	return validIDs("port "+p.Name, p.ExternalIDs, p.Owner, p.Role)
}

var (
	datapathTypes = []string{"", "system", "netdev"}
	failModes     = []string{"", vswitchd.BridgeFailModeStandalone, vswitchd.BridgeFailModeSecure}
	protocols     = []string{
		vswitchd.BridgeProtocolsOpenflow10, vswitchd.BridgeProtocolsOpenflow11, vswitchd.BridgeProtocolsOpenflow12,
		vswitchd.BridgeProtocolsOpenflow13, vswitchd.BridgeProtocolsOpenflow14, vswitchd.BridgeProtocolsOpenflow15,
	}
)

func oneOf(v string, set []string) bool {
	for _, s := range set {
		if v == s {
			return true
		}
	}
	return false
}

func (b BridgeSpec) validate() error {
	if err := validName("bridge", b.Name); err != nil {
		return err
	}
	if err := validOwner(b.Owner); err != nil {
		return err
	}
	if !oneOf(b.DatapathType, datapathTypes) {
		return invalid("bridge %s: datapath type %q (want system, netdev, or empty for OVS's default)", b.Name, b.DatapathType)
	}
	if !oneOf(b.FailMode, failModes) {
		return invalid("bridge %s: fail mode %q (want standalone, secure, or empty)", b.Name, b.FailMode)
	}
	seen := map[string]bool{}
	for _, p := range b.Protocols {
		if !oneOf(p, protocols) {
			return invalid("bridge %s: protocol %q (want one of %s)", b.Name, p, strings.Join(protocols, ", "))
		}
		if seen[p] {
			return invalid("bridge %s: protocol %s listed twice", b.Name, p)
		}
		seen[p] = true
	}
	return validIDs("bridge "+b.Name, b.ExternalIDs, b.Owner, RoleBridge)
}

// validEndpoint checks an OVSDB endpoint and returns it in the form libovsdb parses: a unix
// socket path is made absolute ("unix:db.sock" would reach libovsdb as an opaque URL with no
// path).
func validEndpoint(endpoint string) (string, error) {
	switch {
	case strings.HasPrefix(endpoint, "unix:"):
		path := strings.TrimPrefix(endpoint, "unix:")
		if path == "" {
			return "", invalid("OVSDB endpoint %q: no socket path", endpoint)
		}
		if !strings.HasPrefix(path, "/") {
			abs, err := filepath.Abs(path)
			if err != nil {
				return "", invalid("OVSDB endpoint %q: %v", endpoint, err)
			}
			path = abs
		}
		return "unix:" + path, nil
	case strings.HasPrefix(endpoint, "tcp:"):
		host, port, err := net.SplitHostPort(strings.TrimPrefix(endpoint, "tcp:"))
		if err != nil || host == "" {
			return "", invalid("OVSDB endpoint %q: want tcp:IP:PORT", endpoint)
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", invalid("OVSDB endpoint %q: bad port %q", endpoint, port)
		}
		return endpoint, nil
	}
	return "", invalid("OVSDB endpoint %q: want unix:PATH or tcp:IP:PORT", endpoint)
}

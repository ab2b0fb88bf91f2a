package endpoint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"unicode"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/fabric"
)

// Endpoints travel fabric-wide as registry records (package registry, kind endpoint): one
// per endpoint, keyed by SharedKey, valued by EncodeShared. This is their one codec.

// sharedRecord is an endpoint as the registry carries it: short JSON keys; empty fields
// omitted. Decoders ignore unknown keys, so later versions may add some.
type sharedRecord struct {
	Network   string   `json:"n,omitempty"`
	Container string   `json:"c"`
	ID        string   `json:"i,omitempty"`
	IfName    string   `json:"f,omitempty"`
	Addr      string   `json:"a"`
	MAC       string   `json:"m,omitempty"`
	Published []string `json:"p,omitempty"`
	// Name and Aliases are the endpoint's DNS names (added later: absent in older records).
	Name    string   `json:"d,omitempty"`
	Aliases []string `json:"al,omitempty"`
}

// MaxSharedSize bounds an encoded endpoint record: the registry's largest value
// (registry.MaxValueSize; a test keeps them equal).
const MaxSharedSize = 4096

// SharedKey is the registry key of r: its port name, unique on its host.
func SharedKey(r Record) string { return r.Port }

// EncodeShared is r's registry value (compact JSON; the network is omitted when it is
// DefaultNetwork). Published ports that do not parse stay on this host.
func EncodeShared(r Record) []byte {
	s := sharedRecord{Container: r.Container, ID: r.ID, IfName: r.IfName, Addr: addrText(r.Addr), MAC: r.MAC.String(), Name: r.Name, Aliases: r.Aliases}
	if r.Network != DefaultNetwork {
		s.Network = r.Network
	}
	for _, p := range r.Published {
		s.Published = append(s.Published, p.String())
	}
	b, _ := json.Marshal(s) // strings only: cannot fail
	return b
}

// NetworkCIDR returns the CIDR of a network the fabric knows (ok=false: unknown).
type NetworkCIDR func(network string) (cidr netip.Prefix, ok bool)

// OnlyDefault is the NetworkCIDR of a fabric with the default network alone, of CIDR cluster.
func OnlyDefault(cluster netip.Prefix) NetworkCIDR {
	return func(n string) (netip.Prefix, bool) { return cluster, n == DefaultNetwork }
}

// DecodeShared parses and checks the endpoint record that host shares (see decodeShared),
// as the API shows other hosts' endpoints.
func DecodeShared(host string, b []byte, cidr NetworkCIDR) (api.Attachment, error) {
	s, err := decodeShared(b, cidr)
	if err != nil {
		return api.Attachment{}, err
	}
	a := api.Attachment{Host: host, Container: s.Container, IP: s.Addr, MAC: s.MAC, Network: s.Network, Name: s.Name, Aliases: s.Aliases}
	if a.Network == "" {
		a.Network = DefaultNetwork
	}
	if p, err := netip.ParsePrefix(s.Addr); err == nil {
		a.Gateway = fabric.Gateway(p.Masked()).String()
	}
	return a, nil
}

// maxSharedName bounds network and interface names in a shared record.
const maxSharedName = 64

// decodeShared parses and checks an endpoint record another host shares: at most
// MaxSharedSize bytes of JSON, a printable container name of at most maxTargetName bytes,
// an address inside its network's CIDR (a network cidr knows), an optional unicast MAC,
// printable network and interface names, published ports that parse.
func decodeShared(b []byte, cidr NetworkCIDR) (sharedRecord, error) {
	var s sharedRecord
	if len(b) > MaxSharedSize {
		return s, fmt.Errorf("%d bytes, more than %d", len(b), MaxSharedSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	if err := dec.Decode(&s); err != nil {
		return s, fmt.Errorf("decode: %w", err)
	}
	if dec.More() {
		return s, errors.New("trailing data")
	}
	if s.Container == "" || len(s.Container) > maxTargetName || !printable(s.Container) {
		return s, fmt.Errorf("container name %q: empty, longer than %d bytes or not printable", s.Container, maxTargetName)
	}
	for _, n := range []string{s.Network, s.IfName, s.ID} {
		if len(n) > maxSharedName || !printable(n) {
			return s, fmt.Errorf("name %q: longer than %d bytes or not printable", n, maxSharedName)
		}
	}
	p, err := netip.ParsePrefix(s.Addr)
	if err != nil {
		return s, fmt.Errorf("address: %w", err)
	}
	network := s.Network
	if network == "" {
		network = DefaultNetwork
	}
	cluster, ok := cidr(network)
	if !ok {
		return s, fmt.Errorf("unknown network %q", network)
	}
	if !cluster.Contains(p.Addr()) || p.Bits() < cluster.Bits() {
		return s, fmt.Errorf("address %s is outside the CIDR %s of network %s", p, cluster, network)
	}
	if s.MAC != "" {
		mac, err := net.ParseMAC(s.MAC)
		if err != nil || len(mac) != 6 || mac[0]&1 != 0 {
			return s, fmt.Errorf("MAC %q is not a unicast Ethernet address", s.MAC)
		}
	}
	if len(s.Aliases) > maxAliases {
		return s, fmt.Errorf("%d aliases, more than %d", len(s.Aliases), maxAliases)
	}
	if s.Name != "" {
		if err := CheckName(s.Name); err != nil {
			return s, err
		}
	}
	for _, n := range s.Aliases {
		if err := CheckName(n); err != nil {
			return s, err
		}
	}
	for _, v := range s.Published {
		if _, err := parseStored(v); err != nil {
			return s, fmt.Errorf("published port %q: %w", v, err)
		}
	}
	return s, nil
}

func printable(s string) bool {
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

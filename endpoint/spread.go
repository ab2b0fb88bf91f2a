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

// spreadEntry is one endpoint as gossip carries it: just enough for `fabricctl ls --all`.
type spreadEntry struct {
	C  string `json:"c"`
	IP string `json:"ip"`
	M  string `json:"m,omitempty"`
}

// MaxSpreadSize bounds the gossip state that lists one host's endpoints, sent and received:
// memberlist's local state as fabricd uses it (MaxSpreadSize; a test keeps them equal).
const MaxSpreadSize = 8 << 10

// Spread is the gossip state that lists endpoints rs (at most MaxSpreadSize bytes: when they
// do not fit, the list is cut and the rest is not spread).
func Spread(rs []Record) []byte {
	entries := make([]spreadEntry, 0, len(rs))
	for _, r := range rs {
		entries = append(entries, spreadEntry{C: r.Container, IP: addrText(r.Addr), M: r.MAC.String()})
	}
	var b []byte
	for {
		b, _ = json.Marshal(entries)
		if len(b) <= MaxSpreadSize || len(entries) == 0 {
			return b
		}
		entries = entries[:len(entries)*3/4]
	}
}

// DecodeSpread parses and checks the endpoints peer host gossiped (see decodeSpread), as
// the API shows them.
func DecodeSpread(host string, b []byte, cluster netip.Prefix) ([]api.Attachment, error) {
	entries, err := decodeSpread(b, cluster)
	if err != nil {
		return nil, err
	}
	out := make([]api.Attachment, 0, len(entries))
	for _, e := range entries {
		a := api.Attachment{Host: host, Container: e.C, IP: e.IP, MAC: e.M}
		if p, err := netip.ParsePrefix(e.IP); err == nil {
			a.Gateway = fabric.Gateway(p.Masked()).String()
		}
		out = append(out, a)
	}
	return out, nil
}

// maxSpreadEntries bounds the attachments one peer may gossip.
const maxSpreadEntries = 1024

// decodeSpread parses and checks the attachments a peer gossiped (spreadAttachments' JSON):
// at most MaxSpreadSize bytes and maxSpreadEntries entries, each with a printable
// container name of at most maxTargetName bytes, an address inside the cluster CIDR and an
// optional unicast MAC. A peer's list with any bad entry is refused whole.
func decodeSpread(b []byte, cluster netip.Prefix) ([]spreadEntry, error) {
	if len(b) > MaxSpreadSize {
		return nil, fmt.Errorf("%d bytes, more than %d", len(b), MaxSpreadSize)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var entries []spreadEntry
	if err := dec.Decode(&entries); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if dec.More() {
		return nil, errors.New("trailing data")
	}
	if len(entries) > maxSpreadEntries {
		return nil, fmt.Errorf("%d attachments, more than %d", len(entries), maxSpreadEntries)
	}
	for i, e := range entries {
		if err := checkSpreadEntry(e, cluster); err != nil {
			return nil, fmt.Errorf("attachment %d: %w", i+1, err)
		}
	}
	return entries, nil
}

func checkSpreadEntry(e spreadEntry, cluster netip.Prefix) error {
	if e.C == "" || len(e.C) > maxTargetName {
		return fmt.Errorf("container name of %d bytes", len(e.C))
	}
	for _, r := range e.C {
		if !unicode.IsPrint(r) {
			return fmt.Errorf("container name %q is not printable", e.C)
		}
	}
	p, err := netip.ParsePrefix(e.IP)
	if err != nil {
		return fmt.Errorf("address: %w", err)
	}
	if !cluster.Contains(p.Addr()) || p.Bits() < cluster.Bits() {
		return fmt.Errorf("address %s is outside the cluster CIDR %s", p, cluster)
	}
	if e.M != "" {
		mac, err := net.ParseMAC(e.M)
		if err != nil || len(mac) != 6 || mac[0]&1 != 0 {
			return fmt.Errorf("MAC %q is not a unicast Ethernet address", e.M)
		}
	}
	return nil
}

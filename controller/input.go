package controller

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"unicode"

	"github.com/ovsfabric/ovsfabric/peers"
)

// maxSpreadEntries bounds the attachments one peer may gossip.
const maxSpreadEntries = 1024

// decodeSpread parses and checks the attachments a peer gossiped (spreadAttachments' JSON):
// at most peers.MaxStateSize bytes and maxSpreadEntries entries, each with a printable
// container name of at most maxTargetName bytes, an address inside the cluster CIDR and an
// optional unicast MAC. A peer's list with any bad entry is refused whole.
func decodeSpread(b []byte, cluster netip.Prefix) ([]spreadEntry, error) {
	if len(b) > peers.MaxStateSize {
		return nil, fmt.Errorf("%d bytes, more than %d", len(b), peers.MaxStateSize)
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

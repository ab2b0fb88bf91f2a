package ovsdb

import (
	"errors"
	"fmt"
	"net/netip"
)

// ErrInvalid wraps every error about bad input; nothing is sent to OVSDB when it is returned.
var ErrInvalid = errors.New("invalid input")

// ErrNotFound is returned when a bridge or port asked for does not exist.
var ErrNotFound = errors.New("not found")

// ErrNotOwned is returned when an operation would change a row another owner made.
var ErrNotOwned = errors.New("not owned by this node")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrInvalid}, args...)...)
}

// validName checks a bridge or port name: non-empty, at most 15 bytes (the kernel's limit for
// the interface behind it), printable ASCII without '/', ':' or spaces.
func validName(what, name string) error {
	if name == "" {
		return invalid("%s name is empty", what)
	}
	if len(name) > 15 {
		return invalid("%s name %q is %d bytes, more than 15", what, name, len(name))
	}
	for _, r := range name {
		if r <= ' ' || r > '~' || r == '/' || r == ':' {
			return invalid("%s name %q contains %q", what, name, r)
		}
	}
	return nil
}

func validOwner(owner string) error {
	if owner == "" {
		return invalid("owner is empty")
	}
	return nil
}

// TunnelTypes are the tunnel interface types ReconcileTunnels builds.
var TunnelTypes = map[string]bool{"gre": true, "vxlan": true}

func (t TunnelSpec) validate() error {
	if err := validName("tunnel port", t.Name); err != nil {
		return err
	}
	if !TunnelTypes[t.Type] {
		return invalid("tunnel %s: unknown type %q (want gre or vxlan)", t.Name, t.Type)
	}
	if !t.RemoteIP.IsValid() || t.RemoteIP.IsUnspecified() || t.RemoteIP.IsMulticast() {
		return invalid("tunnel %s: bad remote IP %q", t.Name, addrString(t.RemoteIP))
	}
	for k := range t.Options {
		if k == "remote_ip" || k == "key" {
			return invalid("tunnel %s: set %s through its field, not Options", t.Name, k)
		}
	}
	return nil
}

func addrString(a netip.Addr) string {
	if !a.IsValid() {
		return ""
	}
	return a.String()
}

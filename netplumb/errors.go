package netplumb

import (
	"errors"
	"fmt"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var (
	// ErrInvalid marks a request refused before anything was changed because of what was
	// asked: a bad interface name, address, gateway, MAC or MTU, a netns path that is not a
	// network namespace, or a name that is already taken. An API maps it to a client error.
	ErrInvalid = errors.New("invalid request")
	// ErrExists marks a refusal because an interface name is already taken (in the
	// container's namespace or on the host). Such errors also match ErrInvalid.
	ErrExists = errors.New("already exists")
	// ErrLinkNotFound marks an operation on a network device that does not exist.
	ErrLinkNotFound = errors.New("link not found")
)

// IsInvalid reports whether err (or an error it wraps) is a refusal of the request itself,
// made before anything was changed. See ErrInvalid.
func IsInvalid(err error) bool { return errors.Is(err, ErrInvalid) }

// refusal is an error that matches ErrInvalid, and ErrExists too when exists is set, while
// its message stays plain ("interface eth0 already exists in netns …").
type refusal struct {
	msg    string
	exists bool
}

func (e *refusal) Error() string { return e.msg }

// Is makes errors.Is(err, ErrInvalid) (and ErrExists) true for a refusal.
func (e *refusal) Is(target error) bool {
	return target == ErrInvalid || (e.exists && target == ErrExists)
}

// invalidf returns an error that matches ErrInvalid.
func invalidf(format string, args ...any) error {
	return &refusal{msg: fmt.Sprintf(format, args...)}
}

// existsf returns an error that matches ErrInvalid and ErrExists.
func existsf(format string, args ...any) error {
	return &refusal{msg: fmt.Sprintf(format, args...), exists: true}
}

// isLinkNotFound reports whether err is netlink's "no such device".
func isLinkNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf)
}

// linkErr wraps a netlink LinkByName error so that a missing link matches ErrLinkNotFound.
func linkErr(dev string, err error) error {
	if isLinkNotFound(err) {
		return fmt.Errorf("link %s: %w", dev, ErrLinkNotFound)
	}
	return fmt.Errorf("look up link %s: %w", dev, err)
}

// maxDumpTries bounds how often a netlink dump that the kernel marked interrupted (the table
// changed while it was read) is repeated before giving up.
const maxDumpTries = 5

// dump runs a netlink dump, repeating it while the kernel reports it interrupted, so that
// callers never act on a partial table (netlink returns partial results with
// ErrDumpInterrupted).
func dump[T any](f func() (T, error)) (T, error) {
	var v T
	var err error
	for range maxDumpTries {
		v, err = f()
		if !errors.Is(err, netlink.ErrDumpInterrupted) {
			return v, err
		}
	}
	var zero T
	return zero, fmt.Errorf("netlink dump interrupted %d times in a row: %w", maxDumpTries, err)
}

// errIsNotExist reports whether a delete failed only because the object was already gone.
func errIsNotExist(err error) bool {
	return errors.Is(err, unix.ESRCH) || errors.Is(err, unix.ENOENT) ||
		errors.Is(err, unix.EADDRNOTAVAIL) || errors.Is(err, unix.ENODEV)
}

package netplumb

import (
	"fmt"
	"os"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// MaxIfNameLen is the longest interface name the kernel accepts (IFNAMSIZ - 1 bytes).
const MaxIfNameLen = 15

// checkIfName applies the kernel's rules for interface names (dev_valid_name), restricted to
// printable ASCII so that names also work as OVS port names and in shell commands.
func checkIfName(what, name string) error {
	switch {
	case name == "":
		return invalidf("%s: interface name is empty", what)
	case len(name) > MaxIfNameLen:
		return invalidf("%s: interface name %q is %d bytes, more than %d", what, name, len(name), MaxIfNameLen)
	case name == "." || name == "..":
		return invalidf("%s: interface name %q is not allowed", what, name)
	}
	for _, r := range name {
		if r == '/' || r == ':' || r <= ' ' || r > '~' {
			return invalidf("%s: interface name %q contains %q", what, name, r)
		}
	}
	return nil
}

// NetNSExists reports whether path names a network namespace: a file on nsfs (or procfs)
// whose namespace type, asked with the NS_GET_NSTYPE ioctl (Linux 4.11+), is network. A
// mount or PID namespace file, a regular file and a missing path all give false.
func NetNSExists(path string) bool {
	h, err := openNetNS(path)
	if err != nil {
		return false
	}
	_ = h.Close()
	return true
}

// openNetNS opens a network namespace by path. Errors match ErrInvalid.
func openNetNS(path string) (ns.NetNS, error) {
	if path == "" {
		return nil, invalidf("netns path is empty")
	}
	h, err := ns.GetNS(path)
	if err != nil {
		switch err.(type) {
		case ns.NSPathNotExistErr:
			return nil, invalidf("netns %s does not exist", path)
		case ns.NSPathNotNSErr:
			return nil, invalidf("%s is not a network namespace", path)
		}
		if os.IsNotExist(err) {
			return nil, invalidf("netns %s does not exist", path)
		}
		return nil, fmt.Errorf("open netns %s: %w", path, err)
	}
	t, err := unix.IoctlRetInt(int(h.Fd()), unix.NS_GET_NSTYPE)
	if err != nil || t != unix.CLONE_NEWNET {
		_ = h.Close()
		return nil, invalidf("%s is not a network namespace", path)
	}
	return h, nil
}

// sameAsCurrentNetNS reports whether h is the calling thread's network namespace.
func sameAsCurrentNetNS(h ns.NetNS) (bool, error) {
	var a, b unix.Stat_t
	if err := unix.Fstat(int(h.Fd()), &a); err != nil {
		return false, fmt.Errorf("stat netns %s: %w", h.Path(), err)
	}
	self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
	if err := unix.Stat(self, &b); err != nil {
		return false, fmt.Errorf("stat %s: %w", self, err)
	}
	return a.Dev == b.Dev && a.Ino == b.Ino, nil
}

// handleAt opens a netlink socket inside the network namespace h. The caller's thread stays
// where it is.
func handleAt(h ns.NetNS) (*netlink.Handle, error) {
	nh, err := netlink.NewHandleAt(netns.NsHandle(int(h.Fd())), unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket in netns %s: %w", h.Path(), err)
	}
	return nh, nil
}

// hostHandle opens a netlink socket in the calling thread's network namespace. Requests on it
// stay in that namespace even if the goroutine later moves to another thread.
func hostHandle() (*netlink.Handle, error) {
	nh, err := netlink.NewHandle(unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	return nh, nil
}

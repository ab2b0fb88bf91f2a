package netplumb

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovsfabric/ovsfabric/lab/labtest"
)

// Root tests never touch the network namespace the test binary starts in: each creates its
// own named namespaces (visible in `ip netns list` as npt-…, removed in t.Cleanup) and runs
// inside one of them on a locked OS thread.

const netnsDir = "/run/netns"

// requireRoot skips a test that needs root, or fails it when CI=true.
func requireRoot(t *testing.T) {
	t.Helper()
	labtest.Require(t, "this test (it creates network namespaces, veths and routes; run as root, e.g. sudo go test ./netplumb/)")
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newNS creates a named, empty network namespace like `ip netns add`, and deletes it when the
// test ends.
func newNS(t *testing.T, label string) ns.NetNS {
	t.Helper()
	requireRoot(t)
	name := fmt.Sprintf("npt-%s-%d-%s", label, os.Getpid(), randHex(3))
	path := filepath.Join(netnsDir, name)
	if err := os.MkdirAll(netnsDir, 0o755); err != nil {
		t.Fatalf("mkdir %s: %v", netnsDir, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_EXCL, 0o444)
	if err != nil {
		t.Fatalf("create %s: %v", path, err)
	}
	_ = f.Close()
	errc := make(chan error, 1)
	go func() {
		// This thread is never unlocked: it dies with the goroutine, in whatever namespace.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("unshare: %w", err)
			return
		}
		self := fmt.Sprintf("/proc/%d/task/%d/ns/net", os.Getpid(), unix.Gettid())
		if err := unix.Mount(self, path, "none", unix.MS_BIND, ""); err != nil {
			errc <- fmt.Errorf("bind mount %s: %w", path, err)
			return
		}
		errc <- nil
	}()
	if err := <-errc; err != nil {
		_ = os.Remove(path)
		t.Fatalf("create netns %s: %v", name, err)
	}
	h, err := ns.GetNS(path)
	if err != nil {
		t.Fatalf("open netns %s: %v", path, err)
	}
	t.Cleanup(func() {
		_ = h.Close()
		// EINVAL: not mounted any more (a test destroyed the namespace itself).
		if err := unix.Unmount(path, unix.MNT_DETACH); err != nil && err != unix.EINVAL {
			t.Errorf("unmount %s: %v", path, err)
		}
		if err := os.Remove(path); err != nil {
			t.Errorf("remove %s: %v", path, err)
		}
	})
	return h
}

// enterNS moves the calling goroutine, locked to its OS thread for good, into n. The thread
// is discarded when the test's goroutine ends, so it never goes back to the pool. Subtests run
// on their own goroutines and must call enterNS themselves.
func enterNS(t *testing.T, n ns.NetNS) {
	t.Helper()
	runtime.LockOSThread()
	if err := n.Set(); err != nil {
		t.Fatalf("enter netns %s: %v", n.Path(), err)
	}
	same, err := sameAsCurrentNetNS(n)
	if err != nil || !same {
		t.Fatalf("not in netns %s after setns (err %v)", n.Path(), err)
	}
}

// newHost creates a "host" netns and enters it.
func newHost(t *testing.T) ns.NetNS {
	t.Helper()
	h := newNS(t, "host")
	enterNS(t, h)
	return h
}

// nlIn opens a netlink handle inside n.
func nlIn(t *testing.T, n ns.NetNS) *netlink.Handle {
	t.Helper()
	h, err := handleAt(n)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return h
}

// linkNames lists the interface names in n, sorted.
func linkNames(t *testing.T, n ns.NetNS) []string {
	t.Helper()
	h := nlIn(t, n)
	links, err := dump(h.LinkList)
	if err != nil {
		t.Fatalf("list links in %s: %v", n.Path(), err)
	}
	var out []string
	for _, l := range links {
		out = append(out, l.Attrs().Name)
	}
	sort.Strings(out)
	return out
}

// addVethPair creates a veth pair a/b in the namespace of h, both up, with addr on a if valid.
func addVethPair(t *testing.T, h *netlink.Handle, a, b string, addr netip.Prefix) netlink.Link {
	t.Helper()
	la := netlink.NewLinkAttrs()
	la.Name = a
	la.Flags = net.FlagUp
	v := netlink.NewVeth(la)
	v.PeerName = b
	if err := h.LinkAdd(v); err != nil {
		t.Fatalf("add veth %s/%s: %v", a, b, err)
	}
	for _, n := range []string{a, b} {
		l, err := h.LinkByName(n)
		if err != nil {
			t.Fatal(err)
		}
		if err := h.LinkSetUp(l); err != nil {
			t.Fatal(err)
		}
	}
	l, err := h.LinkByName(a)
	if err != nil {
		t.Fatal(err)
	}
	if addr.IsValid() {
		if err := h.AddrAdd(l, &netlink.Addr{IPNet: ipNetOf(addr)}); err != nil {
			t.Fatalf("add %s to %s: %v", addr, a, err)
		}
	}
	return l
}

func addrList(t *testing.T, h *netlink.Handle, dev string) []netip.Prefix {
	t.Helper()
	l, err := h.LinkByName(dev)
	if err != nil {
		t.Fatal(err)
	}
	addrs, err := dump(func() ([]netlink.Addr, error) { return h.AddrList(l, netlink.FAMILY_ALL) })
	if err != nil {
		t.Fatal(err)
	}
	var out []netip.Prefix
	for _, a := range addrs {
		if p, ok := prefixOf(a.IPNet); ok && !p.Addr().IsLinkLocalUnicast() {
			out = append(out, p)
		}
	}
	slices.SortFunc(out, comparePrefix)
	return out
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }
func mustAddr(s string) netip.Addr     { return netip.MustParseAddr(s) }

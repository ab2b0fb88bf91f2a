package netplumb

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"testing"

	"github.com/containernetworking/plugins/pkg/ns"
	"github.com/safchain/ethtool"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/ovsfabric/ovsfabric/fabric"
)

// runIn runs a command with its network namespace being n's: the child is forked from a
// thread locked inside n.
func runIn(t *testing.T, n ns.NetNS, name string, args ...string) (string, error) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		t.Skipf("%s not installed", name)
	}
	var out []byte
	err := n.Do(func(ns.NetNS) error {
		var err error
		out, err = exec.Command(name, args...).CombinedOutput()
		return err
	})
	return string(out), err
}

func TestAttach(t *testing.T) {
	host := newHost(t)
	cont := newNS(t, "cont")
	a := Attachment{
		NetNS: cont.Path(), HostIf: "vfattach0", Addr: mustPrefix("10.99.3.5/24"),
		Gateway: mustAddr("10.99.3.1"), MTU: 1450, Datapath: fabric.DatapathNetdev,
	}
	res, err := Attach(a)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	if res.HostIf != a.HostIf || len(res.MAC) != 6 || res.MAC[0]&1 != 0 || res.MAC[0]&2 == 0 {
		t.Fatalf("result %+v: want host if %s and a random locally administered unicast MAC", res, a.HostIf)
	}

	hl, err := HostLink(a.HostIf)
	if err != nil {
		t.Fatalf("HostLink: %v", err)
	}
	cl, err := ContainerLink(cont.Path(), "eth0")
	if err != nil {
		t.Fatalf("ContainerLink: %v", err)
	}
	if hl.Kind != "veth" || !hl.Up || hl.MTU != 1450 || hl.TxChecksum || hl.Index != res.HostIndex {
		t.Errorf("host end: %+v", hl)
	}
	if cl.Kind != "veth" || !cl.Up || cl.MTU != 1450 || cl.TxChecksum || cl.MAC.String() != res.MAC.String() {
		t.Errorf("container end: %+v (result MAC %s)", cl, res.MAC)
	}
	if !slices.Equal(cl.Addrs, []netip.Prefix{a.Addr}) || cl.Gateway != a.Gateway {
		t.Errorf("container end: addrs %v gateway %s, want [%s] via %s", cl.Addrs, cl.Gateway, a.Addr, a.Gateway)
	}
	if cl.PeerIndex != hl.Index || hl.PeerIndex != cl.Index {
		t.Errorf("ends do not point at each other: host %d peer %d, container %d peer %d", hl.Index, hl.PeerIndex, cl.Index, cl.PeerIndex)
	}
	// The userspace datapath's steps: arp_ignore on the host end (TX checksum offload is
	// checked above and below).
	if got := readSysctl(t, "net/ipv4/conf/"+a.HostIf+"/arp_ignore"); got != "1" {
		t.Errorf("netdev datapath: arp_ignore %s on the host end, want 1", got)
	}
	if b, err := os.ReadFile("/proc/sys/net/ipv6/conf/" + a.HostIf + "/disable_ipv6"); err == nil && strings.TrimSpace(string(b)) != "1" {
		t.Errorf("IPv6 still enabled on the host end")
	}
	if got := linkNames(t, cont); !slices.Equal(got, []string{"eth0", "lo"}) {
		t.Errorf("container links %v, want [eth0 lo]", got)
	}
	ch := nlIn(t, cont)
	lo, err := ch.LinkByName("lo")
	if err != nil || lo.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("lo in container not up (%v)", err)
	}
	routes, err := ch.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil || len(routes) != 1 || !isDefault(routes[0]) || !routes[0].Gw.Equal(net.ParseIP("10.99.3.1")) {
		t.Errorf("container routes with proto %d: %v (%v), want one default via 10.99.3.1", RouteProtocol, routes, err)
	}

	// TX checksumming as the ethtool tool and safchain/ethtool read it back, on both ends.
	err = cont.Do(func(ns.NetNS) error {
		e, err := ethtool.NewEthtool()
		if err != nil {
			return err
		}
		defer e.Close()
		f, err := e.Features("eth0")
		if err != nil {
			return err
		}
		if f["tx-checksum-ip-generic"] {
			t.Errorf("container eth0: tx-checksum-ip-generic still on")
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, side := range []struct {
		n   ns.NetNS
		dev string
	}{{cont, "eth0"}, {host, a.HostIf}} {
		out, err := runIn(t, side.n, "ethtool", "-k", side.dev)
		if err != nil {
			t.Fatalf("ethtool -k %s: %v\n%s", side.dev, err, out)
		}
		if !strings.Contains(out, "tx-checksumming: off") {
			t.Errorf("ethtool -k %s does not say tx-checksumming: off:\n%s", side.dev, out)
		}
	}

	// The veth carries traffic: give the host end the gateway address and ping it from the
	// container, and the container from the host.
	if _, err := EnsureAddr(a.HostIf, mustPrefix("10.99.3.1/24")); err != nil {
		t.Fatal(err)
	}
	if out, err := runIn(t, cont, "ping", "-c", "1", "-W", "3", "10.99.3.1"); err != nil {
		t.Fatalf("ping gateway from container: %v\n%s", err, out)
	}
	if out, err := runIn(t, host, "ping", "-c", "1", "-W", "3", "10.99.3.5"); err != nil {
		t.Fatalf("ping container from host: %v\n%s", err, out)
	}

	// A second Attach of the same container is refused before anything is created.
	if _, err := Attach(a); !errors.Is(err, ErrExists) {
		t.Errorf("second Attach: got %v, want ErrExists", err)
	}
}

func TestAttachGivenMACAndIPv6(t *testing.T) {
	newHost(t)
	cont := newNS(t, "cont")
	mac := net.HardwareAddr{0x02, 0x42, 0xac, 0x11, 0x00, 0x07}
	a := Attachment{
		NetNS: cont.Path(), IfName: "net1", HostIf: "vfv6", Addr: mustPrefix("fd00:99::5/64"),
		Gateway: mustAddr("fd00:99::1"), MAC: mac, MTU: 1400, Datapath: fabric.DatapathSystem,
	}
	res, err := Attach(a)
	if err != nil {
		t.Fatalf("Attach: %v", err)
	}
	cl, err := ContainerLink(cont.Path(), "net1")
	if err != nil {
		t.Fatal(err)
	}
	if res.MAC.String() != mac.String() || cl.MAC.String() != mac.String() {
		t.Errorf("MAC: result %s, link %s, want %s", res.MAC, cl.MAC, mac)
	}
	if !slices.Contains(cl.Addrs, a.Addr) || cl.Gateway != a.Gateway || cl.MTU != 1400 {
		t.Errorf("container end %+v", cl)
	}
	// The kernel datapath needs none of the userspace datapath's steps.
	if !cl.TxChecksum {
		t.Errorf("system datapath: TX checksum offload off in the container")
	}
	if hl, err := HostLink(a.HostIf); err != nil || !hl.TxChecksum {
		t.Errorf("system datapath: TX checksum offload off on the host end (%+v, %v)", hl, err)
	}
	if got := readSysctl(t, "net/ipv4/conf/"+a.HostIf+"/arp_ignore"); got != "0" {
		t.Errorf("system datapath: arp_ignore %s on the host end, want the default 0", got)
	}
}

func TestAttachRoutesBesideForeignDefault(t *testing.T) {
	newHost(t)
	cont := newNS(t, "cont")
	ch := nlIn(t, cont)
	// The container already has a network with a default route, like a Docker container.
	other := addVethPair(t, ch, "eth0", "eth0peer", mustPrefix("172.30.0.2/16"))
	if err := ch.RouteAdd(&netlink.Route{Gw: net.ParseIP("172.30.0.1"), LinkIndex: other.Attrs().Index}); err != nil {
		t.Fatal(err)
	}
	before := linkNames(t, cont)
	a := Attachment{NetNS: cont.Path(), IfName: "eth1", HostIf: "vfroutes", Addr: mustPrefix("10.99.3.6/24"), Datapath: fabric.DatapathNetdev,
		Gateway: mustAddr("10.99.3.1"), MTU: 1450}
	if _, err := Attach(a); !errors.Is(err, ErrExists) || !strings.Contains(err.Error(), "default route") {
		t.Fatalf("Attach beside a default route: got %v, want ErrExists about the default route", err)
	}
	if got := linkNames(t, cont); !slices.Equal(got, before) {
		t.Fatalf("refused Attach changed the container's links: %v -> %v", before, got)
	}
	a.Routes = []netip.Prefix{mustPrefix("10.99.0.0/16")}
	if _, err := Attach(a); err != nil {
		t.Fatalf("Attach with Routes: %v", err)
	}
	routes, err := ch.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: RouteProtocol}, netlink.RT_FILTER_PROTOCOL)
	if err != nil || len(routes) != 1 || routes[0].Dst.String() != "10.99.0.0/16" {
		t.Errorf("our routes in container: %v (%v), want 10.99.0.0/16 only", routes, err)
	}
	if gw, _ := defaultGateway(ch, netlink.FAMILY_V4, other.Attrs().Index); gw != mustAddr("172.30.0.1") {
		t.Errorf("container's own default route is gone (gateway %s)", gw)
	}
	// ContainerLink reads back the routes of each interface with their gateways.
	want := []Route{{Dst: mustPrefix("10.99.0.0/16"), Gateway: mustAddr("10.99.3.1"), Dev: "eth1"}}
	if l, err := ContainerLink(cont.Path(), "eth1"); err != nil || l.Gateway.IsValid() || !slices.Equal(l.Routes, want) {
		t.Errorf("ContainerLink eth1: gateway %s routes %v (%v), want no default and %v", l.Gateway, l.Routes, err, want)
	}
	want = []Route{{Dst: mustPrefix("0.0.0.0/0"), Gateway: mustAddr("172.30.0.1"), Dev: "eth0"}}
	if l, err := ContainerLink(cont.Path(), "eth0"); err != nil || l.Gateway != mustAddr("172.30.0.1") || !slices.Equal(l.Routes, want) {
		t.Errorf("ContainerLink eth0: gateway %s routes %v (%v), want %v", l.Gateway, l.Routes, err, want)
	}
}

// TestAttachGatewayNeighbour: with GatewayMAC the container knows the gateway's MAC from the
// start (a permanent neighbour entry), so its first packet needs no ARP.
func TestAttachGatewayNeighbour(t *testing.T) {
	newHost(t)
	cont := newNS(t, "cont")
	gwMAC, _ := net.ParseMAC("0a:11:22:33:44:55")
	a := Attachment{NetNS: cont.Path(), HostIf: "vfneigh", Addr: mustPrefix("10.99.3.7/24"), Datapath: fabric.DatapathNetdev,
		Gateway: mustAddr("10.99.3.1"), GatewayMAC: gwMAC, MTU: 1450}
	if _, err := Attach(a); err != nil {
		t.Fatalf("Attach: %v", err)
	}
	l, err := nlIn(t, cont).LinkByName("eth0")
	if err != nil {
		t.Fatal(err)
	}
	ns, err := nlIn(t, cont).NeighList(l.Attrs().Index, netlink.FAMILY_V4)
	if err != nil {
		t.Fatal(err)
	}
	if len(ns) != 1 || !ns[0].IP.Equal(net.ParseIP("10.99.3.1")) || ns[0].HardwareAddr.String() != gwMAC.String() || ns[0].State != netlink.NUD_PERMANENT {
		t.Errorf("container neighbours %+v, want 10.99.3.1 lladdr %s permanent", ns, gwMAC)
	}
	bad := a
	bad.HostIf, bad.GatewayMAC = "vfneigh2", net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1}
	if _, err := Attach(bad); !IsInvalid(err) {
		t.Errorf("multicast gateway MAC: got %v, want an invalid-input error", err)
	}
}

// TestAttachRollback checks that a refused or failed Attach leaves no new link on either side.
func TestAttachRollback(t *testing.T) {
	tests := []struct {
		name    string
		setup   func(t *testing.T, hostNL, contNL *netlink.Handle, a *Attachment)
		invalid bool // refused before creating anything
	}{
		{"ifname exists in container", func(t *testing.T, _, c *netlink.Handle, a *Attachment) {
			addVethPair(t, c, a.IfName, "other0", netip.Prefix{})
		}, true},
		{"hostif exists on host", func(t *testing.T, h, _ *netlink.Handle, a *Attachment) {
			addVethPair(t, h, a.HostIf, "other0", netip.Prefix{})
		}, true},
		{"netns missing", func(_ *testing.T, _, _ *netlink.Handle, a *Attachment) {
			a.NetNS = "/run/netns/npt-gone-" + randHex(4)
		}, true},
		{"netns is the host", func(_ *testing.T, _, _ *netlink.Handle, a *Attachment) {
			a.NetNS = "/proc/thread-self/ns/net"
		}, true},
		{"bad gateway", func(_ *testing.T, _, _ *netlink.Handle, a *Attachment) {
			a.Gateway = mustAddr("10.98.0.1")
		}, true},
		// Fails after the veth exists: the container already routes 10.99.0.0/16 elsewhere,
		// so adding our route there fails and everything must be rolled back.
		{"route add fails after creation", func(t *testing.T, _, c *netlink.Handle, a *Attachment) {
			l := addVethPair(t, c, "side0", "side1", netip.Prefix{})
			if err := c.RouteAdd(&netlink.Route{Dst: ipNetOf(mustPrefix("10.99.0.0/16")), LinkIndex: l.Attrs().Index, Scope: netlink.SCOPE_LINK}); err != nil {
				t.Fatal(err)
			}
			a.Routes = []netip.Prefix{mustPrefix("10.99.0.0/16")}
		}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			host := newHost(t)
			cont := newNS(t, "cont")
			hostNL, contNL := nlIn(t, host), nlIn(t, cont)
			a := Attachment{NetNS: cont.Path(), IfName: "eth0", HostIf: "vfroll0", Addr: mustPrefix("10.99.3.7/24"),
				Gateway: mustAddr("10.99.3.1"), MTU: 1450, Datapath: fabric.DatapathNetdev}
			tt.setup(t, hostNL, contNL, &a)
			hostBefore, contBefore := linkNames(t, host), linkNames(t, cont)
			_, err := Attach(a)
			if err == nil {
				t.Fatal("Attach succeeded")
			}
			t.Logf("Attach: %v", err)
			if IsInvalid(err) != tt.invalid {
				t.Errorf("IsInvalid = %v, want %v", IsInvalid(err), tt.invalid)
			}
			if got := linkNames(t, host); !slices.Equal(got, hostBefore) {
				t.Errorf("host links %v -> %v", hostBefore, got)
			}
			if got := linkNames(t, cont); !slices.Equal(got, contBefore) {
				t.Errorf("container links %v -> %v", contBefore, got)
			}
		})
	}
}

func TestDetach(t *testing.T) {
	host := newHost(t)
	cont := newNS(t, "cont")
	hostBefore := linkNames(t, host)
	a := Attachment{NetNS: cont.Path(), HostIf: "vfdetach", Addr: mustPrefix("10.99.3.8/24"), Datapath: fabric.DatapathNetdev, Gateway: mustAddr("10.99.3.1"), MTU: 1500}
	if _, err := Attach(a); err != nil {
		t.Fatal(err)
	}
	for i := range 2 { // idempotent: the second call finds nothing and succeeds
		if err := Detach(a.HostIf); err != nil {
			t.Fatalf("Detach #%d: %v", i+1, err)
		}
	}
	if got := linkNames(t, host); !slices.Equal(got, hostBefore) {
		t.Errorf("host links after Detach: %v, want %v", got, hostBefore)
	}
	if got := linkNames(t, cont); !slices.Equal(got, []string{"lo"}) {
		t.Errorf("container links after Detach: %v, want [lo]", got)
	}
	if _, err := ContainerLink(cont.Path(), "eth0"); !errors.Is(err, ErrLinkNotFound) {
		t.Errorf("ContainerLink after Detach: %v, want ErrLinkNotFound", err)
	}

	// Detach refuses a device that is not a veth.
	hn := nlIn(t, host)
	br := &netlink.Bridge{LinkAttrs: netlink.NewLinkAttrs()}
	br.Name = "notaveth"
	if err := hn.LinkAdd(br); err != nil {
		t.Fatal(err)
	}
	if err := Detach("notaveth"); !IsInvalid(err) {
		t.Errorf("Detach of a bridge: %v, want ErrInvalid", err)
	}
	if _, err := hn.LinkByName("notaveth"); err != nil {
		t.Errorf("bridge deleted: %v", err)
	}
}

func TestDetachWhenContainerGone(t *testing.T) {
	newHost(t)
	cont := newNS(t, "cont")
	a := Attachment{NetNS: cont.Path(), HostIf: "vfgone", Addr: mustPrefix("10.99.3.9/24"), Datapath: fabric.DatapathNetdev, Gateway: mustAddr("10.99.3.1"), MTU: 1500}
	if _, err := Attach(a); err != nil {
		t.Fatal(err)
	}
	// Destroy the container's namespace: the kernel removes the pair (asynchronously).
	path := cont.Path()
	_ = cont.Close()
	if err := unix.Unmount(path, unix.MNT_DETACH); err != nil {
		t.Fatal(err)
	}
	if err := Detach(a.HostIf); err != nil {
		t.Fatalf("Detach after the container went away: %v", err)
	}
	if NetNSExists(path) {
		t.Errorf("%s still a netns", path)
	}
}

func TestTxChecksumOffHost(t *testing.T) {
	hn := nlIn(t, newHost(t))
	addVethPair(t, hn, "txa", "txb", netip.Prefix{})
	if on, err := txChecksumOn("txa"); err != nil || !on {
		t.Fatalf("a fresh veth should checksum-offload: %v %v", on, err)
	}
	for range 2 {
		if err := TxChecksumOff("txa"); err != nil {
			t.Fatal(err)
		}
	}
	if on, err := txChecksumOn("txa"); err != nil || on {
		t.Fatalf("still on: %v %v", on, err)
	}
	if err := TxChecksumOff("missing0"); err == nil {
		t.Error("TxChecksumOff of a missing device succeeded")
	}
}

// readSysctl reads /proc/sys/KEY in the current netns.
func readSysctl(t *testing.T, key string) string {
	t.Helper()
	b, err := os.ReadFile("/proc/sys/" + key)
	if err != nil {
		t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

package netplumb

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/ovsfabric/ovsfabric/fabric"
)

// These tests need no root and change nothing outside the process.

func validAttachment() Attachment {
	return Attachment{
		NetNS:    "/proc/self/ns/net",
		IfName:   "eth0",
		HostIf:   "vf0123456789",
		Addr:     mustPrefix("10.244.3.5/24"),
		Gateway:  mustAddr("10.244.3.1"),
		MTU:      1450,
		Datapath: fabric.DatapathNetdev,
	}
}

func TestAttachmentNormalize(t *testing.T) {
	tests := []struct {
		name   string
		mod    func(*Attachment)
		errHas string // "" = valid
	}{
		{"valid", func(*Attachment) {}, ""},
		{"default ifname", func(a *Attachment) { a.IfName = "" }, ""},
		{"ipv6", func(a *Attachment) {
			a.Addr, a.Gateway, a.MTU = mustPrefix("fd00:1::5/64"), mustAddr("fd00:1::1"), 1400
		}, ""},
		{"routes instead of default", func(a *Attachment) { a.Routes = []netip.Prefix{mustPrefix("10.244.0.0/16")} }, ""},
		{"given mac", func(a *Attachment) { a.MAC = net.HardwareAddr{0x02, 0, 0, 0, 0, 1} }, ""},
		{"mtu min", func(a *Attachment) { a.MTU = 68 }, ""},
		{"mtu max", func(a *Attachment) { a.MTU = 65535 }, ""},

		{"ifname too long", func(a *Attachment) { a.IfName = "eth0123456789abc" }, "more than 15"},
		{"hostif too long", func(a *Attachment) { a.HostIf = "vf0123456789abcd" }, "more than 15"},
		{"hostif empty", func(a *Attachment) { a.HostIf = "" }, "empty"},
		{"ifname slash", func(a *Attachment) { a.IfName = "eth/0" }, "contains"},
		{"ifname colon", func(a *Attachment) { a.IfName = "eth0:1" }, "contains"},
		{"ifname space", func(a *Attachment) { a.IfName = "eth 0" }, "contains"},
		{"ifname dot", func(a *Attachment) { a.IfName = "." }, "not allowed"},
		{"ifname non-ascii", func(a *Attachment) { a.IfName = "ethé" }, "contains"},
		{"no netns", func(a *Attachment) { a.NetNS = "" }, "netns"},
		{"system datapath", func(a *Attachment) { a.Datapath = fabric.DatapathSystem }, ""},
		{"no datapath", func(a *Attachment) { a.Datapath = "" }, "datapath"},
		{"unknown datapath", func(a *Attachment) { a.Datapath = "kernel" }, "datapath"},
		{"no addr", func(a *Attachment) { a.Addr = netip.Prefix{} }, "no address"},
		{"network addr", func(a *Attachment) { a.Addr = mustPrefix("10.244.3.0/24") }, "network or broadcast"},
		{"broadcast addr", func(a *Attachment) { a.Addr = mustPrefix("10.244.3.255/24") }, "network or broadcast"},
		{"multicast addr", func(a *Attachment) { a.Addr = mustPrefix("224.0.0.5/24") }, "not a unicast"},
		{"unspecified addr", func(a *Attachment) { a.Addr = mustPrefix("0.0.0.0/24") }, "not a unicast"},
		{"loopback addr", func(a *Attachment) { a.Addr = mustPrefix("127.0.0.2/8") }, "not a unicast"},
		{"mapped addr", func(a *Attachment) { a.Addr = mustPrefix("::ffff:10.244.3.5/120") }, "plain"},
		{"no gateway", func(a *Attachment) { a.Gateway = netip.Addr{} }, "no gateway"},
		{"gateway outside", func(a *Attachment) { a.Gateway = mustAddr("10.244.4.1") }, "outside"},
		{"gateway is self", func(a *Attachment) { a.Gateway = mustAddr("10.244.3.5") }, "own address"},
		{"gateway family", func(a *Attachment) { a.Gateway = mustAddr("fd00::1") }, "families"},
		{"gateway broadcast", func(a *Attachment) { a.Gateway = mustAddr("10.244.3.255") }, "network or broadcast"},
		{"host route /32", func(a *Attachment) { a.Addr = mustPrefix("10.244.3.5/32") }, "outside"},
		{"route host bits", func(a *Attachment) { a.Routes = []netip.Prefix{mustPrefix("10.244.0.1/16")} }, "host bits"},
		{"route family", func(a *Attachment) { a.Routes = []netip.Prefix{mustPrefix("fd00::/8")} }, "families"},
		{"mtu zero", func(a *Attachment) { a.MTU = 0 }, "outside 68..65535"},
		{"mtu small", func(a *Attachment) { a.MTU = 67 }, "outside"},
		{"mtu big", func(a *Attachment) { a.MTU = 65536 }, "outside"},
		{"mtu ipv6 small", func(a *Attachment) {
			a.Addr, a.Gateway, a.MTU = mustPrefix("fd00:1::5/64"), mustAddr("fd00:1::1"), 1000
		}, "1280"},
		{"mac multicast", func(a *Attachment) { a.MAC = net.HardwareAddr{0x01, 0, 0x5e, 0, 0, 1} }, "unicast"},
		{"mac zero", func(a *Attachment) { a.MAC = make(net.HardwareAddr, 6) }, "unicast"},
		{"mac short", func(a *Attachment) { a.MAC = net.HardwareAddr{2, 0, 0} }, "6-byte"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := validAttachment()
			tt.mod(&a)
			got, err := a.normalize()
			if tt.errHas == "" {
				if err != nil {
					t.Fatalf("normalize: %v", err)
				}
				if got.IfName == "" || len(got.MAC) != 6 || got.MAC[0]&1 != 0 {
					t.Fatalf("defaults not filled: %+v", got)
				}
				return
			}
			if err == nil {
				t.Fatalf("normalize accepted %+v", a)
			}
			if !IsInvalid(err) {
				t.Errorf("error %q does not match ErrInvalid", err)
			}
			if !strings.Contains(err.Error(), tt.errHas) {
				t.Errorf("error %q does not mention %q", err, tt.errHas)
			}
			// Attach must refuse the same input before it opens anything.
			if _, err := Attach(a); !IsInvalid(err) {
				t.Errorf("Attach: got %v, want an ErrInvalid error", err)
			}
		})
	}
}

func TestAttachRefusesBadNetNS(t *testing.T) {
	tests := []struct{ name, path, errHas string }{
		{"missing", "/run/netns/npt-does-not-exist-" + randHex(4), "does not exist"},
		{"regular file", "/proc/self/status", "not a network namespace"},
		{"directory", os.TempDir(), "not a network namespace"},
		{"mount namespace", "/proc/self/ns/mnt", "not a network namespace"},
		{"own namespace", "/proc/thread-self/ns/net", "host's own"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := validAttachment()
			a.NetNS = tt.path
			_, err := Attach(a)
			if !IsInvalid(err) || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("Attach into %s: got %v, want ErrInvalid mentioning %q", tt.path, err, tt.errHas)
			}
		})
	}
}

func TestNetNSExistsWithoutRoot(t *testing.T) {
	tests := []struct {
		path string
		want bool
	}{
		{"/proc/self/ns/net", true},
		{"/proc/self/ns/mnt", false},
		{"/proc/self/ns/pid", false},
		{"/proc/self/status", false},
		{"/", false},
		{"", false},
		{"/run/netns/npt-missing-" + randHex(4), false},
	}
	for _, tt := range tests {
		if got := NetNSExists(tt.path); got != tt.want {
			t.Errorf("NetNSExists(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

func TestCheckIfName(t *testing.T) {
	for _, ok := range []string{"eth0", "vf3f9a1c0b2e", "a", "br-int", "fabric0", "x23456789012345"} {
		if err := checkIfName("test", ok); err != nil {
			t.Errorf("%q: %v", ok, err)
		}
	}
	for _, bad := range []string{"", ".", "..", "x234567890123456", "a/b", "a:b", "a b", "a\tb", "ä"} {
		if err := checkIfName("test", bad); !IsInvalid(err) {
			t.Errorf("%q: got %v, want ErrInvalid", bad, err)
		}
	}
}

func TestRandomMAC(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		m, err := randomMAC()
		if err != nil {
			t.Fatal(err)
		}
		if len(m) != 6 || m[0]&0x01 != 0 || m[0]&0x02 == 0 {
			t.Fatalf("%s is not a locally administered unicast MAC", m)
		}
		seen[m.String()] = true
	}
	if len(seen) < 100 {
		t.Errorf("only %d distinct MACs out of 100", len(seen))
	}
}

func TestLastAddr(t *testing.T) {
	tests := map[string]string{
		"10.244.3.0/24": "10.244.3.255", "10.244.3.77/24": "10.244.3.255", "10.0.0.0/8": "10.255.255.255",
		"10.1.2.3/32": "10.1.2.3", "fd00::/120": "fd00::ff",
	}
	for in, want := range tests {
		if got := lastAddr(mustPrefix(in)); got != mustAddr(want) {
			t.Errorf("lastAddr(%s) = %s, want %s", in, got, want)
		}
	}
}

func TestPrefixConversion(t *testing.T) {
	for _, s := range []string{"10.244.3.5/24", "0.0.0.0/0", "fd00::5/64", "192.0.2.1/32"} {
		p := mustPrefix(s)
		back, ok := prefixOf(ipNetOf(p))
		if !ok || back != p {
			t.Errorf("%s -> %v -> %s (%v)", s, ipNetOf(p), back, ok)
		}
	}
	// net.ParseCIDR gives 16-byte IPs with 4-byte masks; IPv4 must come back as IPv4.
	ip, n, _ := net.ParseCIDR("10.244.3.5/24")
	n.IP = ip.To16()
	if p, ok := prefixOf(n); !ok || p != mustPrefix("10.244.3.5/24") {
		t.Errorf("16-byte IPv4: got %s", p)
	}
	if _, ok := prefixOf(nil); ok {
		t.Error("nil IPNet converted")
	}
}

func TestCheckRoutes(t *testing.T) {
	gw := Route{Dst: mustPrefix("10.244.5.0/24"), Gateway: mustAddr("10.244.5.1"), Dev: "fabric0", OnLink: true}
	tests := []struct {
		name   string
		routes []Route
		errHas string
	}{
		{"empty", nil, ""},
		{"onlink via dev", []Route{gw}, ""},
		{"dev only", []Route{{Dst: mustPrefix("10.244.6.0/24"), Dev: "fabric0"}}, ""},
		{"gateway only", []Route{{Dst: mustPrefix("10.244.6.0/24"), Gateway: mustAddr("10.0.0.1")}}, ""},
		{"v6", []Route{{Dst: mustPrefix("fd00:5::/64"), Gateway: mustAddr("fd00::1"), Dev: "fabric0", OnLink: true}}, ""},
		{"no dst", []Route{{Dev: "fabric0"}}, "no destination"},
		{"host bits", []Route{{Dst: mustPrefix("10.244.5.1/24"), Dev: "fabric0"}}, "host bits"},
		{"nothing to go by", []Route{{Dst: mustPrefix("10.244.5.0/24")}}, "gateway or a device"},
		{"onlink without dev", []Route{{Dst: mustPrefix("10.244.5.0/24"), Gateway: mustAddr("10.244.5.1"), OnLink: true}}, "onlink"},
		{"family", []Route{{Dst: mustPrefix("10.244.5.0/24"), Gateway: mustAddr("fd00::1"), Dev: "x"}}, "families"},
		{"src family", []Route{{Dst: mustPrefix("10.244.5.0/24"), Dev: "x", Src: mustAddr("fd00::1")}}, "families"},
		{"bad dev", []Route{{Dst: mustPrefix("10.244.5.0/24"), Dev: "fabric0-too-long-name"}}, "more than 15"},
		{"bad mtu", []Route{{Dst: mustPrefix("10.244.5.0/24"), Dev: "fabric0", MTU: 10}}, "MTU"},
		{"duplicate", []Route{gw, gw}, "twice"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := checkRoutes(tt.routes)
			if tt.errHas == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !IsInvalid(err) || !strings.Contains(err.Error(), tt.errHas) {
				t.Fatalf("got %v, want ErrInvalid mentioning %q", err, tt.errHas)
			}
			// ReconcileRoutes refuses it before opening netlink.
			if _, err := ReconcileRoutes(tt.routes); !IsInvalid(err) {
				t.Errorf("ReconcileRoutes: got %v, want ErrInvalid", err)
			}
		})
	}
}

func TestRouteString(t *testing.T) {
	r := Route{Dst: mustPrefix("10.244.5.0/24"), Gateway: mustAddr("10.244.5.1"), Dev: "fabric0", OnLink: true, MTU: 1400, Src: mustAddr("10.244.3.1")}
	want := "10.244.5.0/24 via 10.244.5.1 dev fabric0 onlink src 10.244.3.1 mtu 1400"
	if r.String() != want {
		t.Errorf("got %q, want %q", r.String(), want)
	}
	if !(RouteChanges{}).Empty() || (RouteChanges{Removed: []Route{r}}).Empty() {
		t.Error("RouteChanges.Empty is wrong")
	}
}

func TestErrorClasses(t *testing.T) {
	e := existsf("interface %s already exists", "eth0")
	if !IsInvalid(e) || !errors.Is(e, ErrExists) {
		t.Errorf("existsf: %v", e)
	}
	if errors.Is(invalidf("x"), ErrExists) {
		t.Error("invalidf matches ErrExists")
	}
	if IsInvalid(errors.New("kernel said no")) {
		t.Error("plain error is invalid")
	}
}

func TestOtherValidation(t *testing.T) {
	if _, err := SetLinkUp("x234567890123456", 0); !IsInvalid(err) {
		t.Errorf("SetLinkUp bad name: %v", err)
	}
	if _, err := SetLinkUp("fabric0", 40); !IsInvalid(err) {
		t.Errorf("SetLinkUp bad MTU: %v", err)
	}
	if _, err := EnsureAddr("fabric0", netip.Prefix{}); !IsInvalid(err) {
		t.Errorf("EnsureAddr no addr: %v", err)
	}
	if _, err := ReconcileAddrs("fabric0", []netip.Prefix{mustPrefix("10.0.0.1/24"), mustPrefix("10.0.0.1/16")}, netip.Prefix{}); !IsInvalid(err) {
		t.Errorf("ReconcileAddrs conflicting: %v", err)
	}
	if err := Detach("a/b"); !IsInvalid(err) {
		t.Errorf("Detach bad name: %v", err)
	}
	if _, _, err := LinkByAddr(netip.Addr{}); !IsInvalid(err) {
		t.Errorf("LinkByAddr zero: %v", err)
	}
	if _, err := ContainerLink("/proc/self/status", "eth0"); !IsInvalid(err) {
		t.Errorf("ContainerLink bad netns: %v", err)
	}
	if err := TxChecksumOff(""); !IsInvalid(err) {
		t.Errorf("TxChecksumOff empty: %v", err)
	}
}

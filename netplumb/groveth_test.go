package netplumb

import (
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
)

// TestEnsureGROVeth: the pair is made with the kernel end's MAC, the MTU, GRO on and TX
// checksum offload off; in a namespace entered without remounting /sys the gro_flush_timeout
// step refuses to write another namespace's device (fabricd runs where /sys is its own, as
// `ip netns exec` arranges; the lab tests cover that path). Disabled, the pair goes, and
// another device of the name is neither removed nor a failure; enabled, it is refused.
func TestEnsureGROVeth(t *testing.T) {
	hn := nlIn(t, newHost(t))
	mac, _ := net.ParseMAC("0a:01:02:03:04:05")
	g := GROVeth{KernelDev: "gw0-wgk", SwitchDev: "gw0-wgp", Enabled: true, MAC: mac, MTU: 9000, FlushTimeout: 50 * time.Microsecond}
	_, err := EnsureGROVeth(g)
	if err != nil && !strings.Contains(err.Error(), "mount sysfs in this network namespace") {
		t.Errorf("EnsureGROVeth: %v (sysfs is this namespace's?)", err)
	}
	k, kerr := hn.LinkByName("gw0-wgk")
	p, perr := hn.LinkByName("gw0-wgp")
	if kerr != nil || perr != nil {
		t.Fatalf("pair: %v %v", kerr, perr)
	}
	if k.Attrs().HardwareAddr.String() != mac.String() || k.Attrs().MTU != 9000 || p.Attrs().MTU != 9000 || k.Attrs().ParentIndex != p.Attrs().Index {
		t.Errorf("kernel end %+v, switch end %+v", k.Attrs(), p.Attrs())
	}
	if on, err := txChecksumOn("gw0-wgk"); err != nil || on {
		t.Errorf("kernel end TX checksum offload on %v (%v)", on, err)
	}
	if c, err := setFeature("gw0-wgk", "rx-gro", true); err != nil || c {
		t.Errorf("GRO was not on: changed %v, %v", c, err)
	}
	if err == nil {
		if c, err := EnsureGROVeth(g); err != nil || c {
			t.Errorf("second EnsureGROVeth: changed %v, %v", c, err)
		}
	}

	g.Enabled = false
	if c, err := EnsureGROVeth(g); err != nil || !c {
		t.Errorf("disable: changed %v, %v", c, err)
	}
	for _, n := range []string{"gw0-wgk", "gw0-wgp"} {
		if _, err := hn.LinkByName(n); err == nil {
			t.Errorf("%s still there after disable", n)
		}
	}
	if err := hn.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "gw0-wgk"}}); err != nil {
		t.Fatal(err)
	}
	if c, err := EnsureGROVeth(g); err != nil || c {
		t.Errorf("disable with a bridge of the name: changed %v, %v", c, err)
	}
	if _, err := hn.LinkByName("gw0-wgk"); err != nil {
		t.Errorf("the bridge went: %v", err)
	}
	g.Enabled = true
	if _, err := EnsureGROVeth(g); !errors.Is(err, ErrExists) {
		t.Errorf("enable over a bridge: %v, want ErrExists", err)
	}
}

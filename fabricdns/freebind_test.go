package fabricdns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"syscall"
	"testing"

	"github.com/miekg/dns"
	"github.com/vishvananda/netns"

	"github.com/ovsfabric/ovsfabric/lab/labtest"
)

// inNetns runs fn on an OS thread switched into the named network namespace, so the sockets
// fn opens live there.
func inNetns(t *testing.T, name string, fn func()) {
	t.Helper()
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			done <- err
			return
		}
		defer orig.Close()
		target, err := netns.GetFromName(name)
		if err != nil {
			done <- err
			return
		}
		defer target.Close()
		if err := netns.Set(target); err != nil {
			done <- err
			return
		}
		defer func() {
			// Back to the host's namespace, or leave the thread locked: the runtime then
			// discards it instead of reusing a thread in the wrong namespace.
			if netns.Set(orig) == nil {
				runtime.UnlockOSThread()
			}
		}()
		fn()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%v: %v\n%s", args, err, out)
	}
}

// TestFreebind: fabricd opens a gateway's DNS sockets before the gateway has its address.
// In a fresh network namespace a plain bind to the address fails, fabricdns's succeeds, and
// once the address appears the server answers on it.
func TestFreebind(t *testing.T) {
	labtest.Require(t, "the IP_FREEBIND test (a network namespace)", "ip")
	ip, err := labtest.LookPath("ip")
	if err != nil {
		t.Fatal(err)
	}
	ns := fmt.Sprintf("fabricdns-test-%d", os.Getpid())
	run(t, ip, "netns", "add", ns)
	t.Cleanup(func() { _ = exec.Command(ip, "netns", "del", ns).Run() })
	run(t, ip, "-n", ns, "link", "set", "lo", "up")

	gw := netip.MustParseAddr("10.99.0.1")
	tab := NewTable()
	if err := tab.SetNetworks([]Network{{Name: "blue", Subnets: []netip.Prefix{netip.MustParsePrefix("10.99.0.0/24")}}}); err != nil {
		t.Fatal(err)
	}
	if err := tab.Replace([]Record{{Network: "blue", Name: "web", Addr: netip.MustParseAddr("10.99.0.2")}}); err != nil {
		t.Fatal(err)
	}
	s := newTestServer(t, tab, Config{Upstreams: []netip.AddrPort{netip.MustParseAddrPort("10.99.0.53:53")}})
	inNetns(t, ns, func() {
		pc, err := net.ListenPacket("udp4", netip.AddrPortFrom(gw, 0).String())
		if err == nil {
			pc.Close()
			t.Errorf("a plain bind to %s succeeded: the address is already there, so this test proves nothing", gw)
		} else if !errors.Is(err, syscall.EADDRNOTAVAIL) {
			t.Errorf("plain bind: %v, want EADDRNOTAVAIL", err)
		}
		if err := s.Set([]Listener{{Network: "blue", Addr: gw}}); err != nil {
			t.Errorf("Set before the address exists: %v", err)
		}
	})
	if t.Failed() {
		return
	}
	run(t, ip, "-n", ns, "addr", "add", "10.99.0.1/24", "dev", "lo")
	for _, proto := range []string{"udp", "tcp"} {
		inNetns(t, ns, func() {
			in, err := ask(t, proto, gw, s.Addrs()[Listener{Network: "blue", Addr: gw}], question("web.", dns.TypeA))
			if err != nil {
				t.Errorf("%s query once the address exists: %v", proto, err)
				return
			}
			if len(in.Answer) != 1 || in.Answer[0].(*dns.A).A.String() != "10.99.0.2" {
				t.Errorf("%s answer %v, want web = 10.99.0.2", proto, in.Answer)
			}
		})
	}
}

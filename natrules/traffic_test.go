package natrules

import (
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containernetworking/plugins/pkg/ns"
)

// whoami servers answer every TCP connection / UDP datagram with the source
// address they saw, so the client learns what NAT did to it.

func serveTCP(t *testing.T, n *testNS, addr string) {
	t.Helper()
	var ln net.Listener
	n.do(t, func() (err error) {
		ln, err = net.Listen("tcp4", addr)
		return err
	})
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return // listener closed
			}
			go func() {
				defer func() { _ = c.Close() }()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
				_, _ = fmt.Fprintln(c, host)
			}()
		}
	}()
}

func serveUDP(t *testing.T, n *testNS, addr string) {
	t.Helper()
	var pc net.PacketConn
	n.do(t, func() (err error) {
		pc, err = net.ListenPacket("udp4", addr)
		return err
	})
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			_, from, err := pc.ReadFrom(buf)
			if err != nil {
				return // closed
			}
			host, _, _ := net.SplitHostPort(from.String())
			_, _ = pc.WriteTo([]byte(host+"\n"), from)
		}
	}()
}

// ask connects from netns n to addr and returns the source address the
// server saw.
func ask(n *testNS, network, addr string) (string, error) {
	var c net.Conn
	err := n.Do(func(ns.NetNS) error {
		var err error
		c, err = net.DialTimeout(network, addr, 3*time.Second)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("%s dial %s from %s: %w", network, addr, n.name, err)
	}
	defer func() { _ = c.Close() }()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	if strings.HasPrefix(network, "udp") {
		if _, err := c.Write([]byte("who am i?\n")); err != nil {
			return "", fmt.Errorf("udp write to %s from %s: %w", addr, n.name, err)
		}
		buf := make([]byte, 100)
		k, err := c.Read(buf)
		if err != nil {
			return "", fmt.Errorf("udp read from %s in %s: %w", addr, n.name, err)
		}
		return strings.TrimSpace(string(buf[:k])), nil
	}
	b, err := io.ReadAll(c)
	if err != nil {
		return "", fmt.Errorf("tcp read from %s in %s: %w", addr, n.name, err)
	}
	return strings.TrimSpace(string(b)), nil
}

// lab is client ─ veth ─ host ─ veth ─ containers:
//
//	client 172.30.0.100/24  ── up0 172.30.0.11/24  [host, ip_forward=1, our table]
//	ctrA   10.244.3.2/24 gw .1 ── c0 10.244.3.1/24
//	ctrB   10.244.4.2/24 gw .1 ── c1 10.244.4.1/24  (stands in for another cluster subnet)
//
// The client routes 10.244.0.0/16 via the host so that un-masqueraded
// container traffic can be answered (and observed) too.
type lab struct {
	client, host, ctrA, ctrB *testNS
}

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{client: newNS(t), host: newNS(t), ctrA: newNS(t), ctrB: newNS(t)}
	h := l.host
	h.run(t, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", l.client.name)
	h.run(t, "ip", "link", "add", "c0", "type", "veth", "peer", "name", "eth0", "netns", l.ctrA.name)
	h.run(t, "ip", "link", "add", "c1", "type", "veth", "peer", "name", "eth0", "netns", l.ctrB.name)
	for _, a := range [][2]string{{"up0", "172.30.0.11/24"}, {"c0", "10.244.3.1/24"}, {"c1", "10.244.4.1/24"}} {
		h.run(t, "ip", "addr", "add", a[1], "dev", a[0])
		h.run(t, "ip", "link", "set", a[0], "up")
	}
	h.run(t, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	for _, c := range []struct {
		n          *testNS
		addr, gw   string
		viaNetwork string
	}{
		{l.client, "172.30.0.100/24", "172.30.0.11", "10.244.0.0/16"},
		{l.ctrA, "10.244.3.2/24", "10.244.3.1", "default"},
		{l.ctrB, "10.244.4.2/24", "10.244.4.1", "default"},
	} {
		c.n.run(t, "ip", "addr", "add", c.addr, "dev", "eth0")
		c.n.run(t, "ip", "link", "set", "eth0", "up")
		c.n.run(t, "ip", "route", "add", c.viaNetwork, "via", c.gw)
	}
	return l
}

func TestTraffic(t *testing.T) {
	requireRoot(t)
	l := newLab(t)

	serveTCP(t, l.ctrA, "0.0.0.0:80")     // published as tcp *:8080 and 172.30.0.11:8081
	serveUDP(t, l.ctrA, "0.0.0.0:53")     // published as udp 172.30.0.11:5353
	serveTCP(t, l.client, "0.0.0.0:9000") // outside the cluster
	serveTCP(t, l.ctrB, "0.0.0.0:7000")   // inside the cluster, another subnet

	dns := Publish{Proto: "udp", HostAddr: hostIP, HostPort: 5353, ContainerIP: web1, ContainerPort: 53, Container: "dns"}
	web := pub("tcp", 8080, web1, 80, "web1")
	webOnAddr := pub("tcp", 8081, web1, 80, "web1-addr")
	webOnAddr.HostAddr = hostIP
	rules := Rules{Networks: defNet, Masquerade: true, Publish: []Publish{web, webOnAddr, dns}}
	if !l.host.reconcile(t, rules) {
		t.Fatal("Reconcile: changed=false")
	}
	// A second host address, to check that HostAddr-specific ports only
	// answer on that address.
	l.host.run(t, "ip", "addr", "add", "172.30.0.12/24", "dev", "up0")

	type flow struct {
		name    string
		from    *testNS
		network string
		to      string
		want    string // source address seen by the server; "" = must fail
	}
	check := func(t *testing.T, flows []flow) {
		t.Helper()
		for _, f := range flows {
			got, err := ask(f.from, f.network, f.to)
			switch {
			case f.want == "" && err == nil:
				t.Errorf("%s: %s %s from %s got through (server saw %s), want failure", f.name, f.network, f.to, f.from.name, got)
			case f.want != "" && err != nil:
				t.Errorf("%s: %v", f.name, err)
			case f.want != "" && got != f.want:
				t.Errorf("%s: server saw source %s, want %s", f.name, got, f.want)
			}
		}
	}

	t.Run("with masquerade", func(t *testing.T) {
		check(t, []flow{
			{"(a) published port from outside keeps the client address", l.client, "tcp", "172.30.0.11:8080", "172.30.0.100"},
			{"(a) published port on the second host address", l.client, "tcp", "172.30.0.12:8080", "172.30.0.100"},
			{"(a) address-specific published port", l.client, "tcp", "172.30.0.11:8081", "172.30.0.100"},
			{"(a) address-specific port not on other addresses", l.client, "tcp", "172.30.0.12:8081", ""},
			{"(a) unpublished port", l.client, "tcp", "172.30.0.11:8082", ""},
			{"(a) published UDP port", l.client, "udp", "172.30.0.11:5353", "172.30.0.100"},
			{"(a) published port from the host itself (output hook)", l.host, "tcp", "172.30.0.11:8080", "172.30.0.11"},
			{"(b) container to outside is masqueraded", l.ctrA, "tcp", "172.30.0.100:9000", "172.30.0.11"},
			{"(c) container to cluster keeps its address", l.ctrA, "tcp", "10.244.4.2:7000", "10.244.3.2"},
			{"(d) hairpin: container to its own published port", l.ctrA, "tcp", "172.30.0.11:8080", "10.244.3.1"},
			{"(d) hairpin: other container to published port", l.ctrB, "tcp", "172.30.0.11:8080", "10.244.3.1"},
		})
	})

	// Counters show the traffic.
	st := l.host.read(t, "")
	hits := map[string]uint64{}
	for _, e := range st.Entries {
		hits[e.Comment] = e.Packets
	}
	for _, c := range []string{
		commentPublish(web),
		netComment("default", netMasquerade, slice3),
		netComment("default", netHairpin, cluster),
		netComment("default", netWithin, cluster), // ctrA to ctrB
	} {
		if hits[c] == 0 {
			t.Errorf("rule %q counted no packets; entries: %v", c, st.Entries)
		}
	}

	t.Run("without masquerade", func(t *testing.T) {
		rules.Masquerade = false
		if !l.host.reconcile(t, rules) {
			t.Fatal("Reconcile(Masquerade=false): changed=false")
		}
		check(t, []flow{
			{"(b) container to outside keeps its address", l.ctrA, "tcp", "172.30.0.100:9000", "10.244.3.2"},
			{"(a) published port still works", l.client, "tcp", "172.30.0.11:8080", "172.30.0.100"},
			{"(d) hairpin still works", l.ctrA, "tcp", "172.30.0.11:8080", "10.244.3.1"},
		})
	})

	t.Run("after Delete", func(t *testing.T) {
		l.host.do(t, func() error { return Delete("") })
		check(t, []flow{
			{"(a) published port is gone", l.client, "tcp", "172.30.0.11:8080", ""},
			{"(c) routing unaffected", l.ctrA, "tcp", "10.244.4.2:7000", "10.244.3.2"},
		})
	})
}

// flow is one connection a traffic test tries.
type flow struct {
	name    string
	from    *testNS
	network string
	to      string
	want    string // source address seen by the server; "" = must fail
}

// checkFlows tries the flows at once (a refused one waits for its dial timeout) and
// reports every one that did not behave.
func checkFlows(t *testing.T, flows []flow) {
	t.Helper()
	type result struct {
		got string
		err error
	}
	res := make([]result, len(flows))
	var wg sync.WaitGroup
	for i, f := range flows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			res[i].got, res[i].err = ask(f.from, f.network, f.to)
		}()
	}
	wg.Wait()
	for i, f := range flows {
		got, err := res[i].got, res[i].err
		switch {
		case f.want == "" && err == nil:
			t.Errorf("%s: %s %s from %s got through (server saw %s), want failure", f.name, f.network, f.to, f.from.name, got)
		case f.want != "" && err != nil:
			t.Errorf("%s: %v", f.name, err)
		case f.want != "" && got != f.want:
			t.Errorf("%s: server saw source %s, want %s", f.name, got, f.want)
		}
	}
}

// TestTrafficNetworks: three networks meet in one host kernel, which routes between all of
// them. With the table in place, forwarding between two networks is dropped (also to a
// published port of another network), an internal network forwards nothing out and nothing
// in, the same network passes with its source kept, and only non-internal networks are
// masqueraded to the outside.
//
//	client 172.30.0.100/24  ── up0 172.30.0.11/24   [host, ip_forward=1, our table]
//	a1 10.244.3.2/24 (default) ── c0 10.244.3.1/24
//	a2 10.244.4.2/24 (default, stands in for another host's slice) ── c1 10.244.4.1/24
//	b1 10.50.1.2/24  (blue)    ── c2 10.50.1.1/24
//	r1 10.60.1.2/24  (red, internal) ── c3 10.60.1.1/24
func TestTrafficNetworks(t *testing.T) {
	requireRoot(t)
	client, host := newNS(t), newNS(t)
	ctrs := []struct {
		n           *testNS
		dev, ip, gw string
	}{
		{newNS(t), "c0", "10.244.3.2/24", "10.244.3.1/24"},
		{newNS(t), "c1", "10.244.4.2/24", "10.244.4.1/24"},
		{newNS(t), "c2", "10.50.1.2/24", "10.50.1.1/24"},
		{newNS(t), "c3", "10.60.1.2/24", "10.60.1.1/24"},
	}
	a1, a2, b1, r1 := ctrs[0].n, ctrs[1].n, ctrs[2].n, ctrs[3].n
	host.run(t, "ip", "link", "add", "up0", "type", "veth", "peer", "name", "eth0", "netns", client.name)
	host.run(t, "ip", "addr", "add", "172.30.0.11/24", "dev", "up0")
	host.run(t, "ip", "link", "set", "up0", "up")
	client.run(t, "ip", "addr", "add", "172.30.0.100/24", "dev", "eth0")
	client.run(t, "ip", "link", "set", "eth0", "up")
	client.run(t, "ip", "route", "add", "10.0.0.0/8", "via", "172.30.0.11")
	for _, c := range ctrs {
		host.run(t, "ip", "link", "add", c.dev, "type", "veth", "peer", "name", "eth0", "netns", c.n.name)
		host.run(t, "ip", "addr", "add", c.gw, "dev", c.dev)
		host.run(t, "ip", "link", "set", c.dev, "up")
		c.n.run(t, "ip", "addr", "add", c.ip, "dev", "eth0")
		c.n.run(t, "ip", "link", "set", "eth0", "up")
		c.n.run(t, "ip", "route", "add", "default", "via", strings.Split(c.gw, "/")[0])
	}
	host.run(t, "sysctl", "-q", "-w", "net.ipv4.ip_forward=1")
	for _, n := range []*testNS{a1, a2, b1, r1} {
		serveTCP(t, n, "0.0.0.0:7000")
	}
	serveTCP(t, client, "0.0.0.0:9000")

	// Without the table the host kernel routes between all of them: the drops below are
	// the table's doing.
	t.Run("without the table", func(t *testing.T) {
		checkFlows(t, []flow{
			{"default to blue", a1, "tcp", "10.50.1.2:7000", "10.244.3.2"},
			{"blue to red", b1, "tcp", "10.60.1.2:7000", "10.50.1.2"},
			{"red to outside", r1, "tcp", "172.30.0.100:9000", "10.60.1.2"},
		})
	})

	rules := Rules{
		Networks: []Network{
			{Name: "default", CIDR: cluster, Slice: slice3},
			{Name: "blue", CIDR: netip.MustParsePrefix("10.50.0.0/16"), Slice: netip.MustParsePrefix("10.50.1.0/24")},
			{Name: "red", CIDR: netip.MustParsePrefix("10.60.0.0/16"), Slice: netip.MustParsePrefix("10.60.1.0/24"), Internal: true},
		},
		Masquerade: true,
		Publish: []Publish{
			pub("tcp", 8080, web1, 7000, "a1"),
			pub("tcp", 8081, netip.MustParseAddr("10.50.1.2"), 7000, "b1"),
		},
	}
	if !host.reconcile(t, rules) {
		t.Fatal("Reconcile: changed=false")
	}
	t.Run("with the table", func(t *testing.T) {
		checkFlows(t, []flow{
			{"same network, another slice: source kept", a1, "tcp", "10.244.4.2:7000", "10.244.3.2"},
			{"same network, back", a2, "tcp", "10.244.3.2:7000", "10.244.4.2"},
			{"default to blue dropped", a1, "tcp", "10.50.1.2:7000", ""},
			{"blue to default dropped", b1, "tcp", "10.244.3.2:7000", ""},
			{"default to red dropped", a1, "tcp", "10.60.1.2:7000", ""},
			{"red to default dropped", r1, "tcp", "10.244.3.2:7000", ""},
			{"blue to red dropped", b1, "tcp", "10.60.1.2:7000", ""},
			{"red to blue dropped", r1, "tcp", "10.50.1.2:7000", ""},
			{"default to outside masqueraded", a1, "tcp", "172.30.0.100:9000", "172.30.0.11"},
			{"blue to outside masqueraded", b1, "tcp", "172.30.0.100:9000", "172.30.0.11"},
			{"another slice of default to outside: not this host's to masquerade", a2, "tcp", "172.30.0.100:9000", "10.244.4.2"},
			{"internal red to outside dropped", r1, "tcp", "172.30.0.100:9000", ""},
			{"outside into internal red dropped", client, "tcp", "10.60.1.2:7000", ""},
			{"outside into blue routed", client, "tcp", "10.50.1.2:7000", "172.30.0.100"},
			{"published port of default from outside", client, "tcp", "172.30.0.11:8080", "172.30.0.100"},
			{"published port of blue from outside", client, "tcp", "172.30.0.11:8081", "172.30.0.100"},
			{"hairpin within default: source is the gateway toward the server", a2, "tcp", "172.30.0.11:8080", "10.244.3.1"},
			{"hairpin within blue", b1, "tcp", "172.30.0.11:8081", "10.50.1.1"},
			{"blue to a published port of default dropped", b1, "tcp", "172.30.0.11:8080", ""},
			{"red to a published port of blue dropped", r1, "tcp", "172.30.0.11:8081", ""},
		})
	})
	st := host.read(t, "")
	hits := map[string]uint64{}
	for _, e := range st.Entries {
		hits[e.Comment] = e.Packets
	}
	for _, c := range []string{
		netComment("default", netMasquerade, slice3),
		netComment("blue", netMasquerade, netip.MustParsePrefix("10.50.1.0/24")),
		netComment("red", netIntOut, netip.MustParsePrefix("10.60.0.0/16")),
		netComment("red", netIntIn, netip.MustParsePrefix("10.60.0.0/16")),
		netComment("blue", netBetween, netip.MustParsePrefix("10.50.0.0/16")),
		netComment("default", netBetween, cluster),
	} {
		if hits[c] == 0 {
			t.Errorf("rule %q counted no packets; entries: %v", c, st.Entries)
		}
	}
	for _, e := range st.Entries {
		if e.Chain == chainPostrouting && strings.Contains(e.Comment, "network red") && strings.Contains(e.Comment, "masquerade") {
			t.Errorf("internal network red has a masquerade rule: %v", e)
		}
	}
	if host.reconcile(t, rules) {
		t.Error("second Reconcile: changed=true")
	}

	t.Run("after Delete", func(t *testing.T) {
		host.do(t, func() error { return Delete("") })
		checkFlows(t, []flow{
			{"default to blue routed again", a1, "tcp", "10.50.1.2:7000", "10.244.3.2"},
		})
	})
}

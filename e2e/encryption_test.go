package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
	"github.com/ovsfabric/ovsfabric/lab/labtest"
)

// TestEncryptedFabric runs fabricd with --encryption wireguard on three lab hosts (userspace
// datapath, wireguard-go in its device process) and checks what docs/encryption.md promises: no tunnel
// port, the ping matrix on the default network and on a second one, isolation between them
// (also against a host that sends across networks itself: the receiving host drops it), an
// underlay capture during marker pings and a TCP transfer holding nothing but WireGuard and
// gossip, fabricctl's status and handshakes, a host with --encryption none refused, a key
// rotation under continuous ping without loss, fabricd restarts (SIGTERM and SIGKILL) under
// continuous ping without loss (the device process is adopted), a killed device process
// started again, and leave stopping it.
func TestEncryptedFabric(t *testing.T) {
	requireLab(t)
	labtest.Require(t, "the encrypted fabric lab test", "tcpdump", "nft", "iperf3")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	l := upLab(t, ctx, 3, false)
	t.Cleanup(func() { dumpLogsOnFailure(t, l) })
	idb := make([]byte, 3)
	if _, err := rand.Read(idb); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(idb)
	f := fabriclab.New(l, fabriclab.Options{Bin: binDir, Resync: 2 * time.Second, Extra: []string{"--encryption", "wireguard"}})
	// A userspace device's UAPI socket is machine-wide: one interface name per host and run.
	wgName := func(h *lab.Host) string { return "wg" + id + h.Name }
	wgFlags := func(h *lab.Host) []string {
		return []string{"--wireguard-interface", wgName(h), "--wireguard-key-file", filepath.Join(h.Dir, "wireguard.key")}
	}
	for _, h := range l.Hosts {
		if _, err := f.Start(ctx, h, wgFlags(h)...); err != nil {
			t.Fatal(err)
		}
	}
	took, err := f.WaitConverged(ctx, 2*time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("3 hosts converged with WireGuard handshakes in %s", took.Round(time.Millisecond))
	n1, n2, n3 := f.Node("h1"), f.Node("h2"), f.Node("h3")
	nodes := []*fabriclab.Node{n1, n2, n3}

	// No tunnel port; the key file is the host's alone; the guard route is there.
	for _, n := range nodes {
		h := n.Host
		if ps := tunnelPorts(t, ctx, h); len(ps) != 0 {
			t.Errorf("%s has tunnel ports %v in wireguard mode", h.Name, ps)
		}
		if fi, err := os.Stat(filepath.Join(h.Dir, "wireguard.key")); err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s's key file: %v %v, want mode 0600", h.Name, fi, err)
		}
		if rs := strings.Join(fabricRoutes(t, ctx, h), "\n"); !strings.Contains(rs, "unreachable 10.244.0.0/16") || !strings.Contains(rs, "dev "+wgName(h)) {
			t.Errorf("%s's routes lack the guard or the routes into WireGuard:\n%s", h.Name, rs)
		}
	}
	st1, err := n1.Status(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st1.Encryption != "wireguard" || st1.WireGuard == nil || st1.WireGuard.Implementation != "userspace" || st1.MTU != 1440 {
		t.Errorf("h1 status: encryption %q, wireguard %+v, mtu %d; want userspace WireGuard and MTU 1440", st1.Encryption, st1.WireGuard, st1.MTU)
	}
	out := fabricctl(t, ctx, n1, "status")
	if !strings.Contains(out, "userspace WireGuard") {
		t.Errorf("fabricctl status does not say userspace WireGuard:\n%s", out)
	}
	out = fabricctl(t, ctx, n1, "peers")
	if !strings.Contains(out, "WIREGUARD HANDSHAKE") || strings.Count(out, " ok (") != 2 {
		t.Errorf("fabricctl peers does not show two completed handshakes:\n%s", out)
	}
	t.Logf("fabricctl peers on h1:\n%s", out)

	// A second network, created on h1, served everywhere.
	if _, err := n1.Client().CreateNetwork(ctx, api.NetworkCreateRequest{Name: "blue", Subnet: "10.50.0.0/16"}); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		waitNetworks(t, ctx, n, []string{"blue", "default"})
	}
	var ds, bs []*fabriclab.Container
	for i, n := range nodes {
		d, err := attachRetry(ctx, f, n, fmt.Sprintf("d%d", i+1), "default")
		if err != nil {
			t.Fatal(err)
		}
		b, err := attachRetry(ctx, f, n, fmt.Sprintf("b%d", i+1), "blue")
		if err != nil {
			t.Fatal(err)
		}
		ds, bs = append(ds, d), append(bs, b)
	}
	assertMatrix(t, ctx, ds, 6)
	assertMatrix(t, ctx, bs, 6)
	// Isolation: no container reaches the other network, on its host or another.
	var wg sync.WaitGroup
	for _, a := range ds {
		for _, b := range bs {
			for _, p := range [][2]*fabriclab.Container{{a, b}, {b, a}} {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if _, got, _ := fabriclab.Ping(ctx, p[0].NetNS, p[1].IP, 2, 200*time.Millisecond); got > 0 {
						t.Errorf("%s (%s) reaches %s (%s) on the other network", p[0].Name, p[0].Node.Host.Name, p[1].Name, p[1].Node.Host.Name)
					}
				}()
			}
		}
	}
	wg.Wait()
	// The receiving host enforces it: h1 itself sends from its default gateway address to
	// b2 on blue (WireGuard accepts it, the source is one of h1's slices); h2 drops it.
	drops := func() string {
		out, _ := n2.Host.Run(ctx, "nft", "list", "chain", "ip", "ovsfabric", "from_wireguard")
		return out
	}
	before := drops()
	if out, err := n1.Host.Run(ctx, "ping", "-c", "2", "-W", "1", "-I", ds[0].A.Gateway, bs[1].IP); err == nil {
		t.Errorf("h1's %s reaches %s on blue:\n%s", ds[0].A.Gateway, bs[1].IP, out)
	}
	if after := drops(); after == before || !strings.Contains(after, "drop") {
		t.Errorf("h2's WireGuard check counted no drop:\nbefore:\n%s\nafter:\n%s", before, after)
	}

	// The underlay sees WireGuard and gossip only, never the marker, during marker pings
	// on both networks and a TCP transfer.
	marker, _ := hex.DecodeString(wgMarker)
	pcapFile, stopCapture := startCapture(t, ctx, l, "encrypted")
	for _, p := range [][2]*fabriclab.Container{{ds[0], ds[1]}, {ds[2], ds[0]}, {bs[0], bs[2]}, {bs[1], bs[0]}} {
		if out, err := lab.RunIn(ctx, p[0].NetNS, "ping", "-c", "5", "-i", "0.2", "-s", "1000", "-p", wgMarker, p[1].IP); err != nil {
			t.Errorf("marker ping %s -> %s: %v\n%s", p[0].Name, p[1].Name, err, out)
		}
	}
	for _, p := range [][2]*fabriclab.Container{{ds[0], ds[1]}, {bs[2], bs[1]}} {
		t.Logf("TCP %s -> %s over WireGuard: %s", p[0].Name, p[1].Name, iperf(t, ctx, l, p[0], p[1]))
	}
	pcap := stopCapture()
	if n := bytes.Count(pcap, marker); n != 0 {
		t.Errorf("the marker crossed the underlay in clear %d times", n)
	}
	if out, err := lab.RunIn(ctx, l.Underlay, "tcpdump", "-nr", pcapFile, "ip and not udp port 51820 and not port 7946 and not igmp"); err != nil {
		t.Errorf("read the capture: %v", err)
	} else if other := filterTcpdump(out); other != "" {
		t.Errorf("IPv4 other than WireGuard and gossip crossed the underlay:\n%s", other)
	}
	out, _ = lab.RunIn(ctx, l.Underlay, "tcpdump", "-nr", pcapFile, "udp port 51820")
	if n := strings.Count(filterTcpdump(out), "\n"); n < 1000 {
		t.Errorf("the capture holds only %d WireGuard packets for 20 pings and two transfers (is it capturing?)", n)
	} else {
		t.Logf("underlay capture: %d WireGuard packets, 0 markers, nothing else but gossip", n)
	}
	t.Logf("ping d1 -> d2 over WireGuard (1000-byte payload): %s", rtt(t, ctx, ds[0], ds[1].IP))

	// A host with --encryption none is refused, and refuses.
	t.Run("mismatch refused", func(t *testing.T) {
		h4, err := l.AddHost(ctx)
		if err != nil {
			t.Fatal(err)
		}
		args := slices.Clone(f.Args(h4, f.JoinAddrs(h4.Name)))
		for i := range args {
			if args[i] == "wireguard" && args[i-1] == "--encryption" {
				args[i] = "none"
			}
		}
		p, err := h4.Start(ctx, "fabricd", args, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Wait(60 * time.Second); err == nil {
			t.Error("fabricd with --encryption none joined a wireguard fabric and exited 0")
		}
		log, _ := os.ReadFile(p.LogFile())
		if !strings.Contains(string(log), "encryption wireguard != local (none)") {
			t.Errorf("h4's log does not say why it was refused:\n%s", log)
		}
		var seen bool
		for _, n := range nodes {
			log, _ := os.ReadFile(n.Proc.LogFile())
			seen = seen || strings.Contains(string(log), "encryption (none) != local wireguard")
		}
		if !seen {
			t.Error("no member logged why it refused h4")
		}
		for _, n := range nodes {
			st, _ := n.Status(ctx)
			for _, p := range st.Peers {
				if p.Name == h4.Name && p.State == "alive" {
					t.Errorf("%s lists h4 alive", n.Host.Name)
				}
			}
		}
	})

	// Rotation under continuous ping, both directions through h1.
	t.Run("rotate", func(t *testing.T) {
		old := st1.WireGuard.PublicKey
		s12 := startStreamEvery(t, ctx, ds[1], ds[0], 20*time.Millisecond)
		s13 := startStreamEvery(t, ctx, ds[0], ds[2], 20*time.Millisecond)
		sb := startStreamEvery(t, ctx, bs[2], bs[0], 20*time.Millisecond)
		time.Sleep(2 * time.Second)
		start := time.Now()
		out := fabricctl(t, ctx, n1, "wireguard", "rotate")
		if !strings.Contains(out, "new public key") || strings.Contains(out, old+" (was") {
			t.Errorf("rotate: %s", out)
		}
		st, _ := n1.Status(ctx)
		newKey := st.WireGuard.PublicKey
		if newKey == old || newKey == "" {
			t.Fatalf("h1's key after rotate %q (was %q)", newKey, old)
		}
		// Every peer configures the new key and completes a handshake with it.
		took := eventually(t, 60*time.Second, "h2 and h3 handshake with h1's new key", func() error {
			for _, n := range []*fabriclab.Node{n2, n3} {
				st, err := n.Status(ctx)
				if err != nil {
					return err
				}
				if err := handshakeSince(st, "h1", newKey, start); err != nil {
					return fmt.Errorf("%s: %w", n.Host.Name, err)
				}
			}
			return nil
		})
		t.Logf("peers completed a handshake with h1's new key %s after the rotate began", took.Round(time.Millisecond))
		time.Sleep(2 * time.Second)
		for _, s := range []*fabriclab.Stream{s12, s13, sb} {
			r := stopStream(t, s)
			t.Logf("%s during the rotation: %s", s.Name, r)
			if r.Sent < 100 || r.Lost() > 1 {
				t.Errorf("%s lost %d of %d pings during the rotation (want at most the one cut by the stop)", s.Name, r.Lost(), r.Sent)
			}
		}
		key, err := os.ReadFile(filepath.Join(n1.Host.Dir, "wireguard.key"))
		if err != nil || len(bytes.TrimSpace(key)) != 44 {
			t.Errorf("h1's key file after rotate: %q %v", key, err)
		}
		st1.WireGuard.PublicKey = newKey
	})

	// fabricd restarts, gently and by SIGKILL, keep the key and the WireGuard device process
	// (ovsfabric-wg outlives fabricd and is adopted): encrypted traffic through h2 and from
	// it, on both networks, does not notice.
	t.Run("restart", func(t *testing.T) {
		st, err := n2.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		key := st.WireGuard.PublicKey
		pid := wgPID(t, n2.Host, wgName(n2.Host))
		if st.WireGuard.PID != pid {
			t.Errorf("h2's status says device process %d, its pidfile %d", st.WireGuard.PID, pid)
		}
		if out := fabricctl(t, ctx, n2, "status"); !strings.Contains(out, fmt.Sprintf("userspace WireGuard on %s, process %d", wgName(n2.Host), pid)) {
			t.Errorf("fabricctl status does not name the device process %d:\n%s", pid, out)
		}
		streams := []*fabriclab.Stream{
			startStreamEvery(t, ctx, ds[0], ds[1], 20*time.Millisecond),
			startStreamEvery(t, ctx, bs[1], bs[2], 20*time.Millisecond),
		}
		time.Sleep(time.Second)
		for _, kill := range []bool{false, true} {
			how := "SIGTERM"
			if kill {
				how = "SIGKILL"
				err = n2.Proc.Kill()
			} else {
				err = n2.Proc.Stop(10 * time.Second)
			}
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(500 * time.Millisecond) // fabricd down a while
			start := time.Now()
			if n2, err = f.StartArgs(ctx, n2.Host, n2.Args); err != nil {
				t.Fatal(err)
			}
			t.Logf("h2's fabricd stopped by %s and started again: API up after %s", how, time.Since(start).Round(time.Millisecond))
			if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
				t.Fatal(err)
			}
			time.Sleep(time.Second)
			if st, err = n2.Status(ctx); err != nil {
				t.Fatal(err)
			}
			if st.WireGuard == nil || st.WireGuard.PublicKey != key || st.WireGuard.PID != pid {
				t.Errorf("h2 after its %s restart: WireGuard %+v, want key %s and device process %d adopted", how, st.WireGuard, key, pid)
			}
		}
		for _, s := range streams {
			r := stopStream(t, s)
			t.Logf("%s across h2's fabricd restarts (SIGTERM, then SIGKILL): %s (lost %d, missing %v)", s.Name, r, r.Lost(), r.Missing)
			if r.Sent < 100 || r.Lost() > 1 {
				t.Errorf("%s lost %d of %d pings across h2's fabricd restarts (want at most the one cut by the stop)", s.Name, r.Lost(), r.Sent)
			}
		}
	})

	// A device process that dies is started again by fabricd: a gap, then traffic again.
	t.Run("device crash", func(t *testing.T) {
		pid := wgPID(t, n2.Host, wgName(n2.Host))
		s := startStreamEvery(t, ctx, ds[0], ds[1], 20*time.Millisecond)
		time.Sleep(time.Second)
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		took := eventually(t, 60*time.Second, "h2's fabricd starts its device process again", func() error {
			st, err := n2.Status(ctx)
			if err != nil {
				return err
			}
			if st.WireGuard == nil || st.WireGuard.PID == 0 || st.WireGuard.PID == pid {
				return fmt.Errorf("device process %+v", st.WireGuard)
			}
			return nil
		})
		if err := fabriclab.Reach(ctx, ds[0].NetNS, ds[1].IP, 60*time.Second); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Second)
		r := stopStream(t, s)
		t.Logf("d1 -> d2 across h2's device process killed (restarted after %s): %s (lost %d)", took.Round(time.Millisecond), r, r.Lost())
		if r.Outage > 30*time.Second {
			t.Errorf("traffic through h2 was cut for %s by its device process's death", r.Outage)
		}
		if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
		// Afterwards nothing is lost, on either network.
		after := []*fabriclab.Stream{
			startStreamEvery(t, ctx, ds[0], ds[1], 20*time.Millisecond),
			startStreamEvery(t, ctx, bs[1], bs[2], 20*time.Millisecond),
		}
		time.Sleep(4 * time.Second)
		for _, s := range after {
			r := stopStream(t, s)
			t.Logf("%s after the device process restart: %s", s.Name, r)
			if r.Sent < 100 || r.Lost() > 1 {
				t.Errorf("%s lost %d of %d pings after h2's device process restart", s.Name, r.Lost(), r.Sent)
			}
		}
	})

	// Leaving the fabric stops the device process.
	t.Run("leave", func(t *testing.T) {
		n3 := f.Node("h3")
		pid := wgPID(t, n3.Host, wgName(n3.Host))
		fabricctl(t, ctx, n3, "leave")
		if err := n3.Proc.Wait(30 * time.Second); err != nil {
			t.Fatal(err)
		}
		if ps := n3.Host.DetachedProcs(); len(ps) != 0 || syscall.Kill(pid, 0) == nil && procIsDevice(pid) {
			t.Errorf("h3's WireGuard device process %d still runs after leave (%d detached processes)", pid, len(ps))
		}
	})
}

// wgPID is the PID of host h's WireGuard device process, from its pidfile beside fabricd's
// API socket.
func wgPID(t *testing.T, h *lab.Host, iface string) int {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(h.Dir, "wireguard-"+iface+".pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || !procIsDevice(pid) {
		t.Fatalf("%s's device pidfile %q: not a running ovsfabric-wg (%v)", h.Name, b, err)
	}
	return pid
}

// procIsDevice reports whether pid runs ovsfabric-wg.
func procIsDevice(pid int) bool {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && filepath.Base(strings.Split(string(b), "\x00")[0]) == "ovsfabric-wg"
}

// handshakeSince checks that st has a WireGuard peer name with key whose latest handshake is
// after since.
func handshakeSince(st api.Status, name, key string, since time.Time) error {
	if st.WireGuard == nil {
		return fmt.Errorf("no WireGuard in the status")
	}
	for _, p := range st.WireGuard.Peers {
		if p.Name != name {
			continue
		}
		if p.PublicKey != key {
			return fmt.Errorf("peer %s has key %s, want %s", name, p.PublicKey, key)
		}
		if !p.LatestHandshake.After(since) {
			return fmt.Errorf("peer %s: latest handshake %s, not after %s", name, p.LatestHandshake, since)
		}
		return nil
	}
	return fmt.Errorf("no WireGuard peer %s", name)
}

// startStreamEvery is startStream at another interval.
func startStreamEvery(t *testing.T, ctx context.Context, from, to *fabriclab.Container, every time.Duration) *fabriclab.Stream {
	t.Helper()
	s, err := fabriclab.StartStream(ctx, from.Name+"->"+to.Name, from.NetNS, to.IP, every)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _, _ = s.Stop() })
	return s
}

// fabricctl runs fabricctl against n and returns its output.
func fabricctl(t *testing.T, ctx context.Context, n *fabriclab.Node, args ...string) string {
	t.Helper()
	out, err := exec.CommandContext(ctx, filepath.Join(binDir, "fabricctl"), append([]string{"--socket", n.Socket}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("fabricctl %v on %s: %v\n%s", args, n.Host.Name, err, out)
	}
	return string(out)
}

// iperf runs a 3-second iperf3 transfer from one container to another and returns the
// receiver's summary line.
func iperf(t *testing.T, ctx context.Context, l *lab.Lab, from, to *fabriclab.Container) string {
	t.Helper()
	srv, err := l.StartIn(ctx, to.NetNS, "iperf3-"+to.Name, []string{"iperf3", "-s", "-1", "-B", to.IP}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Stop(5 * time.Second)
	var out string
	for try := 0; try < 30; try++ {
		if out, err = lab.RunIn(ctx, from.NetNS, "iperf3", "-c", to.IP, "-t", "3", "-f", "m"); err == nil {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if err != nil {
		t.Errorf("iperf3 %s -> %s: %v\n%s", from.Name, to.Name, err, out)
		return ""
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "receiver") {
			return strings.Join(strings.Fields(line), " ")
		}
	}
	return out
}

// rtt pings ip from c 20 times (1000-byte payload) and returns ping's rtt summary.
func rtt(t *testing.T, ctx context.Context, c *fabriclab.Container, ip string) string {
	t.Helper()
	out, err := lab.RunIn(ctx, c.NetNS, "ping", "-n", "-q", "-c", "20", "-i", "0.05", "-s", "1000", ip)
	if err != nil {
		t.Errorf("ping %s: %v\n%s", ip, err, out)
	}
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "rtt") || strings.Contains(line, "received") {
			t.Logf("  %s", strings.TrimSpace(line))
		}
	}
	return strings.TrimSpace(out[strings.LastIndex(out, "=")+1:])
}

// TestEncryptionSwitch switches a running two-host fabric from --encryption none to
// wireguard and back, the way docs/encryption.md describes (every host restarted with the new
// setting): the containers keep their addresses and reach each other after each switch, the
// tunnel ports go and come back, and while encrypted the marker never crosses in clear. It
// runs with both pipelines (the L2 one routes through the host kernel, which does the job) and
// logs a TCP transfer in each mode, in the same run.
func TestEncryptionSwitch(t *testing.T) {
	for _, pipeline := range []string{"routed", "l2"} {
		t.Run(pipeline, func(t *testing.T) { testEncryptionSwitch(t, pipeline) })
	}
}

func testEncryptionSwitch(t *testing.T, pipeline string) {
	requireLab(t)
	labtest.Require(t, "the encryption switch lab test", "tcpdump", "nft", "iperf3")
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()
	l := upLab(t, ctx, 2, false)
	t.Cleanup(func() { dumpLogsOnFailure(t, l) })
	idb := make([]byte, 3)
	if _, err := rand.Read(idb); err != nil {
		t.Fatal(err)
	}
	id := hex.EncodeToString(idb)
	f := fabriclab.New(l, fabriclab.Options{Bin: binDir, Resync: 2 * time.Second, Extra: []string{"--pipeline", pipeline}})
	flags := func(h *lab.Host, mode string) []string {
		return []string{"--encryption", mode, "--wireguard-interface", "wg" + id + h.Name, "--wireguard-key-file", filepath.Join(h.Dir, "wireguard.key")}
	}
	if err := f.StartAll(ctx, l.Hosts, func(h *lab.Host) []string { return flags(h, "none") }); err != nil {
		t.Fatal(err)
	}
	cs, err := f.AddContainers(ctx, "c", api.AttachRequest{})
	if err != nil {
		t.Fatal(err)
	}
	assertMatrix(t, ctx, cs, 2)
	marker, _ := hex.DecodeString(wgMarker)
	markers := func(name string) int {
		_, stop := startCapture(t, ctx, l, name)
		if out, err := lab.RunIn(ctx, cs[0].NetNS, "ping", "-c", "3", "-i", "0.2", "-p", wgMarker, cs[1].IP); err != nil {
			t.Errorf("marker ping: %v\n%s", err, out)
		}
		return bytes.Count(stop(), marker)
	}
	if n := markers("clear"); n == 0 {
		t.Error("without encryption the marker never showed in the capture (is it capturing?)")
	}
	t.Logf("TCP c1 -> c2, %s pipeline, VXLAN: %s", pipeline, iperf(t, ctx, l, cs[0], cs[1]))
	restartAll := func(mode string) time.Duration {
		start := time.Now()
		for _, n := range f.Nodes() {
			if err := n.Proc.Stop(10 * time.Second); err != nil {
				t.Fatal(err)
			}
		}
		for _, h := range l.Hosts {
			f.Forget(h.Name)
			if _, err := f.Start(ctx, h, flags(h, mode)...); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := f.WaitConverged(ctx, time.Minute); err != nil {
			t.Fatal(err)
		}
		for _, c := range cs {
			c.Node = f.Node(c.Node.Host.Name)
		}
		if err := fabriclab.Reach(ctx, cs[0].NetNS, cs[1].IP, 30*time.Second); err != nil {
			t.Fatal(err)
		}
		return time.Since(start)
	}

	took := restartAll("wireguard")
	t.Logf("none -> wireguard: every host restarted and c1 reaches c2 again after %s", took.Round(time.Millisecond))
	for _, h := range l.Hosts {
		if ps := h.DetachedProcs(); len(ps) != 1 || !procIsDevice(ps[0].PID()) {
			t.Errorf("%s: want one WireGuard device process, have %d", h.Name, len(ps))
		}
	}
	assertMatrix(t, ctx, cs, 2)
	for _, h := range l.Hosts {
		if ps := tunnelPorts(t, ctx, h); len(ps) != 0 {
			t.Errorf("%s keeps tunnel ports %v after switching to wireguard", h.Name, ps)
		}
	}
	if n := markers("encrypted"); n != 0 {
		t.Errorf("encrypted: the marker crossed the underlay in clear %d times", n)
	}
	t.Logf("TCP c1 -> c2, %s pipeline, WireGuard: %s", pipeline, iperf(t, ctx, l, cs[0], cs[1]))

	took = restartAll("none")
	t.Logf("wireguard -> none: every host restarted and c1 reaches c2 again after %s", took.Round(time.Millisecond))
	assertMatrix(t, ctx, cs, 2)
	for _, h := range l.Hosts {
		if ps := tunnelPorts(t, ctx, h); len(ps) != 1 {
			t.Errorf("%s has tunnel ports %v after switching back, want one", h.Name, ps)
		}
		if rs := strings.Join(fabricRoutes(t, ctx, h), "\n"); strings.Contains(rs, "unreachable") || strings.Contains(rs, "wg"+id) {
			t.Errorf("%s keeps WireGuard routes after switching back:\n%s", h.Name, rs)
		}
		if ps := h.DetachedProcs(); len(ps) != 0 {
			t.Errorf("%s keeps its WireGuard device process (pid %d) after switching back", h.Name, ps[0].PID())
		}
	}
}

// startCapture starts tcpdump on the underlay bridge and waits until it captures; stop ends
// it (after a moment for the last packets) and returns the capture.
func startCapture(t *testing.T, ctx context.Context, l *lab.Lab, name string) (file string, stop func() []byte) {
	t.Helper()
	file = filepath.Join(l.Dir, name+".pcap")
	p, err := l.StartIn(ctx, l.Underlay, "tcpdump-"+name, []string{"tcpdump", "-i", "br0", "-U", "-s", "0", "-w", file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	eventually(t, 20*time.Second, "tcpdump "+name+" listens", func() error {
		b, _ := os.ReadFile(p.LogFile())
		if !bytes.Contains(b, []byte("listening on")) {
			return fmt.Errorf("tcpdump has not said it listens: %q", b)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	return file, func() []byte {
		time.Sleep(500 * time.Millisecond)
		if err := p.Stop(5 * time.Second); err != nil {
			t.Fatal(err)
		}
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
}

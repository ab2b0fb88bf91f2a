package lab

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/lab/labtest"
)

// requireLab skips a test that needs root and Open vSwitch, unless CI=true: then it fails.
func requireLab(t *testing.T) {
	t.Helper()
	labtest.Require(t, "lab tests (network namespaces, OVS daemons)", "ip", "ethtool", "ovsdb-tool", "ovsdb-server", "ovs-vswitchd", "ovs-vsctl", "ping", "sysctl")
}

// upTestLab builds a lab in a temporary directory and, when the test ends (also on failure),
// takes it down and checks that nothing of it is left.
func upTestLab(t *testing.T, ctx context.Context, cfg Config) *Lab {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "lab")
	}
	cfg.Logger = slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelInfo}))
	start := time.Now()
	l, err := Up(ctx, cfg)
	if err != nil {
		t.Fatal(err) // prerequisites were checked: a lab that cannot start is a failure
	}
	t.Logf("lab %s: %d hosts up in %s", l.Name, len(l.Hosts), time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() { downAndCheck(t, l) })
	return l
}

func downAndCheck(t *testing.T, l *Lab) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	if err := l.Down(ctx); err != nil {
		t.Errorf("down: %v", err)
	}
	t.Logf("lab %s down in %s", l.Name, time.Since(start).Round(time.Millisecond))
	if left := Leftovers(l.Name); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if ns := netnsWithPrefix(NetNSPrefix(l.Name)); len(ns) > 0 {
		t.Errorf("namespaces left: %v", ns)
	}
}

var rttRE = regexp.MustCompile(`rtt min/avg/max/mdev = ([0-9.]+)/([0-9.]+)/([0-9.]+)`)

// ping sends count pings and returns the average RTT line.
func ping(ctx context.Context, from, to string, count int) (string, error) {
	out, err := RunIn(ctx, from, "ping", "-n", "-q", "-c", strconv.Itoa(count), "-i", "0.2", "-W", "1", to)
	if err != nil {
		return "", err
	}
	if strings.Contains(out, "duplicates") {
		return "", fmt.Errorf("ping %s from %s: duplicate replies:\n%s", to, from, out)
	}
	if m := rttRE.FindStringSubmatch(out); m != nil {
		return "avg " + m[2] + " ms (min " + m[1] + ", max " + m[3] + ")", nil
	}
	return out, nil
}

// eventually retries f for up to timeout.
func eventually(timeout time.Duration, f func() error) error {
	deadline := time.Now().Add(timeout)
	for {
		err := f()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestLab(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	l := upTestLab(t, ctx, Config{Hosts: 2, Datapath: "netdev", External: true})
	h1, h2 := l.Host("h1"), l.Host("h2")
	if h1 == nil || h2 == nil || len(l.Hosts) != 2 {
		t.Fatalf("hosts %v", l.Hosts)
	}

	t.Run("underlay through br-phy", func(t *testing.T) {
		for _, h := range l.Hosts {
			out, err := RunIn(ctx, h.NetNS, "ip", "-br", "addr", "show")
			if err != nil {
				t.Fatal(err)
			}
			var brphy, eth0 string
			for _, line := range strings.Split(out, "\n") {
				if f := strings.Fields(line); len(f) > 0 && f[0] == "br-phy" {
					brphy = line
				} else if len(f) > 0 && strings.HasPrefix(f[0], "eth0") {
					eth0 = line
				}
			}
			if !strings.Contains(brphy, h.UnderlayPrefix.String()) || strings.Contains(eth0, "172.30.") {
				t.Errorf("%s: underlay address not on br-phy only:\n%s", h.Name, out)
			}
			show, err := h.Vsctl(ctx, "list-ports", "br-phy")
			if err != nil || strings.TrimSpace(show) != "eth0" {
				t.Errorf("%s: br-phy ports %q, %v", h.Name, show, err)
			}
			route, err := h.Appctl(ctx, "ovs-vswitchd", "ovs/route/show")
			if err != nil || !strings.Contains(route, "172.30.0.0/24 dev br-phy") {
				t.Errorf("%s: OVS userspace route table lacks the underlay via br-phy: %v\n%s", h.Name, err, route)
			}
		}
		rtt, err := ping(ctx, h1.NetNS, h2.UnderlayIP.String(), 5)
		if err != nil {
			t.Fatalf("h1 -> h2 underlay: %v", err)
		}
		t.Logf("h1 -> h2 underlay (br-phy, userspace datapath, both ends): %s", rtt)
		rtt, err = ping(ctx, h2.NetNS, l.ExternalIP.String(), 3)
		if err != nil {
			t.Fatalf("h2 -> external: %v", err)
		}
		t.Logf("h2 -> external %s: %s", l.ExternalIP, rtt)
	})

	t.Run("OVS tools find the host's daemons", func(t *testing.T) {
		show, err := h2.Run(ctx, "ovs-vsctl", "show") // no --db: OVS_RUNDIR from Env
		if err != nil || !strings.Contains(show, "Port eth0") {
			t.Fatalf("ovs-vsctl show: %v\n%s", err, show)
		}
		flows, err := h1.Ofctl(ctx, "dump-flows", "br-phy")
		if err != nil || !strings.Contains(flows, "actions=NORMAL") {
			t.Errorf("ovs-ofctl dump-flows br-phy: %v\n%s", err, flows)
		}
		for _, target := range []string{"ovs-vswitchd", "ovsdb-server"} {
			if v, err := h1.Appctl(ctx, target, "version"); err != nil || !strings.Contains(v, target) {
				t.Errorf("ovs-appctl -t %s version: %v %s", target, err, v)
			}
		}
	})

	t.Run("background processes", func(t *testing.T) {
		p, err := h1.Start(ctx, "sleeper", []string{"sleep", "600"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := eventually(5*time.Second, func() error {
			if !p.Alive() || !slices.Contains(pidsInNetNS(h1.NetNSPath()), p.PID()) {
				return fmt.Errorf("sleeper pid %d not running in %s", p.PID(), h1.NetNS)
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		p2, err := p.Restart(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if p.Alive() || !p2.Alive() || p2.PID() == p.PID() || p2.LogFile() != filepath.Join(h1.Dir, "sleeper.log") {
			t.Fatalf("restart: old %d alive=%v, new %d alive=%v", p.PID(), p.Alive(), p2.PID(), p2.Alive())
		}
		if err := p2.Kill(); err != nil || p2.Alive() {
			t.Fatalf("kill -9: %v", err)
		}
		// A process that ignores SIGTERM is killed after the timeout.
		stubborn, err := h1.Start(ctx, "stubborn", []string{"sh", "-c", "trap '' TERM; exec sleep 600"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // let sh set the trap
		start := time.Now()
		if err := stubborn.Stop(300 * time.Millisecond); err != nil || stubborn.Alive() {
			t.Fatalf("stop of a process ignoring SIGTERM: %v", err)
		}
		t.Logf("SIGTERM ignored, SIGKILL after the timeout: stopped in %s", time.Since(start).Round(time.Millisecond))
		// Exit status comes back through Wait.
		failing, err := h1.Start(ctx, "failing", []string{"sh", "-c", "echo boom; exit 3"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		var ee *exec.ExitError
		if err := failing.Wait(10 * time.Second); !errors.As(err, &ee) || ee.ExitCode() != 3 {
			t.Errorf("wait: %v, want exit status 3", err)
		}
		if b, _ := os.ReadFile(failing.LogFile()); !strings.Contains(string(b), "boom") {
			t.Errorf("log %s: %q", failing.LogFile(), b)
		}
	})

	var h3 *Host
	t.Run("add a host to the running lab", func(t *testing.T) {
		start := time.Now()
		var err error
		if h3, err = l.AddHost(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("AddHost %s took %s", h3.Name, time.Since(start).Round(time.Millisecond))
		if h3.Name != "h3" || h3.UnderlayIP.String() != "172.30.0.13" {
			t.Errorf("new host %s at %s", h3.Name, h3.UnderlayIP)
		}
		if _, err := ping(ctx, h3.NetNS, h1.UnderlayIP.String(), 2); err != nil {
			t.Fatalf("h3 -> h1: %v", err)
		}
	})

	t.Run("cut and restore the underlay", func(t *testing.T) {
		if h3 == nil {
			t.Skip("no h3")
		}
		if err := l.CutUnderlay(ctx, h3); err != nil {
			t.Fatal(err)
		}
		if _, err := ping(ctx, h3.NetNS, h1.UnderlayIP.String(), 1); err == nil {
			t.Fatal("h3 reaches h1 with its underlay cut")
		}
		if _, err := ping(ctx, h2.NetNS, h1.UnderlayIP.String(), 1); err != nil {
			t.Errorf("h2 -> h1 while h3 is cut: %v", err)
		}
		if err := l.RestoreUnderlay(ctx, h3); err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		if err := eventually(10*time.Second, func() error {
			_, err := ping(ctx, h3.NetNS, h1.UnderlayIP.String(), 1)
			return err
		}); err != nil {
			t.Fatalf("after restore: %v", err)
		}
		t.Logf("h3 -> h1 again %s after restore", time.Since(start).Round(time.Millisecond))
	})

	t.Run("OVS restart keeps the database", func(t *testing.T) {
		if _, err := h2.Vsctl(ctx, "add-br", "br-keep", "--", "set", "bridge", "br-keep", "datapath_type=netdev"); err != nil {
			t.Fatal(err)
		}
		mac := func(h *Host, dev string) string {
			out, _ := RunIn(ctx, h.NetNS, "cat", "/sys/class/net/"+dev+"/address")
			return strings.TrimSpace(out)
		}
		brMAC := mac(h2, "br-phy")
		if brMAC != bridgeMAC(h2.UnderlayIP) {
			t.Errorf("br-phy MAC %q, want %s", brMAC, bridgeMAC(h2.UnderlayIP))
		}
		oldDB, oldVS := h2.OVSDBServer().PID(), h2.VSwitchd().PID()
		start := time.Now()
		if err := h2.RestartOVS(ctx); err != nil {
			t.Fatal(err)
		}
		t.Logf("RestartOVS took %s", time.Since(start).Round(time.Millisecond))
		if h2.OVSDBServer().PID() == oldDB || h2.VSwitchd().PID() == oldVS {
			t.Error("daemons kept their PIDs across a restart")
		}
		if got := mac(h2, "br-phy"); got != brMAC {
			t.Errorf("br-phy MAC changed across the restart: %s -> %s", brMAC, got)
		}
		if show, err := h2.Vsctl(ctx, "show"); err != nil || !strings.Contains(show, "br-keep") || !strings.Contains(show, "Port eth0") {
			t.Fatalf("after OVS restart: %v\n%s", err, show)
		}
		if err := eventually(5*time.Second, func() error {
			_, err := ping(ctx, h2.NetNS, h1.UnderlayIP.String(), 1)
			return err
		}); err != nil {
			t.Fatalf("underlay after OVS restart: %v", err)
		}
	})

	t.Run("kill -9 ovs-vswitchd, StartOVS brings it back", func(t *testing.T) {
		vs, db := h1.VSwitchd(), h1.OVSDBServer()
		if err := vs.Kill(); err != nil || vs.Alive() {
			t.Fatalf("kill -9 ovs-vswitchd: %v", err)
		}
		if _, err := ping(ctx, h1.NetNS, h2.UnderlayIP.String(), 1); err == nil {
			t.Error("h1's underlay works without ovs-vswitchd")
		}
		if err := h1.StartOVS(ctx); err != nil {
			t.Fatal(err)
		}
		if h1.OVSDBServer() != db || !db.Alive() || h1.VSwitchd() == vs {
			t.Error("StartOVS restarted a running ovsdb-server or did not start ovs-vswitchd")
		}
		if err := eventually(5*time.Second, func() error {
			_, err := ping(ctx, h1.NetNS, h2.UnderlayIP.String(), 1)
			return err
		}); err != nil {
			t.Fatalf("underlay after ovs-vswitchd came back: %v", err)
		}
	})

	t.Run("container netns", func(t *testing.T) {
		path, err := l.AddNetNS(ctx, h1, "c1")
		if err != nil {
			t.Fatal(err)
		}
		if path != "/var/run/netns/"+h1.NetNS+"-c1" {
			t.Errorf("path %s", path)
		}
		if out, err := RunIn(ctx, filepath.Base(path), "ip", "-br", "link", "show", "lo"); err != nil || !strings.Contains(out, "UP") {
			t.Errorf("lo in %s: %v %s", path, err, out)
		}
		if _, err := l.AddNetNS(ctx, h1, "c1"); err == nil {
			t.Error("same container netns made twice")
		}
		if err := l.DeleteNetNS(ctx, path); err != nil {
			t.Fatal(err)
		}
		if _, err := os.Stat(path); !os.IsNotExist(err) {
			t.Errorf("%s still there", path)
		}
		if _, err := l.AddNetNS(ctx, h2, "c2"); err != nil { // left for Down
			t.Fatal(err)
		}
	})
}

// TestDownAfterCrash drops the Lab value as a crashed harness would and cleans up from the
// state file alone.
func TestDownAfterCrash(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "lab")
	l, err := Up(ctx, Config{Dir: dir, Hosts: 1, External: true})
	if err != nil {
		t.Fatal(err)
	}
	name, built := l.Name, l
	t.Cleanup(func() { downAndCheck(t, built) }) // also if the test fails before its own Down
	c1, err := l.AddNetNS(ctx, l.Hosts[0], "c1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.Hosts[0].Start(ctx, "sleeper", []string{"sleep", "600"}, nil); err != nil {
		t.Fatal(err)
	}
	// A wrapper that execs: its command line no longer names what was started.
	wrapped, err := l.StartIn(ctx, filepath.Base(c1), "wrapped", []string{"sh", "-c", "exec sleep 600"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := eventually(5*time.Second, func() error {
		if !cmdlineMatches(wrapped.PID(), "sleep", "") {
			return errors.New("sh has not exec'd sleep yet")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// A process one of the lab's programs left running on purpose (like fabricd's WireGuard
	// device process): not started by the lab, known only by its pidfile in the host's directory.
	h1 := l.Hosts[0]
	detached := exec.Command("ip", "netns", "exec", h1.NetNS, "sh", "-c", `echo $$ > "$1"; exec sleep 600`, "sh", filepath.Join(h1.Dir, "device.pid"))
	detached.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := detached.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = detached.Wait() }()
	if err := eventually(5*time.Second, func() error {
		if ps := h1.DetachedProcs(); len(ps) != 1 || ps[0].PID() != detached.Process.Pid {
			return fmt.Errorf("detached processes %v, want pid %d", ps, detached.Process.Pid)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	// The harness "crashed": from here on only the directory is used.

	reopened, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(reopened.Procs()) != 4 || reopened.Host("h1") == nil || reopened.Host("h1").VSwitchd() == nil {
		t.Fatalf("reopened lab knows %d processes", len(reopened.Procs()))
	}
	for _, p := range reopened.Procs() {
		if !p.Alive() {
			t.Errorf("%s (pid %d) not seen alive from the state file", p.Name(), p.PID())
		}
	}
	if err := reopened.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if left := Leftovers(name); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if err := syscall.Kill(detached.Process.Pid, 0); err == nil && cmdlineMatches(detached.Process.Pid, "sleep", "") {
		t.Errorf("the detached process %d still runs", detached.Process.Pid)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("lab dir still there: %v", err)
	}
	if err := reopened.Down(ctx); err != nil {
		t.Errorf("second Down: %v", err)
	}
}

// TestDownByName takes down a lab whose directory is gone (a test's TempDir removed after
// its Down failed) from the registry, and checks that Labs sees it first.
func TestDownByName(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := upTestLab(t, ctx, Config{Hosts: 1})
	if _, err := l.Hosts[0].Start(ctx, "sleeper", []string{"sleep", "600"}, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(l.Dir); err != nil {
		t.Fatal(err)
	}
	labs, err := Labs()
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(labs, func(i Info) bool { return i.Name == l.Name })
	if i < 0 || !labs[i].Registered || labs[i].Owner != os.Getpid() || !labs[i].OwnerAlive || labs[i].Orphaned() || len(labs[i].NetNS) != 2 {
		t.Fatalf("Labs: %+v", labs)
	}
	byName, err := OpenName(l.Name)
	if err != nil {
		t.Fatal(err)
	}
	if err := byName.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if left := Leftovers(l.Name); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
}

// TestUpFailsHalfway makes the second host fail: Up must remove everything it made.
func TestUpFailsHalfway(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	hostUpHook = func(h *Host) error {
		if h.Name == "h2" {
			return errors.New("injected failure")
		}
		return nil
	}
	t.Cleanup(func() { hostUpHook = nil })
	dir := filepath.Join(t.TempDir(), "lab")
	l, err := Up(ctx, Config{Dir: dir, Name: "fail" + randomName(), Hosts: 2})
	if err == nil {
		t.Cleanup(func() { downAndCheck(t, l) })
		t.Fatal("Up succeeded")
	}
	t.Logf("Up failed as it should: %v", err)
	if !strings.Contains(err.Error(), "injected failure") {
		t.Errorf("error lacks the cause: %v", err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("lab dir still there: %v", err)
	}
	labs, _ := Labs()
	for _, i := range labs {
		if strings.HasPrefix(i.Name, "fail") && (i.Dir == dir || len(i.NetNS) > 0) {
			t.Errorf("left behind: %+v", i)
		}
	}
}

// TestForeignProcessNotKilled: Down never kills what it did not start; it keeps the
// namespace such a process runs in, reports it, and finishes once the process is gone.
func TestForeignProcessNotKilled(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := upTestLab(t, ctx, Config{Hosts: 0})
	path, err := l.AddNetNS(ctx, nil, "x")
	if err != nil {
		t.Fatal(err)
	}
	foreign := exec.Command(ipBin(), "netns", "exec", filepath.Base(path), "sleep", "60")
	if err := foreign.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = foreign.Process.Kill(); _ = foreign.Wait() })
	if err := eventually(5*time.Second, func() error {
		if !slices.Contains(pidsInNetNS(path), foreign.Process.Pid) {
			return fmt.Errorf("foreign process %d not in %s yet", foreign.Process.Pid, path)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	err = l.Down(ctx)
	if err == nil || !strings.Contains(err.Error(), "not killed") {
		t.Fatalf("Down with a foreign process in a lab netns: %v", err)
	}
	t.Logf("Down reported: %v", err)
	// The error ends with the commands that finish the teardown by hand.
	for _, want := range []string{"to finish the teardown by hand", fmt.Sprintf("kill -9 %d", foreign.Process.Pid),
		"ip netns del " + filepath.Base(path), "rm -f " + registryPath(l.Name), "rm -rf " + l.Dir} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Down's error lacks %q", want)
		}
	}
	if _, serr := os.Stat(path); serr != nil || !sameProcess(foreign.Process.Pid, 0) {
		t.Fatal("the netns or the foreign process is gone")
	}
	if left := l.Leftovers(); len(left) == 0 {
		t.Error("Leftovers is empty")
	}
	_ = foreign.Process.Kill()
	_ = foreign.Wait()
	// The cleanup's Down now succeeds.
}

package lab

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func requireRoot(t *testing.T) {
	t.Helper()
	why := ""
	if os.Geteuid() != 0 {
		why = "lab tests need root"
	} else if _, err := lookPath("ovs-vswitchd"); err != nil {
		why = err.Error()
	}
	if why == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true but the lab cannot run: %s", why)
	}
	t.Skip(why)
}

func TestUnderlayAddr(t *testing.T) {
	l := &Lab{st: state{Underlay: "172.30.0.0/24"}}
	for _, tc := range []struct {
		i    int
		want string
	}{{1, "172.30.0.11/24"}, {2, "172.30.0.12/24"}, {240, "172.30.0.250/24"}} {
		got, err := l.underlayAddr(tc.i)
		if err != nil || got != netip.MustParsePrefix(tc.want) {
			t.Errorf("underlayAddr(%d) = %s, %v; want %s", tc.i, got, err, tc.want)
		}
	}
	if _, err := l.underlayAddr(241); err == nil {
		t.Error("underlay overflow accepted")
	}
}

func TestProcStartTime(t *testing.T) {
	st, err := procStartTime(os.Getpid())
	if err != nil || st == 0 {
		t.Fatalf("procStartTime(self) = %d, %v", st, err)
	}
	if !sameProcess(os.Getpid(), st) || sameProcess(os.Getpid(), st+1) {
		t.Error("sameProcess does not tell our start time from another")
	}
}

func TestLab(t *testing.T) {
	requireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	start := time.Now()
	l, err := Up(ctx, Config{Dir: filepath.Join(t.TempDir(), "lab"), Hosts: 2, External: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("2-host lab up in %s", time.Since(start).Round(time.Millisecond))
	defer func() {
		if err := l.Down(context.Background()); err != nil {
			t.Error(err)
		}
		if left := l.Leftovers(); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	}()
	h1, h2 := l.Hosts[0], l.Hosts[1]
	// ping retries for up to 5 s: after a restart, ARP and br-phy's MAC learning start over.
	ping := func(from, to string) error {
		var err error
		for i := 0; i < 5; i++ {
			if _, err = RunIn(ctx, from, "ping", "-c", "1", "-W", "1", to); err == nil {
				return nil
			}
		}
		return err
	}
	if err := ping(h1.NetNS, h2.UnderlayIP.String()); err != nil {
		t.Fatalf("underlay h1 -> h2: %v", err)
	}
	if err := ping(h2.NetNS, l.ExternalIP.String()); err != nil {
		t.Fatalf("underlay h2 -> external: %v", err)
	}
	show, err := h1.Vsctl(ctx, "show")
	if err != nil || !strings.Contains(show, "br-phy") {
		t.Fatalf("ovs-vsctl show: %v\n%s", err, show)
	}
	p, err := h1.Start(ctx, "sleeper", []string{"sleep", "600"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !p.Alive() {
		t.Fatal("sleeper not alive")
	}
	if err := p.Stop(5 * time.Second); err != nil || p.Alive() {
		t.Fatalf("stop: %v", err)
	}
	h3, err := l.AddHost(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := ping(h3.NetNS, h1.UnderlayIP.String()); err != nil {
		t.Fatalf("new host h3 -> h1: %v", err)
	}
	if err := l.CutUnderlay(ctx, h3); err != nil {
		t.Fatal(err)
	}
	if _, err := RunIn(ctx, h3.NetNS, "ping", "-c", "1", "-W", "1", h1.UnderlayIP.String()); err == nil {
		t.Fatal("ping works with the underlay cut")
	}
	if err := l.RestoreUnderlay(ctx, h3); err != nil {
		t.Fatal(err)
	}
	if err := ping(h3.NetNS, h1.UnderlayIP.String()); err != nil {
		t.Fatalf("after restore: %v", err)
	}
	if err := h2.RestartOVS(ctx); err != nil {
		t.Fatal(err)
	}
	if show, err := h2.Vsctl(ctx, "show"); err != nil || !strings.Contains(show, "br-phy") {
		t.Fatalf("after OVS restart: %v\n%s", err, show)
	}
	if err := ping(h2.NetNS, h1.UnderlayIP.String()); err != nil {
		t.Fatalf("underlay after OVS restart: %v", err)
	}
}

// TestDownAfterCrash drops the Lab value as a crashed harness would and cleans up from the
// state file alone.
func TestDownAfterCrash(t *testing.T) {
	requireRoot(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	dir := filepath.Join(t.TempDir(), "lab")
	l, err := Up(ctx, Config{Dir: dir, Hosts: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := l.AddNetNS(ctx, l.Hosts[0], "c1"); err != nil {
		t.Fatal(err)
	}
	if _, err := l.Hosts[0].Start(ctx, "sleeper", []string{"sleep", "600"}, nil); err != nil {
		t.Fatal(err)
	}
	reopened, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := reopened.Down(ctx); err != nil {
		t.Fatal(err)
	}
	if left := l.Leftovers(); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("lab dir still there: %v", err)
	}
}

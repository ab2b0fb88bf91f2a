package dockerlab

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPluginDir starts a daemon with its own /run/docker/plugins: dockerd finds a plugin
// served in PluginDir (a stub answering Activate, seen through `docker network create -d`),
// nothing is mounted in the caller's mount namespace, and after Stop nothing is left.
func TestPluginDir(t *testing.T) {
	requireLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	ns := newNetns(t)
	dir := filepath.Join(t.TempDir(), "d")
	plugins := filepath.Join(dir, "plugins")
	d, err := Start(ctx, Config{Dir: dir, NetNS: ns, PluginDir: plugins, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	stopped := false
	t.Cleanup(func() {
		if !stopped {
			_ = d.Stop(context.Background())
		}
	})
	// A stub plugin: it activates as a network driver and refuses to create networks,
	// with a message that proves dockerd reached it.
	l, err := net.Listen("unix", filepath.Join(plugins, "stub.sock"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/Plugin.Activate":
			fmt.Fprint(w, `{"Implements":["NetworkDriver"]}`)
		case "/NetworkDriver.GetCapabilities":
			fmt.Fprint(w, `{"Scope":"local"}`)
		default:
			fmt.Fprint(w, `{"Err":"stub plugin in `+plugins+` says no"}`)
		}
	})}
	go func() { _ = srv.Serve(l) }()
	defer srv.Close()
	_, err = d.CLI(ctx, "network", "create", "-d", "stub", "n1")
	if err == nil || !strings.Contains(err.Error(), "stub plugin in "+plugins) {
		t.Fatalf("network create through the stub: %v", err)
	}
	// The mount is dockerd's own: the caller's /run/docker/plugins does not hold the stub.
	if _, err := os.Stat("/run/docker/plugins/stub.sock"); err == nil {
		t.Error("the stub's socket shows in the caller's /run/docker/plugins")
	}
	if mounts, err := MountsBelow(dir); err != nil || len(mounts) > 0 {
		t.Errorf("mounts below %s in the caller's namespace: %v %v", dir, mounts, err)
	}
	mi, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", d.dockerd.pid()))
	if err != nil || !strings.Contains(string(mi), " /run/docker/plugins ") {
		t.Errorf("dockerd's mounts lack /run/docker/plugins: %v", err)
	}
	srv.Close()
	stopped = true
	if err := d.Stop(ctx); err != nil {
		t.Fatal(err)
	}
	if left := Leftovers(d.Record()); len(left) > 0 {
		t.Errorf("left behind: %v", left)
	}
	if exists(dir) {
		t.Errorf("%s still exists", dir)
	}
}

package controller

import (
	"context"
	"net"
	"path/filepath"
	"strings"
	"testing"
)

func TestOVSRundirCandidates(t *testing.T) {
	for _, tc := range []struct {
		flag, env, ovsdb string
		want             string
	}{
		{"/x", "/y", "unix:/z/db.sock", "/x"},
		{"", "/y", "unix:/z/db.sock", "/y"},
		{"", "", "unix:/z/db.sock", "/z " + DefaultOVSRundir},
		{"", "", "unix:" + DefaultOVSRundir + "/db.sock", DefaultOVSRundir},
		{"", "", "tcp:127.0.0.1:6640", DefaultOVSRundir},
	} {
		var dirs []string
		for _, c := range OVSRundirCandidates(tc.flag, tc.env, tc.ovsdb) {
			dirs = append(dirs, c.dir)
		}
		if got := strings.Join(dirs, " "); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc, got, tc.want)
		}
	}
}

func TestOFSwitchFindsRundir(t *testing.T) {
	dir := t.TempDir()
	ln, err := net.Listen("unix", filepath.Join(dir, "br-int.mgmt"))
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	o := NewOFSwitch("br-int", "", "", "unix:"+filepath.Join(dir, "db.sock"))
	if id := o.ServerID(); id != "" {
		t.Fatalf("ServerID %q before the run directory is found, want empty", id)
	}
	if _, err := o.get(context.Background()); err != nil || o.Rundir() != dir {
		t.Fatalf("rundir %q, %v; want %s", o.Rundir(), err, dir)
	}
	// The restart watcher needs the switch to say which ovs-vswitchd serves the bridge.
	if id := o.ServerID(); id == "" {
		t.Fatal("ServerID empty once the management socket is found")
	}

	empty := t.TempDir()
	o = NewOFSwitch("br-int", empty, "", "unix:"+filepath.Join(dir, "db.sock"))
	_, err = o.Flows(context.Background())
	if err == nil || !strings.Contains(err.Error(), "looked in "+empty+" (--ovs-rundir)") || !strings.Contains(err.Error(), "set --ovs-rundir") {
		t.Fatalf("error %v", err)
	}
}

package flows

import (
	"net"
	"path/filepath"
	"testing"
)

// TestServerID checks that the management socket's identity changes when the socket is made
// anew (a new ovs-vswitchd) and is "" while there is none.
func TestServerID(t *testing.T) {
	dir := t.TempDir()
	listen := func() *net.UnixListener {
		t.Helper()
		l, err := net.ListenUnix("unix", &net.UnixAddr{Name: filepath.Join(dir, "br-int.mgmt"), Net: "unix"})
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	for _, tc := range []struct {
		name string
		o    *OFCtl
	}{
		{"OVS_RUNDIR from WithEnv", NewOFCtl("br-int", WithEnv("OVS_RUNDIR="+dir))},
		{"unix: target", NewOFCtl("unix:" + filepath.Join(dir, "br-int.mgmt"))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if id := tc.o.ServerID(); id != "" {
				t.Fatalf("no socket: ServerID %q, want \"\"", id)
			}
			l := listen()
			first := tc.o.ServerID()
			if first == "" {
				t.Fatal("socket exists but ServerID is empty")
			}
			if again := tc.o.ServerID(); again != first {
				t.Fatalf("same socket: ServerID %q then %q", first, again)
			}
			l.Close() // removes the socket file, as ovs-vswitchd's exit does
			if id := tc.o.ServerID(); id != "" {
				t.Fatalf("socket removed: ServerID %q, want \"\"", id)
			}
			l = listen()
			defer l.Close()
			if id := tc.o.ServerID(); id == "" || id == first {
				t.Fatalf("new socket: ServerID %q, want a new value (was %q)", id, first)
			}
		})
	}
}

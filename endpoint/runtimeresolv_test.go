package endpoint

import (
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const testID = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

func TestCheckRuntimeResolvConf(t *testing.T) {
	for _, tc := range []struct {
		path, id string
		ok       bool
	}{
		{"/var/lib/docker/containers/" + testID + "/resolv.conf", testID, true},
		{"/run/containers/storage/overlay-containers/" + testID + "/userdata/resolv.conf", testID, true},
		{"/var/lib/docker/containers/" + testID + "/hosts", testID, false},
		{"/etc/resolv.conf", testID, false},
		{"/var/lib/docker/containers/" + testID + "/../../../../etc/resolv.conf", testID, false},
		{"var/lib/docker/containers/" + testID + "/resolv.conf", testID, false},
		{"/var/lib/docker/containers/" + testID + "x/resolv.conf", testID, false},
		{"/var/lib/docker/containers/abc/resolv.conf", "abc", false},
		{"/var/lib/docker/containers/" + testID + "/resolv.conf", "", false},
	} {
		if err := checkRuntimeResolvConf(tc.path, tc.id); (err == nil) != tc.ok {
			t.Errorf("%s (id %.8s): %v, want ok %v", tc.path, tc.id, err, tc.ok)
		}
	}
}

// TestRuntimeResolvConf: a Docker container's resolv.conf is pointed at its gateway, in place
// (the inode a bind mount holds stays), with the runtime's version kept and restored on
// detach; a second network keeps the first's backup; symbolic links are never followed.
func TestRuntimeResolvConf(t *testing.T) {
	root := t.TempDir()
	cdir := filepath.Join(root, "containers", testID)
	if err := os.MkdirAll(cdir, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(cdir, "resolv.conf")
	orig := "search corp.example\nnameserver 192.0.2.53\n"
	if err := os.WriteFile(file, []byte(orig), 0o644); err != nil {
		t.Fatal(err)
	}
	before, _ := os.Stat(file)
	m := &Manager{s: settings(t), log: slog.New(slog.DiscardHandler)}
	blue := Record{NetNS: "/proc/7/ns/net", ID: testID, ResolvConf: file, IfName: "eth0", Addr: netip.MustParsePrefix("10.50.1.2/24")}
	red := Record{NetNS: "/proc/7/ns/net", ID: testID, ResolvConf: file, IfName: "eth1", Addr: netip.MustParsePrefix("10.60.1.2/24")}
	if f, err := m.writeResolvConf(blue); err != nil || f != file {
		t.Fatalf("write: %q %v", f, err)
	}
	want := resolvMark + "\nnameserver 10.50.1.1\nsearch corp.example\noptions ndots:0\n"
	if b, _ := os.ReadFile(file); string(b) != want {
		t.Errorf("resolv.conf:\n%s\nwant:\n%s", b, want)
	}
	if after, _ := os.Stat(file); !os.SameFile(before, after) {
		t.Error("resolv.conf replaced by another inode: a running container's bind mount would not see it")
	}
	if b, _ := os.ReadFile(filepath.Join(cdir, runtimeBackup)); string(b) != orig {
		t.Errorf("backup %q, want %q", b, orig)
	}
	// Written again (another network first, here red): the backup stays the runtime's.
	if _, err := m.writeResolvConf(red); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(cdir, runtimeBackup)); string(b) != orig {
		t.Errorf("backup after a second write %q, want %q", b, orig)
	}
	// Detaching red while blue stays points the file at blue's gateway.
	m.resolverAfterDetach(red, []Record{blue, {NetNS: "/proc/8/ns/net"}})
	if b, _ := os.ReadFile(file); string(b) != want {
		t.Errorf("after detaching red:\n%s", b)
	}
	// The last one restores the runtime's file and removes the backup.
	m.resolverAfterDetach(blue, nil)
	if b, _ := os.ReadFile(file); string(b) != orig {
		t.Errorf("restored %q, want %q", b, orig)
	}
	if _, err := os.Stat(filepath.Join(cdir, runtimeBackup)); !os.IsNotExist(err) {
		t.Errorf("backup left: %v", err)
	}
	if after, _ := os.Stat(file); !os.SameFile(before, after) {
		t.Error("restore replaced the inode")
	}
	// A file the runtime rewrote meanwhile (container restarted) is left alone.
	if _, err := m.writeResolvConf(blue); err != nil {
		t.Fatal(err)
	}
	fresh := "nameserver 192.0.2.99\n"
	if err := os.WriteFile(file, []byte(fresh), 0o644); err != nil {
		t.Fatal(err)
	}
	m.removeResolvConf(blue)
	if b, _ := os.ReadFile(file); string(b) != fresh {
		t.Errorf("the runtime's newer file became %q", b)
	}
	// A container that is gone: nothing to restore, no error.
	gone := blue
	gone.ResolvConf = filepath.Join(root, "containers", strings.Repeat("f", 64), "resolv.conf")
	gone.ID = strings.Repeat("f", 64)
	if err := m.restoreRuntimeResolvConf(gone); err != nil {
		t.Errorf("restore of a removed container: %v", err)
	}

	// Symbolic links: resolv.conf as a link, or a link on the way, are refused.
	outside := filepath.Join(root, "outside")
	if err := os.WriteFile(outside, []byte("keep\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ldir := filepath.Join(root, "l", testID)
	if err := os.MkdirAll(ldir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(ldir, "resolv.conf")); err != nil {
		t.Fatal(err)
	}
	if _, err := m.writeResolvConf(Record{ID: testID, ResolvConf: filepath.Join(ldir, "resolv.conf"), Addr: blue.Addr}); err == nil {
		t.Error("wrote through a symbolic link resolv.conf")
	}
	if err := os.Symlink(root, filepath.Join(root, "link")); err != nil {
		t.Fatal(err)
	}
	if _, err := m.writeResolvConf(Record{ID: testID, ResolvConf: filepath.Join(root, "link", "containers", testID, "resolv.conf"), Addr: blue.Addr}); err == nil {
		t.Error("followed a symbolic link to the container's directory")
	}
	if b, _ := os.ReadFile(outside); string(b) != "keep\n" {
		t.Errorf("the file outside became %q", b)
	}
	// A path not in the container's directory is refused before anything is opened.
	if _, err := m.writeResolvConf(Record{ID: testID, ResolvConf: outside, Addr: blue.Addr}); err == nil {
		t.Error("wrote a file outside the container's directory")
	}
}

package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/ovsdb"
)

// TestOVSDBUnreachable: a missing OVSDB socket is named once, with the cause and the hint.
func TestOVSDBUnreachable(t *testing.T) {
	ep := "unix:" + filepath.Join(t.TempDir(), "db.sock")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := ovsdb.Dial(ctx, ep)
	if err == nil {
		t.Fatal("dial of a missing socket succeeded")
	}
	got := ovsdbUnreachable(ep, err)
	want := "cannot reach OVSDB at " + ep + " (no such file or directory): is ovsdb-server running? (set its socket with --ovsdb)"
	if got.Error() != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
	if !errors.Is(got, syscall.ENOENT) {
		t.Errorf("%v does not wrap ENOENT", got)
	}
}

func TestVersionFlag(t *testing.T) {
	var out bytes.Buffer
	cmd := newCommand()
	cmd.SetOut(&out)
	cmd.SetArgs([]string{"--version"})
	if err := cmd.Execute(); err != nil || !strings.HasPrefix(out.String(), "fabricd ") || !strings.Contains(out.String(), "go1") {
		t.Errorf("--version: %v %q", err, out.String())
	}
}

// TestUnknownConfigKey: a typo in the config file is named with the file and line.
func TestUnknownConfigKey(t *testing.T) {
	file := filepath.Join(t.TempDir(), "fabricd.yaml")
	_ = os.WriteFile(file, []byte("name: h1\ntunnle: gre\n"), 0o600)
	cmd := newCommand()
	cmd.SetArgs([]string{"--config", file})
	err := cmd.Execute()
	want := "config file " + file + `: line 2: unknown key "tunnle" (did you mean "tunnel"?)`
	if err == nil || err.Error() != want {
		t.Errorf("got %v, want %q", err, want)
	}
}

package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/labtest"
)

// TestMain lets the test binary act as the lab command (LAB_CLI_MAIN=1), so the tests run the
// real command line, exec included, without building a binary.
func TestMain(m *testing.M) {
	if os.Getenv("LAB_CLI_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}

// cli runs `lab ARGS…` and returns its combined output.
func cli(t *testing.T, ctx context.Context, dir string, args ...string) (string, error) {
	t.Helper()
	cmd := exec.CommandContext(ctx, os.Args[0], args...)
	cmd.Env = append(os.Environ(), "LAB_CLI_MAIN=1")
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

func TestCLI(t *testing.T) {
	labtest.Require(t, "the lab CLI test (it builds a lab)")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cwd := t.TempDir()
	name := "cli" + strings.ReplaceAll(time.Now().Format("150405.000"), ".", "")
	t.Cleanup(func() {
		if l, err := lab.OpenName(name); err == nil { // the test failed before `lab down`
			_ = l.Down(context.Background())
		}
		if left := lab.Leftovers(name); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	})

	out, err := cli(t, ctx, cwd, "up", "--hosts", "2", "--name", name, "--external")
	if err != nil {
		t.Fatalf("lab up: %v\n%s", err, out)
	}
	dir := filepath.Join(cwd, ".lab", "default") // the default, printed absolute
	for _, want := range []string{"lab " + name + " up in", dir, "ovsfab-" + name + "-h2", "172.30.0.12", "ovs-vswitchd:", "(up)"} {
		if !strings.Contains(out, want) {
			t.Errorf("lab up output lacks %q:\n%s", want, out)
		}
	}

	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"status"}, "unix:" + dir + "/h1/db.sock"},
		{[]string{"exec", "h1", "--", "ovs-vsctl", "show"}, "Port eth0"},
		{[]string{"exec", "h1", "--", "ovs-ofctl", "dump-flows", "br-phy"}, "actions=NORMAL"},
		{[]string{"exec", "h2", "--", "ovs-appctl", "-t", "ovs-vswitchd", "version"}, "ovs-vswitchd (Open vSwitch)"},
		{[]string{"exec", "h2", "--", "ping", "-c1", "-W2", "172.30.0.11"}, "1 received"},
		{[]string{"exec", "ext", "--", "ip", "-br", "addr", "show", "eth0"}, "172.30.0.254/24"},
		{[]string{"--name", name, "exec", "underlay", "--", "ip", "-br", "link", "show", "master", "br0"}, "u-ext"},
		{[]string{"add-host"}, "added h3"},
		{[]string{"exec", "h3", "--", "ping", "-c1", "-W2", "172.30.0.254"}, "1 received"},
		{[]string{"ls"}, name},
		// fabricctl in a host finds its fabricd through FABRICCTL_SOCKET, and bin/ through PATH.
		{[]string{"exec", "h2", "--", "sh", "-c", "echo $FABRICCTL_SOCKET"}, dir + "/h2/fabricd.sock"},
		{[]string{"exec", "h1", "--", "sh", "-c", "echo $PATH"}, filepath.Dir(os.Args[0]) + ":"},
		// Without a lab at --dir, the labs that exist are suggested.
		{[]string{"status", "--dir", filepath.Join(cwd, "nolab")}, "--dir " + dir + "   (lab " + name + ", hosts: 3)"},
	} {
		out, err := cli(t, ctx, cwd, tc.args...)
		if (err != nil && tc.args[0] != "status") || !strings.Contains(out, tc.want) {
			t.Errorf("lab %s: %v, output lacks %q:\n%s", strings.Join(tc.args, " "), err, tc.want, out)
		}
	}
	// exec hands back the command's exit status.
	_, err = cli(t, ctx, cwd, "exec", "h1", "--", "sh", "-c", "exit 7")
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 7 {
		t.Errorf("exit status through lab exec: %v", err)
	}
	if out, err := cli(t, ctx, cwd, "exec", "h9", "--", "true"); err == nil || !strings.Contains(out, `no "h9"`) {
		t.Errorf("exec on an unknown host: %v\n%s", err, out)
	}
	// gc leaves a lab made by `lab up` alone.
	if out, err := cli(t, ctx, cwd, "gc"); err != nil || strings.Contains(out, name) {
		t.Errorf("lab gc: %v\n%s", err, out)
	}

	out, err = cli(t, ctx, cwd, "down")
	if err != nil || !strings.Contains(out, "lab "+name+" removed") {
		t.Fatalf("lab down: %v\n%s", err, out)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("%s still there: %v", dir, err)
	}
	out, err = cli(t, ctx, cwd, "down")
	if err != nil || !strings.Contains(out, "nothing to do") {
		t.Errorf("second lab down: %v\n%s", err, out)
	}
}

package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// RunIn runs a command in the named network namespace (`ip netns exec NETNS NAME ARGS…`) and
// returns its combined output. The error includes the command and its output. It works for
// any lab namespace: hosts, containers (AddNetNS), the external node.
func RunIn(ctx context.Context, netns, name string, args ...string) (string, error) {
	return runIn(ctx, nil, netns, name, args...)
}

func runIn(ctx context.Context, env []string, netns, name string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, ipBin(), append([]string{"netns", "exec", netns, name}, args...)...)
	if env != nil {
		cmd.Env = append(os.Environ(), env...)
	}
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s in %s: %w: %s", name, strings.Join(args, " "), netns, err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// run runs a command in the root namespace (only ever `ip -n LABNS …`, `ip netns …` and
// ovsdb-tool) and returns an error with its output.
func (l *Lab) run(ctx context.Context, name string, args ...string) error {
	if name == "ip" {
		name = ipBin()
	}
	l.log.Debug("run", "cmd", filepath.Base(name)+" "+strings.Join(args, " "))
	out, err := exec.CommandContext(ctx, name, args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s %s: %w: %s", filepath.Base(name), strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

var ipPath = sync.OnceValue(func() string {
	if p, err := lookPath("ip"); err == nil {
		return p
	}
	return "ip"
})

// ipBin is the path of iproute2's ip.
func ipBin() string { return ipPath() }

// lookPath finds a binary also in the sbin directories a non-login PATH may lack.
func lookPath(bin string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		if p, err := exec.LookPath(filepath.Join(dir, bin)); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (install openvswitch-switch, iproute2 and ethtool: `make deps`)", bin)
}

// tail returns the last lines of a file, indented, for error messages ("" if it is empty).
func tail(path string, lines int) string {
	b, err := os.ReadFile(path)
	if err != nil || len(strings.TrimSpace(string(b))) == 0 {
		return ""
	}
	ls := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(ls) > lines {
		ls = ls[len(ls)-lines:]
	}
	return "\n  " + path + ":\n    " + strings.Join(ls, "\n    ")
}

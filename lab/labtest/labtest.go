// Package labtest is what tests that need root or the lab share: the one policy for when such
// a test may not run here. Elsewhere it is skipped with a clear message; under CI=true it
// fails, because CI must run every lab test and a skip there would hide them.
package labtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Require skips t (or fails it when CI=true) unless this process is root and every program in
// tools is installed. what names the test and why it needs root, e.g. "the routed pipeline lab
// test (network namespaces, OVS daemons)".
func Require(t testing.TB, what string, tools ...string) {
	t.Helper()
	if os.Geteuid() != 0 {
		SkipOrFail(t, "%s: needs root", what)
		return
	}
	for _, bin := range tools {
		if _, err := LookPath(bin); err != nil {
			SkipOrFail(t, "%s: %s is not installed (run `make deps`)", what, bin)
			return
		}
	}
}

// SkipOrFail skips t with the message, or fails it when CI=true.
func SkipOrFail(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI=true, so this is a failure, not a skip: %s", msg)
	}
	t.Skip(msg)
}

// LookPath finds a program, also in the sbin directories a non-login PATH may lack.
func LookPath(bin string) (string, error) {
	if p, err := exec.LookPath(bin); err == nil {
		return p, nil
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin"} {
		if p, err := exec.LookPath(filepath.Join(dir, bin)); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s not found (install it: `make deps`)", bin)
}

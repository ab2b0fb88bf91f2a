package netplumb

import (
	"bytes"
	"fmt"
	"os"
)

// ipForwardPath is the IPv4 forwarding switch. /proc/sys/net shows the network namespace of
// the thread that opens it, so this is the current netns's switch.
const ipForwardPath = "/proc/sys/net/ipv4/ip_forward"

// SetForwarding switches IPv4 forwarding (net.ipv4.ip_forward) of the current netns. It
// writes only when the value differs. Note that the kernel applies a change of this switch
// to every interface's forwarding setting.
func SetForwarding(enabled bool) error {
	want := []byte("0")
	if enabled {
		want = []byte("1")
	}
	cur, err := os.ReadFile(ipForwardPath)
	if err != nil {
		return fmt.Errorf("read %s: %w", ipForwardPath, err)
	}
	if bytes.Equal(bytes.TrimSpace(cur), want) {
		return nil
	}
	if err := os.WriteFile(ipForwardPath, append(want, '\n'), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", ipForwardPath, err)
	}
	return nil
}

// Forwarding reports whether IPv4 forwarding is on in the current netns.
func Forwarding() (bool, error) {
	cur, err := os.ReadFile(ipForwardPath)
	if err != nil {
		return false, fmt.Errorf("read %s: %w", ipForwardPath, err)
	}
	return string(bytes.TrimSpace(cur)) == "1", nil
}

// setSysctl writes value to a /proc/sys file when it differs, in the current netns.
func setSysctl(path, value string) error {
	cur, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("read %s: %w", path, err)
	}
	if string(bytes.TrimSpace(cur)) == value {
		return nil
	}
	if err := os.WriteFile(path, []byte(value+"\n"), 0o644); err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	return nil
}

// DisableRedirects stops the kernel from sending ICMP redirects out of dev (and in general:
// the "all" switch is ORed with the device's). Containers behind the gateway would otherwise
// cache a redirect toward a peer's gateway and bypass the pipeline for minutes.
func DisableRedirects(dev string) error {
	for _, p := range []string{"/proc/sys/net/ipv4/conf/all/send_redirects", "/proc/sys/net/ipv4/conf/" + dev + "/send_redirects"} {
		if err := setSysctl(p, "0"); err != nil {
			return err
		}
	}
	return nil
}

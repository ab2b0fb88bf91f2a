package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// command returns a command that runs argv (in network namespace netns unless it is empty:
// an `ip netns` name, or a path such as /proc/PID/ns/net, entered with nsenter) and is killed with its whole process group when ctx ends, so that nothing it started
// outlives it. Only this process group is ever signalled.
func command(ctx context.Context, netns string, argv ...string) *exec.Cmd {
	switch {
	case strings.HasPrefix(netns, "/"):
		argv = append([]string{"nsenter", "--net=" + netns, "--"}, argv...)
	case netns != "":
		argv = append([]string{"ip", "netns", "exec", netns}, argv...)
	}
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// run runs argv in netns ("" for this namespace) with a timeout and returns its stdout; the
// error carries stderr (or the output's tail).
func run(ctx context.Context, timeout time.Duration, netns string, argv ...string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := command(ctx, netns, argv...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	if err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = lastLines(stdout.String(), 5)
		}
		if ctx.Err() == context.DeadlineExceeded {
			err = fmt.Errorf("timed out after %s", timeout)
		}
		return stdout.String(), fmt.Errorf("%s: %w: %s", strings.Join(argv, " "), err, msg)
	}
	return stdout.String(), nil
}

// firstReply pings ip from netns every interval until the first echo reply arrives and
// returns when it did: ping's own receive timestamp (-D), so that the time it takes to read
// the line does not count. It gives up after timeout.
func firstReply(ctx context.Context, netns, ip string, interval, timeout time.Duration) (time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := command(ctx, netns, "ping", "-n", "-D", "-i", fmt.Sprintf("%.3f", interval.Seconds()), "-W", "1", ip)
	out, err := cmd.StdoutPipe()
	if err != nil {
		return time.Time{}, err
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return time.Time{}, fmt.Errorf("ping %s from %s: %w", ip, netns, err)
	}
	var seen []string
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if at, ok := parseReplyTime(line); ok {
			cancel()
			_, _ = io.Copy(io.Discard, out)
			_ = cmd.Wait()
			return at, nil
		}
		if len(seen) < 5 {
			seen = append(seen, line)
		}
	}
	_ = cmd.Wait()
	why := "no reply within " + timeout.String()
	if ctx.Err() == nil {
		why = "ping ended"
	}
	return time.Time{}, fmt.Errorf("ping %s from %s: %s: %s %s", ip, netns, why, strings.Join(seen, "; "), strings.TrimSpace(stderr.String()))
}

// pingRTTs sends count pings at interval from netns to ip and returns what came back.
func pingRTTs(ctx context.Context, netns, ip string, count int, interval time.Duration) (pingResult, error) {
	timeout := time.Duration(count)*interval + 30*time.Second
	out, err := run(ctx, timeout, netns, "ping", "-n", "-c", fmt.Sprint(count), "-i", fmt.Sprintf("%.3f", interval.Seconds()), "-W", "1", ip)
	r := parsePing(out)
	if err != nil && len(r.RTTs) == 0 {
		return r, err
	}
	if r.Sent == 0 {
		r.Sent = count
	}
	return r, nil
}

// lastLines returns the last n lines of s.
func lastLines(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, " / ")
}

// tailFile returns the last lines of a file, for error messages.
func tailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return "(" + err.Error() + ")"
	}
	return lastLines(string(b), n)
}

// sleepCtx sleeps for d or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// lookGo finds the go command: on PATH, else next to the running toolchain's GOROOT.
func lookGo() (string, error) {
	if p, err := exec.LookPath("go"); err == nil {
		return p, nil
	}
	for _, p := range []string{"/usr/local/go/bin/go", filepath.Join(os.Getenv("HOME"), "go", "bin", "go")} {
		if _, err := os.Stat(p); err == nil {
			return p, nil
		}
	}
	return "", errors.New("go command not found (PATH, /usr/local/go/bin)")
}

// goBenchRun runs `go test -run ^$ -bench BENCH -benchmem ARGS… ./PKG/` in the module root
// (repo), after checking that the benchmark's file (relative to repo) is there, and parses
// its results; cmdline names the command in errors.
func goBenchRun(ctx context.Context, repo, file, cmdline string, args ...string) ([]goBench, error) {
	goBin, err := lookGo()
	if err != nil {
		return nil, err
	}
	if _, err := os.Stat(filepath.Join(repo, file)); err != nil {
		return nil, fmt.Errorf("benchmark %s not found under %s: %w", file, repo, err)
	}
	cctx, cancel := context.WithTimeout(ctx, 4*time.Minute)
	defer cancel()
	cmd := command(cctx, "", append([]string{goBin, "test"}, args...)...)
	cmd.Dir = repo
	out, err := cmd.CombinedOutput()
	if err != nil {
		return nil, fmt.Errorf("%s: %w: %s", cmdline, err, lastLines(string(out), 5))
	}
	return parseGoBench(string(out)), nil
}

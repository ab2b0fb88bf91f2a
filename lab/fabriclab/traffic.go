package fabriclab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Stream is a ping running in the background from one container to an address at a fixed
// interval, counted per sequence number so that the longest outage can be told apart from
// scattered losses.
type Stream struct {
	Name     string
	interval time.Duration
	cmd      *exec.Cmd
	out      bytes.Buffer
	done     chan error
	once     sync.Once
	res      StreamResult
	err      error
	started  time.Time
}

// StreamResult is what a Stream saw.
type StreamResult struct {
	Sent, Received int
	// Outage is the longest run of unanswered pings times the interval: how long traffic
	// was cut (0 when nothing was lost).
	Outage time.Duration
	// Started is when the stream started; Missing are the sequence numbers (from 1) that got
	// no answer, each sent about Started + (seq-1) × interval.
	Started time.Time
	Missing []int
}

// Lost is the number of pings that got no answer.
func (r StreamResult) Lost() int { return r.Sent - r.Received }

func (r StreamResult) String() string {
	return fmt.Sprintf("%d sent, %d received, longest outage %s", r.Sent, r.Received, r.Outage)
}

// StartStream starts pinging ip from netns (an `ip netns` name or a netns path) every interval
// until Stop. Replies up to 2 s late still count.
func StartStream(ctx context.Context, name, netns, ip string, interval time.Duration) (*Stream, error) {
	ping := []string{"ping", "-n", "-W", "2", "-i", fmt.Sprintf("%.3f", interval.Seconds()), ip}
	var cmd *exec.Cmd
	if strings.HasPrefix(netns, "/") {
		cmd = exec.CommandContext(ctx, "nsenter", append([]string{"--net=" + netns}, ping...)...)
	} else {
		// ip netns exec execs ping in the same process, so SIGINT reaches ping itself.
		cmd = exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", netns}, ping...)...)
	}
	s := &Stream{Name: name, interval: interval, cmd: cmd, done: make(chan error, 1), started: time.Now()}
	cmd.Stdout, cmd.Stderr = &s.out, &s.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("stream %s: %w", name, err)
	}
	go func() { s.done <- cmd.Wait() }()
	return s, nil
}

// Stop interrupts the ping (it prints its summary) and returns the counts.
func (s *Stream) Stop() (StreamResult, error) {
	s.once.Do(func() {
		_ = s.cmd.Process.Signal(os.Interrupt)
		select {
		case <-s.done:
		case <-time.After(10 * time.Second):
			_ = s.cmd.Process.Kill()
			<-s.done
		}
		s.res, s.err = parseStream(s.out.String(), s.interval)
		s.res.Started = s.started
		if s.err != nil {
			s.err = fmt.Errorf("stream %s: %w", s.Name, s.err)
		}
	})
	return s.res, s.err
}

var icmpSeq = regexp.MustCompile(`icmp_seq=(\d+)`)

// parseStream reads ping's summary and the sequence numbers of the replies.
func parseStream(out string, interval time.Duration) (StreamResult, error) {
	sent, received, err := parsePing(out)
	if err != nil {
		return StreamResult{}, fmt.Errorf("%w: %s", err, tailString(out, 5))
	}
	got := map[int]bool{}
	for _, line := range strings.Split(out, "\n") {
		if !strings.Contains(line, "bytes from") {
			continue
		}
		if m := icmpSeq.FindStringSubmatch(line); m != nil {
			n, _ := strconv.Atoi(m[1])
			got[n] = true
		}
	}
	longest, run := 0, 0
	var missing []int
	for seq := 1; seq <= sent; seq++ {
		if got[seq] {
			run = 0
			continue
		}
		missing = append(missing, seq)
		run++
		longest = max(longest, run)
	}
	return StreamResult{Sent: sent, Received: received, Outage: time.Duration(longest) * interval, Missing: missing}, nil
}

func tailString(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

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
	// Outage is the longest time without answers around a run of unanswered pings: how long
	// traffic was cut (0 when nothing was lost).
	Outage time.Duration
	// Recovered is when the first answer after the last lost ping came (zero when nothing
	// was lost, or nothing came back after the last loss).
	Recovered time.Time
	// Started is when the stream started; Missing are the sequence numbers (from 1) that got
	// no answer.
	Started time.Time
	Missing []int
	// MissingAt is about when each of Missing was sent (the reply before it plus the
	// intervals between; zero before the first reply).
	MissingAt []time.Time
}

// inFlight is how many trailing unanswered echoes Stop takes for still in flight.
const inFlight = 3

// Lost is the number of pings that got no answer.
func (r StreamResult) Lost() int { return r.Sent - r.Received }

func (r StreamResult) String() string {
	return fmt.Sprintf("%d sent, %d received, longest outage %s", r.Sent, r.Received, r.Outage)
}

// StartStream starts pinging ip from netns (an `ip netns` name or a netns path) every interval
// until Stop. Replies up to 2 s late still count.
func StartStream(ctx context.Context, name, netns, ip string, interval time.Duration) (*Stream, error) {
	ping := []string{"ping", "-n", "-D", "-W", "2", "-i", fmt.Sprintf("%.3f", interval.Seconds()), ip}
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
		s.res, s.err = parseStream(s.out.String(), s.interval, time.Now())
		s.res.Started = s.started
		if s.err != nil {
			s.err = fmt.Errorf("stream %s: %w", s.Name, s.err)
		}
	})
	return s.res, s.err
}

var replyLine = regexp.MustCompile(`^\[(\d+)\.(\d+)\] .*bytes from .*icmp_seq=(\d+)`)

// parseStream reads ping's summary and the time (-D) and sequence number of every reply.
// ping slows down while its echoes go unanswered, so an outage is measured on the clock:
// from the last reply before a run of unanswered sequence numbers to the first one after
// it, less one interval.
func parseStream(out string, interval time.Duration, stopped time.Time) (StreamResult, error) {
	sent, received, err := parsePing(out)
	if err != nil {
		return StreamResult{}, fmt.Errorf("%w: %s", err, tailString(out, 5))
	}
	got := map[int]time.Time{}
	for _, line := range strings.Split(out, "\n") {
		m := replyLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		sec, _ := strconv.ParseInt(m[1], 10, 64)
		frac := (m[2] + "000000000")[:9]
		nsec, _ := strconv.ParseInt(frac, 10, 64)
		seq, _ := strconv.Atoi(m[3])
		got[seq] = time.Unix(sec, nsec)
	}
	// The echo sent last may still be in flight when ping is interrupted: unanswered
	// sequence numbers at the very end (up to inFlight of them) are not counted as sent.
	for k := 0; k < inFlight && sent > 0; k++ {
		if _, ok := got[sent]; ok {
			break
		}
		sent--
	}
	res := StreamResult{Sent: sent, Received: received}
	var prev time.Time // the last reply before the current run of losses
	prevSeq := 0
	inRun := false
	for seq := 1; seq <= sent; seq++ {
		at, ok := got[seq]
		if !ok {
			res.Missing = append(res.Missing, seq)
			if !prev.IsZero() {
				res.MissingAt = append(res.MissingAt, prev.Add(time.Duration(seq-prevSeq)*interval))
			} else {
				res.MissingAt = append(res.MissingAt, time.Time{})
			}
			inRun = true
			continue
		}
		if inRun {
			from := prev
			if from.IsZero() {
				from = at.Add(-time.Duration(seq-1) * interval) // lost from the first echo on
			}
			res.Outage = max(res.Outage, at.Sub(from)-interval)
			res.Recovered = at
			inRun = false
		}
		prev, prevSeq = at, seq
	}
	if inRun && !prev.IsZero() { // lost until the end
		res.Outage = max(res.Outage, stopped.Sub(prev))
		res.Recovered = time.Time{}
	}
	return res, nil
}

func tailString(s string, n int) string {
	ls := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(ls) > n {
		ls = ls[len(ls)-n:]
	}
	return strings.Join(ls, "\n")
}

package fabriclab

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"sort"
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
	// Outage is the longest time between two replies, less one interval, when an echo was
	// lost or late: how long traffic was cut (0 when nothing was lost or late).
	Outage time.Duration
	// Recovered is when the reply ending that outage came (zero when there was none, or
	// nothing came back after it).
	Recovered time.Time
	// MaxRTT is the longest round trip: echoes held up on the way come back late.
	MaxRTT time.Duration
	// Started is when the stream started; Missing are the sequence numbers (from 1) that got
	// no answer.
	Started time.Time
	Missing []int
	// MissingAt is about when each of Missing was sent (the reply before it plus the
	// intervals between; zero before the first reply).
	MissingAt []time.Time
}

// inFlightTime is how long before Stop an echo may have been sent and still be in flight: on
// this loaded machine round trips reach tens of milliseconds, so at a 10 ms interval several
// echoes are on their way when ping is interrupted.
const inFlightTime = 300 * time.Millisecond

// inFlight is how many trailing unanswered echoes Stop takes for still in flight: those sent
// within inFlightTime at the stream's interval, and at least 3.
func inFlight(interval time.Duration) int {
	if interval <= 0 {
		return 3
	}
	return max(3, int(inFlightTime/interval))
}

// lateRTT is a round trip that counts as an interruption even without loss.
const lateRTT = 100 * time.Millisecond

// Lost is the number of pings that got no answer.
func (r StreamResult) Lost() int { return r.Sent - r.Received }

func (r StreamResult) String() string {
	return fmt.Sprintf("%d sent, %d received, longest outage %s, max rtt %s", r.Sent, r.Received, r.Outage.Round(time.Millisecond), r.MaxRTT.Round(time.Millisecond))
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

var replyLine = regexp.MustCompile(`^\[(\d+)\.(\d+)\] .*bytes from .*icmp_seq=(\d+) .*time=([\d.]+) ms`)

// parseStream reads ping's summary and the arrival time (-D), sequence number and round trip
// of every reply. ping slows down while its echoes go unanswered, and echoes held up on the
// way (a queue waiting for ARP) come back late and out of order, so the outage is measured
// on the clock: the longest time between two consecutive replies, less one interval, when
// any echo was lost or came back late.
func parseStream(out string, interval time.Duration, stopped time.Time) (StreamResult, error) {
	sent, received, err := parsePing(out)
	if err != nil {
		return StreamResult{}, fmt.Errorf("%w: %s", err, tailString(out, 5))
	}
	got := map[int]time.Time{}
	var arrivals []time.Time
	var res StreamResult
	for _, line := range strings.Split(out, "\n") {
		m := replyLine.FindStringSubmatch(strings.TrimSpace(line))
		if m == nil {
			continue
		}
		sec, _ := strconv.ParseInt(m[1], 10, 64)
		nsec, _ := strconv.ParseInt((m[2] + "000000000")[:9], 10, 64)
		seq, _ := strconv.Atoi(m[3])
		rtt, _ := strconv.ParseFloat(m[4], 64)
		at := time.Unix(sec, nsec)
		got[seq] = at
		arrivals = append(arrivals, at)
		res.MaxRTT = max(res.MaxRTT, time.Duration(rtt*float64(time.Millisecond)))
	}
	// The echoes sent last may still be in flight when ping is interrupted: unanswered
	// sequence numbers at the very end (up to inFlight of them) are not counted as sent.
	for k := 0; k < inFlight(interval) && sent > 0; k++ {
		if _, ok := got[sent]; ok {
			break
		}
		sent--
	}
	res.Sent, res.Received = sent, received
	var last time.Time
	for seq := 1; seq <= sent; seq++ {
		if at, ok := got[seq]; ok {
			last = at
			continue
		}
		res.Missing = append(res.Missing, seq)
		at := last // about when it was sent: after the previous reply
		if !at.IsZero() {
			at = at.Add(interval)
		}
		res.MissingAt = append(res.MissingAt, at)
	}
	if len(res.Missing) == 0 && res.MaxRTT < lateRTT {
		return res, nil
	}
	sort.Slice(arrivals, func(i, j int) bool { return arrivals[i].Before(arrivals[j]) })
	for i := 1; i < len(arrivals); i++ {
		if gap := arrivals[i].Sub(arrivals[i-1]) - interval; gap > res.Outage {
			res.Outage, res.Recovered = gap, arrivals[i]
		}
	}
	if n := len(arrivals); n > 0 && len(res.Missing) > 0 && res.Missing[len(res.Missing)-1] > sent-inFlight(interval) {
		// Lost until the end.
		if gap := stopped.Sub(arrivals[n-1]); gap > res.Outage {
			res.Outage, res.Recovered = gap, time.Time{}
		}
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

// Output is everything ping printed (after Stop), for a failing test to show.
func (s *Stream) Output() string { return s.out.String() }

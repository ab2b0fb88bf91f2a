package peers

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// joinTargets is Config.Join without this node's own address.
func (m *Membership) joinTargets() []string {
	self := m.self.String()
	out := make([]string, 0, len(m.cfg.Join))
	for _, t := range m.cfg.Join {
		if t != self {
			out = append(out, t)
		}
	}
	return out
}

// join tries each target once and returns how many it joined. When none, the error says
// why for each target and wraps ErrIncompatible if any of them was refused.
func (m *Membership) join(targets []string) (int, error) {
	n := 0
	var errs joinErrors
	m.joining.Add(1)
	defer m.joining.Add(-1)
	for _, t := range targets {
		if m.shut.Load() {
			return n, fmt.Errorf("join: %w", ErrClosed)
		}
		if _, err := m.list.Join([]string{t}); err != nil {
			err = joinError(t, err)
			if errors.Is(err, ErrNameConflict) {
				return 0, err // fatal whatever the other targets say
			}
			errs = append(errs, err)
			m.keyJoinError(t, err)
			continue
		}
		n++
	}
	if n > 0 || len(errs) == 0 {
		return n, nil
	}
	if len(errs) == 1 {
		return 0, errs[0]
	}
	return 0, errs
}

// joinErrors keeps one error per join target on one line.
type joinErrors []error

func (e joinErrors) Error() string {
	s := make([]string, len(e))
	for i, err := range e {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (e joinErrors) Unwrap() []error { return e }

// joinError turns memberlist's Join error for target (a multierror of strings) into one
// line, wrapping ErrIncompatible when this node's merge delegate refused the other side.
// Only the joiner's own refusal shows up here: the joined node refuses after it has already
// sent its state, and only logs it; with the symmetric check both refuse.
func joinError(target string, err error) error {
	var parts []string
	for l := range strings.SplitSeq(err.Error(), "\n") {
		if rest, ok := strings.CutPrefix(strings.TrimSpace(l), "* "); ok {
			parts = append(parts, rest)
		}
	}
	if len(parts) == 0 {
		parts = []string{strings.TrimSpace(err.Error())}
	}
	for i, p := range parts {
		if rest, ok := strings.CutPrefix(p, "failed to join "); ok {
			if j := strings.Index(rest, ": "); j >= 0 {
				parts[i] = rest[j+2:]
			}
		}
	}
	msg := strings.Join(parts, "; ")
	if _, reason, ok := strings.Cut(msg, nameConflictMarker); ok {
		return fmt.Errorf("join %s: %w: %s; give this host a unique --name", target, ErrNameConflict, reason)
	}
	if _, reason, ok := strings.Cut(msg, refusalMarker); ok {
		return fmt.Errorf("join %s: %w: %s", target, ErrIncompatible, reason)
	}
	if strings.Contains(msg, "crypt") {
		msg += " (do all members use the same gossip key?)"
	}
	return fmt.Errorf("join %s: %s", target, msg)
}

// joinLoop re-joins the Join targets with backoff while this node is alone, until ctx ends,
// Leave or Shutdown.
func (m *Membership) joinLoop(ctx context.Context, targets []string) {
	defer m.wg.Done()
	backoff := joinRetryMin
	failures := 0
	lastWarn := time.Now() // Start has just warned
	t := time.NewTimer(joinRetryMin)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.stop:
			return
		case <-m.leaving:
			return
		case <-t.C:
		}
		next := aloneCheck
		if len(targets) > 0 && m.list.NumMembers() <= 1 {
			if n, err := m.join(targets); n > 0 {
				m.log.Info("joined the cluster", "contacted", n, "members", m.list.NumMembers(), "attempts", failures+1)
				backoff, failures = joinRetryMin, 0
			} else if errors.Is(err, ErrNameConflict) {
				m.log.Error("refusing to take part", "err", err)
				m.fatal <- err
				return
			} else {
				failures++
				level := slog.LevelDebug
				if time.Since(lastWarn) >= time.Minute {
					level, lastWarn = slog.LevelWarn, time.Now()
				}
				m.log.Log(ctx, level, "cannot join any member; retrying", "join", targets, "attempts", failures, "retry_in", backoff, "err", err)
				next = backoff
				backoff = min(2*backoff, joinRetryMax)
			}
		} else {
			backoff, failures = joinRetryMin, 0
		}
		t.Reset(next)
	}
}

// reconnectLoop tries dead peers again, the way Serf's reconnector does, so the two sides
// of a healed partition merge at once instead of waiting for memberlist's gossip to the dead
// or its next push/pull (6–9 s in the lab). Every reconnectTick it joins the dead peer tried
// least recently whose turn has come (see reconnectDue). It runs beside joinLoop because a
// join toward a host still cut off blocks for up to TCPTimeout.
func (m *Membership) reconnectLoop(ctx context.Context) {
	defer m.wg.Done()
	tried := map[string]time.Time{}
	t := time.NewTicker(reconnectTick)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-m.stop:
			return
		case <-m.leaving:
			return
		case <-t.C:
		}
		m.mu.Lock()
		dead := make([]Peer, 0, len(m.peers))
		for _, r := range m.peers {
			if r.State == StateDead && r.Gossip.IsValid() {
				dead = append(dead, r.Peer)
			}
		}
		m.mu.Unlock()
		p, ok := reconnectDue(dead, tried, time.Now())
		if !ok {
			continue
		}
		tried[p.Name] = time.Now()
		m.reconnect(p)
	}
}

// reconnectDue picks the dead peer to try now: of those whose turn has come, the one tried
// least recently. A peer dead for less than reconnectFastFor is due every reconnectTick (a
// partition that heals is found within about a second); one dead longer, every
// reconnectEvery (a host that is really gone costs one failed join per 15 s). tried is
// pruned of peers no longer dead.
func reconnectDue(dead []Peer, tried map[string]time.Time, now time.Time) (Peer, bool) {
	live := make(map[string]bool, len(dead))
	var best Peer
	var bestTried time.Time
	found := false
	for _, p := range dead {
		live[p.Name] = true
		period := reconnectTick
		if now.Sub(p.Since) >= reconnectFastFor {
			period = reconnectEvery
		}
		last := tried[p.Name]
		if now.Sub(last) < period {
			continue
		}
		if !found || last.Before(bestTried) || (last.Equal(bestTried) && p.Name < best.Name) {
			best, bestTried, found = p, last, true
		}
	}
	for name := range tried {
		if !live[name] {
			delete(tried, name)
		}
	}
	return best, found
}

// reconnect tries to join dead peer p: if it is in fact alive on the other side of a healed
// partition, the two sides merge again (a join is a full push/pull of both member lists).
func (m *Membership) reconnect(p Peer) {
	_, err := m.list.Join([]string{p.Gossip.String()})
	if err != nil && !errors.Is(err, ErrClosed) {
		m.log.Debug("dead peer still unreachable", "peer", p.Name, "err", joinError(p.Gossip.String(), err))
		return
	}
	m.log.Debug("reached dead peer again", "peer", p.Name)
}

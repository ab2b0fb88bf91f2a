package endpoint

import (
	"sync"
	"time"
)

// expected counts attaches on their way to a batch (the OVSDB transaction of their ports,
// the bundle of their flows), so that a batch about to go out can wait a little for them
// (linger) rather than leave in a batch of its own the first of a burst. The zero value is
// ready to use.
type expected struct {
	mu      sync.Mutex
	n       int
	arrived chan struct{} // signalled when one arrives or gives up; made on first use
}

// add counts an attach that will call done soon.
func (e *expected) add() {
	e.mu.Lock()
	e.n++
	e.mu.Unlock()
}

// done counts off an attach counted by add: it has queued its part of the batch, or it
// ended before it could.
func (e *expected) done() {
	e.mu.Lock()
	e.n--
	ch := e.chanLocked()
	e.mu.Unlock()
	select {
	case ch <- struct{}{}:
	default:
	}
}

// chanLocked is the arrival signal, made on first use.
func (e *expected) chanLocked() chan struct{} {
	if e.arrived == nil {
		e.arrived = make(chan struct{}, 1)
	}
	return e.arrived
}

// linger waits until no attach is on its way any more, or max has passed.
func (e *expected) linger(max time.Duration) {
	timeout := time.NewTimer(max)
	defer timeout.Stop()
	for {
		e.mu.Lock()
		waiting, ch := e.n, e.chanLocked()
		e.mu.Unlock()
		if waiting <= 0 {
			return
		}
		select {
		case <-ch:
		case <-timeout.C:
			return
		}
	}
}

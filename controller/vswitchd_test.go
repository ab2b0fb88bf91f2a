package controller

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ovsfabric/ovsfabric/config"
	"github.com/ovsfabric/ovsfabric/flows"
	"github.com/ovsfabric/ovsfabric/flows/flowstest"
)

// fakeServer is a ServerIdentity whose value the test sets.
type fakeServer struct {
	mu sync.Mutex
	id string
}

func (f *fakeServer) ServerID() string { f.mu.Lock(); defer f.mu.Unlock(); return f.id }
func (f *fakeServer) set(id string)    { f.mu.Lock(); f.id = id; f.mu.Unlock() }

// TestWatchVSwitchd checks that a new ovs-vswitchd (a new ServerID) asks for a reconcile and
// drops the attach fast path's idea of the installed flows, and that an unchanged one does
// neither.
func TestWatchVSwitchd(t *testing.T) {
	c := New(config.Settings{Config: config.Config{Bridge: "br-int"}}, nil, nil, flowstest.New(), nil, slog.New(slog.DiscardHandler))
	srv := &fakeServer{id: "a"}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	c.flowsApplied = []flows.Flow{{Table: 0}}
	go c.watchVSwitchd(ctx, srv)

	select {
	case <-c.kick:
		t.Fatal("kicked with the same ovs-vswitchd")
	case <-time.After(5 * vswitchdPoll):
	}
	for _, step := range []struct {
		id   string
		kick bool
	}{{"", false}, {"b", true}} {
		c.pipeMu.Lock()
		c.flowsApplied = []flows.Flow{{Table: 0}}
		c.pipeMu.Unlock()
		srv.set(step.id)
		select {
		case <-c.kick:
			if !step.kick {
				t.Fatalf("ServerID %q: kicked", step.id)
			}
		case <-time.After(20 * vswitchdPoll):
			if step.kick {
				t.Fatalf("ServerID %q: no kick", step.id)
			}
		}
		c.pipeMu.Lock()
		applied := c.flowsApplied
		c.pipeMu.Unlock()
		if applied != nil {
			t.Errorf("ServerID %q: flowsApplied kept after ovs-vswitchd changed", step.id)
		}
	}
}

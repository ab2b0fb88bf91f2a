package controller

import (
	"context"
	"log/slog"
	"net"
	"os"
	"path/filepath"
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
	go c.watchVSwitchd(ctx, srv, vswitchdPoll)

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

// TestWatchVSwitchdInotify checks that a new management socket is noticed from the run
// directory's inotify events, with no periodic look (the safety period is an hour): a socket
// bound by a "new ovs-vswitchd" kicks a reconcile, its removal does not, a second one does.
func TestWatchVSwitchdInotify(t *testing.T) {
	dir := t.TempDir()
	of := flows.NewOFCtl("br-x", flows.WithEnv("OVS_RUNDIR="+dir))
	if got := of.ServerDir(); got != dir {
		t.Fatalf("ServerDir = %q, want %q", got, dir)
	}
	c := New(config.Settings{Config: config.Config{Bridge: "br-x"}}, nil, nil, flowstest.New(), nil, slog.New(slog.DiscardHandler))
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan struct{})
	go func() { defer close(done); c.watchVSwitchd(ctx, of, time.Hour) }()
	defer func() { cancel(); <-done }()
	// The watch is set up before the first select; give the goroutine that moment.
	time.Sleep(100 * time.Millisecond)

	sock := filepath.Join(dir, "br-x.mgmt")
	for i, step := range []struct {
		what string
		bind bool
		kick bool
	}{
		{"first ovs-vswitchd", true, true},
		{"ovs-vswitchd gone", false, false},
		{"second ovs-vswitchd", true, true},
	} {
		if step.bind {
			l, err := net.Listen("unix", sock)
			if err != nil {
				t.Fatal(err)
			}
			l.(*net.UnixListener).SetUnlinkOnClose(false)
			defer l.Close()
		} else if err := os.Remove(sock); err != nil {
			t.Fatal(err)
		}
		select {
		case <-c.kick:
			if !step.kick {
				t.Fatalf("step %d (%s): kicked", i, step.what)
			}
		case <-time.After(2 * time.Second):
			if step.kick {
				t.Fatalf("step %d (%s): no kick within 2 s although the safety look is an hour away", i, step.what)
			}
		}
	}
}

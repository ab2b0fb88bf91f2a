package fabriclab

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/lab"
)

// JoinLeaveCycles makes fabricd on h leave and rejoin the fabric cycles times, in turn by
// `fabricctl leave`, SIGTERM and kill -9, each followed by a restart with args and a wait
// until the fabric has converged again. fabricd must be running on h.
func (f *Fabric) JoinLeaveCycles(ctx context.Context, h *lab.Host, args []string, cycles int) error {
	for cycle := range cycles {
		n := f.Node(h.Name)
		if n == nil {
			return fmt.Errorf("cycle %d: no fabricd on %s", cycle, h.Name)
		}
		switch cycle % 3 {
		case 0:
			out, err := exec.CommandContext(ctx, filepath.Join(f.Opts.Bin, "fabricctl"), "--socket", n.Socket, "leave").CombinedOutput()
			if err != nil {
				return fmt.Errorf("cycle %d: fabricctl leave: %w: %s", cycle, err, out)
			}
			if err := n.Proc.Wait(15 * time.Second); err != nil {
				return fmt.Errorf("cycle %d: fabricd after leave: %w", cycle, err)
			}
		case 1:
			if err := n.Proc.Stop(10 * time.Second); err != nil {
				return fmt.Errorf("cycle %d: SIGTERM: %w", cycle, err)
			}
		case 2:
			if err := n.Proc.Kill(); err != nil {
				return fmt.Errorf("cycle %d: kill -9: %w", cycle, err)
			}
		}
		if _, err := f.StartArgs(ctx, h, args); err != nil {
			return fmt.Errorf("cycle %d: restart: %w", cycle, err)
		}
		if _, err := f.WaitConverged(ctx, 60*time.Second); err != nil {
			return fmt.Errorf("cycle %d: %w", cycle, err)
		}
	}
	return nil
}

// AttachDetachCycles attaches a fresh container namespace on n, detaches it and deletes the
// namespace, cycles times one after the other, and returns the address each attach got.
func (f *Fabric) AttachDetachCycles(ctx context.Context, n *Node, cycles int) ([]string, error) {
	var ips []string
	for i := range cycles {
		path, err := f.Lab.AddNetNS(ctx, n.Host, fmt.Sprintf("churn%d", i))
		if err != nil {
			return ips, err
		}
		a, err := n.Client().Attach(ctx, api.AttachRequest{Target: path})
		if err != nil {
			return ips, fmt.Errorf("attach cycle %d: %w", i, err)
		}
		ips = append(ips, a.IP)
		if _, err := n.Client().Detach(ctx, api.DetachRequest{Target: path}); err != nil {
			return ips, fmt.Errorf("detach cycle %d: %w", i, err)
		}
		if err := f.Lab.DeleteNetNS(ctx, path); err != nil {
			return ips, err
		}
	}
	return ips, nil
}

// LeakCount is the number of items a DiffAll result lists ("- " and "+ " lines).
func LeakCount(diff string) int {
	n := 0
	for _, l := range strings.Split(diff, "\n") {
		if strings.HasPrefix(l, "- ") || strings.HasPrefix(l, "+ ") {
			n++
		}
	}
	return n
}

// WaitSame waits up to timeout until every node's snapshot equals before (ignoring UUIDs and
// OpenFlow numbers with stable) and returns how long that took and the last difference ("" when
// equal).
func (f *Fabric) WaitSame(ctx context.Context, before map[string]Snapshot, stable bool, timeout time.Duration) (time.Duration, string) {
	start := time.Now()
	for {
		after, err := f.Snapshots(ctx)
		diff := ""
		if err != nil {
			diff = err.Error()
		} else if diff = DiffAll(before, after, stable); diff == "" {
			return time.Since(start), ""
		}
		if time.Since(start) > timeout || ctx.Err() != nil {
			return time.Since(start), diff
		}
		select {
		case <-ctx.Done():
		case <-time.After(250 * time.Millisecond):
		}
	}
}

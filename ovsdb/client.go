package ovsdb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/go-logr/logr"
	"github.com/ovn-org/libovsdb/cache"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	libovsdb "github.com/ovn-org/libovsdb/ovsdb"

	"github.com/ovsfabric/ovsfabric/ovsdb/vswitchd"
)

// Client is a connection to one OVSDB server's Open_vSwitch database, with a local cache of the
// tables and columns fabricd reads (Open_vSwitch, Bridge, Port, Interface), kept current by a
// monitor. Reads are served from the cache; every write is one transaction, after which the
// cache already shows it. A Client is safe for concurrent use.
type Client struct {
	ovs      client.Client
	endpoint string
	log      *slog.Logger
	changes  chan struct{}
	txns     atomic.Uint64
	closing  sync.Once

	// tick is closed and replaced on every cache event; commit waits on it.
	tickMu sync.Mutex
	tick   chan struct{}

	// gen counts cache events and own commits; snap is the indexed read of the cache made at
	// generation snapGen, reused while gen has not moved (readers never modify it), so that a
	// reconcile with nothing to change does not copy every row.
	gen     atomic.Uint64
	snapMu  sync.Mutex
	snap    *snapshot
	snapGen uint64
}

// Option configures Dial.
type Option func(*dialOptions)

type dialOptions struct {
	log *slog.Logger
}

// WithLogger sends the client's logs to l. libovsdb's own logs go there too, at debug level
// and below (its per-update chatter is at levels below slog.LevelDebug), so at the default
// level only its errors show. Without this option nothing is logged.
func WithLogger(l *slog.Logger) Option {
	return func(o *dialOptions) {
		if l != nil {
			o.log = l
		}
	}
}

// cacheWaitLimit bounds how long a write waits for its own monitor update when the caller's
// context has no earlier deadline.
const cacheWaitLimit = 10 * time.Second

// Dial connects to endpoint ("unix:PATH" or "tcp:IP:PORT"), starts monitoring the columns
// fabricd needs and returns once the first snapshot is in the cache. ctx bounds only the
// connection attempt; an unreachable or silent server is an error naming the endpoint.
//
// After Dial the connection is re-established automatically when the server restarts (with
// backoff up to 2 s between attempts); reads meanwhile answer from the last cache, and writes
// block until reconnected or until their context ends. The root row need not exist yet
// (`ovs-vsctl init` makes it); operations that need it return ErrNotFound until it does.
func Dial(ctx context.Context, endpoint string, opts ...Option) (*Client, error) {
	o := dialOptions{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	ep, err := validEndpoint(endpoint)
	if err != nil {
		return nil, err
	}
	dbModel, err := vswitchd.FullDatabaseModel()
	if err != nil {
		return nil, fmt.Errorf("OVSDB at %s: database model: %w", endpoint, err)
	}
	lg := logr.FromSlogHandler(o.log.With("component", "libovsdb", "endpoint", ep).Handler())
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 100 * time.Millisecond
	bo.MaxInterval = 2 * time.Second
	bo.MaxElapsedTime = 0 // never give up
	ovs, err := client.NewOVSDBClient(dbModel,
		client.WithEndpoint(ep),
		client.WithReconnect(10*time.Second, bo),
		client.WithLogger(&lg),
	)
	if err != nil {
		return nil, fmt.Errorf("OVSDB client for %s: %w", endpoint, err)
	}
	if err := ovs.Connect(ctx); err != nil {
		return nil, dialError(ctx, "connect to", endpoint, err)
	}
	c := &Client{ovs: ovs, endpoint: ep, log: o.log, changes: make(chan struct{}, 1), tick: make(chan struct{})}
	ovs.Cache().AddEventHandler(&cache.EventHandlerFuncs{
		AddFunc:    func(string, model.Model) { c.gen.Add(1); c.notify() },
		UpdateFunc: func(string, model.Model, model.Model) { c.gen.Add(1); c.notify() },
		DeleteFunc: func(string, model.Model) { c.gen.Add(1); c.notify() },
	})
	var (
		ovsRow vswitchd.OpenvSwitch
		br     vswitchd.Bridge
		port   vswitchd.Port
		iface  vswitchd.Interface
	)
	// Only the columns fabricd reads: statistics, status and link state, which ovs-vswitchd
	// rewrites every few seconds, would otherwise wake the controller for nothing.
	mon := ovs.NewMonitor(
		client.WithTable(&ovsRow, &ovsRow.Bridges, &ovsRow.ExternalIDs, &ovsRow.OtherConfig, &ovsRow.NextCfg,
			&ovsRow.DatapathTypes, &ovsRow.IfaceTypes),
		client.WithTable(&br, &br.Name, &br.Ports, &br.DatapathType, &br.FailMode, &br.Protocols, &br.ExternalIDs),
		client.WithTable(&port, &port.Name, &port.Interfaces, &port.ExternalIDs, &port.Protected),
		client.WithTable(&iface, &iface.Name, &iface.Type, &iface.Options, &iface.ExternalIDs, &iface.MAC,
			&iface.OfportRequest, &iface.Ofport, &iface.MACInUse, &iface.Error),
	)
	if _, err := ovs.Monitor(ctx, mon); err != nil {
		ovs.Close()
		return nil, dialError(ctx, "monitor", endpoint, err)
	}
	c.log.Debug("connected to OVSDB", "endpoint", ep)
	return c, nil
}

// dialError names the endpoint and, when ctx ended, wraps ctx's error so that
// errors.Is(err, context.DeadlineExceeded) holds (libovsdb reports it only as text).
func dialError(ctx context.Context, doing, endpoint string, err error) error {
	if cerr := ctx.Err(); cerr != nil && !errors.Is(err, cerr) {
		return fmt.Errorf("%s OVSDB at %s (gave up: %w): %v", doing, endpoint, cerr, err)
	}
	return fmt.Errorf("%s OVSDB at %s: %w", doing, endpoint, err)
}

func (c *Client) notify() {
	select {
	case c.changes <- struct{}{}:
	default:
	}
	c.tickMu.Lock()
	close(c.tick)
	c.tick = make(chan struct{})
	c.tickMu.Unlock()
}

func (c *Client) nextTick() <-chan struct{} {
	c.tickMu.Lock()
	defer c.tickMu.Unlock()
	return c.tick
}

// Close ends the connection and stops reconnecting. It is safe to call more than once.
func (c *Client) Close() { c.closing.Do(c.ovs.Close) }

// Endpoint is the server this client talks to, as dialled (a unix path made absolute).
func (c *Client) Endpoint() string { return c.endpoint }

// Changes receives a value (coalesced: at most one pending) whenever a monitored row changes,
// whoever changed it: an operator's `ovs-vsctl del-port`, ovs-vswitchd filling in ofport or
// error, a reconnect's resync, and this client's own writes. A controller re-runs its
// reconcile on it; since a reconcile that finds nothing to change sends nothing, the loop
// settles after one extra pass.
func (c *Client) Changes() <-chan struct{} { return c.changes }

// Transactions is how many transactions this client has sent (committed or not). Operations
// that find nothing to change send none, so tests and benchmarks assert "zero writes" with it.
func (c *Client) Transactions() uint64 { return c.txns.Load() }

// commit sends ops as one transaction and returns once the cache shows its effect.
//
// To know when that is, the transaction also bumps Open_vSwitch.next_cfg (as ovs-vsctl does
// for every change it asks ovs-vswitchd to apply) and reads the new value back; the monitor
// delivers a transaction's changes in one update, so once the cache's next_cfg has reached
// that value every row of the transaction is in the cache. A failed "wait" operation (a guard
// that a row read from the cache is still there) or a unique-index violation (a name the cache
// showed free is taken) is reported as ErrStale.
func (c *Client) commit(ctx context.Context, what, rootUUID string, ops []libovsdb.Operation) error {
	rootRow := &vswitchd.OpenvSwitch{UUID: rootUUID}
	bump, err := c.ovs.Where(rootRow).Mutate(rootRow, model.Mutation{Field: &rootRow.NextCfg, Mutator: libovsdb.MutateOperationAdd, Value: 1})
	if err != nil {
		return fmt.Errorf("%s: build next_cfg bump: %w", what, err)
	}
	all := make([]libovsdb.Operation, 0, len(ops)+2)
	all = append(all, ops...)
	all = append(all, bump...)
	all = append(all, libovsdb.Operation{
		Op: libovsdb.OperationSelect, Table: vswitchd.OpenvSwitchTable,
		Where: uuidIs(rootUUID), Columns: []string{"next_cfg"},
	})
	c.txns.Add(1)
	// Whatever the outcome, the cache may now differ from the last snapshot before its
	// events have been handed out: never reuse that snapshot.
	defer c.gen.Add(1)
	start := time.Now()
	res, err := c.ovs.Transact(ctx, all...)
	if err != nil {
		return fmt.Errorf("%s: transact with %s: %w", what, c.endpoint, err)
	}
	if opErrs, err := libovsdb.CheckOperationResults(res, all); err != nil {
		for _, oe := range opErrs {
			if op := oe.Operation(); op != nil && op.Op == libovsdb.OperationWait {
				return fmt.Errorf("%s: %w (a %s row read from the cache has changed)", what, ErrStale, op.Table)
			}
		}
		errs := []error{err}
		for _, oe := range opErrs {
			errs = append(errs, oe)
		}
		err = errors.Join(errs...)
		// Names were checked against the cache, so a unique-index violation at commit means a
		// row of that name appeared meanwhile.
		if cv := (*libovsdb.ConstraintViolation)(nil); errors.As(err, &cv) {
			return fmt.Errorf("%s: %w: %w", what, ErrStale, err)
		}
		return fmt.Errorf("%s: transaction failed, nothing applied: %w", what, err)
	}
	sel := res[len(all)-1]
	if len(sel.Rows) != 1 {
		return fmt.Errorf("%s: committed, but the Open_vSwitch row %s is gone", what, rootUUID)
	}
	seq, ok := asInt(sel.Rows[0]["next_cfg"])
	if !ok {
		return fmt.Errorf("%s: committed, but next_cfg read back as %T %v", what, sel.Rows[0]["next_cfg"], sel.Rows[0]["next_cfg"])
	}
	committed := time.Since(start)
	err = c.waitCache(ctx, what, func() bool {
		r, err := c.root(ctx)
		return err == nil && r.NextCfg >= seq
	})
	c.log.Debug("transaction", "what", what, "ops", len(all), "commit", committed, "cache", time.Since(start)-committed)
	return err
}

func uuidIs(u string) []libovsdb.Condition {
	return []libovsdb.Condition{libovsdb.NewCondition("_uuid", libovsdb.ConditionEqual, libovsdb.UUID{GoUUID: u})}
}

// asInt reads an OVSDB integer out of a decoded JSON row.
func asInt(v any) (int, bool) {
	switch n := v.(type) {
	case float64:
		return int(n), true
	case int:
		return n, true
	case int64:
		return int(n), true
	}
	return 0, false
}

// waitCache waits until done reports true, re-checking on every cache event (and every 50 ms
// in case an event was missed), for at most cacheWaitLimit or until ctx ends.
func (c *Client) waitCache(ctx context.Context, what string, done func() bool) error {
	limit := time.NewTimer(cacheWaitLimit)
	defer limit.Stop()
	poll := time.NewTicker(50 * time.Millisecond)
	defer poll.Stop()
	for {
		tick := c.nextTick()
		if done() {
			return nil
		}
		select {
		case <-tick:
		case <-poll.C:
		case <-limit.C:
			return fmt.Errorf("%s: committed, but the cache did not show it within %s", what, cacheWaitLimit)
		case <-ctx.Done():
			return fmt.Errorf("%s: committed, but stopped waiting for the cache: %w", what, ctx.Err())
		}
	}
}

// root is the Open_vSwitch table's single row, from the cache.
func (c *Client) root(ctx context.Context) (*vswitchd.OpenvSwitch, error) {
	var rows []vswitchd.OpenvSwitch
	if err := c.ovs.List(ctx, &rows); err != nil {
		return nil, fmt.Errorf("read Open_vSwitch table: %w", err)
	}
	switch len(rows) {
	case 0:
		return nil, fmt.Errorf("%w: the Open_vSwitch table at %s is empty (run `ovs-vsctl init`)", ErrNotFound, c.endpoint)
	case 1:
		return &rows[0], nil
	}
	return nil, fmt.Errorf("the Open_vSwitch table at %s has %d rows, want 1", c.endpoint, len(rows))
}

// SystemExternalIDs returns a copy of the Open_vSwitch row's external_ids (all keys, also
// other tools' such as system-id).
func (c *Client) SystemExternalIDs(ctx context.Context) (map[string]string, error) {
	r, err := c.root(ctx)
	if err != nil {
		return nil, err
	}
	out := maps.Clone(r.ExternalIDs)
	if out == nil {
		out = map[string]string{}
	}
	return out, nil
}

// SetSystemExternalIDs sets the keys of set and deletes the keys of del in the Open_vSwitch
// row's external_ids, with mutations, so keys others wrote meanwhile are left alone. A key
// in both set and del is set. Nothing is sent when nothing differs.
func (c *Client) SetSystemExternalIDs(ctx context.Context, set map[string]string, del []string) error {
	for k := range set {
		if k == "" {
			return invalid("Open_vSwitch external_ids: empty key")
		}
	}
	r, err := c.root(ctx)
	if err != nil {
		return err
	}
	want := maps.Clone(set)
	if want == nil {
		want = map[string]string{}
	}
	var gone []string
	for _, k := range del {
		if _, keep := set[k]; keep {
			continue
		}
		if _, ok := r.ExternalIDs[k]; ok && !slices.Contains(gone, k) {
			gone = append(gone, k)
		}
	}
	row := &vswitchd.OpenvSwitch{UUID: r.UUID}
	muts := mapMutations(&row.ExternalIDs, r.ExternalIDs, want, gone)
	if len(muts) == 0 {
		return nil
	}
	ops, err := c.ovs.Where(row).Mutate(row, muts...)
	if err != nil {
		return fmt.Errorf("set Open_vSwitch external_ids: build mutation: %w", err)
	}
	return c.commit(ctx, "set Open_vSwitch external_ids", r.UUID, ops)
}

// mapMutations returns the mutations that make a string map column hold every pair of want
// and none of the keys of drop, leaving every other key as it is: delete the keys that change
// or go, then insert the new pairs (an OVSDB insert never overwrites an existing key).
func mapMutations(field *map[string]string, have, want map[string]string, drop []string) []model.Mutation {
	var dels []string
	ins := map[string]string{}
	for k, v := range want {
		if hv, ok := have[k]; !ok || hv != v {
			if ok {
				dels = append(dels, k)
			}
			ins[k] = v
		}
	}
	for _, k := range drop {
		if _, ok := have[k]; ok {
			if _, set := want[k]; !set {
				dels = append(dels, k)
			}
		}
	}
	var muts []model.Mutation
	if len(dels) > 0 {
		slices.Sort(dels)
		muts = append(muts, model.Mutation{Field: field, Mutator: libovsdb.MutateOperationDelete, Value: dels})
	}
	if len(ins) > 0 {
		muts = append(muts, model.Mutation{Field: field, Mutator: libovsdb.MutateOperationInsert, Value: ins})
	}
	return muts
}

// DatapathTypes lists the datapath types ovs-vswitchd reported it supports ("netdev",
// "system"). It is empty until ovs-vswitchd has run once against this database.
func (c *Client) DatapathTypes(ctx context.Context) ([]string, error) {
	r, err := c.root(ctx)
	if err != nil {
		return nil, err
	}
	return slices.Sorted(slices.Values(r.DatapathTypes)), nil
}

// IfaceTypes lists the interface types ovs-vswitchd reported it supports ("gre", "internal",
// "vxlan", …). It is empty until ovs-vswitchd has run once against this database.
func (c *Client) IfaceTypes(ctx context.Context) ([]string, error) {
	r, err := c.root(ctx)
	if err != nil {
		return nil, err
	}
	return slices.Sorted(slices.Values(r.IfaceTypes)), nil
}

package ovsdb

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
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

// Client is a connection to one OVSDB server's Open_vSwitch database, with a cache of the
// tables fabricd reads (Open_vSwitch, Bridge, Port, Interface) kept current by a monitor.
type Client struct {
	ovs      client.Client
	endpoint string
	log      *slog.Logger
	changes  chan struct{}
	txns     atomic.Uint64
}

// Option configures Dial.
type Option func(*dialOptions)

type dialOptions struct {
	log *slog.Logger
}

// WithLogger sends the client's logs (and libovsdb's, at debug level) to l.
func WithLogger(l *slog.Logger) Option {
	return func(o *dialOptions) { o.log = l }
}

// Dial connects to endpoint ("unix:PATH" or "tcp:IP:PORT"), starts monitoring the tables
// fabricd needs and waits for the first snapshot. The connection is re-established
// automatically when the server restarts; operations block (up to their context) meanwhile.
func Dial(ctx context.Context, endpoint string, opts ...Option) (*Client, error) {
	o := dialOptions{log: slog.New(slog.DiscardHandler)}
	for _, opt := range opts {
		opt(&o)
	}
	if !strings.HasPrefix(endpoint, "unix:") && !strings.HasPrefix(endpoint, "tcp:") {
		return nil, invalid("OVSDB endpoint %q: want unix:PATH or tcp:IP:PORT", endpoint)
	}
	dbModel, err := vswitchd.FullDatabaseModel()
	if err != nil {
		return nil, fmt.Errorf("database model: %w", err)
	}
	// libovsdb logs every cache update at V(>0); map it to slog so that only its errors show
	// at the default level.
	lg := logr.FromSlogHandler(o.log.With("component", "libovsdb").Handler())
	bo := backoff.NewExponentialBackOff()
	bo.InitialInterval = 100 * time.Millisecond
	bo.MaxInterval = 2 * time.Second
	bo.MaxElapsedTime = 0
	ovs, err := client.NewOVSDBClient(dbModel,
		client.WithEndpoint(endpoint),
		client.WithReconnect(10*time.Second, bo),
		client.WithLogger(&lg),
	)
	if err != nil {
		return nil, fmt.Errorf("OVSDB client for %s: %w", endpoint, err)
	}
	if err := ovs.Connect(ctx); err != nil {
		return nil, fmt.Errorf("connect to OVSDB at %s: %w", endpoint, err)
	}
	c := &Client{ovs: ovs, endpoint: endpoint, log: o.log, changes: make(chan struct{}, 1)}
	ovs.Cache().AddEventHandler(&cache.EventHandlerFuncs{
		AddFunc:    func(string, model.Model) { c.notify() },
		UpdateFunc: func(string, model.Model, model.Model) { c.notify() },
		DeleteFunc: func(string, model.Model) { c.notify() },
	})
	mon := ovs.NewMonitor(
		client.WithTable(&vswitchd.OpenvSwitch{}),
		client.WithTable(&vswitchd.Bridge{}),
		client.WithTable(&vswitchd.Port{}),
		client.WithTable(&vswitchd.Interface{}),
	)
	if _, err := ovs.Monitor(ctx, mon); err != nil {
		ovs.Close()
		return nil, fmt.Errorf("monitor OVSDB at %s: %w", endpoint, err)
	}
	return c, nil
}

func (c *Client) notify() {
	select {
	case c.changes <- struct{}{}:
	default:
	}
}

// Close ends the connection.
func (c *Client) Close() { c.ovs.Close() }

// Endpoint is the server this client talks to.
func (c *Client) Endpoint() string { return c.endpoint }

// Changes fires (coalesced) whenever a monitored row changes, whoever changed it.
func (c *Client) Changes() <-chan struct{} { return c.changes }

// Transactions is how many transactions this client has sent.
func (c *Client) Transactions() uint64 { return c.txns.Load() }

// transact sends ops in one transaction and checks every result.
func (c *Client) transact(ctx context.Context, what string, ops []libovsdb.Operation) ([]libovsdb.OperationResult, error) {
	c.txns.Add(1)
	res, err := c.ovs.Transact(ctx, ops...)
	if err != nil {
		return nil, fmt.Errorf("%s: transact: %w", what, err)
	}
	if _, err := libovsdb.CheckOperationResults(res, ops); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	return res, nil
}

// waitCache waits until the monitor has brought the cache up to a committed transaction.
func (c *Client) waitCache(ctx context.Context, what string, done func() bool) error {
	deadline := time.Now().Add(10 * time.Second)
	for !done() {
		if time.Now().After(deadline) {
			return fmt.Errorf("%s: committed, but the cache did not show it within 10s", what)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Millisecond):
		}
	}
	return nil
}

// root is the Open_vSwitch table's single row.
func (c *Client) root(ctx context.Context) (*vswitchd.OpenvSwitch, error) {
	var rows []vswitchd.OpenvSwitch
	if err := c.ovs.List(ctx, &rows); err != nil {
		return nil, fmt.Errorf("list Open_vSwitch: %w", err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("%w: the Open_vSwitch table is empty (run `ovs-vsctl init`)", ErrNotFound)
	}
	return &rows[0], nil
}

// SystemExternalIDs returns the Open_vSwitch row's external_ids.
func (c *Client) SystemExternalIDs(ctx context.Context) (map[string]string, error) {
	r, err := c.root(ctx)
	if err != nil {
		return nil, err
	}
	out := map[string]string{}
	for k, v := range r.ExternalIDs {
		out[k] = v
	}
	return out, nil
}

// SetSystemExternalIDs sets and deletes keys of the Open_vSwitch row's external_ids with
// mutations, so keys written by others are left alone. Nothing is sent when nothing differs.
func (c *Client) SetSystemExternalIDs(ctx context.Context, set map[string]string, del []string) error {
	r, err := c.root(ctx)
	if err != nil {
		return err
	}
	changed := map[string]string{}
	for k, v := range set {
		if r.ExternalIDs[k] != v {
			changed[k] = v
		}
	}
	var gone []string
	for _, k := range del {
		if _, ok := r.ExternalIDs[k]; ok {
			gone = append(gone, k)
		}
	}
	if len(changed) == 0 && len(gone) == 0 {
		return nil
	}
	row := &vswitchd.OpenvSwitch{UUID: r.UUID}
	var muts []model.Mutation
	if len(changed)+len(gone) > 0 {
		var keys []string
		for k := range changed {
			keys = append(keys, k)
		}
		keys = append(keys, gone...)
		// An insert does not overwrite an existing key: delete first, then insert.
		muts = append(muts, model.Mutation{Field: &row.ExternalIDs, Mutator: libovsdb.MutateOperationDelete, Value: keys})
	}
	if len(changed) > 0 {
		muts = append(muts, model.Mutation{Field: &row.ExternalIDs, Mutator: libovsdb.MutateOperationInsert, Value: changed})
	}
	ops, err := c.ovs.Where(row).Mutate(row, muts...)
	if err != nil {
		return fmt.Errorf("build external_ids mutation: %w", err)
	}
	if _, err := c.transact(ctx, "set Open_vSwitch external_ids", ops); err != nil {
		return err
	}
	return c.waitCache(ctx, "set Open_vSwitch external_ids", func() bool {
		r, err := c.root(ctx)
		if err != nil {
			return false
		}
		for k, v := range changed {
			if r.ExternalIDs[k] != v {
				return false
			}
		}
		for _, k := range gone {
			if _, ok := r.ExternalIDs[k]; ok {
				return false
			}
		}
		return true
	})
}

// DatapathTypes lists the datapath types ovs-vswitchd reported it supports (empty until
// ovs-vswitchd has started once).
func (c *Client) DatapathTypes(ctx context.Context) ([]string, error) {
	r, err := c.root(ctx)
	if err != nil {
		return nil, err
	}
	return append([]string(nil), r.DatapathTypes...), nil
}

// Package ovsdbtest runs libovsdb's in-memory OVSDB server with the Open_vSwitch schema for
// unit tests: a real OVSDB implementation on a unix socket, no root and no Open vSwitch needed.
package ovsdbtest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/stdr"
	"github.com/ovn-org/libovsdb/cache"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/database/inmemory"
	"github.com/ovn-org/libovsdb/model"
	libovsdb "github.com/ovn-org/libovsdb/ovsdb"
	"github.com/ovn-org/libovsdb/server"

	"github.com/ovsfabric/ovsfabric/ovsdb/vswitchd"
)

// Start runs a server holding the Open_vSwitch root row (as `ovs-vsctl init` makes it, with
// external_ids:system-id=test) and returns its endpoint. It stops when the test ends.
func Start(t testing.TB) string {
	t.Helper()
	// libovsdb's server package turns stdr's global verbosity to 5 when it loads, which logs
	// every row of every transaction; tests want quiet.
	stdr.SetVerbosity(0)
	clientModel, err := vswitchd.FullDatabaseModel()
	if err != nil {
		t.Fatal(err)
	}
	schema := vswitchd.Schema()
	dbModel, errs := model.NewDatabaseModel(schema, clientModel)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	db := inmemory.NewDatabase(map[string]model.ClientDBModel{schema.Name: clientModel})
	srv, err := server.NewOvsdbServer(db, dbModel)
	if err != nil {
		t.Fatal(err)
	}
	// Not t.TempDir(): its path grows with the test's name, and a unix socket path is limited
	// to 108 bytes.
	dir, err := os.MkdirTemp("", "ovsdbt")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "db.sock")
	served := make(chan struct{})
	go func() { defer close(served); _ = srv.Serve("unix", sock) }()
	t.Cleanup(func() { srv.Close(); <-served })
	deadline := time.Now().Add(5 * time.Second)
	for !srv.Ready() {
		if time.Now().After(deadline) {
			t.Fatal("in-memory OVSDB server not ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	quiet := logr.Discard()
	c, err := client.NewOVSDBClient(clientModel, client.WithEndpoint("unix:"+sock), client.WithLogger(&quiet))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ops, err := c.Create(&vswitchd.OpenvSwitch{UUID: "root", ExternalIDs: map[string]string{"system-id": "test"}})
	if err != nil {
		t.Fatal(err)
	}
	res, err := c.Transact(context.Background(), ops...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := libovsdb.CheckOperationResults(res, ops); err != nil {
		t.Fatal(err)
	}
	return "unix:" + sock
}

// Vswitchd stands in for ovs-vswitchd on the server at endpoint (from Start) until the test
// ends: it numbers every interface that has no OpenFlow port number yet (its
// ofport_request when that number is free, else 1, 2, … skipping numbers taken or requested)
// and fills in mac_in_use (the requested mac, else one derived from the number), as
// ovs-vswitchd does when it takes a port, so that code waiting for a port to be live runs
// in unit tests.
func Vswitchd(t testing.TB, endpoint string) {
	t.Helper()
	clientModel, err := vswitchd.FullDatabaseModel()
	if err != nil {
		t.Fatal(err)
	}
	quiet := logr.Discard()
	c, err := client.NewOVSDBClient(clientModel, client.WithEndpoint(endpoint), client.WithLogger(&quiet))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := c.Connect(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	wake := make(chan struct{}, 1)
	c.Cache().AddEventHandler(&cache.EventHandlerFuncs{AddFunc: func(table string, _ model.Model) {
		if table == vswitchd.InterfaceTable {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}})
	if _, err := c.Monitor(ctx, c.NewMonitor(client.WithTable(&vswitchd.Interface{}))); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		next := 1
		for {
			select {
			case <-ctx.Done():
				return
			case <-wake:
			}
			var ifaces []vswitchd.Interface
			if err := c.List(ctx, &ifaces); err != nil {
				continue
			}
			// Numbers taken, and numbers requested (which ovs-vswitchd does not hand out to
			// other ports).
			inUse, taken := map[int]bool{}, map[int]bool{}
			for _, iface := range ifaces {
				if iface.Ofport != nil && *iface.Ofport > 0 {
					inUse[*iface.Ofport], taken[*iface.Ofport] = true, true
				} else if iface.OfportRequest != nil {
					taken[*iface.OfportRequest] = true
				}
			}
			var ops []libovsdb.Operation
			for i := range ifaces {
				iface := &ifaces[i]
				if iface.Ofport != nil && *iface.Ofport > 0 {
					continue
				}
				var n int
				if r := iface.OfportRequest; r != nil && *r > 0 && !inUse[*r] {
					n = *r
				} else {
					for taken[next] {
						next++
					}
					n = next
					next++
				}
				inUse[n], taken[n] = true, true
				mac := fmt.Sprintf("02:00:00:00:%02x:%02x", n>>8&0xff, n&0xff)
				if iface.MAC != nil && *iface.MAC != "" {
					mac = *iface.MAC
				}
				iface.Ofport, iface.MACInUse = &n, &mac
				op, err := c.Where(iface).Update(iface, &iface.Ofport, &iface.MACInUse)
				if err != nil {
					continue
				}
				ops = append(ops, op...)
			}
			if len(ops) > 0 {
				_, _ = c.Transact(ctx, ops...)
			}
		}
	}()
	t.Cleanup(func() { cancel(); <-done; c.Close() })
}

// RawClient is a plain libovsdb client of the OVSDB at endpoint (the in-memory server or a
// real ovsdb-server), monitoring every table: tests use it to act as an operator or
// ovs-vswitchd would, behind the back of the code under test. It closes when the test ends.
func RawClient(t testing.TB, endpoint string) client.Client {
	t.Helper()
	dbModel, err := vswitchd.FullDatabaseModel()
	if err != nil {
		t.Fatal(err)
	}
	quiet := logr.Discard()
	c, err := client.NewOVSDBClient(dbModel, client.WithEndpoint(endpoint), client.WithLogger(&quiet))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	if _, err := c.MonitorAll(ctx); err != nil {
		t.Fatal(err)
	}
	return c
}

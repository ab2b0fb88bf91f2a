// Package ovsdbtest runs libovsdb's in-memory OVSDB server with the Open_vSwitch schema for
// unit tests: a real OVSDB implementation on a unix socket, no root and no Open vSwitch needed.
package ovsdbtest

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"github.com/go-logr/stdr"
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

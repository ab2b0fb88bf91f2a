package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/ovsfabric/ovsfabric/apiserver"
	"github.com/ovsfabric/ovsfabric/config"
	"github.com/ovsfabric/ovsfabric/controller"
	"github.com/ovsfabric/ovsfabric/fabricdns"
	"github.com/ovsfabric/ovsfabric/registry"
)

// fabricDNS is the fabric DNS of this fabricd (nil with --dns=false).
type fabricDNS struct {
	srv *fabricdns.Server
}

// startDNS builds the fabric DNS when --dns is on: the table the loop fills from the
// registry and the server it points at this host's gateways; both go to ctrl. It listens
// nowhere until the first sync.
func startDNS(s config.Settings, ctrl *controller.Controller, log *slog.Logger) (*fabricDNS, error) {
	if !s.DNS {
		return nil, nil
	}
	tab := fabricdns.NewTable()
	srv, err := fabricdns.New(fabricdns.Config{Directory: tab, Port: s.DNSPort, ResolvConf: s.DNSResolvConf, Logger: log.With("component", "dns")})
	if err != nil {
		return nil, fmt.Errorf("fabric DNS: %w", err)
	}
	ctrl.SetDNS(tab, srv)
	return &fabricDNS{srv: srv}, nil
}

// serve refreshes the names whenever the registry changes until ctx ends, and lists them
// on the API.
func (d *fabricDNS) serve(ctx context.Context, ctrl *controller.Controller, reg *registry.Registry, api *apiserver.Server) {
	if d == nil {
		return
	}
	api.SetDNS(ctrl)
	changes, stop := reg.Subscribe()
	go func() {
		defer stop()
		ctrl.WatchDNS(ctx, changes)
	}()
}

// close stops answering.
func (d *fabricDNS) close() {
	if d != nil {
		_ = d.srv.Close()
	}
}

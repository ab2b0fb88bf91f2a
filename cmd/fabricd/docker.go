package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/config"
	"github.com/ovsfabric/ovsfabric/controller"
	"github.com/ovsfabric/ovsfabric/dockerplugin"
	"github.com/ovsfabric/ovsfabric/endpoint"
	"github.com/ovsfabric/ovsfabric/registry"
)

// dockerFabric serves the Docker plugin (dockerplugin.Fabric) from the loop (networks) and
// the endpoint manager (addresses, endpoints).
type dockerFabric struct {
	c   *controller.Controller
	eps *endpoint.Manager
}

func (f dockerFabric) Networks(ctx context.Context) ([]api.Network, error) {
	return f.c.ListNetworks(ctx)
}

func (f dockerFabric) CreateNetwork(ctx context.Context, req api.NetworkCreateRequest) (api.Network, error) {
	return f.c.CreateNetwork(ctx, req)
}

func (f dockerFabric) Hold(ctx context.Context, nw string, want netip.Addr) (netip.Prefix, netip.Addr, error) {
	return f.eps.DockerHold(ctx, nw, want)
}

func (f dockerFabric) Release(ip netip.Addr) { f.eps.DockerRelease(ip) }

func (f dockerFabric) CreateEndpoint(ctx context.Context, e dockerplugin.Endpoint) (dockerplugin.EndpointInfo, error) {
	d, err := f.eps.DockerAttach(ctx, endpoint.DockerEndpoint{ID: e.ID, Network: e.Network, Addr: e.Addr, MAC: e.MAC})
	return dockerplugin.EndpointInfo{Network: d.Network, Addr: d.Addr, MAC: d.MAC, Peer: d.Peer}, err
}

func (f dockerFabric) Endpoint(ctx context.Context, id string) (dockerplugin.EndpointInfo, bool, error) {
	d, ok, err := f.eps.DockerEndpointOf(ctx, id)
	return dockerplugin.EndpointInfo{Network: d.Network, Addr: d.Addr, MAC: d.MAC, Peer: d.Peer}, ok, err
}

func (f dockerFabric) DeleteEndpoint(ctx context.Context, id string) error {
	return f.eps.DockerDetach(ctx, id)
}

func (f dockerFabric) Publish(ctx context.Context, id string, specs []string) error {
	return f.eps.DockerPublish(ctx, id, specs)
}

func (f dockerFabric) Unnamed(ctx context.Context) ([]string, error) {
	es, err := f.eps.DockerEndpoints(ctx)
	var out []string
	for _, e := range es {
		if e.Name == "" {
			out = append(out, e.ID)
		}
	}
	return out, err
}

func (f dockerFabric) SetNames(ctx context.Context, id, container string, aliases []string) error {
	return f.eps.DockerSetNames(ctx, id, container, aliases)
}

// systemDockerHosts are the system Docker's API endpoints: --docker-plugin auto serves the
// plugin only for it (a private dockerd, as in the lab, asks for it with on).
var systemDockerHosts = map[string]bool{"unix:///var/run/docker.sock": true, "unix:///run/docker.sock": true}

// wantDockerPlugin resolves --docker-plugin.
func wantDockerPlugin(ctx context.Context, s config.Settings) bool {
	switch s.DockerPlugin {
	case config.DockerPluginOn:
		return true
	case config.DockerPluginOff:
		return false
	}
	if !systemDockerHosts[s.DockerHost] {
		return false
	}
	// At boot fabricd starts before dockerd: an installed dockerd is enough.
	if _, err := exec.LookPath("dockerd"); err == nil {
		return true
	}
	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return dockerplugin.Ping(pctx, s.DockerHost) == nil
}

// startDockerPlugin serves the Docker plugin when --docker-plugin says so, and keeps the
// Docker networks in step with the fabric's (when --docker-host is set), until ctx ends.
func startDockerPlugin(ctx context.Context, s config.Settings, ctrl *controller.Controller, eps *endpoint.Manager, store dockerplugin.Store, reg *registry.Registry, log *slog.Logger) error {
	if !wantDockerPlugin(ctx, s) {
		return nil
	}
	log = log.With("component", "docker-plugin")
	d := dockerplugin.New(dockerFabric{c: ctrl, eps: eps}, store, log)
	if err := d.Load(ctx); err != nil {
		return err
	}
	l, err := d.Listen(ctx, s.DockerPluginSocket)
	if err != nil {
		return err
	}
	go func() {
		if err := d.Serve(ctx, l); err != nil {
			log.Error("docker plugin", "err", err)
		}
	}()
	log.Info("serving the docker plugin", "socket", s.DockerPluginSocket)
	if s.DockerHost == "" {
		return nil
	}
	sy, err := dockerplugin.NewSyncer(d, s.DockerHost, log)
	if err != nil {
		return fmt.Errorf("--docker-host: %w", err)
	}
	kick := make(chan struct{}, 1)
	go onNetworkChanges(ctx, reg, func() {
		select {
		case kick <- struct{}{}:
		default:
		}
	})
	go sy.Run(ctx, kick)
	return nil
}

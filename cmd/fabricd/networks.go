package main

import (
	"context"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/controller"
)

// networksAPI serves the API's network routes (apiserver.Networks) from the loop, which
// holds the network book, this host's slices and the endpoints of every host.
type networksAPI struct{ c *controller.Controller }

func (n networksAPI) Create(ctx context.Context, req api.NetworkCreateRequest) (api.Network, error) {
	return n.c.CreateNetwork(ctx, req)
}

func (n networksAPI) List(ctx context.Context) ([]api.Network, error) { return n.c.ListNetworks(ctx) }

func (n networksAPI) Inspect(ctx context.Context, name string) (api.Network, error) {
	return n.c.InspectNetwork(ctx, name)
}

func (n networksAPI) Remove(ctx context.Context, req api.NetworkRemoveRequest) (api.Network, error) {
	return n.c.RemoveNetwork(ctx, req)
}

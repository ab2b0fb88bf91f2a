// Package containers resolves Docker and Podman container names and IDs to their network
// namespaces through the Docker Engine API (Podman serves the same API on its own socket).
package containers

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"github.com/docker/docker/client"

	"github.com/ovsfabric/ovsfabric/api"
)

// Engine resolves containers of one Docker-API engine (dockerd or podman).
type Engine struct {
	// Kind names the engine in messages: "docker" or "podman".
	Kind string
	// Host is the engine's API endpoint, e.g. unix:///var/run/docker.sock.
	Host string
}

// DefaultEngines are the engines tried when none are configured: Docker, then Podman.
func DefaultEngines() []Engine {
	return []Engine{
		{Kind: "docker", Host: "unix:///var/run/docker.sock"},
		{Kind: "podman", Host: "unix:///run/podman/podman.sock"},
	}
}

// Resolve finds the container named or identified by nameOrID. An engine whose socket does not
// exist answers "not found", so a host without Podman (or Docker) just skips it.
func (e Engine) Resolve(ctx context.Context, nameOrID string) (api.Target, bool, error) {
	if path, ok := strings.CutPrefix(e.Host, "unix://"); ok {
		if _, err := os.Stat(path); err != nil {
			return api.Target{}, false, nil
		}
	}
	cli, err := client.NewClientWithOpts(client.WithHost(e.Host), client.WithAPIVersionNegotiation(), client.WithTimeout(10*time.Second))
	if err != nil {
		return api.Target{}, false, fmt.Errorf("%s at %s: %w", e.Kind, e.Host, err)
	}
	defer cli.Close()
	info, err := cli.ContainerInspect(ctx, nameOrID)
	if err != nil {
		if isNotFound(err) {
			return api.Target{}, false, nil
		}
		return api.Target{}, false, fmt.Errorf("%s at %s: inspect %s: %w", e.Kind, e.Host, nameOrID, err)
	}
	name := strings.TrimPrefix(info.Name, "/")
	if info.State == nil || !info.State.Running || info.State.Pid == 0 {
		return api.Target{}, false, api.Errorf(api.ErrConflict, "%s container %s is not running; start it first", e.Kind, name)
	}
	return api.Target{
		Key:   info.ID,
		Name:  name,
		ID:    info.ID,
		NetNS: fmt.Sprintf("/proc/%d/ns/net", info.State.Pid),
		// Where the runtime keeps the container's resolv.conf: attach points it at the
		// fabric DNS (and checks the path before writing).
		ResolvConf: info.ResolvConfPath,
	}, true, nil
}

func isNotFound(err error) bool {
	var nf interface{ NotFound() }
	return errors.As(err, &nf) || strings.Contains(strings.ToLower(err.Error()), "no such container")
}

package main

import (
	"context"
	"testing"

	"github.com/ovsfabric/ovsfabric/config"
)

func TestWantDockerPlugin(t *testing.T) {
	for _, tc := range []struct {
		mode, host string
		want       bool
	}{
		{config.DockerPluginOn, "unix:///tmp/private.sock", true},
		{config.DockerPluginOff, "unix:///var/run/docker.sock", false},
		// auto never serves for a private dockerd (the lab's): its plugin directory is not
		// the system's.
		{config.DockerPluginAuto, "unix:///tmp/private.sock", false},
		{config.DockerPluginAuto, "", false},
	} {
		s := config.Settings{Config: config.Config{DockerPlugin: tc.mode, DockerHost: tc.host}}
		if got := wantDockerPlugin(context.Background(), s); got != tc.want {
			t.Errorf("--docker-plugin %s --docker-host %q: %v, want %v", tc.mode, tc.host, got, tc.want)
		}
	}
}

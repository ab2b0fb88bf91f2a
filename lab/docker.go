package lab

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/ovsfabric/ovsfabric/fabricdns"
	"github.com/ovsfabric/ovsfabric/lab/dockerlab"
)

// dockerRecord is a private dockerd the lab started on a host (Host.StartDocker), as recorded
// in the state file: what Down needs to stop it from another process.
type dockerRecord struct {
	Host   string           `json:"host"`
	Daemon dockerlab.Record `json:"daemon"`
}

// DockerDir is where the host's private dockerd keeps everything (Host.StartDocker): its API
// socket DockerDir/docker.sock, data-root, containerd state, logs.
func (h *Host) DockerDir() string { return filepath.Join(h.Dir, "docker") }

// DockerHost is the API endpoint of the host's private dockerd, "unix://<DockerDir>/docker.sock"
// (DOCKER_HOST, fabricd's --docker-host).
func (h *Host) DockerHost() string { return "unix://" + filepath.Join(h.DockerDir(), "docker.sock") }

// APISocket is where fabricd on this host listens when started by package fabriclab
// (<host dir>/fabricd.sock): fabricctl's --socket, or FABRICCTL_SOCKET.
func (h *Host) APISocket() string { return filepath.Join(h.Dir, "fabricd.sock") }

// StartDocker starts a private dockerd with its own containerd in the host's namespace, all of
// its state in DockerDir (see package dockerlab). The lab records the daemons (PIDs, start
// times, cgroup parent) before and as they start, so Down stops them and removes their
// containers, mounts and cgroups even when the process that called StartDocker has exited
// (the demo with KEEP=1). The caller may stop the daemon earlier with its Stop.
func (h *Host) StartDocker(ctx context.Context) (*dockerlab.Daemon, error) {
	return h.startDocker(ctx, "", nil)
}

// DockerPluginDir is the host's own /run/docker/plugins when its dockerd was started with
// StartDockerWithPlugins: fabricd's --docker-plugin-socket goes there.
func (h *Host) DockerPluginDir() string { return filepath.Join(h.DockerDir(), "plugins") }

// StartDockerWithPlugins is StartDocker with the host's own plugin directory
// (DockerPluginDir, seen by its dockerd as /run/docker/plugins, in a mount namespace of its
// own: see dockerlab.Config.PluginDir), and with the fabric DNS's address shared by every
// network as its "dns" (daemon.json), as an installed host has it (docs/docker.md, Names):
// containers on the fabric's networks resolve the fabric's names with no --dns.
func (h *Host) StartDockerWithPlugins(ctx context.Context) (*dockerlab.Daemon, error) {
	return h.startDocker(ctx, h.DockerPluginDir(), []netip.Addr{fabricdns.WellKnown()})
}

func (h *Host) startDocker(ctx context.Context, pluginDir string, dns []netip.Addr) (*dockerlab.Daemon, error) {
	d, err := dockerlab.Start(ctx, dockerlab.Config{Dir: h.DockerDir(), NetNS: h.NetNS, Logger: h.lab.log, PluginDir: pluginDir, DNS: dns,
		OnRecord: func(rec dockerlab.Record) error { return h.lab.recordDocker(h.Name, rec) }})
	if err != nil {
		return nil, fmt.Errorf("host %s: %w", h.Name, err)
	}
	return d, nil
}

// recordDocker adds or updates the record of the daemon in rec.Dir and saves the state.
func (l *Lab) recordDocker(host string, rec dockerlab.Record) error {
	l.mu.Lock()
	i := slices.IndexFunc(l.st.Dockers, func(r dockerRecord) bool { return r.Daemon.Dir == rec.Dir })
	if i < 0 {
		l.st.Dockers = append(l.st.Dockers, dockerRecord{Host: host, Daemon: rec})
	} else {
		l.st.Dockers[i] = dockerRecord{Host: host, Daemon: rec}
	}
	l.mu.Unlock()
	return l.save()
}

// dockers are the lab's private dockerds: the recorded ones, and any a host's DockerDir shows
// that was never recorded (started with dockerlab.Start directly, or by a lab from before
// records), keyed by host name.
func (l *Lab) dockers() []dockerRecord {
	l.mu.Lock()
	out := slices.Clone(l.st.Dockers)
	hosts := slices.Clone(l.Hosts)
	l.mu.Unlock()
	for _, h := range hosts {
		if slices.ContainsFunc(out, func(r dockerRecord) bool { return r.Daemon.Dir == h.DockerDir() }) {
			continue
		}
		if rec, ok := dockerlab.Discover(h.DockerDir()); ok {
			out = append(out, dockerRecord{Host: h.Name, Daemon: rec})
		}
	}
	return out
}

// DockerProcesses lists the live processes of the host's private dockerd: dockerd,
// containerd, the shims, the containers' processes.
func (h *Host) DockerProcesses() []dockerlab.Process {
	var out []dockerlab.Process
	for _, r := range h.lab.dockers() {
		if r.Host == h.Name {
			out = append(out, dockerlab.Processes(r.Daemon)...)
		}
	}
	return out
}

// handCommands are the shell commands that finish by hand what Down could not remove:
// processes still running (also ones the lab did not start: Down never kills those), the
// dockerds' mounts and cgroups, the namespaces, the registry entry, the directory.
func (l *Lab) handCommands() []string {
	var cmds, pids []string
	for _, r := range l.dockers() {
		cmds = append(cmds, dockerlab.HandCommands(r.Daemon)...)
		for _, p := range dockerlab.Processes(r.Daemon) {
			pids = append(pids, strconv.Itoa(p.PID)) // killed by the command above
		}
	}
	known := len(pids)
	for _, p := range l.Procs() {
		if s := strconv.Itoa(p.rec.PID); p.Alive() && !slices.Contains(pids, s) {
			pids = append(pids, s)
		}
	}
	for _, ns := range netnsWithPrefix(l.prefix()) {
		for _, pid := range pidsInNetNS(filepath.Join(netnsDir, ns)) {
			if s := strconv.Itoa(pid); !slices.Contains(pids, s) {
				pids = append(pids, s)
			}
		}
	}
	if len(pids) > known {
		cmds = append(cmds, "kill -9 "+strings.Join(pids[known:], " "))
	}
	if l.Dir != "" {
		if mounts, err := dockerlab.MountsBelow(l.Dir); err == nil {
			for _, m := range mounts {
				if c := "umount -l " + dockerlab.ShellQuote(m); !slices.Contains(cmds, c) {
					cmds = append(cmds, c)
				}
			}
		}
	}
	for _, ns := range netnsWithPrefix(l.prefix()) {
		cmds = append(cmds, "ip netns del "+dockerlab.ShellQuote(ns))
	}
	cmds = append(cmds, "rm -f "+dockerlab.ShellQuote(registryPath(l.Name)))
	if l.Dir != "" {
		cmds = append(cmds, "rm -rf "+dockerlab.ShellQuote(l.Dir))
	}
	return cmds
}

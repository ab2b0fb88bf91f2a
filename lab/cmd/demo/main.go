// Command demo shows ovsfabric end to end on one machine: it builds a lab of several hosts
// (network namespaces, each with its own ovsdb-server and ovs-vswitchd), starts fabricd on
// each, attaches a container per host with fabricctl, and prints the peer table, the
// cross-host ping matrix and a ping by name. Then it creates a second network, blue, attaches
// a container per host to it (and one container of default as well), starts a real Docker
// container on blue with `docker run --network blue` through fabricd's Docker plugin (when
// Docker is installed: a private dockerd on h2), lists the networks and checks the isolation
// matrix: pairs sharing a network reach each other, all other pairs are
// isolated; any pair that differs fails the demo. It ends with `ovs-vsctl show` and the
// routes. `make demo` runs it.
//
// Environment: HOSTS (3), TUNNEL (vxlan|gre), KEEP=1 keeps the lab (remove it with
// `make demo-down`, i.e. `lab down --dir DIR`: it also stops the private dockerd), DIR
// (.lab/demo), BIN (bin), NAME (demo: the lab name, which prefixes its namespaces).
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ovsfabric/ovsfabric/lab"
	"github.com/ovsfabric/ovsfabric/lab/dockerlab"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func env(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func step(format string, args ...any) {
	fmt.Printf("\n\033[1m==> "+format+"\033[0m\n", args...)
}

func run() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("the demo needs root (network namespaces and OVS daemons)")
	}
	hosts, err := strconv.Atoi(env("HOSTS", "3"))
	if err != nil || hosts < 2 {
		return fmt.Errorf("HOSTS must be a number >= 2")
	}
	tunnel := env("TUNNEL", "vxlan")
	keep := env("KEEP", "") == "1"
	dir, _ := filepath.Abs(env("DIR", ".lab/demo"))
	bin, _ := filepath.Abs(env("BIN", "bin"))
	name := env("NAME", "demo")

	ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer cancel()

	if _, err := os.Stat(filepath.Join(dir, "state.json")); err == nil {
		step("removing the previous demo lab in %s", dir)
		if old, err := lab.Open(dir); err == nil {
			_ = old.Down(ctx)
		}
	}
	step("building a lab of %d hosts in %s (a netns, ovsdb-server and ovs-vswitchd each)", hosts, dir)
	start := time.Now()
	l, err := lab.Up(ctx, lab.Config{Dir: dir, Name: name, Hosts: hosts, Keep: keep})
	if err != nil {
		return err
	}
	defer func() {
		if keep {
			return
		}
		step("tearing the lab down")
		dctx, c := context.WithTimeout(context.Background(), time.Minute)
		defer c()
		if err := l.Down(dctx); err != nil {
			fmt.Fprintln(os.Stderr, "lab down:", err)
		}
	}()
	for _, h := range l.Hosts {
		fmt.Printf("  %s  netns %-22s underlay %s  datapath %s\n", h.Name, h.NetNS, h.UnderlayIP, h.Datapath)
	}
	fmt.Printf("  lab up in %s\n", time.Since(start).Round(time.Millisecond))

	// A private dockerd on one host, started before its fabricd: fabricd serves the Docker
	// plugin there (on the socket in the host's own /run/docker/plugins), and the demo's
	// Docker container joins the network blue with `docker run --network blue`.
	var dock *dockerlab.Daemon
	dockHost := l.Hosts[1%len(l.Hosts)]
	if err := dockerlab.Available(); err != nil {
		fmt.Printf("\n(no Docker container in this demo: %v)\n", err)
	} else {
		step("starting a private dockerd on %s (its own /run/docker/plugins, where fabricd puts the plugin socket)", dockHost.Name)
		// Host.StartDockerWithPlugins records dockerd and containerd in the lab's state: `lab
		// down` stops them and removes their mounts and cgroups once this process is gone (KEEP=1).
		if dock, err = dockHost.StartDockerWithPlugins(ctx); err != nil {
			return err
		}
		defer func() {
			if !keep {
				sctx, c := context.WithTimeout(context.Background(), time.Minute)
				defer c()
				_ = dock.Stop(sctx)
			}
		}()
		if _, err := dock.ImportBusybox(ctx); err != nil {
			return err
		}
		fmt.Printf("  dockerd %s, image %s\n", dock.Host(), dockerlab.BusyboxImage)
	}

	f := fabriclab.New(l, fabriclab.Options{Bin: bin, Tunnel: tunnel})
	step("starting fabricd on every host (tunnel %s); each joins the ones before it", tunnel)
	start = time.Now()
	for _, h := range l.Hosts {
		var extra []string
		if dock != nil && h == dockHost {
			extra = []string{"--docker-plugin=on", "--docker-plugin-socket", filepath.Join(h.DockerPluginDir(), "ovsfabric.sock")}
		}
		n, err := f.Start(ctx, h, extra...)
		if err != nil {
			return err
		}
		fmt.Printf("  %s: %s\n", h.Name, strings.Join(n.Args, " "))
	}
	took, err := f.WaitConverged(ctx, time.Minute)
	if err != nil {
		return err
	}
	fmt.Printf("  converged %s after the last start (%s in all)\n", took.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))

	step("attaching one container (a network namespace) per host with fabricctl attach")
	var cs []*fabriclab.Container
	for i, n := range f.Nodes() {
		name := fmt.Sprintf("c%d", i+1)
		path, err := l.AddNetNS(ctx, n.Host, name)
		if err != nil {
			return err
		}
		fmt.Printf("$ fabricctl --socket %s attach %s --name %s\n", n.Socket, path, name)
		if err := fabricctl(n, "attach", path, "--name", name); err != nil {
			return err
		}
		as, err := n.Client().Attachments(ctx)
		if err != nil {
			return err
		}
		for _, a := range as {
			if a.NetNS == path {
				ip, _, _ := strings.Cut(a.IP, "/")
				cs = append(cs, &fabriclab.Container{Name: name, Node: n, NetNS: filepath.Base(path), Path: path, IP: ip, A: a})
			}
		}
	}

	first := f.Nodes()[0]
	step("fabricctl status on %s", first.Host.Name)
	if err := fabricctl(first, "status"); err != nil {
		return err
	}

	step("cross-host ping matrix (container -> container)")
	res := fabriclab.PingMatrix(ctx, cs, 20*time.Second)
	printMatrix(cs, res)
	failed := 0
	for _, r := range res {
		if !r.OK {
			failed++
		}
	}

	byName := ""
	if hosts := len(f.Nodes()); hosts > 1 {
		from, to := cs[0], cs[hosts-1] // network namespaces attached with --name, one per host
		step("by name: %s on %s pings %s on %s (fabricd's DNS on the gateway; attach wrote /etc/netns/%s/resolv.conf)", from.Name, from.Node.Host.Name, to.Name, to.Node.Host.Name, from.NetNS)
		fmt.Printf("$ ip netns exec %s ping -c 1 %s\n", from.NetNS, to.Name)
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", from.NetNS, "ping", "-c", "1", "-W", "2", to.Name)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			byName = fmt.Sprintf("%s could not reach %s by name: %v", from.Name, to.Name, err)
			fmt.Println(byName)
		}
	}

	// Networks: a second one next to default, and the proof that they are isolated.
	netErr := networkDemo(ctx, f, cs, dock, f.Node(dockHost.Name)) // reported last, after the host's view below

	step("ovs-vsctl show on %s", first.Host.Name)
	show, err := first.Host.Vsctl(ctx, "show")
	if err != nil {
		return err
	}
	fmt.Print(show)
	step("gateway addresses (one per network) and routes fabricd installed on %s", first.Host.Name)
	fmt.Println("$ ip -br -4 addr show dev fabric0")
	addrs, _ := first.Host.Run(ctx, "ip", "-br", "-4", "addr", "show", "dev", "fabric0")
	fmt.Print(addrs)
	fmt.Println("$ ip route show proto 147")
	routes, _ := first.Host.Run(ctx, "ip", "route", "show", "proto", "147")
	fmt.Print(routes)

	if keep {
		fmt.Printf("\nThe lab keeps running (KEEP=1). Look inside:\n  bin/lab status --dir %s\n  bin/lab exec --dir %s h1 -- ovs-vsctl show\n  bin/lab exec --dir %s h1 -- ip route\n  bin/lab exec --dir %s h1 -- fabricctl peers      (API socket %s)\n  bin/lab exec --dir %s h1 -- fabricctl network ls\n  bin/lab exec --dir %s h1 -- nft list table ip ovsfabric\nRemove it (fabricd, OVS, the private dockerd, namespaces) with: make demo-down\n", dir, dir, dir, dir, first.Socket, dir, dir)
	}
	if byName != "" {
		return errors.New(byName)
	}
	if netErr != nil {
		return netErr
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d pairs could not reach each other", failed, len(res))
	}
	fmt.Printf("\nall %d pairs reach each other across hosts over %s; networks default and %s are isolated from each other\n", len(res), tunnel, blueName)
	return nil
}

// fabricctl runs the real CLI against a node's socket, output to the terminal.
func fabricctl(n *fabriclab.Node, args ...string) error {
	bin := filepath.Join(filepath.Dir(n.Args[0]), "fabricctl")
	cmd := exec.Command(bin, append([]string{"--socket", n.Socket}, args...)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	return cmd.Run()
}

func printMatrix(cs []*fabriclab.Container, res []fabriclab.PingResult) {
	ok := map[[2]string]bool{}
	for _, r := range res {
		ok[[2]string{r.From.Name, r.To.Name}] = r.OK
	}
	fmt.Printf("%-22s", "from \\ to")
	for _, c := range cs {
		fmt.Printf("%-22s", fmt.Sprintf("%s %s", c.Name, c.IP))
	}
	fmt.Println()
	for _, a := range cs {
		fmt.Printf("%-22s", fmt.Sprintf("%s@%s", a.Name, a.Node.Host.Name))
		for _, b := range cs {
			cell := "-"
			if a != b {
				cell = "FAIL"
				if ok[[2]string{a.Name, b.Name}] {
					cell = "ok"
				}
			}
			fmt.Printf("%-22s", cell)
		}
		fmt.Println()
	}
}

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/lab/dockerlab"
	"github.com/ovsfabric/ovsfabric/lab/fabriclab"
)

// The second network the demo creates next to default.
const (
	blueName   = "blue"
	blueSubnet = "10.50.0.0/16"
)

// member is a container of the network demo with its address on each of its networks.
type member struct {
	name  string
	node  *fabriclab.Node
	netns string            // an `ip netns` name or a /proc/PID/ns/net path (fabriclab.Ping takes both)
	ips   map[string]string // network -> address (no prefix)
	nets  []string          // networks in the order attached
}

// endpoint is one address of a member on one network: a column of the matrix.
type endpoint struct {
	m       *member
	network string
	ip      string
}

// pair is one cell of the isolation matrix: want says whether from should reach to.
type pair struct {
	from *member
	to   endpoint
	want bool
	got  bool
	err  error
}

// cell is the pair as the matrix shows it.
func (p pair) cell() string {
	switch {
	case p.err != nil:
		return "ERROR"
	case p.want && p.got:
		return "ok"
	case p.want:
		return "FAIL"
	case p.got:
		return "LEAK"
	default:
		return "isolated"
	}
}

func (p pair) asExpected() bool { return p.err == nil && p.want == p.got }

// networkDemo creates the network blue on one host, attaches a container per host to it
// and one container of default to it as well, runs the Docker container "web" on it with
// `docker run --network blue` on dockNode when dock is not nil (fabricd's plugin gives it its
// address) and pings a blue container on another host by name from it, lists the networks as
// an operator sees them,
// and checks the isolation matrix: every pair that shares a network reaches, every other
// pair is isolated. It returns an error when any pair differs from that expectation, or
// when a step fails.
func networkDemo(ctx context.Context, f *fabriclab.Fabric, onDefault []*fabriclab.Container, dock *dockerlab.Daemon, dockNode *fabriclab.Node) error {
	nodes := f.Nodes()
	creator, lister := nodes[len(nodes)-1], nodes[0]
	step("a second network, %s (%s), created on %s: fabricctl runs in the host's namespace, as `lab exec %s -- fabricctl …` does", blueName, blueSubnet, creator.Host.Name, creator.Host.Name)
	if err := hostctl(ctx, creator, "network", "create", blueName, "--subnet", blueSubnet); err != nil {
		return err
	}
	took, err := waitNetwork(ctx, nodes, blueName, 30*time.Second)
	if err != nil {
		return err
	}
	fmt.Printf("  every host knows %s %s after the create\n", blueName, took.Round(time.Millisecond))

	var members []*member
	for _, c := range onDefault {
		members = append(members, &member{name: c.Name, node: c.Node, netns: c.NetNS, ips: map[string]string{"default": c.IP}, nets: []string{"default"}})
	}
	step("attaching a container per host to %s, and %s (on default) to %s as well (its eth1)", blueName, onDefault[0].Name, blueName)
	for i, n := range nodes {
		name := fmt.Sprintf("b%d", i+1)
		path, err := f.Lab.AddNetNS(ctx, n.Host, name)
		if err != nil {
			return err
		}
		ip, err := attach(ctx, n, path, name, blueName)
		if err != nil {
			return err
		}
		members = append(members, &member{name: name, node: n, netns: filepath.Base(path), ips: map[string]string{blueName: ip}, nets: []string{blueName}})
	}
	dual := members[0] // the first container on default, on h1
	ip, err := attach(ctx, dual.node, "/var/run/netns/"+dual.netns, dual.name, blueName)
	if err != nil {
		return err
	}
	dual.ips[blueName] = ip
	dual.nets = append(dual.nets, blueName)
	if dock != nil {
		web, err := dockerOnBlue(ctx, dock, dockNode, members[len(onDefault)].name)
		if err != nil {
			return err
		}
		members = append(members, web)
	}

	// network ls counts the fabric's endpoints from the registry, which the gossip fills:
	// wait (a little) until the lister sees them all, so the table shows the settled count.
	want := map[string]int{}
	for _, m := range members {
		for _, nw := range m.nets {
			want[nw]++
		}
	}
	settle(ctx, lister, want, 10*time.Second)
	step("the networks as %s sees them", lister.Host.Name)
	if err := hostctl(ctx, lister, "network", "ls"); err != nil {
		return err
	}

	step("isolation matrix: same network reaches, different networks are isolated (no shared network: no path)")
	start := time.Now()
	pairs := isolationMatrix(ctx, members)
	printIsolation(members, pairs)
	var bad []string
	reach, isolated := 0, 0
	for _, p := range pairs {
		switch {
		case !p.asExpected():
			why := "reached it"
			if p.want {
				why = "could not reach it"
			}
			if p.err != nil {
				why = p.err.Error()
			}
			bad = append(bad, fmt.Sprintf("%s -> %s on %s (%s): %s", p.from.name, p.to.m.name, p.to.network, p.to.ip, why))
		case p.want:
			reach++
		default:
			isolated++
		}
	}
	fmt.Printf("  %d pairs in %s: %d reach within a network, %d isolated across networks", len(pairs), time.Since(start).Round(time.Millisecond), reach, isolated)
	if len(bad) > 0 {
		fmt.Printf(", %d NOT as expected:\n", len(bad))
		for _, b := range bad {
			fmt.Println("    " + b)
		}
		fmt.Printf("  (look closer with KEEP=1: bin/lab exec --dir DIR %s -- ovs-ofctl dump-flows br-int; nft list table ip ovsfabric)\n", lister.Host.Name)
		return fmt.Errorf("networks: %d of %d pairs differ from the expectation (first: %s)", len(bad), len(pairs), bad[0])
	}
	fmt.Println(", all as expected")
	return nil
}

// hostctl runs the real fabricctl inside n's host namespace with the host's environment and
// FABRICCTL_SOCKET, as `lab exec HOST -- fabricctl ARGS` does; it echoes the command line
// and sends the output to the terminal.
func hostctl(ctx context.Context, n *fabriclab.Node, args ...string) error {
	fmt.Printf("[%s]$ fabricctl %s\n", n.Host.Name, strings.Join(args, " "))
	bin := filepath.Join(filepath.Dir(n.Args[0]), "fabricctl")
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Host.NetNS, bin}, args...)...)
	cmd.Env = append(os.Environ(), append(n.Host.Env(), api.SocketEnv+"="+n.Socket)...)
	cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("fabricctl %s on %s: %w", strings.Join(args, " "), n.Host.Name, err)
	}
	return nil
}

// attach attaches the netns at path to network on n with the real CLI and returns the
// endpoint's address there.
func attach(ctx context.Context, n *fabriclab.Node, path, name, network string) (string, error) {
	if err := hostctl(ctx, n, "attach", path, "--network", network, "--name", name); err != nil {
		return "", err
	}
	as, err := n.Client().Attachments(ctx)
	if err != nil {
		return "", err
	}
	for _, a := range as {
		if a.NetNS == path && a.Network == network {
			ip, _, _ := strings.Cut(a.IP, "/")
			return ip, nil
		}
	}
	return "", fmt.Errorf("%s on %s: no endpoint on %s after the attach", name, n.Host.Name, network)
}

// waitNetwork waits until every node lists the network, and returns how long that took.
func waitNetwork(ctx context.Context, nodes []*fabriclab.Node, name string, timeout time.Duration) (time.Duration, error) {
	start := time.Now()
	for _, n := range nodes {
		for {
			_, err := n.Client().Network(ctx, name)
			if err == nil {
				break
			}
			if time.Since(start) > timeout {
				return 0, fmt.Errorf("%s does not know network %s %s after its creation: %w", n.Host.Name, name, timeout, err)
			}
			select {
			case <-ctx.Done():
				return 0, ctx.Err()
			case <-time.After(50 * time.Millisecond):
			}
		}
	}
	return time.Since(start), nil
}

// settle waits up to timeout until n counts want[network] endpoints fabric-wide on each
// network. It only delays the listing: a count still behind shows in the table as it is.
func settle(ctx context.Context, n *fabriclab.Node, want map[string]int, timeout time.Duration) {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) && ctx.Err() == nil {
		ns, err := n.Client().Networks(ctx)
		if err == nil {
			ok := true
			for _, nw := range ns {
				if c, asked := want[nw.Name]; asked && nw.EndpointsFabric != c {
					ok = false
				}
			}
			if ok {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// columns are the endpoints of the members, network by network in the order first seen.
func columns(ms []*member) []endpoint {
	var nets []string
	seen := map[string]bool{}
	for _, m := range ms {
		for _, nw := range m.nets {
			if !seen[nw] {
				seen[nw] = true
				nets = append(nets, nw)
			}
		}
	}
	var out []endpoint
	for _, nw := range nets {
		for _, m := range ms {
			if ip, ok := m.ips[nw]; ok {
				out = append(out, endpoint{m: m, network: nw, ip: ip})
			}
		}
	}
	return out
}

// isolationMatrix pings every endpoint from every other member. Pairs sharing the network
// are waited for (the new network's flows may still be arriving), all at once; the
// cross-network pairs are tested after them, when the fabric has converged (else an
// unconverged fabric would pass for isolation), with two pings each, all at once.
func isolationMatrix(ctx context.Context, ms []*member) []pair {
	var pairs []pair
	for _, m := range ms {
		for _, e := range columns(ms) {
			if e.m == m {
				continue
			}
			_, shares := m.ips[e.network]
			pairs = append(pairs, pair{from: m, to: e, want: shares})
		}
	}
	run := func(want bool, ping func(p *pair)) {
		var wg sync.WaitGroup
		sem := make(chan struct{}, 16)
		for i := range pairs {
			if pairs[i].want != want {
				continue
			}
			wg.Add(1)
			go func(p *pair) {
				defer wg.Done()
				sem <- struct{}{}
				defer func() { <-sem }()
				ping(p)
			}(&pairs[i])
		}
		wg.Wait()
	}
	run(true, func(p *pair) {
		p.got = fabriclab.Reach(ctx, p.from.netns, p.to.ip, 20*time.Second) == nil
	})
	run(false, func(p *pair) {
		_, received, err := fabriclab.Ping(ctx, p.from.netns, p.to.ip, 2, 200*time.Millisecond)
		p.got, p.err = received > 0, err
	})
	return pairs
}

// printIsolation prints the matrix: a row per member (with its networks), a column per
// endpoint (name over network), "ok"/"isolated" where as expected, FAIL (no reach within
// a network) or LEAK (reach across networks) where not.
func printIsolation(ms []*member, pairs []pair) {
	cols := columns(ms)
	got := map[*member]map[endpoint]pair{}
	for _, p := range pairs {
		if got[p.from] == nil {
			got[p.from] = map[endpoint]pair{}
		}
		got[p.from][p.to] = p
	}
	nameW, netW := 0, 0
	for _, e := range cols {
		nameW, netW = max(nameW, len(e.m.name)), max(netW, len(e.network))
	}
	fmt.Println("  endpoints:")
	for _, e := range cols {
		fmt.Printf("    %-*s  on %s  %-*s  %s\n", nameW, e.m.name, e.m.node.Host.Name, netW, e.network, e.ip)
	}
	w := len("isolated") + 2
	for _, e := range cols {
		w = max(w, len(e.m.name)+2, len(e.network)+2)
	}
	rowW := 0
	rows := make([]string, len(ms))
	for i, m := range ms {
		rows[i] = fmt.Sprintf("%s (%s)", m.name, strings.Join(m.nets, "+"))
		rowW = max(rowW, len(rows[i]))
	}
	rowW += 2
	fmt.Printf("%-*s", rowW, "from \\ to")
	for _, e := range cols {
		fmt.Printf("%-*s", w, e.m.name)
	}
	fmt.Println()
	fmt.Printf("%-*s", rowW, "")
	for _, e := range cols {
		fmt.Printf("%-*s", w, e.network)
	}
	fmt.Println()
	for i, m := range ms {
		fmt.Printf("%-*s", rowW, rows[i])
		for _, e := range cols {
			cell := "-"
			if p, ok := got[m][e]; ok {
				cell = p.cell()
			}
			fmt.Printf("%-*s", w, cell)
		}
		fmt.Println()
	}
}

// dockerOnBlue waits until fabricd on n has made blue a Docker network, runs the container
// "web" on it with `docker run --network blue` (and the fabric DNS as its upstream) and has
// it ping the blue container peer (on h1) by name. It returns web as a member of blue.
func dockerOnBlue(ctx context.Context, dock *dockerlab.Daemon, n *fabriclab.Node, peer string) (*member, error) {
	step("a real Docker container on %s: `docker run --network %s` on %s, through fabricd's Docker plugin", blueName, blueName, n.Host.Name)
	start := time.Now()
	for {
		out, err := dock.CLI(ctx, "network", "inspect", "-f", "{{.Driver}} {{(index .IPAM.Config 0).Subnet}}", blueName)
		if err == nil && out == "ovsfabric "+blueSubnet {
			break
		}
		if time.Since(start) > 30*time.Second {
			return nil, fmt.Errorf("fabricd on %s made no Docker network %s in 30 s (inspect: %q, %v)", n.Host.Name, blueName, out, err)
		}
		if err := sleep(ctx, 200*time.Millisecond); err != nil {
			return nil, err
		}
	}
	fmt.Printf("  fabricd on %s made %s a Docker network of its own accord (driver ovsfabric, subnet %s)\n", n.Host.Name, blueName, blueSubnet)
	fmt.Printf("[%s]$ docker network ls --filter driver=ovsfabric\n", n.Host.Name)
	if out, err := dock.CLI(ctx, "network", "ls", "--filter", "driver=ovsfabric"); err == nil {
		fmt.Println(out)
	}
	// Names of other hosts' containers with no flag: the lab's dockerd has daemon.json's
	// "dns": [169.254.53.53], the fabric DNS's address on every host and network, which
	// Docker's embedded resolver forwards to (see docs/docker.md).
	fmt.Printf("[%s]$ docker run -d --name web --hostname web --network %s %s sleep 1000000\n", n.Host.Name, blueName, dockerlab.BusyboxImage)
	began := time.Now()
	if _, err := dock.CLI(ctx, "run", "-d", "--name", "web", "--hostname", "web", "--network", blueName, dockerlab.BusyboxImage, "sleep", "1000000"); err != nil {
		return nil, fmt.Errorf("docker run --network %s: %w", blueName, err)
	}
	took := time.Since(began)
	ip, err := dock.CLI(ctx, "inspect", "-f", "{{(index .NetworkSettings.Networks \""+blueName+"\").IPAddress}}", "web")
	if err != nil {
		return nil, err
	}
	pid, err := dock.Pid(ctx, "web")
	if err != nil {
		return nil, err
	}
	fmt.Printf("  web runs on %s with %s from %s's slice (docker run took %s)\n", blueName, ip, n.Host.Name, took.Round(time.Millisecond))
	fmt.Printf("[%s]$ docker exec web ping -c 1 %s      (by name, a container on another host)\n", n.Host.Name, peer)
	var out string
	for start := time.Now(); ; {
		if out, err = dock.Exec(ctx, "web", "ping", "-c", "1", "-W", "2", peer); err == nil {
			break
		}
		if time.Since(start) > 20*time.Second {
			return nil, fmt.Errorf("web could not reach %s by name: %w", peer, err)
		}
		if err := sleep(ctx, 500*time.Millisecond); err != nil {
			return nil, err
		}
	}
	fmt.Print(out)
	return &member{name: "web(docker)", node: n, netns: fmt.Sprintf("/proc/%d/ns/net", pid), ips: map[string]string{blueName: ip}, nets: []string{blueName}}, nil
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-time.After(d):
		return nil
	}
}

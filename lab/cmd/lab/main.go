// Command lab builds and inspects a multi-host Open vSwitch lab on this machine (see
// docs/lab.md): `lab up`, `lab status`, `lab exec HOST -- CMD…`, `lab down`.
package main

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"os/signal"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ovsfabric/ovsfabric/lab"
)

func main() {
	if err := root().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "lab:", err)
		os.Exit(1)
	}
}

func root() *cobra.Command {
	var dir string
	cmd := &cobra.Command{Use: "lab", Short: "A multi-host Open vSwitch lab in network namespaces", SilenceUsage: true, SilenceErrors: true}
	cmd.PersistentFlags().StringVar(&dir, "dir", ".lab/default", "lab directory (state, databases, sockets, logs)")

	var cfg lab.Config
	var underlay string
	up := &cobra.Command{
		Use:   "up",
		Short: "Build a lab: a netns, ovsdb-server and ovs-vswitchd per host, an underlay between them",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			ctx, cancel := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
			defer cancel()
			cfg.Dir = dir
			if cfg.Datapath == "auto" {
				cfg.Datapath = ""
			}
			if underlay != "" {
				var err error
				if cfg.UnderlayCIDR, err = netip.ParsePrefix(underlay); err != nil {
					return err
				}
			}
			start := time.Now()
			l, err := lab.Up(ctx, cfg)
			if err != nil {
				return err
			}
			fmt.Printf("lab %s up in %s\n", l.Name, time.Since(start).Round(time.Millisecond))
			return printStatus(l)
		},
	}
	up.Flags().IntVar(&cfg.Hosts, "hosts", 3, "number of hosts")
	up.Flags().StringVar(&cfg.Name, "name", "", "short lab ID used in namespace names (default: random)")
	up.Flags().StringVar(&cfg.Datapath, "datapath", "auto", "auto, netdev (userspace) or system (kernel module)")
	up.Flags().BoolVar(&cfg.External, "external", false, "add an 'outside world' namespace on the underlay")
	up.Flags().StringVar(&underlay, "underlay", "172.30.0.0/24", "underlay network")
	up.Flags().IntVar(&cfg.UnderlayMTU, "mtu", 1500, "underlay MTU")

	down := &cobra.Command{
		Use:   "down",
		Short: "Remove everything the lab made (processes by PID, namespaces, the directory)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			l, err := lab.Open(dir)
			if err != nil {
				return err
			}
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if err := l.Down(ctx); err != nil {
				return err
			}
			fmt.Printf("lab %s removed\n", l.Name)
			return nil
		},
	}
	status := &cobra.Command{
		Use:   "status",
		Short: "Show hosts, namespaces, underlay addresses, processes and sockets",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			l, err := lab.Open(dir)
			if err != nil {
				return err
			}
			return printStatus(l)
		},
	}
	execCmd := &cobra.Command{
		Use:   "exec HOST -- CMD [ARGS...]",
		Short: "Run a command in a host's netns, with ovs-vsctl/ovs-ofctl/ovs-appctl pointed at its daemons",
		Example: `  lab exec h1 -- ovs-vsctl show
  lab exec h1 -- ovs-ofctl dump-flows br-int
  lab exec h2 -- ip route`,
		Args: cobra.MinimumNArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			l, err := lab.Open(dir)
			if err != nil {
				return err
			}
			h := l.Host(args[0])
			if h == nil {
				return fmt.Errorf("no host %q in the lab at %s", args[0], dir)
			}
			argv := args[1:]
			if argv[0] == "ovs-vsctl" {
				argv = append([]string{"ovs-vsctl", "--db=" + h.Endpoint()}, argv[1:]...)
			}
			c := exec.Command("ip", append([]string{"netns", "exec", h.NetNS}, argv...)...)
			c.Env = append(os.Environ(), h.Env()...)
			c.Stdin, c.Stdout, c.Stderr = os.Stdin, os.Stdout, os.Stderr
			if err := c.Run(); err != nil {
				if ee, ok := err.(*exec.ExitError); ok {
					os.Exit(ee.ExitCode())
				}
				return err
			}
			return nil
		},
	}
	cmd.AddCommand(up, down, status, execCmd)
	return cmd
}

func printStatus(l *lab.Lab) error {
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "lab %s in %s\n", l.Name, l.Dir)
	fmt.Fprintln(tw, "HOST\tNETNS\tUNDERLAY\tDATAPATH\tOVSDB\tPROCESSES")
	for _, h := range l.Hosts {
		procs := ""
		for _, p := range h.Procs() {
			state := "dead"
			if p.Alive() {
				state = "up"
			}
			procs += fmt.Sprintf("%s:%d(%s) ", p.Name(), p.PID(), state)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", h.Name, h.NetNS, h.UnderlayIP, h.Datapath, h.Endpoint(), procs)
	}
	if l.External != "" {
		fmt.Fprintf(tw, "ext\t%s\t%s\t-\t-\t-\n", l.External, l.ExternalIP)
	}
	return tw.Flush()
}

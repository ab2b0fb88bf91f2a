// Command fabricctl is the operator's CLI for ovsfabric. It talks to the local fabricd through
// its API socket. See docs/fabricctl.md.
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/ovsfabric/ovsfabric/api"
	"github.com/ovsfabric/ovsfabric/internal/buildinfo"
)

func main() {
	if err := newRoot(os.Stdout).Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "fabricctl:", err)
		os.Exit(1)
	}
}

type options struct {
	socket string
	output string
	out    io.Writer
}

func (o *options) client() *api.Client { return api.NewClient(o.socket) }

// print writes v as JSON with -o json, or through the human formatter otherwise.
func (o *options) print(v any, human func(w io.Writer)) error {
	switch o.output {
	case "json":
		enc := json.NewEncoder(o.out)
		enc.SetIndent("", "  ")
		return enc.Encode(v)
	case "", "table":
		human(o.out)
		return nil
	}
	return fmt.Errorf("unknown output format %q (want table or json)", o.output)
}

func newRoot(out io.Writer) *cobra.Command {
	o := &options{out: out}
	root := &cobra.Command{
		Use:           "fabricctl",
		Short:         "Operate the ovsfabric container network on this host",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.PersistentFlags().StringVar(&o.socket, "socket", defaultSocket(os.Getenv), "fabricd API socket; $"+api.SocketEnv+" sets it when this flag is not given")
	root.PersistentFlags().StringVarP(&o.output, "output", "o", "table", "output format: table or json")
	root.AddCommand(statusCmd(o), peersCmd(o), leaveCmd(o), attachCmd(o), detachCmd(o), lsCmd(o), publishCmd(o, true), publishCmd(o, false), versionCmd(o), keyringCmd(o), ovsCmd(o), dnsCmd(o), networkCmd(o), wireguardCmd(o))
	return root
}

// defaultSocket is the socket used without --socket: $FABRICCTL_SOCKET when set, else
// fabricd's default. The flag wins over both.
func defaultSocket(getenv func(string) string) string {
	if s := strings.TrimSpace(getenv(api.SocketEnv)); s != "" {
		return s
	}
	return api.DefaultSocket
}

func versionCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "version",
		Short: "Print fabricctl's build version (module version, VCS commit, modified)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			info := buildinfo.Read()
			return o.print(info, func(w io.Writer) { fmt.Fprintln(w, info.Line("fabricctl")) })
		},
	}
}

func ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), 60*time.Second)
}

func statusCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show this host's node, subnet, tunnel type, MTU and peers",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, cancel := ctx()
			defer cancel()
			st, err := o.client().Status(c)
			if err != nil {
				return err
			}
			return o.print(st, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintf(tw, "node:\t%s\n", st.Node)
				fmt.Fprintf(tw, "underlay:\t%s\n", st.Underlay)
				fmt.Fprintf(tw, "subnet:\t%s (gateway %s, cluster %s)\n", orDash(st.Subnet), orDash(st.Gateway), st.ClusterCIDR)
				if st.WireGuard != nil {
					fmt.Fprintf(tw, "encryption:\t%s (%s WireGuard on %s; no tunnel ports)\n", st.Encryption, st.WireGuard.Implementation, st.WireGuard.Interface)
				} else {
					fmt.Fprintf(tw, "tunnel:\t%s\n", tunnelLine(st))
					fmt.Fprintf(tw, "encryption:\t%s\n", orDash(st.Encryption))
				}
				fmt.Fprintf(tw, "mtu:\t%d\n", st.MTU)
				fmt.Fprintf(tw, "bridge:\t%s (datapath %s)\n", st.Bridge, st.Datapath)
				fmt.Fprintf(tw, "last sync:\t%s (%d syncs)\n", st.LastSync.Format(time.RFC3339), st.Syncs)
				if st.LastError != "" {
					fmt.Fprintf(tw, "last error:\t%s\n", st.LastError)
				}
				for _, r := range st.Rejected {
					fmt.Fprintf(tw, "rejected:\t%s\n", r)
				}
				tw.Flush()
				fmt.Fprintln(w)
				printPeers(w, st.Peers)
				if st.WireGuard != nil {
					fmt.Fprintln(w)
					printWireGuard(w, st.WireGuard)
				}
			})
		},
	}
}

func peersCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "peers",
		Short: "List the other hosts with their address, subnet, state and tunnel port",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, cancel := ctx()
			defer cancel()
			p, err := o.client().Peers(c)
			if err != nil {
				return err
			}
			return o.print(p, func(w io.Writer) { printPeers(w, p) })
		},
	}
}

func leaveCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "leave",
		Short: "Leave the fabric gracefully: peers drop this host's tunnel and route at once; fabricd exits",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, cancel := ctx()
			defer cancel()
			m, err := o.client().Leave(c)
			if err != nil {
				return err
			}
			return o.print(m, func(w io.Writer) { fmt.Fprintln(w, m.Message) })
		},
	}
}

func printPeers(w io.Writer, ps []api.Peer) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	encrypted := slices.ContainsFunc(ps, func(p api.Peer) bool { return p.WireGuard != "" })
	// Flow tunnel mode: every peer shares one port; its to-peer flows' cookie names it.
	flow := !encrypted && slices.ContainsFunc(ps, func(p api.Peer) bool { return p.Cookie != "" })
	switch {
	case encrypted:
		fmt.Fprintln(tw, "PEER\tADDRESS\tSUBNET\tSTATE\tSINCE\tWIREGUARD HANDSHAKE")
	case flow:
		fmt.Fprintln(tw, "PEER\tADDRESS\tSUBNET\tSTATE\tSINCE\tTUNNEL PORT\tFLOW COOKIE")
	default:
		fmt.Fprintln(tw, "PEER\tADDRESS\tSUBNET\tSTATE\tSINCE\tTUNNEL PORT")
	}
	for _, p := range ps {
		port := p.Tunnel
		if encrypted {
			port = p.WireGuard
		}
		if port == "" {
			port = "- (" + p.Note + ")"
		}
		if flow {
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, orDash(p.Addr), orDash(p.Subnet), p.State, since(p.Since), port, orDash(p.Cookie))
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", p.Name, orDash(p.Addr), orDash(p.Subnet), p.State, since(p.Since), port)
	}
	tw.Flush()
}

// tunnelLine is the status's tunnel type with its mode, e.g. "vxlan (flow: one port,
// tun_dst per peer)".
func tunnelLine(st api.Status) string {
	switch st.TunnelMode {
	case "flow":
		return st.Tunnel + " (tunnel mode flow: one flow-based port, tun_dst per peer)"
	case "":
		return st.Tunnel
	}
	return st.Tunnel + " (tunnel mode " + st.TunnelMode + ")"
}

func since(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	return time.Since(t).Round(time.Second).String() + " ago"
}

func orDash(s string) string {
	if strings.TrimSpace(s) == "" {
		return "-"
	}
	return s
}

func attachCmd(o *options) *cobra.Command {
	var req api.AttachRequest
	cmd := &cobra.Command{
		Use:   "attach TARGET",
		Short: "Attach a container to a network: Docker/Podman name or ID, pid:PID, or a netns path",
		Long: `Attach a container to a network of the fabric (--network, default "default", the cluster
CIDR): fabricd creates a veth, puts the host end on the integration bridge, moves the other end
into the container's network namespace and gives it an address from this host's slice of the
network (or --ip), the fabric MTU and, on the container's first network, a default route via
the gateway. A container attached to several networks has one interface per network: eth0 on
the first, the next free ethN on each further one unless --ifname names it. Attaching an
attached container with the same parameters changes nothing.`,
		Example: `  fabricctl attach web1
  fabricctl attach web1 --network blue            # a second interface, eth1, on blue
  fabricctl attach pid:4242 --ip 10.244.3.10
  fabricctl attach pid:4242 --ip 10.244.3.10/24   # the subnet's prefix length is accepted
  fabricctl attach /var/run/netns/db --network blue --ifname eth1 --mac 02:00:00:00:00:10`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			req.Target = args[0]
			if err := checkAttachFlags(req); err != nil {
				return err
			}
			c, cancel := ctx()
			defer cancel()
			a, err := o.client().Attach(c, req)
			if err != nil {
				return err
			}
			return o.print(a, func(w io.Writer) { printAttachment(w, a) })
		},
	}
	cmd.Flags().StringVar(&req.Network, "network", defaultNetwork, "network to attach to")
	cmd.Flags().StringVar(&req.IP, "ip", "", "fixed IP inside this host's slice of the network (default: lowest free)")
	cmd.Flags().StringVar(&req.IfName, "ifname", "", "interface name inside the container (default: eth0 on its first network, the next free ethN on each further one)")
	cmd.Flags().StringVar(&req.MAC, "mac", "", "fixed MAC address (default: generated)")
	addNameFlags(cmd, &req)
	return cmd
}

// checkAttachFlags refuses an --ip or --mac that is no address at all before anything is sent;
// fabricd checks that the address fits the network.
func checkAttachFlags(req api.AttachRequest) error {
	if req.IP != "" {
		if _, err := netip.ParseAddr(req.IP); err != nil {
			if _, perr := netip.ParsePrefix(req.IP); perr != nil {
				return fmt.Errorf("--ip %q is not an IP address (such as 10.244.3.10 or 10.244.3.10/24)", req.IP)
			}
		}
	}
	if req.MAC != "" {
		if _, err := net.ParseMAC(req.MAC); err != nil {
			return fmt.Errorf("--mac %q is not a MAC address (such as 02:00:00:00:00:10)", req.MAC)
		}
	}
	return nil
}

func detachCmd(o *options) *cobra.Command {
	var req api.DetachRequest
	cmd := &cobra.Command{
		Use:   "detach TARGET",
		Short: "Detach a container from one network (--network) or from all: removes its ports, veths and addresses",
		Example: `  fabricctl detach web1
  fabricctl detach web1 --network blue`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			req.Target = args[0]
			c, cancel := ctx()
			defer cancel()
			as, err := o.client().Detach(c, req)
			if err != nil {
				return err
			}
			return o.print(api.DetachResult{Detached: as}, func(w io.Writer) { printDetached(w, as) })
		},
	}
	cmd.Flags().StringVar(&req.Network, "network", "", "detach only from this network (default: from every network)")
	return cmd
}

// printDetached prints each endpoint detach removed, with the published ports it removed.
func printDetached(w io.Writer, as []api.Attachment) {
	for _, a := range as {
		fmt.Fprintf(w, "detached %s from %s (%s, port %s)\n", a.Container, networkOf(a), a.IP, a.Port)
		if len(a.Published) > 0 {
			fmt.Fprintf(w, "removed published ports: %s\n", strings.Join(a.Published, ", "))
		}
	}
}

// networkOf is an endpoint's network; hosts that predate networks name none, and theirs is
// the default one.
func networkOf(a api.Attachment) string {
	if a.Network == "" {
		return defaultNetwork
	}
	return a.Network
}

func lsCmd(o *options) *cobra.Command {
	var all bool
	cmd := &cobra.Command{
		Use:   "ls",
		Short: "List the containers attached on this host (--all: on every host of the fabric)",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, cancel := ctx()
			defer cancel()
			list := o.client().Attachments
			if all {
				list = o.client().FabricAttachments
			}
			as, err := list(c)
			if err != nil {
				return err
			}
			return o.print(as, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "HOST\tCONTAINER\tNETWORK\tIP\tMAC\tPORT\tPUBLISHED\tNETNS")
				for _, a := range as {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", a.Host, a.Container, networkOf(a), a.IP, a.MAC, a.Port, orDash(strings.Join(a.Published, ",")), a.NetNS)
				}
				tw.Flush()
			})
		},
	}
	cmd.Flags().BoolVar(&all, "all", false, "list the attachments of the whole fabric, spread by gossip")
	return cmd
}

func printAttachment(w io.Writer, a api.Attachment) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	state := "attached"
	if a.Unchanged {
		state = "already attached (unchanged)"
	}
	fmt.Fprintf(tw, "container:\t%s (%s)\n", a.Container, state)
	fmt.Fprintf(tw, "network:\t%s\n", networkOf(a))
	fmt.Fprintf(tw, "ip:\t%s\n", a.IP)
	fmt.Fprintf(tw, "mac:\t%s\n", a.MAC)
	fmt.Fprintf(tw, "gateway:\t%s\n", a.Gateway)
	fmt.Fprintf(tw, "mtu:\t%d\n", a.MTU)
	fmt.Fprintf(tw, "interface:\t%s\n", a.IfName)
	fmt.Fprintf(tw, "port:\t%s\n", a.Port)
	printNames(tw, a)
	tw.Flush()
}

func publishCmd(o *options, add bool) *cobra.Command {
	use, short := "publish", "Publish a container port on this host's underlay address (DNAT)"
	if !add {
		use, short = "unpublish", "Remove a published port"
	}
	return &cobra.Command{
		Use:     use + " TARGET HOSTPORT:CONTAINERPORT[/tcp|udp]",
		Short:   short,
		Example: "  fabricctl " + use + " web1 8080:80\n  fabricctl " + use + " dns1 5353:53/udp",
		Args:    cobra.ExactArgs(2),
		RunE: func(_ *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			call := o.client().Publish
			if !add {
				call = o.client().Unpublish
			}
			a, err := call(c, args[0], args[1])
			if err != nil {
				return err
			}
			return o.print(a, func(w io.Writer) {
				fmt.Fprintf(w, "%s %s: published %s\n", a.Container, a.IP, orDash(strings.Join(a.Published, ", ")))
			})
		},
	}
}

package main

import (
	"fmt"
	"io"
	"net/netip"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ovsfabric/ovsfabric/api"
)

// defaultNetwork is the network of the cluster CIDR, which every fabric has; an endpoint
// that names none is on it.
const defaultNetwork = "default"

func networkCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "network",
		Short: "Create, list, inspect and remove networks: isolated address spaces spread over the fabric",
		Long: `Networks are fabric-wide: one created on any host exists on every host, and each host
that serves it takes its own slice of the subnet (as with the cluster CIDR, which is the
network "default"). Containers on different networks cannot reach each other by any path; a
container attached to several networks has one interface on each and reaches all of them.
Internal networks have no egress, no masquerade and no published ports. See docs/fabricctl.md.`,
	}
	cmd.AddCommand(networkCreateCmd(o), networkLsCmd(o), networkInspectCmd(o), networkRmCmd(o))
	return cmd
}

// createFlags are network create's flags as typed, before they become the request.
type createFlags struct {
	subnet     string
	hostPrefix int
	key        uint32
	internal   bool
}

// request parses the flags (the subnet once, here, so that a typo gets a clear error
// before anything is sent) into the API request.
func (f createFlags) request(name string) (api.NetworkCreateRequest, error) {
	if f.subnet == "" {
		return api.NetworkCreateRequest{}, fmt.Errorf("--subnet is required (a CIDR such as 10.9.0.0/16)")
	}
	p, err := netip.ParsePrefix(f.subnet)
	if err != nil {
		return api.NetworkCreateRequest{}, fmt.Errorf("--subnet %q is not a CIDR (such as 10.9.0.0/16): %w", f.subnet, err)
	}
	if !p.Addr().Is4() {
		return api.NetworkCreateRequest{}, fmt.Errorf("--subnet %s: networks are IPv4", p)
	}
	if f.hostPrefix != 0 && (f.hostPrefix < p.Bits() || f.hostPrefix > 32) {
		return api.NetworkCreateRequest{}, fmt.Errorf("--host-prefix %d: a host's slice of %s needs a prefix length from %d to 32", f.hostPrefix, p, p.Bits())
	}
	return api.NetworkCreateRequest{Name: name, Subnet: p.String(), HostPrefix: f.hostPrefix, Key: f.key, Internal: f.internal}, nil
}

func networkCreateCmd(o *options) *cobra.Command {
	var f createFlags
	cmd := &cobra.Command{
		Use:   "create NAME --subnet CIDR",
		Short: "Create a network fabric-wide",
		Long: `Create a network on every host of the fabric. NAME is a DNS label (lower case letters,
digits, '-'), at most 32 bytes. The subnet must not overlap another network's. Each host that
serves the network takes a slice of --host-prefix bits (default /24, or the subnet's length + 4
for subnets smaller than a /20). The tunnel key (VXLAN VNI / GRE key) is chosen unless --key
gives one. When two hosts create the same name at once with different parameters, one
definition wins on every host; the answer is the definition that stands.`,
		Example: `  fabricctl network create blue --subnet 10.9.0.0/16
  fabricctl network create db --subnet 10.10.0.0/20 --host-prefix 26 --key 4242 --internal`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			req, err := f.request(args[0])
			if err != nil {
				return err
			}
			c, cancel := ctx()
			defer cancel()
			n, err := o.client().CreateNetwork(c, req)
			if err != nil {
				return err
			}
			if err := o.print(n, func(w io.Writer) { printNetworkCreated(w, n) }); err != nil {
				return err
			}
			if !sameDefinition(req, n) {
				return fmt.Errorf("network %s exists with another definition (shown above, created by %s); yours was not applied", n.Name, orDash(n.Origin))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&f.subnet, "subnet", "", "the network's IPv4 CIDR (required), e.g. 10.9.0.0/16")
	cmd.Flags().IntVar(&f.hostPrefix, "host-prefix", 0, "prefix length of each host's slice (default: 24, or the subnet's + 4 below a /20)")
	cmd.Flags().Uint32Var(&f.key, "key", 0, "tunnel key, VXLAN VNI / GRE key, 1 to 16777215, unique in the fabric (default: chosen)")
	cmd.Flags().BoolVar(&f.internal, "internal", false, "no egress, no masquerade, no published ports")
	return cmd
}

// sameDefinition tells whether the network fabricd answered is the one asked for, or another
// host's definition of the name, which won.
func sameDefinition(req api.NetworkCreateRequest, n api.Network) bool {
	asked, _ := netip.ParsePrefix(req.Subnet)
	got, err := netip.ParsePrefix(n.Subnet)
	return err == nil && got.Masked() == asked.Masked() && n.Internal == req.Internal &&
		(req.Key == 0 || n.Key == req.Key) && (req.HostPrefix == 0 || n.HostPrefix == req.HostPrefix)
}

func printNetworkCreated(w io.Writer, n api.Network) {
	fmt.Fprintf(w, "network %s: subnet %s, host prefix /%d, key %d%s\n", n.Name, n.Subnet, n.HostPrefix, n.Key, flagText(n, ", "))
	if n.Slice != "" {
		fmt.Fprintf(w, "this host's slice: %s (gateway %s)\n", n.Slice, orDash(n.Gateway))
	}
	if n.Conflict != "" {
		fmt.Fprintf(w, "not served: %s\n", n.Conflict)
	}
}

// flagText is the network's flags after sep, or nothing.
func flagText(n api.Network, sep string) string {
	if n.Internal {
		return sep + "internal"
	}
	return ""
}

func networkLsCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "ls",
		Short: "List the networks with this host's slice and their endpoints here and fabric-wide",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, cancel := ctx()
			defer cancel()
			ns, err := o.client().Networks(c)
			if err != nil {
				return err
			}
			return o.print(ns, func(w io.Writer) { printNetworks(w, ns) })
		},
	}
}

// printNetworks is network ls's table: ENDPOINTS is here/fabric-wide; a network that is not
// served (its subnet or key collides with an older one) is flagged and explained below.
func printNetworks(w io.Writer, ns []api.Network) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSUBNET\tKEY\tSLICE\tENDPOINTS\tFLAGS")
	var notes []string
	for _, n := range ns {
		var flags []string
		if n.Internal {
			flags = append(flags, "internal")
		}
		if n.Conflict != "" {
			flags = append(flags, "conflict")
			notes = append(notes, fmt.Sprintf("%s: not served: %s", n.Name, n.Conflict))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%s\t%d/%d\t%s\n", n.Name, n.Subnet, n.Key, orDash(n.Slice), n.EndpointsHere, n.EndpointsFabric, orDash(strings.Join(flags, ",")))
	}
	tw.Flush()
	for _, s := range notes {
		fmt.Fprintln(w, s)
	}
}

func networkInspectCmd(o *options) *cobra.Command {
	return &cobra.Command{
		Use:   "inspect NAME",
		Short: "Show a network: its definition, origin, every host's slice and its endpoints fabric-wide",
		Args:  cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			n, err := o.client().Network(c, args[0])
			if err != nil {
				return err
			}
			return o.print(n, func(w io.Writer) { printNetwork(w, n) })
		},
	}
}

func printNetwork(w io.Writer, n api.Network) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "name:\t%s\n", n.Name)
	fmt.Fprintf(tw, "subnet:\t%s (host prefix /%d)\n", n.Subnet, n.HostPrefix)
	fmt.Fprintf(tw, "key:\t%d\n", n.Key)
	fmt.Fprintf(tw, "flags:\t%s\n", orDash(flagText(n, "")))
	switch {
	case n.Origin != "":
		fmt.Fprintf(tw, "origin:\t%s (Lamport time %d)\n", n.Origin, n.Created)
	case n.Name == defaultNetwork:
		fmt.Fprintf(tw, "origin:\t- (the cluster CIDR)\n")
	default:
		fmt.Fprintf(tw, "origin:\t-\n")
	}
	if n.Slice != "" {
		fmt.Fprintf(tw, "this host:\t%s (gateway %s)\n", n.Slice, orDash(n.Gateway))
	} else {
		fmt.Fprintf(tw, "this host:\t- (no slice)\n")
	}
	fmt.Fprintf(tw, "endpoints:\t%d here, %d in the fabric\n", n.EndpointsHere, n.EndpointsFabric)
	if n.Conflict != "" {
		fmt.Fprintf(tw, "not served:\t%s\n", n.Conflict)
	}
	tw.Flush()

	fmt.Fprintln(w)
	if len(n.Slices) == 0 {
		fmt.Fprintln(w, "(no host serves it yet)")
	} else {
		tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "HOST\tSLICE")
		for _, s := range n.Slices {
			fmt.Fprintf(tw, "%s\t%s\n", s.Host, s.Slice)
		}
		tw.Flush()
	}

	fmt.Fprintln(w)
	if len(n.Endpoints) == 0 {
		fmt.Fprintln(w, "(no endpoints)")
		return
	}
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tCONTAINER\tIP\tMAC\tIFNAME\tNAME")
	for _, a := range n.Endpoints {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", a.Host, a.Container, a.IP, orDash(a.MAC), orDash(a.IfName), orDash(a.Name))
	}
	tw.Flush()
}

func networkRmCmd(o *options) *cobra.Command {
	var force bool
	cmd := &cobra.Command{
		Use:   "rm NAME",
		Short: "Remove a network fabric-wide; refused while a host still has an endpoint on it, unless --force",
		Long: `Remove a network from every host. While any host still has an endpoint on it the removal is
refused, and the error lists the hosts with endpoints; detach them first, or use --force: the
endpoints then lose the network (their interface on it stops carrying traffic).`,
		Example: `  fabricctl network rm blue
  fabricctl network rm blue --force`,
		Args: cobra.ExactArgs(1),
		RunE: func(_ *cobra.Command, args []string) error {
			c, cancel := ctx()
			defer cancel()
			n, err := o.client().RemoveNetwork(c, api.NetworkRemoveRequest{Name: args[0], Force: force})
			if err != nil {
				return err
			}
			return o.print(n, func(w io.Writer) {
				fmt.Fprintf(w, "removed network %s (%s)\n", n.Name, n.Subnet)
				if n.EndpointsFabric > 0 {
					fmt.Fprintf(w, "%d endpoints lost it (%d on this host)\n", n.EndpointsFabric, n.EndpointsHere)
				}
			})
		},
	}
	cmd.Flags().BoolVar(&force, "force", false, "remove it although hosts still have endpoints on it")
	return cmd
}

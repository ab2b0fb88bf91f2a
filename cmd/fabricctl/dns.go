package main

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ovsfabric/ovsfabric/api"
)

// addNameFlags adds attach's --name and --alias.
func addNameFlags(cmd *cobra.Command, req *api.AttachRequest) {
	cmd.Flags().StringVar(&req.Name, "name", "", "DNS name of the endpoint, a label (default: the Docker/Podman container name, a netns path's base name; none for pid:PID)")
	cmd.Flags().StringArrayVar(&req.Aliases, "alias", nil, "further DNS name, repeatable; several endpoints may share one (answers carry all their addresses)")
}

// printNames adds an attachment's names and nameserver to attach's output.
func printNames(w io.Writer, a api.Attachment) {
	if a.Name != "" {
		fmt.Fprintf(w, "name:\t%s\n", a.Name)
	}
	if len(a.Aliases) > 0 {
		fmt.Fprintf(w, "aliases:\t%s\n", strings.Join(a.Aliases, ", "))
	}
	if a.Nameserver != "" {
		fmt.Fprintf(w, "nameserver:\t%s\n", a.Nameserver)
	}
}

func dnsCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "dns",
		Short: "The fabric DNS: names of the endpoints, served on each network's gateway",
	}
	var network string
	ls := &cobra.Command{
		Use:   "ls",
		Short: "List the names known fabric-wide, with the host each endpoint is on",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, cancel := ctx()
			defer cancel()
			rs, err := o.client().DNSRecords(c, network)
			if err != nil {
				return err
			}
			return o.print(rs, func(w io.Writer) {
				tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
				fmt.Fprintln(tw, "NETWORK\tNAME\tALIASES\tIP\tHOST")
				for _, r := range rs {
					fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", r.Network, orDash(r.Name), orDash(strings.Join(r.Aliases, ",")), r.IP, r.Host)
				}
				tw.Flush()
			})
		},
	}
	ls.Flags().StringVar(&network, "network", "", "only this network's names")
	cmd.AddCommand(ls)
	return cmd
}

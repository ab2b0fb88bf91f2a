package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/ovsfabric/ovsfabric/api"
)

func wireguardCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "wireguard",
		Short: "The encrypted data plane (--encryption wireguard)",
	}
	cmd.AddCommand(&cobra.Command{
		Use:   "rotate",
		Short: "Replace this host's WireGuard key fabric-wide: the new key is announced by gossip and every peer follows",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, cancel := ctx()
			defer cancel()
			r, err := o.client().RotateWireGuardKey(c)
			if err != nil {
				return err
			}
			return o.print(r, func(w io.Writer) {
				fmt.Fprintf(w, "new public key: %s (was %s); peers follow as gossip tells them (`fabricctl peers` shows their handshakes)\n", r.PublicKey, r.OldPublicKey)
			})
		},
	})
	return cmd
}

// wireguardProcess is ", process PID" for a userspace device process, else "".
func wireguardProcess(wg *api.WireGuard) string {
	if wg.PID == 0 {
		return ""
	}
	return fmt.Sprintf(", process %d", wg.PID)
}

// printWireGuard prints the WireGuard interface the way `wg show` does.
func printWireGuard(w io.Writer, wg *api.WireGuard) {
	fmt.Fprintf(w, "interface: %s (%s WireGuard%s)\n", wg.Interface, wg.Implementation, wireguardProcess(wg))
	if wg.Error != "" {
		fmt.Fprintf(w, "  error: %s\n", wg.Error)
		return
	}
	fmt.Fprintf(w, "  public key: %s\n  listening port: %d\n", wg.PublicKey, wg.ListenPort)
	now := time.Now()
	for _, p := range wg.Peers {
		name := p.Name
		if name == "" {
			name = "(no peer announces this key)"
		}
		fmt.Fprintf(w, "\npeer: %s %s\n", name, p.PublicKey)
		if p.Endpoint != "" {
			fmt.Fprintf(w, "  endpoint: %s\n", p.Endpoint)
		}
		fmt.Fprintf(w, "  allowed ips: %s\n", orDash(strings.Join(p.AllowedIPs, ", ")))
		fmt.Fprintf(w, "  latest handshake: %s\n", api.HandshakeState(p.LatestHandshake, now))
		fmt.Fprintf(w, "  transfer: %d B received, %d B sent\n", p.RxBytes, p.TxBytes)
	}
}

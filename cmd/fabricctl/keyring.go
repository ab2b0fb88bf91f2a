package main

import (
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/ovsfabric/ovsfabric/api"
)

func keyringCmd(o *options) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "keyring",
		Short: "List, install, use and remove gossip encryption keys on every host of the fabric",
		Long: `Manage the gossip encryption keys of the whole fabric without a restart, the way Serf and
Consul do: every operation goes to every live host, which applies it, persists its keyring and
answers; the answers are listed per host. KEY is the base64 of 16, 24 or 32 random bytes
(AES-128/192/256), e.g. from ` + "`head -c 32 /dev/urandom | base64`" + `.

Rotate a key: install the new key, use it, then remove the old one. A fabric running
without encryption switches to it with install (then rotate once, so the key that first
travelled in clear is retired). See docs/security.md.`,
		Example: `  fabricctl keyring list
  fabricctl keyring install "$NEW"
  fabricctl keyring use "$NEW"
  fabricctl keyring remove "$OLD"`,
	}
	var local bool
	change := func(op, short string) *cobra.Command {
		c := &cobra.Command{
			Use:   op + " KEY",
			Short: short,
			Args:  cobra.ExactArgs(1),
			RunE: func(_ *cobra.Command, args []string) error {
				c, cancel := ctx()
				defer cancel()
				r, err := o.client().ChangeKeyring(c, api.KeyringRequest{Op: op, Key: args[0], Local: local})
				if err != nil {
					return err
				}
				return keyringResult(o, r)
			},
		}
		c.Flags().BoolVar(&local, "local", false, "change only this host's keyring (a host that missed a rotation while down)")
		return c
	}
	list := &cobra.Command{
		Use:   "list",
		Short: "List the keys of every live host, and on how many hosts each is installed and primary",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, cancel := ctx()
			defer cancel()
			r, err := o.client().Keyring(c)
			if err != nil {
				return err
			}
			return keyringResult(o, r)
		},
	}
	cmd.AddCommand(list,
		change(api.KeyringInstall, "Install a key on every host (decrypts with it; the primary key is unchanged, or it becomes primary when the host had none)"),
		change(api.KeyringUse, "Make an installed key the primary one, used to encrypt, on every host"),
		change(api.KeyringRemove, "Remove a key that is not primary from every host"))
	return cmd
}

// keyringResult prints the answer and fails when a host failed or did not answer.
func keyringResult(o *options, r api.KeyringResponse) error {
	if err := o.print(r, func(w io.Writer) { printKeyring(w, r) }); err != nil {
		return err
	}
	if r.Failed > 0 {
		return fmt.Errorf("keyring %s failed on %d of %d hosts", r.Op, r.Failed, len(r.Hosts))
	}
	return nil
}

func printKeyring(w io.Writer, r api.KeyringResponse) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tINSTALLED\tPRIMARY")
	for _, k := range r.Keys {
		fmt.Fprintf(tw, "%s\t%d/%d\t%d/%d\n", k.Key, k.Installed, len(r.Hosts), k.Primary, len(r.Hosts))
	}
	tw.Flush()
	if len(r.Keys) == 0 {
		fmt.Fprintln(w, "(no keys: gossip is not encrypted)")
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tKEYS\tRESULT")
	for _, h := range r.Hosts {
		res := "ok"
		if h.Error != "" {
			res = h.Error
		}
		fmt.Fprintf(tw, "%s\t%d\t%s\n", h.Node, len(h.Keys), res)
	}
	tw.Flush()
}

package main

import (
	"fmt"
	"io"
	"os"

	"github.com/spf13/cobra"

	"github.com/ovsfabric/ovsfabric/controller"
	"github.com/ovsfabric/ovsfabric/ovsdb"
)

// ovsCmd groups what the operator does to Open vSwitch itself. It talks to OVSDB and
// ovs-vswitchd directly (not through fabricd), so it works while fabricd is down.
func ovsCmd(o *options) *cobra.Command {
	var endpoint, bridge, rundir string
	var cancelPrep bool
	prepare := &cobra.Command{
		Use:   "prepare-restart",
		Short: "Set flow-restore-wait before a planned restart of ovs-vswitchd; fabricd clears it once its flows are back",
		Long: `prepare-restart sets other_config:flow-restore-wait=true in the Open_vSwitch table,
marked as fabricd's with the identity of the ovs-vswitchd running now. Restart Open vSwitch
right after (systemctl restart openvswitch-switch, an upgrade): the new ovs-vswitchd keeps the
kernel datapath's flows and adds no default NORMAL flow; fabricd programs its whole pipeline
into it in one bundle and then removes the flag. --cancel removes the flag again when the
restart is called off. See docs/operations.md.`,
		Args: cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			c, cancel := ctx()
			defer cancel()
			sw, err := ovsdb.Dial(c, endpoint)
			if err != nil {
				return fmt.Errorf("OVSDB at %s: %w", endpoint, err)
			}
			defer sw.Close()
			rw, err := sw.FlowRestoreWait(c)
			if err != nil {
				return err
			}
			if cancelPrep {
				if rw.Mark == "" {
					return o.print(rw, func(w io.Writer) { fmt.Fprintln(w, "no restart prepared by fabricctl; nothing to cancel") })
				}
				if err := sw.ClearRestoreWait(c, rw.Mark); err != nil {
					return err
				}
				return o.print(ovsdb.RestoreWait{}, func(w io.Writer) { fmt.Fprintln(w, "flow-restore-wait removed") })
			}
			if rw.Set && rw.Mark == "" {
				return fmt.Errorf("flow-restore-wait is already set, not by fabricctl (ovs-ctl or an operator): leaving it to whoever set it")
			}
			// Finding the bridge's management socket proves an ovs-vswitchd serves it and
			// gives its identity.
			of := controller.NewOFSwitch(bridge, rundir, os.Getenv("OVS_RUNDIR"), endpoint)
			if _, err := of.Flows(c); err != nil {
				return err
			}
			id := of.ServerID()
			if err := sw.PrepareRestart(c, id); err != nil {
				return err
			}
			rw = ovsdb.RestoreWait{Set: true, Mark: id}
			return o.print(rw, func(w io.Writer) {
				fmt.Fprintf(w, "flow-restore-wait set (ovs-vswitchd %s serves %s)\n", id, bridge)
				fmt.Fprintln(w, "restart Open vSwitch now; fabricd clears the flag once its flows are on the new ovs-vswitchd")
			})
		},
	}
	prepare.Flags().StringVar(&endpoint, "ovsdb", "unix:"+controller.DefaultOVSRundir+"/db.sock", "OVSDB endpoint (fabricd's --ovsdb)")
	prepare.Flags().StringVar(&bridge, "bridge", "br-int", "fabricd's bridge (fabricd's --bridge)")
	prepare.Flags().StringVar(&rundir, "ovs-rundir", "", "ovs-vswitchd's run directory (fabricd's --ovs-rundir; default: $OVS_RUNDIR, the OVSDB socket's directory, "+controller.DefaultOVSRundir+")")
	prepare.Flags().BoolVar(&cancelPrep, "cancel", false, "remove the flag fabricctl set (the restart is called off)")
	cmd := &cobra.Command{Use: "ovs", Short: "Operate Open vSwitch around fabricd (planned restarts)"}
	cmd.AddCommand(prepare)
	return cmd
}

package main

import (
	"context"
	"io"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
)

func (a *app) vmConsoleCmd() *cobra.Command {
	var follow bool
	cmd := &cobra.Command{
		Use:   "console ID|NAME [-f] [-p PROJECT]",
		Short: "Print a VM's serial console",
		Long: `Print a VM's serial console log, from its first line, across boots. The
console lives on the VM's host, which sends it through the controller; a VM
not on a host yet, or a host that is down, is an error. With -f the command
keeps printing what the VM writes until interrupted (Ctrl-C) or the VM is
deleted. The output is the console's text as is (-o json does not apply).`,
		Example: "  photon vm console web-1\n  photon vm console web-1 -f\n  photon vm console web-1 -p p1 -t t1 | grep instance-id",
		Args:    exactArgs(1, "ID|NAME"),
	}
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "keep printing what the VM writes (until Ctrl-C or the VM is deleted)")
	return findCmd(a, cmd, vmKind.object(a, true), func(ctx context.Context, c *client.Client, v *api.VM) error {
		r, err := c.VMConsole(ctx, v.ID, follow)
		if err != nil {
			return err
		}
		defer r.Close()
		if _, err := io.Copy(a.stdout, r); err != nil && ctx.Err() == nil {
			return err
		}
		return nil
	})
}

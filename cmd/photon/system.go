package main

import (
	"context"
	"strconv"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
)

func (a *app) systemCmd() *cobra.Command {
	return a.group("system", "Show the controller's status, version and usage",
		"  photon system status\n  photon system usage -o json",
		a.systemStatusCmd(), a.systemInfoCmd(), a.systemUsageCmd(), a.systemAuditCmd(),
		a.iamCmd(owner{kind: "system", example: "", roles: "system-admin"}))
}

func (a *app) systemStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the health of the controller's components",
		Long: `Show the health of the controller's components. With -n the first line is
the overall status, then one line per component: NAME STATUS MESSAGE.`,
		Example: "  photon system status\n  photon system status -o json",
		Args:    cobra.NoArgs,
		RunE: a.connected(func(ctx context.Context, c *client.Client, args []string) error {
			s, err := c.SystemStatus(ctx)
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(s)
			}
			rows := make([][]string, 0, len(s.Components))
			for _, comp := range s.Components {
				rows = append(rows, []string{comp.Component, comp.Status, orDash(comp.Message)})
			}
			if a.plain() {
				a.line("%s", s.Status)
			} else {
				a.line("Overall status: %s\n", s.Status)
			}
			return a.table([]string{"COMPONENT", "STATUS", "MESSAGE"}, rows)
		}),
	}
}

func (a *app) systemInfoCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "info",
		Short:   "Show the controller's version",
		Example: "  photon system info",
		Args:    cobra.NoArgs,
		RunE: a.connected(func(ctx context.Context, c *client.Client, args []string) error {
			info, err := c.SystemInfo(ctx)
			if err != nil {
				return err
			}
			return a.printInfo(info)
		}),
	}
}

func (a *app) systemUsageCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "usage",
		Short:   "Count the objects in the system: tenants, projects, hosts, VMs, ... (system administrators)",
		Example: "  photon system usage",
		Args:    cobra.NoArgs,
		RunE: a.connected(func(ctx context.Context, c *client.Client, args []string) error {
			u, err := c.SystemUsage(ctx)
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(u)
			}
			rows := [][]string{
				{"tenants", itoa(u.NumberTenants)}, {"projects", itoa(u.NumberProjects)},
				{"hosts", itoa(u.NumberHosts)}, {"datastores", itoa(u.NumberDatastores)},
				{"vms", itoa(u.NumberVMs)}, {"services", itoa(u.NumberServices)},
			}
			return a.table([]string{"OBJECTS", "COUNT"}, rows)
		}),
	}
}

// printInfo prints a controller's version; kv come first in its fields.
func (a *app) printInfo(info *api.Info, kv ...string) error {
	return a.show(info, []string{info.BaseVersion, info.FullVersion, info.GitCommitHash, info.NetworkType},
		append(kv, "Base version", info.BaseVersion, "Full version", info.FullVersion,
			"Git commit", orDash(info.GitCommitHash), "Network type", orDash(info.NetworkType)), nil)
}

func itoa(n int) string { return strconv.Itoa(n) }

package main

import (
	"context"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
)

func (a *app) tenantCmd() *cobra.Command {
	return a.group("tenant", "Manage tenants: accounts that hold projects and quota",
		"  photon tenant create t1 --limits \"vm 10 COUNT, vm.cpu 20 COUNT, vm.memory 40 GB\"\n  photon tenant list",
		a.tenantCreateCmd(), a.tenantListCmd(), a.tenantShowCmd(), a.tenantDeleteCmd(),
		a.tenantSetCmd(), a.tenantGetCmd(),
		a.iamCmd(iamOwner{kind: "tenant", example: "t1", roles: "tenant-admin", flags: a.tenantResolver}),
		a.entityTasksCmd("tenant", "  photon tenant tasks t1\n  photon tenant tasks t1 --state ERROR",
			a.tenantResolver, (*client.Client).ListTenantTasks),
		a.quotaCmd(quotaOwner{
			kind: "tenant", example: "t1", flags: a.tenantResolver,
			get:     (*client.Client).GetTenantQuota,
			set:     (*client.Client).SetTenantQuota,
			update:  (*client.Client).UpdateTenantQuota,
			exclude: (*client.Client).ExcludeTenantQuota,
		}),
	)
}

// tenantResolver resolves a tenant argument; it adds no flags.
func (a *app) tenantResolver(*cobra.Command) idResolver { return a.tenantID }

// splitList splits "a, b,c" into its trimmed, non-empty parts.
func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

func (a *app) tenantCreateCmd() *cobra.Command {
	var limits, groups string
	cmd := &cobra.Command{
		Use:   "create NAME [--limits LIMITS] [--security-groups G1,G2]",
		Short: "Create a tenant, optionally with a quota",
		Example: `  photon tenant create t1 --limits "vm 10 COUNT, vm.cpu 20 COUNT, vm.memory 40 GB"
  photon -n tenant create t2          # prints only the new id`,
		Args: exactArgs(1, "NAME"),
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			spec := &api.TenantCreateSpec{Name: args[0], SecurityGroups: splitList(groups)}
			if cmd.Flags().Changed("limits") {
				q, err := parseLimits(limits)
				if err != nil {
					return err
				}
				spec.Quota = q
			}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			t, err := c.CreateTenant(ctx, spec)
			if t, err = a.wait(ctx, c, t, err); err != nil {
				return err
			}
			return a.created(ctx, "tenant", spec.Name, t, func(ctx context.Context, id string) (any, error) {
				return c.GetTenant(ctx, id)
			})
		}),
	}
	cmd.Flags().StringVarP(&limits, "limits", "l", "", limitsHelp)
	cmd.Flags().StringVarP(&groups, "security-groups", "s", "", "comma-separated security groups, e.g. \"admins,devs\"")
	return cmd
}

// created prints the outcome of a create task: the new object's JSON (-o
// json), its id alone (-n) or a sentence.
func (a *app) created(ctx context.Context, kind, name string, t *api.Task, get func(context.Context, string) (any, error)) error {
	id := t.Entity.ID
	switch {
	case a.jsonOut():
		obj, err := get(ctx, id)
		if err != nil {
			return err
		}
		return a.printJSON(obj)
	case a.plain():
		a.line("%s", id)
	default:
		a.line("Created %s %s, ID: %s", kind, name, id)
	}
	return nil
}

// deleted prints the outcome of a delete task: the task's JSON (-o json),
// the id (-n) or a sentence.
func (a *app) deleted(kind, name, id string, t *api.Task) error {
	switch {
	case a.jsonOut():
		return a.printJSON(t)
	case a.plain():
		a.line("%s", id)
	default:
		a.line("Deleted %s %s, ID: %s", kind, name, id)
	}
	return nil
}

func (a *app) tenantListCmd() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "list [--name NAME]",
		Short: "List tenants",
		Long: `List tenants. With -n each line is ID NAME STATE PROJECTS, tab-separated;
-d adds the quota.`,
		Example: "  photon tenant list\n  photon -n tenant list --name t1\n  photon tenant list -o json",
		Args:    cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ts, err := c.ListTenants(cmd.Context(), name)
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(ts)
			}
			header := []string{"ID", "NAME", "STATE", "PROJECTS"}
			if a.detail {
				header = append(header, "QUOTA (USAGE/LIMIT)")
			}
			rows := make([][]string, 0, len(ts))
			for _, t := range ts {
				r := []string{t.ID, t.Name, t.State, strconv.Itoa(len(t.Projects))}
				if a.detail {
					r = append(r, quotaSummary(t.Quota))
				}
				rows = append(rows, r)
			}
			return a.table(header, rows)
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "only the tenant with this name")
	return cmd
}

func (a *app) tenantShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show [ID|NAME]",
		Short:   "Show a tenant (the current one if none is named)",
		Example: "  photon tenant show t1\n  photon tenant show t1 -o json",
		Args:    cobra.MaximumNArgs(1),
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			t, err := a.tenant(cmd.Context(), c, optArg(args))
			if err != nil {
				return err
			}
			return a.printTenant(t)
		}),
	}
}

func (a *app) printTenant(t *api.Tenant) error {
	if a.jsonOut() {
		return a.printJSON(t)
	}
	if a.plain() {
		return a.table(nil, [][]string{{t.ID, t.Name, t.State, strconv.Itoa(len(t.Projects))}})
	}
	var projects, groups []string
	for _, p := range t.Projects {
		projects = append(projects, p.Name+" ("+p.ID+")")
	}
	for _, g := range t.SecurityGroups {
		groups = append(groups, g.Name)
	}
	if err := a.fields("ID", t.ID, "Name", t.Name, "State", orDash(t.State),
		"Projects", orDash(strings.Join(projects, ", ")),
		"Security groups", orDash(strings.Join(groups, ", ")),
		"Tags", orDash(strings.Join(t.Tags, ", "))); err != nil {
		return err
	}
	return a.printQuotaSection(t.Quota)
}

// printQuotaSection prints a quota under an object's fields, for a human.
func (a *app) printQuotaSection(q api.Quota) error {
	if len(q.QuotaItems) == 0 {
		a.line("Quota:            none")
		return nil
	}
	a.line("\nQuota:")
	return a.table(quotaHeader, quotaRows(q))
}

func (a *app) tenantDeleteCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "delete ID|NAME",
		Short:   "Delete a tenant; one that still has projects is refused (ContainerNotEmpty)",
		Example: "  photon tenant delete t1",
		Args:    exactArgs(1, "ID|NAME"),
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			ten, err := a.tenant(ctx, c, args[0])
			if err != nil {
				return err
			}
			t, err := c.DeleteTenant(ctx, ten.ID)
			if t, err = a.wait(ctx, c, t, err); err != nil {
				return err
			}
			if a.file.Tenant != nil && a.file.Tenant.ID == ten.ID {
				a.file.Tenant, a.file.Project = nil, nil
				if err := a.save(); err != nil {
					return err
				}
			}
			return a.deleted("tenant", ten.Name, ten.ID, t)
		}),
	}
}

func (a *app) tenantSetCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "set ID|NAME",
		Short:   "Make a tenant the current one, used when -t is omitted",
		Example: "  photon tenant set t1\n  photon project create p1   # under t1",
		Args:    exactArgs(1, "ID|NAME"),
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			t, err := a.tenant(cmd.Context(), c, args[0])
			if err != nil {
				return err
			}
			if a.file.Tenant == nil || a.file.Tenant.ID != t.ID {
				a.file.Project = nil
			}
			a.file.Tenant = &ref{ID: t.ID, Name: t.Name}
			if err := a.save(); err != nil {
				return err
			}
			return a.printRef("tenant", a.file.Tenant)
		}),
	}
}

func (a *app) tenantGetCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "get",
		Short:   "Show the current tenant",
		Example: "  photon tenant get",
		Args:    cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			return a.printRef("tenant", a.cfg.Tenant)
		}),
	}
}

// printRef prints the current tenant or project.
func (a *app) printRef(kind string, r *ref) error {
	switch {
	case a.jsonOut():
		if r == nil {
			return a.printJSON(struct{}{})
		}
		return a.printJSON(r)
	case r == nil:
		if !a.plain() {
			a.line("No current %s; set one with 'photon %s set NAME'", kind, kind)
		}
	case a.plain():
		a.line("%s\t%s", r.ID, r.Name)
	default:
		a.line("Current %s: %s (ID: %s)", kind, r.Name, r.ID)
	}
	return nil
}

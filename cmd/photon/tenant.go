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
	o := owner{kind: "tenant", example: "t1", roles: "tenant-admin", flags: a.tenantResolver}
	return a.group("tenant", "Manage tenants: accounts that hold projects and quota",
		"  photon tenant create t1 --limits \"vm 10 COUNT, vm.cpu 20 COUNT, vm.memory 40 GB\"\n  photon tenant list",
		a.tenantCreateCmd(), a.tenantListCmd(), a.tenantShowCmd(), a.tenantDeleteCmd(),
		a.tenantSetCmd(), a.currentCmd("tenant", func() *ref { return a.cfg.Tenant }), a.iamCmd(o), a.quotaCmd(o),
		a.entityTasksCmd("tenant", "  photon tenant tasks t1\n  photon tenant tasks t1 --state ERROR",
			a.tenantResolver, (*client.Client).ListTenantTasks),
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
			return a.create(ctx, c, "tenant", spec.Name, t, err, getter((*client.Client).GetTenant))
		}),
	}
	cmd.Flags().StringVarP(&limits, "limits", "l", "", limitsHelp)
	cmd.Flags().StringVarP(&groups, "security-groups", "s", "", "comma-separated security groups, e.g. \"admins,devs\"")
	return cmd
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
		RunE: a.connected(func(ctx context.Context, c *client.Client, args []string) error {
			ts, err := c.ListTenants(ctx, name)
			if err != nil {
				return err
			}
			return printQuotaList(a, ts, []string{"ID", "NAME", "STATE", "PROJECTS"}, tenantRow,
				func(t api.Tenant) api.Quota { return t.Quota })
		}),
	}
	cmd.Flags().StringVar(&name, "name", "", "only the tenant with this name")
	return cmd
}

func tenantRow(t api.Tenant) []string {
	return []string{t.ID, t.Name, t.State, strconv.Itoa(len(t.Projects))}
}

// printQuotaList is printList for objects with a quota, which -d adds.
func printQuotaList[T any](a *app, items []T, header []string, row func(T) []string, quota func(T) api.Quota) error {
	if a.detail {
		header = append(header, "QUOTA (USAGE/LIMIT)")
	}
	return printList(a, items, header, func(it T) []string {
		r := row(it)
		if a.detail {
			r = append(r, quotaSummary(quota(it)))
		}
		return r
	})
}

func (a *app) tenantShowCmd() *cobra.Command {
	return showCmd(a, &cobra.Command{
		Use:     "show [ID|NAME]",
		Short:   "Show a tenant (the current one if none is named)",
		Example: "  photon tenant show t1\n  photon tenant show t1 -o json",
		Args:    cobra.MaximumNArgs(1),
	}, a.tenantObject(), a.printTenant)
}

func tenantID(t *api.Tenant) string   { return t.ID }
func tenantName(t *api.Tenant) string { return t.Name }

// tenantObject names a tenant: by name or id, "" for the current one.
func (a *app) tenantObject() object[api.Tenant] {
	return object[api.Tenant]{kind: "tenant", flags: noFlags(a.tenant), id: tenantID, name: tenantName}
}

func (a *app) printTenant(t *api.Tenant) error {
	var projects, groups []string
	for _, p := range t.Projects {
		projects = append(projects, p.Name+" ("+p.ID+")")
	}
	for _, g := range t.SecurityGroups {
		groups = append(groups, g.Name)
	}
	return a.show(t, tenantRow(*t), []string{"ID", t.ID, "Name", t.Name, "State", orDash(t.State),
		"Projects", orDash(strings.Join(projects, ", ")),
		"Security groups", orDash(strings.Join(groups, ", ")),
		"Tags", orDash(strings.Join(t.Tags, ", "))}, func() error { return a.printQuotaSection(t.Quota) })
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
	return deleteCmd(a, &cobra.Command{
		Use:     "delete ID|NAME",
		Short:   "Delete a tenant; one that still has projects is refused (ContainerNotEmpty)",
		Example: "  photon tenant delete t1",
		Args:    exactArgs(1, "ID|NAME"),
	}, a.tenantObject(), (*client.Client).DeleteTenant, func(ten *api.Tenant) error {
		if a.file.Tenant != nil && a.file.Tenant.ID == ten.ID {
			a.file.Tenant, a.file.Project = nil, nil
			return a.save()
		}
		return nil
	})
}

func (a *app) tenantSetCmd() *cobra.Command {
	return findCmd(a, &cobra.Command{
		Use:     "set ID|NAME",
		Short:   "Make a tenant the current one, used when -t is omitted",
		Example: "  photon tenant set t1\n  photon project create p1   # under t1",
		Args:    exactArgs(1, "ID|NAME"),
	}, a.tenantObject(), func(_ context.Context, _ *client.Client, t *api.Tenant) error {
		if a.file.Tenant == nil || a.file.Tenant.ID != t.ID {
			a.file.Project = nil
		}
		a.file.Tenant = &ref{ID: t.ID, Name: t.Name}
		return a.saveCurrent("tenant", a.file.Tenant)
	})
}

// currentCmd is `<kind> get`, which shows the current tenant or project.
func (a *app) currentCmd(kind string, current func() *ref) *cobra.Command {
	return &cobra.Command{
		Use:     "get",
		Short:   "Show the current " + kind,
		Example: "  photon " + kind + " get",
		Args:    cobra.NoArgs,
		RunE: a.action(func(*cobra.Command, []string) error {
			return a.printRef(kind, current())
		}),
	}
}

// saveCurrent saves the configuration, in which r is now the current
// tenant or project (kind), and prints r.
func (a *app) saveCurrent(kind string, r *ref) error {
	if err := a.save(); err != nil {
		return err
	}
	return a.printRef(kind, r)
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

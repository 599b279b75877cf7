package main

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
)

// tenantFlag adds -t/--tenant to cmd and returns where its value goes.
func tenantFlag(cmd *cobra.Command) *string {
	var t string
	cmd.Flags().StringVarP(&t, "tenant", "t", "", "tenant name or id (default: the current tenant, see 'photon tenant set')")
	return &t
}

func projectID(p *api.Project) string   { return p.ID }
func projectName(p *api.Project) string { return p.Name }

// projectObject names a project: by id, or by name in the tenant -t names
// (or the current one); "" for the current project.
func (a *app) projectObject() object[api.Project] {
	return object[api.Project]{kind: "project", id: projectID, name: projectName,
		flags: func(cmd *cobra.Command) findFunc[api.Project] {
			tenant := tenantFlag(cmd)
			return func(ctx context.Context, c *client.Client, arg string) (*api.Project, error) {
				return a.project(ctx, c, *tenant, arg)
			}
		}}
}

func (a *app) projectCmd() *cobra.Command {
	o := owner{kind: "project", example: "p1 -t t1", roles: "project-user, project-viewer", flags: a.projectObject().resolver}
	return a.group("project", "Manage projects: units of quota and ownership inside a tenant",
		"  photon project create p1 -t t1 --limits \"vm 5 COUNT, vm.cpu 10 COUNT, vm.memory 20 GB\"\n  photon project list -t t1",
		a.projectCreateCmd(), a.projectListCmd(), a.projectShowCmd(), a.projectDeleteCmd(),
		a.projectSetCmd(), a.currentCmd("project", func() *ref { return a.cfg.Project }), a.iamCmd(o), a.quotaCmd(o),
		a.entityTasksCmd("project", "  photon project tasks p1 -t t1", o.flags, (*client.Client).ListProjectTasks),
	)
}

func (a *app) projectCreateCmd() *cobra.Command {
	var limits, groups, cidr string
	var percent float64
	cmd := &cobra.Command{
		Use:   "create NAME [-t TENANT] [--limits LIMITS | --percent N]",
		Short: "Create a project in a tenant; its quota is carved out of the tenant's",
		Long: `Create a project in a tenant. Its quota is carved out of the tenant's: it
must name every key the tenant limits, either with --limits or with
--percent N (N% of each of the tenant's limits). A quota the tenant cannot
spare is refused with QuotaError.`,
		Example: `  photon project create p1 -t t1 --limits "vm 5 COUNT, vm.cpu 10 COUNT, vm.memory 20 GB"
  photon project create p2 -t t1 --percent 25`,
		Args: exactArgs(1, "NAME"),
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			if cmd.Flags().Changed("limits") && cmd.Flags().Changed("percent") {
				return usagef("--limits and --percent exclude each other")
			}
			if cmd.Flags().Changed("percent") && (percent <= 0 || percent > 100) {
				return usagef("--percent %v: want a number above 0 and at most 100", percent)
			}
			spec := &api.ProjectCreateSpec{Name: args[0], SecurityGroups: splitList(groups), DefaultRouterPrivateIPCidr: cidr}
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
			tid, err := a.tenantID(ctx, c, tenantFlagValue(cmd))
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("percent") {
				tq, err := c.GetTenantQuota(ctx, tid)
				if err != nil {
					return err
				}
				spec.Quota = &api.QuotaSpec{QuotaItems: map[string]api.QuotaItem{}}
				for k, it := range tq.QuotaItems {
					spec.Quota.QuotaItems[k] = api.QuotaItem{Unit: it.Unit, Limit: it.Limit * percent / 100}
				}
			}
			t, err := c.CreateProject(ctx, tid, spec)
			return a.create(ctx, c, "project", spec.Name, t, err, getter((*client.Client).GetProject))
		}),
	}
	tenantFlag(cmd)
	cmd.Flags().StringVarP(&limits, "limits", "l", "", limitsHelp)
	cmd.Flags().Float64Var(&percent, "percent", 0, "take this percentage of each of the tenant's limits")
	cmd.Flags().StringVarP(&groups, "security-groups", "s", "", "comma-separated security groups")
	cmd.Flags().StringVar(&cidr, "default-router-private-ip-cidr", "", "private CIDR of the default router, e.g. 192.168.0.0/16")
	return cmd
}

// tenantFlagValue returns the value of cmd's -t/--tenant flag.
func tenantFlagValue(cmd *cobra.Command) string {
	s, _ := cmd.Flags().GetString("tenant")
	return s
}

func (a *app) projectListCmd() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "list [-t TENANT] [--name NAME]",
		Short: "List a tenant's projects",
		Long: `List a tenant's projects. With -n each line is ID NAME STATE, tab-separated;
-d adds the quota.`,
		Example: "  photon project list -t t1\n  photon -n project list -t t1",
		Args:    cobra.NoArgs,
	}
	tenant := tenantFlag(cmd)
	cmd.RunE = a.connected(func(ctx context.Context, c *client.Client, args []string) error {
		tid, err := a.tenantID(ctx, c, *tenant)
		if err != nil {
			return err
		}
		ps, err := c.ListProjects(ctx, tid, name)
		if err != nil {
			return err
		}
		return printQuotaList(a, ps, []string{"ID", "NAME", "STATE"}, projectRow,
			func(p api.Project) api.Quota { return p.Quota })
	})
	cmd.Flags().StringVar(&name, "name", "", "only the project with this name")
	return cmd
}

func projectRow(p api.Project) []string { return []string{p.ID, p.Name, p.State} }

func (a *app) projectShowCmd() *cobra.Command {
	return showCmd(a, &cobra.Command{
		Use:     "show [ID|NAME] [-t TENANT]",
		Short:   "Show a project (the current one if none is named)",
		Example: "  photon project show p1 -t t1\n  photon project show 0193c9b2-7d1e-7c4a-9f00-3b5e2a1c4d5e -o json",
		Args:    cobra.MaximumNArgs(1),
	}, a.projectObject(), func(p *api.Project) error {
		var groups []string
		for _, g := range p.SecurityGroups {
			groups = append(groups, g.Name)
		}
		return a.show(p, projectRow(*p), []string{"ID", p.ID, "Name", p.Name, "State", orDash(p.State), "Tenant", orDash(p.TenantID),
			"Security groups", orDash(strings.Join(groups, ", ")),
			"Tags", orDash(strings.Join(p.Tags, ", "))}, func() error { return a.printQuotaSection(p.Quota) })
	})
}

func (a *app) projectDeleteCmd() *cobra.Command {
	return deleteCmd(a, &cobra.Command{
		Use:     "delete ID|NAME [-t TENANT]",
		Short:   "Delete a project; its quota returns to the tenant",
		Example: "  photon project delete p1 -t t1",
		Args:    exactArgs(1, "ID|NAME"),
	}, a.projectObject(), (*client.Client).DeleteProject, func(p *api.Project) error {
		if a.file.Project != nil && a.file.Project.ID == p.ID {
			a.file.Project = nil
			return a.save()
		}
		return nil
	})
}

func (a *app) projectSetCmd() *cobra.Command {
	return findCmd(a, &cobra.Command{
		Use:     "set ID|NAME [-t TENANT]",
		Short:   "Make a project (and its tenant) the current one",
		Example: "  photon project set p1 -t t1",
		Args:    exactArgs(1, "ID|NAME"),
	}, a.projectObject(), func(ctx context.Context, c *client.Client, p *api.Project) error {
		if p.TenantID != "" && (a.file.Tenant == nil || a.file.Tenant.ID != p.TenantID) {
			t, err := c.GetTenant(ctx, p.TenantID)
			if err != nil {
				return err
			}
			a.file.Tenant = &ref{ID: t.ID, Name: t.Name}
		}
		a.file.Project = &ref{ID: p.ID, Name: p.Name}
		return a.saveCurrent("project", a.file.Project)
	})
}

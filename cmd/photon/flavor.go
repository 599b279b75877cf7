package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
)

const kindHelp = "flavor kind: vm, ephemeral-disk or persistent-disk"

// flavorObject names a flavor: by id, or by name and the kind -k gives (to
// tell flavors of the same name apart).
func (a *app) flavorObject() object[api.Flavor] {
	return object[api.Flavor]{kind: "flavor", id: func(f *api.Flavor) string { return f.ID }, name: func(f *api.Flavor) string { return f.Name },
		flags: func(cmd *cobra.Command) findFunc[api.Flavor] {
			var kind string
			cmd.Flags().StringVarP(&kind, "kind", "k", "", kindHelp+" (to tell flavors of the same name apart)")
			return func(ctx context.Context, c *client.Client, arg string) (*api.Flavor, error) {
				return a.flavor(ctx, c, arg, kind)
			}
		}}
}

// flavorResolver adds -k/--kind to cmd and resolves a flavor argument.
func (a *app) flavorResolver(cmd *cobra.Command) idResolver {
	resolve := a.flavorObject().resolver(cmd)
	return func(ctx context.Context, c *client.Client, arg string) (string, error) {
		if arg == "" {
			return "", usagef("name a flavor (ID or NAME)")
		}
		return resolve(ctx, c, arg)
	}
}

func (a *app) flavorCmd() *cobra.Command {
	return a.group("flavor", "Manage flavors: named sizes of VMs and disks and what they cost against quota",
		"  photon flavor create -n small -k vm -c \"vm 1 COUNT, vm.cpu 1 COUNT, vm.memory 2 GB\"\n  photon flavor list --kind vm",
		a.flavorCreateCmd(), a.flavorListCmd(), a.flavorShowCmd(), a.flavorDeleteCmd(),
		a.entityTasksCmd("flavor", "  photon flavor tasks small -k vm", a.flavorResolver, (*client.Client).ListFlavorTasks),
	)
}

func (a *app) flavorCreateCmd() *cobra.Command {
	var name, kind, cost string
	var tags string
	cmd := &cobra.Command{
		Use:   "create -n NAME -k KIND -c COST",
		Short: "Create a flavor",
		Long: `Create a flavor. COST lists what one VM or disk of the flavor consumes,
"KEY VALUE UNIT, ...". VM flavors must carry vm.cpu and vm.memory.

Here -n is the flavor's name; the global -n (non-interactive) may be given
before the command word (photon -n flavor create ...) or as --non-interactive.`,
		Example: `  photon flavor create -n small -k vm -c "vm 1 COUNT, vm.cpu 1 COUNT, vm.memory 2 GB"
  photon flavor create -n ssd -k persistent-disk -c "persistent-disk 1 COUNT"
  photon -n flavor create -n big -k vm -c "vm.cpu 8 COUNT, vm.memory 32 GB"   # prints only the id`,
		Args: cobra.MaximumNArgs(1),
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			if len(args) == 1 {
				if name != "" && name != args[0] {
					return usagef("two names given: %q and -n %q", args[0], name)
				}
				name = args[0]
			}
			if name == "" {
				return usagef("flavor create needs -n NAME")
			}
			items, err := api.ParseLimits(cost)
			if err != nil {
				return &usageError{err}
			}
			spec := &api.FlavorCreateSpec{Name: name, Kind: kind, Cost: items, Tags: splitList(tags)}
			c, err := a.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			t, err := c.CreateFlavor(ctx, spec)
			return a.create(ctx, c, "flavor", name, t, err, getter((*client.Client).GetFlavor))
		}),
	}
	f := cmd.Flags()
	// -n is the name here; the global --non-interactive keeps its long form
	// (registered locally so that the global's -n does not clash).
	f.BoolVar(&a.nonInteractive, "non-interactive", false, "plain output: print only the new id")
	f.StringVarP(&name, "name", "n", "", "flavor name, e.g. small")
	f.StringVarP(&kind, "kind", "k", "", kindHelp)
	f.StringVarP(&cost, "cost", "c", "", `cost items, e.g. "vm.cpu 1 COUNT, vm.memory 2 GB"`)
	f.StringVar(&tags, "tags", "", "comma-separated tags")
	_ = cmd.MarkFlagRequired("kind")
	_ = cmd.MarkFlagRequired("cost")
	return cmd
}

func (a *app) flavorListCmd() *cobra.Command {
	var filter client.FlavorFilter
	cmd := &cobra.Command{
		Use:   "list [--name NAME] [--kind KIND]",
		Short: "List flavors",
		Long: `List flavors. With -n each line is ID NAME KIND STATE COST, tab-separated,
COST as "KEY VALUE UNIT, ...".`,
		Example: "  photon flavor list\n  photon flavor list --kind vm\n  photon flavor list -o json",
		Args:    cobra.NoArgs,
		RunE: a.connected(func(ctx context.Context, c *client.Client, args []string) error {
			fs, err := c.ListFlavors(ctx, filter)
			if err != nil {
				return err
			}
			return printList(a, fs, []string{"ID", "NAME", "KIND", "STATE", "COST"}, flavorRow)
		}),
	}
	cmd.Flags().StringVar(&filter.Name, "name", "", "only flavors with this name")
	cmd.Flags().StringVarP(&filter.Kind, "kind", "k", "", "only flavors of this kind: vm, ephemeral-disk or persistent-disk")
	return cmd
}

func flavorRow(f api.Flavor) []string {
	return []string{f.ID, f.Name, f.Kind, f.State, costString(f.Cost)}
}

func (a *app) flavorShowCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "show ID|NAME [-k KIND]",
		Short:   "Show a flavor",
		Example: "  photon flavor show small\n  photon flavor show small -k vm -o json",
		Args:    exactArgs(1, "ID|NAME"),
	}
	resolve := a.flavorResolver(cmd)
	cmd.RunE = a.connected(func(ctx context.Context, c *client.Client, args []string) error {
		id, err := resolve(ctx, c, args[0])
		if err != nil {
			return err
		}
		f, err := c.GetFlavor(ctx, id)
		if err != nil {
			return err
		}
		return a.show(f, flavorRow(*f), []string{"ID", f.ID, "Name", f.Name, "Kind", f.Kind, "State", f.State,
			"In use by", itoa(f.Users), "Tags", orDash(joinComma(f.Tags))}, func() error {
			a.line("\nCost:")
			rows := make([][]string, 0, len(f.Cost))
			for _, it := range f.Cost {
				rows = append(rows, []string{it.Key, num(it.Value), it.Unit})
			}
			return a.table([]string{"KEY", "VALUE", "UNIT"}, rows)
		})
	})
	return cmd
}

func (a *app) flavorDeleteCmd() *cobra.Command {
	return deleteCmd(a, &cobra.Command{
		Use:     "delete ID|NAME [-k KIND]",
		Short:   "Delete a flavor; one in use goes PENDING_DELETE until its last user is gone",
		Example: "  photon flavor delete small -k vm",
		Args:    exactArgs(1, "ID|NAME"),
	}, a.flavorObject(), (*client.Client).DeleteFlavor, nil)
}

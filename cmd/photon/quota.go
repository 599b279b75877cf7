package main

import (
	"context"
	"strings"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
)

// limitsHelp describes the --limits syntax.
const limitsHelp = `quota limits, "KEY VALUE UNIT, ...", e.g. "vm 10 COUNT, vm.cpu 20 COUNT, vm.memory 40 GB" (units B, KB, MB, GB, COUNT)`

// parseLimits parses --limits with api.ParseLimits into a quota spec; a bad
// value is a usage error.
func parseLimits(s string) (*api.QuotaSpec, error) {
	items, err := api.ParseLimits(s)
	if err != nil {
		return nil, &usageError{err}
	}
	return api.QuotaSpecFromItems(items), nil
}

// parseExcludeKeys takes either full limits ("vm.cpu 0 COUNT, ...") or bare
// keys ("vm.cpu, vm.memory") and returns a spec naming those keys.
func parseExcludeKeys(s string) (*api.QuotaSpec, error) {
	spec, err := parseLimits(s)
	if err == nil {
		return spec, nil
	}
	keys := map[string]api.QuotaItem{}
	for _, part := range strings.Split(s, ",") {
		f := strings.Fields(part)
		if len(f) != 1 {
			return nil, err
		}
		keys[f[0]] = api.QuotaItem{Unit: api.UnitCount}
	}
	spec = &api.QuotaSpec{QuotaItems: keys}
	if verr := spec.Validate("limits"); verr != nil {
		return nil, &usageError{verr}
	}
	return spec, nil
}

// quotaCall is an SDK quota change, e.g. (*client.Client).SetTenantQuota.
type quotaCall func(c *client.Client, ctx context.Context, id string, spec *api.QuotaSpec) (*api.Task, error)

// quotaOwner is what `tenant quota` and `project quota` differ in.
type quotaOwner struct {
	kind    string // "tenant" or "project"
	example string // an example name
	// flags adds the command's own flags (e.g. -t for projects) and returns
	// the function that turns the ID|NAME argument ("" = current) into an id.
	flags func(cmd *cobra.Command) idResolver
	// The SDK's methods, as method expressions.
	get     func(c *client.Client, ctx context.Context, id string) (*api.Quota, error)
	set     quotaCall
	update  quotaCall
	exclude quotaCall
}

func (a *app) quotaCmd(o quotaOwner) *cobra.Command {
	show := &cobra.Command{
		Use:     "show [ID|NAME]",
		Short:   "Show the " + o.kind + "'s quota: limit and usage per key",
		Example: "  photon " + o.kind + " quota show " + o.example,
		Args:    cobra.MaximumNArgs(1),
	}
	resolve := o.flags(show)
	show.RunE = a.action(func(cmd *cobra.Command, args []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		id, err := resolve(cmd.Context(), c, optArg(args))
		if err != nil {
			return err
		}
		q, err := o.get(c, cmd.Context(), id)
		if err != nil {
			return err
		}
		return a.printQuota(q)
	})
	return a.group("quota", "Show and change the "+o.kind+"'s quota",
		"  photon "+o.kind+" quota show "+o.example+"\n  photon "+o.kind+" quota update "+o.example+" --limits \"vm.cpu 40 COUNT\"", show,
		a.quotaChangeCmd(o, "set", "Replace the "+o.kind+"'s whole quota with --limits", o.set, parseLimits,
			"  photon "+o.kind+` quota set `+o.example+` --limits "vm 10 COUNT, vm.cpu 20 COUNT, vm.memory 40 GB"`),
		a.quotaChangeCmd(o, "update", "Change the keys --limits names, keep the others", o.update, parseLimits,
			"  photon "+o.kind+` quota update `+o.example+` --limits "vm.cpu 40 COUNT"`),
		a.quotaChangeCmd(o, "exclude", "Remove the keys --limits names from the quota", o.exclude, parseExcludeKeys,
			"  photon "+o.kind+` quota exclude `+o.example+` --limits "vm.memory 0 GB"`+"\n  photon "+o.kind+` quota exclude `+o.example+` --limits "vm.memory, vm"`),
	)
}

func (a *app) quotaChangeCmd(o quotaOwner, verb, short string,
	call quotaCall,
	parse func(string) (*api.QuotaSpec, error), example string) *cobra.Command {
	var limits string
	cmd := &cobra.Command{
		Use:     verb + " [ID|NAME] --limits LIMITS",
		Short:   short,
		Example: example,
		Args:    cobra.MaximumNArgs(1),
	}
	resolve := o.flags(cmd)
	cmd.RunE = a.action(func(cmd *cobra.Command, args []string) error {
		spec, err := parse(limits)
		if err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		id, err := resolve(ctx, c, optArg(args))
		if err != nil {
			return err
		}
		t, err := call(c, ctx, id, spec)
		if _, err := a.wait(ctx, c, t, err); err != nil {
			return err
		}
		q, err := o.get(c, ctx, id)
		if err != nil {
			return err
		}
		return a.printQuota(q)
	})
	cmd.Flags().StringVarP(&limits, "limits", "l", "", limitsHelp)
	_ = cmd.MarkFlagRequired("limits")
	return cmd
}

// optArg is the optional single argument, "" if absent.
func optArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

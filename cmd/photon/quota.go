package main

import (
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

// owner is what the tenant, project, system and object command groups
// differ in for their shared subcommands (iam, quota).
type owner struct {
	kind    string // "tenant", "project", "system", "vm", ...: as client.IAMPath and client.QuotaPath take it
	example string // how the object is named in examples, e.g. "t1" ("" for the system)
	roles   string // the roles it may bind, e.g. "project-user, project-viewer"
	// flags adds the command's own flags (e.g. -t for projects) and returns
	// the function that turns the ID|NAME argument ("" = current) into an
	// id; nil for the system (no argument).
	flags func(cmd *cobra.Command) idResolver
}

func (a *app) quotaCmd(o owner) *cobra.Command {
	change := func(verb, short, change string, parse func(string) (*api.QuotaSpec, error), example string) *cobra.Command {
		return a.quotaSubCmd(o, &cobra.Command{Use: verb + " [ID|NAME] --limits LIMITS", Short: short, Example: example},
			change, parse)
	}
	return a.group("quota", "Show and change the "+o.kind+"'s quota",
		"  photon "+o.kind+" quota show "+o.example+"\n  photon "+o.kind+" quota update "+o.example+" --limits \"vm.cpu 40 COUNT\"",
		a.quotaSubCmd(o, &cobra.Command{
			Use:     "show [ID|NAME]",
			Short:   "Show the " + o.kind + "'s quota: limit and usage per key",
			Example: "  photon " + o.kind + " quota show " + o.example,
		}, "", nil),
		change("set", "Replace the "+o.kind+"'s whole quota with --limits", client.QuotaSet, parseLimits,
			"  photon "+o.kind+` quota set `+o.example+` --limits "vm 10 COUNT, vm.cpu 20 COUNT, vm.memory 40 GB"`),
		change("update", "Change the keys --limits names, keep the others", client.QuotaUpdate, parseLimits,
			"  photon "+o.kind+` quota update `+o.example+` --limits "vm.cpu 40 COUNT"`),
		change("exclude", "Remove the keys --limits names from the quota", client.QuotaExclude, parseExcludeKeys,
			"  photon "+o.kind+` quota exclude `+o.example+` --limits "vm.memory 0 GB"`+"\n  photon "+o.kind+` quota exclude `+o.example+` --limits "vm.memory, vm"`),
	)
}

// quotaSubCmd finishes cmd, a command on o's quota: with parse (nil for
// show) it reads --limits, changes the quota by change (client.QuotaSet,
// ...) and waits for the task; then it prints the quota.
func (a *app) quotaSubCmd(o owner, cmd *cobra.Command, change string, parse func(string) (*api.QuotaSpec, error)) *cobra.Command {
	var limits string
	cmd.Args = cobra.MaximumNArgs(1)
	resolve := o.flags(cmd)
	cmd.RunE = a.action(func(cmd *cobra.Command, args []string) error {
		var spec *api.QuotaSpec
		if parse != nil {
			var err error
			if spec, err = parse(limits); err != nil {
				return err
			}
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
		path := client.QuotaPath(o.kind, id)
		if parse != nil {
			t, err := c.ChangeQuota(ctx, path, change, spec)
			if _, err := a.wait(ctx, c, t, err); err != nil {
				return err
			}
		}
		q, err := c.GetQuota(ctx, path)
		if err != nil {
			return err
		}
		return a.printQuota(q)
	})
	if parse != nil {
		cmd.Flags().StringVarP(&limits, "limits", "l", "", limitsHelp)
		_ = cmd.MarkFlagRequired("limits")
	}
	return cmd
}

// optArg is the optional single argument, "" if absent.
func optArg(args []string) string {
	if len(args) == 0 {
		return ""
	}
	return args[0]
}

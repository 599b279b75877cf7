package main

import (
	"strings"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
)

// diskKind finds persistent disks by name in the project -p/-t name (or
// the current one), or by id.
var diskKind = projectKind[api.PersistentDisk]{kind: "disk", code: codeDiskNotFound,
	get: (*client.Client).GetDisk, list: (*client.Client).ListDisks,
	id: func(d *api.PersistentDisk) string { return d.ID }, name: func(d *api.PersistentDisk) string { return d.Name }}

var getDisk = getter((*client.Client).GetDisk)

func (a *app) diskCmd() *cobra.Command {
	return a.group("disk", "Manage persistent disks in a project",
		`  photon disk create -n data-1 -f pd-fast -c 10
  photon vm attach-disk web-1 -d data-1
  photon disk list`,
		a.diskCreateCmd(), a.diskListCmd(), a.diskShowCmd(), a.diskDeleteCmd(),
		a.entityTasksCmd("disk", "  photon disk tasks data-1\n  photon disk tasks data-1 --state ERROR", diskKind.object(a, true).resolver, (*client.Client).ListDiskTasks),
	)
}

func (a *app) diskCreateCmd() *cobra.Command {
	var name, flavor, affinities, tags string
	var capacity float64
	cmd := &cobra.Command{
		Use:   "create -n NAME -f FLAVOR -c GB [-a AFFINITIES] [-s TAGS]",
		Short: "Create a persistent disk in the current project (or -p)",
		Long: `Create a persistent disk in a project: the current one (photon project set)
or -p. It is placed on a datastore; -a "vm:ID|NAME" puts it where that VM
can reach it (also disk:ID, host:ID, datastore:ID). It costs its flavor's
cost plus persistent-disk.capacity in GB against the project's quota.

Here -n is the disk's name; the global -n may be given before the command
word (photon -n disk create ...) or as --non-interactive.`,
		Example: `  photon disk create -n data-1 -f pd-fast -c 10
  photon disk create -n data-2 -f pd-fast -c 50 -a "vm:web-1" -s "backup,db" -p p1 -t t1
  photon -n disk create -n data-3 -f pd-fast -c 1   # prints only the id`,
		Args: cobra.MaximumNArgs(1),
	}
	s := a.projectFlags(cmd, true)
	cmd.RunE = a.action(func(cmd *cobra.Command, args []string) error {
		name, err := nameArg("disk", name, args)
		if err != nil {
			return err
		}
		if capacity <= 0 {
			return usagef("disk create needs -c GB, a size above 0")
		}
		aff, err := parseAffinities(affinities)
		if err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		pid, err := s.id(ctx, c)
		if err != nil {
			return err
		}
		spec := &api.DiskCreateSpec{Name: name, Kind: api.KindPersistentDisk, Flavor: flavor,
			CapacityGB: capacity, Tags: splitList(tags)}
		if spec.Affinities, err = a.resolveAffinities(ctx, c, s, aff); err != nil {
			return err
		}
		t, err := c.CreateDisk(ctx, pid, spec)
		return a.create(ctx, c, "disk", name, t, err, getDisk)
	})
	a.nameFlag(cmd, &name, "disk name, e.g. data-1")
	f := cmd.Flags()
	f.StringVarP(&flavor, "flavor", "f", "", "persistent-disk flavor name, e.g. pd-fast")
	f.Float64VarP(&capacity, "capacityGB", "c", 0, "size in GB")
	f.StringVarP(&affinities, "affinities", "a", "", `placement, "KIND:ID, ...", e.g. "vm:web-1"`)
	f.StringVarP(&tags, "tags", "s", "", "comma-separated tags")
	_ = cmd.MarkFlagRequired("flavor")
	return cmd
}

var diskHeader = []string{"ID", "NAME", "STATE", "FLAVOR", "GB", "DATASTORE", "VMS"}

func diskRow(d api.PersistentDisk) []string {
	return []string{d.ID, d.Name, d.State, orDash(d.Flavor), num(d.CapacityGB), orDash(d.Datastore),
		orDash(strings.Join(d.VMs, ","))}
}

func (a *app) diskListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list [-p PROJECT] [--name NAME]",
		Short: "List the persistent disks of the current project (or -p)",
		Long: `List the persistent disks of a project. With -n each line is
ID NAME STATE FLAVOR GB DATASTORE VMS, tab-separated (VMS comma-separated ids).`,
		Example: "  photon disk list\n  photon disk list -p p1 -t t1 -o json",
		Args:    cobra.NoArgs,
	}
	return listInProject(a, cmd, "only the disk with this name", (*client.Client).ListDisks,
		func(ds []api.PersistentDisk) error { return printList(a, ds, diskHeader, diskRow) })
}

func (a *app) diskShowCmd() *cobra.Command {
	return showCmd(a, &cobra.Command{
		Use:     "show ID|NAME [-p PROJECT]",
		Short:   "Show a persistent disk",
		Example: "  photon disk show data-1\n  photon disk show 0193c9b2-7d1e-7c4a-9f00-3b5e2a1c4d5e -o json",
		Args:    exactArgs(1, "ID|NAME"),
	}, diskKind.object(a, true), func(d *api.PersistentDisk) error {
		return a.show(d, diskRow(*d), []string{"ID", d.ID, "Name", d.Name, "State", d.State, "Flavor", orDash(d.Flavor),
			"Capacity", num(d.CapacityGB) + " GB", "Datastore", orDash(d.Datastore),
			"Project", orDash(d.ProjectID), "Attached to", orDash(joinComma(d.VMs)),
			"Tags", orDash(joinComma(d.Tags)), "Cost", orDash(costString(d.Cost))}, nil)
	})
}

func (a *app) diskDeleteCmd() *cobra.Command {
	return deleteCmd(a, &cobra.Command{
		Use:     "delete ID|NAME [-p PROJECT]",
		Short:   "Delete a persistent disk; an attached one is refused (PersistentDiskAttached)",
		Example: "  photon vm detach-disk web-1 -d data-1 && photon disk delete data-1",
		Args:    exactArgs(1, "ID|NAME"),
	}, diskKind.object(a, true), (*client.Client).DeleteDisk, nil)
}

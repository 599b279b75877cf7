package main

import (
	"context"
	"errors"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
)

const codeDatastoreNotFound = "DatastoreNotFound"

// datastore finds a datastore by id, or by name when no datastore has that id.
func (a *app) datastore(ctx context.Context, c *client.Client, arg string) (*api.Datastore, error) {
	d, err := c.GetDatastore(ctx, arg)
	var ae *api.Error
	// The controller answers DatastoreNotFound with status 400 (not 404).
	if !isNotFound(err) && !(errors.As(err, &ae) && ae.Code == codeDatastoreNotFound) {
		return d, err
	}
	ds, err := c.ListDatastores(ctx)
	if err != nil {
		return nil, err
	}
	var match []*api.Datastore
	for i := range ds {
		if ds[i].Name == arg {
			match = append(match, &ds[i])
		}
	}
	switch len(match) {
	case 0:
		return nil, api.Errorf(codeDatastoreNotFound, "no datastore with id or name %q", arg)
	case 1:
		return match[0], nil
	}
	ids := make([]string, len(match))
	for i, m := range match {
		ids[i] = m.ID
	}
	return nil, usagef("%d datastores are named %q: give the id (%s)", len(match), arg, strings.Join(ids, ", "))
}

func (a *app) datastoreCmd() *cobra.Command {
	return a.group("datastore", "Show the datastores hosts report (system administrators)",
		"  photon datastore list\n  photon datastore show local",
		a.datastoreListCmd(), a.datastoreShowCmd())
}

var datastoreHeader = []string{"ID", "NAME", "TYPE", "USED/CAPACITY GB", "HOSTS", "TAGS"}

func datastoreRow(d api.Datastore) []string {
	return []string{d.ID, d.Name, orDash(d.Type), num(d.UsedGB) + "/" + num(d.CapacityGB),
		strconv.Itoa(len(d.HostIDs)), orDash(strings.Join(d.Tags, ","))}
}

func (a *app) datastoreListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list",
		Short: "List datastores with their capacity and how many hosts see them",
		Long: `List datastores. With -n each line is ID NAME TYPE USED/CAPACITY HOSTS TAGS,
tab-separated, sizes in GB, HOSTS a count, TAGS comma-separated.`,
		Example: "  photon datastore list\n  photon datastore list -o json",
		Args:    cobra.NoArgs,
		RunE: a.connected(func(ctx context.Context, c *client.Client, args []string) error {
			ds, err := c.ListDatastores(ctx)
			if err != nil {
				return err
			}
			return printList(a, ds, datastoreHeader, datastoreRow)
		}),
	}
}

func (a *app) datastoreShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show ID|NAME",
		Short:   "Show a datastore and the hosts that see it",
		Example: "  photon datastore show local\n  photon datastore show 0193c9b2-7d1e-7c4a-9f00-3b5e2a1c4d5e -o json",
		Args:    exactArgs(1, "ID|NAME"),
		RunE: a.connected(func(ctx context.Context, c *client.Client, args []string) error {
			d, err := a.datastore(ctx, c, args[0])
			if err != nil {
				return err
			}
			return a.show(d, datastoreRow(*d), []string{"ID", d.ID, "Name", d.Name, "Type", orDash(d.Type),
				"Capacity", num(d.CapacityGB) + " GB", "Used", num(d.UsedGB) + " GB",
				"Hosts", orDash(joinComma(d.HostIDs)), "Tags", orDash(joinComma(d.Tags))}, nil)
		}),
	}
}

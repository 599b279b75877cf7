package main

import (
	"context"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
)

// Virtual networks: `photon router ...`, `photon subnet ...`, and the VM
// commands on its NICs (vm networks, acquire-floating-ip,
// release-floating-ip; vm create -w).

// Error codes of network objects the CLI looks up by name or id.
const (
	codeRouterNotFound = "RouterNotFound"
	codeSubnetNotFound = "SubnetNotFound"
)

// routerKind finds routers by name in the project -p names (or the
// current one), or by id.
var routerKind = projectKind[api.Router]{kind: "router", code: codeRouterNotFound,
	get: (*client.Client).GetRouter, list: (*client.Client).ListRouters,
	id: func(r *api.Router) string { return r.ID }, name: func(r *api.Router) string { return r.Name }}

var (
	getRouter = getter((*client.Client).GetRouter)
	getSubnet = getter((*client.Client).GetSubnet)
)

func subnetID(s *api.Subnet) string   { return s.ID }
func subnetName(s *api.Subnet) string { return s.Name }

// checkCIDR refuses what is not a CIDR before anything is sent (the
// controller checks the rest: inside the router's, no overlap, size).
func checkCIDR(cmd *cobra.Command, cidr string) error {
	if cidr == "" {
		return usagef("%s needs -i CIDR, e.g. -i 10.10.0.0/16", cmd.CommandPath())
	}
	if _, err := netip.ParsePrefix(cidr); err != nil {
		return usagef("-i/--privateIpCidr %q is not a CIDR such as 10.10.1.0/24", cidr)
	}
	return nil
}

func (a *app) routerCmd() *cobra.Command {
	c := a.group("router", "Manage a project's routers: the address space its subnets share",
		`  photon router create -n r1 -i 10.10.0.0/16 -t t1 -p p1
  photon subnet create -n web -r r1 -i 10.10.1.0/24 -t NAT --dns 1.1.1.1
  photon router show r1`,
		a.routerCreateCmd(), a.routerListCmd(), a.routerShowCmd(), a.routerUpdateCmd(), a.routerDeleteCmd(),
		a.entityTasksCmd("router", "  photon router tasks r1\n  photon router tasks r1 --state ERROR", routerKind.object(a, true).resolver, (*client.Client).ListRouterTasks),
	)
	c.Long = `A router belongs to a project and holds a private address space (its
privateIpCidr, e.g. 10.10.0.0/16). Its subnets take their ranges from it;
VMs on subnets of one router reach each other through it, wherever they
run, and VMs of other routers (other projects) do not reach them. Projects
may use the same ranges: their routers keep them apart.

Routers are found by name in the current project (photon project set) or
the one -p names, or by id.`
	return c
}

func (a *app) routerCreateCmd() *cobra.Command {
	var name, cidr string
	cmd := &cobra.Command{
		Use:   "create -n NAME -i CIDR [-p PROJECT] [-t TENANT]",
		Short: "Create a router in the current project (or -p)",
		Long: `Create a router in a project: the current one (photon project set) or -p.
-i is its private address space, from which its subnets take their ranges;
host bits are cleared (192.168.0.1/24 is 192.168.0.0/24).

Here -n is the router's name; the global -n may be given before the command
word (photon -n router create ...) or as --non-interactive.`,
		Example: `  photon router create -n r1 -i 10.10.0.0/16
  photon router create -n r1 -i 10.10.0.0/16 -t t1 -p p1
  photon -n router create -n r2 -i 10.20.0.0/16   # prints only the id`,
		Args: cobra.MaximumNArgs(1),
	}
	s := a.projectFlags(cmd, true)
	cmd.RunE = a.action(func(cmd *cobra.Command, args []string) error {
		name, err := nameArg("router", name, args)
		if err != nil {
			return err
		}
		if err := checkCIDR(cmd, cidr); err != nil {
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
		t, err := c.CreateRouter(ctx, pid, &api.RouterCreateSpec{Name: name, PrivateIPCidr: cidr})
		return a.create(ctx, c, "router", name, t, err, getRouter)
	})
	a.nameFlag(cmd, &name, "router name, e.g. r1")
	cmd.Flags().StringVarP(&cidr, "privateIpCidr", "i", "", "the router's private address space, e.g. 10.10.0.0/16")
	return cmd
}

var routerHeader = []string{"ID", "NAME", "CIDR", "STATE", "DEFAULT"}

func routerRow(r api.Router) []string {
	return []string{r.ID, r.Name, orDash(r.PrivateIPCidr), orDash(r.State), strconv.FormatBool(r.IsDefault)}
}

func (a *app) routerListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list [-p PROJECT] [--name NAME]",
		Short: "List the routers of the current project (or -p)",
		Long: `List the routers of a project. With -n each line is ID NAME CIDR STATE
DEFAULT, tab-separated (DEFAULT true or false).`,
		Example: "  photon router list\n  photon router list -p p1 -t t1 -o json",
		Args:    cobra.NoArgs,
	}
	return listInProject(a, cmd, "only the router with this name", (*client.Client).ListRouters,
		func(rs []api.Router) error { return printList(a, rs, routerHeader, routerRow) })
}

func (a *app) routerShowCmd() *cobra.Command {
	return findCmd(a, &cobra.Command{
		Use:   "show ID|NAME [-p PROJECT]",
		Short: "Show a router and its subnets",
		Long: `Show a router and its subnets. With -n the line is ID NAME CIDR STATE
DEFAULT, tab-separated; -o json prints the router.`,
		Example: "  photon router show r1\n  photon router show r1 -p p1 -t t1 -o json",
		Args:    exactArgs(1, "ID|NAME"),
	}, routerKind.object(a, true), func(ctx context.Context, c *client.Client, r *api.Router) error {
		return a.show(r, routerRow(*r), []string{"ID", r.ID, "Name", r.Name, "Private CIDR", orDash(r.PrivateIPCidr),
			"State", orDash(r.State), "Default", strconv.FormatBool(r.IsDefault), "Project", orDash(r.ProjectID)}, func() error {
			subnets, err := c.ListSubnets(ctx, r.ID, "")
			if err != nil {
				return err
			}
			a.line("\nSubnets:")
			rows := make([][]string, 0, len(subnets))
			for _, s := range subnets {
				rows = append(rows, []string{s.Name, s.ID, orDash(s.PrivateIPCidr), orDash(s.Type), orDash(s.State), strconv.FormatBool(s.IsDefault)})
			}
			return a.table([]string{"NAME", "ID", "CIDR", "TYPE", "STATE", "DEFAULT"}, rows)
		})
	})
}

// renameCmd is `<kind> update ID|NAME -n NEWNAME`.
func renameCmd[T any](a *app, o object[T], example string,
	rename func(c *client.Client, ctx context.Context, id, name string) (*api.Task, error),
	get func(c *client.Client) func(context.Context, string) (any, error)) *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "update ID|NAME -n NEWNAME",
		Short: "Rename a " + o.kind,
		Long: `Rename a ` + o.kind + `. Here -n is the new name; the global -n may be given
before the command word (photon -n ` + o.kind + ` update ...) or as --non-interactive.`,
		Example: example,
		Args:    exactArgs(1, "ID|NAME"),
	}
	a.nameFlag(cmd, &name, "the new name")
	var old string
	return changeCmd(a, cmd, o,
		func(cmd *cobra.Command) error {
			if name == "" {
				return usagef("%s needs -n NEWNAME", cmd.CommandPath())
			}
			return nil
		},
		func(ctx context.Context, c *client.Client, obj *T) (*api.Task, error) {
			old = o.name(obj)
			return rename(c, ctx, o.id(obj), name)
		},
		func(*T) string { return "Renamed " + o.kind + " " + old + " to " + name }, get)
}

func (a *app) routerUpdateCmd() *cobra.Command {
	return renameCmd(a, routerKind.object(a, true), "  photon router update r1 -n r2", (*client.Client).RenameRouter, getRouter)
}

func (a *app) routerDeleteCmd() *cobra.Command {
	return deleteCmd(a, &cobra.Command{
		Use:     "delete ID|NAME [-p PROJECT]",
		Short:   "Delete a router; one that still has subnets is refused (ContainerNotEmpty)",
		Example: "  photon subnet delete web && photon router delete r1",
		Args:    exactArgs(1, "ID|NAME"),
	}, routerKind.object(a, true), (*client.Client).DeleteRouter, nil)
}

// subnetScope is where commands look subnets up by name: the router
// -r/--router names, else every router of the project -p names (or the
// current one).
type subnetScope struct {
	project *projectScope
	router  string
}

// subnetFlags adds -r/--router, -p/--project and --tenant (long only: -t
// is a subnet's type) to cmd.
func (a *app) subnetFlags(cmd *cobra.Command) *subnetScope {
	ss := &subnetScope{project: a.projectFlags(cmd, false)}
	cmd.Flags().StringVarP(&ss.router, "router", "r", "", "router name or id (default: every router of the project)")
	return ss
}

// routers are the routers names are looked up in: -r's, else the
// project's; nil when no project is given or current (ids only then).
func (ss *subnetScope) routers(ctx context.Context, c *client.Client) ([]api.Router, error) {
	if ss.router != "" {
		r, err := routerKind.find(ctx, c, ss.project, ss.router)
		if err != nil {
			return nil, err
		}
		return []api.Router{*r}, nil
	}
	pid, err := ss.project.known(ctx, c)
	if err != nil || pid == "" {
		return nil, err
	}
	return c.ListRouters(ctx, pid, "")
}

func (ss *subnetScope) describe() string {
	if ss.router != "" {
		return "router " + ss.router
	}
	return ss.project.describe()
}

// find finds the subnet arg names: by name among the scope's routers'
// subnets, or by id.
func (ss *subnetScope) find(ctx context.Context, c *client.Client, arg string) (*api.Subnet, error) {
	f := finder[api.Subnet]{what: "subnet", code: codeSubnetNotFound, where: ss.describe(), get: c.GetSubnet,
		name: subnetName, id: subnetID}
	if nameShaped(arg) {
		rs, err := ss.routers(ctx, c)
		if err != nil {
			return nil, err
		}
		if rs != nil {
			f.list = func(ctx context.Context, name string) ([]api.Subnet, error) {
				var all []api.Subnet
				for _, r := range rs {
					l, err := c.ListSubnets(ctx, r.ID, name)
					if err != nil {
						return nil, err
					}
					all = append(all, l...)
				}
				return all, nil
			}
		}
	}
	return f.find(ctx, arg)
}

// subnetObject names a subnet in commands, with -r/-p/--tenant.
func (a *app) subnetObject() object[api.Subnet] {
	return object[api.Subnet]{kind: "subnet", id: subnetID, name: subnetName,
		flags: func(cmd *cobra.Command) findFunc[api.Subnet] { return a.subnetFlags(cmd).find }}
}

func (a *app) subnetCmd() *cobra.Command {
	o := a.subnetObject()
	c := a.group("subnet", "Manage subnets: a router's layer-2 networks that VMs get addresses on",
		`  photon subnet create -n web -r r1 -i 10.10.1.0/24 -t NAT --dns 1.1.1.1
  photon subnet create -n db -r r1 -i 10.10.2.0/24 -t NO_NAT
  photon vm create -n web1 -f small -i demo -d "boot eph boot=true" -w web --start
  photon subnet list`,
		a.subnetCreateCmd(), a.subnetListCmd(), a.subnetShowCmd(),
		renameCmd(a, o, "  photon subnet update web -n frontend", (*client.Client).RenameSubnet, getSubnet),
		deleteCmd(a, &cobra.Command{
			Use:     "delete ID|NAME [-r ROUTER] [-p PROJECT]",
			Short:   "Delete a subnet; one that VMs still have NICs on is refused (ContainerNotEmpty)",
			Example: "  photon subnet delete db\n  photon subnet delete web -r r1 -p p1 --tenant t1",
			Args:    exactArgs(1, "ID|NAME"),
		}, o, (*client.Client).DeleteSubnet, nil),
		changeCmd(a, &cobra.Command{
			Use:   "set-default ID|NAME [-r ROUTER] [-p PROJECT]",
			Short: "Make a subnet its project's default: VMs created without -w get a NIC on it",
			Example: `  photon subnet set-default web
  photon vm create -n web2 -f small -i demo -d "boot eph boot=true"   # on web`,
			Args: exactArgs(1, "ID|NAME"),
		}, o, nil,
			func(ctx context.Context, c *client.Client, s *api.Subnet) (*api.Task, error) {
				return c.SetDefaultSubnet(ctx, s.ID)
			},
			func(s *api.Subnet) string { return "Made subnet " + s.Name + " the project's default" }, getSubnet),
		a.entityTasksCmd("subnet", "  photon subnet tasks web\n  photon subnet tasks web --state ERROR", o.resolver, (*client.Client).ListSubnetTasks),
	)
	c.Long = `A subnet is a layer-2 network of a router, with a range inside the
router's (at least a /29). Each VM NIC on it gets an address from the
controller, by DHCP and in its cloud-init seed; the first address is the
gateway, in the router. A NAT subnet reaches the outside through its host;
a NO_NAT one reaches only the router's other subnets.

Subnets are found by name among the subnets of the router -r names, else of
every router of the current project (or -p), or by id. In subnet commands
-t is a subnet's type: give the tenant of -p as --tenant.`
	return c
}

// subnetTypes maps what -t accepts to a subnet type.
var subnetTypes = map[string]string{"NAT": api.SubnetNAT, "NO_NAT": api.SubnetNoNAT, "NO-NAT": api.SubnetNoNAT, "NONAT": api.SubnetNoNAT}

func (a *app) subnetCreateCmd() *cobra.Command {
	var name, cidr, typ, dns, desc string
	cmd := &cobra.Command{
		Use:   "create -n NAME -r ROUTER -i CIDR [-t NAT|NO_NAT] [--dns ADDRESSES] [-d DESCRIPTION]",
		Short: "Create a subnet of a router",
		Long: `Create a subnet of a router: -r names it (by name in the current project,
or -p, or by id); without -r, the project's only router, or its default one.
-i is the subnet's range, inside the router's, at least a /29, overlapping
none of the router's other subnets. -t NAT (the default) lets its VMs reach
the outside through their host; NO_NAT keeps them inside the router.
--dns lists the DNS servers VMs are given, comma-separated.

Here -n is the subnet's name, -t its type and -d its description; the
global -n and -d may be given before the command word (photon -n subnet
create ...) or as --non-interactive and --detail, and the tenant as --tenant.`,
		Example: `  photon subnet create -n web -r r1 -i 10.10.1.0/24 -t NAT --dns 1.1.1.1
  photon subnet create -n db -r r1 -i 10.10.2.0/24 -t NO_NAT -d "databases"
  photon subnet create -n ops -r r1 -i 10.10.3.0/24 --dns 1.1.1.1,8.8.8.8 -p p1 --tenant t1
  photon -n subnet create -n batch -r r1 -i 10.10.4.0/24   # prints only the id`,
		Args: cobra.MaximumNArgs(1),
	}
	ss := a.subnetFlags(cmd)
	cmd.Flags().Lookup("router").Usage = "router name or id (default: the project's only router, or its default one)"
	cmd.RunE = a.action(func(cmd *cobra.Command, args []string) error {
		name, err := nameArg("subnet", name, args)
		if err != nil {
			return err
		}
		if err := checkCIDR(cmd, cidr); err != nil {
			return err
		}
		spec := &api.SubnetCreateSpec{Name: name, Description: desc, PrivateIPCidr: cidr}
		if typ != "" {
			if spec.Type = subnetTypes[strings.ToUpper(strings.TrimSpace(typ))]; spec.Type == "" {
				return usagef("-t/--type %q: want NAT or NO_NAT", typ)
			}
		}
		for _, d := range splitList(dns) {
			if _, err := netip.ParseAddr(d); err != nil {
				return usagef("--dns: %q is not an IP address, e.g. 1.1.1.1", d)
			}
			spec.DNSServerAddresses = append(spec.DNSServerAddresses, d)
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		r, err := ss.createRouter(ctx, c)
		if err != nil {
			return err
		}
		t, err := c.CreateSubnet(ctx, r.ID, spec)
		return a.create(ctx, c, "subnet", name, t, err, getSubnet)
	})
	a.nameFlag(cmd, &name, "subnet name, e.g. web")
	a.detailLong(cmd)
	f := cmd.Flags()
	f.StringVarP(&cidr, "privateIpCidr", "i", "", "the subnet's range, inside the router's, e.g. 10.10.1.0/24")
	f.StringVarP(&typ, "type", "t", "", "NAT (default: reaches the outside) or NO_NAT")
	f.StringVar(&dns, "dns", "", "DNS servers given to VMs, comma-separated, e.g. 1.1.1.1,8.8.8.8")
	f.StringVarP(&desc, "description", "d", "", "free text")
	return cmd
}

// createRouter is the router a subnet is created in: -r's, else the
// project's only router or its default one.
func (ss *subnetScope) createRouter(ctx context.Context, c *client.Client) (*api.Router, error) {
	if ss.router != "" {
		return routerKind.find(ctx, c, ss.project, ss.router)
	}
	pid, err := ss.project.id(ctx, c)
	if err != nil {
		return nil, err
	}
	rs, err := c.ListRouters(ctx, pid, "")
	if err != nil {
		return nil, err
	}
	var names []string
	for i := range rs {
		if rs[i].IsDefault {
			return &rs[i], nil
		}
		names = append(names, rs[i].Name)
	}
	switch len(rs) {
	case 0:
		return nil, usagef("%s has no router: create one with 'photon router create -n r1 -i 10.10.0.0/16'", ss.project.describe())
	case 1:
		return &rs[0], nil
	}
	return nil, usagef("give -r ROUTER: %s has routers %s", ss.project.describe(), strings.Join(names, ", "))
}

func (a *app) subnetHeader() []string {
	h := []string{"ID", "NAME", "ROUTER", "CIDR", "TYPE", "STATE", "DEFAULT", "DNS"}
	if a.detail {
		h = append(h, "GATEWAY", "DESCRIPTION")
	}
	return h
}

func (a *app) subnetRow(s api.Subnet, router string) []string {
	r := []string{s.ID, s.Name, orDash(router), orDash(s.PrivateIPCidr), orDash(s.Type), orDash(s.State),
		strconv.FormatBool(s.IsDefault), orDash(strings.Join(s.DNSServerAddresses, ","))}
	if a.detail {
		r = append(r, orDash(s.ReservedIPs["GATEWAY"]), orDash(s.Description))
	}
	return r
}

func (a *app) subnetListCmd() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "list [-r ROUTER] [-p PROJECT] [--name NAME]",
		Short: "List the subnets of a router, or of every router of the current project (or -p)",
		Long: `List subnets: those of the router -r names, else those of every router of
the project. With -n each line is ID NAME ROUTER CIDR TYPE STATE DEFAULT DNS,
tab-separated (ROUTER the router's name, DNS comma-separated); -d adds
GATEWAY and DESCRIPTION.`,
		Example: "  photon subnet list\n  photon subnet list -r r1\n  photon subnet list -p p1 --tenant t1 -o json",
		Args:    cobra.NoArgs,
	}
	ss := a.subnetFlags(cmd)
	cmd.Flags().StringVar(&name, "name", "", "only the subnet with this name")
	cmd.RunE = a.connected(func(ctx context.Context, c *client.Client, args []string) error {
		var rs []api.Router
		if ss.router == "" {
			pid, err := ss.project.id(ctx, c)
			if err != nil {
				return err
			}
			if rs, err = c.ListRouters(ctx, pid, ""); err != nil {
				return err
			}
		} else {
			var err error
			if rs, err = ss.routers(ctx, c); err != nil {
				return err
			}
		}
		subnets := []api.Subnet{}
		routerName := map[string]string{}
		for _, r := range rs {
			l, err := c.ListSubnets(ctx, r.ID, name)
			if err != nil {
				return err
			}
			subnets = append(subnets, l...)
			routerName[r.ID] = r.Name
		}
		return printList(a, subnets, a.subnetHeader(), func(s api.Subnet) []string {
			return a.subnetRow(s, routerName[s.RouterID])
		})
	})
	return cmd
}

func (a *app) subnetShowCmd() *cobra.Command {
	return findCmd(a, &cobra.Command{
		Use:   "show ID|NAME [-r ROUTER] [-p PROJECT]",
		Short: "Show a subnet",
		Long: `Show a subnet: its range, type, gateway and reserved addresses, DNS
servers. With -n the line is as in 'subnet list -n' (ROUTER the router's id).`,
		Example: "  photon subnet show web\n  photon subnet show web -r r1 -o json",
		Args:    exactArgs(1, "ID|NAME"),
	}, a.subnetObject(), func(ctx context.Context, c *client.Client, s *api.Subnet) error {
		router := orDash(s.RouterID)
		if !a.jsonOut() && !a.plain() && s.RouterID != "" {
			if r, err := c.GetRouter(ctx, s.RouterID); err == nil {
				router = r.Name + " (" + r.ID + ")"
			}
		}
		kv := []string{"ID", s.ID, "Name", s.Name}
		if s.Description != "" {
			kv = append(kv, "Description", s.Description)
		}
		kv = append(kv, "Router", router, "Private CIDR", orDash(s.PrivateIPCidr), "Type", orDash(s.Type),
			"State", orDash(s.State), "Default", strconv.FormatBool(s.IsDefault),
			"Gateway", orDash(s.ReservedIPs["GATEWAY"]), "Reserved IPs", kvString(s.ReservedIPs),
			"DNS servers", orDash(joinComma(s.DNSServerAddresses)), "Project", orDash(s.ProjectID))
		if s.VNI != 0 {
			kv = append(kv, "VXLAN id", strconv.FormatUint(uint64(s.VNI), 10))
		}
		return a.show(s, a.subnetRow(*s, s.RouterID), kv, nil)
	})
}

// resolveSubnets turns subnet names or ids given to flag (vm create -w,
// --network) into ids: a name
// is looked up among the subnets of every router of the project pid (none
// when pid is ""), else the argument is taken as an id (and read, so that
// a typo is refused here with a clear message).
func resolveSubnets(ctx context.Context, c *client.Client, pid, where, flag string, args []string) ([]string, error) {
	if len(args) == 0 {
		return nil, nil
	}
	var all []api.Subnet
	loaded := false
	ids := make([]string, 0, len(args))
	for _, arg := range args {
		if nameShaped(arg) && !loaded && pid != "" {
			rs, err := c.ListRouters(ctx, pid, "")
			if err != nil {
				return nil, err
			}
			for _, r := range rs {
				l, err := c.ListSubnets(ctx, r.ID, "")
				if err != nil {
					return nil, err
				}
				all = append(all, l...)
			}
			loaded = true
		}
		var byName, byID []string
		for _, s := range all {
			if s.Name == arg {
				byName = append(byName, s.ID)
			}
			if s.ID == arg {
				byID = append(byID, s.ID)
			}
		}
		switch {
		case len(byName) == 1:
			ids = append(ids, byName[0])
			continue
		case len(byName) > 1:
			return nil, usagef("%s: %d subnets in %s are named %q: give the id (%s)", flag, len(byName), where, arg, strings.Join(byName, ", "))
		case len(byID) == 1:
			ids = append(ids, arg)
			continue
		}
		s, err := c.GetSubnet(ctx, arg)
		if isNotFound(err) {
			return nil, api.Errorf(codeSubnetNotFound, "%s: no subnet named %q in %s or with that id", flag, arg, where)
		}
		if err != nil {
			return nil, err
		}
		ids = append(ids, s.ID)
	}
	return ids, nil
}

func (a *app) vmNetworksCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "networks ID|NAME [-p PROJECT]",
		Short: "List a VM's NICs: subnet, MAC address, IP address, netmask, connected",
		Long: `List a VM's NICs (GET /v1/vms/{id}/subnets, a GET_NETWORKS task): the
subnet each is on (by name when it can be read, else its id), its MAC
address, IP address, netmask and whether it is connected; then the VM's
floating IP, if it has one. With -n each line is SUBNET_ID MAC IP NETMASK
CONNECTED, tab-separated, as Photon's CLI printed them; -d adds the subnet
id to the table; -o json prints the list of networkConnections.`,
		Example: "  photon vm networks web1\n  photon -n vm networks web1 | cut -f3   # the addresses",
		Args:    exactArgs(1, "ID|NAME"),
	}
	return findCmd(a, cmd, vmKind.object(a, true), func(ctx context.Context, c *client.Client, v *api.VM) error {
		conns, err := c.VMNetworks(ctx, v.ID)
		if err != nil {
			return err
		}
		if a.jsonOut() {
			return a.printJSON(conns)
		}
		names := map[string]string{}
		if !a.plain() {
			for _, n := range conns {
				if _, done := names[n.Network]; done || n.Network == "" {
					continue
				}
				names[n.Network] = n.Network
				if s, err := c.GetSubnet(ctx, n.Network); err == nil && s.Name != "" {
					names[n.Network] = s.Name
				}
			}
		}
		header := []string{"NETWORK", "MAC", "IP", "NETMASK", "CONNECTED"}
		if a.detail {
			header = append(header, "SUBNET ID")
		}
		rows := make([][]string, 0, len(conns))
		for _, n := range conns {
			first := n.Network
			if !a.plain() {
				first = names[n.Network]
			}
			r := []string{orDash(first), orDash(n.MacAddress), orDash(n.IPAddress), orDash(n.Netmask), orDash(n.IsConnected)}
			if a.detail && !a.plain() {
				r = append(r, orDash(n.Network))
			}
			rows = append(rows, r)
		}
		if err := a.table(header, rows); err != nil {
			return err
		}
		if len(conns) == 0 {
			a.say("VM %s has no NIC.", v.Name)
		}
		if v.FloatingIP != "" {
			a.say("\nFloating IP: %s", v.FloatingIP)
		}
		return nil
	})
}

func (a *app) vmAcquireFloatingIPCmd() *cobra.Command {
	var network string
	cmd := &cobra.Command{
		Use:   "acquire-floating-ip ID|NAME [--network SUBNET]",
		Short: "Give a VM a floating IP: an address reachable from outside the cloud",
		Long: `Give a VM a floating IP from the controller's range: traffic from outside
the cloud to that address reaches the VM's address on the subnet --network
names (a subnet name in the VM's project, or an id; default: its first NIC).
With -n only the floating IP is printed; -o json prints the VM.`,
		Example: "  photon vm acquire-floating-ip web1\n  photon vm acquire-floating-ip web1 --network web",
		Args:    exactArgs(1, "ID|NAME"),
	}
	cmd.Flags().StringVar(&network, "network", "", "the VM's subnet the address maps to (name or id; default: the first NIC's)")
	return objectCmd(a, cmd, vmKind.object(a, true), nil,
		func(ctx context.Context, c *client.Client, v *api.VM) (*api.Task, error) {
			var nid string
			if network != "" {
				ids, err := resolveSubnets(ctx, c, v.ProjectID, "the VM's project", "--network", []string{network})
				if err != nil {
					return nil, err
				}
				nid = ids[0]
			}
			return c.AcquireFloatingIP(ctx, v.ID, nid)
		},
		func(ctx context.Context, c *client.Client, v *api.VM, _ *api.Task) error {
			now, err := c.GetVM(ctx, v.ID)
			if err != nil {
				return err
			}
			switch {
			case a.jsonOut():
				return a.printJSON(now)
			case a.plain():
				a.line("%s", now.FloatingIP)
			default:
				a.line("Acquired floating IP %s for VM %s, ID: %s", orDash(now.FloatingIP), now.Name, now.ID)
			}
			return nil
		})
}

func (a *app) vmReleaseFloatingIPCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "release-floating-ip ID|NAME",
		Short:   "Take a VM's floating IP back",
		Long:    `Take a VM's floating IP back; it is no longer reachable at it. With -n the VM's id is printed; -o json prints the VM.`,
		Example: "  photon vm release-floating-ip web1",
		Args:    exactArgs(1, "ID|NAME"),
	}
	return changeCmd(a, cmd, vmKind.object(a, true), nil,
		func(ctx context.Context, c *client.Client, v *api.VM) (*api.Task, error) {
			return c.ReleaseFloatingIP(ctx, v.ID)
		},
		func(v *api.VM) string {
			if v.FloatingIP == "" {
				return "Released the floating IP of VM " + v.Name
			}
			return fmt.Sprintf("Released floating IP %s of VM %s", v.FloatingIP, v.Name)
		}, getVM)
}

package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
)

// Error codes of objects the CLI looks up by name or id.
const (
	codeVMNotFound    = "VmNotFound"
	codeDiskNotFound  = "DiskNotFound"
	codeHostNotFound  = "HostNotFound"
	codeImageNotFound = "ImageNotFound"
)

// projectScope holds the -p/--project and -t/--tenant flags of commands that
// act in a project (VMs, disks): the project to create in, list, or look
// names up in.
type projectScope struct {
	a       *app
	project string
	tenant  string
}

// projectFlags adds -p/--project and --tenant to cmd; --tenant has the short
// form -t unless the command uses -t for something else (vm set-tag).
func (a *app) projectFlags(cmd *cobra.Command, tenantShort bool) *projectScope {
	s := &projectScope{a: a}
	cmd.Flags().StringVarP(&s.project, "project", "p", "", "project name or id (default: the current project, see 'photon project set')")
	short := "t"
	if !tenantShort {
		short = ""
	}
	cmd.Flags().StringVarP(&s.tenant, "tenant", short, "", "tenant of the project -p names (default: the current tenant)")
	return s
}

// id is the project's id: -p's, else the current project's.
func (s *projectScope) id(ctx context.Context, c *client.Client) (string, error) {
	if s.project == "" {
		if s.a.cfg.Project == nil {
			return "", usagef("no project given and no current project: give -p PROJECT, or run 'photon project set NAME'")
		}
		return s.a.cfg.Project.ID, nil
	}
	p, err := s.a.project(ctx, c, s.tenant, s.project)
	if err != nil {
		return "", err
	}
	return p.ID, nil
}

// known is id, or "" when no project is given and none is current: names
// cannot be looked up then, only ids.
func (s *projectScope) known(ctx context.Context, c *client.Client) (string, error) {
	if s.project == "" && s.a.cfg.Project == nil {
		return "", nil
	}
	return s.id(ctx, c)
}

// describe names the project for messages.
func (s *projectScope) describe() string {
	switch {
	case s.project != "":
		return "project " + s.project
	case s.a.cfg.Project != nil:
		return "project " + s.a.cfg.Project.Name
	}
	return "the project"
}

// finder looks an object up by name (in a list, when there is one to look
// in) or by id.
type finder[T any] struct {
	what string // "VM", "disk"
	code string // error code when nothing matches, e.g. VmNotFound
	// where describes the list names are looked up in, e.g. "project p1".
	where string
	// list lists objects named name; nil when names cannot be looked up.
	list func(ctx context.Context, name string) ([]T, error)
	get  func(ctx context.Context, id string) (*T, error)
	name func(*T) string
	id   func(*T) string
}

// find returns the object arg names: the one so named, else the one with
// that id. Several objects of the same name are a usage error.
func (f finder[T]) find(ctx context.Context, arg string) (*T, error) {
	if arg == "" {
		return nil, usagef("name a %s (ID or NAME)", f.what)
	}
	if f.list != nil && nameShaped(arg) {
		items, err := f.list(ctx, arg)
		if err != nil {
			return nil, err
		}
		var match []*T
		for i := range items {
			if f.name(&items[i]) == arg {
				match = append(match, &items[i])
			}
		}
		switch len(match) {
		case 0:
		case 1:
			return match[0], nil
		default:
			ids := make([]string, len(match))
			for i, m := range match {
				ids[i] = f.id(m)
			}
			return nil, usagef("%d %ss in %s are named %q: give the id (%s)", len(match), f.what, f.where, arg, strings.Join(ids, ", "))
		}
	}
	obj, err := f.get(ctx, arg)
	if isNotFound(err) {
		if f.list == nil {
			return nil, api.Errorf(f.code, "no %s with id %q (to find one by name, give -p PROJECT or run 'photon project set NAME')", f.what, arg)
		}
		return nil, api.Errorf(f.code, "no %s named %q in %s or with that id", f.what, arg, f.where)
	}
	return obj, err
}

// vm finds a VM by name in the scope's project, or by id.
func (a *app) vm(ctx context.Context, c *client.Client, s *projectScope, arg string) (*api.VM, error) {
	f := finder[api.VM]{what: "VM", code: codeVMNotFound, where: s.describe(), get: c.GetVM,
		name: func(v *api.VM) string { return v.Name }, id: func(v *api.VM) string { return v.ID }}
	if nameShaped(arg) {
		pid, err := s.known(ctx, c)
		if err != nil {
			return nil, err
		}
		if pid != "" {
			f.list = func(ctx context.Context, name string) ([]api.VM, error) { return c.ListVMs(ctx, pid, name) }
		}
	}
	return f.find(ctx, arg)
}

// vmResolver adds -p/-t to cmd and resolves a VM argument.
func (a *app) vmResolver(cmd *cobra.Command) idResolver {
	s := a.projectFlags(cmd, true)
	return func(ctx context.Context, c *client.Client, arg string) (string, error) {
		vm, err := a.vm(ctx, c, s, arg)
		if err != nil {
			return "", err
		}
		return vm.ID, nil
	}
}

// done prints the outcome of an operation on an object: the object as it is
// now (-o json), its id (-n) or the sentence.
func (a *app) done(ctx context.Context, sentence, id string, get func(context.Context, string) (any, error)) error {
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
		a.line("%s, ID: %s", sentence, id)
	}
	return nil
}

// target is the object an operation acts on.
type target struct{ id, name string }

// opCmd is `<kind> <verb> ID|NAME`: it resolves the object, starts the
// operation, waits for its task and prints the outcome (past names it,
// e.g. "Started VM"). flags adds the command's flags and returns the resolver.
func (a *app) opCmd(use, short, example, past string,
	flags func(*cobra.Command) func(context.Context, *client.Client, string) (target, error),
	call func(c *client.Client, ctx context.Context, id string) (*api.Task, error),
	get func(c *client.Client) func(context.Context, string) (any, error)) *cobra.Command {
	cmd := &cobra.Command{Use: use + " ID|NAME", Short: short, Example: example, Args: exactArgs(1, "ID|NAME")}
	resolve := flags(cmd)
	cmd.RunE = a.action(func(cmd *cobra.Command, args []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		obj, err := resolve(ctx, c, args[0])
		if err != nil {
			return err
		}
		t, err := call(c, ctx, obj.id)
		if _, err := a.wait(ctx, c, t, err); err != nil {
			return err
		}
		return a.done(ctx, past+" "+obj.name, obj.id, get(c))
	})
	return cmd
}

// vmTarget adds -p/-t to cmd and resolves a VM for opCmd.
func (a *app) vmTarget(cmd *cobra.Command) func(context.Context, *client.Client, string) (target, error) {
	s := a.projectFlags(cmd, true)
	return func(ctx context.Context, c *client.Client, arg string) (target, error) {
		vm, err := a.vm(ctx, c, s, arg)
		if err != nil {
			return target{}, err
		}
		return target{id: vm.ID, name: vm.Name}, nil
	}
}

// getVM reads a VM, for done and created.
func getVM(c *client.Client) func(context.Context, string) (any, error) {
	return func(ctx context.Context, id string) (any, error) { return c.GetVM(ctx, id) }
}

func (a *app) vmCmd() *cobra.Command {
	op := func(verb, short, past string, call func(*client.Client, context.Context, string) (*api.Task, error)) *cobra.Command {
		return a.opCmd(verb, short, "  photon vm "+verb+" web-1\n  photon vm "+verb+" web-1 -p p1 -t t1", past+" VM",
			a.vmTarget, call, getVM)
	}
	return a.group("vm", "Manage VMs in a project: create, power, disks, metadata",
		`  photon project set p1 -t t1
  photon vm create -n web-1 -f small -i ubuntu -d "boot eph-small boot=true" --start
  photon vm list`,
		a.vmCreateCmd(), a.vmListCmd(), a.vmShowCmd(), a.vmDeleteCmd(),
		a.entityTasksCmd("VM", "  photon vm tasks web-1\n  photon vm tasks web-1 --state ERROR", a.vmResolver, (*client.Client).ListVMTasks),
		op("start", "Start (boot) a VM", "Started", (*client.Client).StartVM),
		op("stop", "Stop (power off) a VM", "Stopped", (*client.Client).StopVM),
		op("restart", "Restart a VM", "Restarted", (*client.Client).RestartVM),
		op("suspend", "Suspend a running VM", "Suspended", (*client.Client).SuspendVM),
		op("resume", "Resume a suspended VM", "Resumed", (*client.Client).ResumeVM),
		a.vmDiskCmd("attach-disk", "Attach a detached persistent disk to a VM", "Attached disk %s to VM %s", (*client.Client).AttachDisk),
		a.vmDiskCmd("detach-disk", "Detach a persistent disk from a VM", "Detached disk %s from VM %s", (*client.Client).DetachDisk),
		a.vmSetMetadataCmd(), a.vmSetTagCmd(),
	)
}

// nameFlag registers -n/--name on a create command, and the global
// --non-interactive in its long form only (the global -n would clash).
func (a *app) nameFlag(cmd *cobra.Command, name *string, help string) {
	cmd.Flags().BoolVar(&a.nonInteractive, "non-interactive", false, "plain output: print only the new id")
	cmd.Flags().StringVarP(name, "name", "n", "", help)
}

// detailLong registers the global --detail in its long form only, for
// commands whose -d means something else.
func (a *app) detailLong(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&a.detail, "detail", false, "show more detail")
}

// nameArg takes a create command's NAME from -n or from its one optional argument.
func nameArg(kind, flag string, args []string) (string, error) {
	if len(args) == 1 {
		if flag != "" && flag != args[0] {
			return "", usagef("two names given: %q and -n %q", args[0], flag)
		}
		flag = args[0]
	}
	if flag == "" {
		return "", usagef("%s create needs -n NAME", kind)
	}
	return flag, nil
}

const disksHelp = `disks, "NAME FLAVOR [boot=true] [GB] [ephemeral-disk|persistent-disk], ...", ` +
	`e.g. "disk-1 eph-small boot=true, disk-2 pd-fast 10"`

func (a *app) vmCreateCmd() *cobra.Command {
	var name, flavor, image, disks, affinities, env, tags, subnets string
	var start bool
	cmd := &cobra.Command{
		Use:   "create -n NAME -f FLAVOR -d DISKS [-i IMAGE] [-a AFFINITIES] [-e ENV] [--start]",
		Short: "Create a VM in the current project (or -p); --start also boots it",
		Long: `Create a VM in a project: the current one (photon project set) or -p.
The VM is placed on a host, its disks are made and the capacity it needs is
reserved; it ends STOPPED unless --start boots it too (the command then waits
for both tasks).

-d lists the disks made with the VM, "NAME FLAVOR [boot=true] [GB], ...".
One disk must be the boot disk; a boot disk without GB takes the image's
size. A disk's kind is its flavor's (ephemeral-disk, made and deleted with
the VM, unless the flavor is a persistent-disk one); write the kind in the
entry to choose when a flavor name exists for both.

-a places the VM near other objects, "KIND:ID|NAME, ...": disk:ID (a host
that sees the disk's datastore), vm:ID (the same host as that VM), host:ID or
host:ADDRESS, datastore:ID.

Here -n is the VM's name and -d its disks; the global -n and -d may be given
before the command word (photon -n vm create ...) or as --non-interactive
and --detail.`,
		Example: `  photon vm create -n web-1 -f small -i ubuntu -d "boot eph-small boot=true" --start
  photon vm create -n db-1 -f large -i ubuntu -d "disk-1 eph-small boot=true, data pd-fast 50" \
      -a "host:10.0.0.5" -e "ROLE=db,ZONE=a" -p p1 -t t1
  photon -n vm create -n web-2 -f small -i ubuntu -d "boot eph-small boot=true"   # prints only the id`,
		Args: cobra.MaximumNArgs(1),
	}
	s := a.projectFlags(cmd, true)
	cmd.RunE = a.action(func(cmd *cobra.Command, args []string) error {
		name, err := nameArg("vm", name, args)
		if err != nil {
			return err
		}
		attached, err := parseDisks(disks)
		if err != nil {
			return err
		}
		environment, err := parseKV("--environment", env)
		if err != nil {
			return err
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
		spec := &api.VMCreateSpec{Name: name, Flavor: flavor, AttachedDisks: attached,
			Environment: environment, Tags: splitList(tags), Subnets: splitList(subnets)}
		if image != "" {
			if spec.SourceImageID, err = a.imageID(ctx, c, s, image); err != nil {
				return err
			}
		}
		if err := a.diskKinds(ctx, c, spec.AttachedDisks); err != nil {
			return err
		}
		if spec.Affinities, err = a.resolveAffinities(ctx, c, s, aff); err != nil {
			return err
		}
		t, err := c.CreateVM(ctx, pid, spec)
		if t, err = a.wait(ctx, c, t, err); err != nil {
			return err
		}
		if start {
			st, err := c.StartVM(ctx, t.Entity.ID)
			if _, err = a.wait(ctx, c, st, err); err != nil {
				return fmt.Errorf("VM %s (ID %s) was created but did not start: %w", name, t.Entity.ID, err)
			}
		}
		kind := "VM"
		if start {
			kind = "and started VM"
		}
		return a.created(ctx, kind, name, t, getVM(c))
	})
	a.nameFlag(cmd, &name, "VM name, e.g. web-1")
	a.detailLong(cmd)
	f := cmd.Flags()
	f.StringVarP(&flavor, "flavor", "f", "", "vm flavor name, e.g. small")
	f.StringVarP(&image, "image", "i", "", "source image name or id")
	f.StringVarP(&disks, "disks", "d", "", disksHelp)
	f.StringVarP(&affinities, "affinities", "a", "", `placement, "KIND:ID, ...", e.g. "disk:DISK_ID, host:10.0.0.5"`)
	f.StringVarP(&env, "environment", "e", "", `environment, "KEY=VALUE, ...", e.g. "ROLE=web"`)
	f.StringVar(&tags, "tags", "", "comma-separated tags")
	f.StringVarP(&subnets, "subnets", "w", "", "comma-separated subnet ids")
	f.BoolVar(&start, "start", false, "start the VM once it is created")
	_ = cmd.MarkFlagRequired("flavor")
	_ = cmd.MarkFlagRequired("disks")
	return cmd
}

// parseDisks parses vm create -d. A disk's kind stays "" unless the entry
// names it; diskKinds fills it in from the flavor.
func parseDisks(s string) ([]api.AttachedDiskCreateSpec, error) {
	var out []api.AttachedDiskCreateSpec
	for _, part := range strings.Split(s, ",") {
		f := strings.Fields(part)
		if len(f) == 0 {
			continue
		}
		if len(f) < 2 {
			return nil, usagef("disk %q: want NAME FLAVOR [boot=true] [GB]", strings.TrimSpace(part))
		}
		d := api.AttachedDiskCreateSpec{Name: f[0], Flavor: f[1]}
		for _, tok := range f[2:] {
			switch low := strings.ToLower(tok); {
			case low == "boot=true" || low == "boot":
				d.BootDisk = true
			case low == "boot=false":
			case low == api.KindEphemeralDisk || low == "ephemeral":
				d.Kind = api.KindEphemeralDisk
			case low == api.KindPersistentDisk || low == "persistent":
				d.Kind = api.KindPersistentDisk
			default:
				gb, err := strconv.ParseFloat(strings.TrimSuffix(low, "gb"), 64)
				if err != nil || gb <= 0 {
					return nil, usagef("disk %q: %q is not boot=true, a size in GB or a kind", f[0], tok)
				}
				d.CapacityGB = gb
			}
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, usagef("no disks: give -d %q", "NAME FLAVOR boot=true")
	}
	return out, nil
}

// diskKinds sets the kind of each disk that has none from its flavor:
// persistent-disk when only a persistent-disk flavor has that name, else
// ephemeral-disk (the server refuses a flavor that does not exist).
func (a *app) diskKinds(ctx context.Context, c *client.Client, disks []api.AttachedDiskCreateSpec) error {
	kinds := map[string]string{}
	for i := range disks {
		d := &disks[i]
		if d.Kind != "" {
			continue
		}
		k, ok := kinds[d.Flavor]
		if !ok {
			k = api.KindEphemeralDisk
			fs, err := c.ListFlavors(ctx, client.FlavorFilter{Name: d.Flavor})
			if err != nil && !isNotFound(err) {
				return err
			}
			eph, pers := false, false
			for _, f := range fs {
				if f.Name == d.Flavor || f.ID == d.Flavor {
					eph = eph || f.Kind == api.FlavorKindEphemeralDisk
					pers = pers || f.Kind == api.FlavorKindPersistentDisk
				}
			}
			if pers && !eph {
				k = api.KindPersistentDisk
			}
			kinds[d.Flavor] = k
		}
		d.Kind = k
	}
	return nil
}

// parseAffinities parses -a "KIND:ID, ..." (ids may be names; see resolveAffinities).
func parseAffinities(s string) ([]api.LocalitySpec, error) {
	var out []api.LocalitySpec
	for _, part := range splitList(s) {
		kind, id, ok := strings.Cut(part, ":")
		kind, id = strings.TrimSpace(kind), strings.TrimSpace(id)
		if !ok || kind == "" || id == "" {
			return nil, usagef("affinity %q: want KIND:ID, e.g. disk:ID or vm:ID", part)
		}
		switch kind {
		case "vm", "disk", api.KindPersistentDisk, "host", "datastore":
		default:
			return nil, usagef("affinity %q: kind %q is not vm, disk, host or datastore", part, kind)
		}
		out = append(out, api.LocalitySpec{Kind: kind, ID: id})
	}
	return out, nil
}

// resolveAffinities turns VM and disk names in affinities into ids (hosts
// and datastores the server finds itself).
func (a *app) resolveAffinities(ctx context.Context, c *client.Client, s *projectScope, aff []api.LocalitySpec) ([]api.LocalitySpec, error) {
	for i := range aff {
		switch aff[i].Kind {
		case "vm":
			vm, err := a.vm(ctx, c, s, aff[i].ID)
			if err != nil {
				return nil, err
			}
			aff[i].ID = vm.ID
		case "disk", api.KindPersistentDisk:
			d, err := a.disk(ctx, c, s, aff[i].ID)
			if err != nil {
				return nil, err
			}
			aff[i].ID = d.ID
		}
	}
	return aff, nil
}

// parseKV parses "k=v, k2=v2" into a map; flag names the option for errors.
func parseKV(flag, s string) (map[string]string, error) {
	parts := splitList(s)
	if len(parts) == 0 {
		return nil, nil
	}
	m := make(map[string]string, len(parts))
	for _, p := range parts {
		k, v, ok := strings.Cut(p, "=")
		k = strings.TrimSpace(k)
		if !ok || k == "" {
			return nil, usagef("%s: %q is not KEY=VALUE", flag, p)
		}
		m[k] = strings.TrimSpace(v)
	}
	return m, nil
}

// kvString formats a map as "k=v, k2=v2", sorted by key ("-" when empty).
func kvString(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, ", ")
}

// vmHost is where a VM runs, for tables: its host's address or id.
func vmHost(v api.VM) string {
	if v.Host != "" {
		return v.Host
	}
	return orDash(v.HostID)
}

var vmHeader = []string{"ID", "NAME", "STATE", "FLAVOR", "HOST"}

func vmRow(v api.VM) []string {
	return []string{v.ID, v.Name, v.State, orDash(v.Flavor), vmHost(v)}
}

// printVMs prints VMs as JSON, rows or a table; -d adds image, datastore and disks.
func (a *app) printVMs(vms []api.VM) error {
	if a.jsonOut() {
		return a.printJSON(vms)
	}
	header := vmHeader
	if a.detail {
		header = append(append([]string(nil), vmHeader...), "IMAGE", "DATASTORE", "DISKS")
	}
	rows := make([][]string, 0, len(vms))
	for _, v := range vms {
		r := vmRow(v)
		if a.detail {
			var disks []string
			for _, d := range v.AttachedDisks {
				disks = append(disks, d.Name)
			}
			r = append(r, orDash(v.SourceImageID), orDash(v.Datastore), orDash(strings.Join(disks, ",")))
		}
		rows = append(rows, r)
	}
	return a.table(header, rows)
}

func (a *app) vmListCmd() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "list [-p PROJECT] [--name NAME]",
		Short: "List the VMs of the current project (or -p)",
		Long: `List the VMs of a project. With -n each line is ID NAME STATE FLAVOR HOST,
tab-separated; -d adds IMAGE DATASTORE DISKS.`,
		Example: "  photon vm list\n  photon vm list -p p1 -t t1 -o json\n  photon -n vm list --name web-1",
		Args:    cobra.NoArgs,
	}
	s := a.projectFlags(cmd, true)
	cmd.RunE = a.action(func(cmd *cobra.Command, args []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		pid, err := s.id(ctx, c)
		if err != nil {
			return err
		}
		vms, err := c.ListVMs(ctx, pid, name)
		if err != nil {
			return err
		}
		return a.printVMs(vms)
	})
	cmd.Flags().StringVar(&name, "name", "", "only the VM with this name")
	return cmd
}

func (a *app) vmShowCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "show ID|NAME [-p PROJECT]",
		Short: "Show a VM with its disks (and why it failed, if it is in ERROR)",
		Long: `Show a VM with its disks. With -n the line is ID NAME STATE FLAVOR HOST
ERROR_REASON, tab-separated ("-" for no error).`,
		Example: "  photon vm show web-1\n  photon vm show 0193c9b2-7d1e-7c4a-9f00-3b5e2a1c4d5e -o json",
		Args:    exactArgs(1, "ID|NAME"),
	}
	s := a.projectFlags(cmd, true)
	cmd.RunE = a.action(func(cmd *cobra.Command, args []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		v, err := a.vm(cmd.Context(), c, s, args[0])
		if err != nil {
			return err
		}
		return a.printVM(v)
	})
	return cmd
}

func (a *app) printVM(v *api.VM) error {
	if a.jsonOut() {
		return a.printJSON(v)
	}
	if a.plain() {
		return a.table(nil, [][]string{append(vmRow(*v), orDash(v.ErrorReason))})
	}
	kv := []string{"ID", v.ID, "Name", v.Name, "State", v.State}
	if v.ErrorReason != "" || v.State == api.VMError {
		kv = append(kv, "Error", orDash(v.ErrorReason))
	}
	kv = append(kv, "Flavor", orDash(v.Flavor), "Source image", orDash(v.SourceImageID),
		"Project", orDash(v.ProjectID), "Host", vmHost(*v), "Datastore", orDash(v.Datastore))
	if v.FloatingIP != "" {
		kv = append(kv, "Floating IP", v.FloatingIP)
	}
	kv = append(kv, "Tags", orDash(joinComma(v.Tags)), "Metadata", kvString(v.Metadata),
		"Environment", kvString(v.Environment), "Cost", orDash(costString(v.Cost)))
	if len(v.AttachedIsos) > 0 {
		kv = append(kv, "ISOs", joinComma(v.AttachedIsos))
	}
	if err := a.fields(kv...); err != nil {
		return err
	}
	if len(v.AttachedDisks) == 0 {
		return nil
	}
	a.line("\nDisks:")
	rows := make([][]string, 0, len(v.AttachedDisks))
	for _, d := range v.AttachedDisks {
		boot := ""
		if d.BootDisk {
			boot = "boot"
		}
		rows = append(rows, []string{d.Name, d.ID, d.Kind, d.Flavor, num(d.CapacityGB), orDash(d.State), boot})
	}
	return a.table([]string{"NAME", "ID", "KIND", "FLAVOR", "GB", "STATE", "BOOT"}, rows)
}

func (a *app) vmDeleteCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:     "delete ID|NAME [-p PROJECT]",
		Short:   "Delete a stopped VM and its ephemeral disks",
		Example: "  photon vm stop web-1 && photon vm delete web-1",
		Args:    exactArgs(1, "ID|NAME"),
	}
	s := a.projectFlags(cmd, true)
	cmd.RunE = a.action(func(cmd *cobra.Command, args []string) error {
		c, err := a.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		v, err := a.vm(ctx, c, s, args[0])
		if err != nil {
			return err
		}
		t, err := c.DeleteVM(ctx, v.ID)
		if t, err = a.wait(ctx, c, t, err); err != nil {
			return err
		}
		return a.deleted("VM", v.Name, v.ID, t)
	})
	return cmd
}

// vmDiskCmd is attach-disk / detach-disk: VM -d DISK. sentence takes the
// disk's and the VM's names.
func (a *app) vmDiskCmd(use, short, sentence string,
	call func(c *client.Client, ctx context.Context, vmID, diskID string) (*api.Task, error)) *cobra.Command {
	var diskArg string
	cmd := &cobra.Command{
		Use:   use + " ID|NAME -d DISK",
		Short: short,
		Long: short + `. DISK is a persistent disk's name (in the same project)
or id. Here -d is the disk; the global --detail keeps its long form.`,
		Example: "  photon vm " + use + " web-1 -d data-1\n  photon vm " + use + " web-1 -d 0193c9b2-7d1e-7c4a-9f00-3b5e2a1c4d5e -p p1",
		Args:    exactArgs(1, "ID|NAME"),
	}
	s := a.projectFlags(cmd, true)
	cmd.RunE = a.action(func(cmd *cobra.Command, args []string) error {
		if diskArg == "" {
			return usagef("%s needs -d DISK", cmd.CommandPath())
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		v, err := a.vm(ctx, c, s, args[0])
		if err != nil {
			return err
		}
		d, err := a.disk(ctx, c, s, diskArg)
		if err != nil {
			return err
		}
		t, err := call(c, ctx, v.ID, d.ID)
		if _, err := a.wait(ctx, c, t, err); err != nil {
			return err
		}
		return a.done(ctx, fmt.Sprintf(sentence, d.Name, v.Name), v.ID, getVM(c))
	})
	a.detailLong(cmd)
	cmd.Flags().StringVarP(&diskArg, "disk", "d", "", "persistent disk name or id")
	return cmd
}

func (a *app) vmSetMetadataCmd() *cobra.Command {
	var metadata string
	cmd := &cobra.Command{
		Use:     "set-metadata ID|NAME -m METADATA",
		Short:   "Replace a VM's metadata",
		Example: "  photon vm set-metadata web-1 -m \"owner=alice, tier=web\"",
		Args:    exactArgs(1, "ID|NAME"),
	}
	s := a.projectFlags(cmd, true)
	cmd.RunE = a.action(func(cmd *cobra.Command, args []string) error {
		m, err := parseKV("--metadata", metadata)
		if err != nil {
			return err
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		v, err := a.vm(ctx, c, s, args[0])
		if err != nil {
			return err
		}
		t, err := c.SetVMMetadata(ctx, v.ID, m)
		if _, err := a.wait(ctx, c, t, err); err != nil {
			return err
		}
		return a.done(ctx, "Set the metadata of VM "+v.Name, v.ID, getVM(c))
	})
	cmd.Flags().StringVarP(&metadata, "metadata", "m", "", `metadata, "KEY=VALUE, ..."`)
	_ = cmd.MarkFlagRequired("metadata")
	return cmd
}

func (a *app) vmSetTagCmd() *cobra.Command {
	var tag string
	cmd := &cobra.Command{
		Use:     "set-tag ID|NAME -t TAG",
		Short:   "Add a tag to a VM",
		Long:    `Add a tag to a VM. Here -t is the tag; give the tenant of -p as --tenant.`,
		Example: "  photon vm set-tag web-1 -t env:prod\n  photon vm set-tag web-1 -t env:prod -p p1 --tenant t1",
		Args:    exactArgs(1, "ID|NAME"),
	}
	s := a.projectFlags(cmd, false)
	cmd.RunE = a.action(func(cmd *cobra.Command, args []string) error {
		if strings.TrimSpace(tag) == "" {
			return usagef("set-tag needs -t TAG")
		}
		c, err := a.client()
		if err != nil {
			return err
		}
		ctx := cmd.Context()
		v, err := a.vm(ctx, c, s, args[0])
		if err != nil {
			return err
		}
		t, err := c.AddVMTag(ctx, v.ID, tag)
		if _, err := a.wait(ctx, c, t, err); err != nil {
			return err
		}
		return a.done(ctx, "Tagged VM "+v.Name+" "+tag, v.ID, getVM(c))
	})
	cmd.Flags().StringVarP(&tag, "tag", "t", "", "the tag, e.g. env:prod")
	return cmd
}

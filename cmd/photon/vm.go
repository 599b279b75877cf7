package main

import (
	"cmp"
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

// vmKind finds VMs by name in the project -p/-t name (or the current one), or by id.
var vmKind = projectKind[api.VM]{kind: "VM", code: codeVMNotFound,
	get: (*client.Client).GetVM, list: (*client.Client).ListVMs,
	id: func(v *api.VM) string { return v.ID }, name: func(v *api.VM) string { return v.Name }}

// getVM reads a VM, for done and created.
var getVM = getter((*client.Client).GetVM)

func (a *app) vmCmd() *cobra.Command {
	vm := vmKind.object(a, true)
	op := func(verb, short, past string, call func(*client.Client, context.Context, string) (*api.Task, error)) *cobra.Command {
		return opCmd(a, vm, verb, short, "  photon vm "+verb+" web-1\n  photon vm "+verb+" web-1 -p p1 -t t1", past, call, getVM)
	}
	return a.group("vm", "Manage VMs in a project: create, power, disks, networks, metadata",
		`  photon project set p1 -t t1
  photon vm create -n web-1 -f small -i ubuntu -d "boot eph-small boot=true" --start
  photon vm list`,
		a.vmCreateCmd(), a.vmListCmd(), a.vmShowCmd(), a.vmDeleteCmd(),
		a.entityTasksCmd("VM", "  photon vm tasks web-1\n  photon vm tasks web-1 --state ERROR", vm.resolver, (*client.Client).ListVMTasks),
		op("start", "Start (boot) a VM", "Started", (*client.Client).StartVM),
		op("stop", "Stop (power off) a VM", "Stopped", (*client.Client).StopVM),
		op("restart", "Restart a VM", "Restarted", (*client.Client).RestartVM),
		op("suspend", "Suspend a running VM", "Suspended", (*client.Client).SuspendVM),
		op("resume", "Resume a suspended VM", "Resumed", (*client.Client).ResumeVM),
		a.vmDiskCmd("attach-disk", "Attach a detached persistent disk to a VM", "Attached disk %s to VM %s", (*client.Client).AttachDisk),
		a.vmDiskCmd("detach-disk", "Detach a persistent disk from a VM", "Detached disk %s from VM %s", (*client.Client).DetachDisk),
		a.vmSetMetadataCmd(), a.vmSetTagCmd(), a.vmConsoleCmd(),
		a.vmNetworksCmd(), a.vmAcquireFloatingIPCmd(), a.vmReleaseFloatingIPCmd(),
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
	var count int
	cmd := &cobra.Command{
		Use:   "create -n NAME -f FLAVOR -d DISKS [-i IMAGE] [-w SUBNETS] [-a AFFINITIES] [-e ENV] [--count N] [--start]",
		Short: "Create a VM in the current project (or -p); --start also boots it",
		Long: `Create a VM in a project: the current one (photon project set) or -p.
The VM is placed on a host, its disks are made and the capacity it needs is
reserved; it ends STOPPED unless --start boots it too, in the same task (the
create spec's "start", our extension): the command waits for that task.

-d lists the disks made with the VM, "NAME FLAVOR [boot=true] [GB], ...".
One disk must be the boot disk; a boot disk without GB takes the image's
size. A disk's kind is its flavor's (ephemeral-disk, made and deleted with
the VM, unless the flavor is a persistent-disk one); write the kind in the
entry to choose when a flavor name exists for both.

-a places the VM near other objects, "KIND:ID|NAME, ...": disk:ID (a host
that sees the disk's datastore), vm:ID (the same host as that VM), host:ID or
host:ADDRESS, datastore:ID.

-w lists the subnets the VM gets a NIC on, one each, in order: names (of
the project's subnets) or ids, comma-separated. Without -w the VM gets a NIC
on the project's default subnet, if it has one.

--count N creates N VMs from the one spec in one request, named NAME-1 …
NAME-N (at most 1000; our extension). Each is created (and with --start
started) on its own: one refused does not stop the others. The command waits
for them all and prints one line per VM; it exits 1 if any was not created.

Here -n is the VM's name and -d its disks; the global -n and -d may be given
before the command word (photon -n vm create ...) or as --non-interactive
and --detail.`,
		Example: `  photon vm create -n web-1 -f small -i ubuntu -d "boot eph-small boot=true" --start
  photon vm create -n db-1 -f large -i ubuntu -d "disk-1 eph-small boot=true, data pd-fast 50" \
      -a "host:10.0.0.5" -e "ROLE=db,ZONE=a" -p p1 -t t1
  photon -n vm create -n web-2 -f small -i ubuntu -d "boot eph-small boot=true"   # prints only the id
  photon vm create -n web -f small -i ubuntu -d "boot eph-small boot=true" --count 10 --start   # web-1 … web-10
  photon vm create -n web1 -f small -i ubuntu -d "boot eph-small boot=true" -w web,db --start   # two NICs`,
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
		if count < 1 || count > api.MaxVMBatch {
			return usagef("--count: want 1 to %d VMs, got %d", api.MaxVMBatch, count)
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
			Environment: environment, Tags: splitList(tags), Start: start}
		if spec.Subnets, err = resolveSubnets(ctx, c, pid, s.describe(), "-w", splitList(subnets)); err != nil {
			return err
		}
		if image != "" {
			im, err := a.image(ctx, c, s, image)
			if err != nil {
				return err
			}
			spec.SourceImageID = im.ID
		}
		if err := a.diskKinds(ctx, c, spec.AttachedDisks); err != nil {
			return err
		}
		if spec.Affinities, err = a.resolveAffinities(ctx, c, s, aff); err != nil {
			return err
		}
		if count > 1 {
			return a.createVMs(ctx, c, pid, &api.VMBatchCreateSpec{VMCreateSpec: *spec, Count: count}, start)
		}
		t, err := c.CreateVM(ctx, pid, spec)
		if t, err = a.wait(ctx, c, t, err); err != nil {
			return err
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
	f.StringVarP(&subnets, "subnets", "w", "", "subnets to put a NIC on, names or ids, comma-separated, e.g. web,db (default: the project's default subnet)")
	f.BoolVar(&start, "start", false, "start the VM once it is created")
	f.IntVar(&count, "count", 1, "create this many VMs, named NAME-1 … NAME-N")
	_ = cmd.MarkFlagRequired("flavor")
	_ = cmd.MarkFlagRequired("disks")
	return cmd
}

// createVMs is vm create --count: one batch request, then each VM's task
// (which, with start, also boots it) followed at once. It prints the batch
// with each VM's task (-o json), the ids made (-n) or a line per VM, and
// fails if any VM was not made (or not started).
func (a *app) createVMs(ctx context.Context, c *client.Client, pid string, spec *api.VMBatchCreateSpec, start bool) error {
	b, err := c.CreateVMs(ctx, pid, spec)
	if err != nil {
		return err
	}
	outcome, err := a.createdAll(ctx, c, b)
	if err != nil {
		return err
	}
	failed := 0
	rows := make([][]string, len(b.Items))
	for i, it := range b.Items {
		id := ""
		if it.Task != nil {
			id = it.Task.Entity.ID
		}
		if outcome[i] != "" {
			failed++
		}
		rows[i] = []string{it.Name, id, cmp.Or(outcome[i], "OK")}
	}
	switch {
	case a.jsonOut():
		if err := a.printJSON(b); err != nil {
			return err
		}
	case a.plain():
		for i, it := range b.Items {
			if outcome[i] == "" {
				a.line("%s", it.Task.Entity.ID)
			}
		}
	default:
		if err := a.table([]string{"NAME", "ID", "RESULT"}, rows); err != nil {
			return err
		}
		kind := "Created"
		if start {
			kind = "Created and started"
		}
		a.line("%s %d of %d VMs", kind, len(b.Items)-failed, len(b.Items))
	}
	if failed > 0 {
		what := "created"
		if start {
			what = "created and started"
		}
		return fmt.Errorf("%d of %d VMs were not %s", failed, len(b.Items), what)
	}
	return nil
}

// createdAll follows a batch create's VMs (each made, and started with
// the spec's Start, in one task) with one long poll for many tasks: for
// each, "" when it is done, else why not. Each item's Task becomes the
// task as it ended.
func (a *app) createdAll(ctx context.Context, c *client.Client, b *api.VMBatch) ([]string, error) {
	outcome := make([]string, len(b.Items))
	var follow []*api.Task
	var at []int
	for i, it := range b.Items {
		if it.Error != nil {
			outcome[i] = it.Error.Error()
			continue
		}
		follow, at = append(follow, it.Task), append(at, i)
	}
	ended, err := c.WaitTasks(ctx, follow, nil)
	if err != nil {
		return nil, err
	}
	for k, t := range ended {
		b.Items[at[k]].Task = t
		if err := t.Err(); err != nil {
			outcome[at[k]] = err.Error()
		}
	}
	return outcome, nil
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
			vm, err := vmKind.find(ctx, c, s, aff[i].ID)
			if err != nil {
				return nil, err
			}
			aff[i].ID = vm.ID
		case "disk", api.KindPersistentDisk:
			d, err := diskKind.find(ctx, c, s, aff[i].ID)
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
	header := vmHeader
	if a.detail {
		header = append(append([]string(nil), vmHeader...), "IMAGE", "DATASTORE", "DISKS")
	}
	return printList(a, vms, header, func(v api.VM) []string {
		r := vmRow(v)
		if a.detail {
			var disks []string
			for _, d := range v.AttachedDisks {
				disks = append(disks, d.Name)
			}
			r = append(r, orDash(v.SourceImageID), orDash(v.Datastore), orDash(strings.Join(disks, ",")))
		}
		return r
	})
}

func (a *app) vmListCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "list [-p PROJECT] [--name NAME]",
		Short: "List the VMs of the current project (or -p)",
		Long: `List the VMs of a project. With -n each line is ID NAME STATE FLAVOR HOST,
tab-separated; -d adds IMAGE DATASTORE DISKS.`,
		Example: "  photon vm list\n  photon vm list -p p1 -t t1 -o json\n  photon -n vm list --name web-1",
		Args:    cobra.NoArgs,
	}
	return listInProject(a, cmd, "only the VM with this name", (*client.Client).ListVMs, a.printVMs)
}

func (a *app) vmShowCmd() *cobra.Command {
	return showCmd(a, &cobra.Command{
		Use:   "show ID|NAME [-p PROJECT]",
		Short: "Show a VM with its disks (and why it failed, if it is in ERROR)",
		Long: `Show a VM with its disks. With -n the line is ID NAME STATE FLAVOR HOST
ERROR_REASON, tab-separated ("-" for no error).`,
		Example: "  photon vm show web-1\n  photon vm show 0193c9b2-7d1e-7c4a-9f00-3b5e2a1c4d5e -o json",
		Args:    exactArgs(1, "ID|NAME"),
	}, vmKind.object(a, true), a.printVM)
}

func (a *app) printVM(v *api.VM) error {
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
	return a.show(v, append(vmRow(*v), orDash(v.ErrorReason)), kv, func() error {
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
	})
}

func (a *app) vmDeleteCmd() *cobra.Command {
	return deleteCmd(a, &cobra.Command{
		Use:     "delete ID|NAME [-p PROJECT]",
		Short:   "Delete a stopped VM and its ephemeral disks",
		Example: "  photon vm stop web-1 && photon vm delete web-1",
		Args:    exactArgs(1, "ID|NAME"),
	}, vmKind.object(a, true), (*client.Client).DeleteVM, nil)
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
	// The VM and the disk are found in the same project.
	s := a.projectFlags(cmd, true)
	vm := vmKind.object(a, true)
	vm.flags = noFlags(func(ctx context.Context, c *client.Client, arg string) (*api.VM, error) {
		return vmKind.find(ctx, c, s, arg)
	})
	var d *api.PersistentDisk
	a.detailLong(cmd)
	cmd.Flags().StringVarP(&diskArg, "disk", "d", "", "persistent disk name or id")
	return changeCmd(a, cmd, vm,
		func(cmd *cobra.Command) error {
			if diskArg == "" {
				return usagef("%s needs -d DISK", cmd.CommandPath())
			}
			return nil
		},
		func(ctx context.Context, c *client.Client, v *api.VM) (*api.Task, error) {
			var err error
			if d, err = diskKind.find(ctx, c, s, diskArg); err != nil {
				return nil, err
			}
			return call(c, ctx, v.ID, d.ID)
		},
		func(v *api.VM) string { return fmt.Sprintf(sentence, d.Name, v.Name) }, getVM)
}

func (a *app) vmSetMetadataCmd() *cobra.Command {
	var metadata string
	var m map[string]string
	cmd := &cobra.Command{
		Use:     "set-metadata ID|NAME -m METADATA",
		Short:   "Replace a VM's metadata",
		Example: "  photon vm set-metadata web-1 -m \"owner=alice, tier=web\"",
		Args:    exactArgs(1, "ID|NAME"),
	}
	cmd.Flags().StringVarP(&metadata, "metadata", "m", "", `metadata, "KEY=VALUE, ..."`)
	_ = cmd.MarkFlagRequired("metadata")
	return changeCmd(a, cmd, vmKind.object(a, true),
		func(*cobra.Command) (err error) {
			m, err = parseKV("--metadata", metadata)
			return err
		},
		func(ctx context.Context, c *client.Client, v *api.VM) (*api.Task, error) {
			return c.SetVMMetadata(ctx, v.ID, m)
		},
		func(v *api.VM) string { return "Set the metadata of VM " + v.Name }, getVM)
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
	vm := vmKind.object(a, false) // -t is the tag
	cmd.Flags().StringVarP(&tag, "tag", "t", "", "the tag, e.g. env:prod")
	return changeCmd(a, cmd, vm,
		func(*cobra.Command) error {
			if strings.TrimSpace(tag) == "" {
				return usagef("set-tag needs -t TAG")
			}
			return nil
		},
		func(ctx context.Context, c *client.Client, v *api.VM) (*api.Task, error) {
			return c.AddVMTag(ctx, v.ID, tag)
		},
		func(v *api.VM) string { return "Tagged VM " + v.Name + " " + tag }, getVM)
}

package compute

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"sync"

	"github.com/google/uuid"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/hosts"
	"github.com/photon-cloud/photon/internal/network"
	"github.com/photon-cloud/photon/internal/scheduler"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tasks"
	"github.com/photon-cloud/photon/internal/tenancy"
)

// ValidateVMSpec checks a VM create spec.
func ValidateVMSpec(spec *api.VMCreateSpec) error {
	if err := api.ValidateName("name", spec.Name); err != nil {
		return err
	}
	if spec.Flavor == "" {
		return api.FieldError("flavor", "is required (a vm flavor name or id)")
	}
	boot := 0
	seen := map[string]bool{}
	for i, d := range spec.AttachedDisks {
		f := "attachedDisks[" + strconv.Itoa(i) + "]"
		if err := api.ValidateName(f+".name", d.Name); err != nil {
			return err
		}
		if seen[d.Name] {
			return api.FieldError(f+".name", "disk name %q appears twice", d.Name)
		}
		seen[d.Name] = true
		switch d.Kind {
		case api.KindEphemeralDisk:
		case api.KindPersistentDisk:
			if d.BootDisk {
				return api.FieldError(f+".bootDisk", "the boot disk is an ephemeral-disk")
			}
			if d.CapacityGB <= 0 {
				return api.FieldError(f+".capacityGb", "a persistent disk needs a capacity")
			}
		default:
			return api.FieldError(f+".kind", "want ephemeral-disk or persistent-disk, got %q", d.Kind)
		}
		if d.Flavor == "" {
			return api.FieldError(f+".flavor", "is required (an ephemeral-disk flavor)")
		}
		if math.IsNaN(d.CapacityGB) || d.CapacityGB < 0 || d.CapacityGB > 1<<20 {
			return api.FieldError(f+".capacityGb", "want 0 to 1048576 GB")
		}
		if d.BootDisk {
			boot++
		}
	}
	if boot != 1 {
		return api.FieldError("attachedDisks", "want exactly one boot disk, got %d", boot)
	}
	for i, a := range spec.Affinities {
		f := "affinities[" + strconv.Itoa(i) + "]"
		switch a.Kind {
		case "vm", "host", "datastore", "disk", "persistent-disk", "availabilityZone", "hostTag", "datastoreTag":
		default:
			return api.FieldError(f+".kind", "unknown affinity kind %q (want vm, disk, host, availabilityZone, hostTag, datastore or datastoreTag)", a.Kind)
		}
		if !validID(a.ID) {
			return api.FieldError(f+".id", "want an id")
		}
	}
	if spec.PlacementGroup != nil {
		if err := validateGroup(spec.PlacementGroup); err != nil {
			return err
		}
	}
	switch spec.PlacementStrategy {
	case "", scheduler.Spread, scheduler.Pack:
	default:
		return api.FieldError("placementStrategy", "want spread or pack, got %q", spec.PlacementStrategy)
	}
	if err := api.ValidateStringMap("environment", spec.Environment); err != nil {
		return err
	}
	if err := network.ValidateSubnetIDs(spec.Subnets); err != nil {
		return err
	}
	return api.ValidateTags("tags", spec.Tags)
}

// CreateVM places a VM and reserves what it needs in one transaction
// (RESERVE_RESOURCE); the CREATE_VM step then waits for its host to make
// it. A created VM is STOPPED, or STARTED when spec.Start says so (the
// host boots it as it makes it, in the same task). Quota shortfalls are
// refused at once; placement refusals end the task ERROR and leave the VM
// in ERROR with the explanation.
func (s *Service) CreateVM(ctx context.Context, projectID string, spec *api.VMCreateSpec) (*api.Task, error) {
	return s.createVM(ctx, projectID, spec, nil)
}

// createVM is CreateVM; name, when set, is the VM's name key as read
// already (see createVMTxn).
func (s *Service) createVM(ctx context.Context, projectID string, spec *api.VMCreateSpec, name *store.KV) (*api.Task, error) {
	id, fn, first, err := s.createVMTxn(ctx, projectID, spec, nil, name)
	if err != nil {
		return nil, err
	}
	return s.submitBatched(ctx, OpCreateVM, api.Entity{ID: id, Kind: api.KindVM}, "", projectID, fn,
		batchReads{first: first, extra: network.PortOps * max(1, len(spec.Subnets))})
}

// CreateVMs creates count VMs from spec, named "<name>-1" …
// "<name>-<count>", each as CreateVM makes it: its own task, placed and
// committed with the creates waiting at the moment (see batcher). One
// refused does not stop the others: it answers each VM's task or error,
// in name order. A bad spec or count, a missing project or an affinity to
// an object not there is refused as a whole, before any VM is made.
func (s *Service) CreateVMs(ctx context.Context, projectID string, spec *api.VMCreateSpec, count int) ([]*api.Task, []error, error) {
	if err := ValidateVMBatch(spec, count); err != nil {
		return nil, nil, err
	}
	if !validID(projectID) {
		return nil, nil, api.Errorf(api.CodeProjectNotFound, "project %s not found", projectID)
	}
	if _, err := s.st.Get(ctx, tenancy.ProjectKey(projectID), &api.Project{}); errors.Is(err, store.ErrNotFound) {
		return nil, nil, api.Errorf(api.CodeProjectNotFound, "project %s not found", projectID)
	} else if err != nil {
		return nil, nil, err
	}
	// Resolved once: a resolved affinity (host, datastore) resolves to
	// itself without a read, so each create below reads nothing for it.
	affinities, err := s.resolveAffinities(ctx, projectID, spec.Affinities)
	if err != nil {
		return nil, nil, err
	}
	// The names, in one round trip: each create's first run reads its
	// own from here, not from etcd on its own.
	keys := make([]string, count)
	for i := range count {
		keys[i] = vmNameKey(projectID, BatchVMName(spec.Name, i+1))
	}
	names, err := s.st.GetMany(ctx, keys)
	if err != nil {
		return nil, nil, err
	}
	ts, errs := make([]*api.Task, count), make([]error, count)
	var wg sync.WaitGroup
	for i := range count {
		one := *spec
		one.Name, one.Affinities = BatchVMName(spec.Name, i+1), affinities
		wg.Go(func() { ts[i], errs[i] = s.createVM(ctx, projectID, &one, &names[i]) })
	}
	wg.Wait()
	return ts, errs, nil
}

// ValidateVMBatch checks a batch create of count VMs from spec.
func ValidateVMBatch(spec *api.VMCreateSpec, count int) error {
	if count < 1 || count > api.MaxVMBatch {
		return api.FieldError("count", "want 1 to %d VMs, got %d", api.MaxVMBatch, count)
	}
	// The longest name made is the one to check.
	last := *spec
	last.Name = BatchVMName(spec.Name, count)
	return ValidateVMSpec(&last)
}

// BatchVMName names the n-th VM (from 1) of a batch create.
func BatchVMName(name string, n int) string { return name + "-" + strconv.Itoa(n) }

// createVMTxn checks a create and returns the VM's id and the transaction
// that places and records it (and sets the task's tenant: the project is
// read there, not in a round trip of its own before). With pv set it is a
// dry run: the transaction fills pv and ends with errDryRun instead of
// writing. name, when set, is the VM's name key as read before (a batch
// create reads all its names at once): the transaction's first run takes
// it instead of reading the key (its commit is conditioned on it all the
// same); a run after a conflict reads the key again. first lists what the
// transaction reads first (batchReads.first), the name's key only while
// name has not been taken.
func (s *Service) createVMTxn(ctx context.Context, projectID string, spec *api.VMCreateSpec, pv *api.PlacementPreview, name *store.KV) (id string, fn func(tx *store.Txn, t *api.Task, probe bool) error, first func() []string, err error) {
	if err := ValidateVMSpec(spec); err != nil {
		return "", nil, nil, err
	}
	if !validID(projectID) {
		return "", nil, nil, api.Errorf(api.CodeProjectNotFound, "project %s not found", projectID)
	}
	affinities, err := s.resolveAffinities(ctx, projectID, spec.Affinities)
	if err != nil {
		return "", nil, nil, err
	}
	// What the create reads before placing (in one round trip when the
	// transaction does not know them).
	keys := []string{tenancy.ProjectKey(projectID), tenancy.FlavorNameKey(api.FlavorKindVM, spec.Flavor)}
	for _, d := range spec.AttachedDisks {
		if d.Kind == api.KindPersistentDisk {
			keys = append(keys, tenancy.FlavorNameKey(api.FlavorKindPersistentDisk, d.Flavor), diskNameKey(projectID, d.Name))
		} else {
			keys = append(keys, tenancy.FlavorNameKey(api.FlavorKindEphemeralDisk, d.Flavor))
		}
	}
	if spec.PlacementGroup != nil {
		keys = append(keys, groupKey(projectID, spec.PlacementGroup.Name))
	}
	if len(spec.Subnets) == 0 {
		keys = append(keys, network.DefaultKey(projectID))
	}
	for _, sn := range spec.Subnets {
		keys = append(keys, network.SubnetKey(sn))
	}
	keys = append(keys, vmNameKey(projectID, spec.Name))
	first = func() []string {
		if name != nil {
			return keys[:len(keys)-1] // the name is seeded
		}
		return keys
	}
	id = uuid.Must(uuid.NewV7()).String()
	// hint is the host an earlier run of this create reserved: group
	// commit may run it first on a scratch transaction (to learn its
	// reads; see gathering.add), then for real. The real run tries that
	// host first, so that it reads
	// what the scratch run prefetched instead of going back to etcd for a
	// host the index, updated in between, now prefers. Reserve checks the
	// hint with the same Fit on the records the transaction reads.
	var hint scheduler.Decision
	return id, func(tx *store.Txn, t *api.Task, probe bool) error {
		// The VM's lock (read by Submit) is absent: the id is new (no
		// condition of the commit, then).
		tx.AssumeAbsent(lockKey(id))
		if name != nil {
			tx.SeedKV(name.Key, name.Value, name.Rev)
			name = nil
		}
		if err := tx.Prefetch(ctx, keys...); err != nil {
			return err
		}
		p, err := tenancy.ReadProject(ctx, tx, projectID)
		if err != nil {
			return err
		}
		t.TenantID = p.TenantID
		if taken, err := tx.Exists(ctx, vmNameKey(projectID, spec.Name)); err != nil {
			return err
		} else if taken {
			e := api.Errorf(api.CodeNameTaken, "a VM named %q exists in the project", spec.Name)
			e.Data = map[string]string{"field": "name"}
			return e
		}
		v := &vmRecord{VM: api.VM{Base: api.Base{ID: id, Kind: api.KindVM}, Name: spec.Name, SourceImageID: spec.SourceImageID,
			State: api.VMCreating, ProjectID: projectID, Environment: spec.Environment, Tags: orEmpty(spec.Tags),
			Metadata: map[string]string{}}, Power: api.VMStopped, Generation: 1}
		if spec.Start {
			v.Power = api.VMStarted // the host boots it as it makes it
		}
		flavor, err := tenancy.AcquireFlavorNamed(ctx, tx, api.FlavorKindVM, spec.Flavor, "flavor")
		if err != nil {
			return err
		}
		v.Flavor, v.FlavorID = flavor.Name, flavor.ID
		req := &scheduler.Request{Affinities: affinities, ImageID: spec.SourceImageID, Strategy: spec.PlacementStrategy, Explain: pv != nil,
			Seed: seedOf(id)}
		var group *groupRecord
		if spec.PlacementGroup != nil {
			if group, err = readGroup(ctx, tx, projectID, spec.PlacementGroup); err != nil {
				return err
			}
			req.Group = &group.Group
		}
		for _, c := range flavor.Cost {
			switch c.Key {
			case "vm.cpu":
				req.CPU = int(math.Ceil(api.ConvertUnit(c.Value, c.Unit, api.UnitCount)))
			case "vm.memory":
				req.MemoryMB = int64(math.Ceil(api.ConvertUnit(c.Value, c.Unit, api.UnitMB)))
			}
		}
		costs := [][]api.QuotaLineItem{flavor.Cost}
		var img *api.Image
		if spec.SourceImageID != "" {
			if s.images == nil {
				return api.FieldError("sourceImageId", "images are not available on this controller")
			}
			if img, err = s.acquireImage(ctx, tx, projectID, spec.SourceImageID); err != nil {
				return err
			}
			v.ImageSHA = img.SHA256
		}
		for _, d := range spec.AttachedDisks {
			if d.Kind == api.KindPersistentDisk {
				req.PersistentGB += d.CapacityGB
				continue // made once the VM is placed: see createAttachedDisks
			}
			df, err := tenancy.AcquireFlavorNamed(ctx, tx, api.FlavorKindEphemeralDisk, d.Flavor, "attachedDisks.flavor")
			if err != nil {
				return err
			}
			capGB := d.CapacityGB
			if d.BootDisk && img != nil {
				// The boot disk holds the image's whole disk: it is at
				// least that large, and charged for it (a small file may
				// hold a huge virtual disk). A smaller capacity asked for
				// is raised, as the VM's attachedDisks then say.
				capGB = max(capGB, imageGB(img))
			}
			if capGB == 0 {
				capGB = 1
			}
			req.DiskGB += capGB
			v.DiskFlavors = append(v.DiskFlavors, df.ID)
			did := uuid.Must(uuid.NewV7()).String()
			v.AttachedDisks = append(v.AttachedDisks, api.AttachedDisk{ID: did, Name: d.Name, Kind: api.KindEphemeralDisk,
				Flavor: df.Name, CapacityGB: capGB, BootDisk: d.BootDisk, State: api.DiskAttached})
			dd := api.DiskDesired{ID: did, Kind: api.KindEphemeralDisk, CapacityGB: capGB, BootDisk: d.BootDisk}
			if d.BootDisk && img != nil {
				dd.ImageID, dd.ImageSHA256, dd.ImageFormat = img.ID, img.SHA256, img.Format
			}
			v.Disks = append(v.Disks, dd)
			costs = append(costs, df.Cost, []api.QuotaLineItem{{Key: api.KindEphemeralDisk + ".capacity", Value: capGB, Unit: api.UnitGB}})
		}
		// The VM's ports: an address on each subnet (or the project's
		// default), charged as sdn.size.
		subnets, err := network.SubnetsOf(ctx, tx, projectID, spec.Subnets)
		if err != nil {
			return err
		}
		if v.NICs, err = network.AllocatePorts(ctx, s.st, tx, projectID, subnets); err != nil {
			return err
		}
		if len(v.NICs) > 0 {
			costs = append(costs, []api.QuotaLineItem{{Key: network.QuotaKey, Value: float64(len(v.NICs)), Unit: api.UnitCount}})
		}
		v.Request = *req
		v.Cost = tenancy.SumCost(costs...)
		if err := tenancy.ChargeRead(tx, projectID, p, v.Cost, +1); err != nil {
			return err
		}
		v.Charged = true
		if err := tx.Put(vmNameKey(projectID, spec.Name), id); err != nil { // also lists the project's VMs
			return err
		}
		// The fleet view (the index) may be stale; the choice is
		// re-checked on the records the transaction reads, and a view found
		// stale (the chosen host no longer fits) catches up and retries.
		// A host found full at commit (by an earlier create of the same
		// batch, or a change the view has not seen) is excluded and the
		// placement tried again a few times before catching up.
		var d scheduler.Decision
		var perr error
		var h *hosts.Record // reserved on
		if hint.HostID != "" && pv == nil {
			// The hint that no longer fits is no evidence of a stale view:
			// the placement below decides as if it were not tried.
			s.seedCopies(tx, hint)
			var err error
			h, err = s.hosts.Reserve(ctx, tx, hint, req)
			if _, ok := err.(*api.Error); err != nil && !ok {
				return err
			}
			if h != nil {
				d = hint
			}
		}
		for try := 0; h == nil; try++ {
			if d, perr = s.place(ctx, req); perr != nil || pv != nil {
				break
			}
			s.seedCopies(tx, d)
			var err error
			if h, err = s.hosts.Reserve(ctx, tx, d, req); err == nil {
				hint = d
				break
			}
			if _, ok := err.(*api.Error); !ok {
				return err
			}
			if try >= 4 {
				return s.stale(ctx)
			}
			req.Exclude = append(req.Exclude, d.HostID)
		}
		if perr != nil && len(req.Exclude) > 0 {
			return s.stale(ctx) // refused only for hosts that changed: look again
		}
		req.Exclude = nil
		var ae *api.Error
		if perr != nil && !asAPI(perr, &ae) {
			return perr
		}
		if pv != nil {
			preview(pv, d, ae)
			if d.HostID != "" {
				if h, err := s.hosts.HostOf(ctx, tx, d.HostID); err == nil {
					pv.Host = h.Address
				}
			}
			return errDryRun
		}
		if perr != nil {
			// Refused placement: the VM stays, in ERROR, holding nothing.
			if err := s.releaseAll(ctx, tx, v); err != nil {
				return err
			}
			v.State, v.ErrorReason = api.VMError, ae.Message
			s.tasks.FailStep(t, 0, ae)
			return tx.Put(vmKey(id), v)
		}
		v.HostID, v.DatastoreID, v.Reserved = d.HostID, d.DatastoreID, true
		v.Host, v.Datastore = h.Address, d.DatastoreID
		if err := s.joinSubnets(ctx, tx, h, v.NICs); err != nil {
			return err
		}
		if probe && !hasPersistent(spec) {
			// Everything left reads only what is read above (and the
			// task's lock, prefetched): the rest is writes.
			return errProbed
		}
		if group != nil {
			if err := joinGroup(tx, projectID, group, id, d.HostID, h.AvailabilityZone); err != nil {
				return err
			}
		}
		for i := range v.Disks {
			v.Disks[i].Datastore = hosts.LocalName(d.DatastoreID)
		}
		if err := s.createAttachedDisks(ctx, tx, v, spec); err != nil {
			return err
		}
		s.tasks.CompleteStep(t, 0)
		s.tasks.StartStep(t, 1) // waits for the host: Observe kicks it
		return putVM(tx, v)
	}, first, nil
}

// acquireImage counts a VM of project projectID as a user of image id
// (images.AcquireImage) once it has checked that the project may use it:
// an infrastructure image, or one scoped to that same project. Any other
// answers exactly as a missing image does (ImageNotFound), whatever its
// state, so nothing about it leaks. The record checked is the one
// AcquireImage reads (the same key, in tx), so the commit is conditioned
// on it: a scope changed in between conflicts.
func (s *Service) acquireImage(ctx context.Context, tx *store.Txn, projectID, id string) (*api.Image, error) {
	if validID(id) {
		var img api.Image
		found, err := tx.Get(ctx, imageKey(id), &img)
		if err != nil {
			return nil, err
		}
		if found && !ImageUsable(&img, projectID) {
			return nil, api.Errorf(codeImageNotFound, "image %s not found", id)
		}
	}
	return s.images.AcquireImage(ctx, tx, id)
}

// ImageUsable reports whether project projectID may make VMs from img:
// an infrastructure image is everyone's; a project image only its
// project's.
func ImageUsable(img *api.Image, projectID string) bool {
	switch img.Scope.Kind {
	case scopeInfrastructure:
		return true
	case api.KindProject:
		return img.Scope.ID != "" && img.Scope.ID == projectID
	}
	return false
}

// imageGB is the size in GB (rounded up) of the disk an image holds: its
// virtual size, or its file's size on records from before virtual sizes
// were recorded.
func imageGB(img *api.Image) float64 {
	size := img.Size
	if img.VirtualSize > 0 {
		size = img.VirtualSize
	}
	return math.Ceil(float64(size) / (1 << 30))
}

// errProbed ends a create's scratch run (see batchItem) once it has read
// all that its real run will.
var errProbed = errors.New("probed")

func hasPersistent(spec *api.VMCreateSpec) bool {
	return slices.ContainsFunc(spec.AttachedDisks, func(d api.AttachedDiskCreateSpec) bool { return d.Kind == api.KindPersistentDisk })
}

func asAPI(err error, ae **api.Error) bool {
	e, ok := err.(*api.Error)
	if ok {
		*ae = e
	}
	return ok
}

// resolveAffinities turns VM and disk affinities into the host or datastore
// they pin to.
func (s *Service) resolveAffinities(ctx context.Context, projectID string, in []api.LocalitySpec) ([]api.LocalitySpec, error) {
	out := make([]api.LocalitySpec, 0, len(in))
	for i, a := range in {
		f := fmt.Sprintf("affinities[%d].id", i)
		switch a.Kind {
		case "vm":
			v, err := s.getVM(ctx, s.st.PlainTxn(), a.ID)
			if err != nil || v.ProjectID != projectID {
				return nil, api.FieldError(f, "no VM %s in this project", a.ID)
			}
			if v.HostID == "" {
				return nil, api.Errorf("UnfullfillableAffinities", "VM %s is not on a host", v.Name)
			}
			out = append(out, api.LocalitySpec{Kind: "host", ID: v.HostID})
		case "disk", "persistent-disk":
			d, err := s.getDisk(ctx, s.st.PlainTxn(), a.ID)
			if err != nil || d.ProjectID != projectID {
				return nil, api.FieldError(f, "no disk %s in this project", a.ID)
			}
			out = append(out, api.LocalitySpec{Kind: "datastore", ID: d.DatastoreID})
		default:
			out = append(out, a)
		}
	}
	return out, nil
}

// releaseAll returns everything a VM holds: host and datastore usage,
// project quota, flavor and image users. Safe to call on a partly reserved VM.
func (s *Service) releaseAll(ctx context.Context, tx *store.Txn, v *vmRecord) error {
	if v.Reserved {
		if err := s.hosts.Release(ctx, tx, v.HostID, v.DatastoreID, &v.Request); err != nil {
			return err
		}
		tx.Delete(hosts.DesiredKey(v.HostID, v.ID))
		if err := leaveGroup(ctx, tx, v); err != nil {
			return err
		}
		for _, n := range v.NICs {
			if err := s.hosts.LeaveSubnet(ctx, tx, v.HostID, n.SubnetID); err != nil {
				return err
			}
		}
		v.Reserved = false
	}
	if v.FloatingIP != "" {
		// (its quota is in v.Cost, returned above)
		if err := network.ReleaseFloating(ctx, tx, v.FloatingIP, v.ID); err != nil {
			return err
		}
		v.FloatingIP = ""
	}
	if len(v.NICs) > 0 {
		if err := network.ReleasePorts(ctx, tx, v.NICs); err != nil {
			return err
		}
		v.NICs = nil
	}
	if v.Charged {
		if err := tenancy.ChargeProject(ctx, tx, v.ProjectID, v.Cost, -1); err != nil {
			return err
		}
		v.Charged = false
	}
	for _, id := range append([]string{v.FlavorID}, v.DiskFlavors...) {
		if id != "" {
			if err := tenancy.ReleaseFlavor(ctx, tx, id); err != nil {
				return err
			}
		}
	}
	v.FlavorID, v.DiskFlavors = "", nil
	if v.SourceImageID != "" && s.images != nil && v.ImageSHA != "" {
		if err := s.images.ReleaseImage(ctx, tx, v.SourceImageID); err != nil {
			return err
		}
		v.ImageSHA = ""
	}
	return nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// createAttachedDisks makes the persistent disks of a VM create spec on
// the VM's datastore, attached to it; each disk holds its own flavor,
// quota and datastore space, and outlives the VM.
func (s *Service) createAttachedDisks(ctx context.Context, tx *store.Txn, v *vmRecord, spec *api.VMCreateSpec) error {
	for i, d := range spec.AttachedDisks {
		if d.Kind != api.KindPersistentDisk {
			continue
		}
		f := "attachedDisks[" + strconv.Itoa(i) + "]"
		if taken, err := tx.Exists(ctx, diskNameKey(v.ProjectID, d.Name)); err != nil {
			return err
		} else if taken {
			e := api.Errorf(api.CodeNameTaken, "a disk named %q exists in the project", d.Name)
			e.Data = map[string]string{"field": f + ".name"}
			return e
		}
		pf, err := tenancy.AcquireFlavorNamed(ctx, tx, api.FlavorKindPersistentDisk, d.Flavor, f+".flavor")
		if err != nil {
			return err
		}
		cost := tenancy.SumCost(pf.Cost, []api.QuotaLineItem{{Key: api.KindPersistentDisk + ".capacity", Value: d.CapacityGB, Unit: api.UnitGB}})
		if err := tenancy.ChargeProject(ctx, tx, v.ProjectID, cost, +1); err != nil {
			return err
		}
		if err := s.hosts.ReserveDatastore(ctx, tx, v.DatastoreID, d.CapacityGB); err != nil {
			return s.stale(ctx) // the fleet view was stale: place again
		}
		id := uuid.Must(uuid.NewV7()).String()
		disk := diskRecord{PersistentDisk: api.PersistentDisk{Base: api.Base{ID: id, Kind: api.KindPersistentDisk},
			Name: d.Name, Flavor: pf.Name, CapacityGB: d.CapacityGB, Datastore: v.DatastoreID, State: api.DiskAttached,
			VMs: []string{v.ID}, Cost: cost, Tags: []string{}, ProjectID: v.ProjectID}, DatastoreID: v.DatastoreID, FlavorID: pf.ID}
		for _, put := range []struct {
			k string
			v any
		}{{diskNameKey(v.ProjectID, d.Name), id}, {diskKey(id), &disk}} {
			if err := tx.Put(put.k, put.v); err != nil {
				return err
			}
		}
		v.Disks = append(v.Disks, api.DiskDesired{ID: id, Kind: api.KindPersistentDisk, Datastore: hosts.LocalName(v.DatastoreID), CapacityGB: d.CapacityGB})
		v.AttachedDisks = append(v.AttachedDisks, api.AttachedDisk{ID: id, Name: d.Name, Kind: api.KindPersistentDisk,
			Flavor: pf.Name, CapacityGB: d.CapacityGB, State: api.DiskAttached})
	}
	return nil
}

// detachPersistent marks a VM's persistent disks DETACHED (the VM failed
// or is going away; the disks stay).
func (s *Service) detachPersistent(ctx context.Context, tx *store.Txn, v *vmRecord) error {
	for _, d := range v.Disks {
		if d.Kind != api.KindPersistentDisk {
			continue
		}
		if pd, err := s.getDisk(ctx, tx, d.ID); err == nil {
			pd.State, pd.VMs = api.DiskDetached, []string{}
			if err := tx.Put(diskKey(pd.ID), pd); err != nil {
				return err
			}
		}
	}
	v.Disks = slices.DeleteFunc(v.Disks, func(d api.DiskDesired) bool { return d.Kind == api.KindPersistentDisk })
	v.AttachedDisks = slices.DeleteFunc(v.AttachedDisks, func(d api.AttachedDisk) bool { return d.Kind == api.KindPersistentDisk })
	return nil
}

// stepCreate waits until the host has made the VM (and booted it, when
// its create said start).
func (s *Service) stepCreate(ctx context.Context, tx *store.Txn, t *api.Task) error {
	v, err := s.getVM(ctx, tx, t.Entity.ID)
	if err != nil {
		return err
	}
	if err := s.waitHost(v, t, 1, 1); err != nil {
		return err
	}
	if v.State == api.VMCreating {
		// The host carried out generation 1: the VM is made, and STARTED
		// if the create said so (api.VMCreateSpec.Start).
		v.State = v.Power
		return putVM(tx, v)
	}
	return nil
}

// undoCreate: the VM goes ERROR with the reason and gives back everything.
func (s *Service) undoCreate(ctx context.Context, tx *store.Txn, t *api.Task, cause *api.Error) error {
	v, err := s.getVM(ctx, tx, t.Entity.ID)
	if err != nil {
		return nil
	}
	if err := s.releaseAll(ctx, tx, v); err != nil {
		return err
	}
	if err := s.detachPersistent(ctx, tx, v); err != nil {
		return err
	}
	v.State, v.ErrorReason = api.VMError, cause.Message
	return tx.Put(vmKey(v.ID), v)
}

func (s *Service) operations() []*tasks.Operation {
	none := func(context.Context, *store.Txn, *api.Task) error { return nil }
	sync := func(name string) *tasks.Operation {
		return &tasks.Operation{Name: name, Steps: []tasks.Step{{Name: name, Run: none}}}
	}
	return []*tasks.Operation{
		{Name: OpCreateVM, Steps: []tasks.Step{{Name: StepReserve, Run: none}, {Name: StepCreateOnVM, Run: s.stepCreate}}, Undo: s.undoCreate},
		{Name: OpDeleteVM, Steps: []tasks.Step{{Name: StepDeleteOnVM, Run: s.stepDeleteOnHost}, {Name: StepRelease, Run: s.stepRelease}}},
		{Name: OpStartVM, Steps: []tasks.Step{{Name: StepStartOnVM, Run: s.powerStep(api.VMStarted)}}, Undo: s.undoPower},
		{Name: OpStopVM, Steps: []tasks.Step{{Name: StepStopOnVM, Run: s.powerStep(api.VMStopped)}}, Undo: s.undoPower},
		{Name: OpRestartVM, Steps: []tasks.Step{{Name: StepStopOnVM, Run: s.powerStep(api.VMStopped)}, {Name: StepStartOnVM, Run: s.powerStep(api.VMStarted)}}, Undo: s.undoPower},
		{Name: OpSuspendVM, Steps: []tasks.Step{{Name: StepSuspendOnVM, Run: s.powerStep(api.VMSuspended)}}, Undo: s.undoPower},
		{Name: OpResumeVM, Steps: []tasks.Step{{Name: StepResumeOnVM, Run: s.powerStep(api.VMStarted)}}, Undo: s.undoPower},
		{Name: OpAttachDisk, Steps: []tasks.Step{{Name: StepAttach, Run: s.stepAttach}}, Undo: s.undoAttach},
		{Name: OpDetachDisk, Steps: []tasks.Step{{Name: StepDetach, Run: s.stepDetach}}},
		sync(OpSetMetadata), sync(OpAddTag), sync(OpCreateDisk), sync(OpDeleteDisk), sync(OpGetNetworks),
		sync(OpAcquireFIP), sync(OpReleaseFIP),
	}
}

// joinSubnets makes host h carry the subnets of a VM's ports (in tx,
// with the VM's reservation).
func (s *Service) joinSubnets(ctx context.Context, tx *store.Txn, h *hosts.Record, nics []network.Port) error {
	for _, n := range nics {
		rec, err := network.SubnetRecord(ctx, tx, n.SubnetID)
		if err != nil {
			return err
		}
		sd, rd := rec.Desired()
		if err := s.hosts.JoinSubnet(ctx, tx, h, sd, rd); err != nil {
			return err
		}
	}
	return nil
}

// GetNetworks answers GET /v1/vms/{id}/subnets: a GET_NETWORKS task, done
// at once and not persisted (a read: it takes no lock of the VM), whose resourceProperties.networkConnections
// lists the VM's NICs.
func (s *Service) GetNetworks(ctx context.Context, id string) (*api.Task, error) {
	v, err := s.getVM(ctx, s.st.PlainTxn(), id)
	if err != nil {
		return nil, err
	}
	connected := api.NICDisconnected
	if v.State == api.VMStarted {
		connected = api.NICConnected
	}
	conns := make([]api.NetworkConnection, 0, len(v.NICs))
	for _, n := range v.NICs {
		conns = append(conns, api.NetworkConnection{Network: n.SubnetID, MacAddress: n.MAC, IPAddress: n.IP,
			Netmask: network.Netmask(n.Bits), IsConnected: connected})
	}
	t, err := s.tasks.NewTask(OpGetNetworks, api.Entity{ID: v.ID, Kind: api.KindVM}, s.tenantOf(ctx, v.ProjectID), v.ProjectID)
	if err != nil {
		return nil, err
	}
	s.tasks.CompleteStep(t, 0)
	t.ResourceProperties = map[string]any{"networkConnections": conns}
	return t, nil
}

// AcquireFloatingIP gives a VM a floating IP of the controller's range on
// its NIC on subnet spec.NetworkID (default: its first NIC), charged as
// the project's sdn.floatingip.size. A subnet the VM has no NIC on, its
// own project's or not, is SubnetNotFound.
func (s *Service) AcquireFloatingIP(ctx context.Context, id string, spec *api.FloatingIPSpec) (*api.Task, error) {
	if spec.NetworkID != "" && !validID(spec.NetworkID) {
		return nil, api.FieldError("networkId", "want a subnet id")
	}
	return s.vmOp(ctx, id, OpAcquireFIP, 1, nil, func(tx *store.Txn, v *vmRecord) error {
		if v.State == api.VMError || !v.Reserved {
			return api.Errorf("InvalidVmState", "VM %s is %s", v.Name, v.State)
		}
		if v.FloatingIP != "" {
			return api.Errorf("InvalidVmState", "VM %s has floating IP %s; release it first", v.Name, v.FloatingIP)
		}
		i := slices.IndexFunc(v.NICs, func(n network.Port) bool { return spec.NetworkID == "" || n.SubnetID == spec.NetworkID })
		if i < 0 {
			if spec.NetworkID == "" {
				return api.Errorf("InvalidVmState", "VM %s has no NIC", v.Name)
			}
			e := api.Errorf(api.CodeSubnetNotFound, "subnet %s not found", spec.NetworkID)
			e.Data = map[string]string{"field": "networkId"}
			return e
		}
		cost := []api.QuotaLineItem{{Key: network.FloatingQuotaKey, Value: 1, Unit: api.UnitCount}}
		if err := tenancy.ChargeProject(ctx, tx, v.ProjectID, cost, +1); err != nil {
			return err
		}
		ip, err := network.AcquireFloating(ctx, s.st, tx, s.cfg.FloatingIPs, v.ID, v.NICs[i].ID)
		if err != nil {
			return err
		}
		v.FloatingIP, v.NICs[i].FloatingIP = ip, ip
		v.Cost = tenancy.SumCost(v.Cost, cost)
		return putVM(tx, v)
	})
}

// ReleaseFloatingIP returns a VM's floating IP (none: nothing to do).
func (s *Service) ReleaseFloatingIP(ctx context.Context, id string) (*api.Task, error) {
	return s.vmOp(ctx, id, OpReleaseFIP, 1, nil, func(tx *store.Txn, v *vmRecord) error {
		if v.FloatingIP == "" {
			return nil
		}
		if err := network.ReleaseFloating(ctx, tx, v.FloatingIP, v.ID); err != nil {
			return err
		}
		cost := []api.QuotaLineItem{{Key: network.FloatingQuotaKey, Value: 1, Unit: api.UnitCount}}
		if v.Charged {
			if err := tenancy.ChargeProject(ctx, tx, v.ProjectID, cost, -1); err != nil {
				return err
			}
		}
		v.Cost = tenancy.SumCost(v.Cost, []api.QuotaLineItem{{Key: network.FloatingQuotaKey, Value: -1, Unit: api.UnitCount}})
		v.Cost = slices.DeleteFunc(v.Cost, func(c api.QuotaLineItem) bool { return c.Key == network.FloatingQuotaKey && c.Value == 0 })
		v.FloatingIP = ""
		for i := range v.NICs {
			v.NICs[i].FloatingIP = ""
		}
		return putVM(tx, v)
	})
}

package compute

import (
	"context"
	"errors"
	"math"
	"slices"
	"strconv"

	"github.com/google/uuid"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/hosts"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tasks"
	"github.com/photon-cloud/photon/internal/tenancy"
)

// diskRecord is a persistent disk as stored.
type diskRecord struct {
	api.PersistentDisk
	DatastoreID string `json:"datastoreId"`
	FlavorID    string `json:"flavorId"`
}

func (s *Service) getDisk(ctx context.Context, tx *store.Txn, id string) (*diskRecord, error) {
	var d diskRecord
	if !validID(id) {
		return nil, diskNotFound(id)
	}
	if err := tx.MustGet(ctx, diskKey(id), &d); errors.Is(err, store.ErrNotFound) {
		return nil, diskNotFound(id)
	} else if err != nil {
		return nil, err
	}
	return &d, nil
}

func (d *diskRecord) api() *api.PersistentDisk {
	out := d.PersistentDisk
	out.Kind = api.KindPersistentDisk
	if out.VMs == nil {
		out.VMs = []string{}
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	return &out
}

// GetDisk reads a disk.
func (s *Service) GetDisk(ctx context.Context, id string) (*api.PersistentDisk, error) {
	d, err := s.getDisk(ctx, s.st.PlainTxn(), id)
	if err != nil {
		return nil, err
	}
	return d.api(), nil
}

// ListDisks lists a project's disks (by name), or the one named name.
func (s *Service) ListDisks(ctx context.Context, projectID, name, token string, size int) ([]api.PersistentDisk, string, error) {
	var recs []diskRecord
	var next string
	var err error
	if name != "" {
		var id string
		if _, err := s.st.Get(ctx, diskNameKey(projectID, name), &id); errors.Is(err, store.ErrNotFound) {
			return []api.PersistentDisk{}, "", nil
		} else if err != nil {
			return nil, "", err
		}
		if d, err := s.getDisk(ctx, s.st.PlainTxn(), id); err == nil {
			recs = append(recs, *d)
		}
	} else if recs, next, err = store.PageOf[diskRecord](ctx, s.st, store.Prefix("names", "disks", projectID), token, size, diskKey); err != nil {
		return nil, "", err
	}
	out := make([]api.PersistentDisk, len(recs))
	for i := range recs {
		out[i] = *recs[i].api()
	}
	return out, next, nil
}

// CreateDisk creates a persistent disk on a datastore (one the affine VM's
// host sees, if given), charging its flavor's cost and capacity.
func (s *Service) CreateDisk(ctx context.Context, projectID string, spec *api.DiskCreateSpec) (*api.Task, error) {
	if err := api.ValidateName("name", spec.Name); err != nil {
		return nil, err
	}
	if err := api.ValidateTags("tags", spec.Tags); err != nil {
		return nil, err
	}
	if spec.Kind != api.KindPersistentDisk && spec.Kind != "" {
		return nil, api.FieldError("kind", "want persistent-disk, got %q", spec.Kind)
	}
	if spec.Flavor == "" {
		return nil, api.FieldError("flavor", "is required (a persistent-disk flavor)")
	}
	if math.IsNaN(spec.CapacityGB) || spec.CapacityGB <= 0 || spec.CapacityGB > 1<<20 {
		return nil, api.FieldError("capacityGb", "want more than 0 and at most 1048576 GB")
	}
	var p api.Project
	if !validID(projectID) {
		return nil, api.Errorf(api.CodeProjectNotFound, "project %s not found", projectID)
	}
	if _, err := s.st.Get(ctx, store.Key("projects", projectID), &p); err != nil {
		return nil, api.Errorf(api.CodeProjectNotFound, "project %s not found", projectID)
	}
	var candidates []string
	for i, a := range spec.Affinities {
		if a.Kind != "vm" {
			return nil, api.FieldError("affinities["+strconv.Itoa(i)+"].kind", "want vm, got %q", a.Kind)
		}
		v, err := s.getVM(ctx, s.st.PlainTxn(), a.ID)
		if err != nil || v.ProjectID != projectID || v.HostID == "" {
			return nil, api.FieldError("affinities["+strconv.Itoa(i)+"].id", "no placed VM %s in this project", a.ID)
		}
		h, err := s.hosts.Get(ctx, v.HostID)
		if err != nil {
			return nil, err
		}
		candidates = append(candidates, h.DatastoreIDs...)
	}
	if spec.Affinities != nil && candidates == nil {
		candidates = []string{}
	}
	dsID, err := s.hosts.PlaceDisk(ctx, spec.CapacityGB, candidates)
	if err != nil {
		return nil, err
	}
	id := uuid.Must(uuid.NewV7()).String()
	return s.submit(ctx, OpCreateDisk, api.Entity{ID: id, Kind: api.KindPersistentDisk}, p.TenantID, projectID, 1, func(tx *store.Txn, t *api.Task) error {
		if taken, err := tx.Exists(ctx, diskNameKey(projectID, spec.Name)); err != nil {
			return err
		} else if taken {
			e := api.Errorf(api.CodeNameTaken, "a disk named %q exists in the project", spec.Name)
			e.Data = map[string]string{"field": "name"}
			return e
		}
		f, err := tenancy.AcquireFlavorNamed(ctx, tx, api.FlavorKindPersistentDisk, spec.Flavor, "flavor")
		if err != nil {
			return err
		}
		cost := tenancy.SumCost(f.Cost, []api.QuotaLineItem{{Key: api.KindPersistentDisk + ".capacity", Value: spec.CapacityGB, Unit: api.UnitGB}})
		if err := tenancy.ChargeProject(ctx, tx, projectID, cost, +1); err != nil {
			return err
		}
		if err := s.hosts.ReserveDatastore(ctx, tx, dsID, spec.CapacityGB); err != nil {
			return err
		}
		d := diskRecord{PersistentDisk: api.PersistentDisk{Base: api.Base{ID: id, Kind: api.KindPersistentDisk},
			Name: spec.Name, Flavor: f.Name, CapacityGB: spec.CapacityGB, Datastore: dsID, State: api.DiskDetached,
			VMs: []string{}, Cost: cost, Tags: orEmpty(spec.Tags), ProjectID: projectID}, DatastoreID: dsID, FlavorID: f.ID}
		for _, put := range []struct {
			k string
			v any
		}{{diskNameKey(projectID, spec.Name), id}, {diskKey(id), &d}} {
			if err := tx.Put(put.k, put.v); err != nil {
				return err
			}
		}
		return nil
	})
}

// DeleteDisk deletes a detached disk, returning its datastore space and quota.
func (s *Service) DeleteDisk(ctx context.Context, id string) (*api.Task, error) {
	d, err := s.getDisk(ctx, s.st.PlainTxn(), id)
	if err != nil {
		return nil, err
	}
	return s.submit(ctx, OpDeleteDisk, api.Entity{ID: id, Kind: api.KindPersistentDisk}, s.tenantOf(ctx, d.ProjectID), d.ProjectID, 1, func(tx *store.Txn, t *api.Task) error {
		d, err := s.getDisk(ctx, tx, id)
		if err != nil {
			return err
		}
		if d.State != api.DiskDetached || len(d.VMs) > 0 {
			return api.Errorf("PersistentDiskAttached", "disk %s is attached to VM %v; detach it first", d.Name, d.VMs)
		}
		if holder, err := lockedBy(ctx, tx, id); err != nil {
			return err
		} else if holder != "" {
			return api.Errorf(api.CodeConcurrentTask, "disk %s is busy with task %s", d.Name, holder)
		}
		if err := tenancy.ChargeProject(ctx, tx, d.ProjectID, d.Cost, -1); err != nil {
			return err
		}
		if err := s.hosts.ReserveDatastore(ctx, tx, d.DatastoreID, -d.CapacityGB); err != nil {
			return err
		}
		if err := tenancy.ReleaseFlavor(ctx, tx, d.FlavorID); err != nil {
			return err
		}
		// The host holding the disk's files deletes them.
		if host, err := s.hosts.DiskHost(ctx, tx, d.DatastoreID); err != nil {
			return err
		} else if host != "" {
			gone := api.DiskDesired{ID: id, Kind: api.KindPersistentDisk, Datastore: hosts.LocalName(d.DatastoreID), CapacityGB: d.CapacityGB}
			if err := tx.Put(hosts.DiskGCKey(host, id), gone); err != nil {
				return err
			}
		}
		tx.Delete(diskKey(id))
		tx.Delete(diskNameKey(d.ProjectID, d.Name))
		tx.Delete(projectDiskKey(d.ProjectID, id))
		return nil
	})
}

// AttachDisk attaches a detached disk to a VM whose host sees its datastore.
func (s *Service) AttachDisk(ctx context.Context, vmID, diskID string) (*api.Task, error) {
	return s.diskOp(ctx, vmID, diskID, OpAttachDisk, func(tx *store.Txn, v *vmRecord, d *diskRecord, t *api.Task) error {
		if d.State != api.DiskDetached {
			return api.Errorf("PersistentDiskAttached", "disk %s is %s", d.Name, d.State)
		}
		h, err := s.hosts.HostOf(ctx, tx, v.HostID)
		if err != nil {
			return err
		}
		if !slices.Contains(h.DatastoreIDs, d.DatastoreID) {
			return api.Errorf("UnfullfillableAffinities", "VM %s's host %s does not see datastore %s of disk %s", v.Name, h.Address, d.DatastoreID, d.Name)
		}
		d.State, d.VMs = api.DiskAttached, []string{v.ID}
		return tx.Put(diskKey(d.ID), d)
	})
}

// DetachDisk detaches a persistent disk from a VM.
func (s *Service) DetachDisk(ctx context.Context, vmID, diskID string) (*api.Task, error) {
	return s.diskOp(ctx, vmID, diskID, OpDetachDisk, func(tx *store.Txn, v *vmRecord, d *diskRecord, t *api.Task) error {
		if !slices.Contains(d.VMs, v.ID) {
			return api.Errorf("InvalidEntity", "disk %s is not attached to VM %s", d.Name, v.Name)
		}
		return nil
	})
}

// diskOp submits an attach or detach: the step changes the VM's desired
// disks and waits for its host.
func (s *Service) diskOp(ctx context.Context, vmID, diskID, op string, check func(*store.Txn, *vmRecord, *diskRecord, *api.Task) error) (*api.Task, error) {
	if diskID == "" {
		return nil, api.FieldError("diskId", "is required")
	}
	return s.vmOp(ctx, vmID, op, 0, nil, func(tx *store.Txn, v *vmRecord) error {
		if err := s.hostUsable(ctx, tx, v); err != nil {
			return err
		}
		d, err := s.getDisk(ctx, tx, diskID)
		if err != nil || d.ProjectID != v.ProjectID {
			return diskNotFound(diskID)
		}
		if v.State != api.VMStopped && v.State != api.VMStarted {
			return api.Errorf("InvalidVmState", "VM %s is %s", v.Name, v.State)
		}
		return check(tx, v, d, nil)
	}, "diskId", diskID)
}

// attachStep and detachStep are diskStep with the change to make.
func (s *Service) stepAttach(ctx context.Context, tx *store.Txn, t *api.Task) error {
	return s.diskStep(ctx, tx, t, true)
}

func (s *Service) stepDetach(ctx context.Context, tx *store.Txn, t *api.Task) error {
	return s.diskStep(ctx, tx, t, false)
}

func (s *Service) diskStep(ctx context.Context, tx *store.Txn, t *api.Task, attach bool) error {
	v, err := s.getVM(ctx, tx, t.Entity.ID)
	if err != nil {
		return err
	}
	opts := t.Steps[0].Options
	d, err := s.getDisk(ctx, tx, opts["diskId"])
	if err != nil {
		return err
	}
	gen, _ := strconv.ParseInt(opts["generation"], 10, 64)
	if gen == 0 {
		v.Disks = slices.DeleteFunc(v.Disks, func(x api.DiskDesired) bool { return x.ID == d.ID })
		v.AttachedDisks = slices.DeleteFunc(v.AttachedDisks, func(x api.AttachedDisk) bool { return x.ID == d.ID })
		if attach {
			v.Disks = append(v.Disks, api.DiskDesired{ID: d.ID, Kind: api.KindPersistentDisk, Datastore: hosts.LocalName(d.DatastoreID), CapacityGB: d.CapacityGB})
			v.AttachedDisks = append(v.AttachedDisks, api.AttachedDisk{ID: d.ID, Name: d.Name, Kind: api.KindPersistentDisk,
				Flavor: d.Flavor, CapacityGB: d.CapacityGB, State: api.DiskAttached})
		}
		v.Generation++
		v.HostErr = ""
		opts["generation"] = strconv.FormatInt(v.Generation, 10)
		if err := putVM(tx, v); err != nil {
			return err
		}
		return tasks.ErrWait
	}
	if err := s.waitHost(v, t, 0, gen); err != nil {
		return err
	}
	if !attach {
		d.State, d.VMs = api.DiskDetached, []string{}
		return tx.Put(diskKey(d.ID), d)
	}
	return nil
}

// undoAttach: the host could not attach; the disk is detached again.
func (s *Service) undoAttach(ctx context.Context, tx *store.Txn, t *api.Task, _ *api.Error) error {
	v, err := s.getVM(ctx, tx, t.Entity.ID)
	if err != nil {
		return nil
	}
	id := t.Steps[0].Options["diskId"]
	if slices.ContainsFunc(v.Disks, func(x api.DiskDesired) bool { return x.ID == id }) {
		v.Disks = slices.DeleteFunc(v.Disks, func(x api.DiskDesired) bool { return x.ID == id })
		v.AttachedDisks = slices.DeleteFunc(v.AttachedDisks, func(x api.AttachedDisk) bool { return x.ID == id })
		v.Generation++
		if err := putVM(tx, v); err != nil {
			return err
		}
	}
	if d, err := s.getDisk(ctx, tx, id); err == nil {
		d.State, d.VMs = api.DiskDetached, []string{}
		return tx.Put(diskKey(d.ID), d)
	}
	return nil
}

// Package compute owns VMs and persistent disks: their create specs,
// placement (through the scheduler) committed in one transaction with host
// usage and project quota, power operations and disk attachment as changes
// of the desired state a host's agent carries out, and the tasks that wait
// for the host to report it done. A task that fails releases what it
// reserved in the transaction that ends it.
//
// Keys (under store.Prefix):
//
//	vms/<id>, disks/<id>                    the objects (with placement)
//	project-vms/<project>/<id>, project-disks/<project>/<id>
//	names/vms/<project>/<name>, names/disks/<project>/<name>
//	desired/<host>/<vm>                     written here, read by agents (see hosts)
//
// A VM's ports (NICs) are allocated in its create's transaction
// (network.AllocatePorts: addresses, the project's sdn.size quota) and
// its host joins their subnets there (hosts.JoinSubnet); both are undone
// with the rest of the VM's reservation (releaseAll).
package compute

import (
	"bytes"
	"context"
	"errors"
	"github.com/google/uuid"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/hosts"
	"github.com/photon-cloud/photon/internal/network"
	"github.com/photon-cloud/photon/internal/scheduler"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tasks"
)

// Operations and steps.
const (
	OpCreateVM      = "CREATE_VM"
	OpDeleteVM      = "DELETE_VM"
	OpStartVM       = "START_VM"
	OpStopVM        = "STOP_VM"
	OpRestartVM     = "RESTART_VM"
	OpSuspendVM     = "SUSPEND_VM"
	OpResumeVM      = "RESUME_VM"
	OpAttachDisk    = "ATTACH_DISK"
	OpDetachDisk    = "DETACH_DISK"
	OpSetMetadata   = "SET_METADATA"
	OpAddTag        = "ADD_TAG"
	OpCreateDisk    = "CREATE_DISK"
	OpDeleteDisk    = "DELETE_DISK"
	OpGetNetworks   = "GET_NETWORKS"
	OpAcquireFIP    = "ACQUIRE_FLOATING_IP"
	OpReleaseFIP    = "RELEASE_FLOATING_IP"
	StepReserve     = "RESERVE_RESOURCE"
	StepRelease     = "RELEASE_RESOURCE"
	StepDeleteOnVM  = "DELETE_VM"
	StepCreateOnVM  = "CREATE_VM"
	StepStartOnVM   = "START_VM"
	StepStopOnVM    = "STOP_VM"
	StepSuspendOnVM = "SUSPEND_VM"
	StepResumeOnVM  = "RESUME_VM"
	StepAttach      = "ATTACH_DISK"
	StepDetach      = "DETACH_DISK"
)

// The images package's record of an image (images/<id>), its not-found
// code and its infrastructure scope: a VM create reads the record in its
// transaction to check the project may use the image (acquireImage).
const (
	codeImageNotFound   = "ImageNotFound"
	scopeInfrastructure = "infrastructure"
)

func imageKey(id string) string { return store.Key("images", id) }

// ImageUser lets VMs count as users of their source image (images package).
type ImageUser interface {
	// AcquireImage counts a user in tx and returns the image.
	AcquireImage(ctx context.Context, tx *store.Txn, id string) (*api.Image, error)
	ReleaseImage(ctx context.Context, tx *store.Txn, id string) error
}

// Config tunes the service.
type Config struct {
	// HostTimeout bounds how long a step waits for a host to act (default 2 min).
	HostTimeout time.Duration
	// MaxTxnOps is etcd's bound on the operations of one transaction
	// (default 128, etcd's default); group commits stay under it.
	MaxTxnOps int
	// FloatingIPs VMs may acquire (none: acquire_floating_ip is refused).
	FloatingIPs network.Range
}

// Service carries out VM and disk requests.
type Service struct {
	st     *store.Store
	tasks  *tasks.Engine
	hosts  *hosts.Service
	images ImageUser
	placer Placer
	batch  batcher
	// reports group-commits hosts' reports (Observe): each writes its
	// own VMs and their tasks.
	reports *store.Group
	seen    seenCache
	owners  owners
	log     *slog.Logger
	cfg     Config
	now     func() time.Time
}

// New returns the service and registers its operations. images may be nil
// (VMs without source images only).
func New(st *store.Store, engine *tasks.Engine, h *hosts.Service, images ImageUser, log *slog.Logger, cfg Config) (*Service, error) {
	if cfg.HostTimeout <= 0 {
		cfg.HostTimeout = 2 * time.Minute
	}
	if cfg.MaxTxnOps <= 0 {
		cfg.MaxTxnOps = 128
	}
	s := &Service{st: st, tasks: engine, hosts: h, images: images, log: log, cfg: cfg, now: time.Now, batch: batcher{st: st, maxOps: cfg.MaxTxnOps, id: uuid.NewString()},
		reports: st.NewGroup(cfg.MaxTxnOps, reportCommits)}
	if err := engine.Register(s.operations()...); err != nil {
		return nil, err
	}
	return s, nil
}

// owners remembers each project's tenant (a project never changes
// tenant), for the tasks of operations on the project's VMs and disks.
type owners struct {
	mu sync.Mutex
	m  map[string]string
}

// maxOwners bounds the projects remembered; beyond, it starts over.
const maxOwners = 1 << 16

// tenantOf returns the tenant of project id ("" if it cannot be read: the
// task then names no tenant, as before it had one).
func (s *Service) tenantOf(ctx context.Context, projectID string) string {
	s.owners.mu.Lock()
	t, ok := s.owners.m[projectID]
	s.owners.mu.Unlock()
	if ok {
		return t
	}
	var p api.Project
	if _, err := s.st.Get(ctx, store.Key("projects", projectID), &p); err != nil {
		return ""
	}
	s.owners.mu.Lock()
	defer s.owners.mu.Unlock()
	if s.owners.m == nil || len(s.owners.m) >= maxOwners {
		s.owners.m = map[string]string{}
	}
	s.owners.m[projectID] = p.TenantID
	return p.TenantID
}

// SetImages sets the image service once it exists.
func (s *Service) SetImages(images ImageUser) { s.images = images }

func vmKey(id string) string   { return store.Key("vms", id) }
func diskKey(id string) string { return store.Key("disks", id) }

// A project's VMs and disks are listed by their names' keys (each holds
// the id); records written before the names served were indexed under
// these keys too, deleted with the VM or disk.
func projectVMKey(pid, id string) string   { return store.Key("project-vms", pid, id) }
func projectDiskKey(pid, id string) string { return store.Key("project-disks", pid, id) }
func vmNameKey(pid, name string) string    { return store.Key("names", "vms", pid, name) }
func diskNameKey(pid, name string) string  { return store.Key("names", "disks", pid, name) }
func vmNotFound(id string) error           { return api.Errorf("VmNotFound", "VM %s not found", id) }
func diskNotFound(id string) error         { return api.Errorf("DiskNotFound", "disk %s not found", id) }
func validID(id string) bool               { return id != "" && len(id) <= 64 && !strings.ContainsAny(id, "/\x00") }
func lockedBy(ctx context.Context, tx *store.Txn, id string) (string, error) {
	var holder string
	_, err := tx.Get(ctx, lockKey(id), &holder)
	return holder, err
}

// vmRecord is a VM as stored: the API object plus what placement and the
// desired state need.
type vmRecord struct {
	api.VM
	// Placement and its reservation.
	DatastoreID string            `json:"datastoreId,omitempty"`
	Request     scheduler.Request `json:"request"`
	FlavorID    string            `json:"flavorId"`
	DiskFlavors []string          `json:"diskFlavors"`
	// Charged is what the project was charged (returned on delete).
	Charged  bool `json:"charged"`
	Reserved bool `json:"reserved"`
	// Desired and observed state.
	Power      string            `json:"power"`
	Generation int64             `json:"generation"`
	Observed   int64             `json:"observed"`
	Present    bool              `json:"present"`
	HostErr    string            `json:"hostError,omitempty"`
	Disks      []api.DiskDesired `json:"disks"`
	ImageSHA   string            `json:"imageSha,omitempty"`
	// NICs are the VM's ports, held from its create's reservation to its
	// release (network.AllocatePorts).
	NICs []network.Port `json:"nics,omitempty"`

	// stored is the desired state written with the record as read (see
	// getVM): putVM leaves it be when it is unchanged.
	stored []byte
}

// desired is what the VM's host should run.
func (v *vmRecord) desired() api.VMDesired {
	d := api.VMDesired{ID: v.ID, Name: v.Name, CPUCount: v.Request.CPU, MemoryMB: v.Request.MemoryMB,
		Power: v.Power, Disks: v.Disks, Environment: v.Environment, Metadata: v.Metadata, Generation: v.Generation}
	for _, n := range v.NICs {
		d.NICs = append(d.NICs, n.NICDesired)
	}
	return d
}

// putVM writes the VM and, if placed and not being deleted, its desired state.
//
// A desired state is written only when it changes: a new revision of it
// wakes the host's long poll, and the host then reads its whole desired
// state again and reports (e.g. a VM's create ending changes only the VM's
// state, which the host is not told).
func putVM(tx *store.Txn, v *vmRecord) error {
	if b, ok := v.desiredJSON(); ok && !bytes.Equal(b, v.stored) {
		tx.PutRaw(hosts.DesiredKey(v.HostID, v.ID), b)
	}
	return tx.Put(vmKey(v.ID), v)
}

// desiredJSON is the VM's desired state, encoded; false when it has none
// (not placed, or released).
func (v *vmRecord) desiredJSON() ([]byte, bool) {
	if v.HostID == "" || !v.Reserved {
		return nil, false
	}
	b, err := store.Encode(v.desired())
	return b, err == nil
}

func (s *Service) getVM(ctx context.Context, tx *store.Txn, id string) (*vmRecord, error) {
	if !validID(id) {
		return nil, vmNotFound(id)
	}
	v, _ := tx.Take(vmKey(id)) // what a report wrote (observeSome)
	r, ok := v.(*vmRecord)
	if !ok {
		r = new(vmRecord)
		if err := tx.MustGet(ctx, vmKey(id), r); errors.Is(err, store.ErrNotFound) {
			return nil, vmNotFound(id)
		} else if err != nil {
			return nil, err
		}
	}
	// The desired state is written in the same transactions as the
	// record: this is what it holds.
	r.stored, _ = r.desiredJSON()
	return r, nil
}

// GetVM reads a VM.
func (s *Service) GetVM(ctx context.Context, id string) (*api.VM, error) {
	v, err := s.getVM(ctx, s.st.PlainTxn(), id)
	if err != nil {
		return nil, err
	}
	return v.api(), nil
}

// api returns the VM as users see it.
func (v *vmRecord) api() *api.VM {
	out := v.VM
	out.Kind = api.KindVM
	if out.AttachedDisks == nil {
		out.AttachedDisks = []api.AttachedDisk{}
	}
	if out.AttachedIsos == nil {
		out.AttachedIsos = []string{}
	}
	if out.Metadata == nil {
		out.Metadata = map[string]string{}
	}
	if out.Tags == nil {
		out.Tags = []string{}
	}
	if out.Cost == nil {
		out.Cost = []api.QuotaLineItem{}
	}
	return &out
}

// ListVMs lists a project's VMs (by name), or the one named name.
func (s *Service) ListVMs(ctx context.Context, projectID, name, token string, size int) ([]api.VM, string, error) {
	var recs []vmRecord
	var next string
	var err error
	if name != "" {
		var id string
		if _, err := s.st.Get(ctx, vmNameKey(projectID, name), &id); errors.Is(err, store.ErrNotFound) {
			return []api.VM{}, "", nil
		} else if err != nil {
			return nil, "", err
		}
		var v vmRecord
		if _, err := s.st.Get(ctx, vmKey(id), &v); err == nil {
			recs = append(recs, v)
		}
	} else if recs, next, err = store.PageOf[vmRecord](ctx, s.st, store.Prefix("names", "vms", projectID), token, size, vmKey); err != nil {
		return nil, "", err
	}
	out := make([]api.VM, len(recs))
	for i := range recs {
		out[i] = *recs[i].api()
	}
	return out, next, nil
}

// HostVMs lists the VMs placed on a host.
func (s *Service) HostVMs(ctx context.Context, hostID, token string, size int) ([]api.VM, string, error) {
	ds, next, err := store.PageOf[api.VMDesired](ctx, s.st, hosts.DesiredPrefix(hostID), token, size, nil)
	if err != nil {
		return nil, "", err
	}
	out := make([]api.VM, 0, len(ds))
	for _, d := range ds {
		var v vmRecord
		if _, err := s.st.Get(ctx, vmKey(d.ID), &v); err == nil {
			out = append(out, *v.api())
		}
	}
	return out, next, nil
}

// Counts returns the number of VMs (for system usage).
func (s *Service) Counts(ctx context.Context) (int, error) {
	return s.st.Count(ctx, store.Prefix("vms"))
}

// submit validates and writes a request's synchronous part with its task in
// one transaction, then runs the task as far as it goes now.
func (s *Service) submit(ctx context.Context, op string, entity api.Entity, tenantID, projectID string, syncSteps int,
	fn func(tx *store.Txn, t *api.Task) error) (*api.Task, error) {
	var task *api.Task
	var waiting bool
	_, err := s.st.Update(ctx, func(tx *store.Txn) error {
		var err error
		if task, err = s.tasks.NewTask(op, entity, tenantID, projectID); err != nil {
			return err
		}
		if err := fn(tx, task); err != nil {
			return err
		}
		if waiting, err = s.begin(ctx, tx, task, syncSteps); err != nil {
			return err
		}
		return s.tasks.Submit(ctx, tx, task)
	})
	if err != nil {
		return nil, err
	}
	return s.carryOn(ctx, task, waiting), nil
}

// begin marks done the first syncSteps steps of t (the request did them
// in tx) and, if the next one only sets what the host should do and waits
// for it (a power change, a delete), starts it in tx too: Observe kicks
// the task when the host has acted. It reports whether t now waits.
func (s *Service) begin(ctx context.Context, tx *store.Txn, t *api.Task, syncSteps int) (bool, error) {
	for i := 0; i < syncSteps; i++ {
		s.tasks.CompleteStep(t, i)
	}
	return s.tasks.StartInline(ctx, tx, t)
}

// carryOn runs a submitted task as far as it goes now, unless it is done
// or waits for its host, and returns it as it then is.
func (s *Service) carryOn(ctx context.Context, task *api.Task, waiting bool) *api.Task {
	if task.Done() || waiting {
		return task
	}
	t, err := s.tasks.Run(ctx, task.ID)
	if err != nil || t == nil {
		return task // persisted; the engine carries it on
	}
	return t
}

// waitHost is the common end of a step that waits for the VM's host to
// carry out generation gen: done, still waiting, or failed.
func (s *Service) waitHost(v *vmRecord, t *api.Task, step int, gen int64) error {
	if v.Observed >= gen && v.HostErr == "" {
		return nil
	}
	if v.HostErr != "" && v.Observed < gen {
		return api.Errorf("HostError", "host %s: %s", v.Host, v.HostErr)
	}
	started := time.UnixMilli(t.Steps[step].StartedTime)
	if t.Steps[step].StartedTime > 0 && s.now().Sub(started) > s.cfg.HostTimeout {
		return api.Errorf("HostTimeout", "host %s did not act within %s", v.Host, s.cfg.HostTimeout)
	}
	return tasks.ErrWait
}

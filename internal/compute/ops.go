package compute

import (
	"context"
	"slices"
	"strconv"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tasks"
)

// powerFrom lists the states each power operation may start from.
var powerFrom = map[string][]string{
	OpStartVM:   {api.VMStopped, api.VMStarted},
	OpStopVM:    {api.VMStarted, api.VMSuspended, api.VMStopped},
	OpRestartVM: {api.VMStarted},
	OpSuspendVM: {api.VMStarted, api.VMSuspended},
	OpResumeVM:  {api.VMSuspended, api.VMStarted},
}

// vmOp submits an operation on a VM after check passes on the VM as read in
// the submitting transaction. reads, when not nil, are the keys the
// operation reads besides the VM's record and lock (the host's record
// comes from the hosts' cache); nil: unknown, the batch learns them on a
// scratch run (see gathering.add).
// Pairs in opts ("diskId", id, ...) go into the task's step options.
func (s *Service) vmOp(ctx context.Context, id, op string, syncSteps int, reads []string, check func(tx *store.Txn, v *vmRecord) error, opts ...string) (*api.Task, error) {
	// Group-committed like creates: concurrent operations on VMs (a
	// thousand clients starting what they created) share transactions
	// instead of one raft proposal each, and a refusal (the VM's state,
	// another task holding it) stands only once the batch's commit has
	// confirmed the reads it rests on.
	var waiting bool
	task, err := s.submitBatched(ctx, op, api.Entity{ID: id, Kind: api.KindVM}, "", "", func(tx *store.Txn, t *api.Task, _ bool) error {
		v, err := s.getVM(ctx, tx, id)
		if err != nil {
			return err
		}
		t.ProjectID, t.TenantID = v.ProjectID, s.tenantOf(ctx, v.ProjectID)
		for i := range t.Steps {
			for j := 0; j+1 < len(opts); j += 2 {
				t.Steps[i].Options[opts[j]] = opts[j+1]
			}
		}
		if err := check(tx, v); err != nil {
			return err
		}
		waiting, err = s.begin(ctx, tx, t, syncSteps)
		return err
	}, batchReads{all: readsWith(reads, vmKey(id))})
	if err != nil {
		return nil, err
	}
	return s.carryOn(ctx, task, waiting), nil
}

// readsVMOnly is vmOp's reads of an operation that reads nothing but the
// VM's record and lock (and the host's record, cached). Not nil: nil is
// "unknown".
var readsVMOnly = []string{}

// readsWith is reads and keys, or nil (unknown) if reads is.
func readsWith(reads []string, keys ...string) []string {
	if reads == nil {
		return nil
	}
	return append(slices.Clip(reads), keys...)
}

// hostUsable refuses operations that need a host that is down.
func (s *Service) hostUsable(ctx context.Context, tx *store.Txn, v *vmRecord) error {
	if v.HostID == "" || !v.Reserved {
		return api.Errorf("InvalidVmState", "VM %s is %s and not on a host", v.Name, v.State)
	}
	h, err := s.hosts.HostOf(ctx, tx, v.HostID)
	if err != nil {
		return err
	}
	if h.State == api.HostError {
		return api.Errorf("InvalidHostState", "VM %s's host %s is ERROR (%s)", v.Name, h.Address, h.Reason)
	}
	return nil
}

// Power starts, stops, restarts, suspends or resumes a VM (op is one of
// the Op*VM power operations).
func (s *Service) Power(ctx context.Context, id, op string) (*api.Task, error) {
	from, ok := powerFrom[op]
	if !ok {
		return nil, api.Errorf(api.CodeInvalidEntity, "unknown operation %s", op)
	}
	return s.vmOp(ctx, id, op, 0, readsVMOnly, func(tx *store.Txn, v *vmRecord) error {
		if !slices.Contains(from, v.State) {
			return api.Errorf("InvalidVmState", "VM %s is %s; %s needs it %v", v.Name, v.State, op, from)
		}
		return s.hostUsable(ctx, tx, v)
	})
}

// powerStep sets the VM's desired power (once, remembering the generation
// in the step's options) and waits for its host to reach it.
func (s *Service) powerStep(power string) tasks.StepFunc {
	return func(ctx context.Context, tx *store.Txn, t *api.Task) error {
		v, err := s.getVM(ctx, tx, t.Entity.ID)
		if err != nil {
			return err
		}
		i := stepIndex(t)
		opts := t.Steps[i].Options
		gen, _ := strconv.ParseInt(opts["generation"], 10, 64)
		if gen == 0 {
			v.Power = power
			v.Generation++
			v.HostErr = ""
			opts["generation"] = strconv.FormatInt(v.Generation, 10)
			if err := putVM(tx, v); err != nil {
				return err
			}
			return tasks.ErrWait
		}
		if err := s.waitHost(v, t, i, gen); err != nil {
			return err
		}
		if v.State != power {
			v.State = power
			return putVM(tx, v)
		}
		return nil
	}
}

// undoPower: the host failed to act; ask it for what it last showed.
func (s *Service) undoPower(ctx context.Context, tx *store.Txn, t *api.Task, _ *api.Error) error {
	v, err := s.getVM(ctx, tx, t.Entity.ID)
	if err != nil {
		return nil
	}
	if v.Power != v.State && (v.State == api.VMStarted || v.State == api.VMStopped || v.State == api.VMSuspended) {
		v.Power = v.State
		v.Generation++
	}
	return putVM(tx, v)
}

func stepIndex(t *api.Task) int {
	for i := range t.Steps {
		if t.Steps[i].State != api.TaskCompleted {
			return i
		}
	}
	return len(t.Steps) - 1
}

// DeleteVM deletes a STOPPED or ERROR VM: its host removes it, then what it
// held is released. Attached persistent disks are detached.
func (s *Service) DeleteVM(ctx context.Context, id string) (*api.Task, error) {
	return s.vmOp(ctx, id, OpDeleteVM, 0, nil, func(tx *store.Txn, v *vmRecord) error {
		if v.State != api.VMStopped && v.State != api.VMError && v.State != api.VMCreating {
			return api.Errorf("InvalidVmState", "VM %s is %s; stop it before deleting", v.Name, v.State)
		}
		return nil
	})
}

func (s *Service) stepDeleteOnHost(ctx context.Context, tx *store.Txn, t *api.Task) error {
	v, err := s.getVM(ctx, tx, t.Entity.ID)
	if err != nil {
		return nil // already gone
	}
	if !v.Reserved || v.HostID == "" {
		return nil
	}
	opts := t.Steps[0].Options
	if opts["removed"] == "" {
		// The host's desired state keeps the VM, as DELETED, until the
		// release step: so its reports of the VM still count.
		opts["removed"] = "true"
		v.Power = api.VMDeleted
		v.Generation++
		if err := putVM(tx, v); err != nil {
			return err
		}
		return tasks.ErrWait
	}
	if !v.Present {
		return nil
	}
	// A host that is down, or slow past the timeout, cleans up when it can:
	// it converges on its desired state, which no longer holds the VM.
	if h, err := s.hosts.HostOf(ctx, tx, v.HostID); err != nil || h.State == api.HostError {
		return nil
	}
	if s.now().Sub(time.UnixMilli(t.Steps[0].StartedTime)) > s.cfg.HostTimeout {
		s.log.Warn("host did not confirm VM removal; releasing anyway", "vm", v.ID, "host", v.HostID)
		return nil
	}
	return tasks.ErrWait
}

func (s *Service) stepRelease(ctx context.Context, tx *store.Txn, t *api.Task) error {
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
	tx.Delete(vmKey(v.ID))
	tx.Delete(vmNameKey(v.ProjectID, v.Name))
	tx.Delete(projectVMKey(v.ProjectID, v.ID))
	return nil
}

// SetMetadata replaces a VM's metadata.
func (s *Service) SetMetadata(ctx context.Context, id string, md map[string]string) (*api.Task, error) {
	if err := api.ValidateStringMap("metadata", md); err != nil {
		return nil, err
	}
	return s.vmOp(ctx, id, OpSetMetadata, 1, nil, func(tx *store.Txn, v *vmRecord) error {
		v.Metadata = md
		if v.Metadata == nil {
			v.Metadata = map[string]string{}
		}
		return putVM(tx, v)
	})
}

// AddTag adds a tag to a VM.
func (s *Service) AddTag(ctx context.Context, id, tag string) (*api.Task, error) {
	if tag == "" || len(tag) > api.MaxTag {
		return nil, api.FieldError("value", "a tag is 1-%d characters", api.MaxTag)
	}
	return s.vmOp(ctx, id, OpAddTag, 1, nil, func(tx *store.Txn, v *vmRecord) error {
		if !slices.Contains(v.Tags, tag) {
			if len(v.Tags) >= api.MaxTags {
				return api.FieldError("value", "VM %s has %d tags, at most %d allowed", v.Name, len(v.Tags), api.MaxTags)
			}
			v.Tags = append(v.Tags, tag)
		}
		return tx.Put(vmKey(v.ID), v)
	})
}

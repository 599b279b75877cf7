package fake

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
	"github.com/photon-cloud/photon/internal/driver/drivercore"
)

// vm is one simulated VM, as stored in vms/<id>.json.
type vm struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	CPUCount int    `json:"cpuCount"`
	MemoryMB int64  `json:"memoryMb"`
	// Power is STARTED, STOPPED, SUSPENDED or ERROR (crashed).
	Power      string `json:"power"`
	Generation int64  `json:"generation"`
	Error      string `json:"error,omitempty"`
	// CrashAt is when a STARTED VM crashes (CrashAfter); zero for never.
	CrashAt time.Time `json:"crashAt,omitzero"`
	// Disks attached, in spec order, ephemeral and persistent.
	Disks []*disk `json:"disks"`
	// NICs of the last spec carried out, MACs in lower case.
	NICs []api.NICDesired `json:"nics,omitempty"`
	// Console is the VM's synthetic serial console (see console.go): a
	// line per change, the last maxConsole bytes of it; ConsoleBase is the
	// offset of its first byte in everything ever written.
	Console     string `json:"console,omitempty"`
	ConsoleBase int64  `json:"consoleBase,omitempty"`
}

// disk is one simulated disk.
type disk struct {
	ID         string  `json:"id"`
	Kind       string  `json:"kind"`
	Datastore  string  `json:"datastore"`
	CapacityGB float64 `json:"capacityGb"`
	BootDisk   bool    `json:"bootDisk,omitempty"`
	ImageID    string  `json:"imageId,omitempty"`
	// vm is the VM it is attached to; derived, not stored.
	vm string
}

// power is the VM's state at now, with a due crash applied.
func (d *Driver) power(v *vm, now time.Time) string {
	if v.Power == api.VMStarted && !v.CrashAt.IsZero() && !now.Before(v.CrashAt) {
		return api.VMError
	}
	return v.Power
}

func (d *Driver) observe(v *vm, now time.Time) driver.VMStatus {
	st := driver.VMStatus{ID: v.ID, State: d.power(v, now), Generation: v.Generation, Error: v.Error}
	if st.State == api.VMError && v.Power == api.VMStarted && st.Error == "" {
		st.Error = fmt.Sprintf("fake: VM crashed after running %s (CrashAfter)", d.cfg.CrashAfter)
	}
	return st
}

// Ensure makes the VM match spec; see the package doc for the semantics.
func (d *Driver) Ensure(ctx context.Context, spec driver.VMSpec) (driver.VMStatus, error) {
	if err := d.validate(spec); err != nil {
		return d.failed(spec.ID, err)
	}
	d.mu.Lock()
	v := d.vms[spec.ID]
	busy := v == nil || !d.upToDate(v, spec, time.Now())
	delay := d.delayLocked()
	d.mu.Unlock()
	if busy {
		if err := sleep(ctx, delay); err != nil {
			return d.failed(spec.ID, fmt.Errorf("fake: ensure VM %s: %w", spec.ID, err))
		}
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ensureLocked(spec, time.Now())
}

// failed reports err with the VM's current state (or ERROR if it does not
// exist). A refused spec is recorded as the VM's Error, so List shows why
// its generation was not carried out; a cancelled call is not.
func (d *Driver) failed(id string, err error) (driver.VMStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.vms[id]
	if !ok {
		return driver.VMStatus{ID: id, State: api.VMError, Error: err.Error()}, err
	}
	if errors.Is(err, ErrInvalidSpec) && v.Error != err.Error() {
		next := *v
		next.Error = err.Error()
		if d.write(vmsDir, v.ID, &next) == nil {
			*v = next
		}
	}
	st := d.observe(v, time.Now())
	st.Error = err.Error()
	return st, err
}

// upToDate: Ensure would change nothing.
func (d *Driver) upToDate(v *vm, spec driver.VMSpec, now time.Time) bool {
	return drivercore.UpToDate(v.Generation, d.power(v, now), v.Disks, func(dk *disk) string { return dk.ID }, spec)
}

func wantPower(spec driver.VMSpec) string { return drivercore.WantPower(spec) }

// validate checks what does not depend on the VM's current state.
func (d *Driver) validate(spec driver.VMSpec) error {
	return core.ValidateSpec(spec, drivercore.Host{
		CPUCount: d.cfg.CPUCount, MemoryMB: d.cfg.MemoryMB,
		HasDatastore: func(name string) bool { return d.datastore(name) >= 0 },
	})
}

// inject applies the Ensure fault knobs.
func (d *Driver) inject(spec driver.VMSpec) error {
	if slices.Contains(d.cfg.FailOnNames, spec.Name) {
		return fmt.Errorf("fake: VM %s: name %q is in FailOnNames: %w", spec.ID, spec.Name, ErrInjected)
	}
	if f := d.cfg.FailEnsureFunc; f != nil {
		if err := f(spec); err != nil {
			return fmt.Errorf("fake: VM %s: %w: %w", spec.ID, ErrInjected, err)
		}
	}
	if d.chanceLocked(d.cfg.FailEnsure) {
		return fmt.Errorf("fake: VM %s: FailEnsure: %w", spec.ID, ErrInjected)
	}
	return nil
}

func (d *Driver) ensureLocked(spec driver.VMSpec, now time.Time) (driver.VMStatus, error) {
	v := d.vms[spec.ID]
	fail := func(err error) (driver.VMStatus, error) {
		if v == nil {
			return driver.VMStatus{ID: spec.ID, State: api.VMError, Error: err.Error()}, err
		}
		if !errors.Is(err, ErrStaleGeneration) && v.Error != err.Error() {
			next := *v
			next.Error = err.Error()
			if d.write(vmsDir, v.ID, &next) == nil {
				*v = next
			}
		}
		st := d.observe(v, now)
		st.Error = err.Error()
		return st, err
	}
	if v != nil && spec.Generation < v.Generation {
		return fail(core.Stale(spec, v.Generation))
	}
	if v != nil && d.upToDate(v, spec, now) {
		if v.Error != "" {
			next := *v
			next.Error = ""
			if err := d.write(vmsDir, v.ID, &next); err != nil {
				return fail(err)
			}
			*v = next
		}
		return d.observe(v, now), nil
	}
	if err := d.inject(spec); err != nil {
		return fail(err)
	}

	// Power states: cur now, mid while disks change, want at the end.
	cur := api.VMStopped
	if v != nil {
		cur = d.power(v, now)
	}
	want := wantPower(spec)
	if err := core.CheckPower(spec.ID, cur, want, v != nil); err != nil {
		return fail(err)
	}
	crashed := cur == api.VMError
	if crashed {
		cur = api.VMStopped // its process is gone
	}
	mid := drivercore.MidPower(cur, want)

	// Disks: keep, attach, detach.
	var old []*disk
	if v != nil {
		old = v.Disks
	}
	free := make([]float64, len(d.used))
	for i := range d.used {
		free[i] = d.cfg.Datastores[i].CapacityGB - d.used[i]
	}
	var removed []*disk
	for _, dk := range old {
		if !slices.ContainsFunc(spec.Disks, func(s api.DiskDesired) bool { return s.ID == dk.ID }) {
			removed = append(removed, dk)
			if dk.Kind != api.KindPersistentDisk {
				free[d.datastore(dk.Datastore)] += dk.CapacityGB
			}
		}
	}
	next := make([]*disk, 0, len(spec.Disks))
	var added, made []*disk
	for _, sd := range spec.Disks {
		if i := slices.IndexFunc(old, func(o *disk) bool { return o.ID == sd.ID }); i >= 0 {
			next = append(next, old[i])
			continue
		}
		existing := d.disks[sd.ID]
		var kind, inVM string
		if existing != nil {
			kind, inVM = existing.Kind, existing.vm
		}
		adopt, err := core.Attach(spec.ID, sd, existing != nil, kind, inVM)
		if err != nil {
			return fail(err)
		}
		if adopt {
			next = append(next, existing)
			added = append(added, existing)
			continue
		}
		ds := d.datastore(sd.Datastore)
		if err := core.Reserve(spec.ID, sd, &free[ds]); err != nil {
			return fail(err)
		}
		kind = drivercore.NewDiskKind(sd)
		dk := &disk{ID: sd.ID, Kind: kind, Datastore: sd.Datastore, CapacityGB: sd.CapacityGB, BootDisk: sd.BootDisk, ImageID: sd.ImageID}
		next = append(next, dk)
		added = append(added, dk)
		made = append(made, dk)
	}
	boot := slices.ContainsFunc(added, func(dk *disk) bool { return dk.BootDisk }) ||
		slices.ContainsFunc(removed, func(dk *disk) bool { return dk.BootDisk })
	if err := core.CheckDiskChange(spec.ID, mid, len(added)+len(removed) > 0, boot); err != nil {
		return fail(err)
	}

	// The final power state, and a boot that may fail mid-way.
	final := want
	var startErr error
	if want == api.VMStarted && mid == api.VMStopped && d.chanceLocked(d.cfg.FailStart) {
		final = api.VMStopped
		startErr = fmt.Errorf("fake: VM %s: FailStart: the VM did not boot: %w", spec.ID, ErrInjected)
	}
	nv := &vm{
		ID: spec.ID, Name: spec.Name, CPUCount: spec.CPUCount, MemoryMB: spec.MemoryMB,
		Power: final, Generation: spec.Generation, Disks: next, NICs: drivercore.NICs(spec.NICs),
	}
	if startErr != nil {
		nv.Error = startErr.Error()
		if v != nil {
			nv.Generation = v.Generation
		} else {
			nv.Generation = 0
		}
	}
	if v != nil {
		nv.Console, nv.ConsoleBase = v.Console, v.ConsoleBase
	}
	logChanges(nv, v, cur, crashed, added, removed, startErr, now)
	if final == api.VMStarted {
		if cur == api.VMStarted && v != nil {
			nv.CrashAt = v.CrashAt // still the same run
		} else if d.cfg.CrashAfter > 0 {
			nv.CrashAt = now.Add(d.cfg.CrashAfter)
		}
	}

	// Persist (new persistent disks first, then the VM), then commit.
	var written []string
	for _, dk := range made {
		if dk.Kind != api.KindPersistentDisk {
			continue
		}
		if err := d.write(disksDir, dk.ID, dk); err != nil {
			d.unwrite(written)
			return fail(err)
		}
		written = append(written, dk.ID)
	}
	if err := d.write(vmsDir, nv.ID, nv); err != nil {
		d.unwrite(written)
		return fail(err)
	}
	for _, dk := range removed {
		if dk.Kind == api.KindPersistentDisk {
			dk.vm = ""
		} else {
			d.account(dk, -1)
			delete(d.disks, dk.ID)
		}
	}
	for _, dk := range made {
		d.account(dk, 1)
		d.disks[dk.ID] = dk
	}
	for _, dk := range added {
		dk.vm = nv.ID
	}
	d.vms[nv.ID] = nv
	from := "new"
	if v != nil {
		from = d.power(v, now)
	}
	d.cfg.Logger.Debug("fake: VM ensured", "vm", nv.ID, "from", from, "to", final,
		"generation", nv.Generation, "attached", len(added), "detached", len(removed))
	st := d.observe(nv, now)
	return st, startErr
}

// unwrite removes persistent disk files of a create that failed.
func (d *Driver) unwrite(ids []string) {
	for _, id := range ids {
		_ = d.remove(disksDir, id)
	}
}

package fake

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
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
	if v.Generation != spec.Generation || d.power(v, now) != wantPower(spec) || len(v.Disks) != len(spec.Disks) {
		return false
	}
	for i := range v.Disks {
		if v.Disks[i].ID != spec.Disks[i].ID {
			return false
		}
	}
	return true
}

func wantPower(spec driver.VMSpec) string {
	if spec.Power == "" {
		return api.VMStopped
	}
	return spec.Power
}

// validate checks what does not depend on the VM's current state.
func (d *Driver) validate(spec driver.VMSpec) error {
	if err := checkID("VM", spec.ID); err != nil {
		return err
	}
	bad := func(format string, args ...any) error {
		return fmt.Errorf("fake: VM %s: %s: %w", spec.ID, fmt.Sprintf(format, args...), ErrInvalidSpec)
	}
	switch {
	case spec.CPUCount <= 0:
		return bad("cpuCount must be positive, got %d", spec.CPUCount)
	case spec.MemoryMB <= 0:
		return bad("memoryMb must be positive, got %d", spec.MemoryMB)
	case spec.CPUCount > d.cfg.CPUCount:
		return bad("%d CPUs exceed the host's %d", spec.CPUCount, d.cfg.CPUCount)
	case spec.MemoryMB > d.cfg.MemoryMB:
		return bad("%d MB exceed the host's %d MB", spec.MemoryMB, d.cfg.MemoryMB)
	}
	switch spec.Power {
	case "", api.VMStarted, api.VMStopped, api.VMSuspended:
	default:
		return bad("unknown power state %q", spec.Power)
	}
	boot := 0
	for i, dk := range spec.Disks {
		if !validID(dk.ID) {
			return bad("disk id %q: want 1 to 128 of A-Z a-z 0-9 . _ -, not starting with '.'", dk.ID)
		}
		for _, other := range spec.Disks[:i] {
			if other.ID == dk.ID {
				return bad("disk %s listed twice", dk.ID)
			}
		}
		switch dk.Kind {
		case "", api.KindEphemeralDisk, api.KindPersistentDisk:
		default:
			return bad("disk %s: unknown kind %q", dk.ID, dk.Kind)
		}
		if d.datastore(dk.Datastore) < 0 {
			return bad("disk %s: no datastore %q on this host", dk.ID, dk.Datastore)
		}
		if dk.CapacityGB < 0 {
			return bad("disk %s: negative capacity", dk.ID)
		}
		if dk.BootDisk {
			boot++
		}
		if dk.ImageID != "" && spec.ImagePaths[dk.ImageID] == "" {
			return bad("disk %s: image %s has no local path", dk.ID, dk.ImageID)
		}
	}
	if boot > 1 {
		return bad("%d boot disks, at most one allowed", boot)
	}
	return nil
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
		return fail(fmt.Errorf("fake: VM %s: generation %d is older than %d: %w",
			spec.ID, spec.Generation, v.Generation, ErrStaleGeneration))
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
	crashed := cur == api.VMError
	if crashed {
		cur = api.VMStopped // its process is gone
	}
	want := wantPower(spec)
	if want == api.VMSuspended && cur != api.VMStarted && cur != api.VMSuspended {
		from := "is " + cur
		if crashed {
			from = "is " + api.VMError
		} else if v == nil {
			from = "does not exist yet"
		}
		return fail(fmt.Errorf("fake: VM %s: only a STARTED VM can be suspended, this one %s: %w", spec.ID, from, ErrTransition))
	}
	mid := cur
	if (cur == api.VMSuspended && want != api.VMSuspended) || (cur == api.VMStarted && want == api.VMStopped) {
		mid = want
	}

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
		switch {
		case existing != nil && existing.Kind != api.KindPersistentDisk:
			return fail(fmt.Errorf("fake: VM %s: disk %s is an ephemeral disk of VM %s: %w", spec.ID, sd.ID, existing.vm, ErrDiskInUse))
		case existing != nil && sd.Kind == api.KindPersistentDisk:
			if existing.vm != "" && existing.vm != spec.ID {
				return fail(fmt.Errorf("fake: VM %s: disk %s is attached to VM %s: %w", spec.ID, sd.ID, existing.vm, ErrDiskInUse))
			}
			next = append(next, existing)
			added = append(added, existing)
			continue
		case existing != nil:
			return fail(fmt.Errorf("fake: VM %s: disk %s is a persistent disk, listed as %q: %w", spec.ID, sd.ID, sd.Kind, ErrInvalidSpec))
		}
		ds := d.datastore(sd.Datastore)
		if sd.CapacityGB > free[ds]+1e-9 {
			return fail(fmt.Errorf("fake: VM %s: disk %s needs %g GB, datastore %s has %g GB free: %w",
				spec.ID, sd.ID, sd.CapacityGB, sd.Datastore, max(free[ds], 0), ErrNoCapacity))
		}
		free[ds] -= sd.CapacityGB
		kind := sd.Kind
		if kind == "" {
			kind = api.KindEphemeralDisk
		}
		dk := &disk{ID: sd.ID, Kind: kind, Datastore: sd.Datastore, CapacityGB: sd.CapacityGB, BootDisk: sd.BootDisk, ImageID: sd.ImageID}
		next = append(next, dk)
		added = append(added, dk)
		made = append(made, dk)
	}
	if len(added)+len(removed) > 0 {
		if mid == api.VMSuspended {
			return fail(fmt.Errorf("fake: VM %s: disks cannot change while SUSPENDED: %w", spec.ID, ErrTransition))
		}
		boot := slices.ContainsFunc(added, func(dk *disk) bool { return dk.BootDisk }) ||
			slices.ContainsFunc(removed, func(dk *disk) bool { return dk.BootDisk })
		if boot && mid != api.VMStopped {
			return fail(fmt.Errorf("fake: VM %s: the boot disk changes only while STOPPED (VM is %s): %w", spec.ID, mid, ErrTransition))
		}
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
		Power: final, Generation: spec.Generation, Disks: next,
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

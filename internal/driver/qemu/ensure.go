package qemu

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
	"github.com/photon-cloud/photon/internal/driver/drivercore"
)

// Ensure makes the VM match spec; see the package doc and driver/fake's
// for the semantics. Steps, in order: power-down or leave SUSPENDED, then
// disks (detach, make, attach), then boot or suspend.
func (d *Driver) Ensure(ctx context.Context, spec driver.VMSpec) (driver.VMStatus, error) {
	if err := d.validate(spec); err != nil {
		if validID(spec.ID) {
			unlock := d.lockVM(spec.ID)
			defer unlock()
		}
		return d.failed(spec.ID, err)
	}
	unlock := d.lockVM(spec.ID)
	defer unlock()
	return d.ensure(ctx, spec)
}

// failed reports err with the VM's current state (ERROR if it does not
// exist), recording it as the VM's Error unless the spec was merely stale
// or the call was cancelled.
func (d *Driver) failed(id string, err error) (driver.VMStatus, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.vms[id]
	if !ok {
		return driver.VMStatus{ID: id, State: api.VMError, Error: err.Error()}, err
	}
	if !errors.Is(err, ErrStaleGeneration) && !errors.Is(err, context.Canceled) && v.rec.Error != err.Error() {
		next := v.rec
		next.Error = err.Error()
		if d.writeRecord(&next) == nil {
			v.rec = next
		}
	}
	st := d.observeLocked(v)
	st.Error = err.Error()
	return st, err
}

func wantPower(spec driver.VMSpec) string { return drivercore.WantPower(spec) }

// validate checks what does not depend on the VM's current state.
func (d *Driver) validate(spec driver.VMSpec) error {
	cpus, memMB := d.hostLimits()
	return core.ValidateSpec(spec, drivercore.Host{
		CPUCount: cpus, MemoryMB: memMB,
		HasDatastore:  func(name string) bool { return d.datastore(name) >= 0 },
		ImageOnlyBoot: true,
	})
}

// upToDate: Ensure would change nothing.
func upToDate(r *record, observed string, spec driver.VMSpec) bool {
	return drivercore.UpToDate(r.Generation, observed, r.Disks, func(dk diskRecord) string { return dk.ID }, spec)
}

// plan is what one Ensure reserved under d.mu and then carries out.
type plan struct {
	made    []diskRecord // new disks: files to make (reserved in d.disks)
	adopted []string     // existing persistent disks claimed by this VM
	removed []diskRecord // disks to detach
	next    []diskRecord // the VM's disks afterwards, in spec order
}

func (d *Driver) ensure(ctx context.Context, spec driver.VMSpec) (driver.VMStatus, error) {
	d.mu.Lock()
	v := d.vms[spec.ID]
	if v != nil && spec.Generation < v.rec.Generation {
		d.mu.Unlock()
		return d.failed(spec.ID, core.Stale(spec, v.rec.Generation))
	}
	cur := api.VMStopped
	if v != nil {
		cur = d.observeLocked(v).State
		if upToDate(&v.rec, cur, spec) {
			if v.rec.Error != "" {
				next := v.rec
				next.Error = ""
				if err := d.writeRecord(&next); err != nil {
					d.mu.Unlock()
					return d.failed(spec.ID, err)
				}
				v.rec = next
			}
			st := d.observeLocked(v)
			d.mu.Unlock()
			return st, nil
		}
	}
	p, err := d.planLocked(spec, v, cur)
	d.mu.Unlock()
	if err != nil {
		return d.failed(spec.ID, err)
	}

	// From here on, rec is what the VM really is; on a failure it is
	// committed as such, with the error and the old generation.
	var rec record
	if v != nil {
		rec = v.rec
		rec.Disks = slices.Clone(v.rec.Disks)
	} else {
		rec = record{ID: spec.ID, Power: api.VMStopped}
	}
	rec.Name, rec.CPUCount, rec.MemoryMB = spec.Name, spec.CPUCount, spec.MemoryMB
	rec.Environment, rec.Metadata = maps.Clone(spec.Environment), maps.Clone(spec.Metadata)
	rec.NICs, rec.Subnets = drivercore.NICs(spec.NICs), nicSubnets(spec)
	want := wantPower(spec)
	// A power-down's QEMU exit is not a crash until its STOPPED is recorded.
	defer d.setStopping(spec.ID, false)
	err = d.carryOut(ctx, spec, &rec, cur, want, p)
	return d.commit(spec, v, &rec, p, err)
}

// planLocked checks the transition and the disk changes and reserves the
// disks (capacity, persistent disks) the VM gets.
func (d *Driver) planLocked(spec driver.VMSpec, v *vmState, cur string) (*plan, error) {
	want := wantPower(spec)
	if err := core.CheckPower(spec.ID, cur, want, v != nil); err != nil {
		return nil, err
	}
	if cur == api.VMError {
		cur = api.VMStopped
	}
	mid := midPower(cur, want)
	var old []diskRecord
	if v != nil {
		old = v.rec.Disks
	}
	free := make([]float64, len(d.used))
	for i := range d.used {
		free[i] = d.capGB[i] - d.used[i]
	}
	p := &plan{}
	for _, dk := range old {
		if !slices.ContainsFunc(spec.Disks, func(s api.DiskDesired) bool { return s.ID == dk.ID }) {
			p.removed = append(p.removed, dk)
			if dk.Kind != api.KindPersistentDisk {
				free[d.datastore(dk.Datastore)] += dk.CapacityGB
			}
		}
	}
	var addedBoot bool
	for _, sd := range spec.Disks {
		if i := slices.IndexFunc(old, func(o diskRecord) bool { return o.ID == sd.ID }); i >= 0 {
			p.next = append(p.next, old[i])
			continue
		}
		addedBoot = addedBoot || sd.BootDisk
		existing := d.disks[sd.ID]
		var kind, inVM string
		if existing != nil {
			kind, inVM = existing.Kind, existing.vm
		}
		adopt, err := core.Attach(spec.ID, sd, existing != nil, kind, inVM)
		if err != nil {
			return nil, err
		}
		if adopt {
			p.next = append(p.next, existing.diskRecord)
			p.adopted = append(p.adopted, sd.ID)
			continue
		}
		ds := d.datastore(sd.Datastore)
		if err := core.Reserve(spec.ID, sd, &free[ds]); err != nil {
			return nil, err
		}
		kind = drivercore.NewDiskKind(sd)
		dk := diskRecord{ID: sd.ID, Kind: kind, Datastore: sd.Datastore, CapacityGB: sd.CapacityGB, BootDisk: sd.BootDisk, ImageID: sd.ImageID}
		dk.Path = d.diskPath(dk)
		p.next = append(p.next, dk)
		p.made = append(p.made, dk)
	}
	boot := addedBoot || slices.ContainsFunc(p.removed, func(dk diskRecord) bool { return dk.BootDisk })
	if err := core.CheckDiskChange(spec.ID, mid, len(p.made)+len(p.adopted)+len(p.removed) > 0, boot); err != nil {
		return nil, err
	}
	// Reserve.
	for _, dk := range p.made {
		d.disks[dk.ID] = &diskState{diskRecord: dk, vm: spec.ID}
		d.account(dk, 1)
	}
	for _, id := range p.adopted {
		d.disks[id].vm = spec.ID
	}
	return p, nil
}

// setStopping marks a VM whose power-down is under way.
func (d *Driver) setStopping(id string, on bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.stopping == nil {
		d.stopping = map[string]bool{}
	}
	if on {
		d.stopping[id] = true
	} else {
		delete(d.stopping, id)
	}
}

// midPower is the power state while disks change: leaving SUSPENDED and
// stopping come first.
func midPower(cur, want string) string { return drivercore.MidPower(cur, want) }

// carryOut does the plan, keeping rec equal to what the VM is after each
// step.
func (d *Driver) carryOut(ctx context.Context, spec driver.VMSpec, rec *record, cur, want string, p *plan) error {
	// 1. Power-down, leave SUSPENDED, or clean up after a crash.
	mid := midPower(cur, want)
	switch {
	case cur == api.VMError:
		if err := d.kill(ctx, rec.ID, rec.PID); err != nil {
			return fmt.Errorf("qemu: VM %s: %w", rec.ID, err)
		}
		rec.Power, rec.PID = api.VMStopped, 0
	case cur == api.VMStarted && mid == api.VMStopped:
		d.setStopping(rec.ID, true) // cleared once the new state is recorded (ensure)
		if err := d.powerdown(ctx, rec.ID, rec.PID); err != nil {
			return fmt.Errorf("qemu: VM %s: stop: %w", rec.ID, err)
		}
		rec.Power, rec.PID = api.VMStopped, 0
	case cur == api.VMSuspended && mid == api.VMStopped:
		if err := d.kill(ctx, rec.ID, rec.PID); err != nil {
			return fmt.Errorf("qemu: VM %s: stop: %w", rec.ID, err)
		}
		rec.Power, rec.PID = api.VMStopped, 0
	case cur == api.VMSuspended && mid == api.VMStarted:
		if err := d.qmpRun(ctx, rec.ID, "cont", nil, nil); err != nil {
			return fmt.Errorf("qemu: VM %s: resume: %w", rec.ID, err)
		}
		rec.Power = api.VMStarted
	}
	running := rec.Power == api.VMStarted

	// 2. Disks: detach, make, attach.
	for _, dk := range p.removed {
		if running {
			if err := d.unplug(ctx, rec.ID, dk); err != nil {
				return fmt.Errorf("qemu: VM %s: %w", rec.ID, err)
			}
		}
		rec.Disks = slices.DeleteFunc(rec.Disks, func(o diskRecord) bool { return o.ID == dk.ID })
	}
	for i, dk := range p.made {
		dk, err := d.makeDisk(ctx, spec, dk)
		if err != nil {
			return err
		}
		p.made[i] = dk
		if j := slices.IndexFunc(p.next, func(o diskRecord) bool { return o.ID == dk.ID }); j >= 0 {
			p.next[j] = dk
		}
		if dk.Kind == api.KindPersistentDisk {
			if err := writeJSON(d.diskRecordPath(dk.ID), dk); err != nil {
				return err
			}
		}
	}
	var disks []diskRecord
	for _, dk := range p.next {
		attached := slices.ContainsFunc(rec.Disks, func(o diskRecord) bool { return o.ID == dk.ID })
		if !attached && running {
			if err := d.hotplug(ctx, rec.ID, dk); err != nil {
				rec.Disks = disks
				return fmt.Errorf("qemu: VM %s: attach disk %s: %w", rec.ID, dk.ID, err)
			}
		}
		disks = append(disks, dk)
	}
	rec.Disks = disks

	// 3. Boot or suspend.
	switch {
	case want == api.VMStarted && rec.Power == api.VMStopped:
		pid, err := d.start(ctx, rec)
		if err != nil {
			return fmt.Errorf("qemu: VM %s: %w", rec.ID, err)
		}
		rec.Power, rec.PID = api.VMStarted, pid
	case want == api.VMSuspended && rec.Power == api.VMStarted:
		if err := d.qmpRun(ctx, rec.ID, "stop", nil, nil); err != nil {
			return fmt.Errorf("qemu: VM %s: suspend: %w", rec.ID, err)
		}
		rec.Power = api.VMSuspended
	}
	return nil
}

// makeDisk makes a new disk's file: an overlay on the image for a boot
// disk made from one, else a blank qcow2. It returns the disk with the
// base its overlay is on.
func (d *Driver) makeDisk(ctx context.Context, spec driver.VMSpec, dk diskRecord) (diskRecord, error) {
	_ = removeFile(dk.Path) // a leftover of a create that died
	if dk.ImageID != "" {
		base, err := filepath.Abs(spec.ImagePaths[dk.ImageID])
		var format string
		if i := slices.IndexFunc(spec.Disks, func(sd api.DiskDesired) bool { return sd.ID == dk.ID }); err == nil && i >= 0 {
			format, err = qemuFormat(spec.Disks[i].ImageFormat)
		}
		if err == nil && format == "" {
			d.cfg.Logger.Warn("qemu: the desired state names no image format (a controller older than imageFormat): probing it",
				"vm", spec.ID, "image", dk.ImageID)
		}
		var info imageInfo
		if err == nil {
			info, err = d.checkImage(ctx, base, format)
		}
		if err != nil {
			return dk, fmt.Errorf("qemu: VM %s: image %s: %w: %w", spec.ID, dk.ImageID, ErrBadImage, err)
		}
		if err := d.createOverlay(ctx, dk.Path, base, info, dk.CapacityGB); err != nil {
			return dk, fmt.Errorf("qemu: VM %s: disk %s: %w", spec.ID, dk.ID, err)
		}
		dk.BasePath, dk.BaseFormat = base, info.Format
		return dk, nil
	}
	if err := d.createDisk(ctx, dk.Path, dk.CapacityGB); err != nil {
		return dk, fmt.Errorf("qemu: VM %s: disk %s: %w", spec.ID, dk.ID, err)
	}
	return dk, nil
}

// commit records the outcome of carryOut. On success the VM has the spec's
// generation; on failure it keeps its old one and reports err, and a new
// VM is undone entirely (its process, files and reservations).
func (d *Driver) commit(spec driver.VMSpec, v *vmState, rec *record, p *plan, err error) (driver.VMStatus, error) {
	undoNew := err != nil && v == nil
	if undoNew {
		if rec.PID > 0 {
			_ = d.kill(context.Background(), rec.ID, rec.PID)
		}
		rec.Disks = nil
		_ = os.RemoveAll(d.vmDir(rec.ID))
		d.removeRunFiles(rec.ID)
	}
	has := func(id string) bool {
		return slices.ContainsFunc(rec.Disks, func(o diskRecord) bool { return o.ID == id })
	}
	// Files of disks the VM did not end up with.
	for _, dk := range p.made {
		if !has(dk.ID) {
			_ = removeFile(dk.Path)
			if dk.Kind == api.KindPersistentDisk {
				_ = removeFile(d.diskRecordPath(dk.ID))
			}
		}
	}
	for _, dk := range p.removed {
		if !has(dk.ID) && dk.Kind != api.KindPersistentDisk {
			_ = removeFile(dk.Path)
		}
	}
	if err == nil {
		rec.Generation, rec.Error = spec.Generation, ""
	} else if v != nil {
		rec.Generation, rec.Error = v.rec.Generation, err.Error()
	}
	var werr error
	if !undoNew {
		werr = d.writeRecord(rec)
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dk := range p.made {
		if !has(dk.ID) {
			if ds := d.disks[dk.ID]; ds != nil && ds.vm == rec.ID {
				d.account(ds.diskRecord, -1)
				delete(d.disks, dk.ID)
			}
		}
	}
	for _, id := range p.adopted {
		if ds := d.disks[id]; ds != nil && !has(id) && ds.vm == rec.ID {
			ds.vm = ""
		}
	}
	for _, dk := range p.removed {
		if has(dk.ID) {
			continue
		}
		ds := d.disks[dk.ID]
		if ds == nil || ds.vm != rec.ID {
			continue
		}
		if dk.Kind == api.KindPersistentDisk {
			ds.vm = ""
		} else {
			d.account(ds.diskRecord, -1)
			delete(d.disks, dk.ID)
		}
	}
	if undoNew {
		d.cfg.Logger.Warn("qemu: VM create failed, undone", "vm", rec.ID, "error", err)
		return driver.VMStatus{ID: rec.ID, State: api.VMError, Error: err.Error()}, err
	}
	if werr != nil && err == nil {
		err = werr
	}
	nv := &vmState{rec: *rec}
	d.vms[rec.ID] = nv
	st := d.observeLocked(nv)
	if err != nil {
		st.Error = err.Error()
		d.cfg.Logger.Warn("qemu: ensure failed", "vm", rec.ID, "generation", spec.Generation, "error", err)
	} else {
		d.cfg.Logger.Debug("qemu: VM ensured", "vm", rec.ID, "power", rec.Power, "generation", rec.Generation)
	}
	return st, err
}

// nicSubnets are the subnets of spec's NICs (validated: each is there).
func nicSubnets(spec driver.VMSpec) map[string]api.SubnetDesired {
	if len(spec.NICs) == 0 {
		return nil
	}
	out := make(map[string]api.SubnetDesired, len(spec.NICs))
	for _, n := range spec.NICs {
		out[n.SubnetID] = spec.Subnets[n.SubnetID]
	}
	return out
}

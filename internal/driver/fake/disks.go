package fake

import (
	"context"
	"fmt"

	"github.com/photon-cloud/photon/api"
)

// EnsureDisk makes a persistent disk on its datastore if it is missing. A
// disk that exists is left as it is.
func (d *Driver) EnsureDisk(ctx context.Context, want api.DiskDesired) error {
	if err := core.CheckDiskRequest(want, d.datastore(want.Datastore) >= 0); err != nil {
		return err
	}
	d.mu.Lock()
	existing := d.disks[want.ID]
	delay := d.delayLocked()
	fail := existing == nil && d.chanceLocked(d.cfg.FailDisk)
	d.mu.Unlock()
	if existing != nil {
		if existing.Kind != api.KindPersistentDisk {
			return fmt.Errorf("fake: disk %s is an ephemeral disk of VM %s: %w", want.ID, existing.vm, ErrDiskInUse)
		}
		return nil
	}
	if err := sleep(ctx, delay); err != nil {
		return err
	}
	if fail {
		return fmt.Errorf("fake: disk %s: FailDisk: %w", want.ID, ErrInjected)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if existing := d.disks[want.ID]; existing != nil {
		return nil
	}
	i := d.datastore(want.Datastore)
	if free := d.cfg.Datastores[i].CapacityGB - d.used[i]; want.CapacityGB > free+1e-9 {
		return fmt.Errorf("fake: disk %s needs %g GB, datastore %s has %g GB free: %w",
			want.ID, want.CapacityGB, want.Datastore, max(free, 0), ErrNoCapacity)
	}
	dk := &disk{ID: want.ID, Kind: api.KindPersistentDisk, Datastore: want.Datastore, CapacityGB: want.CapacityGB}
	if err := d.write(disksDir, dk.ID, dk); err != nil {
		return err
	}
	d.disks[dk.ID] = dk
	d.account(dk, 1)
	d.cfg.Logger.Debug("fake: disk made", "disk", dk.ID, "datastore", dk.Datastore)
	return nil
}

// DeleteDisk removes a detached persistent disk. A missing disk is fine; an
// attached one is refused with ErrDiskInUse.
func (d *Driver) DeleteDisk(ctx context.Context, want api.DiskDesired) error {
	if err := checkID("disk", want.ID); err != nil {
		return err
	}
	d.mu.Lock()
	_, ok := d.disks[want.ID]
	delay := d.delayLocked()
	fail := ok && d.chanceLocked(d.cfg.FailDisk)
	d.mu.Unlock()
	if !ok {
		return nil
	}
	if err := sleep(ctx, delay); err != nil {
		return err
	}
	if fail {
		return fmt.Errorf("fake: disk %s: FailDisk: %w", want.ID, ErrInjected)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	dk, ok := d.disks[want.ID]
	switch {
	case !ok:
		return nil
	case dk.vm != "":
		return fmt.Errorf("fake: disk %s is attached to VM %s: %w", dk.ID, dk.vm, ErrDiskInUse)
	}
	if err := d.remove(disksDir, dk.ID); err != nil {
		return err
	}
	delete(d.disks, dk.ID)
	d.account(dk, -1)
	d.cfg.Logger.Debug("fake: disk deleted", "disk", dk.ID)
	return nil
}

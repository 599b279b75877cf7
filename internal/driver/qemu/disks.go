package qemu

import (
	"context"
	"fmt"
	"io"
	"os"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
)

// EnsureDisk makes a persistent disk (a blank qcow2 on its datastore) if
// it is missing. A disk that exists is left as it is.
func (d *Driver) EnsureDisk(ctx context.Context, want api.DiskDesired) error {
	if err := core.CheckDiskRequest(want, d.datastore(want.Datastore) >= 0); err != nil {
		return err
	}
	unlock := d.lockVM("disk/" + want.ID)
	defer unlock()
	dk := diskRecord{ID: want.ID, Kind: api.KindPersistentDisk, Datastore: want.Datastore, CapacityGB: want.CapacityGB}
	dk.Path = d.diskPath(dk)
	d.mu.Lock()
	if existing := d.disks[want.ID]; existing != nil {
		d.mu.Unlock()
		if existing.Kind != api.KindPersistentDisk {
			return fmt.Errorf("qemu: disk %s is an ephemeral disk of VM %s: %w", want.ID, existing.vm, ErrDiskInUse)
		}
		return nil
	}
	i := d.datastore(want.Datastore)
	if free := d.capGB[i] - d.used[i]; want.CapacityGB > free+1e-9 {
		d.mu.Unlock()
		return fmt.Errorf("qemu: disk %s needs %g GB, datastore %s has %g GB free: %w",
			want.ID, want.CapacityGB, want.Datastore, max(free, 0), ErrNoCapacity)
	}
	// Reserve, then make the file outside the lock.
	ds := &diskState{diskRecord: dk}
	d.disks[dk.ID] = ds
	d.account(dk, 1)
	d.mu.Unlock()

	err := d.createDisk(ctx, dk.Path, dk.CapacityGB)
	if err == nil {
		err = writeJSON(d.diskRecordPath(dk.ID), dk)
	}
	if err != nil {
		_ = removeFile(dk.Path)
		d.mu.Lock()
		if d.disks[dk.ID] == ds {
			delete(d.disks, dk.ID)
			d.account(dk, -1)
		}
		d.mu.Unlock()
		return fmt.Errorf("qemu: disk %s: %w", dk.ID, err)
	}
	d.cfg.Logger.Debug("qemu: disk made", "disk", dk.ID, "path", dk.Path)
	return nil
}

// DeleteDisk removes a detached persistent disk. A missing disk is fine;
// an attached one is refused with ErrDiskInUse.
func (d *Driver) DeleteDisk(ctx context.Context, want api.DiskDesired) error {
	if err := checkID("disk", want.ID); err != nil {
		return err
	}
	unlock := d.lockVM("disk/" + want.ID)
	defer unlock()
	d.mu.Lock()
	defer d.mu.Unlock()
	dk, ok := d.disks[want.ID]
	switch {
	case !ok:
		return nil
	case dk.Kind != api.KindPersistentDisk:
		return fmt.Errorf("qemu: disk %s is an ephemeral disk of VM %s: %w", dk.ID, dk.vm, ErrDiskInUse)
	case dk.vm != "":
		return fmt.Errorf("qemu: disk %s is attached to VM %s: %w", dk.ID, dk.vm, ErrDiskInUse)
	}
	if err := removeFile(dk.Path); err != nil {
		return fmt.Errorf("qemu: disk %s: %w", dk.ID, err)
	}
	if err := removeFile(d.diskRecordPath(dk.ID)); err != nil {
		return fmt.Errorf("qemu: disk %s: %w", dk.ID, err)
	}
	delete(d.disks, dk.ID)
	d.account(dk.diskRecord, -1)
	d.cfg.Logger.Debug("qemu: disk deleted", "disk", dk.ID)
	return nil
}

// ConsolePath is the file a VM's serial console is written to (appended
// across boots).
func (d *Driver) ConsolePath(id string) (string, error) {
	if err := checkID("VM", id); err != nil {
		return "", err
	}
	return d.consolePath(id), nil
}

// Console opens a VM's serial console log for reading from its start. A VM
// that never booted has an empty console.
func (d *Driver) Console(id string) (io.ReadCloser, error) {
	p, err := d.ConsolePath(id)
	if err != nil {
		return nil, err
	}
	d.mu.Lock()
	_, ok := d.vms[id]
	d.mu.Unlock()
	if !ok {
		return nil, fmt.Errorf("qemu: console of %s: %w", id, driver.ErrNotFound)
	}
	f, err := os.Open(p)
	if os.IsNotExist(err) {
		return io.NopCloser(eofReader{}), nil
	}
	return f, err
}

type eofReader struct{}

func (eofReader) Read([]byte) (int, error) { return 0, io.EOF }

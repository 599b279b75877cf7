package fake

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver/drivercore"
)

// Layout of DataDir.
const (
	vmsDir   = "vms"
	disksDir = "disks"
	tmpMark  = ".tmp-"
)

// write stores v as dir/id.json atomically (temporary file, then rename).
// There is no fsync: the files must survive the agent process, as QEMU
// processes would, not a power cut of the host. Every change of a VM is
// written first (d.mu held): List observes it again after.
func (d *Driver) write(dir, id string, v any) error {
	if dir == vmsDir {
		d.changedVM(id)
	}
	if d.cfg.DataDir == "" {
		return nil
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("fake: encode %s/%s: %w", dir, id, err)
	}
	path := filepath.Join(d.cfg.DataDir, dir, id+".json")
	if err := drivercore.WriteFileAtomic(path, tmpMark+id+"-*", drivercore.WriteBytes(b)); err != nil {
		return fmt.Errorf("fake: %w", err)
	}
	return nil
}

// remove deletes dir/id.json; a missing file is fine.
func (d *Driver) remove(dir, id string) error {
	if dir == vmsDir {
		d.changedVM(id)
	}
	if d.cfg.DataDir == "" {
		return nil
	}
	err := os.Remove(filepath.Join(d.cfg.DataDir, dir, id+".json"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("fake: %w", err)
	}
	return nil
}

// Recover adopts the VMs and disks a previous Driver left in DataDir, with
// their power state (a STARTED VM is still running: VMs outlive the agent).
// VMs already known are kept as they are, so Recover may be called again.
// Unreadable files are skipped and reported in the error; the rest is
// adopted. Without DataDir there is nothing to recover.
func (d *Driver) Recover(ctx context.Context) error {
	if d.cfg.DataDir == "" {
		return nil
	}
	var errs []error
	var disks []*disk
	var vms []*vm
	for _, dir := range []string{disksDir, vmsDir} {
		entries, err := os.ReadDir(filepath.Join(d.cfg.DataDir, dir))
		if err != nil {
			errs = append(errs, fmt.Errorf("fake: recover: %w", err))
			continue
		}
		for _, e := range entries {
			name := e.Name()
			path := filepath.Join(d.cfg.DataDir, dir, name)
			if strings.HasPrefix(name, tmpMark) {
				_ = os.Remove(path) // a write the previous process did not finish
				continue
			}
			id, ok := strings.CutSuffix(name, ".json")
			if !ok || e.IsDir() {
				continue
			}
			b, err := os.ReadFile(path)
			if err != nil {
				errs = append(errs, fmt.Errorf("fake: recover: %w", err))
				continue
			}
			if dir == disksDir {
				dk := &disk{}
				if err := json.Unmarshal(b, dk); err != nil || dk.ID != id {
					errs = append(errs, fmt.Errorf("fake: recover %s: not a disk record (%v)", path, err))
					continue
				}
				disks = append(disks, dk)
			} else {
				v := &vm{}
				if err := json.Unmarshal(b, v); err != nil || v.ID != id {
					errs = append(errs, fmt.Errorf("fake: recover %s: not a VM record (%v)", path, err))
					continue
				}
				vms = append(vms, v)
			}
		}
	}

	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dk := range disks {
		if _, ok := d.disks[dk.ID]; !ok {
			dk.Kind = api.KindPersistentDisk
			d.disks[dk.ID] = dk
			d.account(dk, 1)
		}
	}
	adopted := 0
	for _, v := range vms {
		if _, ok := d.vms[v.ID]; ok {
			continue
		}
		for i, dk := range v.Disks {
			if have, ok := d.disks[dk.ID]; ok && have.Kind == api.KindPersistentDisk && dk.Kind == api.KindPersistentDisk {
				v.Disks[i] = have
			} else if !ok {
				d.disks[dk.ID] = dk
				d.account(dk, 1)
			}
			v.Disks[i].vm = v.ID
		}
		d.vms[v.ID] = v
		d.listed = nil
		adopted++
	}
	d.cfg.Logger.Debug("fake: recovered", "vms", adopted, "dir", d.cfg.DataDir)
	return errors.Join(errs...)
}

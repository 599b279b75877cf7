package qemu

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver/drivercore"
)

// Layout of DataDir and of each datastore.
const (
	vmsDir        = "vms"   // DataDir/vms/<id>/{vm.json,seed.iso,console.log,qemu.log}
	disksDir      = "disks" // DataDir/disks/<id>.json: persistent disks
	ephemeralDir  = "ephemeral"
	persistentDir = "persistent"
	recordFile    = "vm.json"
	tmpMark       = ".tmp-"
)

// record is one VM as stored in vms/<id>/vm.json: what was carried out.
type record struct {
	ID       string `json:"id"`
	Name     string `json:"name"`
	CPUCount int    `json:"cpuCount"`
	MemoryMB int64  `json:"memoryMb"`
	// Power is STARTED, STOPPED or SUSPENDED: what the driver last did.
	// A STARTED or SUSPENDED VM whose process is gone is observed ERROR.
	Power      string `json:"power"`
	Generation int64  `json:"generation"`
	Error      string `json:"error,omitempty"`
	// PID of the running QEMU; 0 when STOPPED.
	PID         int               `json:"pid,omitempty"`
	Disks       []diskRecord      `json:"disks"`
	Environment map[string]string `json:"environment,omitempty"`
	Metadata    map[string]string `json:"metadata,omitempty"`
	// NICs, and the subnets they are on, as last ensured: what the VM's
	// next boot gets (QEMU's NICs and the seed's network-config); a
	// running VM keeps the NICs it booted with.
	NICs    []api.NICDesired             `json:"nics,omitempty"`
	Subnets map[string]api.SubnetDesired `json:"subnets,omitempty"`
}

// diskRecord is one disk: in a VM record, or (persistent disks) in
// disks/<id>.json.
type diskRecord struct {
	ID         string  `json:"id"`
	Kind       string  `json:"kind"`
	Datastore  string  `json:"datastore"`
	CapacityGB float64 `json:"capacityGb"`
	BootDisk   bool    `json:"bootDisk,omitempty"`
	ImageID    string  `json:"imageId,omitempty"`
	Path       string  `json:"path"`
	// BasePath and BaseFormat are the image a boot disk's overlay is on
	// and the format it was checked as: QEMU opens the base as that
	// format, with no backing file of its own. Empty in records older
	// than them: start reads them from the overlay, which the driver made.
	BasePath   string `json:"basePath,omitempty"`
	BaseFormat string `json:"baseFormat,omitempty"`
}

// vmState is a VM the driver holds.
type vmState struct {
	rec record
}

// diskState is a disk the driver holds: its record and the VM it is
// attached to ("" for none).
type diskState struct {
	diskRecord
	vm string
}

func (d *Driver) vmDir(id string) string { return filepath.Join(d.cfg.DataDir, vmsDir, id) }

func (d *Driver) consolePath(id string) string { return filepath.Join(d.vmDir(id), "console.log") }

// socketDir is where QMP sockets go: DataDir/run if its paths fit in a
// unix socket address, else a directory under the system's temporary
// directory named after DataDir.
func socketDir(dataDir string) string {
	dir := filepath.Join(dataDir, "run")
	if len(dir)+1+len(hashName(""))+len(".qmp") < 100 {
		return dir
	}
	sum := sha256.Sum256([]byte(dataDir))
	return filepath.Join(os.TempDir(), "photon-qemu-"+hex.EncodeToString(sum[:6]))
}

// hashName is a short fixed-length name for an id, for sockets and QEMU
// node and device names (which are limited to 31 characters).
func hashName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:8])
}

func (d *Driver) qmpSocket(id string) string { return filepath.Join(d.runDir, hashName(id)+".qmp") }

func (d *Driver) pidFile(id string) string { return filepath.Join(d.runDir, hashName(id)+".pid") }

// removeRunFiles removes a VM's QMP socket and pid file.
func (d *Driver) removeRunFiles(id string) {
	_ = os.Remove(d.qmpSocket(id))
	_ = os.Remove(d.pidFile(id))
}

// diskPath is where a disk's file lives on its datastore.
func (d *Driver) diskPath(dk diskRecord) string {
	i := d.datastore(dk.Datastore)
	sub := ephemeralDir
	if dk.Kind == api.KindPersistentDisk {
		sub = persistentDir
	}
	return filepath.Join(d.cfg.Datastores[i].Path, sub, dk.ID+".qcow2")
}

// writeJSON stores v at path atomically (temporary file, then rename). No
// fsync: the files must survive the agent process, as QEMU does, not a
// power cut of the host.
func writeJSON(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	err = drivercore.WriteFileAtomic(path, tmpMark+"*", drivercore.WriteBytes(b))
	if _, ok := err.(*drivercore.WriteError); ok {
		return fmt.Errorf("qemu: %w", err)
	}
	return err
}

// mkdirPrivate makes dir (and its parents) readable by the agent's user
// only: 0700, also when it existed with another mode. Host files hold
// tenants' disks, consoles and metadata.
func mkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	return os.Chmod(dir, 0o700)
}

// privatize gives the files of a VM that an older driver made 0755/0644
// the modes the driver makes them with now.
func privatize(dir string, r record) {
	_ = os.Chmod(dir, 0o700)
	files, _ := os.ReadDir(dir)
	for _, f := range files {
		if f.Type().IsRegular() {
			_ = os.Chmod(filepath.Join(dir, f.Name()), 0o600)
		}
	}
	for _, dk := range r.Disks {
		_ = os.Chmod(dk.Path, 0o600)
	}
}

// touchPrivate makes path exist, with mode 0600.
func touchPrivate(path string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	return f.Chmod(0o600)
}

func removeFile(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

func (d *Driver) writeRecord(r *record) error {
	return writeJSON(filepath.Join(d.vmDir(r.ID), recordFile), r)
}

func (d *Driver) diskRecordPath(id string) string {
	return filepath.Join(d.cfg.DataDir, disksDir, id+".json")
}

// Recover adopts the VMs and persistent disks a previous Driver left in
// DataDir. A STARTED or SUSPENDED VM whose QEMU still runs is adopted as
// it is (its QMP socket must answer); one whose QEMU is gone is reported
// ERROR. QEMU processes of this DataDir that no record claims are killed,
// and directories of VMs that never got a record are removed. VMs already
// known are kept as they are, so Recover may be called again. Unreadable
// records are skipped and reported in the error.
func (d *Driver) Recover(ctx context.Context) error {
	var errs []error
	var disks []diskRecord
	entries, err := os.ReadDir(filepath.Join(d.cfg.DataDir, disksDir))
	if err != nil {
		errs = append(errs, err)
	}
	for _, e := range entries {
		path := filepath.Join(d.cfg.DataDir, disksDir, e.Name())
		if strings.HasPrefix(e.Name(), tmpMark) {
			_ = os.Remove(path)
			continue
		}
		id, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok {
			continue
		}
		var dk diskRecord
		b, err := os.ReadFile(path)
		if err == nil {
			err = json.Unmarshal(b, &dk)
		}
		if err != nil || dk.ID != id || d.datastore(dk.Datastore) < 0 {
			errs = append(errs, fmt.Errorf("qemu: recover %s: not a disk record of this host (%v)", path, err))
			continue
		}
		dk.Kind = api.KindPersistentDisk
		disks = append(disks, dk)
		_ = os.Chmod(dk.Path, 0o600) // made 0644 by drivers before 0600
	}
	var recs []record
	entries, err = os.ReadDir(filepath.Join(d.cfg.DataDir, vmsDir))
	if err != nil {
		errs = append(errs, err)
	}
	for _, e := range entries {
		dir := filepath.Join(d.cfg.DataDir, vmsDir, e.Name())
		if !e.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, recordFile))
		if errors.Is(err, fs.ErrNotExist) {
			// A create that died before its record: nothing was promised.
			d.mu.Lock()
			_, known := d.vms[e.Name()]
			d.mu.Unlock()
			if !known {
				_ = os.RemoveAll(dir)
			}
			continue
		}
		var r record
		if err == nil {
			err = json.Unmarshal(b, &r)
		}
		if err != nil || r.ID != e.Name() {
			errs = append(errs, fmt.Errorf("qemu: recover %s: not a VM record (%v)", dir, err))
			continue
		}
		recs = append(recs, r)
		privatize(dir, r)
	}

	d.mu.Lock()
	for _, dk := range disks {
		if _, ok := d.disks[dk.ID]; !ok {
			d.disks[dk.ID] = &diskState{diskRecord: dk}
			d.account(dk, 1)
		}
	}
	adopted := 0
	claimed := map[int]bool{}
	for _, v := range d.vms {
		claimed[v.rec.PID] = true
	}
	for _, r := range recs {
		if _, ok := d.vms[r.ID]; ok {
			continue
		}
		for _, dk := range r.Disks {
			have, ok := d.disks[dk.ID]
			if !ok {
				have = &diskState{diskRecord: dk}
				d.disks[dk.ID] = have
				d.account(dk, 1)
			}
			have.vm = r.ID
		}
		if r.PID > 0 {
			if ok, _ := d.alive(r.ID, r.PID); ok {
				claimed[r.PID] = true
			}
		}
		d.vms[r.ID] = &vmState{rec: r}
		adopted++
	}
	d.mu.Unlock()

	// QEMU processes of this DataDir that no record claims.
	for _, pid := range d.ourProcesses() {
		if !claimed[pid] {
			d.cfg.Logger.Warn("qemu: killing a QEMU process no VM record claims", "pid", pid)
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	d.cfg.Logger.Info("qemu: recovered", "vms", adopted, "dataDir", d.cfg.DataDir)
	return errors.Join(errs...)
}

// measure refreshes each datastore's capacity: the configured one, or the
// free space of its filesystem plus what this driver's files there hold.
func (d *Driver) measure() {
	caps := make([]float64, len(d.cfg.Datastores))
	for i, ds := range d.cfg.Datastores {
		if ds.CapacityGB > 0 {
			caps[i] = ds.CapacityGB
			continue
		}
		var st syscall.Statfs_t
		if err := syscall.Statfs(ds.Path, &st); err != nil {
			continue
		}
		free := float64(st.Bavail) * float64(st.Bsize)
		var ours float64
		for _, sub := range []string{ephemeralDir, persistentDir} {
			entries, _ := os.ReadDir(filepath.Join(ds.Path, sub))
			for _, e := range entries {
				if info, err := e.Info(); err == nil {
					if sys, ok := info.Sys().(*syscall.Stat_t); ok {
						ours += float64(sys.Blocks) * 512
					}
				}
			}
		}
		caps[i] = float64(int64((free+ours)/gib*100)) / 100
	}
	d.mu.Lock()
	copy(d.capGB, caps)
	d.mu.Unlock()
}

// hostMemoryMB is MemTotal from /proc/meminfo.
func hostMemoryMB() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if rest, ok := strings.CutPrefix(s.Text(), "MemTotal:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			return kb / 1024
		}
	}
	return 0
}

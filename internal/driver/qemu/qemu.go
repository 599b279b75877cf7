// Package qemu is the driver for real VMs: one qemu-system-x86_64 process
// per VM, named "-name photon-<vm id>" so operators can find it,
// controlled over QMP on a unix socket. It implements driver.Driver and
// driver.DiskDriver with the semantics of driver/fake (checked by the
// same driver/drivertest suite).
//
// What a VM is made of:
//
//   - Its boot disk is a qcow2 overlay (qemu-img create -b) on the image
//     the agent cached on the disk's datastore; other ephemeral and
//     persistent disks are qcow2 files in per-datastore directories
//     (DATASTORE/ephemeral/<disk>.qcow2, DATASTORE/persistent/<disk>.qcow2).
//     The boot disk is a virtio-blk device; the others sit on a virtio-scsi
//     controller and are hot-plugged on a running VM with QMP blockdev-add
//     and device_add, and unplugged with device_del and blockdev-del. SCSI
//     hot-plug needs no cooperation from the guest (unlike PCI, whose
//     unplug waits for the guest's ACPI handler), so attach and detach work
//     at any moment of a guest's life, even while it boots.
//   - A cloud-init NoCloud seed: an ISO 9660 volume labelled "cidata"
//     (written in Go with github.com/kdomanski/iso9660), rebuilt at each
//     boot, with meta-data (instance-id = the VM id, local-hostname from
//     the VM's name) and user-data (metadata "user-data" verbatim, or a
//     #cloud-config with the hostname, the SSH keys of metadata "ssh-keys"
//     and the environment as /etc/photon/environment) and, for a VM with
//     NICs, a cloud-init version 2 network-config (metadata
//     "network-config" verbatim instead, if given). It is a read-only
//     virtio-blk disk.
//   - Each NIC is a virtio-net device on the tap of its port
//     (netplumb.TapName), which the host's network driver made before the
//     agent ensured the VM; QEMU opens it by name (no script, no
//     vhost-net). A boot whose tap is missing fails, naming it. A NIC
//     change takes effect at the VM's next boot.
//   - Its serial console goes to DATA_DIR/vms/<id>/console.log (appended
//     across boots); Console reads it.
//   - Power: boot starts QEMU paused (-S), waits for QMP (QEMU answers the
//     handshake only once it set the machine up, so a bad disk or option
//     fails here with QEMU's own message), then "cont". Suspend and resume
//     are QMP stop and cont. A graceful stop presses the ACPI power button
//     (system_powerdown, again every second, since a guest that is still
//     booting misses it) until QEMU exits or StopTimeout passes, then quits
//     QEMU. Stopping a SUSPENDED VM powers it off at once (memory lost).
//
// VMs outlive the agent: QEMU runs in its own session, and the driver's
// state is in DataDir (vms/<id>/vm.json, disks/<id>.json, written
// atomically). A new Driver on the same DataDir re-adopts the running
// QEMU processes in Recover by their pid (checked against /proc, so a
// reused pid is not mistaken for the VM) and QMP socket; QEMU processes of
// this DataDir that no record claims (a crash between start and record)
// are killed. A VM whose QEMU died is reported ERROR, with the reason,
// until an Ensure boots or stops it (the agent does, per desired state).
//
// A failed Ensure undoes what it did, in reverse (Incus's revert idea): a
// new VM whose disks or boot fail leaves nothing behind (no process,
// socket, overlay or record) and the error carries qemu-img's or QEMU's
// reason; an existing VM keeps what was done and reports the error
// without advancing its generation, as in driver/fake. Images are checked
// before use: read as the format the controller stored them in
// (DiskDesired.ImageFormat, pinned with -f in every qemu-img call; probed
// only when an older controller does not say), self-contained (no backing
// file, qcow2 data file or VMDK extent in another file: a tenant's image
// naming /etc/shadow would give the guest the host's file), not corrupt
// (qemu-img check), and a boot signature in the first sector. QEMU follows
// no file name written in an image either: every -blockdev names its
// backing, the overlay's is the image's node, opened read-only as the
// checked format with "backing": null, and blank disks have none.
//
// Host files are the agent's user's only: directories 0700, disks,
// records, seeds, consoles, logs and QMP sockets 0600.
//
// Acceleration is probed once in New (see Probe): KVM only if a tiny guest
// really runs under it, else TCG; Capacity().Hypervisor says which, e.g.
// "qemu-7.2 (tcg)". Capacity is the machine's: online CPUs and MemTotal
// times configurable overcommit ratios, and per datastore the free space
// of its filesystem plus what this driver's disks already hold.
//
// QMP: github.com/digitalocean/go-qemu/qmp (SocketMonitor), with every
// call bounded by a context here since the library's own calls have no
// deadline. One short QMP session per operation (QEMU serves one client
// per socket at a time), serialized per VM by the driver.
package qemu

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
	"github.com/photon-cloud/photon/internal/driver/drivercore"
)

// Errors the driver returns, wrapped with details. Test with errors.Is.
// The first five are every driver's (package driver).
var (
	ErrInvalidSpec     = driver.ErrInvalidSpec
	ErrTransition      = driver.ErrTransition
	ErrNoCapacity      = driver.ErrNoCapacity
	ErrDiskInUse       = driver.ErrDiskInUse
	ErrStaleGeneration = driver.ErrStaleGeneration
	// ErrBadImage: the boot image is not a disk QEMU can boot.
	ErrBadImage = errors.New("bad image")
	// ErrStart: QEMU did not start (its reason follows).
	ErrStart = errors.New("QEMU did not start")
)

// core is the driver's view of the rules it shares with every driver.
var core = drivercore.Errs{Prefix: "qemu"}

// Datastore is a directory where the driver keeps disks.
type Datastore struct {
	// Name as reported to the controller, e.g. "local".
	Name string
	// Path of the directory (made if missing).
	Path string
	// CapacityGB overrides the capacity measured from the filesystem.
	CapacityGB float64
	// Shared datastores are seen by other hosts under the same name.
	Shared bool
	Tags   []string
}

// Config configures the driver. DataDir is required; the rest has
// defaults.
type Config struct {
	// DataDir holds VM records, seeds, consoles, QMP sockets and pid files.
	DataDir string
	// Datastores; default one "local" at DataDir/datastores/local.
	Datastores []Datastore
	// QEMU and QEMUImg binaries; defaults qemu-system-x86_64 and qemu-img.
	QEMU    string
	QEMUImg string
	// Accel is "kvm", "tcg", or "" to probe (KVM only if a guest really
	// runs under it).
	Accel string
	// Machine type; default "pc" (i440fx).
	Machine string
	// CPUOvercommit multiplies the host's CPUs (default 4); MemoryOvercommit
	// its memory (default 1). ReservedMemoryMB is kept for the host
	// (default 512).
	CPUOvercommit    float64
	MemoryOvercommit float64
	ReservedMemoryMB int64
	// StopTimeout bounds a graceful (ACPI) stop before QEMU is quit;
	// default 30s.
	StopTimeout time.Duration
	// StartTimeout bounds QEMU's start until QMP answers; default 30s.
	StartTimeout time.Duration
	Logger       *slog.Logger
}

func (c *Config) setDefaults() {
	if c.QEMU == "" {
		c.QEMU = "qemu-system-x86_64"
	}
	if c.QEMUImg == "" {
		c.QEMUImg = "qemu-img"
	}
	if c.Machine == "" {
		c.Machine = "pc"
	}
	if len(c.Datastores) == 0 {
		c.Datastores = []Datastore{{Name: "local", Path: filepath.Join(c.DataDir, "datastores", "local")}}
	} else {
		c.Datastores = append([]Datastore(nil), c.Datastores...)
	}
	if c.CPUOvercommit == 0 {
		c.CPUOvercommit = 4
	}
	if c.MemoryOvercommit == 0 {
		c.MemoryOvercommit = 1
	}
	if c.ReservedMemoryMB == 0 {
		c.ReservedMemoryMB = 512
	}
	if c.StopTimeout == 0 {
		c.StopTimeout = 30 * time.Second
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = 30 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Validate reports a Config the driver cannot run with.
func (c *Config) Validate() error {
	if c.DataDir == "" {
		return errors.New("qemu: no DataDir")
	}
	switch c.Accel {
	case "", AccelKVM, AccelTCG:
	default:
		return fmt.Errorf("qemu: Accel %q: want kvm, tcg or empty (probe)", c.Accel)
	}
	seen := map[string]bool{}
	for _, ds := range c.Datastores {
		if ds.Name == "" || seen[ds.Name] || ds.Path == "" {
			return fmt.Errorf("qemu: datastore %q: names must be unique and non-empty, with a path", ds.Name)
		}
		seen[ds.Name] = true
		if ds.CapacityGB < 0 {
			return fmt.Errorf("qemu: datastore %q: negative capacity", ds.Name)
		}
	}
	if c.CPUOvercommit < 0 || c.MemoryOvercommit < 0 || c.ReservedMemoryMB < 0 || c.StopTimeout < 0 || c.StartTimeout < 0 {
		return errors.New("qemu: negative overcommit, reserve or timeout")
	}
	return nil
}

// Driver runs VMs as QEMU processes on this host. It is safe for
// concurrent use; calls for one VM are serialized, calls for different VMs
// overlap.
type Driver struct {
	cfg     Config
	accel   string
	version string
	runDir  string // QMP sockets (short paths: sun_path holds 108 bytes)

	vmLocks sync.Map // VM id → *sync.Mutex

	mu  sync.Mutex
	vms map[string]*vmState
	// stopping holds the VMs being powered down: their QEMU exiting is
	// the stop, not a crash.
	stopping map[string]bool
	disks    map[string]*diskState // every disk, ephemeral and persistent
	used     []float64             // GB allocated per cfg.Datastores entry
	capGB    []float64             // GB per cfg.Datastores entry (measured)
	procMu   sync.Mutex
	procs    map[int]*proc // QEMU processes this Driver started (and reaps)

	imgMu      sync.Mutex
	imgChecked map[string]imageCheck
}

var (
	_ driver.Driver     = (*Driver)(nil)
	_ driver.DiskDriver = (*Driver)(nil)
	_ driver.Consoler   = (*Driver)(nil)
)

// New checks the config, makes the directories, finds QEMU's version and
// probes acceleration unless cfg.Accel says. Call Recover to adopt VMs a
// previous Driver left in DataDir.
func New(ctx context.Context, cfg Config) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	cfg.DataDir = abs
	for i := range cfg.Datastores {
		if cfg.Datastores[i].Path, err = filepath.Abs(cfg.Datastores[i].Path); err != nil {
			return nil, err
		}
	}
	version, err := qemuVersion(ctx, cfg.QEMU)
	if err != nil {
		return nil, fmt.Errorf("qemu: %w", err)
	}
	accel := cfg.Accel
	if accel == "" {
		if accel, err = Probe(ctx, cfg.QEMU); err != nil {
			return nil, err
		}
	}
	d := &Driver{
		cfg: cfg, accel: accel, version: version,
		runDir:     socketDir(cfg.DataDir),
		vms:        map[string]*vmState{},
		disks:      map[string]*diskState{},
		used:       make([]float64, len(cfg.Datastores)),
		capGB:      make([]float64, len(cfg.Datastores)),
		procs:      map[int]*proc{},
		imgChecked: map[string]imageCheck{},
	}
	// Every directory the driver keeps: 0700, also when an older driver
	// made it 0755 (tenants' disks, consoles and metadata are in them).
	dirs := []string{cfg.DataDir, filepath.Join(cfg.DataDir, vmsDir), filepath.Join(cfg.DataDir, disksDir), d.runDir}
	for _, ds := range cfg.Datastores {
		dirs = append(dirs, ds.Path, filepath.Join(ds.Path, ephemeralDir), filepath.Join(ds.Path, persistentDir))
	}
	for _, dir := range dirs {
		if err := mkdirPrivate(dir); err != nil {
			return nil, fmt.Errorf("qemu: %w", err)
		}
	}
	d.measure()
	cfg.Logger.Info("qemu driver", "hypervisor", d.Hypervisor(), "dataDir", cfg.DataDir)
	return d, nil
}

// Hypervisor names QEMU's version and the acceleration, e.g.
// "qemu-7.2 (tcg)".
func (d *Driver) Hypervisor() string { return fmt.Sprintf("%s (%s)", d.version, d.accel) }

// Accel is "kvm" or "tcg".
func (d *Driver) Accel() string { return d.accel }

// Capacity reports the machine's CPUs and memory (with overcommit) and the
// datastores.
func (d *Driver) Capacity(ctx context.Context) (driver.Capacity, error) {
	d.measure()
	cpus := int(float64(runtime.NumCPU()) * d.cfg.CPUOvercommit)
	memMB := int64(float64(hostMemoryMB()-d.cfg.ReservedMemoryMB) * d.cfg.MemoryOvercommit)
	c := driver.Capacity{
		HostResources: api.HostResources{CPUCount: max(cpus, 1), MemoryMB: max(memMB, 1)},
		Hypervisor:    d.Hypervisor(),
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for i, ds := range d.cfg.Datastores {
		c.Datastores = append(c.Datastores, api.DatastoreReport{Name: ds.Name, Shared: ds.Shared,
			CapacityGB: d.capGB[i], Tags: append([]string(nil), ds.Tags...)})
	}
	return c, nil
}

// hostLimits are the largest CPU count and memory one VM may have.
func (d *Driver) hostLimits() (int, int64) {
	cpus := max(int(float64(runtime.NumCPU())*d.cfg.CPUOvercommit), 1)
	memMB := max(int64(float64(hostMemoryMB()-d.cfg.ReservedMemoryMB)*d.cfg.MemoryOvercommit), 1)
	return cpus, memMB
}

// List reports every VM, sorted by ID.
func (d *Driver) List(ctx context.Context) ([]driver.VMStatus, error) {
	d.mu.Lock()
	out := make([]driver.VMStatus, 0, len(d.vms))
	for _, v := range d.vms {
		out = append(out, d.observeLocked(v))
	}
	d.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].ID < out[j].ID })
	return out, nil
}

// NICs returns the NICs a VM's next boot gets (driver.NICReporter); a
// running VM keeps those it booted with.
func (d *Driver) NICs(_ context.Context, id string) ([]api.NICDesired, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.vms[id]
	if !ok {
		return nil, fmt.Errorf("qemu: VM %s: %w", id, driver.ErrNotFound)
	}
	return slices.Clone(v.rec.NICs), nil
}

// Delete stops the VM's QEMU (quit, then kill), removes its ephemeral
// disks, seed, console and record, and detaches its persistent disks. A
// missing VM is not an error.
func (d *Driver) Delete(ctx context.Context, id string) error {
	if err := checkID("VM", id); err != nil {
		return err
	}
	unlock := d.lockVM(id)
	defer unlock()
	d.mu.Lock()
	v, ok := d.vms[id]
	d.mu.Unlock()
	if !ok {
		return nil
	}
	if v.rec.PID > 0 {
		if err := d.kill(ctx, v.rec.ID, v.rec.PID); err != nil {
			return fmt.Errorf("qemu: delete VM %s: %w", id, err)
		}
	}
	var errs []error
	for _, dk := range v.rec.Disks {
		if dk.Kind != api.KindPersistentDisk {
			if err := removeFile(dk.Path); err != nil {
				errs = append(errs, err)
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("qemu: delete VM %s: %w", id, errors.Join(errs...))
	}
	if err := os.RemoveAll(d.vmDir(id)); err != nil {
		return fmt.Errorf("qemu: delete VM %s: %w", id, err)
	}
	d.removeRunFiles(id)
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, dk := range v.rec.Disks {
		if dk.Kind == api.KindPersistentDisk {
			if ds := d.disks[dk.ID]; ds != nil && ds.vm == id {
				ds.vm = ""
			}
			continue
		}
		if ds := d.disks[dk.ID]; ds != nil && ds.vm == id {
			d.account(ds.diskRecord, -1)
			delete(d.disks, dk.ID)
		}
	}
	delete(d.vms, id)
	d.cfg.Logger.Info("qemu: VM deleted", "vm", id)
	return nil
}

// lockVM serializes the operations on one VM.
func (d *Driver) lockVM(id string) func() {
	m, _ := d.vmLocks.LoadOrStore(id, &sync.Mutex{})
	mu := m.(*sync.Mutex)
	mu.Lock()
	return mu.Unlock
}

// datastore returns the index of a datastore, or -1.
func (d *Driver) datastore(name string) int {
	for i := range d.cfg.Datastores {
		if d.cfg.Datastores[i].Name == name {
			return i
		}
	}
	return -1
}

// account adds (sign 1) or releases (sign -1) a disk's capacity.
func (d *Driver) account(dk diskRecord, sign float64) {
	if i := d.datastore(dk.Datastore); i >= 0 {
		d.used[i] += sign * dk.CapacityGB
		if d.used[i] < 1e-9 {
			d.used[i] = 0
		}
	}
}

// checkID accepts IDs that are safe as file names: 1..128 of
// [A-Za-z0-9._-], not starting with '.'.
func checkID(what, id string) error { return core.CheckID(what, id) }

func validID(id string) bool { return drivercore.ValidID(id) }

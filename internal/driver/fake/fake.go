// Package fake is a simulated hypervisor: a driver.Driver (and
// driver.DiskDriver) that keeps VMs and disks in memory, optionally
// persisted as JSON files in a data dir so that they survive the agent
// process the way QEMU processes would. It has configurable capacity,
// per-operation latency and fault knobs (in the spirit of Nomad's mock
// driver), and it is small: no goroutine per VM or per driver, a few
// hundred bytes per idle instance, so one process can simulate thousands
// of hosts (see NewFleet).
//
// Semantics, shared with every driver through driver/drivertest:
//
//   - Ensure creates a missing VM (Power "" means STOPPED), then moves it to
//     spec.Power. Allowed transitions: STOPPED→STARTED (boot),
//     STARTED→STOPPED, STARTED→SUSPENDED (pause, memory kept),
//     SUSPENDED→STARTED (resume), SUSPENDED→STOPPED (power off, memory
//     lost), ERROR→STARTED (reboot after a crash) and ERROR→STOPPED.
//     SUSPENDED is reachable only from STARTED (or SUSPENDED): asking for it
//     on a STOPPED, ERROR or new VM is an error and changes nothing.
//   - A VM is ERROR only when it broke (its process "crashed": CrashAfter,
//     Crash). A refused or failed Ensure leaves the VM as it was, sets the
//     observed Error and does not advance the observed Generation, so the
//     agent sees that the generation was not carried out and why.
//   - Disks are matched by ID. A disk in the spec but not on the VM is
//     attached (an ephemeral disk is made; a persistent one is adopted, or
//     made if EnsureDisk has not made it yet); a disk on the VM but not in
//     the spec is detached (an ephemeral disk is then deleted, a persistent
//     one stays). A disk already attached keeps what it was made with.
//     Disks are hot-plugged on a STARTED VM, but not while SUSPENDED (the
//     guest cannot acknowledge), and a boot disk changes only while STOPPED.
//     Ensure orders its steps so that a single call can do both: power-down
//     or leaving SUSPENDED first, then disks, then boot or suspend.
//   - A persistent disk is attached to at most one VM; DeleteDisk refuses an
//     attached disk. Delete removes the VM and its ephemeral disks and
//     detaches its persistent ones.
//   - A VM's NICs are checked (drivercore: ids, unicast MACs, each on a
//     subnet of the spec's Subnets, its address in it) and kept as the
//     last spec carried out gave them (NICs, driver.NICReporter); nothing
//     is plugged anywhere.
//   - A new disk must fit the free capacity of its datastore (capacity less
//     every disk on it). CPU and memory are the controller's business, but a
//     VM larger than the whole host is refused.
//   - A spec whose Generation is lower than the one carried out is stale and
//     refused (ErrStaleGeneration). The same generation again is a no-op
//     unless the VM drifted (e.g. crashed), in which case it converges again.
//   - Without DataDir, VMs die with the Driver; with it, a new Driver on the
//     same DataDir adopts them in Recover, with their power state.
package fake

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
	"github.com/photon-cloud/photon/internal/driver/drivercore"
)

// Errors the fake returns, wrapped with details. Test with errors.Is. All
// but ErrInjected are every driver's (package driver).
var (
	ErrInvalidSpec     = driver.ErrInvalidSpec
	ErrTransition      = driver.ErrTransition
	ErrNoCapacity      = driver.ErrNoCapacity
	ErrDiskInUse       = driver.ErrDiskInUse
	ErrStaleGeneration = driver.ErrStaleGeneration
	// ErrInjected: a failure injected by a fault knob.
	ErrInjected = errors.New("injected failure")
)

// core is the fake's view of the rules it shares with every driver.
var core = drivercore.Errs{Prefix: "fake"}

// Config describes one simulated host. The zero value is a usable host:
// 16 CPUs, 64 GiB, one 1000 GB datastore "local", in memory, no faults.
type Config struct {
	// CPUCount the host offers; default 16.
	CPUCount int
	// MemoryMB the host offers; default 65536.
	MemoryMB int64
	// Datastores the host sees; default one "local" of 1000 GB.
	Datastores []api.DatastoreReport
	// Hypervisor reported by Capacity; default "fake".
	Hypervisor string
	// DataDir, if set, holds VM and disk state as JSON (vms/<id>.json,
	// disks/<id>.json, each written atomically by rename), so a new Driver
	// on the same DataDir re-adopts the VMs in Recover. Without it state
	// lives and dies with the Driver.
	DataDir string

	// Latency is added to every operation that changes something (create,
	// transition, attach, delete); Jitter adds a uniform random [0, Jitter).
	// Both honour the context.
	Latency time.Duration
	Jitter  time.Duration

	// FailEnsure is the probability (0..1) that an Ensure fails before
	// changing anything, with ErrInjected.
	FailEnsure float64
	// FailEnsureFunc, if set, is called by every Ensure before it changes
	// anything; a non-nil error fails the Ensure (wrapped in ErrInjected).
	FailEnsureFunc func(spec driver.VMSpec) error
	// FailOnNames lists VM names whose every Ensure fails with ErrInjected.
	FailOnNames []string
	// FailStart is the probability that booting a VM (STOPPED or ERROR to
	// STARTED) fails after its disks were made: a failure mid-way, like a
	// QEMU process that does not start. The VM stays STOPPED.
	FailStart float64
	// FailDelete is the probability that a Delete of an existing VM fails.
	FailDelete float64
	// FailDisk is the probability that EnsureDisk or DeleteDisk fails when
	// it would change something.
	FailDisk float64
	// CrashAfter, if positive, makes every VM crash (state ERROR) once it
	// has run that long since its last boot or resume. Evaluated lazily
	// when the VM is observed: no timers, no goroutines.
	CrashAfter time.Duration

	// Seed makes the fault knobs and jitter deterministic; 0 picks a random
	// seed.
	Seed uint64
	// Logger receives a debug line per change; default discards.
	Logger *slog.Logger
}

// Validate reports a Config that cannot describe a host.
func (c *Config) Validate() error {
	if c.CPUCount < 0 || c.MemoryMB < 0 {
		return fmt.Errorf("fake: negative CPUCount or MemoryMB")
	}
	seen := map[string]bool{}
	for _, ds := range c.Datastores {
		if ds.Name == "" || seen[ds.Name] {
			return fmt.Errorf("fake: datastore names must be unique and non-empty, got %q", ds.Name)
		}
		seen[ds.Name] = true
		if ds.CapacityGB <= 0 {
			return fmt.Errorf("fake: datastore %q: capacity must be positive", ds.Name)
		}
	}
	for _, p := range []float64{c.FailEnsure, c.FailStart, c.FailDelete, c.FailDisk} {
		if p < 0 || p > 1 {
			return fmt.Errorf("fake: failure probabilities must be within 0..1, got %v", p)
		}
	}
	if c.Latency < 0 || c.Jitter < 0 || c.CrashAfter < 0 {
		return fmt.Errorf("fake: negative Latency, Jitter or CrashAfter")
	}
	return nil
}

func (c *Config) setDefaults() {
	if c.CPUCount == 0 {
		c.CPUCount = 16
	}
	if c.MemoryMB == 0 {
		c.MemoryMB = 65536
	}
	if len(c.Datastores) == 0 {
		c.Datastores = []api.DatastoreReport{{Name: "local", CapacityGB: 1000}}
	} else {
		c.Datastores = append([]api.DatastoreReport(nil), c.Datastores...)
	}
	if c.Hypervisor == "" {
		c.Hypervisor = "fake"
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if len(c.FailOnNames) > 0 {
		c.FailOnNames = append([]string(nil), c.FailOnNames...)
	}
}

// Driver is one simulated host. It is safe for concurrent use; calls for
// different VMs overlap (their latency sleeps run in parallel).
type Driver struct {
	cfg Config

	mu    sync.Mutex
	vms   map[string]*vm
	disks map[string]*disk // every disk, ephemeral and persistent
	used  []float64        // GB allocated per cfg.Datastores entry
	rng   rand.PCG
	// listed is List's answer (nil: none kept), good until listedUntil,
	// the first crash due (CrashAfter; zero: none), but for the VMs in
	// changed, changed since (every change of a VM goes through write or
	// remove; Recover drops the answer). An agent lists its VMs for every
	// report: observing each VM again was 12% of bench/fleet's CPU (the
	// VMs' records scattered in memory, a cache miss each).
	listed      []driver.VMStatus
	listedUntil time.Time
	changed     map[string]bool
}

var (
	_ driver.Driver     = (*Driver)(nil)
	_ driver.DiskDriver = (*Driver)(nil)
	_ driver.Consoler   = (*Driver)(nil)
)

// New returns a simulated host. With cfg.DataDir it creates the directory;
// call Recover to adopt VMs a previous Driver left there.
func New(cfg Config) (*Driver, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	if cfg.DataDir != "" {
		for _, sub := range []string{vmsDir, disksDir} {
			if err := os.MkdirAll(filepath.Join(cfg.DataDir, sub), 0o700); err != nil {
				return nil, fmt.Errorf("fake: %w", err)
			}
		}
	}
	seed := cfg.Seed
	if seed == 0 {
		seed = rand.Uint64()
	}
	d := &Driver{
		cfg:   cfg,
		vms:   map[string]*vm{},
		disks: map[string]*disk{},
		used:  make([]float64, len(cfg.Datastores)),
	}
	d.rng.Seed(seed, seed^0x9e3779b97f4a7c15)
	return d, nil
}

// NewFleet returns n simulated hosts sharing cfg; with cfg.DataDir each
// host gets its own subdirectory host-0000, host-0001, ... Seeds differ per
// host when cfg.Seed is set.
func NewFleet(n int, cfg Config) ([]*Driver, error) {
	out := make([]*Driver, 0, n)
	for i := range n {
		c := cfg
		if cfg.DataDir != "" {
			c.DataDir = filepath.Join(cfg.DataDir, fmt.Sprintf("host-%04d", i))
		}
		if cfg.Seed != 0 {
			c.Seed = cfg.Seed + uint64(i)
		}
		d, err := New(c)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

// Capacity reports the configured CPU, memory and datastores.
func (d *Driver) Capacity(ctx context.Context) (driver.Capacity, error) {
	return driver.Capacity{
		HostResources: api.HostResources{CPUCount: d.cfg.CPUCount, MemoryMB: d.cfg.MemoryMB},
		Datastores:    append([]api.DatastoreReport(nil), d.cfg.Datastores...),
		Hypervisor:    d.cfg.Hypervisor,
	}, nil
}

// List reports every VM, sorted by ID.
func (d *Driver) List(ctx context.Context) ([]driver.VMStatus, error) {
	now := time.Now()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.listed == nil || !d.listedUntil.IsZero() && !now.Before(d.listedUntil) {
		d.listed, d.listedUntil = d.listLocked(now)
	} else {
		for id := range d.changed {
			d.relist(id, now)
		}
	}
	clear(d.changed)
	return slices.Clone(d.listed), nil
}

// relist observes VM id again in the kept answer (d.listed, sorted by id):
// replaced, added, or removed if gone.
func (d *Driver) relist(id string, now time.Time) {
	i, found := slices.BinarySearchFunc(d.listed, id, func(s driver.VMStatus, id string) int { return strings.Compare(s.ID, id) })
	v, ok := d.vms[id]
	switch {
	case ok && found:
		d.listed[i] = d.observe(v, now)
	case ok:
		d.listed = slices.Insert(d.listed, i, d.observe(v, now))
	case found:
		d.listed = slices.Delete(d.listed, i, i+1)
	}
	if ok {
		d.listedUntil = firstCrash(v, now, d.listedUntil)
	}
}

// firstCrash is v's crash (CrashAfter) if v runs and crashes after now and
// before until (zero: never), else until.
func firstCrash(v *vm, now, until time.Time) time.Time {
	if v.Power == api.VMStarted && now.Before(v.CrashAt) && (until.IsZero() || v.CrashAt.Before(until)) {
		return v.CrashAt
	}
	return until
}

// changedVM notes that VM id changes (d.mu held): List observes it again.
func (d *Driver) changedVM(id string) {
	if d.changed == nil {
		d.changed = map[string]bool{}
	}
	d.changed[id] = true
}

// listLocked observes every VM at now, sorted by id, and returns when that
// stops being true without a change (the first crash due; zero: never).
func (d *Driver) listLocked(now time.Time) ([]driver.VMStatus, time.Time) {
	out := make([]driver.VMStatus, 0, len(d.vms))
	var until time.Time
	for _, v := range d.vms {
		out = append(out, d.observe(v, now))
		until = firstCrash(v, now, until)
	}
	slices.SortFunc(out, func(a, b driver.VMStatus) int { return strings.Compare(a.ID, b.ID) })
	return out, until
}

// Delete removes the VM and its ephemeral disks and detaches its persistent
// disks. A missing VM is not an error.
func (d *Driver) Delete(ctx context.Context, id string) error {
	if err := checkID("VM", id); err != nil {
		return err
	}
	d.mu.Lock()
	_, ok := d.vms[id]
	delay := d.delayLocked()
	fail := ok && d.chanceLocked(d.cfg.FailDelete)
	d.mu.Unlock()
	if !ok {
		return nil
	}
	if err := sleep(ctx, delay); err != nil {
		return err
	}
	if fail {
		return fmt.Errorf("fake: delete VM %s: %w", id, ErrInjected)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.vms[id]
	if !ok {
		return nil
	}
	if err := d.remove(vmsDir, id); err != nil {
		return err
	}
	for _, dk := range v.Disks {
		if dk.Kind == api.KindPersistentDisk {
			dk.vm = ""
			continue
		}
		d.account(dk, -1)
		delete(d.disks, dk.ID)
	}
	delete(d.vms, id)
	d.cfg.Logger.Debug("fake: VM deleted", "vm", id)
	return nil
}

// Crash makes a VM fail as if its process died: it is reported ERROR with
// reason until an Ensure boots or stops it. It returns driver.ErrNotFound
// for a missing VM.
func (d *Driver) Crash(id, reason string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.vms[id]
	if !ok {
		return fmt.Errorf("fake: crash %s: %w", id, driver.ErrNotFound)
	}
	next := *v
	next.Power = api.VMError
	next.Error = "fake: VM crashed: " + reason
	next.CrashAt = time.Time{}
	next.log(time.Now(), "crashed: %s", reason)
	if err := d.write(vmsDir, id, &next); err != nil {
		return err
	}
	*v = next
	return nil
}

// Disks returns the IDs of the disks attached to a VM, in spec order.
func (d *Driver) Disks(vmID string) ([]string, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.vms[vmID]
	if !ok {
		return nil, fmt.Errorf("fake: %s: %w", vmID, driver.ErrNotFound)
	}
	ids := make([]string, len(v.Disks))
	for i, dk := range v.Disks {
		ids[i] = dk.ID
	}
	return ids, nil
}

// NICs returns the NICs of a VM (driver.NICReporter).
func (d *Driver) NICs(_ context.Context, vmID string) ([]api.NICDesired, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	v, ok := d.vms[vmID]
	if !ok {
		return nil, fmt.Errorf("fake: %s: %w", vmID, driver.ErrNotFound)
	}
	return slices.Clone(v.NICs), nil
}

// UsedGB is the capacity allocated to disks on a datastore.
func (d *Driver) UsedGB(datastore string) float64 {
	d.mu.Lock()
	defer d.mu.Unlock()
	if i := d.datastore(datastore); i >= 0 {
		return d.used[i]
	}
	return 0
}

// datastore returns the index of a datastore in cfg.Datastores, or -1.
func (d *Driver) datastore(name string) int {
	for i := range d.cfg.Datastores {
		if d.cfg.Datastores[i].Name == name {
			return i
		}
	}
	return -1
}

// account adds (sign 1) or releases (sign -1) a disk's capacity.
func (d *Driver) account(dk *disk, sign float64) {
	if i := d.datastore(dk.Datastore); i >= 0 {
		d.used[i] += sign * dk.CapacityGB
		if d.used[i] < 1e-9 {
			d.used[i] = 0
		}
	}
}

// delayLocked draws an operation's latency.
func (d *Driver) delayLocked() time.Duration {
	delay := d.cfg.Latency
	if d.cfg.Jitter > 0 {
		delay += time.Duration(d.rng.Uint64() % uint64(d.cfg.Jitter))
	}
	return delay
}

// chanceLocked reports true with probability p.
func (d *Driver) chanceLocked(p float64) bool {
	if p <= 0 {
		return false
	}
	return float64(d.rng.Uint64()>>11)/(1<<53) < p
}

func sleep(ctx context.Context, delay time.Duration) error {
	if delay <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// checkID accepts IDs that are safe as file names (drivers name files and
// processes after them): 1..128 of [A-Za-z0-9._-], not starting with '.'.
func checkID(what, id string) error { return core.CheckID(what, id) }

func validID(id string) bool { return drivercore.ValidID(id) }

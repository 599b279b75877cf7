// Package drivertest is the conformance suite every driver.Driver passes,
// the fake and QEMU alike, so the fake cannot drift from the real thing.
// It uses only the driver interfaces (and driver.DiskDriver when the driver
// implements it), never a driver's internals:
//
//	func TestConformance(t *testing.T) {
//		drivertest.Run(t, func(t *testing.T, dataDir string) driver.Driver {
//			d, err := fake.New(fake.Config{DataDir: dataDir})
//			if err != nil {
//				t.Fatal(err)
//			}
//			return d
//		})
//	}
//
// newDriver is called once per case with a fresh dataDir, and a second time
// with the same dataDir where the case simulates an agent restart (the first
// driver is then abandoned, as a killed agent process would be). Cases that
// need more than the interfaces (a bootable image, a way to kill a VM's
// process) run only when Options supplies it.
//
// The semantics it checks (see also driver/fake's package doc): a created
// VM is STOPPED unless asked otherwise; power moves STOPPED↔STARTED,
// STARTED↔SUSPENDED and SUSPENDED→STOPPED, and SUSPENDED is refused from
// STOPPED; a refused Ensure changes nothing and keeps the observed
// Generation; the same spec twice is a no-op and an older generation is
// refused; disks are attached and detached by the spec's list (not while
// SUSPENDED; a boot disk only while STOPPED); a persistent disk is attached
// to one VM at a time and outlives VMs; a VM keeps the NICs of its last
// spec (driver.NICReporter), each on a subnet the spec gives; Delete is
// idempotent; Recover on a new driver over the same dataDir re-adopts VMs
// with their state.
package drivertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
)

// NewDriver makes a driver over dataDir. It is called again with the same
// dataDir to simulate an agent restart.
type NewDriver func(t *testing.T, dataDir string) driver.Driver

// Options adapt the suite to a driver. The zero value suits the fake.
type Options struct {
	// ImageID and ImagePath, when ImagePath is set, give every test VM a
	// boot disk made from this image (the agent's ImagePaths). Without them
	// boot disks are blank.
	ImageID   string
	ImagePath string
	// CPUCount and MemoryMB of test VMs; defaults 1 and 64.
	CPUCount int
	MemoryMB int64
	// DiskGB of test disks; default 1.
	DiskGB float64
	// Concurrency is how many VMs the concurrency case ensures at once;
	// default 20.
	Concurrency int
	// KillVM, when set, kills a VM behind the driver's back (kill -9 of a
	// QEMU process; fake.Driver.Crash). The suite then checks that the VM is
	// reported ERROR and that Ensure boots or stops it again.
	KillVM func(t *testing.T, d driver.Driver, vmID string)
	// KilledWithin bounds how long a killed VM may take to be reported
	// ERROR; default 10s.
	KilledWithin time.Duration
	// SkipCapacityAccounting skips the cases where a disk larger than the
	// free capacity left by other disks must be refused.
	SkipCapacityAccounting bool
	// Timeout bounds each case; default 2 minutes.
	Timeout time.Duration
}

func (o *Options) defaults() {
	if o.CPUCount == 0 {
		o.CPUCount = 1
	}
	if o.MemoryMB == 0 {
		o.MemoryMB = 64
	}
	if o.DiskGB == 0 {
		o.DiskGB = 1
	}
	if o.Concurrency == 0 {
		o.Concurrency = 20
	}
	if o.KilledWithin == 0 {
		o.KilledWithin = 10 * time.Second
	}
	if o.Timeout == 0 {
		o.Timeout = 2 * time.Minute
	}
	if o.ImagePath != "" && o.ImageID == "" {
		o.ImageID = "drivertest-image"
	}
}

// Run runs the suite with default Options.
func Run(t *testing.T, newDriver NewDriver) {
	RunWithOptions(t, newDriver, Options{})
}

// RunWithOptions runs the suite, each case as a subtest.
func RunWithOptions(t *testing.T, newDriver NewDriver, opts Options) {
	opts.defaults()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.skip != nil {
				if why := c.skip(&opts); why != "" {
					t.Skip(why)
				}
			}
			c.run(newHarness(t, newDriver, opts))
		})
	}
}

type testCase struct {
	name string
	skip func(*Options) string
	run  func(h *harness)
}

// cases, in the order they run; their bodies are in lifecycle.go and
// disks.go.
var cases = []testCase{
	{name: "Capacity", run: testCapacity},
	{name: "Create", run: testCreate},
	{name: "Transitions", run: testTransitions},
	{name: "Idempotent", run: testIdempotent},
	{name: "StaleGeneration", run: testStaleGeneration},
	{name: "Delete", run: testDelete},
	{name: "List", run: testList},
	{name: "BadSpecs", run: testBadSpecs},
	{name: "Concurrent", run: testConcurrent},
	{name: "KilledVM", run: testKilledVM, skip: func(o *Options) string {
		if o.KillVM == nil {
			return "Options.KillVM not set"
		}
		return ""
	}},
	{name: "AttachDetach", run: testAttachDetach},
	{name: "PersistentDisk", run: testPersistentDisk},
	{name: "DiskDriver", run: testDiskDriver},
	{name: "DiskCapacity", run: testDiskCapacity, skip: func(o *Options) string {
		if o.SkipCapacityAccounting {
			return "Options.SkipCapacityAccounting set"
		}
		return ""
	}},
	{name: "NICs", run: testNICs},
	{name: "Recover", run: testRecover},
}

// harness is one case's driver, data dir and helpers.
type harness struct {
	t         *testing.T
	newDriver NewDriver
	o         Options
	dir       string
	d         driver.Driver
	ctx       context.Context
	ds        api.DatastoreReport // the datastore test disks go to
	cap       driver.Capacity
	prefix    string
}

func newHarness(t *testing.T, newDriver NewDriver, o Options) *harness {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), o.Timeout)
	t.Cleanup(cancel)
	var b [3]byte
	_, _ = rand.Read(b[:])
	h := &harness{t: t, newDriver: newDriver, o: o, dir: t.TempDir(), ctx: ctx, prefix: "dt" + hex.EncodeToString(b[:])}
	h.d = h.start()
	c, err := h.d.Capacity(ctx)
	if err != nil {
		t.Fatalf("Capacity: %v", err)
	}
	if len(c.Datastores) == 0 {
		t.Fatalf("Capacity reports no datastore")
	}
	h.cap, h.ds = c, c.Datastores[0]
	t.Cleanup(h.cleanup)
	return h
}

// start makes a driver over the case's dataDir and recovers it.
func (h *harness) start() driver.Driver {
	h.t.Helper()
	d := h.newDriver(h.t, h.dir)
	if d == nil {
		h.t.Fatal("newDriver returned nil")
	}
	if err := d.Recover(h.ctx); err != nil {
		h.t.Fatalf("Recover: %v", err)
	}
	return d
}

// restart abandons the driver and makes a new one over the same dataDir,
// as an agent restart does.
func (h *harness) restart() {
	h.t.Helper()
	h.d = h.start()
}

// cleanup deletes every VM the current driver knows (real drivers leave
// processes and files otherwise).
func (h *harness) cleanup() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	vms, err := h.d.List(ctx)
	if err != nil {
		h.t.Errorf("cleanup: List: %v", err)
		return
	}
	for _, v := range vms {
		if err := h.d.Delete(ctx, v.ID); err != nil {
			h.t.Errorf("cleanup: Delete %s: %v", v.ID, err)
		}
	}
}

// id names a VM or disk uniquely to this case.
func (h *harness) id(name string) string { return h.prefix + "-" + name }

// spec is a VM with a boot disk on the test datastore.
func (h *harness) spec(name, power string, gen int64, disks ...api.DiskDesired) driver.VMSpec {
	id := h.id(name)
	boot := api.DiskDesired{ID: id + "-boot", Kind: api.KindEphemeralDisk, Datastore: h.ds.Name, CapacityGB: h.o.DiskGB, BootDisk: true}
	s := driver.VMSpec{VMDesired: api.VMDesired{
		ID: id, Name: name, CPUCount: h.o.CPUCount, MemoryMB: h.o.MemoryMB,
		Power: power, Generation: gen, Disks: append([]api.DiskDesired{boot}, disks...),
	}}
	if h.o.ImagePath != "" {
		s.Disks[0].ImageID = h.o.ImageID
		s.ImagePaths = map[string]string{h.o.ImageID: h.o.ImagePath}
	}
	return s
}

// next is spec with another power state and the generation raised.
func next(s driver.VMSpec, power string) driver.VMSpec {
	s.Power = power
	s.Generation++
	s.Disks = append([]api.DiskDesired(nil), s.Disks...)
	return s
}

// withDisks is spec with another disk list (after the boot disk) and the
// generation raised.
func withDisks(s driver.VMSpec, disks ...api.DiskDesired) driver.VMSpec {
	s.Generation++
	s.Disks = append([]api.DiskDesired{s.Disks[0]}, disks...)
	return s
}

func (h *harness) disk(name, kind string, gb float64) api.DiskDesired {
	return api.DiskDesired{ID: h.id(name), Kind: kind, Datastore: h.ds.Name, CapacityGB: gb}
}

// try calls Ensure, turning a panic into a test failure.
func (h *harness) try(s driver.VMSpec) (st driver.VMStatus, err error) {
	h.t.Helper()
	defer func() {
		if p := recover(); p != nil {
			h.t.Fatalf("Ensure(%s) panicked: %v", s.ID, p)
		}
	}()
	return h.d.Ensure(h.ctx, s)
}

// ensure calls Ensure, which must succeed and reach the spec's power state
// and generation.
func (h *harness) ensure(s driver.VMSpec) driver.VMStatus {
	h.t.Helper()
	st, err := h.try(s)
	if err != nil {
		h.t.Fatalf("Ensure(%s, %s, gen %d): %v", s.ID, powerOf(s), s.Generation, err)
	}
	h.checkStatus(st, s.ID, powerOf(s), s.Generation)
	if st.Error != "" {
		h.t.Errorf("Ensure(%s) succeeded but reports Error %q", s.ID, st.Error)
	}
	return st
}

// refused calls Ensure, which must fail.
func (h *harness) refused(s driver.VMSpec, why string) driver.VMStatus {
	h.t.Helper()
	st, err := h.try(s)
	if err == nil {
		h.t.Fatalf("Ensure(%s) with %s: no error, status %+v", s.ID, why, st)
	}
	h.t.Logf("%s: %v", why, err)
	return st
}

func powerOf(s driver.VMSpec) string {
	if s.Power == "" {
		return api.VMStopped
	}
	return s.Power
}

func (h *harness) checkStatus(st driver.VMStatus, id, state string, gen int64) {
	h.t.Helper()
	if st.ID != id || st.State != state || st.Generation != gen {
		h.t.Errorf("status = {ID:%s State:%s Generation:%d Error:%q}, want {ID:%s State:%s Generation:%d}",
			st.ID, st.State, st.Generation, st.Error, id, state, gen)
	}
}

// list returns List by VM id.
func (h *harness) list() map[string]driver.VMStatus {
	h.t.Helper()
	vms, err := h.d.List(h.ctx)
	if err != nil {
		h.t.Fatalf("List: %v", err)
	}
	out := make(map[string]driver.VMStatus, len(vms))
	for _, v := range vms {
		if _, dup := out[v.ID]; dup {
			h.t.Errorf("List reports %s twice", v.ID)
		}
		out[v.ID] = v
	}
	return out
}

// listed checks that List reports the VM with this state and generation.
func (h *harness) listed(id, state string, gen int64) {
	h.t.Helper()
	v, ok := h.list()[id]
	if !ok {
		h.t.Errorf("List does not report %s", id)
		return
	}
	h.checkStatus(v, id, state, gen)
}

// absent checks that List does not report the VM.
func (h *harness) absent(id string) {
	h.t.Helper()
	if v, ok := h.list()[id]; ok {
		h.t.Errorf("List reports %s (%s), want it absent", id, v.State)
	}
}

// diskDriver is the driver as a DiskDriver, or nil.
func (h *harness) diskDriver() driver.DiskDriver {
	dd, _ := h.d.(driver.DiskDriver)
	return dd
}

// makeDisk makes a persistent disk through DiskDriver if the driver has it
// (otherwise Ensure makes it on first attach).
func (h *harness) makeDisk(dk api.DiskDesired) {
	h.t.Helper()
	if dd := h.diskDriver(); dd != nil {
		if err := dd.EnsureDisk(h.ctx, dk); err != nil {
			h.t.Fatalf("EnsureDisk(%s): %v", dk.ID, err)
		}
	}
}

// sub is the harness for a subtest: same driver, the subtest's t.
func (h *harness) sub(t *testing.T) *harness {
	c := *h
	c.t = t
	return &c
}

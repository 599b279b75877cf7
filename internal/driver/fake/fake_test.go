package fake_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
	"github.com/photon-cloud/photon/internal/driver/drivertest"
	"github.com/photon-cloud/photon/internal/driver/fake"
)

func newFake(t *testing.T, cfg fake.Config) *fake.Driver {
	t.Helper()
	d, err := fake.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func TestConformance(t *testing.T) {
	drivertest.RunWithOptions(t, func(t *testing.T, dataDir string) driver.Driver {
		return newFake(t, fake.Config{DataDir: dataDir})
	}, drivertest.Options{
		KillVM: func(t *testing.T, d driver.Driver, id string) {
			if err := d.(*fake.Driver).Crash(id, "killed by the test"); err != nil {
				t.Fatal(err)
			}
		},
	})
}

func TestConformanceWithImageAndLatency(t *testing.T) {
	drivertest.RunWithOptions(t, func(t *testing.T, dataDir string) driver.Driver {
		return newFake(t, fake.Config{DataDir: dataDir, Latency: 100 * time.Microsecond, Jitter: 200 * time.Microsecond})
	}, drivertest.Options{ImageID: "img-1", ImagePath: "/nonexistent/cached/img-1.qcow2"})
}

var ctx = context.Background()

// vmSpec is a small VM with a 1 GB boot disk on "local".
func vmSpec(id, power string, gen int64) driver.VMSpec {
	return driver.VMSpec{VMDesired: api.VMDesired{
		ID: id, Name: id, CPUCount: 1, MemoryMB: 512, Power: power, Generation: gen,
		Disks: []api.DiskDesired{{ID: id + "-boot", Kind: api.KindEphemeralDisk, Datastore: "local", CapacityGB: 1, BootDisk: true}},
	}}
}

func listed(t *testing.T, d *fake.Driver) map[string]driver.VMStatus {
	t.Helper()
	vms, err := d.List(ctx)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]driver.VMStatus{}
	for _, v := range vms {
		out[v.ID] = v
	}
	return out
}

func TestDefaultsAndValidate(t *testing.T) {
	d := newFake(t, fake.Config{})
	c, err := d.Capacity(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c.CPUCount != 16 || c.MemoryMB != 65536 || c.Hypervisor != "fake" ||
		len(c.Datastores) != 1 || c.Datastores[0].Name != "local" || c.Datastores[0].CapacityGB != 1000 {
		t.Errorf("default capacity = %+v", c)
	}
	for name, cfg := range map[string]fake.Config{
		"negative cpu":      {CPUCount: -1},
		"probability > 1":   {FailEnsure: 1.5},
		"negative latency":  {Latency: -time.Second},
		"duplicate ds":      {Datastores: []api.DatastoreReport{{Name: "a", CapacityGB: 1}, {Name: "a", CapacityGB: 1}}},
		"zero capacity ds":  {Datastores: []api.DatastoreReport{{Name: "a"}}},
		"unnamed datastore": {Datastores: []api.DatastoreReport{{CapacityGB: 1}}},
	} {
		if _, err := fake.New(cfg); err == nil {
			t.Errorf("%s: New accepted %+v", name, cfg)
		}
	}
}

func TestFailOnNames(t *testing.T) {
	d := newFake(t, fake.Config{FailOnNames: []string{"doomed"}})
	s := vmSpec("vm-1", api.VMStarted, 1)
	s.Name = "doomed"
	st, err := d.Ensure(ctx, s)
	if !errors.Is(err, fake.ErrInjected) || !strings.Contains(err.Error(), `"doomed"`) {
		t.Fatalf("Ensure of a doomed name: %v", err)
	}
	if st.State != api.VMError || st.Error == "" {
		t.Errorf("status of a failed create = %+v, want ERROR with the reason", st)
	}
	if _, ok := listed(t, d)["vm-1"]; ok {
		t.Error("a failed create left a VM behind")
	}
	if d.UsedGB("local") != 0 {
		t.Errorf("a failed create left %g GB allocated", d.UsedGB("local"))
	}
	if _, err := d.Ensure(ctx, vmSpec("vm-2", api.VMStarted, 1)); err != nil {
		t.Errorf("another name failed: %v", err)
	}
}

func TestFailEnsureProbability(t *testing.T) {
	run := func(seed uint64) []bool {
		d := newFake(t, fake.Config{FailEnsure: 0.3, Seed: seed})
		var out []bool
		for i := range 300 {
			_, err := d.Ensure(ctx, vmSpec(fmt.Sprintf("vm-%d", i), api.VMStarted, 1))
			if err != nil && !errors.Is(err, fake.ErrInjected) {
				t.Fatalf("unexpected error: %v", err)
			}
			out = append(out, err != nil)
		}
		return out
	}
	a, b := run(42), run(42)
	if !slices.Equal(a, b) {
		t.Error("the same seed gave different failures")
	}
	failed := 0
	for _, f := range a {
		if f {
			failed++
		}
	}
	if failed < 60 || failed > 120 {
		t.Errorf("FailEnsure 0.3 failed %d of 300", failed)
	}
	d := newFake(t, fake.Config{FailEnsure: 1})
	for i := range 10 {
		if _, err := d.Ensure(ctx, vmSpec(fmt.Sprintf("vm-%d", i), api.VMStarted, 1)); !errors.Is(err, fake.ErrInjected) {
			t.Fatalf("FailEnsure 1: %v", err)
		}
	}
}

func TestFailEnsureFunc(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	hookErr := errors.New("QMP timed out")
	d := newFake(t, fake.Config{FailEnsureFunc: func(s driver.VMSpec) error {
		if broken.Load() && s.Power == api.VMStarted {
			return hookErr
		}
		return nil
	}})
	s := vmSpec("vm-1", api.VMStopped, 1)
	if _, err := d.Ensure(ctx, s); err != nil {
		t.Fatal(err)
	}
	s.Power, s.Generation = api.VMStarted, 2
	st, err := d.Ensure(ctx, s)
	if !errors.Is(err, hookErr) || !errors.Is(err, fake.ErrInjected) {
		t.Fatalf("Ensure with a failing hook: %v", err)
	}
	// The VM is as it was; the observed generation says 2 was not done, and why.
	want := driver.VMStatus{ID: "vm-1", State: api.VMStopped, Generation: 1, Error: err.Error()}
	if st != want {
		t.Errorf("status = %+v, want %+v", st, want)
	}
	if got := listed(t, d)["vm-1"]; got != want {
		t.Errorf("List = %+v, want %+v", got, want)
	}
	broken.Store(false)
	st, err = d.Ensure(ctx, s)
	if err != nil || st != (driver.VMStatus{ID: "vm-1", State: api.VMStarted, Generation: 2}) {
		t.Errorf("after the hook healed: %+v, %v", st, err)
	}
}

func TestFailStartLeavesVMStopped(t *testing.T) {
	d := newFake(t, fake.Config{FailStart: 1})
	s := vmSpec("vm-1", api.VMStarted, 1)
	s.Disks = append(s.Disks, api.DiskDesired{ID: "data", Kind: api.KindEphemeralDisk, Datastore: "local", CapacityGB: 5})
	st, err := d.Ensure(ctx, s)
	if !errors.Is(err, fake.ErrInjected) {
		t.Fatalf("FailStart: %v", err)
	}
	if st.State != api.VMStopped || st.Generation != 0 || st.Error == "" {
		t.Errorf("status = %+v, want STOPPED, generation 0, with an error", st)
	}
	// Failed mid-way: the VM and its disks exist, as after a QEMU that did not start.
	if disks, _ := d.Disks("vm-1"); len(disks) != 2 || d.UsedGB("local") != 6 {
		t.Errorf("disks = %v, used %g GB", disks, d.UsedGB("local"))
	}
	// Asking for STOPPED works, and so does deleting.
	s.Power, s.Generation = api.VMStopped, 2
	if st, err := d.Ensure(ctx, s); err != nil || st.State != api.VMStopped || st.Error != "" {
		t.Errorf("stop after a failed start: %+v, %v", st, err)
	}
	if err := d.Delete(ctx, "vm-1"); err != nil || d.UsedGB("local") != 0 {
		t.Errorf("delete: %v, used %g GB", err, d.UsedGB("local"))
	}
}

func TestFailDeleteAndDisk(t *testing.T) {
	d := newFake(t, fake.Config{FailDelete: 1, FailDisk: 1})
	if _, err := d.Ensure(ctx, vmSpec("vm-1", api.VMStarted, 1)); err != nil {
		t.Fatal(err)
	}
	if err := d.Delete(ctx, "vm-1"); !errors.Is(err, fake.ErrInjected) {
		t.Errorf("FailDelete: %v", err)
	}
	if _, ok := listed(t, d)["vm-1"]; !ok {
		t.Error("a failed Delete removed the VM")
	}
	if err := d.Delete(ctx, "missing"); err != nil {
		t.Errorf("Delete of a missing VM is not a change, must not fail: %v", err)
	}
	pd := api.DiskDesired{ID: "pd", Kind: api.KindPersistentDisk, Datastore: "local", CapacityGB: 1}
	if err := d.EnsureDisk(ctx, pd); !errors.Is(err, fake.ErrInjected) {
		t.Errorf("FailDisk: %v", err)
	}
	if err := d.DeleteDisk(ctx, pd); err != nil {
		t.Errorf("DeleteDisk of a missing disk: %v", err)
	}
}

func TestCrashAfter(t *testing.T) {
	dir := t.TempDir()
	d := newFake(t, fake.Config{CrashAfter: 200 * time.Millisecond, DataDir: dir})
	run := vmSpec("runs", api.VMStarted, 1)
	paused := vmSpec("paused", api.VMStarted, 1)
	for _, s := range []driver.VMSpec{run, paused} {
		if st, err := d.Ensure(ctx, s); err != nil || st.State != api.VMStarted {
			t.Fatalf("start %s: %+v, %v", s.ID, st, err)
		}
	}
	paused.Power, paused.Generation = api.VMSuspended, 2
	if _, err := d.Ensure(ctx, paused); err != nil {
		t.Fatal(err)
	}
	time.Sleep(250 * time.Millisecond)
	got := listed(t, d)
	if v := got["runs"]; v.State != api.VMError || !strings.Contains(v.Error, "CrashAfter") || v.Generation != 1 {
		t.Errorf("after CrashAfter: %+v, want ERROR", v)
	}
	if v := got["paused"]; v.State != api.VMSuspended {
		t.Errorf("a suspended VM does not run, so does not crash: %+v", v)
	}
	// A crash is visible to a restarted agent too.
	d2 := newFake(t, fake.Config{CrashAfter: 200 * time.Millisecond, DataDir: dir})
	if err := d2.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if v := listed(t, d2)["runs"]; v.State != api.VMError {
		t.Errorf("recovered crashed VM: %+v", v)
	}
	// The same spec reboots it, with a new crash deadline.
	if st, err := d2.Ensure(ctx, run); err != nil || st.State != api.VMStarted || st.Error != "" {
		t.Errorf("reboot after crash: %+v, %v", st, err)
	}
}

func TestCrash(t *testing.T) {
	d := newFake(t, fake.Config{})
	if err := d.Crash("missing", "x"); !errors.Is(err, driver.ErrNotFound) {
		t.Errorf("Crash of a missing VM: %v", err)
	}
	s := vmSpec("vm-1", api.VMStarted, 1)
	if _, err := d.Ensure(ctx, s); err != nil {
		t.Fatal(err)
	}
	if err := d.Crash("vm-1", "segfault"); err != nil {
		t.Fatal(err)
	}
	if v := listed(t, d)["vm-1"]; v.State != api.VMError || !strings.Contains(v.Error, "segfault") {
		t.Errorf("after Crash: %+v", v)
	}
}

func TestLatency(t *testing.T) {
	d := newFake(t, fake.Config{Latency: 100 * time.Millisecond})
	s := vmSpec("vm-1", api.VMStarted, 1)
	start := time.Now()
	if _, err := d.Ensure(ctx, s); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 100*time.Millisecond {
		t.Errorf("create took %s, want at least the latency", el)
	}
	start = time.Now()
	if _, err := d.Ensure(ctx, s); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > 50*time.Millisecond {
		t.Errorf("a no-op Ensure took %s, want no latency", el)
	}

	// Calls for different VMs overlap.
	start = time.Now()
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Go(func() {
			if _, err := d.Ensure(ctx, vmSpec(fmt.Sprintf("par-%d", i), api.VMStarted, 1)); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Wait()
	if el := time.Since(start); el > time.Second {
		t.Errorf("20 parallel creates took %s: calls do not overlap", el)
	}

	// A cancelled context stops the wait and changes nothing.
	cctx, cancel := context.WithTimeout(ctx, 5*time.Millisecond)
	defer cancel()
	if _, err := d.Ensure(cctx, vmSpec("cancelled", api.VMStarted, 1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("Ensure with an expiring context: %v", err)
	}
	if _, ok := listed(t, d)["cancelled"]; ok {
		t.Error("a cancelled create left a VM")
	}
}

func TestJitter(t *testing.T) {
	d := newFake(t, fake.Config{Jitter: 20 * time.Millisecond, Seed: 7})
	var min, max time.Duration = time.Hour, 0
	for i := range 20 {
		start := time.Now()
		if _, err := d.Ensure(ctx, vmSpec(fmt.Sprintf("vm-%d", i), api.VMStopped, 1)); err != nil {
			t.Fatal(err)
		}
		el := time.Since(start)
		min, max = minDur(min, el), maxDur(max, el)
	}
	if max-min < 5*time.Millisecond {
		t.Errorf("jitter spread %s..%s, want variation", min, max)
	}
}

func minDur(a, b time.Duration) time.Duration { return min(a, b) }
func maxDur(a, b time.Duration) time.Duration { return max(a, b) }

func TestDataDirFiles(t *testing.T) {
	dir := t.TempDir()
	d := newFake(t, fake.Config{DataDir: dir})
	if _, err := d.Ensure(ctx, vmSpec("vm-1", api.VMStarted, 1)); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Ensure(ctx, vmSpec("vm-2", api.VMStopped, 1)); err != nil {
		t.Fatal(err)
	}
	pd := api.DiskDesired{ID: "pd", Kind: api.KindPersistentDisk, Datastore: "local", CapacityGB: 3}
	if err := d.EnsureDisk(ctx, pd); err != nil {
		t.Fatal(err)
	}
	var names []string
	_ = filepath.WalkDir(dir, func(p string, e os.DirEntry, err error) error {
		if err == nil && !e.IsDir() {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, rel)
		}
		return nil
	})
	want := []string{"disks/pd.json", "vms/vm-1.json", "vms/vm-2.json"}
	if !slices.Equal(names, want) {
		t.Errorf("data dir holds %v, want %v (no temporary files)", names, want)
	}

	// A half-written file and a corrupt one: Recover cleans the first,
	// reports the second and adopts the rest.
	os.WriteFile(filepath.Join(dir, "vms", ".tmp-vm-3-123"), []byte("{"), 0o644)
	os.WriteFile(filepath.Join(dir, "vms", "vm-4.json"), []byte("not json"), 0o644)
	d2 := newFake(t, fake.Config{DataDir: dir})
	err := d2.Recover(ctx)
	if err == nil || !strings.Contains(err.Error(), "vm-4.json") {
		t.Errorf("Recover with a corrupt file: %v", err)
	}
	got := listed(t, d2)
	if len(got) != 2 || got["vm-1"].State != api.VMStarted || got["vm-2"].State != api.VMStopped {
		t.Errorf("recovered %v", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "vms", ".tmp-vm-3-123")); !os.IsNotExist(err) {
		t.Errorf("temporary file left after Recover: %v", err)
	}
	if used := d2.UsedGB("local"); used != 5 {
		t.Errorf("recovered usage %g GB, want 5 (two boot disks and the persistent disk)", used)
	}
}

func TestWithoutDataDirNothingSurvives(t *testing.T) {
	d := newFake(t, fake.Config{})
	if _, err := d.Ensure(ctx, vmSpec("vm-1", api.VMStarted, 1)); err != nil {
		t.Fatal(err)
	}
	d2 := newFake(t, fake.Config{})
	if err := d2.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	if got := listed(t, d2); len(got) != 0 {
		t.Errorf("a driver without DataDir recovered %v", got)
	}
}

func TestMultipleDatastores(t *testing.T) {
	d := newFake(t, fake.Config{Datastores: []api.DatastoreReport{
		{Name: "fast", CapacityGB: 10}, {Name: "shared", Shared: true, CapacityGB: 100},
	}})
	s := vmSpec("vm-1", api.VMStopped, 1)
	s.Disks[0].Datastore = "fast"
	s.Disks = append(s.Disks, api.DiskDesired{ID: "big", Datastore: "shared", CapacityGB: 60})
	if _, err := d.Ensure(ctx, s); err != nil {
		t.Fatal(err)
	}
	if d.UsedGB("fast") != 1 || d.UsedGB("shared") != 60 {
		t.Errorf("usage fast %g, shared %g", d.UsedGB("fast"), d.UsedGB("shared"))
	}
	s2 := vmSpec("vm-2", api.VMStopped, 1)
	s2.Disks[0].Datastore = "fast"
	s2.Disks = append(s2.Disks, api.DiskDesired{ID: "big2", Datastore: "shared", CapacityGB: 60})
	if _, err := d.Ensure(ctx, s2); !errors.Is(err, fake.ErrNoCapacity) {
		t.Errorf("second 60 GB on a 100 GB datastore: %v", err)
	}
}

func TestNewFleet(t *testing.T) {
	dir := t.TempDir()
	hosts, err := fake.NewFleet(3, fake.Config{DataDir: dir, CPUCount: 4})
	if err != nil {
		t.Fatal(err)
	}
	for i, h := range hosts {
		if _, err := h.Ensure(ctx, vmSpec(fmt.Sprintf("vm-%d", i), api.VMStarted, 1)); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 {
		p := filepath.Join(dir, fmt.Sprintf("host-%04d", i), "vms", fmt.Sprintf("vm-%d.json", i))
		if _, err := os.Stat(p); err != nil {
			t.Errorf("host %d: %v", i, err)
		}
	}
}

// TestManyHostsAreCheap creates 5,000 drivers with one VM each and reports
// the heap per driver (measured: ~430 bytes per idle driver, ~700 bytes
// per VM with one disk, no DataDir; see the log).
func TestManyHostsAreCheap(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	const n = 5000
	before := heap()
	hosts, err := fake.NewFleet(n, fake.Config{})
	if err != nil {
		t.Fatal(err)
	}
	idle := heap()
	for i, h := range hosts {
		if _, err := h.Ensure(ctx, vmSpec(fmt.Sprintf("vm-%d", i), api.VMStarted, 1)); err != nil {
			t.Fatal(err)
		}
	}
	busy := heap()
	perIdle := (idle - before) / n
	perVM := (busy - idle) / n
	t.Logf("%d drivers: %d bytes per idle driver, %d bytes per VM", n, perIdle, perVM)
	if perIdle > 4096 || perVM > 4096 {
		t.Errorf("%d bytes per idle driver, %d per VM: want each under 4 KiB", perIdle, perVM)
	}
	runtime.KeepAlive(hosts)
}

func heap() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// benchHost has room for any number of 1 GB boot disks.
var benchHost = fake.Config{Datastores: []api.DatastoreReport{{Name: "local", CapacityGB: 1e12}}}

func BenchmarkEnsure(b *testing.B) {
	b.Run("create", func(b *testing.B) {
		d, _ := fake.New(benchHost)
		specs := make([]driver.VMSpec, b.N)
		for i := range specs {
			specs[i] = vmSpec(fmt.Sprintf("vm-%d", i), api.VMStarted, 1)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for i := range b.N {
			if _, err := d.Ensure(ctx, specs[i]); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("noop", func(b *testing.B) {
		d, _ := fake.New(fake.Config{})
		s := vmSpec("vm", api.VMStarted, 1)
		if _, err := d.Ensure(ctx, s); err != nil {
			b.Fatal(err)
		}
		b.ReportAllocs()
		b.ResetTimer()
		for range b.N {
			if _, err := d.Ensure(ctx, s); err != nil {
				b.Fatal(err)
			}
		}
	})
	for _, c := range []struct {
		name    string
		dataDir bool // state files written on every change
	}{{"start-stop", false}, {"start-stop-datadir", true}} {
		b.Run(c.name, func(b *testing.B) {
			cfg := fake.Config{}
			if c.dataDir {
				cfg.DataDir = b.TempDir()
			}
			d, _ := fake.New(cfg)
			s := vmSpec("vm", api.VMStopped, 1)
			if _, err := d.Ensure(ctx, s); err != nil {
				b.Fatal(err)
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				s.Generation++
				s.Power = []string{api.VMStarted, api.VMStopped}[i%2]
				if _, err := d.Ensure(ctx, s); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("parallel-hosts", func(b *testing.B) {
		hosts, _ := fake.NewFleet(64, benchHost)
		var next atomic.Int64
		b.ReportAllocs()
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				i := next.Add(1)
				if _, err := hosts[i%64].Ensure(ctx, vmSpec(fmt.Sprintf("vm-%d", i), api.VMStarted, 1)); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkNew reports the allocation of one idle driver (B/op).
func BenchmarkNew(b *testing.B) {
	b.ReportAllocs()
	for range b.N {
		if _, err := fake.New(fake.Config{}); err != nil {
			b.Fatal(err)
		}
	}
}

// TestListKeptFollowsChanges checks that List, which keeps its answer
// between changes, answers what observing every VM again does, whatever
// changed in between: boots, stops, suspends, failed ensures, deletes,
// crashes, and crashes due (CrashAfter) with no change at all.
func TestListKeptFollowsChanges(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	d := newFake(t, fake.Config{CrashAfter: 30 * time.Millisecond, FailEnsure: 0.1})
	gens := map[string]int64{}
	powers := []string{api.VMStarted, api.VMStopped, api.VMSuspended}
	for i := range 400 {
		id := fmt.Sprintf("vm-%d", rng.IntN(6))
		switch op := rng.IntN(10); {
		case op < 6:
			gens[id]++
			_, _ = d.Ensure(ctx, vmSpec(id, powers[rng.IntN(len(powers))], gens[id])) // FailEnsure: may fail
		case op < 7:
			if err := d.Delete(ctx, id); err != nil {
				t.Fatal(err)
			}
		case op < 8:
			_ = d.Crash(id, "the test") // not there: ErrNotFound
		default:
			time.Sleep(time.Duration(rng.IntN(20)) * time.Millisecond)
		}
		before := d.ListFresh()
		got, err := d.List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		after := d.ListFresh() // a crash may fall due between them
		if !slices.Equal(got, before) && !slices.Equal(got, after) {
			t.Fatalf("step %d: List answered %+v, want %+v", i, got, after)
		}
		if len(got) > 0 {
			got[0].ID = "changed by the caller" // the kept answer is not shared
		}
	}
}

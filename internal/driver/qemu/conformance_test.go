package qemu

import (
	"context"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
	"github.com/photon-cloud/photon/internal/driver/drivertest"
)

// TestConformance runs the driver suite (the one driver/fake passes)
// against real QEMU processes booting the test image.
func TestConformance(t *testing.T) {
	image := testImage(t)
	drivertest.RunWithOptions(t, func(t *testing.T, dataDir string) driver.Driver {
		// A short graceful-stop timeout: the suite stops guests that are
		// still booting, which miss the power button until acpid runs.
		return newTestDriver(t, dataDir, func(c *Config) {
			c.StopTimeout = 3 * time.Second
			// A datastore of fixed size, so that capacity checks do not
			// depend on the machine's free disk space.
			c.Datastores = []Datastore{{Name: "local", Path: dataDir + "/ds-local", CapacityGB: 100}}
		})
	}, drivertest.Options{
		ImageID:     "test-image",
		ImagePath:   image,
		MemoryMB:    128,
		Concurrency: 6,
		KillVM: func(t *testing.T, d driver.Driver, vmID string) {
			killQEMU(t, d.(*Driver), vmID)
		},
		Timeout: 5 * time.Minute,
	})
}

// TestKilledVMRestarts: a VM whose QEMU is killed is reported ERROR with
// the reason, and the same spec boots it again (what the agent does for a
// VM whose desired state is STARTED); the guest boots again.
func TestKilledVMRestarts(t *testing.T) {
	image := testImage(t)
	d := newTestDriver(t, t.TempDir())
	ctx := context.Background()
	spec := bootSpec("vm-kill", "kill", image)
	if _, err := d.Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = d.Delete(context.Background(), spec.ID) })
	waitConsole(t, d, spec.ID, "ready", 60*time.Second)
	killQEMU(t, d, spec.ID)
	deadline := time.Now().Add(5 * time.Second)
	for {
		l, _ := d.List(ctx)
		if len(l) == 1 && l[0].State == api.VMError {
			t.Logf("after kill -9: %+v", l[0])
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after kill -9, List = %+v, want ERROR", l)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st, err := d.Ensure(ctx, spec); err != nil || st.State != api.VMStarted {
		t.Fatalf("Ensure after the kill: %+v, %v", st, err)
	}
	// The console is appended across boots: the second boot prints again.
	deadline = time.Now().Add(60 * time.Second)
	for countLines(d, spec.ID, "photon-test-image: ready") < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the VM did not boot again")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestRecoverRunning: a new Driver on the same DataDir (an agent restart)
// re-adopts the running QEMU processes, the same pids, and controls them:
// suspend, resume, stop, delete.
func TestRecoverRunning(t *testing.T) {
	image := testImage(t)
	dir := t.TempDir()
	d1 := newTestDriver(t, dir)
	ctx := context.Background()
	a, b := bootSpec("vm-rec-a", "a", image), bootSpec("vm-rec-b", "b", image)
	for _, s := range []driver.VMSpec{a, b} {
		if _, err := d1.Ensure(ctx, s); err != nil {
			t.Fatal(err)
		}
	}
	pids := map[string]int{}
	for _, id := range []string{a.ID, b.ID} {
		pids[id] = d1.vms[id].rec.PID
	}

	d2 := newTestDriver(t, dir)
	t.Cleanup(func() {
		for _, id := range []string{a.ID, b.ID} {
			_ = d2.Delete(context.Background(), id)
		}
	})
	if err := d2.Recover(ctx); err != nil {
		t.Fatal(err)
	}
	l, _ := d2.List(ctx)
	if len(l) != 2 || l[0].State != api.VMStarted || l[1].State != api.VMStarted {
		t.Fatalf("after restart, List = %+v", l)
	}
	for id, pid := range pids {
		if got := d2.vms[id].rec.PID; got != pid {
			t.Errorf("%s: pid %d after restart, was %d", id, got, pid)
		}
	}
	waitConsole(t, d2, a.ID, "ready", 60*time.Second)
	a.Power, a.Generation = api.VMSuspended, 2
	if st, err := d2.Ensure(ctx, a); err != nil || st.State != api.VMSuspended {
		t.Fatalf("suspend: %+v, %v", st, err)
	}
	var status string
	if err := d2.qmpRun(ctx, a.ID, "query-status", nil, &struct {
		Status *string `json:"status"`
	}{&status}); err != nil || status != "paused" {
		t.Errorf("QMP status after suspend = %q, %v", status, err)
	}
	a.Power, a.Generation = api.VMStarted, 3
	if st, err := d2.Ensure(ctx, a); err != nil || st.State != api.VMStarted {
		t.Fatalf("resume: %+v, %v", st, err)
	}
	a.Power, a.Generation = api.VMStopped, 4
	if st, err := d2.Ensure(ctx, a); err != nil || st.State != api.VMStopped {
		t.Fatalf("stop: %+v, %v", st, err)
	}
	if ok, _ := d2.alive(a.ID, pids[a.ID]); ok {
		t.Errorf("QEMU of a stopped VM still runs")
	}
	for _, id := range []string{a.ID, b.ID} {
		if err := d2.Delete(ctx, id); err != nil {
			t.Fatal(err)
		}
		if left := leftovers(d2, id); len(left) > 0 {
			t.Errorf("%s: left behind: %v", id, left)
		}
	}
}

func countLines(d *Driver, id, want string) int {
	f, err := d.Console(id)
	if err != nil {
		return 0
	}
	defer f.Close()
	n := 0
	buf := make([]byte, 1<<20)
	for {
		k, err := f.Read(buf)
		for i := 0; i+len(want) <= k; i++ {
			if string(buf[i:i+len(want)]) == want {
				n++
			}
		}
		if err != nil || k == 0 {
			return n
		}
	}
}

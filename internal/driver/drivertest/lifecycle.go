package drivertest

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
)

func testCapacity(h *harness) {
	c := h.cap
	if c.CPUCount <= 0 || c.MemoryMB <= 0 {
		h.t.Errorf("Capacity = %d CPUs, %d MB; want both positive", c.CPUCount, c.MemoryMB)
	}
	if c.Hypervisor == "" {
		h.t.Error("Capacity.Hypervisor is empty")
	}
	seen := map[string]bool{}
	for _, ds := range c.Datastores {
		if ds.Name == "" || seen[ds.Name] || ds.CapacityGB <= 0 {
			h.t.Errorf("datastore %+v: want a unique name and a positive capacity", ds)
		}
		seen[ds.Name] = true
	}
}

func testCreate(h *harness) {
	for _, tc := range []struct{ name, power, want string }{
		{"default", "", api.VMStopped},
		{"stopped", api.VMStopped, api.VMStopped},
		{"started", api.VMStarted, api.VMStarted},
	} {
		s := h.spec("create-"+tc.name, tc.power, 1)
		st := h.ensure(s)
		h.checkStatus(st, s.ID, tc.want, 1)
		h.listed(s.ID, tc.want, 1)
	}
	// A new VM cannot be created suspended: nothing is left behind.
	s := h.spec("create-suspended", api.VMSuspended, 1)
	h.refused(s, "create SUSPENDED")
	h.absent(s.ID)
}

func testTransitions(h *harness) {
	S, T, P := api.VMStarted, api.VMStopped, api.VMSuspended
	for _, tc := range []struct {
		name string
		path []string // power states ensured in turn, from creation
		ok   bool     // whether the last step is allowed
	}{
		{"start", []string{T, S}, true},
		{"stop", []string{S, T}, true},
		{"suspend", []string{S, P}, true},
		{"resume", []string{S, P, S}, true},
		{"stop-suspended", []string{S, P, T}, true},
		{"restart", []string{T, S, T, S}, true},
		{"suspend-twice", []string{S, P, P}, true},
		{"suspend-stopped", []string{T, S, T, P}, false},
		{"suspend-new-stopped", []string{T, P}, false},
	} {
		h.t.Run(tc.name, func(t *testing.T) {
			h := h.sub(t)
			s := h.spec("tr-"+tc.name, tc.path[0], 1)
			h.ensure(s)
			for i, p := range tc.path[1:] {
				last := i == len(tc.path)-2
				n := next(s, p)
				if last && !tc.ok {
					st := h.refused(n, fmt.Sprintf("%s → %s", s.Power, p))
					h.checkStatus(st, s.ID, powerOf(s), s.Generation)
					h.listed(s.ID, powerOf(s), s.Generation)
					return
				}
				h.ensure(n)
				h.listed(n.ID, p, n.Generation)
				s = n
			}
		})
	}
}

func testIdempotent(h *harness) {
	for _, p := range []string{api.VMStopped, api.VMStarted, api.VMSuspended} {
		s := h.spec("idem-"+p, api.VMStarted, 1)
		h.ensure(s)
		if p != api.VMStarted {
			s = next(s, p)
			h.ensure(s)
		}
		before := h.list()
		again := h.ensure(s)
		if after := h.list(); !sameList(before, after) {
			h.t.Errorf("%s: List changed after the same spec again:\n before %v\n after  %v", p, before, after)
		}
		h.checkStatus(again, s.ID, p, s.Generation)
	}
}

func testStaleGeneration(h *harness) {
	s := h.spec("stale", api.VMStarted, 5)
	h.ensure(s)
	old := s
	old.Generation = 4
	old.Power = api.VMStopped
	h.refused(old, "an older generation")
	h.listed(s.ID, api.VMStarted, 5)
}

func testDelete(h *harness) {
	s := h.spec("del", api.VMStarted, 1, h.disk("del-data", api.KindEphemeralDisk, h.o.DiskGB))
	h.ensure(s)
	for i := range 2 {
		if err := h.d.Delete(h.ctx, s.ID); err != nil {
			h.t.Fatalf("Delete #%d: %v", i+1, err)
		}
		h.absent(s.ID)
	}
	if err := h.d.Delete(h.ctx, h.id("never-existed")); err != nil {
		h.t.Errorf("Delete of a VM that never existed: %v", err)
	}
	// The same ID again is a new VM (its ephemeral disks were deleted).
	again := h.spec("del", api.VMStopped, 1, h.disk("del-data", api.KindEphemeralDisk, h.o.DiskGB))
	h.ensure(again)
	h.listed(again.ID, api.VMStopped, 1)
}

func testList(h *harness) {
	if got := h.list(); len(got) != 0 {
		h.t.Fatalf("a new driver lists %d VMs, want none", len(got))
	}
	want := map[string]driver.VMStatus{}
	for i, p := range []string{api.VMStopped, api.VMStarted, api.VMSuspended, api.VMStarted, api.VMStopped} {
		s := h.spec(fmt.Sprintf("list-%d", i), api.VMStarted, int64(i+1))
		h.ensure(s)
		if p != api.VMStarted {
			s = next(s, p)
			h.ensure(s)
		}
		want[s.ID] = driver.VMStatus{ID: s.ID, State: p, Generation: s.Generation}
	}
	gone := h.spec("list-gone", api.VMStarted, 1)
	h.ensure(gone)
	if err := h.d.Delete(h.ctx, gone.ID); err != nil {
		h.t.Fatal(err)
	}
	if got := h.list(); !sameList(got, want) {
		h.t.Errorf("List = %v, want %v", got, want)
	}
}

func testBadSpecs(h *harness) {
	tooBig := h.disk("huge", api.KindEphemeralDisk, 2*h.ds.CapacityGB+1)
	for _, tc := range []struct {
		name string
		mod  func(*driver.VMSpec)
	}{
		{"empty id", func(s *driver.VMSpec) { s.ID = "" }},
		{"path in id", func(s *driver.VMSpec) { s.ID = "../" + s.ID }},
		{"zero cpu", func(s *driver.VMSpec) { s.CPUCount = 0 }},
		{"negative memory", func(s *driver.VMSpec) { s.MemoryMB = -1 }},
		{"more cpu than the host", func(s *driver.VMSpec) { s.CPUCount = h.cap.CPUCount + 1 }},
		{"more memory than the host", func(s *driver.VMSpec) { s.MemoryMB = h.cap.MemoryMB + 1 }},
		{"unknown power", func(s *driver.VMSpec) { s.Power = "RUNNING" }},
		{"missing datastore", func(s *driver.VMSpec) { s.Disks[0].Datastore = "no-such-datastore" }},
		{"disk larger than the datastore", func(s *driver.VMSpec) { s.Disks = append(s.Disks, tooBig) }},
		{"disk listed twice", func(s *driver.VMSpec) { s.Disks = append(s.Disks, s.Disks[0]) }},
		{"two boot disks", func(s *driver.VMSpec) {
			b := s.Disks[0]
			b.ID += "-2"
			s.Disks = append(s.Disks, b)
		}},
		{"unknown disk kind", func(s *driver.VMSpec) { s.Disks[0].Kind = "floppy" }},
		{"image without a path", func(s *driver.VMSpec) { s.Disks[0].ImageID = "no-such-image"; s.ImagePaths = nil }},
		{"empty disk id", func(s *driver.VMSpec) { s.Disks[0].ID = "" }},
	} {
		s := h.spec("bad", api.VMStarted, 1)
		s.Disks = append([]api.DiskDesired(nil), s.Disks...)
		tc.mod(&s)
		h.refused(s, tc.name)
		if s.ID != "" {
			h.absent(s.ID)
		}
		// The same mistake on an existing VM changes nothing.
		good := h.spec("bad-existing", api.VMStarted, 1)
		h.ensure(good)
		bad := next(good, api.VMStopped)
		bad.ID = good.ID
		tc.mod(&bad)
		if bad.ID != good.ID {
			continue
		}
		h.refused(bad, tc.name+" on an existing VM")
		h.listed(good.ID, api.VMStarted, 1)
	}
}

func testConcurrent(h *harness) {
	n := h.o.Concurrency
	var wg sync.WaitGroup
	errs := make(chan error, 2*n)
	for i := range n {
		wg.Go(func() {
			s := h.spec(fmt.Sprintf("conc-%d", i), api.VMStopped, 1)
			if _, err := h.d.Ensure(h.ctx, s); err != nil {
				errs <- fmt.Errorf("create %s: %w", s.ID, err)
				return
			}
			if st, err := h.d.Ensure(h.ctx, next(s, api.VMStarted)); err != nil || st.State != api.VMStarted {
				errs <- fmt.Errorf("start %s: %v (state %s)", s.ID, err, st.State)
			}
		})
	}
	// Meanwhile, List must not fail or tear.
	wg.Go(func() {
		for range 10 {
			if _, err := h.d.List(h.ctx); err != nil {
				errs <- fmt.Errorf("List: %w", err)
			}
			time.Sleep(time.Millisecond)
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		h.t.Error(err)
	}
	got := h.list()
	for i := range n {
		id := h.id(fmt.Sprintf("conc-%d", i))
		if v, ok := got[id]; !ok || v.State != api.VMStarted || v.Generation != 2 {
			h.t.Errorf("after concurrent starts, %s is %+v", id, v)
		}
	}

	// Racing specs for one VM: some may be refused as stale, none may
	// panic, and a newer spec afterwards converges.
	s := h.spec("conc-same", api.VMStopped, 1)
	h.ensure(s)
	var wg2 sync.WaitGroup
	for i := range 8 {
		wg2.Go(func() {
			p := api.VMStarted
			if i%2 == 1 {
				p = api.VMStopped
			}
			r := s
			r.Power, r.Generation = p, int64(2+i)
			_, _ = h.d.Ensure(h.ctx, r)
		})
	}
	wg2.Wait()
	final := s
	final.Power, final.Generation = api.VMStarted, 100
	h.ensure(final)
	h.listed(s.ID, api.VMStarted, 100)
}

func testKilledVM(h *harness) {
	s := h.spec("killed", api.VMStarted, 1)
	h.ensure(s)
	for _, then := range []string{api.VMStarted, api.VMStopped} {
		h.o.KillVM(h.t, h.d, s.ID)
		deadline := time.Now().Add(h.o.KilledWithin)
		for {
			v, ok := h.list()[s.ID]
			if ok && v.State == api.VMError {
				if v.Error == "" {
					h.t.Error("a killed VM is ERROR without an Error")
				}
				break
			}
			if time.Now().After(deadline) {
				h.t.Fatalf("killed VM reported %+v after %s, want ERROR", v, h.o.KilledWithin)
			}
			time.Sleep(50 * time.Millisecond)
		}
		if then == api.VMStarted {
			// The same spec again boots it: the state drifted, not the spec.
			h.ensure(s)
		} else {
			s = next(s, api.VMStopped)
			h.ensure(s)
		}
		h.listed(s.ID, then, s.Generation)
		if then == api.VMStarted {
			// Suspending a killed VM is refused.
			h.o.KillVM(h.t, h.d, s.ID)
			deadline := time.Now().Add(h.o.KilledWithin)
			for h.list()[s.ID].State != api.VMError && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			h.refused(next(s, api.VMSuspended), "suspend a killed VM")
			h.ensure(s)
		}
	}
}

// sameList compares two Lists by ID, state and generation.
func sameList(a, b map[string]driver.VMStatus) bool {
	if len(a) != len(b) {
		return false
	}
	for id, v := range a {
		w, ok := b[id]
		if !ok || v.State != w.State || v.Generation != w.Generation {
			return false
		}
	}
	return true
}

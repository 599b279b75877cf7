package drivertest

import (
	"github.com/photon-cloud/photon/api"
)

func testAttachDetach(h *harness) {
	eph := func(name string) api.DiskDesired { return h.disk(name, api.KindEphemeralDisk, h.o.DiskGB) }
	d1, d2, d3 := eph("ad-1"), eph("ad-2"), eph("ad-3")

	s := h.spec("ad", api.VMStopped, 1)
	h.ensure(s)
	s = withDisks(s, d1) // attach while STOPPED
	h.ensure(s)
	s = next(s, api.VMStarted)
	h.ensure(s)
	s = withDisks(s, d1, d2) // hot-plug
	h.ensure(s)
	s = withDisks(s, d2) // hot-unplug
	h.ensure(s)
	h.listed(s.ID, api.VMStarted, s.Generation)

	s = next(s, api.VMSuspended)
	h.ensure(s)
	st := h.refused(withDisks(s, d2, d3), "attach while SUSPENDED")
	h.checkStatus(st, s.ID, api.VMSuspended, s.Generation)
	h.listed(s.ID, api.VMSuspended, s.Generation)

	// Resume and attach in one Ensure: the driver resumes first.
	s = withDisks(s, d2, d3)
	s.Power = api.VMStarted
	h.ensure(s)

	// A boot disk does not change under a running VM ...
	newBoot := s.Disks[0]
	newBoot.ID += "-new"
	swap := withDisks(s, d2, d3)
	swap.Disks[0] = newBoot
	h.refused(swap, "swap the boot disk while STARTED")
	h.listed(s.ID, api.VMStarted, s.Generation)
	// ... but does with a stop in the same Ensure: the driver stops first.
	swap.Power = api.VMStopped
	h.ensure(swap)
	s = swap

	// Detach everything but the boot disk, boot again.
	s = withDisks(s)
	s.Power = api.VMStarted
	h.ensure(s)
	h.listed(s.ID, api.VMStarted, s.Generation)
}

func testPersistentDisk(h *harness) {
	p := h.disk("pd", api.KindPersistentDisk, h.o.DiskGB)
	h.makeDisk(p)

	a := h.spec("pd-a", api.VMStarted, 1, p)
	h.ensure(a)
	b := h.spec("pd-b", api.VMStarted, 1, p)
	h.refused(b, "a persistent disk attached to another VM")
	h.absent(b.ID)
	if dd := h.diskDriver(); dd != nil {
		if err := dd.DeleteDisk(h.ctx, p); err == nil {
			h.t.Fatal("DeleteDisk of an attached disk: no error")
		}
	}

	a = withDisks(a) // detach
	h.ensure(a)
	h.ensure(b)
	if err := h.d.Delete(h.ctx, b.ID); err != nil {
		h.t.Fatal(err)
	}
	// The disk outlived b and attaches again.
	a = withDisks(a, p)
	h.ensure(a)
	if err := h.d.Delete(h.ctx, a.ID); err != nil {
		h.t.Fatal(err)
	}
	if dd := h.diskDriver(); dd != nil {
		for range 2 {
			if err := dd.DeleteDisk(h.ctx, p); err != nil {
				h.t.Fatalf("DeleteDisk of a detached disk: %v", err)
			}
		}
	}
}

func testDiskDriver(h *harness) {
	dd := h.diskDriver()
	if dd == nil {
		h.t.Skip("the driver is not a driver.DiskDriver")
	}
	p := h.disk("dd", api.KindPersistentDisk, h.o.DiskGB)
	for range 2 {
		if err := dd.EnsureDisk(h.ctx, p); err != nil {
			h.t.Fatalf("EnsureDisk: %v", err)
		}
	}
	bad := p
	bad.ID, bad.Datastore = h.id("dd-bad"), "no-such-datastore"
	if err := dd.EnsureDisk(h.ctx, bad); err == nil {
		h.t.Error("EnsureDisk on a missing datastore: no error")
	}
	bad = p
	bad.ID = "../" + p.ID
	if err := dd.EnsureDisk(h.ctx, bad); err == nil {
		h.t.Error("EnsureDisk with a path in its id: no error")
	}
	for range 2 {
		if err := dd.DeleteDisk(h.ctx, p); err != nil {
			h.t.Fatalf("DeleteDisk: %v", err)
		}
	}
	if err := dd.DeleteDisk(h.ctx, h.disk("dd-never", api.KindPersistentDisk, 1)); err != nil {
		h.t.Errorf("DeleteDisk of a disk that never existed: %v", err)
	}
	if err := dd.EnsureDisk(h.ctx, p); err != nil {
		h.t.Fatalf("EnsureDisk after DeleteDisk: %v", err)
	}
}

func testDiskCapacity(h *harness) {
	big := 0.6 * h.ds.CapacityGB
	a := h.spec("cap-a", api.VMStopped, 1, h.disk("cap-a-data", api.KindEphemeralDisk, big))
	h.ensure(a)
	b := h.spec("cap-b", api.VMStopped, 1, h.disk("cap-b-data", api.KindEphemeralDisk, big))
	h.refused(b, "a disk larger than the free capacity")
	h.absent(b.ID)
	if dd := h.diskDriver(); dd != nil {
		if err := dd.EnsureDisk(h.ctx, h.disk("cap-p", api.KindPersistentDisk, big)); err == nil {
			h.t.Error("EnsureDisk larger than the free capacity: no error")
		}
	}
	// Detaching an ephemeral disk deletes it and frees its capacity.
	a = withDisks(a)
	h.ensure(a)
	h.ensure(b)
	// So does deleting its VM.
	if err := h.d.Delete(h.ctx, b.ID); err != nil {
		h.t.Fatal(err)
	}
	a = withDisks(a, h.disk("cap-a-data2", api.KindEphemeralDisk, big))
	h.ensure(a)
}

func testRecover(h *harness) {
	p := h.disk("rec-pd", api.KindPersistentDisk, h.o.DiskGB)
	h.makeDisk(p)
	a := h.spec("rec-a", api.VMStarted, 3)
	b := h.spec("rec-b", api.VMStopped, 1, h.disk("rec-b-data", api.KindEphemeralDisk, h.o.DiskGB))
	c := h.spec("rec-c", api.VMStarted, 1)
	d := h.spec("rec-d", api.VMStarted, 1, p)
	e := h.spec("rec-e", api.VMStarted, 1)
	h.ensure(a)
	h.ensure(b)
	h.ensure(c)
	c = next(c, api.VMSuspended)
	h.ensure(c)
	h.ensure(d)
	h.ensure(e)
	if err := h.d.Delete(h.ctx, e.ID); err != nil {
		h.t.Fatal(err)
	}
	before := h.list()

	h.restart()
	if after := h.list(); !sameList(before, after) {
		h.t.Fatalf("after restart and Recover, List = %v, want %v", after, before)
	}
	// Recover again changes nothing.
	if err := h.d.Recover(h.ctx); err != nil {
		h.t.Fatalf("second Recover: %v", err)
	}
	if after := h.list(); !sameList(before, after) {
		h.t.Fatalf("after a second Recover, List = %v, want %v", after, before)
	}
	// The same specs are no-ops on the adopted VMs.
	h.ensure(a)
	h.ensure(b)
	h.ensure(c)
	h.ensure(d)
	if after := h.list(); !sameList(before, after) {
		h.t.Fatalf("after the same specs again, List = %v, want %v", after, before)
	}
	// The persistent disk is still d's.
	h.refused(withDisks(a, p), "attach a recovered VM's persistent disk elsewhere")
	// Adopted VMs keep working: resume, stop, delete.
	c = next(c, api.VMStarted)
	h.ensure(c)
	a = next(a, api.VMStopped)
	h.ensure(a)
	if err := h.d.Delete(h.ctx, d.ID); err != nil {
		h.t.Fatal(err)
	}
	a = withDisks(a, p)
	h.ensure(a)

	// And a second restart sees the changes made after the first.
	before = h.list()
	h.restart()
	if after := h.list(); !sameList(before, after) {
		h.t.Fatalf("after a second restart, List = %v, want %v", after, before)
	}
}

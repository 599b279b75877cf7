package httpapi_test

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/driver/fake"
	"github.com/photon-cloud/photon/internal/photontest"
	"github.com/photon-cloud/photon/internal/store"
)

// setVirtualSize writes an image record's virtual size directly (as an
// upload of a qcow2 with that virtual size records it).
func setVirtualSize(t *testing.T, c *photontest.Cloud, id string, size int64) {
	t.Helper()
	if _, err := c.Server.Store.Update(ctx(), func(tx *store.Txn) error {
		var img api.Image
		if err := tx.MustGet(ctx(), store.Key("images", id), &img); err != nil {
			return err
		}
		img.VirtualSize = size
		return tx.Put(store.Key("images", id), &img)
	}); err != nil {
		t.Fatal(err)
	}
}

// A VM's boot disk is at least as large as its image's virtual size and is
// charged for it, in the project's quota and on the host's datastore: a
// small file holding a huge disk is no way around either.
func TestBootDiskVirtualSize(t *testing.T) {
	c := photontest.NewController(t, "")
	cl := c.Client
	photontest.NewAgent(t, c, fake.Config{CPUCount: 16, MemoryMB: 16 * 1024,
		Datastores: []api.DatastoreReport{{Name: "local", CapacityGB: 100}}})
	for _, f := range []api.FlavorCreateSpec{
		{Name: "vs-small", Kind: "vm", Cost: []api.QuotaLineItem{{Key: "vm.cpu", Value: 1, Unit: "COUNT"}, {Key: "vm.memory", Value: 1, Unit: "GB"}}},
		{Name: "vs-eph", Kind: "ephemeral-disk", Cost: []api.QuotaLineItem{{Key: "ephemeral-disk", Value: 1, Unit: "COUNT"}}},
	} {
		waitFor(t, cl)(cl.CreateFlavor(ctx(), &f))
	}
	tenant := waitFor(t, cl)(cl.CreateTenant(ctx(), &api.TenantCreateSpec{Name: "vs",
		Quota: quota("vm.cpu", 100, "COUNT", "ephemeral-disk.capacity", 1<<22, "GB")})).Entity.ID
	small := waitFor(t, cl)(cl.CreateProject(ctx(), tenant, &api.ProjectCreateSpec{Name: "vs-small",
		Quota: quota("vm.cpu", 10, "COUNT", "ephemeral-disk.capacity", 50, "GB")})).Entity.ID
	big := waitFor(t, cl)(cl.CreateProject(ctx(), tenant, &api.ProjectCreateSpec{Name: "vs-big",
		Quota: quota("vm.cpu", 10, "COUNT", "ephemeral-disk.capacity", 1<<21, "GB")})).Entity.ID
	upload := func(project string) string {
		return waitFor(t, cl)(cl.UploadImage(ctx(), bytes.NewReader(make([]byte, 4096)), 4096,
			client.ImageUpload{Name: "vs-img", ProjectID: project, FileName: "disk.raw"})).Entity.ID
	}
	imgSmall, imgBig := upload(small), upload(big)
	const pib = int64(1) << 50
	spec := func(name, image string, capGB float64) *api.VMCreateSpec {
		return &api.VMCreateSpec{Name: name, Flavor: "vs-small", SourceImageID: image,
			AttachedDisks: []api.AttachedDiskCreateSpec{{Name: "boot", Kind: "ephemeral-disk", Flavor: "vs-eph", CapacityGB: capGB, BootDisk: true}}}
	}

	// 1 PiB virtual size against a 50 GB quota: refused at once.
	setVirtualSize(t, c, imgSmall, pib)
	for _, capGB := range []float64{0, 1} {
		_, err := cl.CreateVM(ctx(), small, spec(fmt.Sprintf("huge%v", capGB), imgSmall, capGB))
		if !errors.Is(err, &api.Error{Code: api.CodeQuotaError}) {
			t.Errorf("VM of a 1 PiB image, capacityGb %v, in a 50 GB project = %v, want QuotaError", capGB, err)
		}
	}

	// Within quota but not on any datastore: the create ends ERROR.
	setVirtualSize(t, c, imgBig, pib)
	task, err := cl.CreateVM(ctx(), big, spec("huge", imgBig, 1))
	if err == nil {
		task, err = cl.WaitTask(ctx(), task)
	}
	if err == nil && task.State == api.TaskCompleted {
		t.Errorf("VM of a 1 PiB image on a 100 GB datastore completed")
	} else if err == nil {
		t.Logf("1 PiB on a 100 GB datastore: %v", task.Err())
	}

	// A 5 GiB + 1 byte disk asked for as 1 GB is raised to 6 GB and
	// charged 6 GB.
	setVirtualSize(t, c, imgSmall, 5<<30+1)
	task = waitFor(t, cl)(cl.CreateVM(ctx(), small, spec("raised", imgSmall, 1)))
	v, err := cl.GetVM(ctx(), task.Entity.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.AttachedDisks) != 1 || v.AttachedDisks[0].CapacityGB != 6 {
		t.Errorf("boot disk of a 5 GiB+1 image asked as 1 GB: %+v, want capacityGb 6", v.AttachedDisks)
	}
	q, err := cl.GetProjectQuota(ctx(), small)
	if err != nil {
		t.Fatal(err)
	}
	if got := q.QuotaItems["ephemeral-disk.capacity"].Usage; got != 6 {
		t.Errorf("ephemeral-disk.capacity usage = %v, want 6", got)
	}
	ds, err := cl.ListDatastores(ctx())
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].UsedGB != 6 {
		t.Errorf("datastores = %+v, want 6 GB used", ds)
	}
}

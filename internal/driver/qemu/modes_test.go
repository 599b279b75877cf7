package qemu

import (
	"context"
	"os"
	"testing"

	"github.com/photon-cloud/photon/api"
)

// TestHostFileModes: after a VM is made and booted, with a data disk and
// a persistent disk, everything the driver keeps is its user's only:
// directories 0700, files and sockets 0600 (issue 26: disks were 0644 in
// 0755 directories, readable by every local user).
func TestHostFileModes(t *testing.T) {
	image := testImage(t)
	dir := t.TempDir()
	if err := os.Chmod(dir, 0o755); err != nil { // as an older driver left it
		t.Fatal(err)
	}
	d := newTestDriver(t, dir)
	ctx := context.Background()
	pd := api.DiskDesired{ID: "pd-modes", Kind: api.KindPersistentDisk, Datastore: "local", CapacityGB: 1}
	if err := d.EnsureDisk(ctx, pd); err != nil {
		t.Fatal(err)
	}
	spec := bootSpec("vm-modes", "modes", image, api.DiskDesired{ID: "vm-modes-data", Kind: api.KindEphemeralDisk, Datastore: "local", CapacityGB: 1}, pd)
	spec.Disks[0].ImageFormat = "qcow2"
	if st, err := d.Ensure(ctx, spec); err != nil || st.State != api.VMStarted {
		t.Fatalf("Ensure: %+v, %v", st, err)
	}
	t.Cleanup(func() { _ = d.Delete(context.Background(), spec.ID) })
	checkPrivate(t, dir, d.runDir)
}

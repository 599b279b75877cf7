package qemu

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
)

func syscallKill(pid int) error { return syscall.Kill(pid, syscall.SIGKILL) }

// bootSpec is a STARTED VM with a boot disk from the test image.
func bootSpec(id, name, image string, disks ...api.DiskDesired) driver.VMSpec {
	boot := api.DiskDesired{ID: id + "-boot", Kind: api.KindEphemeralDisk, Datastore: "local", CapacityGB: 1, BootDisk: true, ImageID: "test-image"}
	return driver.VMSpec{
		VMDesired: api.VMDesired{ID: id, Name: name, CPUCount: 1, MemoryMB: 128, Power: api.VMStarted, Generation: 1,
			Disks: append([]api.DiskDesired{boot}, disks...), Metadata: map[string]string{MetaSSHKeys: "ssh-ed25519 AAAA test@photon"}},
		ImagePaths: map[string]string{"test-image": image},
	}
}

// TestBootReadsSeed boots the test image and reads from its console the
// instance-id and hostname the NoCloud seed carried; then a disk
// hot-plugged into the running guest shows up in it; then a graceful stop
// lets the guest power itself off.
func TestBootReadsSeed(t *testing.T) {
	image := testImage(t)
	d := newTestDriver(t, t.TempDir(), func(c *Config) { c.StopTimeout = 30 * time.Second })
	ctx := context.Background()
	spec := bootSpec("vm-seed-1", "Seed Test_VM", image)
	start := time.Now()
	st, err := d.Ensure(ctx, spec)
	if err != nil || st.State != api.VMStarted {
		t.Fatalf("Ensure: %+v, %v", st, err)
	}
	t.Logf("Ensure (image check, overlay, seed, QEMU up) returned after %s", time.Since(start).Round(time.Millisecond))
	t.Cleanup(func() { _ = d.Delete(context.Background(), spec.ID) })
	line := waitConsole(t, d, spec.ID, "instance-id:", 60*time.Second)
	t.Logf("instance-id on the console %s after Ensure was called", time.Since(start).Round(time.Millisecond))
	if !strings.HasSuffix(line, "instance-id: vm-seed-1") {
		t.Errorf("console: %q, want instance-id vm-seed-1", line)
	}
	if line := waitConsole(t, d, spec.ID, "local-hostname:", 10*time.Second); !strings.HasSuffix(line, "local-hostname: seed-test-vm") {
		t.Errorf("console: %q, want local-hostname seed-test-vm", line)
	}
	waitConsole(t, d, spec.ID, "ready", 30*time.Second)
	if ud, err := readSeedFile(d.vmDir(spec.ID)+"/seed.iso", "user-data"); err != nil || !strings.Contains(string(ud), "ssh-ed25519 AAAA test@photon") {
		t.Errorf("seed user-data = %q, %v; want the SSH key", ud, err)
	}

	// Hot-plug: the guest reports its block devices when they change.
	data := api.DiskDesired{ID: "vm-seed-1-data", Kind: api.KindEphemeralDisk, Datastore: "local", CapacityGB: 1}
	spec.Disks = append(spec.Disks, data)
	spec.Generation++
	if _, err := d.Ensure(ctx, spec); err != nil {
		t.Fatalf("attach: %v", err)
	}
	waitConsole(t, d, spec.ID, "block-devices: sda vda vdb", 30*time.Second)

	spec.Power = api.VMStopped
	spec.Generation++
	start = time.Now()
	if st, err := d.Ensure(ctx, spec); err != nil || st.State != api.VMStopped {
		t.Fatalf("stop: %+v, %v", st, err)
	}
	took := time.Since(start)
	waitConsole(t, d, spec.ID, "power button, powering off", time.Second)
	t.Logf("graceful stop took %s", took.Round(time.Millisecond))
}

// TestBadInput: an image that is not a bootable disk, a corrupt qcow2 and
// a QEMU that fails to start each fail the Ensure with the reason, and
// leave nothing behind.
func TestBadInput(t *testing.T) {
	needQEMU(t)
	dir := t.TempDir()
	junk := dir + "/junk.img"
	if err := os.WriteFile(junk, []byte(strings.Repeat("not a disk ", 100000)), 0o644); err != nil {
		t.Fatal(err)
	}
	corrupt := dir + "/corrupt.qcow2"
	if b, err := exec.Command("qemu-img", "create", "-q", "-f", "qcow2", corrupt, "64M").CombinedOutput(); err != nil {
		t.Fatalf("%v: %s", err, b)
	}
	// Point the L1 table far past the end of the file.
	f, err := os.OpenFile(corrupt, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0x7f, 0, 0, 0, 0, 0, 0, 0}, 40); err != nil {
		t.Fatal(err)
	}
	f.Close()
	failing := dir + "/failing-qemu"
	if err := os.WriteFile(failing, []byte("#!/bin/sh\ncase \"$1\" in --version) echo 'QEMU emulator version 7.2.0';; *) echo 'qemu: could not load PC BIOS (simulated)' >&2; exit 1;; esac\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, image, qemu, want string
	}{
		{"not a bootable disk", junk, "", "no boot signature"},
		{"corrupt qcow2", corrupt, "", "qemu-img"},
		{"QEMU fails to start", testImage(t), failing, "could not load PC BIOS (simulated)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newTestDriver(t, t.TempDir(), func(c *Config) {
				if tc.qemu != "" {
					c.QEMU = tc.qemu
				}
			})
			spec := bootSpec("vm-bad", "bad", tc.image)
			st, err := d.Ensure(context.Background(), spec)
			if err == nil {
				t.Fatalf("Ensure: no error, %+v", st)
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if st.State != api.VMError || st.Error == "" {
				t.Errorf("status %+v, want ERROR with the reason", st)
			}
			if l, _ := d.List(context.Background()); len(l) != 0 {
				t.Errorf("List = %+v, want nothing", l)
			}
			if left := leftovers(d, spec.ID); len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

// TestImageFormats: raw, qcow2 and VMDK images are told apart by their
// content (not their names) and become the backing file of the boot
// disk's qcow2 overlay.
func TestImageFormats(t *testing.T) {
	image := testImage(t)
	dir := t.TempDir()
	d := newTestDriver(t, dir)
	ctx := context.Background()
	for _, format := range []string{"raw", "qcow2", "vmdk"} {
		path := dir + "/image-" + format + ".img" // the name says nothing
		if b, err := exec.Command("qemu-img", "convert", "-O", format, image, path).CombinedOutput(); err != nil {
			t.Fatalf("convert to %s: %v: %s", format, err, b)
		}
		spec := bootSpec("vm-fmt-"+format, format, path)
		spec.Power = api.VMStopped
		if st, err := d.Ensure(ctx, spec); err != nil || st.State != api.VMStopped {
			t.Fatalf("%s: Ensure: %+v, %v", format, st, err)
		}
		out, err := exec.Command("qemu-img", "info", "--output=json", d.vms[spec.ID].rec.Disks[0].Path).Output()
		if err != nil || !strings.Contains(string(out), `"backing-filename-format": "`+format+`"`) {
			t.Errorf("%s: overlay info: %s, %v", format, out, err)
		}
		if err := d.Delete(ctx, spec.ID); err != nil {
			t.Fatal(err)
		}
	}
}

package qemu

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
)

// blockdevsOf parses the -blockdev arguments of a QEMU command line, by
// node name, and lists the node names in order.
func blockdevsOf(t *testing.T, args []string) (map[string]map[string]any, []string) {
	t.Helper()
	nodes := map[string]map[string]any{}
	var order []string
	for i := 0; i+1 < len(args); i++ {
		if args[i] != "-blockdev" {
			continue
		}
		var b map[string]any
		if err := json.Unmarshal([]byte(args[i+1]), &b); err != nil {
			t.Fatalf("-blockdev %s: %v", args[i+1], err)
		}
		name, _ := b["node-name"].(string)
		nodes[name] = b
		order = append(order, name)
	}
	return nodes, order
}

// TestBlockdevArgs: QEMU's command line names every disk's backing
// explicitly. A boot disk's image is a read-only node of the format it
// was checked as, with no backing file of its own ("backing": null for
// formats that can have one), and the overlay's backing is that node;
// blank disks have "backing": null; the seed is raw.
func TestBlockdevArgs(t *testing.T) {
	for _, baseFormat := range []string{"qcow2", "raw"} {
		t.Run(baseFormat, func(t *testing.T) {
			d := &Driver{cfg: Config{DataDir: "/var/lib/photon/qemu", Machine: "pc"}, accel: AccelTCG, runDir: "/run/photon"}
			r := &record{ID: "vm-1", CPUCount: 1, MemoryMB: 128, Disks: []diskRecord{
				{ID: "vm-1-boot", Kind: api.KindEphemeralDisk, BootDisk: true, ImageID: "img-1", Path: "/ds/ephemeral/vm-1-boot.qcow2",
					BasePath: "/agent/images/local/img-1", BaseFormat: baseFormat},
				{ID: "vm-1-data", Kind: api.KindEphemeralDisk, Path: "/ds/ephemeral/vm-1-data.qcow2"},
				{ID: "pd-1", Kind: api.KindPersistentDisk, Path: "/ds/persistent/pd-1.qcow2"},
			}}
			nodes, order := blockdevsOf(t, d.args(r, "/var/lib/photon/qemu/vms/vm-1/seed.iso"))
			base, boot := baseNodeName("vm-1-boot"), nodeName("vm-1-boot")
			if len(order) != 5 || order[0] != base || order[1] != boot {
				t.Fatalf("block nodes %v: want the image, then the boot overlay, then seed and disks", order)
			}
			b := nodes[base]
			if b["driver"] != baseFormat || b["read-only"] != true {
				t.Errorf("image node %v: want driver %s, read-only", b, baseFormat)
			}
			if f, _ := b["file"].(map[string]any); f["filename"] != "/agent/images/local/img-1" || f["read-only"] != true {
				t.Errorf("image node's file %v", b["file"])
			}
			backing, has := b["backing"]
			if baseFormat == "qcow2" && (!has || backing != nil) {
				t.Errorf("qcow2 image node %v: want \"backing\": null", b)
			}
			if baseFormat == "raw" && has {
				t.Errorf("raw image node %v: raw takes no backing option", b)
			}
			if o := nodes[boot]; o["driver"] != "qcow2" || o["backing"] != base || o["read-only"] != false {
				t.Errorf("boot overlay node %v: want qcow2 on backing %q", o, base)
			}
			for _, id := range []string{"vm-1-data", "pd-1"} {
				n, ok := nodes[nodeName(id)]
				if backing, has := n["backing"]; !ok || !has || backing != nil {
					t.Errorf("disk %s node %v: want \"backing\": null", id, n)
				}
			}
			if s := nodes["seed"]; s["driver"] != "raw" || s["read-only"] != true {
				t.Errorf("seed node %v", s)
			}
		})
	}
}

// qemuRecorder is a QEMU binary that appends its arguments to log and
// runs the real QEMU.
func qemuRecorder(t *testing.T, dir string) (bin, log string) {
	t.Helper()
	real, err := exec.LookPath("qemu-system-x86_64")
	if err != nil {
		t.Skip(err)
	}
	bin, log = filepath.Join(dir, "qemu-recorder"), filepath.Join(dir, "qemu-calls.log")
	script := fmt.Sprintf("#!/bin/sh\necho \"$*\" >> %q\nexec %q \"$@\"\n", log, real)
	if err := os.WriteFile(bin, []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	return bin, log
}

// hostSecret is a host file a hostile image points at: a raw "disk" with a
// boot signature, so that a check that followed the backing file would
// find a bootable disk.
func hostSecret(t *testing.T, dir string) string {
	t.Helper()
	secret := filepath.Join(dir, "host-secret")
	b := make([]byte, 1<<20)
	copy(b[512:], "root:$6$secret-hash:19000:0:99999:7:::\n")
	b[510], b[511] = 0x55, 0xAA
	if err := os.WriteFile(secret, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return secret
}

func qemuImgRun(t *testing.T, args ...string) {
	t.Helper()
	if b, err := exec.Command("qemu-img", args...).CombinedOutput(); err != nil {
		t.Fatalf("qemu-img %s: %v: %s", strings.Join(args, " "), err, b)
	}
}

// TestImageWithBackingFileRefused: a qcow2 "image" whose backing file is
// a host file (issue 26: a tenant's VM read /etc/shadow) is refused by
// Ensure with ErrBadImage, whatever format the controller says (or none),
// and QEMU is never started on it. So are a qcow2 with an external data
// file, a VMDK whose extent is another file, and an image whose content
// is not the format the controller stored it as.
func TestImageWithBackingFileRefused(t *testing.T) {
	needQEMU(t)
	dir := t.TempDir()
	secret := hostSecret(t, dir)
	backed := filepath.Join(dir, "backed.qcow2")
	qemuImgRun(t, "create", "-q", "-f", "qcow2", "-b", secret, "-F", "raw", backed, "1M")
	dataFile := filepath.Join(dir, "datafile.qcow2")
	qemuImgRun(t, "create", "-q", "-f", "qcow2", "-o", "data_file="+secret+",data_file_raw=on", dataFile, "1M")
	flat := filepath.Join(dir, "flat.vmdk")
	qemuImgRun(t, "create", "-q", "-f", "vmdk", "-o", "subformat=monolithicFlat", flat, "1M")
	// The flat VMDK's extent, a separate file, is swapped for the host secret.
	descriptor, err := os.ReadFile(flat)
	if err != nil {
		t.Fatal(err)
	}
	extent := strings.TrimSuffix(flat, ".vmdk") + "-flat.vmdk"
	if err := os.WriteFile(flat, []byte(strings.ReplaceAll(string(descriptor), filepath.Base(extent), secret)), 0o600); err != nil {
		t.Fatal(err)
	}
	raw := filepath.Join(dir, "raw.img")
	if err := os.WriteFile(raw, make([]byte, 1<<20), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, image, format, want string
	}{
		{"qcow2 with a backing file, said qcow2", backed, "qcow2", "backing file"},
		{"qcow2 with a backing file, no format said", backed, "", "backing file"},
		{"qcow2 with a backing file, said raw", backed, "raw", "no boot signature"},
		{"qcow2 with a data file", dataFile, "qcow2", "data file"},
		{"VMDK with an extent elsewhere", flat, "", "extent"},
		{"raw said qcow2", raw, "qcow2", "qemu-img"},
		{"unknown format", raw, "vmdk", "unsupported image format"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			qemu, calls := qemuRecorder(t, t.TempDir())
			d := newTestDriver(t, t.TempDir(), func(c *Config) { c.QEMU = qemu })
			spec := bootSpec("vm-hostile", "hostile", tc.image)
			spec.Disks[0].ImageFormat = tc.format
			st, err := d.Ensure(context.Background(), spec)
			if !errors.Is(err, ErrBadImage) {
				t.Fatalf("Ensure = %+v, %v; want ErrBadImage", st, err)
			}
			t.Logf("error: %v", err)
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not say %q", err, tc.want)
			}
			if left := leftovers(d, spec.ID); len(left) > 0 {
				t.Errorf("left behind: %v", left)
			}
			b, _ := os.ReadFile(calls)
			for _, line := range strings.Split(strings.TrimSpace(string(b)), "\n") {
				if line != "" && line != "--version" {
					t.Errorf("QEMU was started: %s", line)
				}
			}
		})
	}
}

// openFiles lists the files process pid holds open.
func openFiles(pid int) []string {
	fds, _ := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	var out []string
	for _, fd := range fds {
		if p, err := os.Readlink(fmt.Sprintf("/proc/%d/fd/%s", pid, fd.Name())); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// TestBaseBackingFileNotFollowed: a cached image that gains a backing
// file after its VM's disk was made (rewritten behind the driver's back)
// is still opened without it: QEMU's base node has "backing": null, so
// the host file is never opened. Also for a record written before the
// driver kept the base in it (read from the overlay).
func TestBaseBackingFileNotFollowed(t *testing.T) {
	image := testImage(t)
	dir := t.TempDir()
	secret := hostSecret(t, dir)
	base := filepath.Join(dir, "image")
	qemuImgRun(t, "convert", "-O", "qcow2", image, base)
	d := newTestDriver(t, t.TempDir())
	ctx := context.Background()
	spec := bootSpec("vm-rebased", "rebased", base)
	spec.Disks[0].ImageFormat = "qcow2"
	spec.Power = api.VMStopped
	if st, err := d.Ensure(ctx, spec); err != nil || st.State != api.VMStopped {
		t.Fatalf("Ensure: %+v, %v", st, err)
	}
	t.Cleanup(func() { _ = d.Delete(context.Background(), spec.ID) })
	if rec := d.vms[spec.ID].rec.Disks[0]; rec.BasePath != base || rec.BaseFormat != "qcow2" {
		t.Fatalf("boot disk record %+v: want base %s qcow2", rec, base)
	}
	qemuImgRun(t, "rebase", "-u", "-f", "qcow2", "-b", secret, "-F", "raw", base)

	for _, legacy := range []bool{false, true} {
		if legacy {
			d.mu.Lock()
			d.vms[spec.ID].rec.Disks[0].BasePath, d.vms[spec.ID].rec.Disks[0].BaseFormat = "", ""
			d.mu.Unlock()
		}
		spec.Power = api.VMStarted
		spec.Generation++
		st, err := d.Ensure(ctx, spec)
		if err != nil || st.State != api.VMStarted {
			t.Fatalf("legacy %v: start: %+v, %v", legacy, st, err)
		}
		pid := d.vms[spec.ID].rec.PID
		files := openFiles(pid)
		if !containsPath(files, base) {
			t.Errorf("legacy %v: QEMU %d does not hold the image %s open: %v", legacy, pid, base, files)
		}
		if containsPath(files, secret) {
			t.Errorf("legacy %v: QEMU %d opened the image's backing file %s: %v", legacy, pid, secret, files)
		}
		if rec := d.vms[spec.ID].rec.Disks[0]; rec.BasePath != base || rec.BaseFormat != "qcow2" {
			t.Errorf("legacy %v: boot disk record %+v: want base %s qcow2", legacy, rec, base)
		}
		spec.Power = api.VMStopped
		spec.Generation++
		ctx, cancel := context.WithTimeout(ctx, time.Minute)
		if _, err := d.Ensure(ctx, spec); err != nil {
			t.Fatalf("stop: %v", err)
		}
		cancel()
	}
}

func containsPath(files []string, p string) bool {
	for _, f := range files {
		if f == p {
			return true
		}
	}
	return false
}

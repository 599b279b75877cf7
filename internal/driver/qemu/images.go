package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/photon-cloud/photon/internal/qemuimg"
)

const gib = 1 << 30

// imageInfo is what qemu-img info says of a file (opened with its format
// pinned: qemu-img info does not open backing files).
type imageInfo = qemuimg.Info

// imageCheck is a verified base image, cached by path, format, size and
// mtime so that many VMs from one image check it once.
type imageCheck struct {
	size  int64
	mtime time.Time
	info  imageInfo
}

// qemuFormat is the qemu-img format an image the controller stored as
// format (api.Image.Format) is opened as. "" (a controller older than
// DiskDesired.ImageFormat) is probed, see checkImage.
func qemuFormat(format string) (string, error) {
	switch format {
	case "qcow2", "raw", "vhdx":
		return format, nil
	case "iso":
		return "raw", nil
	case "":
		return "", nil
	}
	return "", fmt.Errorf("unsupported image format %q", format)
}

// cowFormats are the formats that can have a backing file: QEMU takes
// "backing": null for them.
func cowFormat(format string) bool {
	switch format {
	case "qcow2", "qed", "vmdk", "qcow":
		return true
	}
	return false
}

// qemuImg runs qemu-img and returns its stdout; a failure carries its
// stderr, which is what the user needs to see.
func (d *Driver) qemuImg(ctx context.Context, args ...string) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, d.cfg.QEMUImg, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("qemu-img %s: %s", args[0], msg)
	}
	return stdout.Bytes(), nil
}

// imageInfo runs qemu-img info on path, as format ("" probes).
func (d *Driver) imageInfo(ctx context.Context, path, format string) (imageInfo, error) {
	args := []string{"info", "--output=json"}
	if format != "" {
		args = append(args, "-f", format)
	}
	out, err := d.qemuImg(ctx, append(args, path)...)
	if err != nil {
		return imageInfo{}, err
	}
	info, err := qemuimg.Parse(out)
	if err != nil {
		return imageInfo{}, err
	}
	return *info, nil
}

// selfContained refuses an image that names another file: a backing
// file, a qcow2 data file, or a VMDK extent other than itself. QEMU would
// open that file for the guest (a tenant's image naming /etc/shadow
// reads the host's file).
func selfContained(path string, info imageInfo) error {
	if kind, name := info.Foreign(path); kind != "" {
		return fmt.Errorf("the image has %s (%q): images must be self-contained", kind, name)
	}
	return nil
}

// checkImage verifies that path is a disk image QEMU can boot from, read
// as format (qemu-img's name; "" probes it, for a controller that does
// not say): self-contained (no backing file, data file or extent
// elsewhere), not corrupt (qemu-img check, for formats that have one),
// and a first sector with the boot signature 0x55AA (a BIOS-bootable
// disk; GPT disks carry a protective MBR with it too). Every qemu-img
// call names the format, and none runs before the image is known to be
// self-contained.
func (d *Driver) checkImage(ctx context.Context, path, format string) (imageInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return imageInfo{}, err
	}
	key := format + ":" + path
	d.imgMu.Lock()
	c, ok := d.imgChecked[key]
	d.imgMu.Unlock()
	if ok && c.size == fi.Size() && c.mtime.Equal(fi.ModTime()) {
		return c.info, nil
	}
	info, err := d.imageInfo(ctx, path, format)
	if err != nil {
		return imageInfo{}, err
	}
	if format != "" && info.Format != format {
		return imageInfo{}, fmt.Errorf("qemu-img info read the image as %q, not %q", info.Format, format)
	}
	if err := selfContained(path, info); err != nil {
		return imageInfo{}, err
	}
	switch info.Format {
	case "qcow2", "qed", "vmdk", "vhdx", "vdi", "vpc":
		if _, err := d.qemuImg(ctx, "check", "-q", "-f", info.Format, path); err != nil {
			return imageInfo{}, fmt.Errorf("corrupt %s image: %w", info.Format, err)
		}
	case "raw":
	default:
		return imageInfo{}, fmt.Errorf("unsupported image format %q", info.Format)
	}
	if info.VirtualSize < 512 {
		return imageInfo{}, fmt.Errorf("not a bootable disk: %d bytes", info.VirtualSize)
	}
	sector, err := d.firstSector(ctx, path, info.Format)
	if err != nil {
		return imageInfo{}, err
	}
	if sector[510] != 0x55 || sector[511] != 0xAA {
		return imageInfo{}, errors.New("not a bootable disk: its first sector has no boot signature (0x55AA)")
	}
	d.imgMu.Lock()
	d.imgChecked[key] = imageCheck{size: fi.Size(), mtime: fi.ModTime(), info: info}
	d.imgMu.Unlock()
	return info, nil
}

// firstSector reads the first 512 bytes of the disk an image holds.
func (d *Driver) firstSector(ctx context.Context, path, format string) ([]byte, error) {
	if format == "raw" {
		f, err := os.Open(path)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		b := make([]byte, 512)
		if _, err := f.ReadAt(b, 0); err != nil {
			return nil, fmt.Errorf("read the first sector: %w", err)
		}
		return b, nil
	}
	tmp, err := os.CreateTemp("", "photon-sector-*") // 0600
	if err != nil {
		return nil, err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	if _, err := d.qemuImg(ctx, "dd", "-f", format, "-O", "raw", "bs=512", "count=1",
		"if="+path, "of="+tmp.Name()); err != nil {
		return nil, err
	}
	b, err := os.ReadFile(tmp.Name())
	if err != nil {
		return nil, err
	}
	if len(b) < 512 {
		return nil, fmt.Errorf("read the first sector: %d bytes", len(b))
	}
	return b, nil
}

// createOverlay makes a qcow2 overlay on base at path, at least sizeGB
// large (never smaller than the base), naming the base's format as
// checkImage found it (pinned), and readable by the agent's user only.
func (d *Driver) createOverlay(ctx context.Context, path, base string, info imageInfo, sizeGB float64) error {
	abs, err := filepath.Abs(base)
	if err != nil {
		return err
	}
	args := []string{"create", "-q", "-f", "qcow2", "-F", info.Format, "-b", abs, path}
	if want := int64(sizeGB * gib); want > info.VirtualSize {
		args = append(args, strconv.FormatInt(want, 10))
	}
	if _, err = d.qemuImg(ctx, args...); err != nil {
		return err
	}
	return os.Chmod(path, 0o600)
}

// createDisk makes a blank qcow2 disk of sizeGB (at least 1 MiB),
// readable by the agent's user only (qemu-img makes files 0644).
func (d *Driver) createDisk(ctx context.Context, path string, sizeGB float64) error {
	size := max(int64(sizeGB*gib), 1<<20)
	size = (size + 511) &^ 511
	if _, err := d.qemuImg(ctx, "create", "-q", "-f", "qcow2", path, strconv.FormatInt(size, 10)); err != nil {
		return err
	}
	return os.Chmod(path, 0o600)
}

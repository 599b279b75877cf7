package qemu

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

const gib = 1 << 30

// imageInfo is what qemu-img info says of a file.
type imageInfo struct {
	Format      string `json:"format"`
	VirtualSize int64  `json:"virtual-size"`
}

// imageCheck is a verified base image, cached by path, size and mtime so
// that many VMs from one image check it once.
type imageCheck struct {
	size  int64
	mtime time.Time
	info  imageInfo
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

// checkImage verifies that path is a disk image QEMU can boot from: a
// format qemu-img knows (raw, qcow2, vmdk, ...), not corrupt (qemu-img
// check, for formats that have one), and a first sector with the boot
// signature 0x55AA (a BIOS-bootable disk; GPT disks carry a protective
// MBR with it too).
func (d *Driver) checkImage(ctx context.Context, path string) (imageInfo, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return imageInfo{}, err
	}
	d.imgMu.Lock()
	c, ok := d.imgChecked[path]
	d.imgMu.Unlock()
	if ok && c.size == fi.Size() && c.mtime.Equal(fi.ModTime()) {
		return c.info, nil
	}
	out, err := d.qemuImg(ctx, "info", "--output=json", path)
	if err != nil {
		return imageInfo{}, err
	}
	var info imageInfo
	if err := json.Unmarshal(out, &info); err != nil {
		return imageInfo{}, fmt.Errorf("qemu-img info: %w", err)
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
	d.imgChecked[path] = imageCheck{size: fi.Size(), mtime: fi.ModTime(), info: info}
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
	tmp, err := os.CreateTemp("", "photon-sector-*")
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
// large (never smaller than the base).
func (d *Driver) createOverlay(ctx context.Context, path, base string, info imageInfo, sizeGB float64) error {
	abs, err := filepath.Abs(base)
	if err != nil {
		return err
	}
	args := []string{"create", "-q", "-f", "qcow2", "-F", info.Format, "-b", abs, path}
	if want := int64(sizeGB * gib); want > info.VirtualSize {
		args = append(args, strconv.FormatInt(want, 10))
	}
	_, err = d.qemuImg(ctx, args...)
	return err
}

// createDisk makes a blank qcow2 disk of sizeGB (at least 1 MiB).
func (d *Driver) createDisk(ctx context.Context, path string, sizeGB float64) error {
	size := max(int64(sizeGB*gib), 1<<20)
	size = (size + 511) &^ 511
	_, err := d.qemuImg(ctx, "create", "-q", "-f", "qcow2", path, strconv.FormatInt(size, 10))
	return err
}

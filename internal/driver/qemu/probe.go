package qemu

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"
)

// Acceleration modes.
const (
	AccelKVM = "kvm"
	AccelTCG = "tcg"
)

// probeBootSector is a 512-byte boot sector that writes 0x31 to the
// isa-debug-exit port 0xf4, which makes QEMU exit with status
// (0x31<<1)|1 = 99: proof that a guest really ran, BIOS and all.
func probeBootSector() []byte {
	b := make([]byte, 512)
	copy(b, []byte{
		0xb0, 0x31, // mov al, 0x31
		0xe6, 0xf4, // out 0xf4, al
		0xf4,       // hlt
		0xeb, 0xfd, // jmp hlt
	})
	b[510], b[511] = 0x55, 0xaa
	return b
}

const probeExitStatus = 99

// kvmProbeTimeout: under working KVM the probe guest finishes in about
// 0.1 s; on machines where /dev/kvm is there but guests hang it takes
// seconds or never ends (seen: 4 s for the probe, Linux guests hanging).
const kvmProbeTimeout = 2 * time.Second

// probeAccel boots the probe guest under accel and reports whether it ran
// within timeout; the error says why not (QEMU's own words when it
// complained).
func probeAccel(ctx context.Context, qemu, accel string, timeout time.Duration) error {
	dir, err := os.MkdirTemp("", "photon-qemu-probe-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	disk := filepath.Join(dir, "probe.img")
	// SeaBIOS does not boot a disk of one sector: make it 1 MiB (sparse).
	if err := os.WriteFile(disk, probeBootSector(), 0o600); err != nil {
		return err
	}
	if err := os.Truncate(disk, 1<<20); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, qemu, "-accel", accel, "-machine", "pc", "-m", "16",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
		"-drive", "file="+disk+",format=raw,if=virtio,readonly=on")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err = cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee) && ee.ExitCode() == probeExitStatus:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("%s: the probe guest did not finish within %s", accel, timeout)
	case err == nil:
		return fmt.Errorf("%s: QEMU exited without the probe guest running", accel)
	default:
		msg := bytes.TrimSpace(stderr.Bytes())
		if len(msg) == 0 {
			msg = []byte(err.Error())
		}
		return fmt.Errorf("%s: %s", accel, msg)
	}
}

// Probe reports which acceleration runs a guest on this machine: KVM if
// /dev/kvm is there and a tiny guest really boots under it within a few
// seconds (on some machines /dev/kvm exists but guests hang or crawl), else TCG
// (software emulation) if that boots. The error says why neither works
// (no QEMU, or QEMU fails).
func Probe(ctx context.Context, qemu string) (string, error) {
	if qemu == "" {
		qemu = "qemu-system-x86_64"
	}
	if _, err := exec.LookPath(qemu); err != nil {
		return "", fmt.Errorf("qemu: %w", err)
	}
	var kvmErr error
	if f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0); err == nil {
		f.Close()
		if kvmErr = probeAccel(ctx, qemu, AccelKVM, kvmProbeTimeout); kvmErr == nil {
			return AccelKVM, nil
		}
	}
	if err := probeAccel(ctx, qemu, AccelTCG, 20*time.Second); err != nil {
		if kvmErr != nil {
			return "", fmt.Errorf("qemu: no guest runs: %w; %w", kvmErr, err)
		}
		return "", fmt.Errorf("qemu: no guest runs: %w", err)
	}
	return AccelTCG, nil
}

var versionRE = regexp.MustCompile(`version (\d+)\.(\d+)`)

// qemuVersion is "qemu-MAJOR.MINOR", e.g. "qemu-7.2".
func qemuVersion(ctx context.Context, qemu string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, qemu, "--version").Output()
	if err != nil {
		return "", fmt.Errorf("%s --version: %w", qemu, err)
	}
	m := versionRE.FindSubmatch(out)
	if m == nil {
		return "", fmt.Errorf("%s --version: no version in %q", qemu, out)
	}
	return fmt.Sprintf("qemu-%s.%s", m[1], m[2]), nil
}

package main

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/internal/driver"
	"github.com/photon-cloud/photon/internal/driver/qemu"
)

// qemuFlags configure the qemu driver.
type qemuFlags struct {
	accel         string
	cpuOvercommit float64
	memOvercommit float64
	reservedMB    int64
	stopTimeout   time.Duration
}

func (f *qemuFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.StringVar(&f.accel, "qemu-accel", "", "qemu driver: kvm or tcg (default: probe, KVM only if a guest really runs under it)")
	fl.Float64Var(&f.cpuOvercommit, "qemu-cpu-overcommit", 4, "qemu driver: vCPUs this host reports per CPU it has, as its capacity (the controller's --cpu-overcommit then scales what is placed on that)")
	fl.Float64Var(&f.memOvercommit, "qemu-memory-overcommit", 1, "qemu driver: memory this host reports per byte it has, as its capacity (the controller's --memory-overcommit then scales what is placed on that)")
	fl.Int64Var(&f.reservedMB, "qemu-reserved-memory-mb", 512, "qemu driver: host memory kept for the host itself, in MB")
	fl.DurationVar(&f.stopTimeout, "qemu-stop-timeout", 30*time.Second, "qemu driver: how long a guest may take to power off on ACPI before QEMU is quit")
}

// driver makes a qemu driver keeping its state (and its datastore
// "local") under dataDir.
func (f *qemuFlags) driver(ctx context.Context, dataDir string, log *slog.Logger) (driver.Driver, error) {
	return qemu.New(ctx, qemu.Config{DataDir: dataDir, Accel: f.accel, CPUOvercommit: f.cpuOvercommit,
		MemoryOvercommit: f.memOvercommit, ReservedMemoryMB: f.reservedMB, StopTimeout: f.stopTimeout,
		Logger: log.With("driver", "qemu")})
}

// pick resolves --driver auto: qemu when QEMU runs a guest here (the
// probe boots a tiny one, and its answer is kept for the driver), else
// fake.
func (f *qemuFlags) pick(ctx context.Context, name string, log *slog.Logger) (string, error) {
	switch name {
	case "fake", "qemu":
		return name, nil
	case "auto":
		accel, err := qemu.Probe(ctx, "")
		if err != nil {
			log.Info("no working QEMU here: using the fake driver", "reason", err)
			return "fake", nil
		}
		log.Info("QEMU runs guests here: using the qemu driver", "accel", accel)
		if f.accel == "" {
			f.accel = accel
		}
		return "qemu", nil
	}
	return "", fmt.Errorf("--driver %q: want fake, qemu or auto", name)
}

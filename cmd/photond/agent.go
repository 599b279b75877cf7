package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/agent"
	"github.com/photon-cloud/photon/internal/driver"
	"github.com/photon-cloud/photon/internal/driver/fake"
)

// fakeFlags configure the simulated driver.
type fakeFlags struct {
	cpus       int
	memoryMB   int64
	diskGB     float64
	latency    time.Duration
	failEnsure float64
}

func (f *fakeFlags) add(cmd *cobra.Command) {
	fl := cmd.Flags()
	fl.IntVar(&f.cpus, "fake-cpus", 16, "fake driver: CPUs the host offers")
	fl.Int64Var(&f.memoryMB, "fake-memory-mb", 65536, "fake driver: memory the host offers, in MB")
	fl.Float64Var(&f.diskGB, "fake-datastore-gb", 1000, "fake driver: size of its datastore \"local\", in GB")
	fl.DurationVar(&f.latency, "fake-latency", 0, "fake driver: delay of each VM operation")
	fl.Float64Var(&f.failEnsure, "fake-fail-rate", 0, "fake driver: chance (0-1) that a VM operation fails")
}

func (f *fakeFlags) driver(dataDir string) (driver.Driver, error) {
	return fake.New(fake.Config{CPUCount: f.cpus, MemoryMB: f.memoryMB, DataDir: dataDir, Latency: f.latency,
		FailEnsure: f.failEnsure, Datastores: []api.DatastoreReport{{Name: "local", CapacityGB: f.diskGB}}})
}

func agentCmd(logger func() (*slog.Logger, error)) *cobra.Command {
	var cfg agent.Config
	var drv string
	var ff fakeFlags
	var qf qemuFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a host agent: join the controller, run the VMs it places here",
		Long: `Run the host agent.

On first start the agent spends a join token (photon host join-token) for a host
identity and credential, kept in DATA_DIR/agent.json; later starts reuse it. It
then watches its host's desired state and converges on it through the driver,
and reports what it observes, which is also its heartbeat. VMs outlive the agent:
a restarted agent re-adopts them and converges again.`,
		Example: `  photond agent --controller https://10.0.0.1:9000 --ca-cert ca.crt \
    --join-token "$(photon -n host join-token)" --data-dir /var/lib/photon-agent \
    --address 10.0.0.5 --driver fake --fake-cpus 32 --fake-memory-mb 131072`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			log, err := logger()
			if err != nil {
				return err
			}
			if cfg.DataDir == "" {
				return fmt.Errorf("--data-dir is required")
			}
			if drv, err = qf.pick(cmd.Context(), drv, log); err != nil {
				return err
			}
			if drv == "qemu" {
				cfg.Driver, err = qf.driver(cmd.Context(), filepath.Join(cfg.DataDir, "qemu"), log)
			} else {
				cfg.Driver, err = ff.driver(filepath.Join(cfg.DataDir, "fake"))
			}
			if err != nil {
				return err
			}
			if cfg.Address == "" {
				cfg.Address, _ = os.Hostname()
			}
			cfg.Log = log
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			a, err := agent.New(cfg)
			if err != nil {
				return err
			}
			return a.Run(ctx)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.ControllerURL, "controller", "", "controller URL, e.g. https://10.0.0.1:9000 (required)")
	f.StringVar(&cfg.CACertFile, "ca-cert", "", "CA certificate of the controller (its DATA_DIR/ca.crt)")
	f.StringVar(&cfg.JoinToken, "join-token", "", "one-time join token (needed on first start only)")
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for the host identity, image cache and driver state (required)")
	f.StringVar(&drv, "driver", "fake", "hypervisor driver: fake, qemu (real VMs), or auto (qemu if it runs a guest here, else fake)")
	f.StringVar(&cfg.Address, "address", "", "address the host reports (default: the host name)")
	f.StringVar(&cfg.Zone, "zone", "", "availability zone of the host")
	f.StringSliceVar(&cfg.Tags, "tags", nil, "host usage tags, e.g. CLOUD")
	f.DurationVar(&cfg.HeartbeatInterval, "heartbeat", 3*time.Second, "at most this long between status reports: a heartbeat is sent when no report was for this long")
	f.DurationVar(&cfg.FullReportInterval, "full-report", agent.DefaultFullReportInterval, "at least this often a report (a heartbeat, or one of changes) lists every VM the host holds, not only what changed")
	f.BoolVar(&cfg.NoStream, "no-stream", false, "long-poll the desired state and send each report as a request of its own, not on the host's stream (e.g. behind a proxy that buffers request bodies)")
	ff.add(cmd)
	qf.add(cmd)
	_ = cmd.MarkFlagRequired("controller")
	return cmd
}

package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
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

func agentCmd(logger func() (*slog.Logger, error), signals func(context.Context) (context.Context, func())) *cobra.Command {
	var cfg agent.Config
	var drv, joinTokenFile string
	var ff fakeFlags
	var qf qemuFlags
	var nf netFlags
	cmd := &cobra.Command{
		Use:   "agent",
		Short: "Run a host agent: join the controller, run the VMs it places here",
		Long: `Run the host agent.

On first start the agent spends a join token (photon host join-token) for a host
identity and credential, kept in DATA_DIR/agent.json; later starts reuse it. It
then watches its host's desired state and converges on it through the driver,
and reports what it observes, which is also its heartbeat. VMs outlive the agent:
a restarted agent re-adopts them and converges again.

The join token comes from --join-token, --join-token-file, or the environment
variable PHOTON_JOIN_TOKEN (in that order; give one). A token on the command
line is visible to every local user in ps: prefer the file or the environment.

The host's network (a bridge and VXLAN device per subnet, the VMs' taps, a
namespace per router, nftables rules, DHCP) is programmed by --network-driver
from the same desired state, before the VMs that need it; its state is in
DATA_DIR/network. --underlay-ip is the address other hosts reach this one's
overlays at, --uplink where NAT and floating IPs go out.

One photond at a time runs on a data dir (DATA_DIR/photond.lock); a second one
fails at once with "data dir DATA_DIR in use by pid N". Files in DATA_DIR are
the agent's user's only (directories 0700, files 0600).`,
		Example: `  photond agent --controller https://10.0.0.1:9000 --ca-cert ca.crt \
    --join-token-file /etc/photon/join-token --data-dir /var/lib/photon-agent \
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
			if cfg.JoinToken, err = resolveJoinToken(cfg.JoinToken, joinTokenFile, os.Getenv); err != nil {
				return err
			}
			ctx, stop := signals(cmd.Context())
			defer stop()
			// Before the driver: its Recover kills QEMU processes no
			// record of its own claims.
			unlock, err := lockDataDir(cfg.DataDir)
			if err != nil {
				return err
			}
			defer unlock()
			if drv, err = qf.pick(ctx, drv, log); err != nil {
				return err
			}
			if drv == "qemu" {
				cfg.Driver, err = qf.driver(ctx, filepath.Join(cfg.DataDir, "qemu"), log)
			} else {
				cfg.Driver, err = ff.driver(filepath.Join(cfg.DataDir, "fake"))
			}
			if err != nil {
				return err
			}
			cfg.Network, cfg.UnderlayIP, err = nf.open(ctx, drv, cfg.ControllerURL, filepath.Join(cfg.DataDir, "network"), log)
			if err != nil {
				return err
			}
			if cfg.Network != nil {
				defer cfg.Network.Close()
			}
			if cfg.Address == "" {
				cfg.Address, _ = os.Hostname()
			}
			cfg.Log = log
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
	f.StringVar(&cfg.JoinToken, "join-token", "", "one-time join token (needed on first start only); other local users see it in ps: prefer --join-token-file or $"+JoinTokenEnv)
	f.StringVar(&joinTokenFile, "join-token-file", "", "file holding the one-time join token (instead of --join-token)")
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
	nf.add(cmd, true)
	_ = cmd.MarkFlagRequired("controller")
	return cmd
}

// JoinTokenEnv is the environment variable an agent's join token may come
// from (not in ps, unlike --join-token).
const JoinTokenEnv = "PHOTON_JOIN_TOKEN"

// maxJoinTokenFile bounds the join token file read.
const maxJoinTokenFile = 4096

// resolveJoinToken picks the join token from --join-token (flag),
// --join-token-file (file) or $PHOTON_JOIN_TOKEN; "" if none. Giving both
// flags is an error; the environment counts only when neither flag is
// given. Surrounding white space (a file's newline) is dropped.
func resolveJoinToken(flag, file string, getenv func(string) string) (string, error) {
	switch {
	case flag != "" && file != "":
		return "", fmt.Errorf("--join-token and --join-token-file: give one")
	case flag != "":
		return strings.TrimSpace(flag), nil
	case file != "":
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("--join-token-file: %w", err)
		}
		defer f.Close()
		b, err := io.ReadAll(io.LimitReader(f, maxJoinTokenFile+1))
		if err != nil {
			return "", fmt.Errorf("--join-token-file: %w", err)
		}
		if len(b) > maxJoinTokenFile {
			return "", fmt.Errorf("--join-token-file %s: larger than %d bytes, not a join token", file, maxJoinTokenFile)
		}
		tok := strings.TrimSpace(string(b))
		if tok == "" {
			return "", fmt.Errorf("--join-token-file %s is empty", file)
		}
		return tok, nil
	}
	return strings.TrimSpace(getenv(JoinTokenEnv)), nil
}

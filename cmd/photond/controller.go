package main

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/internal/controller"
	"github.com/photon-cloud/photon/internal/images"
	"github.com/photon-cloud/photon/internal/store"
)

func controllerCmd(logger func() (*slog.Logger, error), signals func(context.Context) (context.Context, func())) *cobra.Command {
	var cfg controller.Config
	var pf placementFlags
	cmd := &cobra.Command{
		Use:   "controller",
		Short: "Run the Photon controller: HTTPS API, task engine, state in etcd",
		Long: `Run the Photon controller.

State lives in etcd: an embedded single-member etcd in DATA_DIR/etcd, or the
external cluster named by --etcd-endpoints (several controllers may share it).
On first start the controller writes into DATA_DIR a CA (ca.crt), a server
certificate signed by it, and an admin token (admin.token, mode 0600). Once it
serves, it writes its URL to DATA_DIR/controller.url. SIGTERM or Ctrl-C stops
it (a second signal, or --shutdown-timeout passing, stops it at once);
unfinished tasks resume when it (or another controller) starts again. One
photond at a time runs on a data dir: it holds DATA_DIR/photond.lock, and a
second one fails at once with "data dir DATA_DIR in use by pid N".`,
		Example: `  photond controller --data-dir /var/lib/photon --listen 0.0.0.0:9000 --tls-san photon.example.com
  photond controller --data-dir .data --etcd-endpoints http://10.0.0.1:2379,http://10.0.0.2:2379
  photond controller --data-dir .data --cpu-overcommit 4 --memory-overcommit 1.5 --placement-sample -1`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := pf.apply(&cfg); err != nil {
				return err
			}
			log, err := logger()
			if err != nil {
				return err
			}
			cfg.Log = log
			ctx, stop := signals(cmd.Context())
			defer stop()
			unlock, err := lockDataDir(cfg.DataDir)
			if err != nil {
				return err
			}
			defer unlock()
			return runController(ctx, cfg)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for etcd data, certificates and the admin token (required)")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:9000", "address to serve HTTPS on (port 0 picks a free one)")
	f.StringSliceVar(&cfg.EtcdEndpoints, "etcd-endpoints", nil, "external etcd client URLs, comma-separated (default: embedded etcd)")
	f.StringSliceVar(&cfg.TLSSANs, "tls-san", nil, "extra DNS names or IPs for the server certificate")
	f.Int64Var(&cfg.ImageLimits.FreeReserve, "image-free-reserve", 0, "bytes image uploads leave free on the data dir's filesystem (0: 1 GiB, or 5% of a filesystem under 20 GiB; -1: none)")
	f.Int64Var(&cfg.ImageLimits.MaxVirtualSize, "image-max-virtual-size", images.DefaultMaxVirtualSize, "largest disk (bytes) an uploaded image may hold")
	f.StringVar(&cfg.FloatingIPRange, "floating-ip-range", "", "addresses VMs may acquire as floating IPs, e.g. 203.0.113.10-203.0.113.50 or 203.0.113.0/28 (default: none)")
	f.DurationVar(&cfg.HeartbeatTimeout, "heartbeat-timeout", 15*time.Second, "a host silent this long turns ERROR")
	f.DurationVar(&cfg.StoreLimits.OpTimeout, "etcd-timeout", store.DefaultLimits.OpTimeout, "a request waits this long for etcd before failing with 503")
	f.DurationVar(&cfg.HostTimeout, "host-timeout", 2*time.Minute, "how long a task waits for a host to act")
	f.DurationVar(&cfg.AccessTokenTTL, "access-token-ttl", 15*time.Minute, "lifetime of users' access tokens (refresh tokens get new ones)")
	f.DurationVar(&cfg.AuditRetention, "audit-retention", 90*24*time.Hour, "how long audit log records are kept")
	f.IntVar(&cfg.MaxConnections, "max-connections", controller.DefaultMaxConnections, "connections served at once (each host holds one); more wait")
	pf.add(cmd)
	_ = cmd.MarkFlagRequired("data-dir")
	return cmd
}

func runController(ctx context.Context, cfg controller.Config) error {
	tuneGC(cfg.Log)
	c, err := controller.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	abs, _ := filepath.Abs(cfg.DataDir)
	ca, token := filepath.Join(abs, "ca.crt"), filepath.Join(abs, controller.AdminTokenFile)
	fmt.Printf(`Photon controller serving at %[1]s
Point the CLI at it:
  photon target set %[1]s --ca-cert %[2]s
  photon target login --token $(cat %[3]s)
or: export PHOTON_TARGET=%[1]s PHOTON_CA_CERT=%[2]s PHOTON_TOKEN=$(cat %[3]s)
`, c.URL, ca, token)
	if err := c.Wait(ctx); err != nil {
		return err
	}
	cfg.Log.Info("controller stopping")
	return nil
}

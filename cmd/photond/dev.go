package main

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/internal/agent"
	"github.com/photon-cloud/photon/internal/controller"
	"github.com/photon-cloud/photon/internal/driver"
	"github.com/photon-cloud/photon/internal/store"
)

func devCmd(logger func() (*slog.Logger, error), signals func(context.Context) (context.Context, func())) *cobra.Command {
	var cfg controller.Config
	var hosts int
	var ff fakeFlags
	var qf qemuFlags
	var pf placementFlags
	var nf netFlags
	var drv string
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a whole cloud in one process: controller, embedded etcd and local hosts",
		Long: `Run a development cloud in one process: the controller with its embedded etcd,
and --sim-hosts host agents, joined at start. With one host and --driver auto
(the default) the host runs real VMs with QEMU when QEMU runs a guest here
(software emulation when KVM does not work), else simulated (fake) VMs.
The local host's network is --network-driver's (by default, as root, the
linux one with QEMU: VMs reach each other, and the outside through NAT);
simulated hosts get the fake one.
State lives in DATA_DIR (as for photond controller), so a restart keeps it;
one photond at a time runs on it (DATA_DIR/photond.lock).`,
		Example: `  photond dev --data-dir .data
  photond dev --data-dir /tmp/cloud --listen 127.0.0.1:0 --sim-hosts 20 --fake-cpus 8
  photond dev --data-dir /tmp/cloud --sim-hosts 100 --cpu-overcommit 4 --placement-sample -1`,
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
			return runDev(ctx, cfg, hosts, &ff, drv, &qf, &nf)
		},
	}
	f := cmd.Flags()
	f.StringVar(&cfg.DataDir, "data-dir", "", "directory for all state (required)")
	f.StringVar(&cfg.Listen, "listen", "127.0.0.1:9000", "address to serve HTTPS on")
	f.StringSliceVar(&cfg.TLSSANs, "tls-san", nil, "extra DNS names or IPs for the server certificate")
	f.DurationVar(&cfg.HeartbeatTimeout, "heartbeat-timeout", 15*time.Second, "a host silent this long turns ERROR")
	f.DurationVar(&cfg.StoreLimits.OpTimeout, "etcd-timeout", store.DefaultLimits.OpTimeout, "a request waits this long for etcd before failing with 503")
	f.DurationVar(&cfg.HostTimeout, "host-timeout", 2*time.Minute, "how long a task waits for a host to act")
	f.IntVar(&hosts, "sim-hosts", 1, "number of local hosts (fake driver)")
	f.StringVar(&drv, "driver", "auto", "driver of the local hosts: auto (qemu when it runs a guest here and --sim-hosts is 1, else fake), qemu or fake")
	ff.add(cmd)
	qf.add(cmd)
	pf.add(cmd)
	nf.add(cmd, false)
	_ = cmd.MarkFlagRequired("data-dir")
	return cmd
}

func runDev(ctx context.Context, cfg controller.Config, n int, ff *fakeFlags, drv string, qf *qemuFlags, nf *netFlags) error {
	tuneGC(cfg.Log)
	if n < 0 || n > 10000 {
		return fmt.Errorf("--sim-hosts: want 0-10000, got %d", n)
	}
	switch {
	case drv == "qemu" && n != 1:
		return fmt.Errorf("--driver qemu runs one local host, not --sim-hosts %d", n)
	case drv == "auto" && n != 1:
		drv = "fake"
	}
	drv, err := qf.pick(ctx, drv, cfg.Log)
	if err != nil {
		return err
	}
	c, err := controller.Start(ctx, cfg)
	if err != nil {
		return err
	}
	defer c.Close()
	errc := make(chan error, n+1)
	for i := range n {
		dir := filepath.Join(cfg.DataDir, "hosts", fmt.Sprintf("host-%04d", i))
		var d driver.Driver
		if drv == "qemu" {
			d, err = qf.driver(ctx, filepath.Join(dir, "qemu"), cfg.Log)
		} else {
			d, err = ff.driver(filepath.Join(dir, "fake"))
		}
		if err != nil {
			return err
		}
		// The local host's network: the real one with the qemu driver,
		// fake ones (each its own underlay address) for simulated hosts.
		nd, underlay, err := nf.open(ctx, drv, c.URL, filepath.Join(dir, "network"), cfg.Log)
		if err != nil {
			return err
		}
		if nd != nil {
			defer nd.Close()
		}
		if drv != "qemu" && underlay == "" {
			underlay = simUnderlay(i)
		}
		acfg := agent.Config{ControllerURL: c.URL, CACertFile: c.CACert, DataDir: dir, Driver: d, Network: nd, UnderlayIP: underlay,
			Address: fmt.Sprintf("127.0.0.1-sim-%04d", i), Log: cfg.Log.With("host", i)}
		if n == 1 {
			acfg.Address = "127.0.0.1"
		}
		if _, err := os.Stat(filepath.Join(dir, "agent.json")); err != nil {
			jt, err := c.Server.Hosts.NewJoinToken(ctx, "")
			if err != nil {
				return err
			}
			acfg.JoinToken = jt.Token
		}
		a, err := agent.New(acfg)
		if err != nil {
			return err
		}
		go func() { errc <- a.Run(ctx) }()
	}
	abs, _ := filepath.Abs(cfg.DataDir)
	ca, token := filepath.Join(abs, "ca.crt"), filepath.Join(abs, controller.AdminTokenFile)
	fmt.Printf(`Photon dev cloud serving at %[1]s with %[4]d local host(s)
Point the CLI at it:
  photon target set %[1]s --ca-cert %[2]s
  photon target login --token $(cat %[3]s)
or: export PHOTON_TARGET=%[1]s PHOTON_CA_CERT=%[2]s PHOTON_TOKEN=$(cat %[3]s)
`, c.URL, ca, token, n)
	go func() { errc <- c.Wait(ctx) }()
	select {
	case err := <-errc:
		if err != nil && ctx.Err() == nil {
			return err
		}
	case <-ctx.Done():
	}
	cfg.Log.Info("dev cloud stopping")
	return nil
}

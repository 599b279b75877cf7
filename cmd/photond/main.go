// Command photond runs Photon's daemons: `photond controller` (the API,
// task engine and state on etcd), `photond agent` (a host) and `photond dev`
// (an all-in-one cloud).
package main

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/internal/version"
)

func main() {
	if err := rootCmd().Execute(); err != nil {
		fmt.Fprintln(os.Stderr, "photond:", err)
		os.Exit(1)
	}
}

func rootCmd() *cobra.Command {
	var level string
	root := &cobra.Command{
		Use:           "photond",
		Short:         "Photon daemons: the controller, the host agent, and an all-in-one dev cloud",
		Version:       version.Version + " (" + version.GitCommit + ")",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	var pprofAddr string
	var shutdownTimeout time.Duration
	root.PersistentFlags().DurationVar(&shutdownTimeout, "shutdown-timeout", DefaultShutdownTimeout,
		"after SIGINT or SIGTERM, how long a graceful shutdown may take before photond stops at once (as on a second signal)")
	root.PersistentFlags().StringVar(&level, "log-level", "info", "log level: debug, info, warn or error")
	root.PersistentFlags().StringVar(&pprofAddr, "pprof-listen", "",
		"serve Go's profiler (net/http/pprof, plain HTTP, no authentication) on this address, e.g. 127.0.0.1:6060; "+
			"keep it on loopback. Then: go tool pprof http://127.0.0.1:6060/debug/pprof/profile?seconds=30")
	root.PersistentPreRunE = func(*cobra.Command, []string) error {
		if pprofAddr == "" {
			return nil
		}
		ln, err := net.Listen("tcp", pprofAddr)
		if err != nil {
			return fmt.Errorf("--pprof-listen: %w", err)
		}
		go func() { _ = http.Serve(ln, nil) }() // net/http/pprof registers on the default mux
		return nil
	}
	logger := func() (*slog.Logger, error) {
		var l slog.Level
		if err := l.UnmarshalText([]byte(level)); err != nil {
			return nil, fmt.Errorf("--log-level: %w", err)
		}
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: l})), nil
	}
	signals := func(ctx context.Context) (context.Context, func()) { return signalContext(ctx, shutdownTimeout) }
	root.AddCommand(controllerCmd(logger, signals), agentCmd(logger, signals), devCmd(logger, signals))
	return root
}

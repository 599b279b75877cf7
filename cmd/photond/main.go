// Command photond runs Photon's daemons: `photond controller` (the API,
// task engine and state on etcd), `photond agent` (a host) and `photond dev`
// (an all-in-one cloud).
package main

import (
	"fmt"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"runtime/debug"

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
	root.AddCommand(controllerCmd(logger), agentCmd(logger), devCmd(logger))
	return root
}

// controllerGOGC is the garbage collector's target for a controller (Go's
// default is 100): a controller's live heap is small next to a host's
// memory, and under load the collector took about a sixth of its CPU
// (bench/fleet: 8.6 -> 7.1 ms of CPU per VM created and started, RSS 190
// -> 310 MB on 2,000 VMs). GOGC in the environment overrides it.
const controllerGOGC = 400

// tuneGC applies controllerGOGC unless GOGC is set.
func tuneGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(controllerGOGC)
	}
}

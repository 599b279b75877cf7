// Command photond runs Photon's daemons: `photond controller` (the API, task
// engine and state on etcd). Agents and the all-in-one dev cloud come later.
package main

import (
	"fmt"
	"log/slog"
	"os"

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
	root.PersistentFlags().StringVar(&level, "log-level", "info", "log level: debug, info, warn or error")
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

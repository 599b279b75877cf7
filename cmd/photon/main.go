// Command photon is the Photon CLI: it drives a Photon controller through the
// Go SDK (package client) and prints what it gets as tables, plain
// tab-separated rows (-n) or the API's JSON (-o json).
//
//	photon target set https://127.0.0.1:9000 --ca-cert .data/ca.crt
//	photon target login --token "$(cat .data/admin.token)"
//	photon tenant create t1 --limits "vm 10 COUNT, vm.cpu 20 COUNT, vm.memory 40 GB"
//
// Exit status: 0 on success, 1 when the controller refuses a call or a task
// fails, 2 on a usage error.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
)

// Exit codes.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// app is one invocation of the CLI: its global flags, configuration and output.
type app struct {
	stdout, stderr io.Writer

	// Global flags.
	output         string // "" or "json"
	nonInteractive bool
	detail         bool

	// cfgPath is the configuration file; file is what it holds and cfg is
	// file with the environment applied (what commands use).
	cfgPath string
	file    config
	cfg     config

	// started is set when a command's Run begins: errors before it are usage errors.
	started bool
	// cmd is the command being run, for usage hints.
	cmd *cobra.Command
}

// run executes the CLI with args and returns the exit status.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	a := &app{stdout: stdout, stderr: stderr}
	root := a.rootCmd()
	root.SetArgs(expandLeadingGlobals(args))
	root.SetOut(stdout)
	root.SetErr(stderr)
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return exitOK
	}
	if a.cmd != nil {
		cmd = a.cmd
	}
	return a.report(cmd, err)
}

// usageError is a mistake in how the CLI was called; it exits with status 2.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return &usageError{fmt.Errorf(format, args...)}
}

// report prints err as "photon: ..." and returns the exit status for it.
func (a *app) report(cmd *cobra.Command, err error) int {
	fmt.Fprintf(a.stderr, "photon: %v\n", err)
	var ue *usageError
	if errors.As(err, &ue) || !a.started {
		if cmd != nil {
			fmt.Fprintf(a.stderr, "Run '%s --help' for usage.\n", cmd.CommandPath())
		}
		return exitUsage
	}
	var ae *api.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case api.CodeMissingAuthToken, api.CodeInvalidAuthToken, api.CodeExpiredAuthToken:
			fmt.Fprintf(a.stderr, "Log in with 'photon target login -u USER -p PASSWORD' (or --token TOKEN) or set %s.\n", envToken)
		}
	}
	return exitError
}

// rootCmd builds the command tree.
func (a *app) rootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:   "photon",
		Short: "Command-line client of a Photon controller",
		Long: `photon manages a Photon cloud: tenants, projects, quotas, flavors, hosts,
images, VMs, disks, routers and subnets, users and tasks.

Point it at a controller once with 'photon target set URL --ca-cert FILE' and
'photon target login --token TOKEN' (saved in ~/.photon-config, or the file
$PHOTON_CONFIG names), or set PHOTON_TARGET, PHOTON_TOKEN and PHOTON_CA_CERT.

Output is a table by default; -n prints plain tab-separated rows without
headers (a create prints only the new id) and -o json prints the API's JSON.`,
		Example: `  photon target set https://127.0.0.1:9000 --ca-cert .data/ca.crt
  photon target login --token "$(cat .data/admin.token)"
  photon tenant create t1 --limits "vm 10 COUNT, vm.cpu 20 COUNT, vm.memory 40 GB"
  photon -n tenant list`,
		SilenceErrors:     true,
		SilenceUsage:      true,
		Args:              cobra.NoArgs,
		CompletionOptions: cobra.CompletionOptions{HiddenDefaultCmd: true},
		RunE:              a.groupRun,
	}
	pf := root.PersistentFlags()
	pf.StringVarP(&a.output, "output", "o", "", "output format: json")
	pf.BoolVarP(&a.nonInteractive, "non-interactive", "n", false, "plain tab-separated output without headers, no prompts or progress")
	pf.BoolVarP(&a.detail, "detail", "d", false, "show more detail (e.g. quota in lists)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{err} })

	root.AddCommand(a.targetCmd(), a.tenantCmd(), a.projectCmd(), a.flavorCmd(), a.taskCmd(), a.systemCmd())
	root.AddCommand(a.hostCmd(), a.datastoreCmd(), a.vmCmd(), a.diskCmd(), a.imageCmd())
	root.AddCommand(a.routerCmd(), a.subnetCmd())
	root.AddCommand(a.userCmd())
	a.attachObjectIAM(root)
	return root
}

// groupRun runs a command that only groups others: with no arguments it prints
// help, with some it is a usage error.
func (a *app) groupRun(cmd *cobra.Command, args []string) error {
	if len(args) > 0 {
		return usagef("unknown command %q for %q", args[0], cmd.CommandPath())
	}
	return cmd.Help()
}

// group returns a command that holds subcommands.
func (a *app) group(use, short, example string, subs ...*cobra.Command) *cobra.Command {
	c := &cobra.Command{Use: use, Short: short, Example: example, Args: cobra.ArbitraryArgs, RunE: a.groupRun}
	c.AddCommand(subs...)
	return c
}

// action wraps a command's body: it marks the start of the run (errors from
// here on are not usage errors unless they say so), checks the global flags
// and loads the configuration.
func (a *app) action(fn func(cmd *cobra.Command, args []string) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		a.cmd = cmd
		switch a.output {
		case "", "json":
		default:
			return usagef("unknown output format %q (want json)", a.output)
		}
		a.started = true
		path, err := configPath()
		if err != nil {
			return err
		}
		a.cfgPath = path
		if a.file, err = loadConfig(path); err != nil {
			return err
		}
		a.cfg = a.file.withEnv()
		return fn(cmd, args)
	}
}

// client connects to the configured target.
func (a *app) client() (*client.Client, error) {
	if a.cfg.Target == "" {
		return nil, fmt.Errorf("no target: run 'photon target set URL --ca-cert FILE' or set %s", envTarget)
	}
	opts := []client.Option{client.WithToken(a.cfg.Token), client.WithUserAgent("photon-cli/1")}
	if a.cfg.CACert != "" {
		opts = append(opts, client.WithCACertFile(a.cfg.CACert))
	}
	if a.cfg.NoCertCheck {
		opts = append(opts, client.WithInsecureSkipVerify())
	}
	if a.cfg.Fingerprint != "" && a.cfg.CACert == "" && !a.cfg.NoCertCheck {
		opts = append(opts, client.WithFingerprint(a.cfg.Fingerprint))
	}
	if a.cfg.Session != nil {
		opts = append(opts, client.WithSession(*a.cfg.Session, a.saveSession))
	}
	return client.New(a.cfg.Target, opts...)
}

// save writes the (file) configuration back.
func (a *app) save() error { return saveConfig(a.cfgPath, a.file) }

// globalShort maps the global flags' short forms to their long ones.
var globalShort = map[string]string{"-n": "--non-interactive", "-d": "--detail", "-o": "--output"}

// expandLeadingGlobals rewrites global short flags given before the command
// word ("photon -n flavor create -n small") to their long forms, so that they
// do not clash with a subcommand's own short flag of the same letter
// (flavor create -n NAME).
func expandLeadingGlobals(args []string) []string {
	out := append([]string(nil), args...)
	for i := 0; i < len(out); i++ {
		s := out[i]
		if s == "--" || !strings.HasPrefix(s, "-") {
			break
		}
		if long, ok := globalShort[s]; ok {
			out[i] = long
			if s == "-o" {
				i++ // skip the value
			}
			continue
		}
		if strings.HasPrefix(s, "-o") && !strings.HasPrefix(s, "--") {
			out[i] = "--output=" + strings.TrimPrefix(strings.TrimPrefix(s, "-o"), "=")
			continue
		}
		if s == "--output" {
			i++
		}
	}
	return out
}

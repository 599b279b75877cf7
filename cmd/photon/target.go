package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/client"
)

func (a *app) targetCmd() *cobra.Command {
	return a.group("target", "Choose the controller and log in to it",
		"  photon target set https://127.0.0.1:9000 --ca-cert .data/ca.crt\n  photon target login --token \"$(cat .data/admin.token)\"",
		a.targetSetCmd(), a.targetShowCmd(), a.targetLoginCmd(), a.targetLogoutCmd(), a.targetInfoCmd())
}

func (a *app) targetSetCmd() *cobra.Command {
	var caCert string
	var noCertCheck bool
	cmd := &cobra.Command{
		Use:   "set URL",
		Short: "Set the controller URL (and the CA that signs its certificate)",
		Long: `Set the controller URL and save it in the configuration file.

The controller serves HTTPS with a certificate signed by its own CA
(DATA_DIR/ca.crt): name that file with --ca-cert, or turn verification off
with -c/--nocertcheck (tests only). Changing the target forgets the token and
the current tenant and project, which belong to the old controller.`,
		Example: `  photon target set https://127.0.0.1:9000 --ca-cert .data/ca.crt
  photon target set https://127.0.0.1:9000 -c`,
		Args: exactArgs(1, "URL"),
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			if caCert != "" && noCertCheck {
				return usagef("--ca-cert and --nocertcheck exclude each other")
			}
			url := args[0]
			if _, err := client.New(url); err != nil {
				return &usageError{err}
			}
			if caCert != "" {
				abs, err := filepath.Abs(caCert)
				if err != nil {
					return err
				}
				caCert = abs
				if _, err := client.New(url, client.WithCACertFile(caCert)); err != nil {
					return err
				}
			}
			if url != a.file.Target {
				a.file = config{}
			}
			a.file.Target, a.file.CACert, a.file.NoCertCheck = url, caCert, noCertCheck
			if err := a.save(); err != nil {
				return err
			}
			a.cfg = a.file.withEnv()
			// Check that the controller answers; a target that is down is still saved.
			if c, err := a.client(); err == nil {
				ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
				defer cancel()
				if _, err := c.Info(ctx); err != nil {
					fmt.Fprintf(a.stderr, "photon: warning: %s does not answer: %v\n", url, err)
				}
			}
			if !a.plain() && !a.jsonOut() {
				a.line("Target set to %s", url)
			}
			return nil
		}),
	}
	cmd.Flags().StringVar(&caCert, "ca-cert", "", "PEM file of the CA that signs the controller's certificate, e.g. DATA_DIR/ca.crt")
	cmd.Flags().BoolVarP(&noCertCheck, "nocertcheck", "c", false, "do not verify the controller's certificate (insecure)")
	return cmd
}

// targetView is what `target show -o json` prints: the configuration without the token.
type targetView struct {
	Target      string `json:"target"`
	CACert      string `json:"caCert,omitempty"`
	NoCertCheck bool   `json:"noCertCheck,omitempty"`
	LoggedIn    bool   `json:"loggedIn"`
	Tenant      *ref   `json:"tenant,omitempty"`
	Project     *ref   `json:"project,omitempty"`
	ConfigFile  string `json:"configFile"`
}

func (a *app) targetShowCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "show",
		Short:   "Show the target, whether a token is set, and the current tenant and project",
		Example: "  photon target show",
		Args:    cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			v := targetView{Target: a.cfg.Target, CACert: a.cfg.CACert, NoCertCheck: a.cfg.NoCertCheck,
				LoggedIn: a.cfg.Token != "", Tenant: a.cfg.Tenant, Project: a.cfg.Project, ConfigFile: a.cfgPath}
			if a.jsonOut() {
				return a.printJSON(v)
			}
			if a.plain() {
				a.line("%s", v.Target)
				return nil
			}
			if v.Target == "" {
				a.line("No target set. Run 'photon target set URL --ca-cert FILE'.")
				return nil
			}
			cert := v.CACert
			if v.NoCertCheck {
				cert = "not verified (--nocertcheck)"
			} else if cert == "" {
				cert = "system roots"
			}
			login := "no token"
			if v.LoggedIn {
				login = "token set"
			}
			return a.fields("Target", v.Target, "Certificate", cert, "Login", login,
				"Tenant", refString(v.Tenant), "Project", refString(v.Project), "Config file", v.ConfigFile)
		}),
	}
}

func refString(r *ref) string {
	if r == nil {
		return "-"
	}
	return r.Name + " (" + r.ID + ")"
}

func (a *app) targetLoginCmd() *cobra.Command {
	var token string
	cmd := &cobra.Command{
		Use:   "login --token TOKEN",
		Short: "Save a bearer token for the target, after checking that the controller accepts it",
		Long: `Save a bearer token for the target. The controller's admin token is in
DATA_DIR/admin.token. A TOKEN of "-" is read from standard input.`,
		Example: `  photon target login --token "$(cat .data/admin.token)"
  photon target login -t - < .data/admin.token`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			if token == "-" {
				b, err := io.ReadAll(io.LimitReader(os.Stdin, 64<<10))
				if err != nil {
					return fmt.Errorf("read token: %w", err)
				}
				token = string(b)
			}
			token = strings.TrimSpace(token)
			if token == "" {
				return usagef("empty token")
			}
			if a.cfg.Target != a.file.Target {
				// The target comes from PHOTON_TARGET: the token is saved for it.
				a.file = config{Target: a.cfg.Target, CACert: a.cfg.CACert}
			}
			a.cfg.Token = token
			c, err := a.client()
			if err != nil {
				return err
			}
			// Any call that needs a token tells whether this one is accepted.
			if _, err := c.SystemStatus(cmd.Context()); err != nil {
				return err
			}
			a.file.Token = token
			if err := a.save(); err != nil {
				return err
			}
			if !a.plain() && !a.jsonOut() {
				a.line("Logged in to %s", a.cfg.Target)
			}
			return nil
		}),
	}
	cmd.Flags().StringVarP(&token, "token", "t", "", "bearer token (required)")
	_ = cmd.MarkFlagRequired("token")
	return cmd
}

func (a *app) targetLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "logout",
		Short:   "Forget the saved token",
		Example: "  photon target logout",
		Args:    cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			a.file.Token = ""
			if err := a.save(); err != nil {
				return err
			}
			if !a.plain() && !a.jsonOut() {
				a.line("Logged out")
			}
			return nil
		}),
	}
}

func (a *app) targetInfoCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "info",
		Short:   "Show the target controller's version (needs no token)",
		Example: "  photon target info",
		Args:    cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			c, err := a.client()
			if err != nil {
				return err
			}
			info, err := c.Info(cmd.Context())
			if err != nil {
				return err
			}
			if a.jsonOut() {
				return a.printJSON(info)
			}
			if a.plain() {
				return a.table(nil, [][]string{{info.BaseVersion, info.FullVersion, info.GitCommitHash, info.NetworkType}})
			}
			return a.fields("Target", c.BaseURL(), "Base version", info.BaseVersion, "Full version", info.FullVersion,
				"Git commit", orDash(info.GitCommitHash), "Network type", orDash(info.NetworkType))
		}),
	}
}

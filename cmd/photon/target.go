package main

import (
	"context"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/client"
)

func (a *app) targetCmd() *cobra.Command {
	return a.group("target", "Choose the controller and log in to it",
		"  photon target set https://127.0.0.1:9000 --ca-cert .data/ca.crt\n  photon target login --token \"$(cat .data/admin.token)\"",
		a.targetSetCmd(), a.targetShowCmd(), a.targetLoginCmd(), a.targetLogoutCmd(), a.targetInfoCmd())
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
				LoggedIn: a.cfg.Token != "" || a.cfg.Session != nil, Tenant: a.cfg.Tenant, Project: a.cfg.Project, ConfigFile: a.cfgPath}
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
			} else if cert == "" && a.cfg.Fingerprint != "" {
				cert = "pinned CA, SHA-256 " + client.FormatFingerprint(a.cfg.Fingerprint)
			} else if cert == "" {
				cert = "system roots"
			}
			login := "no token"
			if v.LoggedIn {
				login = "token set"
			}
			if s := a.cfg.Session; s != nil {
				login = "password login, access token until " + s.Expires.Local().Format("2006-01-02 15:04:05") + " (refreshed as needed)"
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

func (a *app) targetInfoCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "info",
		Short:   "Show the target controller's version (needs no token)",
		Example: "  photon target info",
		Args:    cobra.NoArgs,
		RunE: a.connected(func(ctx context.Context, c *client.Client, args []string) error {
			info, err := c.Info(ctx)
			if err != nil {
				return err
			}
			return a.printInfo(info, "Target", c.BaseURL())
		}),
	}
}

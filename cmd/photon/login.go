package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/client"
)

// stdin is where prompts read answers (tests replace it).
var stdin io.Reader = os.Stdin

func (a *app) targetSetCmd() *cobra.Command {
	var caCert, fingerprint string
	var noCertCheck bool
	cmd := &cobra.Command{
		Use:   "set URL",
		Short: "Set the controller URL and how to trust its certificate",
		Long: `Set the controller URL and save it in the configuration file.

The controller serves HTTPS with a certificate signed by its own CA
(DATA_DIR/ca.crt). Name that file with --ca-cert, or give the CA's SHA-256
fingerprint with --fingerprint. With neither, photon shows the fingerprint
of the CA the controller presents and asks whether to trust it; the answer
is pinned in the configuration file. With -n it refuses instead: give
--ca-cert or --fingerprint. -c/--nocertcheck turns verification off (tests
only). Changing the target forgets the login and the current tenant and
project, which belong to the old controller.`,
		Example: `  photon target set https://127.0.0.1:9000 --ca-cert .data/ca.crt
  photon target set https://10.0.0.5:9000          # shows the fingerprint, asks
  photon -n target set https://10.0.0.5:9000 --fingerprint 3F:A2:...`,
		Args: exactArgs(1, "URL"),
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			n := 0
			for _, set := range []bool{caCert != "", fingerprint != "", noCertCheck} {
				if set {
					n++
				}
			}
			if n > 1 {
				return usagef("--ca-cert, --fingerprint and --nocertcheck exclude each other")
			}
			url := args[0]
			if _, err := client.New(url); err != nil {
				return &usageError{err}
			}
			if fingerprint != "" {
				if _, err := client.New(url, client.WithFingerprint(fingerprint)); err != nil {
					return &usageError{err}
				}
				fingerprint = client.NormalizeFingerprint(fingerprint)
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
			ctx, cancel := context.WithTimeout(cmd.Context(), 10*time.Second)
			defer cancel()
			if n == 0 && strings.HasPrefix(url, "https://") || n == 0 && !strings.Contains(url, "://") {
				fp, err := a.askTrust(ctx, url)
				if err != nil {
					return err
				}
				fingerprint = fp
			}
			if url != a.file.Target {
				a.file = config{}
			}
			a.file.Target, a.file.CACert, a.file.NoCertCheck, a.file.Fingerprint = url, caCert, noCertCheck, fingerprint
			if err := a.save(); err != nil {
				return err
			}
			a.cfg = a.file.withEnv()
			// Check that the controller answers; a target that is down is still saved.
			if c, err := a.client(); err == nil {
				if _, err := c.Info(ctx); errors.Is(err, client.ErrFingerprintMismatch) {
					a.file.Fingerprint = ""
					_ = a.save()
					return fmt.Errorf("%s: %w", url, err)
				} else if err != nil {
					fmt.Fprintf(a.stderr, "photon: warning: %s does not answer: %v\n", url, err)
				}
			}
			a.say("Target set to %s", url)
			return nil
		}),
	}
	cmd.Flags().StringVar(&caCert, "ca-cert", "", "PEM file of the CA that signs the controller's certificate, e.g. DATA_DIR/ca.crt")
	cmd.Flags().StringVar(&fingerprint, "fingerprint", "", "SHA-256 fingerprint of the controller's CA certificate to pin (hex, colons allowed)")
	cmd.Flags().BoolVarP(&noCertCheck, "nocertcheck", "c", false, "do not verify the controller's certificate (insecure)")
	return cmd
}

// askTrust decides how to trust a controller given no CA: not at all if
// the system roots already verify it (""), else by the fingerprint a
// person accepts. Non-interactive runs refuse.
func (a *app) askTrust(ctx context.Context, url string) (string, error) {
	if c, err := client.New(url); err == nil {
		if _, err := c.Info(ctx); err == nil {
			return "", nil
		}
	}
	pc, err := client.FetchCertificate(ctx, url)
	if err != nil {
		return "", fmt.Errorf("%w; to set the target anyway, give --ca-cert FILE or --fingerprint SHA256", err)
	}
	if a.nonInteractive || a.jsonOut() {
		return "", usagef("the certificate of %s is not signed by a CA this machine trusts (its CA's SHA-256 fingerprint is %s); "+
			"refusing to trust it without a prompt: give --ca-cert FILE or --fingerprint SHA256", url, client.FormatFingerprint(pc.Fingerprint))
	}
	what := "certificate"
	if pc.IsCA {
		what = "CA certificate"
	}
	fmt.Fprintf(a.stdout, "The controller at %s presents a %s that this machine does not trust:\n  subject: %s\n  SHA-256: %s\n"+
		"Compare it with the controller's (openssl x509 -in DATA_DIR/ca.crt -noout -fingerprint -sha256).\nTrust it and pin it in %s? [y/N] ",
		url, what, pc.Subject, client.FormatFingerprint(pc.Fingerprint), a.cfgPath)
	answer, _ := bufio.NewReader(stdin).ReadString('\n')
	switch strings.ToLower(strings.TrimSpace(answer)) {
	case "y", "yes":
		return pc.Fingerprint, nil
	}
	return "", fmt.Errorf("certificate not trusted; target not set")
}

// saveSession writes a refreshed session back to the configuration file
// (when it is for the saved target).
func (a *app) saveSession(s client.Session) {
	if a.cfg.Target != a.file.Target || a.file.Session == nil {
		return
	}
	a.file.Session = &s
	if err := a.save(); err != nil {
		fmt.Fprintf(a.stderr, "photon: warning: save the refreshed login: %v\n", err)
	}
}

func (a *app) targetLoginCmd() *cobra.Command {
	var token, username, password string
	cmd := &cobra.Command{
		Use:   "login -u USER -p PASSWORD | --token TOKEN",
		Short: "Log in to the target with a user's password, or save a bearer token",
		Long: `Log in to the target. With -u and -p the controller's token endpoint
issues a short-lived access token and a refresh token; both are saved, and
the access token is refreshed transparently as it expires. With --token a
bearer token is saved as it is (the controller's admin token is in
DATA_DIR/admin.token). A PASSWORD or TOKEN of "-" is read from standard input.`,
		Example: `  photon target login -u alice -p 's3cret-pass'
  photon target login -u alice -p - < password.txt
  photon target login --token "$(cat .data/admin.token)"`,
		Args: cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			switch {
			case username != "" && token != "":
				return usagef("-u/-p and --token exclude each other")
			case username == "" && token == "":
				return usagef("give -u USER -p PASSWORD, or --token TOKEN")
			case username != "" && password == "":
				return usagef("-u needs -p PASSWORD (\"-\" reads it from standard input)")
			}
			if a.cfg.Target != a.file.Target {
				// The target comes from PHOTON_TARGET: the login is saved for it.
				a.file = config{Target: a.cfg.Target, CACert: a.cfg.CACert, Fingerprint: a.cfg.Fingerprint}
			}
			a.cfg.Token, a.cfg.Session = "", nil
			if username != "" {
				pw, err := readSecret(password)
				if err != nil {
					return err
				}
				c, err := a.client()
				if err != nil {
					return err
				}
				tok, err := c.Login(cmd.Context(), username, pw)
				if err != nil {
					return err
				}
				s := client.SessionFrom(tok, time.Now())
				a.file.Token, a.file.Session = "", &s
			} else {
				t := token
				if token == "-" {
					b, err := io.ReadAll(io.LimitReader(stdin, 64<<10))
					if err != nil {
						return fmt.Errorf("read token: %w", err)
					}
					t = string(b)
				}
				if t = strings.TrimSpace(t); t == "" {
					return usagef("empty token")
				}
				a.cfg.Token = t
				c, err := a.client()
				if err != nil {
					return err
				}
				// Any call that needs a token tells whether this one is accepted.
				if _, err := c.SystemStatus(cmd.Context()); err != nil {
					return err
				}
				a.file.Token, a.file.Session = t, nil
			}
			if err := a.save(); err != nil {
				return err
			}
			who := "with a token"
			if username != "" {
				who = "as " + username
			}
			a.say("Logged in to %s %s", a.cfg.Target, who)
			return nil
		}),
	}
	cmd.Flags().StringVarP(&token, "token", "t", "", "bearer token")
	cmd.Flags().StringVarP(&username, "username", "u", "", "user name")
	cmd.Flags().StringVarP(&password, "password", "p", "", "password (\"-\": read from standard input)")
	return cmd
}

func (a *app) targetLogoutCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "logout",
		Short:   "Forget the saved login; a password login's refresh token is revoked",
		Example: "  photon target logout",
		Args:    cobra.NoArgs,
		RunE: a.action(func(cmd *cobra.Command, args []string) error {
			if s := a.file.Session; s != nil && a.cfg.Target == a.file.Target {
				if c, err := a.client(); err == nil {
					if err := c.Revoke(cmd.Context(), s.RefreshToken); err != nil {
						fmt.Fprintf(a.stderr, "photon: warning: revoke the session: %v\n", err)
					}
				}
			}
			a.file.Token, a.file.Session = "", nil
			if err := a.save(); err != nil {
				return err
			}
			a.say("Logged out")
			return nil
		}),
	}
}

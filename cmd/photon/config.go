package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/photon-cloud/photon/client"
)

// Environment variables that override the saved configuration.
const (
	envConfig = "PHOTON_CONFIG"  // path of the configuration file
	envTarget = "PHOTON_TARGET"  // controller URL
	envToken  = "PHOTON_TOKEN"   // bearer token
	envCACert = "PHOTON_CA_CERT" // CA certificate file
)

// configFileName is the file in the home directory that holds the configuration.
const configFileName = ".photon-config"

// ref names a tenant or project remembered by `tenant set` / `project set`.
type ref struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// config is what ~/.photon-config holds.
type config struct {
	// Target is the controller URL, e.g. "https://127.0.0.1:9000".
	Target string `json:"target,omitempty"`
	// Token is the bearer token from `photon target login`.
	Token string `json:"token,omitempty"`
	// CACert is the path of the CA certificate that signs the controller's certificate.
	CACert string `json:"caCert,omitempty"`
	// NoCertCheck turns certificate verification off (target set -c).
	NoCertCheck bool `json:"noCertCheck,omitempty"`
	// Fingerprint pins the controller's CA (SHA-256, hex) when no CA file is
	// given: accepted by a person at 'target set' or given with --fingerprint.
	Fingerprint string `json:"fingerprint,omitempty"`
	// Session holds the tokens of 'target login -u -p'; the access token is
	// refreshed transparently and saved back.
	Session *client.Session `json:"session,omitempty"`
	// Tenant and Project are the current ones, used when -t/--tenant is omitted.
	Tenant  *ref `json:"tenant,omitempty"`
	Project *ref `json:"project,omitempty"`
}

// configPath is $PHOTON_CONFIG, else ~/.photon-config.
func configPath() (string, error) {
	if p := os.Getenv(envConfig); p != "" {
		return p, nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find the configuration file: %w (set HOME or %s)", err, envConfig)
	}
	return filepath.Join(home, configFileName), nil
}

// loadConfig reads the configuration at path; a missing file is an empty configuration.
func loadConfig(path string) (config, error) {
	var c config
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return c, nil
	}
	if err != nil {
		return c, fmt.Errorf("read configuration: %w", err)
	}
	if err := json.Unmarshal(b, &c); err != nil {
		return c, fmt.Errorf("configuration %s: %w", path, err)
	}
	return c, nil
}

// saveConfig writes c to path with mode 0600, replacing the file atomically.
func saveConfig(path string, c config) error {
	b, err := json.MarshalIndent(c, "", "  ")
	if err != nil {
		return err
	}
	b = append(b, '\n')
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("save configuration: %w", err)
	}
	f, err := os.CreateTemp(dir, filepath.Base(path)+".tmp-*")
	if err != nil {
		return fmt.Errorf("save configuration: %w", err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // a no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("save configuration: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("save configuration: %w", err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("save configuration: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("save configuration: %w", err)
	}
	return nil
}

// withEnv returns c with PHOTON_TARGET, PHOTON_TOKEN and PHOTON_CA_CERT applied.
// A target from the environment that differs from the saved one drops the
// saved token, CA and current tenant/project: they belong to the other controller.
func (c config) withEnv() config {
	if t := os.Getenv(envTarget); t != "" && t != c.Target {
		c = config{Target: t}
	}
	if t := os.Getenv(envToken); t != "" {
		c.Token, c.Session = t, nil
	}
	if p := os.Getenv(envCACert); p != "" {
		c.CACert = p
	}
	return c
}

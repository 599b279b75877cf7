package photontest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// Controller is a `photond controller` process started by a test.
type Controller struct {
	// URL is where it serves, e.g. "https://127.0.0.1:43121".
	URL string
	// CACert is the path of its CA certificate (DataDir/ca.crt).
	CACert string
	// Token is its admin token (DataDir/admin.token).
	Token string
	// DataDir holds its etcd, certificates and token.
	DataDir string

	sub  string // photond subcommand: controller (default) or dev
	args []string
	env  []string
	cmd  *exec.Cmd
	out  *bytes.Buffer
	done chan struct{}
}

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

// Binary returns the path of bin/photon or bin/photond. `make test` sets
// PHOTON_BIN_DIR to the freshly built bin/; a plain `go test` builds them
// once into a temporary directory.
func Binary(t testing.TB, name string) string {
	t.Helper()
	if d := os.Getenv("PHOTON_BIN_DIR"); d != "" {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("PHOTON_BIN_DIR: %v (run `make build`)", err)
		}
		return p
	}
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "photon-bin-")
		if buildErr != nil {
			return
		}
		root, err := moduleRoot()
		if err != nil {
			buildErr = err
			return
		}
		for _, n := range []string{"photon", "photond"} {
			cmd := exec.Command("go", "build", "-o", filepath.Join(buildDir, n), "./cmd/"+n)
			cmd.Dir = root
			if out, err := cmd.CombinedOutput(); err != nil {
				buildErr = fmt.Errorf("go build %s: %v\n%s", n, err, out)
				return
			}
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, name)
}

func moduleRoot() (string, error) {
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		return "", fmt.Errorf("go env GOMOD: %w", err)
	}
	mod := strings.TrimSpace(string(out))
	if mod == "" || mod == os.DevNull {
		return "", fmt.Errorf("not inside the photon module")
	}
	return filepath.Dir(mod), nil
}

// StartController runs `photond controller --data-dir dataDir --listen
// 127.0.0.1:0 args...` with extra environment env (e.g. PHOTON_FAILPOINTS=...),
// waits until it serves, and stops it when the test ends. An empty dataDir
// means a new temporary one.
func StartController(t testing.TB, dataDir string, env []string, args ...string) *Controller {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	c := &Controller{DataDir: dataDir, CACert: filepath.Join(dataDir, "ca.crt"), args: args, env: env}
	c.Start(t)
	t.Cleanup(func() { c.Stop(t) })
	return c
}

// StartDev is StartController for `photond dev` (controller and local hosts).
func StartDev(t testing.TB, dataDir string, args ...string) *Controller {
	t.Helper()
	if dataDir == "" {
		dataDir = t.TempDir()
	}
	// The simulated host unless the caller picks a driver: photond dev
	// would run real QEMU VMs where QEMU works (driver/qemu has its own
	// tests).
	if !slices.ContainsFunc(args, func(a string) bool { return strings.HasPrefix(a, "--driver") }) {
		args = append([]string{"--driver", "fake"}, args...)
	}
	c := &Controller{DataDir: dataDir, CACert: filepath.Join(dataDir, "ca.crt"), sub: "dev", args: args}
	c.Start(t)
	t.Cleanup(func() { c.Stop(t) })
	return c
}

// Start (re)starts the process and waits until it serves.
func (c *Controller) Start(t testing.TB) {
	t.Helper()
	urlFile := filepath.Join(c.DataDir, "controller.url")
	_ = os.Remove(urlFile)
	sub := c.sub
	if sub == "" {
		sub = "controller"
	}
	args := append([]string{sub, "--data-dir", c.DataDir, "--listen", "127.0.0.1:0"}, c.args...)
	c.cmd = exec.Command(Binary(t, "photond"), args...)
	c.cmd.Env = append(os.Environ(), c.env...)
	c.out = &bytes.Buffer{}
	c.cmd.Stdout, c.cmd.Stderr = c.out, c.out
	if os.Getenv("PHOTON_TEST_LOG") != "" {
		c.cmd.Stdout, c.cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := c.cmd.Start(); err != nil {
		t.Fatalf("start photond: %v", err)
	}
	c.done = make(chan struct{})
	go func() { _ = c.cmd.Wait(); close(c.done) }()
	deadline := time.Now().Add(60 * time.Second)
	for {
		if b, err := os.ReadFile(urlFile); err == nil && len(b) > 0 {
			c.URL = strings.TrimSpace(string(b))
			break
		}
		select {
		case <-c.done:
			t.Fatalf("photond exited before serving: %v\n%s", c.cmd.ProcessState, c.out)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("photond did not serve within 60s\n%s", c.out)
		}
	}
	tok, err := os.ReadFile(filepath.Join(c.DataDir, "admin.token"))
	if err != nil {
		t.Fatalf("admin token: %v", err)
	}
	c.Token = strings.TrimSpace(string(tok))
}

// Wait blocks until the process exits (e.g. after an injected crash) or ctx ends.
func (c *Controller) Wait(ctx context.Context) error {
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Pid is the process's id.
func (c *Controller) Pid() int { return c.cmd.Process.Pid }

// Output is what the process printed so far (when PHOTON_TEST_LOG is unset).
func (c *Controller) Output() string { return c.out.String() }

// Kill sends SIGKILL and waits for the process to exit.
func (c *Controller) Kill(t testing.TB) {
	t.Helper()
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	_ = c.cmd.Process.Kill()
	<-c.done
}

// Stop sends SIGTERM, waits up to 20 s, then kills.
func (c *Controller) Stop(t testing.TB) {
	t.Helper()
	if c.cmd == nil || c.cmd.Process == nil {
		return
	}
	select {
	case <-c.done:
		return
	default:
	}
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(20 * time.Second):
		t.Errorf("photond did not stop on SIGTERM within 20s; killing\n%s", c.out)
		c.Kill(t)
	}
}

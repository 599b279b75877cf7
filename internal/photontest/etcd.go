package photontest

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/photon-cloud/photon/internal/store"
)

// Logger is a logger for tests: quiet unless PHOTON_TEST_LOG is set.
func Logger(t testing.TB) *slog.Logger {
	if os.Getenv("PHOTON_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// EmbeddedEtcd starts an embedded etcd member in a temp dir and returns its endpoint.
func EmbeddedEtcd(t testing.TB) string {
	t.Helper()
	e, err := store.StartEmbedded(context.Background(), filepath.Join(t.TempDir(), "etcd"), Logger(t))
	if err != nil {
		t.Fatalf("embedded etcd: %v", err)
	}
	t.Cleanup(e.Close)
	return e.Endpoint
}

// EtcdBinary returns the path of a separately installed etcd server
// (Debian's etcd-server, installed by `make test`), or "" if there is none.
func EtcdBinary() string {
	for _, p := range []string{os.Getenv("PHOTON_ETCD_BIN"), "/usr/bin/etcd"} {
		if p == "" {
			continue
		}
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("etcd"); err == nil {
		return p
	}
	return ""
}

// ExternalEtcd starts an etcd server as a separate process on free loopback
// ports and returns its client endpoint. Without an etcd binary the test
// fails, unless PHOTON_ALLOW_NO_ETCD is set, in which case it is skipped
// with the reason printed: CI installs etcd, so it never skips there.
func ExternalEtcd(t testing.TB) string {
	t.Helper()
	bin := EtcdBinary()
	if bin == "" {
		if os.Getenv("PHOTON_ALLOW_NO_ETCD") != "" {
			t.Skip("no etcd binary (install etcd-server: make deps)")
		}
		t.Fatal("no etcd binary: run `make deps` (installs Debian's etcd-server)")
	}
	dir := t.TempDir()
	client, peer := freePort(t), freePort(t)
	cu := fmt.Sprintf("http://127.0.0.1:%d", client)
	pu := fmt.Sprintf("http://127.0.0.1:%d", peer)
	cmd := exec.Command(bin,
		"--name", "ext", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", cu, "--advertise-client-urls", cu,
		"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
		"--initial-cluster", "ext="+pu, "--log-level", "error")
	logf, _ := os.Create(filepath.Join(dir, "etcd.log"))
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start etcd: %v", err)
	}
	t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		s, err := store.Connect(ctx, []string{cu})
		if err == nil {
			s.Close()
			return cu
		}
		if ctx.Err() != nil {
			b, _ := os.ReadFile(filepath.Join(dir, "etcd.log"))
			t.Fatalf("external etcd not ready: %v\n%s", err, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Store connects to endpoint and closes the client at cleanup.
func Store(t testing.TB, endpoint string) *store.Store {
	t.Helper()
	s, err := store.Connect(context.Background(), []string{endpoint})
	if err != nil {
		t.Fatalf("connect %s: %v", endpoint, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// EtcdModes names both ways of running etcd, for tests that run each way.
var EtcdModes = []struct {
	Name  string
	Start func(testing.TB) string
}{
	{"embedded", EmbeddedEtcd},
	{"external", ExternalEtcd},
}

func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

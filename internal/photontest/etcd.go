package photontest

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
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
	return StartEtcd(t, EtcdOptions{}).Endpoint
}

// EtcdOptions configure an etcd process (StartEtcd).
type EtcdOptions struct {
	// DataDir is its data directory; "" a new temporary one.
	DataDir string
	// Args are more flags, e.g. "--max-request-bytes", "65536".
	Args []string
}

// EtcdProcess is an etcd server run by a test as a process of its own,
// which the test can stop, pause and start again (faults).
type EtcdProcess struct {
	// Endpoint is its client URL, e.g. "http://127.0.0.1:40123".
	Endpoint string
	// DataDir is its data directory.
	DataDir string

	bin, logPath string
	args         []string
	cmd          *exec.Cmd
	done         chan struct{}
}

// StartEtcd starts an etcd server process on free loopback ports, waits
// until it answers and kills it when the test ends (see ExternalEtcd for
// a missing binary).
func StartEtcd(t testing.TB, o EtcdOptions) *EtcdProcess {
	t.Helper()
	bin := EtcdBinary()
	if bin == "" {
		if os.Getenv("PHOTON_ALLOW_NO_ETCD") != "" {
			t.Skip("no etcd binary (install etcd-server: make deps)")
		}
		t.Fatal("no etcd binary: run `make deps` (installs Debian's etcd-server)")
	}
	dir := t.TempDir()
	if o.DataDir == "" {
		o.DataDir = filepath.Join(dir, "data")
	}
	client, peer := freePort(t), freePort(t)
	cu := fmt.Sprintf("http://127.0.0.1:%d", client)
	pu := fmt.Sprintf("http://127.0.0.1:%d", peer)
	e := &EtcdProcess{Endpoint: cu, DataDir: o.DataDir, bin: bin, logPath: filepath.Join(dir, "etcd.log"),
		args: append([]string{"--name", "ext", "--data-dir", o.DataDir,
			"--listen-client-urls", cu, "--advertise-client-urls", cu,
			"--listen-peer-urls", pu, "--initial-advertise-peer-urls", pu,
			"--initial-cluster", "ext=" + pu, "--log-level", "error"}, o.Args...)}
	e.Start(t)
	t.Cleanup(func() { e.Kill() })
	return e
}

// Start starts the process (again, on the same ports and data) and waits
// until it answers.
func (e *EtcdProcess) Start(t testing.TB) {
	t.Helper()
	e.cmd = exec.Command(e.bin, e.args...)
	logf, err := os.OpenFile(e.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	e.cmd.Stdout, e.cmd.Stderr = logf, logf
	if err := e.cmd.Start(); err != nil {
		logf.Close()
		t.Fatalf("start etcd: %v", err)
	}
	e.done = make(chan struct{})
	go func() { _ = e.cmd.Wait(); logf.Close(); close(e.done) }()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for {
		s, err := store.Connect(ctx, []string{e.Endpoint})
		if err == nil {
			s.Close()
			return
		}
		select {
		case <-e.done:
			t.Fatalf("etcd exited: %v\n%s", e.cmd.ProcessState, e.Log())
		default:
		}
		if ctx.Err() != nil {
			t.Fatalf("external etcd not ready: %v\n%s", err, e.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Kill kills the process (SIGKILL) and waits for it to end.
func (e *EtcdProcess) Kill() {
	if e.cmd == nil || e.cmd.Process == nil {
		return
	}
	_ = e.cmd.Process.Signal(syscall.SIGCONT) // a paused process ends too
	_ = e.cmd.Process.Kill()
	<-e.done
}

// Pause stops the process (SIGSTOP): it holds its connections and
// answers nothing, as a hung or partitioned etcd. It returns once the
// kernel shows the process stopped: the signal is delivered
// asynchronously, and on a loaded machine etcd answered a request after
// kill(2) had returned.
func (e *EtcdProcess) Pause() error {
	if err := e.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
		return err
	}
	stat := fmt.Sprintf("/proc/%d/stat", e.cmd.Process.Pid)
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(time.Millisecond) {
		b, err := os.ReadFile(stat)
		if err != nil {
			return err
		}
		// "pid (comm) S ...": the state follows the last ')'.
		if i := bytes.LastIndexByte(b, ')'); i >= 0 && i+2 < len(b) && (b[i+2] == 'T' || b[i+2] == 't') {
			return nil
		}
	}
	return fmt.Errorf("etcd (pid %d) not stopped 5 s after SIGSTOP", e.cmd.Process.Pid)
}

// Resume continues a paused process (SIGCONT).
func (e *EtcdProcess) Resume() error { return e.cmd.Process.Signal(syscall.SIGCONT) }

// Exited reports whether the process has ended (e.g. etcd exits when it
// cannot write its data).
func (e *EtcdProcess) Exited() bool {
	select {
	case <-e.done:
		return true
	default:
		return false
	}
}

// Log is what the process wrote.
func (e *EtcdProcess) Log() string {
	b, _ := os.ReadFile(e.logPath)
	return string(b)
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

package photontest

import (
	"bytes"
	"os"
	"os/exec"
	"syscall"
	"testing"
	"time"
)

// AgentProcess is a `photond agent` process started by a test.
type AgentProcess struct {
	DataDir string
	args    []string
	cmd     *exec.Cmd
	out     *bytes.Buffer
	done    chan struct{}
}

// StartAgentProcess runs `photond agent --controller URL --ca-cert CA
// --data-dir dir args...` (add --join-token on first start) and stops it
// when the test ends.
func StartAgentProcess(t testing.TB, c *Controller, dir string, args ...string) *AgentProcess {
	t.Helper()
	a := &AgentProcess{DataDir: dir, args: append([]string{"agent", "--controller", c.URL, "--ca-cert", c.CACert, "--data-dir", dir}, args...)}
	a.Start(t)
	t.Cleanup(func() { a.Stop(t) })
	return a
}

// Start (re)starts the process with its arguments less any --join-token
// on restarts (the identity is in the data dir by then).
func (a *AgentProcess) Start(t testing.TB) {
	t.Helper()
	a.cmd = exec.Command(Binary(t, "photond"), a.args...)
	a.out = &bytes.Buffer{}
	a.cmd.Stdout, a.cmd.Stderr = a.out, a.out
	if os.Getenv("PHOTON_TEST_LOG") != "" {
		a.cmd.Stdout, a.cmd.Stderr = os.Stderr, os.Stderr
	}
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start agent: %v", err)
	}
	a.done = make(chan struct{})
	go func() { _ = a.cmd.Wait(); close(a.done) }()
	for i, s := range a.args {
		if s == "--join-token" && i+1 < len(a.args) {
			a.args = append(a.args[:i:i], a.args[i+2:]...)
			break
		}
	}
}

// Kill sends SIGKILL and waits for the process to exit.
func (a *AgentProcess) Kill() {
	if a.cmd != nil && a.cmd.Process != nil {
		_ = a.cmd.Process.Kill()
		<-a.done
	}
}

// Exited reports whether the process has exited.
func (a *AgentProcess) Exited() bool {
	select {
	case <-a.done:
		return true
	default:
		return false
	}
}

// Output is what it printed.
func (a *AgentProcess) Output() string { return a.out.String() }

// Stop sends SIGTERM, waits up to 10 s, then kills.
func (a *AgentProcess) Stop(t testing.TB) {
	if a.cmd == nil || a.cmd.Process == nil || a.Exited() {
		return
	}
	_ = a.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-a.done:
	case <-time.After(10 * time.Second):
		a.Kill()
	}
}

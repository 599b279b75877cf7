package main_test

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/photon-cloud/photon/internal/photontest"
)

// runPhotond starts photond with args and returns a function that waits
// up to timeout for it to exit, giving its output, exit error and how long
// it ran (killing it if it did not exit).
func runPhotond(t *testing.T, args ...string) (*exec.Cmd, func(timeout time.Duration) (string, error, time.Duration)) {
	t.Helper()
	cmd := exec.Command(photontest.Binary(t, "photond"), args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() { _ = cmd.Process.Kill() })
	return cmd, func(timeout time.Duration) (string, error, time.Duration) {
		select {
		case err := <-done:
			return out.String(), err, time.Since(start)
		case <-time.After(timeout):
			_ = cmd.Process.Kill()
			<-done
			t.Fatalf("photond %s still runs after %s; killed. Output:\n%s", strings.Join(args, " "), timeout, out.String())
			return "", nil, 0
		}
	}
}

// TestDataDirInUse: a second photond on a data dir in use fails at once,
// naming the pid that holds it (issue 26: it hung forever on etcd's
// database lock, with no message). For an agent the data dir is held by
// this test, as a running agent would.
func TestDataDirInUse(t *testing.T) {
	for _, sub := range []string{"controller", "dev", "agent"} {
		t.Run(sub, func(t *testing.T) {
			dir := t.TempDir()
			var holder int
			switch sub {
			case "controller":
				c := photontest.StartController(t, dir, nil)
				holder = c.Pid()
			case "dev":
				c := photontest.StartDev(t, dir)
				holder = c.Pid()
			case "agent":
				f, err := os.OpenFile(filepath.Join(dir, "photond.lock"), os.O_RDWR|os.O_CREATE, 0o600)
				if err != nil {
					t.Fatal(err)
				}
				defer f.Close()
				if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
					t.Fatal(err)
				}
				holder = os.Getpid()
				fmt.Fprintf(f, "%d\n", holder)
			}
			args := []string{sub, "--data-dir", dir}
			if sub == "agent" {
				args = append(args, "--controller", "https://127.0.0.1:1", "--driver", "fake")
			} else {
				args = append(args, "--listen", "127.0.0.1:0")
			}
			_, wait := runPhotond(t, args...)
			out, err, took := wait(10 * time.Second)
			t.Logf("second photond %s: %v after %s: %s", sub, err, took.Round(time.Millisecond), strings.TrimSpace(out))
			if err == nil {
				t.Errorf("second photond exited 0")
			}
			if want := fmt.Sprintf("data dir %s in use by pid %d", dir, holder); !strings.Contains(out, want) {
				t.Errorf("output %q does not say %q", out, want)
			}
			if took > 2*time.Second {
				t.Errorf("second photond took %s to fail, want under 2s", took)
			}
		})
	}
}

// TestSignalEndsStartup: photond stuck at start (here: etcd's database
// held locked by another process, which made it wait forever) ends on
// SIGTERM: at once on a second signal, else when --shutdown-timeout
// passes after the first (issue 26: SIGINT and SIGTERM were ignored).
func TestSignalEndsStartup(t *testing.T) {
	for _, tc := range []struct {
		name    string
		signals int
		within  time.Duration
	}{
		{"one signal, timeout", 1, 2*time.Second + 2*time.Second},
		{"two signals", 2, time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			snap := filepath.Join(dir, "etcd", "member-data", "member", "snap")
			if err := os.MkdirAll(snap, 0o700); err != nil {
				t.Fatal(err)
			}
			db, err := os.OpenFile(filepath.Join(snap, "db"), os.O_RDWR|os.O_CREATE, 0o600)
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if err := syscall.Flock(int(db.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
				t.Fatal(err)
			}
			args := []string{"controller", "--data-dir", dir, "--listen", "127.0.0.1:0"}
			if tc.signals == 1 {
				args = append(args, "--shutdown-timeout", "2s")
			}
			cmd, wait := runPhotond(t, args...)
			// Wait until it holds its data dir (and so waits on etcd), or
			// a while for a photond that takes no lock.
			for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				b, _ := os.ReadFile(filepath.Join(dir, "photond.lock"))
				if strings.TrimSpace(string(b)) == strconv.Itoa(cmd.Process.Pid) {
					break
				}
			}
			time.Sleep(500 * time.Millisecond)
			var sent time.Time
			for range tc.signals {
				sent = time.Now()
				if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
					out, werr, _ := wait(time.Second)
					t.Fatalf("signal: %v; photond ended before it (%v): %s", err, werr, out)
				}
				time.Sleep(100 * time.Millisecond)
			}
			out, err, _ := wait(tc.within + 10*time.Second)
			took := time.Since(sent)
			t.Logf("exit %v %s after the last signal: %s", err, took.Round(time.Millisecond), strings.TrimSpace(out))
			if took > tc.within {
				t.Errorf("photond ended %s after the last signal, want within %s", took, tc.within)
			}
			if err == nil {
				t.Errorf("a forced stop exited 0")
			}
		})
	}
}

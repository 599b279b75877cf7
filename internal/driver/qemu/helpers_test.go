package qemu

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// The test image is built once per machine and script version (it takes a
// few seconds) into the temporary directory, and shared by the packages
// that need it.
var (
	imageOnce sync.Once
	imagePath string
	imageErr  error

	accelOnce sync.Once
	accel     string
	accelErr  error
)

// needQEMU skips the test, saying why, when QEMU is not installed (make
// test installs it, so CI runs these tests).
func needQEMU(t testing.TB) {
	t.Helper()
	for _, bin := range []string{"qemu-system-x86_64", "qemu-img"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("%s is not installed (scripts/install-deps.sh installs it): %v", bin, err)
		}
	}
}

// testAccel probes acceleration once for the package.
func testAccel(t testing.TB) string {
	t.Helper()
	needQEMU(t)
	accelOnce.Do(func() {
		accel, accelErr = Probe(context.Background(), "")
	})
	if accelErr != nil {
		t.Fatalf("probe: %v", accelErr)
	}
	return accel
}

// TestImage returns the path of the test guest image built by
// scripts/build-test-image.sh, building it if needed.
func testImage(t testing.TB) string {
	t.Helper()
	needQEMU(t)
	imageOnce.Do(func() { imagePath, imageErr = buildTestImage() })
	if imageErr != nil {
		t.Fatalf("test image: %v", imageErr)
	}
	return imagePath
}

func buildTestImage() (string, error) {
	script, err := filepath.Abs("../../../scripts/build-test-image.sh")
	if err != nil {
		return "", err
	}
	b, err := os.ReadFile(script)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(b)
	out := filepath.Join(os.TempDir(), "photon-test-image-"+hex.EncodeToString(sum[:6])+".qcow2")
	if _, err := os.Stat(out); err == nil {
		return out, nil
	}
	tmp := fmt.Sprintf("%s.%d.qcow2", strings.TrimSuffix(out, ".qcow2"), os.Getpid())
	cmd := exec.Command("bash", script, tmp)
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("%s: %v\n%s", script, err, b)
	}
	if err := os.Rename(tmp, out); err != nil {
		return "", err
	}
	return out, nil
}

// newTestDriver makes a driver over dir with test settings.
func newTestDriver(t testing.TB, dir string, mod ...func(*Config)) *Driver {
	t.Helper()
	cfg := Config{DataDir: dir, Accel: testAccel(t), StopTimeout: 5 * time.Second}
	for _, m := range mod {
		m(&cfg)
	}
	d, err := New(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	runDirsMu.Lock()
	runDirs = append(runDirs, d.runDir)
	runDirsMu.Unlock()
	return d
}

var (
	runDirsMu sync.Mutex
	runDirs   []string // of every test driver, for the leak check
)

// TestMain fails the package if a test left a QEMU process running (and
// kills it).
func TestMain(m *testing.M) {
	code := m.Run()
	runDirsMu.Lock()
	defer runDirsMu.Unlock()
	for _, dir := range runDirs {
		d := &Driver{runDir: dir}
		for _, pid := range d.ourProcesses() {
			fmt.Fprintf(os.Stderr, "leak: QEMU process %d of %s still runs; killing it\n", pid, dir)
			_ = syscallKill(pid)
			code = 1
		}
	}
	os.Exit(code)
}

// waitConsole waits until the VM's console has a line containing want and
// returns that line.
func waitConsole(t testing.TB, d *Driver, id, want string, timeout time.Duration) string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if line, ok := consoleLine(d, id, want); ok {
			return line
		}
		if time.Now().After(deadline) {
			b, _ := os.ReadFile(d.consolePath(id))
			t.Fatalf("console of %s has no %q after %s; it reads:\n%s", id, want, timeout, b)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func consoleLine(d *Driver, id, want string) (string, bool) {
	f, err := d.Console(id)
	if err != nil {
		return "", false
	}
	defer f.Close()
	s := bufio.NewScanner(f)
	for s.Scan() {
		if strings.Contains(s.Text(), want) {
			return strings.TrimSpace(s.Text()), true
		}
	}
	return "", false
}

// killQEMU kills a VM's QEMU with SIGKILL, behind the driver's back.
func killQEMU(t testing.TB, d *Driver, id string) {
	t.Helper()
	d.mu.Lock()
	v := d.vms[id]
	d.mu.Unlock()
	if v == nil || v.rec.PID <= 0 {
		t.Fatalf("kill %s: no running QEMU", id)
	}
	if err := syscallKill(v.rec.PID); err != nil {
		t.Fatalf("kill %s: %v", id, err)
	}
}

// leftovers lists the QEMU processes and files a driver's data dir still
// has for a VM.
func leftovers(d *Driver, id string) []string {
	var out []string
	for _, pid := range d.ourProcesses() {
		cmdline, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if strings.Contains(string(cmdline), qemuName(id)+"\x00") {
			out = append(out, fmt.Sprintf("process %d", pid))
		}
	}
	for _, p := range []string{d.qmpSocket(id), d.pidFile(id), d.vmDir(id)} {
		if _, err := os.Stat(p); err == nil {
			out = append(out, p)
		}
	}
	for _, ds := range d.cfg.Datastores {
		for _, sub := range []string{ephemeralDir, persistentDir} {
			entries, _ := os.ReadDir(filepath.Join(ds.Path, sub))
			for _, e := range entries {
				if strings.HasPrefix(e.Name(), id) {
					out = append(out, filepath.Join(ds.Path, sub, e.Name()))
				}
			}
		}
	}
	return out
}

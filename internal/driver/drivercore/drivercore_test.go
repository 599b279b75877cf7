package drivercore

import (
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
)

var (
	errInvalid    = driver.ErrInvalidSpec
	errTransition = driver.ErrTransition
	testErrs      = Errs{Prefix: "test"}
)

func TestValidID(t *testing.T) {
	for id, want := range map[string]bool{"a": true, "vm-1.x_y": true, "": false, ".a": false, "a/b": false} {
		if got := ValidID(id); got != want {
			t.Errorf("ValidID(%q) = %v, want %v", id, got, want)
		}
	}
	if err := testErrs.CheckID("VM", "a b"); !errors.Is(err, errInvalid) {
		t.Errorf("CheckID: %v", err)
	}
}

func TestPower(t *testing.T) {
	if got := MidPower(api.VMError, api.VMStarted); got != api.VMStopped {
		t.Errorf("MidPower(ERROR, STARTED) = %s", got)
	}
	if got := MidPower(api.VMSuspended, api.VMStarted); got != api.VMStarted {
		t.Errorf("MidPower(SUSPENDED, STARTED) = %s", got)
	}
	if err := testErrs.CheckPower("v", api.VMStopped, api.VMSuspended, false); !errors.Is(err, errTransition) {
		t.Errorf("CheckPower of a new VM: %v", err)
	}
	if err := testErrs.CheckPower("v", api.VMStarted, api.VMSuspended, true); err != nil {
		t.Errorf("CheckPower STARTED->SUSPENDED: %v", err)
	}
	if err := testErrs.CheckDiskChange("v", api.VMStarted, true, true); !errors.Is(err, errTransition) {
		t.Errorf("CheckDiskChange of a boot disk while STARTED: %v", err)
	}
}

func TestWriteFileAtomic(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "x.json")
	if err := WriteFileAtomic(path, ".tmp-*", WriteBytes([]byte("one"))); err != nil {
		t.Fatal(err)
	}
	boom := errors.New("boom")
	err := WriteFileAtomic(path, ".tmp-*", func(_ io.Writer) error { return boom })
	var we *WriteError
	if !errors.As(err, &we) || !errors.Is(err, boom) {
		t.Errorf("failed write: %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "one" {
		t.Errorf("file after failed write: %q", b)
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Errorf("%d files left, want 1", len(entries))
	}
}

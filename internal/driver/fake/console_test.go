package fake

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver"
)

func TestConsoleLogsChangesAndFollows(t *testing.T) {
	ctx := context.Background()
	d, err := New(Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := d.Console("nope"); !errors.Is(err, driver.ErrNotFound) {
		t.Fatalf("console of a missing VM: %v, want ErrNotFound", err)
	}
	spec := driver.VMSpec{VMDesired: api.VMDesired{ID: "vm-1", Name: "web-1", CPUCount: 1, MemoryMB: 512, Generation: 1,
		Disks: []api.DiskDesired{{ID: "d1", Datastore: "local", CapacityGB: 1}}}}
	if _, err := d.Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	r, err := d.Console("vm-1")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(r)
	if s := string(b); !strings.Contains(s, "web-1: created") || !strings.Contains(s, "disk d1 attached") {
		t.Fatalf("console after create:\n%s", s)
	}
	// Follow: the same reader returns what was written since.
	spec.Power, spec.Generation = api.VMStarted, 2
	if _, err := d.Ensure(ctx, spec); err != nil {
		t.Fatal(err)
	}
	b, _ = io.ReadAll(r)
	if s := string(b); s == "" || !strings.HasSuffix(s, "power STOPPED -> STARTED\n") || strings.Contains(s, "created") {
		t.Fatalf("console read again after start: %q", s)
	}
	if err := d.Crash("vm-1", "boom"); err != nil {
		t.Fatal(err)
	}
	if b, _ = io.ReadAll(r); !strings.Contains(string(b), "crashed: boom") {
		t.Fatalf("after crash: %q", b)
	}
	// Bounded: old lines go, a reader skips to what is kept.
	for i := range 1000 {
		spec.Generation = int64(3 + i)
		spec.Power = []string{api.VMStopped, api.VMStarted}[i%2]
		if _, err := d.Ensure(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	r2, _ := d.Console("vm-1")
	all, _ := io.ReadAll(r2)
	if len(all) > maxConsole || strings.Contains(string(all), "created") || !strings.HasSuffix(string(all), "\n") {
		t.Fatalf("console not bounded at line boundaries: %d bytes", len(all))
	}
	if b, _ = io.ReadAll(r); len(b) == 0 || len(b) > maxConsole {
		t.Fatalf("old reader after trimming read %d bytes", len(b))
	}
	if err := d.Delete(ctx, "vm-1"); err != nil {
		t.Fatal(err)
	}
	if n, err := r.Read(make([]byte, 10)); n != 0 || err != io.EOF {
		t.Fatalf("read after delete: %d, %v", n, err)
	}
}

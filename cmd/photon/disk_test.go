package main

import (
	"reflect"
	"strings"
	"testing"

	"github.com/photon-cloud/photon/api"
)

func TestDiskCommands(t *testing.T) {
	x := newInfraFake()
	f := computeFake(t, x)
	stdout, stderr, code := runInProject(t, f, true, "-n", "disk", "create", "-n", "data-2", "-f", "pd-fast", "-c", "50",
		"-a", "vm:web-1", "-s", "backup, db")
	if code != 0 || stdout != "disk-1\n" {
		t.Fatalf("disk create: %d %q %q", code, stdout, stderr)
	}
	var spec api.DiskCreateSpec
	x.body(t, "POST /v1/projects/p-1/disks", &spec)
	want := api.DiskCreateSpec{Name: "data-2", Kind: api.KindPersistentDisk, Flavor: "pd-fast", CapacityGB: 50,
		Affinities: []api.LocalitySpec{{Kind: "vm", ID: "vm-1"}}, Tags: []string{"backup", "db"}}
	if !reflect.DeepEqual(spec, want) {
		t.Errorf("spec %+v, want %+v", spec, want)
	}
	if _, stderr, code := runInProject(t, f, true, "disk", "create", "-n", "d", "-f", "pd-fast"); code != exitUsage {
		t.Errorf("disk create without -c: %d %q", code, stderr)
	}
	stdout, _, code = runInProject(t, f, true, "-n", "disk", "list")
	if code != 0 || stdout != "disk-1\tdata-1\tDETACHED\tpd-fast\t10\tds-1\t-\n" {
		t.Errorf("disk list -n: %d %q", code, stdout)
	}
	stdout, _, code = runInProject(t, f, true, "disk", "show", "data-1")
	if code != 0 || !strings.Contains(stdout, "10 GB") {
		t.Errorf("disk show: %d %q", code, stdout)
	}
	stdout, _, code = runInProject(t, f, true, "disk", "delete", "data-1")
	if code != 0 || stdout != "Deleted disk data-1, ID: disk-1\n" {
		t.Errorf("disk delete: %d %q", code, stdout)
	}
	_, stderr, code = runInProject(t, f, true, "disk", "show", "nosuch")
	if code != exitError || !strings.HasPrefix(stderr, "photon: DiskNotFound: ") {
		t.Errorf("unknown disk: %d %q", code, stderr)
	}
}

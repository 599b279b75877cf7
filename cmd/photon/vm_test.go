package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"testing"

	"github.com/photon-cloud/photon/api"
)

// infraFake records the state-changing calls a command makes and answers
// them with tasks that end at the first poll: COMPLETED, or ERROR when a
// failure is set for the call.
type infraFake struct {
	mu     sync.Mutex
	n      int
	final  map[string]api.Task
	calls  []string          // "POST /v1/vms/vm-1/start"
	bodies map[string][]byte // by call
	fail   map[string]api.Error
}

func newInfraFake() *infraFake {
	return &infraFake{final: map[string]api.Task{}, bodies: map[string][]byte{}, fail: map[string]api.Error{}}
}

// task answers a state-changing call with a QUEUED task on entity kind/id.
func (x *infraFake) task(op, kind, id string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		x.mu.Lock()
		defer x.mu.Unlock()
		call := r.Method + " " + r.URL.Path
		x.calls = append(x.calls, call)
		x.bodies[call] = body
		x.n++
		t := api.Task{Base: api.Base{ID: fmt.Sprintf("task-%d", x.n), Kind: api.KindTask}, Operation: op,
			State: api.TaskQueued, Entity: api.Entity{ID: id, Kind: kind},
			Steps: []api.Step{{Sequence: 0, Operation: op, State: api.TaskQueued}}}
		writeJSON(w, 201, t)
		t.State, t.Steps = api.TaskCompleted, []api.Step{{Sequence: 0, Operation: op, State: api.TaskCompleted}}
		if e, ok := x.fail[call]; ok {
			t.State, t.Steps = api.TaskError, []api.Step{{Sequence: 0, Operation: op, State: api.TaskError, Errors: []api.Error{e}}}
		}
		x.final[t.ID] = t
	}
}

// batch answers a batch create: VM NAME-i gets id vm-i and a task that
// ends at the first poll, ERROR when fail holds "task NAME-i"; "refuse
// NAME-i" refuses it at once instead.
func (x *infraFake) batch(w http.ResponseWriter, r *http.Request) {
	var spec api.VMBatchCreateSpec
	body, _ := io.ReadAll(r.Body)
	_ = json.Unmarshal(body, &spec)
	x.mu.Lock()
	defer x.mu.Unlock()
	call := r.Method + " " + r.URL.Path
	x.calls = append(x.calls, call)
	x.bodies[call] = body
	var out api.VMBatch
	for i := 1; i <= spec.Count; i++ {
		name := fmt.Sprintf("%s-%d", spec.Name, i)
		if e, ok := x.fail["refuse "+name]; ok {
			out.Items = append(out.Items, api.VMBatchItem{Name: name, Error: &e})
			continue
		}
		x.n++
		t := api.Task{Base: api.Base{ID: fmt.Sprintf("task-%d", x.n), Kind: api.KindTask}, Operation: "CREATE_VM",
			State: api.TaskQueued, Entity: api.Entity{ID: fmt.Sprintf("vm-%d", i), Kind: api.KindVM}}
		out.Items = append(out.Items, api.VMBatchItem{Name: name, Task: &t})
		final := t
		final.State = api.TaskCompleted
		if e, ok := x.fail["task "+name]; ok {
			final.State, final.Steps = api.TaskError, []api.Step{{Operation: "CREATE_VM", State: api.TaskError, Errors: []api.Error{e}}}
		}
		x.final[t.ID] = final
	}
	writeJSON(w, 200, out)
}

// body decodes the body of call into v.
func (x *infraFake) body(t *testing.T, call string, v any) {
	t.Helper()
	x.mu.Lock()
	b, ok := x.bodies[call]
	x.mu.Unlock()
	if !ok {
		t.Fatalf("no call %s; calls: %v", call, x.calls)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: body %q: %v", call, b, err)
	}
}

func (x *infraFake) callList() []string {
	x.mu.Lock()
	defer x.mu.Unlock()
	return append([]string(nil), x.calls...)
}

func (x *infraFake) getTask(w http.ResponseWriter, r *http.Request) {
	x.mu.Lock()
	t, ok := x.final[r.PathValue("id")]
	x.mu.Unlock()
	if !ok {
		writeJSON(w, 404, api.Error{Code: api.CodeTaskNotFound, Message: "no task"})
		return
	}
	writeJSON(w, 200, t)
}

// tasksByID answers GET /v1/tasks?ids=A,B (with or without wait): the
// tasks named, as they end (at once).
func (x *infraFake) tasksByID(w http.ResponseWriter, r *http.Request) {
	x.mu.Lock()
	defer x.mu.Unlock()
	out := []api.Task{}
	for id := range strings.SplitSeq(r.URL.Query().Get("ids"), ",") {
		if t, ok := x.final[id]; ok {
			out = append(out, t)
		}
	}
	writeJSON(w, 200, api.List[api.Task]{Items: out})
}

// list answers with items, filtered by ?name= when name is not nil.
func list[T any](items []T, name func(T) string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		out := []T{}
		for _, it := range items {
			if n := r.URL.Query().Get("name"); n == "" || name == nil || name(it) == n {
				out = append(out, it)
			}
		}
		writeJSON(w, 200, api.List[T]{Items: out})
	}
}

// byID answers GET .../{id} from items, with code when none matches.
func byID[T any](items []T, id func(T) string, code string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		for _, it := range items {
			if id(it) == r.PathValue("id") {
				writeJSON(w, 200, it)
				return
			}
		}
		writeJSON(w, 404, api.Error{Code: code, Message: "not found: " + r.PathValue("id")})
	}
}

// runInProject runs the CLI against f with p1 (id p-1) of t1 as the current
// project, or none when inProject is false.
func runInProject(t *testing.T, f *fake, inProject bool, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	cfg := filepath.Join(t.TempDir(), "config")
	c := config{Target: f.URL, Token: "tok", CACert: f.ca}
	if inProject {
		c.Tenant, c.Project = &ref{ID: "ten-1", Name: "t1"}, &ref{ID: "p-1", Name: "p1"}
	}
	if err := saveConfig(cfg, c); err != nil {
		t.Fatal(err)
	}
	t.Setenv(envConfig, cfg)
	t.Setenv(envTarget, "")
	t.Setenv(envToken, "")
	t.Setenv(envCACert, "")
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

var (
	testVMs = []api.VM{
		{Base: api.Base{ID: "vm-0", Kind: api.KindVM}, Name: "web-0", Flavor: "small", State: api.VMStarted,
			Host: "10.0.0.5", HostID: "h-1", ProjectID: "p-1"},
		{Base: api.Base{ID: "vm-1", Kind: api.KindVM}, Name: "web-1", Flavor: "small", State: api.VMStopped,
			ProjectID: "p-1", SourceImageID: "img-1",
			AttachedDisks: []api.AttachedDisk{{ID: "d-b", Name: "boot", Kind: api.KindEphemeralDisk, Flavor: "eph", CapacityGB: 2, BootDisk: true, State: api.DiskAttached}}},
		{Base: api.Base{ID: "vm-2", Kind: api.KindVM}, Name: "broken", Flavor: "big", State: api.VMError,
			ProjectID: "p-1", ErrorReason: "no host fits: 3 lacked memory, 1 suspended"},
	}
	testDisks = []api.PersistentDisk{
		{Base: api.Base{ID: "disk-1", Kind: api.KindPersistentDisk}, Name: "data-1", Flavor: "pd-fast", CapacityGB: 10,
			Datastore: "ds-1", State: api.DiskDetached, VMs: []string{}, ProjectID: "p-1"},
	}
	testFlavors = []api.Flavor{
		{Base: api.Base{ID: "f-1"}, Name: "small", Kind: api.FlavorKindVM},
		{Base: api.Base{ID: "f-2"}, Name: "eph", Kind: api.FlavorKindEphemeralDisk},
		{Base: api.Base{ID: "f-3"}, Name: "pd-fast", Kind: api.FlavorKindPersistentDisk},
		{Base: api.Base{ID: "f-4"}, Name: "both", Kind: api.FlavorKindPersistentDisk},
		{Base: api.Base{ID: "f-5"}, Name: "both", Kind: api.FlavorKindEphemeralDisk},
	}
	testImages = []api.Image{{Base: api.Base{ID: "img-1", Kind: api.KindImage}, Name: "ubuntu", State: api.ImageReady,
		ReplicationType: api.ReplicationOnDemand, Size: 3 << 20, Scope: api.ImageScope{Kind: "infrastructure"}}}
)

// computeFake serves the VM, disk, flavor and image routes of project
// p-1, and the routes of extra (which replace those of the same pattern).
func computeFake(t *testing.T, x *infraFake, extra ...map[string]http.HandlerFunc) *fake {
	vmName := func(v api.VM) string { return v.Name }
	vmID := func(v api.VM) string { return v.ID }
	diskName := func(d api.PersistentDisk) string { return d.Name }
	routes := map[string]http.HandlerFunc{
		"GET /v1/tasks/{id}":              x.getTask,
		"GET /v1/tasks":                   x.tasksByID,
		"GET /v1/projects/p-1/vms":        list(testVMs, vmName),
		"GET /v1/projects/p-1/disks":      list(testDisks, diskName),
		"GET /v1/projects/p-1/images":     list([]api.Image{}, nil),
		"GET /v1/images":                  list(testImages, func(i api.Image) string { return i.Name }),
		"GET /v1/flavors":                 list(testFlavors, func(f api.Flavor) string { return f.Name }),
		"GET /v1/vms/{id}":                byID(testVMs, vmID, codeVMNotFound),
		"GET /v1/disks/{id}":              byID(testDisks, func(d api.PersistentDisk) string { return d.ID }, codeDiskNotFound),
		"POST /v1/projects/p-1/vms":       x.task("CREATE_VM", api.KindVM, "vm-1"),
		"POST /v1/projects/p-1/vms/batch": x.batch,
		"POST /v1/projects/p-1/disks":     x.task("CREATE_DISK", api.KindPersistentDisk, "disk-1"),
		"POST /v1/vms/{id}/{op}":          x.task("VM_OPERATION", api.KindVM, "vm-1"),
		"DELETE /v1/vms/{id}":             x.task("DELETE_VM", api.KindVM, "vm-1"),
		"DELETE /v1/disks/{id}":           x.task("DELETE_DISK", api.KindPersistentDisk, "disk-1"),
		"GET /v1/vms/{id}/tasks":          list([]api.Task{{Base: api.Base{ID: "task-9"}, Operation: "CREATE_VM", State: api.TaskCompleted}}, nil),
		"GET /v1/projects/{id}":           byID([]api.Project{{Base: api.Base{ID: "p-1"}, Name: "p1", TenantID: "ten-1"}}, func(p api.Project) string { return p.ID }, api.CodeProjectNotFound),
		"GET /v1/tenants/ten-1/projects":  list([]api.Project{{Base: api.Base{ID: "p-1"}, Name: "p1", TenantID: "ten-1"}}, func(p api.Project) string { return p.Name }),
		"GET /v1/tenants":                 list([]api.Tenant{{Base: api.Base{ID: "ten-1"}, Name: "t1"}}, func(t api.Tenant) string { return t.Name }),
	}
	for _, e := range extra {
		maps.Copy(routes, e)
	}
	return newFake(t, routes)
}

func TestVMCreateStartInOneTask(t *testing.T) {
	x := newInfraFake()
	f := computeFake(t, x)
	stdout, stderr, code := runInProject(t, f, true, "-n", "vm", "create", "-n", "web-9", "-f", "small", "-i", "ubuntu",
		"-d", "boot eph boot=true, data pd-fast 10, scratch both 5", "-a", "vm:web-0, host:10.0.0.5, disk:data-1",
		"-e", "ROLE=web, ZONE=a", "--tags", "x,y", "--start")
	if code != 0 || stdout != "vm-1\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	var spec api.VMCreateSpec
	x.body(t, "POST /v1/projects/p-1/vms", &spec)
	want := api.VMCreateSpec{Name: "web-9", Flavor: "small", SourceImageID: "img-1",
		AttachedDisks: []api.AttachedDiskCreateSpec{
			{Name: "boot", Kind: api.KindEphemeralDisk, Flavor: "eph", BootDisk: true},
			{Name: "data", Kind: api.KindPersistentDisk, Flavor: "pd-fast", CapacityGB: 10},
			{Name: "scratch", Kind: api.KindEphemeralDisk, Flavor: "both", CapacityGB: 5},
		},
		Affinities:  []api.LocalitySpec{{Kind: "vm", ID: "vm-0"}, {Kind: "host", ID: "10.0.0.5"}, {Kind: "disk", ID: "disk-1"}},
		Environment: map[string]string{"ROLE": "web", "ZONE": "a"}, Tags: []string{"x", "y"}, Start: true}
	if !reflect.DeepEqual(spec, want) {
		t.Errorf("spec\n%+v\nwant\n%+v", spec, want)
	}
	if calls := x.callList(); !reflect.DeepEqual(calls, []string{"POST /v1/projects/p-1/vms"}) {
		t.Errorf("calls %v", calls)
	}

	// Without --start: no start; a human gets a sentence; JSON is the VM.
	x = newInfraFake()
	f = computeFake(t, x)
	stdout, _, code = runInProject(t, f, true, "vm", "create", "web-9", "-f", "small", "-d", "boot eph boot=true")
	if code != 0 || stdout != "Created VM web-9, ID: vm-1\n" || len(x.callList()) != 1 {
		t.Errorf("create: %d %q %v", code, stdout, x.callList())
	}
	stdout, _, code = runInProject(t, f, true, "vm", "create", "-n", "web-9", "-f", "small", "-d", "boot eph boot=true", "-o", "json")
	var vm api.VM
	if code != 0 || json.Unmarshal([]byte(stdout), &vm) != nil || vm.ID != "vm-1" {
		t.Errorf("create -o json: %d %q", code, stdout)
	}
}

func TestVMCreateStartFailure(t *testing.T) {
	x := newInfraFake()
	x.fail["POST /v1/projects/p-1/vms"] = api.Error{Code: "HostError", Message: "host h-1: no KVM"}
	f := computeFake(t, x)
	stdout, stderr, code := runInProject(t, f, true, "vm", "create", "-n", "web-9", "-f", "small", "-d", "boot eph boot=true", "--start")
	if code != exitError || stdout != "" ||
		stderr != "photon: HostError: host h-1: no KVM (task task-1 CREATE_VM)\n" {
		t.Errorf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	delete(x.fail, "POST /v1/projects/p-1/vms")
	x.fail["POST /v1/vms/vm-1/start"] = api.Error{Code: "NotEnoughMemoryResource", Message: "host h-1 has 1 GB free"}
	// A failed operation task exits 1 with the task's error.
	_, stderr, code = runInProject(t, f, true, "vm", "start", "web-1")
	if code != exitError || !strings.HasPrefix(stderr, "photon: NotEnoughMemoryResource: host h-1 has 1 GB free (task ") {
		t.Errorf("vm start: exit %d, %q", code, stderr)
	}
}

func TestVMCreateUsageErrors(t *testing.T) {
	f := computeFake(t, newInfraFake())
	for _, args := range [][]string{
		{"vm", "create", "-f", "small", "-d", "boot eph boot=true"},                       // no name
		{"vm", "create", "-n", "a", "-f", "small", "-d", "boot"},                          // no flavor in the disk
		{"vm", "create", "-n", "a", "-f", "small", "-d", "boot eph big"},                  // bad token
		{"vm", "create", "-n", "a", "-f", "small", "-d", "boot eph boot=true", "-a", "x"}, // bad affinity
		{"vm", "create", "-n", "a", "-f", "small", "-d", "boot eph boot=true", "-e", "novalue"},
		{"vm", "create", "-n", "a", "-d", "boot eph boot=true"}, // no -f
	} {
		if _, stderr, code := runInProject(t, f, true, args...); code != exitUsage {
			t.Errorf("%v: exit %d, %q", args, code, stderr)
		}
	}
	// No current project and no -p.
	if _, stderr, code := runInProject(t, f, false, "vm", "list"); code != exitUsage || !strings.Contains(stderr, "no current project") {
		t.Errorf("vm list without project: %d %q", code, stderr)
	}
}

func TestVMShowResolvesNamesAndShowsErrorReason(t *testing.T) {
	f := computeFake(t, newInfraFake())
	stdout, stderr, code := runInProject(t, f, true, "vm", "show", "broken")
	if code != 0 || !strings.Contains(stdout, "Error:") || !strings.Contains(stdout, "no host fits: 3 lacked memory, 1 suspended") {
		t.Errorf("show ERROR VM: %d %q %q", code, stdout, stderr)
	}
	stdout, _, code = runInProject(t, f, true, "-n", "vm", "show", "broken")
	if code != 0 || stdout != "vm-2\tbroken\tERROR\tbig\t-\tno host fits: 3 lacked memory, 1 suspended\n" {
		t.Errorf("show -n: %d %q", code, stdout)
	}
	stdout, _, code = runInProject(t, f, true, "vm", "show", "web-1")
	if code != 0 || strings.Contains(stdout, "Error:") || !strings.Contains(stdout, "Disks:") || !strings.Contains(stdout, "boot") {
		t.Errorf("show web-1: %d %q", code, stdout)
	}
	// By id with no current project.
	stdout, _, code = runInProject(t, f, false, "-o", "json", "vm", "show", "vm-1")
	var vm api.VM
	if code != 0 || json.Unmarshal([]byte(stdout), &vm) != nil || vm.Name != "web-1" {
		t.Errorf("show by id: %d %q", code, stdout)
	}
	// By name without a project: not found, with a hint.
	_, stderr, code = runInProject(t, f, false, "vm", "show", "web-1")
	if code != exitError || !strings.HasPrefix(stderr, "photon: VmNotFound: ") || !strings.Contains(stderr, "-p PROJECT") {
		t.Errorf("show by name without a project: %d %q", code, stderr)
	}
	_, stderr, code = runInProject(t, f, true, "vm", "show", "nosuch")
	if code != exitError || stderr != "photon: VmNotFound: no VM named \"nosuch\" in project p1 or with that id\n" {
		t.Errorf("unknown VM: %d %q", code, stderr)
	}
	// -p by name within the current tenant.
	stdout, _, code = runInProject(t, f, false, "-n", "vm", "list", "-p", "p1", "-t", "t1")
	if code != 0 || !strings.HasPrefix(stdout, "vm-0\tweb-0\tSTARTED\tsmall\t10.0.0.5\n") || strings.Count(stdout, "\n") != 3 {
		t.Errorf("vm list -p: %d %q", code, stdout)
	}
	stdout, _, code = runInProject(t, f, true, "-n", "vm", "tasks", "web-1")
	if code != 0 || !strings.HasPrefix(stdout, "task-9\tCREATE_VM\tCOMPLETED") {
		t.Errorf("vm tasks: %d %q", code, stdout)
	}
}

func TestVMOperations(t *testing.T) {
	x := newInfraFake()
	f := computeFake(t, x)
	for _, tc := range []struct {
		args []string
		call string
		out  string
	}{
		{[]string{"vm", "stop", "web-1"}, "POST /v1/vms/vm-1/stop", "Stopped VM web-1, ID: vm-1\n"},
		{[]string{"vm", "restart", "vm-1"}, "POST /v1/vms/vm-1/restart", "Restarted VM web-1, ID: vm-1\n"},
		{[]string{"-n", "vm", "suspend", "web-1"}, "POST /v1/vms/vm-1/suspend", "vm-1\n"},
		{[]string{"vm", "resume", "web-1"}, "POST /v1/vms/vm-1/resume", "Resumed VM web-1, ID: vm-1\n"},
		{[]string{"vm", "attach-disk", "web-1", "-d", "data-1"}, "POST /v1/vms/vm-1/attach_disk", "Attached disk data-1 to VM web-1, ID: vm-1\n"},
		{[]string{"vm", "detach-disk", "web-1", "-d", "disk-1"}, "POST /v1/vms/vm-1/detach_disk", "Detached disk data-1 from VM web-1, ID: vm-1\n"},
		{[]string{"vm", "set-metadata", "web-1", "-m", "owner=alice, tier=web"}, "POST /v1/vms/vm-1/set_metadata", "Set the metadata of VM web-1, ID: vm-1\n"},
		{[]string{"vm", "set-tag", "web-1", "-t", "env:prod"}, "POST /v1/vms/vm-1/tags", "Tagged VM web-1 env:prod, ID: vm-1\n"},
		{[]string{"vm", "delete", "web-1"}, "DELETE /v1/vms/vm-1", "Deleted VM web-1, ID: vm-1\n"},
	} {
		stdout, stderr, code := runInProject(t, f, true, tc.args...)
		calls := x.callList()
		if code != 0 || stdout != tc.out || len(calls) == 0 || calls[len(calls)-1] != tc.call {
			t.Errorf("%v: exit %d, stdout %q, stderr %q, calls %v", tc.args, code, stdout, stderr, calls)
		}
	}
	var op api.VMDiskOperation
	x.body(t, "POST /v1/vms/vm-1/attach_disk", &op)
	if op.DiskID != "disk-1" {
		t.Errorf("attach body %+v", op)
	}
	var md api.VMMetadata
	x.body(t, "POST /v1/vms/vm-1/set_metadata", &md)
	if !reflect.DeepEqual(md.Metadata, map[string]string{"owner": "alice", "tier": "web"}) {
		t.Errorf("metadata body %+v", md)
	}
	var tag api.Tag
	x.body(t, "POST /v1/vms/vm-1/tags", &tag)
	if tag.Value != "env:prod" {
		t.Errorf("tag body %+v", tag)
	}
	if _, stderr, code := runInProject(t, f, true, "vm", "attach-disk", "web-1"); code != exitUsage {
		t.Errorf("attach-disk without -d: %d %q", code, stderr)
	}
}

func TestParseDisksAffinitiesKV(t *testing.T) {
	d, err := parseDisks("disk-1 eph boot=true, disk-2 pd 10, d3 x 2.5GB persistent")
	want := []api.AttachedDiskCreateSpec{{Name: "disk-1", Flavor: "eph", BootDisk: true},
		{Name: "disk-2", Flavor: "pd", CapacityGB: 10}, {Name: "d3", Flavor: "x", CapacityGB: 2.5, Kind: api.KindPersistentDisk}}
	if err != nil || !reflect.DeepEqual(d, want) {
		t.Errorf("parseDisks = %+v, %v", d, err)
	}
	for _, bad := range []string{"", "d1", "d1 f -3", "d1 f boot=maybe"} {
		if _, err := parseDisks(bad); err == nil {
			t.Errorf("parseDisks(%q) accepted", bad)
		}
	}
	a, err := parseAffinities("disk:d1, vm:web-1,host:10.0.0.5")
	if err != nil || !reflect.DeepEqual(a, []api.LocalitySpec{{Kind: "disk", ID: "d1"}, {Kind: "vm", ID: "web-1"}, {Kind: "host", ID: "10.0.0.5"}}) {
		t.Errorf("parseAffinities = %+v, %v", a, err)
	}
	for _, bad := range []string{"d1", "zone:a", "vm:"} {
		if _, err := parseAffinities(bad); err == nil {
			t.Errorf("parseAffinities(%q) accepted", bad)
		}
	}
	m, err := parseKV("-m", "a=1, b = x=y ,c=")
	if err != nil || !reflect.DeepEqual(m, map[string]string{"a": "1", "b": "x=y", "c": ""}) {
		t.Errorf("parseKV = %v, %v", m, err)
	}
	if kvString(m) != "a=1, b=x=y, c=" || kvString(nil) != "-" {
		t.Errorf("kvString = %q", kvString(m))
	}
}

// TestVMCreateCount: --count sends one batch request, follows every VM's
// task, prints a line per VM (ids with -n) and exits 1 when any VM was not
// made, naming why.
func TestVMCreateCount(t *testing.T) {
	args := []string{"vm", "create", "-n", "web", "-f", "small", "-d", "boot eph boot=true", "--count", "3"}
	x := newInfraFake()
	f := computeFake(t, x)
	stdout, stderr, code := runInProject(t, f, true, append([]string{"-n"}, args...)...)
	if code != 0 || stdout != "vm-1\nvm-2\nvm-3\n" {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	var spec api.VMBatchCreateSpec
	x.body(t, "POST /v1/projects/p-1/vms/batch", &spec)
	if spec.Count != 3 || spec.Name != "web" || spec.Flavor != "small" || len(spec.AttachedDisks) != 1 || spec.Start {
		t.Errorf("batch spec %+v", spec)
	}
	// --start: the same request, saying start; each VM's one task is all
	// the command follows.
	x = newInfraFake()
	f = computeFake(t, x)
	stdout, stderr, code = runInProject(t, f, true, append(args, "--start")...)
	x.body(t, "POST /v1/projects/p-1/vms/batch", &spec)
	if code != 0 || !strings.Contains(stdout, "Created and started 3 of 3 VMs") || !spec.Start || len(x.callList()) != 1 {
		t.Errorf("--start: exit %d, stdout %q, stderr %q, spec %+v, calls %v", code, stdout, stderr, spec, x.callList())
	}

	x = newInfraFake()
	x.fail["refuse web-2"] = api.Error{Code: api.CodeQuotaError, Message: "vm.cpu: 1 more than the limit"}
	x.fail["task web-3"] = api.Error{Code: "NoHostAvailable", Message: "no host fits"}
	f = computeFake(t, x)
	stdout, stderr, code = runInProject(t, f, true, args...)
	for _, want := range []string{"web-1", "vm-1", "OK", "web-2", "QuotaError", "web-3", "NoHostAvailable", "Created 1 of 3 VMs"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	if code != exitError || stderr != "photon: 2 of 3 VMs were not created\n" {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
	for _, bad := range []string{"0", "1001"} {
		if _, stderr, code := runInProject(t, f, true, append(args[:len(args)-1:len(args)-1], bad)...); code != exitUsage || !strings.Contains(stderr, "--count") {
			t.Errorf("--count %s: exit %d, %q", bad, code, stderr)
		}
	}
}

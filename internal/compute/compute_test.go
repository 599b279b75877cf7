package compute_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/controller"
	"github.com/photon-cloud/photon/internal/driver/fake"
	"github.com/photon-cloud/photon/internal/photontest"
)

var ctx = context.Background()

// cloud is a controller with a tenant, a project limited to quota, the
// flavors "small" (vm: 1 cpu, 1 GB), "eph" and "pd", and hosts.
type cloud struct {
	*photontest.Cloud
	cl      *client.Client
	project string
	agents  []*photontest.Agent
}

func fast(c *controller.Config) {
	c.HeartbeatTimeout = 2 * time.Second
	c.HostTimeout = 10 * time.Second
}

func newCloud(t testing.TB, quota string, hosts ...fake.Config) *cloud {
	t.Helper()
	c := setUp(t, photontest.NewController(t, "", fast), quota)
	for _, h := range hosts {
		c.agents = append(c.agents, photontest.NewAgent(t, c.Cloud, h))
	}
	c.waitHosts(t, len(hosts))
	return c
}

// setUp makes the tenant, the project and the flavors of a cloud on ctrl.
func setUp(t testing.TB, ctrl *photontest.Cloud, quota string) *cloud {
	t.Helper()
	c := &cloud{Cloud: ctrl, cl: ctrl.Client}
	items, err := api.ParseLimits(quota)
	if err != nil {
		t.Fatal(err)
	}
	tt := c.done(t)(c.cl.CreateTenant(ctx, &api.TenantCreateSpec{Name: "t", Quota: api.QuotaSpecFromItems(items)}))
	pt := c.done(t)(c.cl.CreateProject(ctx, tt.Entity.ID, &api.ProjectCreateSpec{Name: "p", Quota: api.QuotaSpecFromItems(items)}))
	c.project = pt.Entity.ID
	for _, f := range []api.FlavorCreateSpec{
		{Name: "small", Kind: "vm", Cost: []api.QuotaLineItem{{Key: "vm", Value: 1, Unit: "COUNT"}, {Key: "vm.cpu", Value: 1, Unit: "COUNT"}, {Key: "vm.memory", Value: 1, Unit: "GB"}}},
		{Name: "eph", Kind: "ephemeral-disk", Cost: []api.QuotaLineItem{{Key: "ephemeral-disk", Value: 1, Unit: "COUNT"}}},
		{Name: "pd", Kind: "persistent-disk", Cost: []api.QuotaLineItem{{Key: "persistent-disk", Value: 1, Unit: "COUNT"}}},
	} {
		c.done(t)(c.cl.CreateFlavor(ctx, &f))
	}
	return c
}

// done waits for a task-returning call; it fails the test unless COMPLETED.
func (c *cloud) done(t testing.TB) func(*api.Task, error) *api.Task {
	return func(task *api.Task, err error) *api.Task {
		t.Helper()
		task, err = c.wait(task, err)
		if err != nil {
			t.Fatal(err)
		}
		return task
	}
}

func (c *cloud) wait(task *api.Task, err error) (*api.Task, error) { return waitWith(c.cl)(task, err) }

// waitWith waits (up to a minute) for a task-returning call made with cl;
// an ERROR task is its error.
func waitWith(cl *client.Client) func(*api.Task, error) (*api.Task, error) {
	return func(task *api.Task, err error) (*api.Task, error) {
		if err != nil {
			return nil, err
		}
		wctx, cancel := context.WithTimeout(ctx, time.Minute)
		defer cancel()
		if task, err = cl.WaitTask(wctx, task); err != nil {
			return nil, err
		}
		return task, task.Err()
	}
}

func (c *cloud) waitHosts(t testing.TB, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		hs, err := c.cl.ListHosts(ctx)
		ready := 0
		for _, h := range hs {
			if h.State == api.HostReady {
				ready++
			}
		}
		if err == nil && ready == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d hosts READY: %+v %v", ready, n, hs, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func vmSpec(name string) *api.VMCreateSpec {
	return &api.VMCreateSpec{Name: name, Flavor: "small", AttachedDisks: []api.AttachedDiskCreateSpec{{Name: "boot", Kind: "ephemeral-disk", Flavor: "eph", CapacityGB: 2, BootDisk: true}}}
}

func TestVMLifecycle(t *testing.T) {
	c := newCloud(t, "vm 10 COUNT, vm.cpu 10 COUNT, vm.memory 10 GB", fake.Config{}, fake.Config{}, fake.Config{})
	task := c.done(t)(c.cl.CreateVM(ctx, c.project, vmSpec("web")))
	if len(task.Steps) != 2 || task.Steps[0].Operation != "RESERVE_RESOURCE" || task.Steps[1].Operation != "CREATE_VM" {
		t.Errorf("create steps = %+v", task.Steps)
	}
	id := task.Entity.ID
	vm, err := c.cl.GetVM(ctx, id)
	if err != nil || vm.State != api.VMStopped || vm.HostID == "" || len(vm.AttachedDisks) != 1 {
		t.Fatalf("created VM = %+v, %v", vm, err)
	}
	for _, step := range []struct {
		op   func(context.Context, string) (*api.Task, error)
		want string
	}{
		{c.cl.StartVM, api.VMStarted}, {c.cl.SuspendVM, api.VMSuspended}, {c.cl.ResumeVM, api.VMStarted},
		{c.cl.RestartVM, api.VMStarted}, {c.cl.StopVM, api.VMStopped},
	} {
		c.done(t)(step.op(ctx, id))
		if vm, _ = c.cl.GetVM(ctx, id); vm.State != step.want {
			t.Fatalf("VM state %s, want %s", vm.State, step.want)
		}
	}
	// An operation the state forbids is refused at once.
	if _, err := c.cl.SuspendVM(ctx, id); err == nil || !strings.Contains(err.Error(), "InvalidVmState") {
		t.Errorf("suspend a stopped VM: %v", err)
	}
	// Persistent disk: create next to the VM, attach, detach, delete.
	dt := c.done(t)(c.cl.CreateDisk(ctx, c.project, &api.DiskCreateSpec{Name: "data", Kind: "persistent-disk", Flavor: "pd", CapacityGB: 10,
		Affinities: []api.LocalitySpec{{Kind: "vm", ID: id}}}))
	did := dt.Entity.ID
	c.done(t)(c.cl.AttachDisk(ctx, id, did))
	if d, _ := c.cl.GetDisk(ctx, did); d.State != api.DiskAttached || len(d.VMs) != 1 {
		t.Fatalf("attached disk = %+v", d)
	}
	if _, err := c.cl.DeleteDisk(ctx, did); err == nil || !strings.Contains(err.Error(), "PersistentDiskAttached") {
		t.Errorf("delete attached disk: %v", err)
	}
	c.done(t)(c.cl.DetachDisk(ctx, id, did))
	c.done(t)(c.cl.DeleteDisk(ctx, did))
	c.done(t)(c.cl.SetVMMetadata(ctx, id, map[string]string{"role": "web"}))
	c.done(t)(c.cl.AddVMTag(ctx, id, "env:test"))
	if vm, _ = c.cl.GetVM(ctx, id); vm.Metadata["role"] != "web" || len(vm.Tags) != 1 {
		t.Errorf("metadata/tags = %+v %+v", vm.Metadata, vm.Tags)
	}
	if u, err := c.cl.SystemUsage(ctx); err != nil || u.NumberHosts != 3 || u.NumberVMs != 1 || u.NumberDatastores != 3 {
		t.Errorf("system usage = %+v, %v", u, err)
	}
	hostVMs, err := c.cl.ListHostVMs(ctx, vm.HostID)
	if err != nil || len(hostVMs) != 1 || hostVMs[0].ID != id {
		t.Errorf("host VMs = %+v, %v", hostVMs, err)
	}
	c.done(t)(c.cl.DeleteVM(ctx, id))
	if _, err := c.cl.GetVM(ctx, id); err == nil || !strings.Contains(err.Error(), "VmNotFound") {
		t.Errorf("deleted VM: %v", err)
	}
	c.assertNothingHeld(t)
	// The hosts removed the files too: the VM's boot disk and the deleted
	// persistent disk.
	deadline := time.Now().Add(10 * time.Second)
	for {
		used := 0.0
		for _, a := range c.agents {
			used += a.Driver.UsedGB("local")
		}
		if used == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("hosts still hold %v GB of disks", used)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// assertNothingHeld checks every host's usage and the project's quota usage is zero.
func (c *cloud) assertNothingHeld(t *testing.T) {
	t.Helper()
	hs, err := c.cl.ListHosts(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hs {
		if h.Usage.CPUCount != 0 || h.Usage.MemoryMB != 0 {
			t.Errorf("host %s still holds %+v", h.Address, h.Usage)
		}
	}
	q, err := c.cl.GetProjectQuota(ctx, c.project)
	if err != nil {
		t.Fatal(err)
	}
	for k, it := range q.QuotaItems {
		if it.Usage != 0 {
			t.Errorf("project quota %s still used: %v", k, it.Usage)
		}
	}
	dss, _ := c.cl.ListDatastores(ctx)
	for _, d := range dss {
		if d.UsedGB != 0 {
			t.Errorf("datastore %s still holds %v GB", d.ID, d.UsedGB)
		}
	}
}

// TestCreateStorm: 200 concurrent creates against hosts that fit 150:
// exactly 150 succeed, the rest fail with a capacity error; deleting
// everything leaves all usage at zero.
func TestCreateStorm(t *testing.T) {
	host := fake.Config{CPUCount: 100, MemoryMB: 50 * 1024} // 50 small VMs each by memory
	c := newCloud(t, "vm 1000 COUNT, vm.cpu 1000 COUNT, vm.memory 1000 GB", host, host, host)
	const n = 200
	var mu sync.Mutex
	var ok []string
	capacity, other := 0, []error{}
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			task, err := c.wait(c.cl.CreateVM(ctx, c.project, vmSpec(fmt.Sprintf("vm%d", i))))
			mu.Lock()
			defer mu.Unlock()
			var ae *api.Error
			switch {
			case err == nil:
				ok = append(ok, task.Entity.ID)
			case errors.As(err, &ae) && ae.Code == "NotEnoughMemoryResource":
				capacity++
			default:
				if len(other) < 3 {
					other = append(other, err)
				} else {
					other = append(other, nil)
				}
			}
		}()
	}
	wg.Wait()
	t.Logf("create storm: %d creates for 150 places: %d created, %d refused for capacity, %d other", n, len(ok), capacity, len(other))
	if len(ok) != 150 || capacity != n-150 || len(other) > 0 {
		t.Fatalf("created %d, capacity errors %d, other %v", len(ok), capacity, other)
	}
	c.deleteAll(t, ok, 50, c.cl)
}

// TestConcurrentPowerOps: power operations are group-committed; racing
// starts of one VM (several in one batch, or in batches in a row) still
// let exactly one task hold the VM, the others refused ConcurrentTask,
// and starts of different VMs committed together all run.
func TestConcurrentPowerOps(t *testing.T) {
	c := newCloud(t, "vm 20 COUNT, vm.cpu 20 COUNT, vm.memory 20 GB", fake.Config{Latency: 500 * time.Millisecond})
	const vms, racers = 10, 4
	ids := make([]string, vms)
	for i := range ids {
		ids[i] = c.done(t)(c.cl.CreateVM(ctx, c.project, vmSpec(fmt.Sprintf("p%d", i)))).Entity.ID
	}
	var mu sync.Mutex
	accepted := map[string][]*api.Task{}
	var other []error
	var wg sync.WaitGroup
	start := make(chan struct{})
	for _, id := range ids {
		for range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				task, err := c.cl.StartVM(ctx, id)
				mu.Lock()
				defer mu.Unlock()
				var ae *api.Error
				switch {
				case err == nil:
					accepted[id] = append(accepted[id], task)
				case errors.As(err, &ae) && ae.Code == api.CodeConcurrentTask:
				default:
					other = append(other, err)
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	if len(other) > 0 {
		t.Fatalf("starts failed other than ConcurrentTask: %v", other)
	}
	for _, id := range ids {
		if n := len(accepted[id]); n != 1 {
			t.Fatalf("VM %s: %d of %d racing starts accepted, want 1 (the host takes 500 ms)", id, n, racers)
		}
		if _, err := c.wait(accepted[id][0], nil); err != nil {
			t.Fatalf("start of %s: %v", id, err)
		}
		if vm, err := c.cl.GetVM(ctx, id); err != nil || vm.State != api.VMStarted {
			t.Fatalf("VM %s after its start: %+v, %v", id, vm, err)
		}
	}
}

// deleteAll checks the project's VMs are those created (not ERROR) and
// ones refused a host (ERROR, holding nothing), deletes them all, workers
// at a time through clients in turn, and checks nothing is held.
func (c *cloud) deleteAll(t *testing.T, created []string, workers int, clients ...*client.Client) {
	t.Helper()
	vms, err := c.cl.ListVMs(ctx, c.project, "")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, id := range created {
		want[id] = true
	}
	ids := make(chan string, len(vms))
	for _, v := range vms {
		switch {
		case want[v.ID]:
			delete(want, v.ID)
			if v.State == api.VMError {
				t.Errorf("created VM %s is ERROR: %s", v.Name, v.ErrorReason)
			}
		case v.State != api.VMError || !strings.Contains(v.ErrorReason, "no host fits"):
			t.Errorf("left VM %s %s %q", v.Name, v.State, v.ErrorReason)
		}
		ids <- v.ID
	}
	close(ids)
	if len(want) > 0 {
		t.Errorf("%d created VMs are not listed", len(want))
	}
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cl := clients[w%len(clients)]
			for id := range ids {
				if _, err := waitWith(cl)(cl.DeleteVM(ctx, id)); err != nil {
					t.Errorf("delete %s: %v", id, err)
				}
			}
		}()
	}
	wg.Wait()
	c.assertNothingHeld(t)
}

// TestQuotaRefusal: a project at its VM limit refuses the next create with
// a quota error, and nothing changes.
func TestQuotaRefusal(t *testing.T) {
	c := newCloud(t, "vm 2 COUNT, vm.cpu 10 COUNT, vm.memory 10 GB", fake.Config{})
	c.done(t)(c.cl.CreateVM(ctx, c.project, vmSpec("a")))
	c.done(t)(c.cl.CreateVM(ctx, c.project, vmSpec("b")))
	before, _ := c.cl.GetProjectQuota(ctx, c.project)
	_, err := c.cl.CreateVM(ctx, c.project, vmSpec("c"))
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeQuotaError || ae.HTTPStatus != 400 || !strings.Contains(ae.Message, "vm needs 1") {
		t.Fatalf("third VM: %v, want 400 QuotaError on vm", err)
	}
	after, _ := c.cl.GetProjectQuota(ctx, c.project)
	if fmt.Sprint(before) != fmt.Sprint(after) {
		t.Errorf("quota changed by a refused create: %+v -> %+v", before, after)
	}
	if vms, _ := c.cl.ListVMs(ctx, c.project, ""); len(vms) != 2 {
		t.Errorf("VMs after refusal = %d, want 2", len(vms))
	}
}

// TestTaskLongPoll: a task read with wait (GET /v1/tasks/{id}?wait=) on a
// task not done is answered when the task changes, not at once: one read
// follows a create from STARTED to COMPLETED. A done task is answered at
// once.
func TestTaskLongPoll(t *testing.T) {
	c := newCloud(t, "vm 10 COUNT, vm.cpu 10 COUNT, vm.memory 10 GB", fake.Config{Latency: 300 * time.Millisecond})
	task, err := c.cl.CreateVM(ctx, c.project, vmSpec("a"))
	if err != nil {
		t.Fatal(err)
	}
	if task.Done() {
		t.Fatalf("create answered %s: the host's 300 ms should leave it not done", task.State)
	}
	if s := task.Steps; len(s) != 2 || s[0].State != api.TaskCompleted || s[1].State != api.TaskStarted || s[1].StartedTime == 0 {
		t.Fatalf("create answered steps %+v: want the reservation COMPLETED, the host's step STARTED", s)
	}
	got, err := c.cl.GetTaskWait(ctx, task.ID, 40*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if got.State != api.TaskCompleted {
		t.Fatalf("one read with wait after the create: %s, want COMPLETED (answered before the task changed)", got.State)
	}
	// Answered COMPLETED, the task's effects are visible to reads: the
	// VM is no longer CREATING.
	if vm, err := c.cl.GetVM(ctx, task.Entity.ID); err != nil || vm.State != api.VMStopped {
		t.Fatalf("the VM right after its create task was answered COMPLETED: %+v, %v; want STOPPED", vm, err)
	}
	start := time.Now()
	if got, err = c.cl.GetTaskWait(ctx, task.ID, 40*time.Second); err != nil || got.State != api.TaskCompleted {
		t.Fatalf("read of a done task: %+v, %v", got, err)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("a done task read with wait=40s took %v: it waited", took)
	}
}

// TestTasksLongPoll: one read names many tasks (GET /v1/tasks?ids=).
// Without wait it lists those that exist, in the order named; with wait,
// on tasks none of which has ended, it is answered once one ends and lists
// only ended ones. WaitTasks follows a batch create and a create that
// fails with such reads to their ends, each seen ended once.
func TestTasksLongPoll(t *testing.T) {
	c := newCloud(t, "vm 10 COUNT, vm.cpu 10 COUNT, vm.memory 10 GB", fake.Config{Latency: 300 * time.Millisecond, FailOnNames: []string{"doomed"}})
	b, err := c.cl.CreateVMs(ctx, c.project, &api.VMBatchCreateSpec{VMCreateSpec: *vmSpec("web"), Count: 3})
	if err != nil {
		t.Fatal(err)
	}
	var follow []*api.Task
	for _, it := range b.Items {
		if it.Error != nil {
			t.Fatalf("%s refused: %v", it.Name, it.Error)
		}
		follow = append(follow, it.Task)
	}
	doomed, err := c.cl.CreateVM(ctx, c.project, vmSpec("doomed"))
	if err != nil {
		t.Fatal(err)
	}
	follow = append(follow, doomed)
	var ids []string
	for i := len(follow) - 1; i >= 0; i-- {
		ids = append(ids, follow[i].ID)
	}
	read := func(q string) ([]api.Task, time.Duration) {
		t.Helper()
		start := time.Now()
		var l api.List[api.Task]
		if err := c.cl.Do(ctx, "GET", "/v1/tasks?ids="+strings.Join(append(ids, uuid.NewString()), ",")+q, nil, &l); err != nil {
			t.Fatal(err)
		}
		return l.Items, time.Since(start)
	}
	l, _ := read("")
	if len(l) != len(ids) {
		t.Fatalf("listed %d tasks, want the %d that exist", len(l), len(ids))
	}
	for i, tk := range l {
		if tk.ID != ids[i] || tk.Done() {
			t.Fatalf("task %d listed: %s %s; want %s not ended (the host takes 300 ms)", i, tk.ID, tk.State, ids[i])
		}
	}
	l, took := read("&wait=40")
	if len(l) == 0 || took > 20*time.Second {
		t.Fatalf("read with wait=40: %d tasks after %v; want answered once one ended", len(l), took)
	}
	for _, tk := range l {
		if !tk.Done() {
			t.Errorf("read with wait listed %s %s: want only ended tasks", tk.ID, tk.State)
		}
	}
	seen := map[string]int{}
	got, err := c.cl.WaitTasks(ctx, follow, func(tk *api.Task) { seen[tk.ID]++ })
	if err != nil || len(got) != len(follow) {
		t.Fatalf("WaitTasks = %d tasks, %v", len(got), err)
	}
	for i, tk := range got {
		want := api.TaskCompleted
		if i == len(got)-1 {
			want = api.TaskError
		}
		if tk.ID != follow[i].ID || tk.State != want || seen[tk.ID] != 1 {
			t.Errorf("WaitTasks[%d] = %s %s, seen ended %d times; want %s %s once", i, tk.ID, tk.State, seen[tk.ID], follow[i].ID, want)
		}
	}
	if err := got[len(got)-1].Err(); err == nil || !strings.Contains(err.Error(), "doomed") {
		t.Errorf("the failed create's error: %v; want the host's reason", err)
	}
	for _, tk := range got[:len(got)-1] {
		if vm, err := c.cl.GetVM(ctx, tk.Entity.ID); err != nil || vm.State != api.VMStopped {
			t.Errorf("VM %s after its task ended: %+v, %v; want STOPPED", tk.Entity.ID, vm, err)
		}
	}
	// A task that does not exist would never end: following it fails
	// at once rather than wait forever.
	start := time.Now()
	_, err = c.cl.WaitTasks(ctx, []*api.Task{{Base: api.Base{ID: uuid.NewString()}, State: api.TaskQueued}}, nil)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeTaskNotFound || time.Since(start) > 10*time.Second {
		t.Errorf("following a task that does not exist: %v after %v; want TaskNotFound at once", err, time.Since(start))
	}
}

// TestHostFailureMidTask: a host whose driver fails to make the VM ends the
// task ERROR with the reason, and what was reserved is released.
func TestHostFailureMidTask(t *testing.T) {
	c := newCloud(t, "vm 10 COUNT, vm.cpu 10 COUNT, vm.memory 10 GB", fake.Config{FailOnNames: []string{"doomed"}})
	_, err := c.wait(c.cl.CreateVM(ctx, c.project, vmSpec("doomed")))
	if err == nil || !strings.Contains(err.Error(), "doomed") {
		t.Fatalf("create on a failing host: %v", err)
	}
	vms, _ := c.cl.ListVMs(ctx, c.project, "doomed")
	if len(vms) != 1 || vms[0].State != api.VMError || vms[0].ErrorReason == "" {
		t.Fatalf("failed VM = %+v", vms)
	}
	c.assertNothingHeld(t)
}

// TestVMsFromImage: five simultaneous creates from an uncached ON_DEMAND
// image on one host cause exactly one transfer; the image counts its users.
func TestVMsFromImage(t *testing.T) {
	c := newCloud(t, "vm 10 COUNT, vm.cpu 10 COUNT, vm.memory 10 GB", fake.Config{})
	content := bytes.Repeat([]byte("photon-image-"), 200000) // 2.6 MB
	it := c.done(t)(c.cl.UploadImage(ctx, bytes.NewReader(content), int64(len(content)),
		client.ImageUpload{Name: "disk", ReplicationType: api.ReplicationOnDemand, FileName: "disk.raw"}))
	img := it.Entity.ID
	var wg sync.WaitGroup
	ids := make([]string, 5)
	for i := range ids {
		wg.Add(1)
		go func() {
			defer wg.Done()
			spec := vmSpec(fmt.Sprintf("img%d", i))
			spec.SourceImageID = img
			spec.AttachedDisks[0].CapacityGB = 0 // from the image
			task, err := c.wait(c.cl.CreateVM(ctx, c.project, spec))
			if err != nil {
				t.Error(err)
				return
			}
			ids[i] = task.Entity.ID
		}()
	}
	wg.Wait()
	if t.Failed() {
		return
	}
	if n := c.agents[0].Fetches(); n != 1 {
		t.Errorf("image transfers to the host = %d, want 1", n)
	}
	if im, err := c.cl.GetImage(ctx, img); err != nil || im.Users != 5 {
		t.Errorf("image users = %+v, %v; want 5", im, err)
	}
	if vm, _ := c.cl.GetVM(ctx, ids[0]); vm.AttachedDisks[0].CapacityGB != 1 {
		t.Errorf("boot disk from a 2.6 MB image = %v GB, want 1", vm.AttachedDisks[0].CapacityGB)
	}
	for _, id := range ids {
		c.done(t)(c.cl.DeleteVM(ctx, id))
	}
	c.done(t)(c.cl.DeleteImage(ctx, img))
	if _, err := c.cl.GetImage(ctx, img); err == nil {
		t.Error("image still there after its last user left and it was deleted")
	}
	c.assertNothingHeld(t)
}

// TestVMWithPersistentDisk: a persistent disk in the create spec is made
// on the VM's datastore, attached; it outlives the VM.
func TestVMWithPersistentDisk(t *testing.T) {
	c := newCloud(t, "vm 10 COUNT, vm.cpu 10 COUNT, vm.memory 10 GB, persistent-disk.capacity 20 GB", fake.Config{}, fake.Config{})
	spec := vmSpec("db")
	spec.AttachedDisks = append(spec.AttachedDisks, api.AttachedDiskCreateSpec{Name: "data", Kind: "persistent-disk", Flavor: "pd", CapacityGB: 15})
	id := c.done(t)(c.cl.CreateVM(ctx, c.project, spec)).Entity.ID
	vm, _ := c.cl.GetVM(ctx, id)
	disks, err := c.cl.ListDisks(ctx, c.project, "data")
	if err != nil || len(disks) != 1 || disks[0].State != api.DiskAttached || disks[0].Datastore != vm.Datastore || len(vm.AttachedDisks) != 2 {
		t.Fatalf("disks = %+v, %v; VM = %+v", disks, err, vm)
	}
	// The quota holds the disk's capacity: a second 15 GB disk does not fit.
	spec2 := vmSpec("db2")
	spec2.AttachedDisks = append(spec2.AttachedDisks, api.AttachedDiskCreateSpec{Name: "data2", Kind: "persistent-disk", Flavor: "pd", CapacityGB: 15})
	if _, err := c.cl.CreateVM(ctx, c.project, spec2); err == nil || !strings.Contains(err.Error(), "QuotaError") {
		t.Errorf("second disk over quota: %v", err)
	}
	c.done(t)(c.cl.DeleteVM(ctx, id))
	if d, err := c.cl.GetDisk(ctx, disks[0].ID); err != nil || d.State != api.DiskDetached {
		t.Fatalf("disk after its VM left = %+v, %v", d, err)
	}
	c.done(t)(c.cl.DeleteDisk(ctx, disks[0].ID))
	c.assertNothingHeld(t)
}

// TestBatchCreate: a batch create makes each VM as a single create would
// (its own task, quota, name and placement checks), answers each in name
// order, and refuses a bad spec or count as a whole, before making any.
func TestBatchCreate(t *testing.T) {
	c := newCloud(t, "vm 7 COUNT, vm.cpu 7 COUNT, vm.memory 7 GB", fake.Config{}, fake.Config{})
	batch := func(name string, count int, edit func(*api.VMCreateSpec)) (*api.VMBatch, error) {
		spec := api.VMBatchCreateSpec{VMCreateSpec: *vmSpec(name), Count: count}
		if edit != nil {
			edit(&spec.VMCreateSpec)
		}
		return c.cl.CreateVMs(ctx, c.project, &spec)
	}
	for _, tc := range []struct {
		name, vm, field string
		count           int
		edit            func(*api.VMCreateSpec)
	}{
		{"no VMs", "z", "count", 0, nil},
		{"too many", "z", "count", api.MaxVMBatch + 1, nil},
		{"the last name too long", strings.Repeat("z", 61), "name", 10, nil}, // z…z-1 fits, z…z-10 does not
		{"no flavor", "z", "flavor", 3, func(s *api.VMCreateSpec) { s.Flavor = "" }},
		{"affinity to no VM", "z", "affinities[0].id", 3, func(s *api.VMCreateSpec) { s.Affinities = []api.LocalitySpec{{Kind: "vm", ID: "nope"}} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := batch(tc.vm, tc.count, tc.edit)
			var ae *api.Error
			if !errors.As(err, &ae) || ae.HTTPStatus != 400 || ae.Data["field"] != tc.field {
				t.Fatalf("batch = %+v, %v; want 400 naming field %s", b, err, tc.field)
			}
		})
	}
	var ae *api.Error
	if _, err := c.cl.CreateVMs(ctx, "no-such-project", &api.VMBatchCreateSpec{VMCreateSpec: *vmSpec("z"), Count: 3}); !errors.As(err, &ae) || ae.Code != api.CodeProjectNotFound || ae.HTTPStatus != 404 {
		t.Errorf("batch in a missing project: %v, want 404 ProjectNotFound", err)
	}
	if vms, err := c.cl.ListVMs(ctx, c.project, ""); err != nil || len(vms) != 0 {
		t.Fatalf("refused batches made VMs: %d, %v", len(vms), err)
	}

	// Placement: a strict anti-affinity group of 3 on 2 hosts. Two are
	// placed apart; the third's task ends ERROR, its VM holding nothing.
	b, err := batch("g", 3, func(s *api.VMCreateSpec) {
		s.PlacementGroup = &api.PlacementGroupSpec{Name: "g", Policy: api.PlacementAntiAffinity, Scope: api.PlacementScopeHost, Strict: true}
	})
	if err != nil || len(b.Items) != 3 {
		t.Fatalf("group batch = %+v, %v", b, err)
	}
	hostsUsed := map[string]bool{}
	refused := 0
	for i, it := range b.Items {
		if want := fmt.Sprintf("g-%d", i+1); it.Name != want || it.Task == nil || it.Error != nil {
			t.Fatalf("item %d = %+v, want %s with a task", i, it, want)
		}
		task, err := c.wait(it.Task, nil)
		if err != nil {
			if !strings.Contains(err.Error(), "anti-affinity") {
				t.Errorf("%s refused: %v, want the anti-affinity reason", it.Name, err)
			}
			refused++
			continue
		}
		vm, err := c.cl.GetVM(ctx, task.Entity.ID)
		if err != nil || vm.Name != it.Name || vm.State != api.VMStopped || hostsUsed[vm.HostID] {
			t.Fatalf("%s: %+v, %v (hosts used %v)", it.Name, vm, err, hostsUsed)
		}
		hostsUsed[vm.HostID] = true
	}
	if refused != 1 || len(hostsUsed) != 2 {
		t.Fatalf("group of 3 on 2 hosts: %d refused, %d hosts used; want 1 and 2", refused, len(hostsUsed))
	}

	// Quota and names: 2 VMs held, "b-3" taken, 7 allowed. Of b-1..b-6,
	// b-3 is NameTaken and the other 5 race for 4: exactly one QuotaError.
	c.done(t)(c.cl.CreateVM(ctx, c.project, vmSpec("b-3")))
	if b, err = batch("b", 6, nil); err != nil || len(b.Items) != 6 {
		t.Fatalf("batch = %+v, %v", b, err)
	}
	made, quota := 0, 0
	for i, it := range b.Items {
		var ae *api.Error
		switch {
		case it.Name != fmt.Sprintf("b-%d", i+1):
			t.Fatalf("item %d named %s", i, it.Name)
		case i == 2:
			if it.Error == nil || it.Error.Code != api.CodeNameTaken {
				t.Fatalf("b-3 = %+v, want NameTaken", it)
			}
		case it.Error != nil && errors.As(it.Error, &ae) && ae.Code == api.CodeQuotaError:
			quota++
		case it.Error != nil || it.Task == nil:
			t.Fatalf("%s = %+v", it.Name, it)
		default:
			c.done(t)(it.Task, nil)
			made++
		}
	}
	q, err := c.cl.GetProjectQuota(ctx, c.project)
	if err != nil {
		t.Fatal(err)
	}
	if made != 4 || quota != 1 || q.QuotaItems["vm"].Usage != 7 {
		t.Fatalf("made %d, QuotaError %d, usage %v; want 4, 1, 7", made, quota, q.QuotaItems["vm"].Usage)
	}
}

// TestBatchCreateSameNames: two batch creates of the same names at once
// (each reads all its names in one round trip first, then commits them
// among other creates): each name is made once, and its other create is
// refused NameTaken, not a conflict, whichever batch commits first.
func TestBatchCreateSameNames(t *testing.T) {
	c := newCloud(t, "vm 100 COUNT, vm.cpu 100 COUNT, vm.memory 100 GB", fake.Config{CPUCount: 64, MemoryMB: 64 * 1024})
	const count = 10
	for round := range 3 {
		name := fmt.Sprintf("r%d", round)
		var bs [2]*api.VMBatch
		var errs [2]error
		var wg sync.WaitGroup
		for i := range bs {
			wg.Go(func() {
				bs[i], errs[i] = c.cl.CreateVMs(ctx, c.project, &api.VMBatchCreateSpec{VMCreateSpec: *vmSpec(name), Count: count})
			})
		}
		wg.Wait()
		for n := range count {
			made, taken := 0, 0
			for i, b := range bs {
				if errs[i] != nil || len(b.Items) != count {
					t.Fatalf("batch %d = %+v, %v", i, b, errs[i])
				}
				it := b.Items[n]
				var ae *api.Error
				switch {
				case it.Error != nil && errors.As(it.Error, &ae) && ae.Code == api.CodeNameTaken:
					taken++
				case it.Error != nil || it.Task == nil:
					t.Fatalf("%s in batch %d = %+v", it.Name, i, it)
				default:
					c.done(t)(it.Task, nil)
					made++
				}
			}
			if made != 1 || taken != 1 {
				t.Fatalf("%s: made %d, NameTaken %d; want 1 and 1", fmt.Sprintf("%s-%d", name, n+1), made, taken)
			}
		}
	}
	vms, err := c.cl.ListVMs(ctx, c.project, "")
	if err != nil || len(vms) != 3*count {
		t.Fatalf("VMs = %d, %v; want %d", len(vms), err, 3*count)
	}
}

// TestCreateStarted: a create that says start (single or batch) makes and
// boots the VM in its one CREATE_VM task, which completes with the VM
// STARTED on its host; a VM whose host fails to boot it ends ERROR with
// the host's reason, holding nothing.
func TestCreateStarted(t *testing.T) {
	c := newCloud(t, "vm 10 COUNT, vm.cpu 10 COUNT, vm.memory 10 GB", fake.Config{FailOnNames: []string{"broken"}})
	spec := vmSpec("one")
	spec.Start = true
	ids := []string{c.done(t)(c.cl.CreateVM(ctx, c.project, spec)).Entity.ID}
	batch := api.VMBatchCreateSpec{VMCreateSpec: *vmSpec("web"), Count: 3}
	batch.Start = true
	b, err := c.cl.CreateVMs(ctx, c.project, &batch)
	if err != nil || len(b.Items) != 3 {
		t.Fatalf("batch = %+v, %v", b, err)
	}
	for _, it := range b.Items {
		if it.Error != nil {
			t.Fatalf("%s refused: %v", it.Name, it.Error)
		}
		ids = append(ids, c.done(t)(it.Task, nil).Entity.ID)
	}
	for _, id := range ids {
		vm, err := c.cl.GetVM(ctx, id)
		tasks, terr := c.cl.ListVMTasks(ctx, id, "")
		if err != nil || vm.State != api.VMStarted || terr != nil || len(tasks) != 1 || tasks[0].Operation != "CREATE_VM" {
			t.Fatalf("VM %s: %+v, %v; tasks %+v, %v; want STARTED by its one CREATE_VM task", id, vm, err, tasks, terr)
		}
	}
	// It runs: stopping it is the host's to do, and done.
	c.done(t)(c.cl.StopVM(ctx, ids[0]))
	if vm, err := c.cl.GetVM(ctx, ids[0]); err != nil || vm.State != api.VMStopped {
		t.Fatalf("stopped VM: %+v, %v", vm, err)
	}

	spec = vmSpec("broken")
	spec.Start = true
	task, err := c.wait(c.cl.CreateVM(ctx, c.project, spec))
	if err == nil {
		t.Fatalf("create of a VM its host cannot make: %+v, want ERROR", task)
	}
	vms, _ := c.cl.ListVMs(ctx, c.project, "broken")
	q, qerr := c.cl.GetProjectQuota(ctx, c.project)
	if len(vms) != 1 || vms[0].State != api.VMError || !strings.Contains(vms[0].ErrorReason, "host") || qerr != nil || q.QuotaItems["vm"].Usage != 4 {
		t.Fatalf("broken VM %+v, quota %+v %v; want ERROR with the host's reason, 4 VMs charged", vms, q, qerr)
	}
}

// TestListsByName: a project's VMs and disks are listed from their names'
// keys, in name order, across pages (100 a page), each once; a deleted
// one is gone from the list.
func TestListsByName(t *testing.T) {
	c := newCloud(t, "vm 200 COUNT, vm.cpu 200 COUNT, vm.memory 200 GB, persistent-disk 10 COUNT", fake.Config{CPUCount: 256, MemoryMB: 512 << 10})
	b, err := c.cl.CreateVMs(ctx, c.project, &api.VMBatchCreateSpec{VMCreateSpec: *vmSpec("web"), Count: 150})
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]string{} // name -> id
	var doomed *api.Task
	for _, it := range b.Items {
		if it.Error != nil {
			t.Fatalf("%s refused: %v", it.Name, it.Error)
		}
		ids[it.Name] = it.Task.Entity.ID
		if it.Name == "web-7" {
			doomed = it.Task
		}
	}
	c.done(t)(doomed, nil)
	c.done(t)(c.cl.DeleteVM(ctx, ids["web-7"]))
	delete(ids, "web-7")
	vms, err := c.cl.ListVMs(ctx, c.project, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(vms) != len(ids) {
		t.Fatalf("listed %d VMs, want %d", len(vms), len(ids))
	}
	for i, v := range vms {
		if ids[v.Name] != v.ID {
			t.Fatalf("listed %s %s, want %s", v.Name, v.ID, ids[v.Name])
		}
		if i > 0 && vms[i-1].Name >= v.Name {
			t.Fatalf("listed %s after %s: not in name order", v.Name, vms[i-1].Name)
		}
	}
	var disks []string
	for _, name := range []string{"logs", "data", "cache"} {
		disks = append(disks, c.done(t)(c.cl.CreateDisk(ctx, c.project, &api.DiskCreateSpec{Name: name, Kind: "persistent-disk", Flavor: "pd", CapacityGB: 1})).Entity.ID)
	}
	c.done(t)(c.cl.DeleteDisk(ctx, disks[1]))
	ds, err := c.cl.ListDisks(ctx, c.project, "")
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 2 || ds[0].Name != "cache" || ds[0].ID != disks[2] || ds[1].Name != "logs" || ds[1].ID != disks[0] {
		t.Fatalf("listed disks %+v, want cache and logs", ds)
	}
}

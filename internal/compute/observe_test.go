package compute_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/agent"
	"github.com/photon-cloud/photon/internal/driver/fake"
	"github.com/photon-cloud/photon/internal/hosts"
	"github.com/photon-cloud/photon/internal/photontest"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tasks"
)

// TestRepeatedReports: heartbeats that repeat a host's last report (its
// desired state unchanged) are not observed again, and a report that
// changes still is, at once: a VM that crashes on its host is reported;
// a power change still completes.
func TestRepeatedReports(t *testing.T) {
	c := newCloud(t, "vm 10 COUNT, vm.cpu 10 COUNT, vm.memory 10 GB")
	// Every heartbeat a full report, the kind a repeat is.
	c.agents = append(c.agents, photontest.NewAgent(t, c.Cloud, fake.Config{}, func(cfg *agent.Config) {
		cfg.FullReportInterval = cfg.HeartbeatInterval
	}))
	c.waitHosts(t, 1)
	task := c.done(t)(c.cl.CreateVM(ctx, c.project, vmSpec("steady")))
	id := task.Entity.ID
	c.done(t)(c.cl.StartVM(ctx, id))

	// The agent reports every 200 ms; nothing changes for 2 s.
	obs0, rep0, _ := c.Server.Compute.ObserveCounts()
	time.Sleep(2 * time.Second)
	obs1, rep1, _ := c.Server.Compute.ObserveCounts()
	t.Logf("in 2 s of a steady host: %d reports observed, %d repeats skipped", obs1-obs0, rep1-rep0)
	if rep1-rep0 < 5 || obs1-obs0 > 2 {
		t.Fatalf("steady host: %d observed, %d skipped; want most skipped", obs1-obs0, rep1-rep0)
	}

	// A change on the host is a new report: observed (the agent boots
	// the crashed VM again at once, so its ERROR may be too brief to read).
	// The host's next full report (its heartbeat) is the one that says
	// so: the reboot that follows is a partial report. (A partial report
	// counted here could be one from before the crash, and the VM then
	// seen STARTED before its ERROR.)
	if err := c.agents[0].Driver.Crash(id, "test"); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if obs, _, _ := c.Server.Compute.ObserveCounts(); obs > obs1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the report after a crash was not observed")
		}
	}
	// And the report after it, the same as before the crash again: seen
	// STARTED once more.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		vm, err := c.cl.GetVM(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if vm.State == api.VMStarted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after the crash the VM stays %s", vm.State)
		}
	}
	// A change of the desired state: observed.
	c.done(t)(c.cl.StopVM(ctx, id))
	if vm, err := c.cl.GetVM(ctx, id); err != nil || vm.State != api.VMStopped {
		t.Fatalf("after stop: %+v %v", vm, err)
	}
}

// TestReportCompletesStep: the host's report that a VM exists (or runs)
// completes the task waiting for it in the same commit (the VM record and
// the task end at one revision), and the end of a create, which changes
// nothing the host runs, leaves the host's desired state unwritten (it was
// written once, by the create; a new revision would wake the host's long
// poll for nothing). A start then writes it once more.
func TestReportCompletesStep(t *testing.T) {
	c := newCloud(t, "vm 10 COUNT, vm.cpu 10 COUNT, vm.memory 10 GB", fake.Config{})
	cl := c.Server.Store.Client()
	revs := func(key string) (create, mod int64, value []byte) {
		t.Helper()
		resp, err := cl.Get(ctx, key)
		if err != nil || len(resp.Kvs) != 1 {
			t.Fatalf("get %s: %v (%d keys)", key, err, len(resp.Kvs))
		}
		return resp.Kvs[0].CreateRevision, resp.Kvs[0].ModRevision, resp.Kvs[0].Value
	}
	create := c.done(t)(c.cl.CreateVM(ctx, c.project, vmSpec("once")))
	id := create.Entity.ID
	_, vmRev, raw := revs(store.Key("vms", id))
	_, taskRev, _ := revs(tasks.Key(create.ID))
	if vmRev != taskRev {
		t.Errorf("create: VM at revision %d, its task completed at %d: want one commit", vmRev, taskRev)
	}
	var v struct {
		HostID string `json:"hostId"`
	}
	if err := json.Unmarshal(raw, &v); err != nil || v.HostID == "" {
		t.Fatalf("VM record %s: %v", raw, err)
	}
	desired := hosts.DesiredKey(v.HostID, id)
	if created, mod, _ := revs(desired); mod != created {
		t.Errorf("desired state written at %d and again at %d by the create's end", created, mod)
	}

	start := c.done(t)(c.cl.StartVM(ctx, id))
	_, vmRev, _ = revs(store.Key("vms", id))
	_, taskRev, _ = revs(tasks.Key(start.ID))
	if vmRev != taskRev {
		t.Errorf("start: VM at revision %d, its task completed at %d: want one commit", vmRev, taskRev)
	}
	if created, mod, _ := revs(desired); mod == created {
		t.Errorf("start did not write the desired state (revision %d)", mod)
	}
	if vm, err := c.cl.GetVM(ctx, id); err != nil || vm.State != api.VMStarted {
		t.Fatalf("after start: %+v %v", vm, err)
	}
}

// TestPartialReports: after a change, the agent reports only what changed
// (the controller's desired state says it takes partial reports), and the
// changes land: a start completes. A partial report changes only the VMs
// it lists: one listed Gone is no longer present, one not listed stays
// as it was; a full report's silence about a VM is "not present".
func TestPartialReports(t *testing.T) {
	c := newCloud(t, "vm 10 COUNT, vm.cpu 10 COUNT, vm.memory 10 GB", fake.Config{})
	var ids []string
	for _, name := range []string{"a", "b", "c"} {
		ids = append(ids, c.done(t)(c.cl.CreateVM(ctx, c.project, vmSpec(name))).Entity.ID)
	}
	_, _, part0 := c.Server.Compute.ObserveCounts()
	c.done(t)(c.cl.StartVM(ctx, ids[1]))
	if _, _, part := c.Server.Compute.ObserveCounts(); part == part0 {
		t.Fatal("no partial report observed after a start")
	}

	// The agent stops: only the reports below reach the controller.
	ag := c.agents[0]
	ag.Stop()
	host, err := client.New(c.URL, client.WithCACertFile(c.CACert), client.WithToken(ag.Credential()))
	if err != nil {
		t.Fatal(err)
	}
	report := func(r api.HostStatusReport) {
		t.Helper()
		if err := host.Do(ctx, "POST", "/v1/agent/hosts/"+ag.HostID()+"/status", &r, nil); err != nil {
			t.Fatal(err)
		}
	}
	type record struct {
		State    string `json:"state"`
		Observed int64  `json:"observed"`
		Present  bool   `json:"present"`
	}
	read := func(id string) record {
		t.Helper()
		var v record
		if _, err := c.Server.Store.Get(ctx, store.Key("vms", id), &v); err != nil {
			t.Fatal(err)
		}
		return v
	}
	present := func(id string) bool { t.Helper(); return read(id).Present }
	// The full report the host would send now.
	var full api.HostStatusReport
	for _, id := range ids {
		r := read(id)
		if !r.Present {
			t.Fatalf("VM %s not present before the reports", id)
		}
		full.VMs = append(full.VMs, api.VMObserved{ID: id, State: r.State, Generation: r.Observed})
	}
	report(full)
	report(full) // a repeat: skipped
	report(api.HostStatusReport{Partial: true, VMs: []api.VMObserved{{ID: ids[0], Gone: true}}})
	if present(ids[0]) || !present(ids[1]) || !present(ids[2]) {
		t.Fatalf("after a partial report of a gone: present = %v %v %v, want false true true", present(ids[0]), present(ids[1]), present(ids[2]))
	}
	// The same full report again: no longer a repeat of what etcd holds.
	report(full)
	if !present(ids[0]) {
		t.Fatal("a full report listing a VM, after a partial report said it was gone: still not present (skipped as a repeat?)")
	}
	// A partial report patches the last full report: the full report
	// that repeats the result (c gone) is skipped as a repeat, and c
	// stays not present; one that lists c again is observed.
	report(api.HostStatusReport{Partial: true, VMs: []api.VMObserved{{ID: ids[2], Gone: true}}})
	obs0, rep0, _ := c.Server.Compute.ObserveCounts()
	report(api.HostStatusReport{VMs: full.VMs[:2]})
	obs1, rep1, _ := c.Server.Compute.ObserveCounts()
	if obs1 != obs0 || rep1 != rep0+1 {
		t.Fatalf("full report repeating the last one with a partial report's change: %d observed, %d skipped; want 0, 1", obs1-obs0, rep1-rep0)
	}
	if !present(ids[0]) || !present(ids[1]) || present(ids[2]) {
		t.Fatalf("after a partial report of c gone: present = %v %v %v, want true true false", present(ids[0]), present(ids[1]), present(ids[2]))
	}
	report(full)
	if obs, _, _ := c.Server.Compute.ObserveCounts(); obs != obs1+1 || !present(ids[2]) {
		t.Fatalf("a full report listing c again: %d observed, c present %v; want 1, true", obs-obs1, present(ids[2]))
	}
	// A full report that lists only b: a and c are not present.
	report(api.HostStatusReport{VMs: []api.VMObserved{full.VMs[1]}})
	if present(ids[0]) || present(ids[2]) || !present(ids[1]) {
		t.Fatalf("after a full report of b alone: present %v %v %v; want false true false", present(ids[0]), present(ids[1]), present(ids[2]))
	}
}

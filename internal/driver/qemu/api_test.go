package qemu

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/photontest"
)

// TestThroughTheAPI runs a controller and a `photond agent --driver qemu`
// as processes and drives real VMs through the API: upload the test image,
// create and start VMs (median time from the API call to the instance-id
// on the console), suspend and resume, attach a persistent disk (the guest
// sees it), stop and start; then kill -9 the agent while VMs run and
// restart it: the same QEMU processes are re-adopted; then delete: no
// QEMU process, socket or file of the VMs remains.
func TestThroughTheAPI(t *testing.T) {
	image := testImage(t)
	testAccel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	c := photontest.StartController(t, "", nil, "--heartbeat-timeout", "5s", "--host-timeout", "60s")
	cl, err := client.New(c.URL, client.WithCACertFile(c.CACert), client.WithToken(c.Token))
	if err != nil {
		t.Fatal(err)
	}
	wait := photontest.Done(t, ctx, cl)
	waitFor := func(what string, limit time.Duration, ok func() bool) {
		t.Helper()
		deadline := time.Now().Add(limit)
		for !ok() {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within %s", what, limit)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	agentDir := t.TempDir()
	// As an older agent left it: the agent makes it its user's only.
	if err := os.Chmod(agentDir, 0o755); err != nil {
		t.Fatal(err)
	}
	jt, err := cl.CreateJoinToken(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	// The join token from a file, not the command line (which ps shows).
	tokenFile := filepath.Join(t.TempDir(), "join-token")
	if err := os.WriteFile(tokenFile, []byte(jt.Token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	agent := photontest.StartAgentProcess(t, c, agentDir, "--join-token-file", tokenFile, "--address", "127.0.0.1",
		"--heartbeat", "300ms", "--driver", "qemu", "--qemu-accel", accel, "--qemu-stop-timeout", "20s")
	// What the agent's driver keeps, read by a Driver of our own (it does
	// not touch the VMs).
	view := &Driver{cfg: Config{DataDir: filepath.Join(agentDir, "qemu")}}
	view.cfg.setDefaults()
	view.runDir = socketDir(view.cfg.DataDir)
	runDirsMu.Lock()
	runDirs = append(runDirs, view.runDir)
	runDirsMu.Unlock()
	t.Cleanup(func() {
		// Whatever happens, no VM outlives the test.
		for _, pid := range view.ourProcesses() {
			_ = syscallKill(pid)
		}
	})
	var host api.Host
	waitFor("host READY", 30*time.Second, func() bool {
		hs, err := cl.ListHosts(ctx)
		if err != nil || len(hs) != 1 || hs[0].State != api.HostReady {
			return false
		}
		host = hs[0]
		return true
	})
	if !strings.HasPrefix(host.EsxVersion, "qemu-") {
		t.Errorf("host hypervisor %q, want qemu-...", host.EsxVersion)
	}

	lim, _ := api.ParseLimits("vm 20 COUNT, vm.cpu 20 COUNT, vm.memory 40 GB")
	tt := wait(cl.CreateTenant(ctx, &api.TenantCreateSpec{Name: "t", Quota: api.QuotaSpecFromItems(lim)}))
	project := wait(cl.CreateProject(ctx, tt.Entity.ID, &api.ProjectCreateSpec{Name: "p", Quota: api.QuotaSpecFromItems(lim)})).Entity.ID
	for _, f := range []api.FlavorCreateSpec{
		{Name: "tiny", Kind: "vm", Cost: []api.QuotaLineItem{{Key: "vm", Value: 1, Unit: "COUNT"}, {Key: "vm.cpu", Value: 1, Unit: "COUNT"}, {Key: "vm.memory", Value: 128, Unit: "MB"}}},
		{Name: "eph", Kind: "ephemeral-disk", Cost: []api.QuotaLineItem{{Key: "ephemeral-disk", Value: 1, Unit: "COUNT"}}},
		{Name: "pd", Kind: "persistent-disk", Cost: []api.QuotaLineItem{{Key: "persistent-disk", Value: 1, Unit: "COUNT"}}},
	} {
		wait(cl.CreateFlavor(ctx, &f))
	}
	img := wait(cl.UploadImageFile(ctx, image, client.ImageUpload{Name: "test", ReplicationType: "ON_DEMAND", ProjectID: project})).Entity.ID

	console := func(id string) string {
		b, _ := os.ReadFile(filepath.Join(view.cfg.DataDir, vmsDir, id, "console.log"))
		return string(b)
	}
	// VMs, created and started one after the other: the time from the
	// start call to the instance-id on the console. The last is created
	// and started in one task (the create spec's start): it is STARTED
	// when that task completes, the VM's only task.
	var vms []string
	var took []time.Duration
	for i := range 3 {
		name := "vm" + strconv.Itoa(i)
		spec := &api.VMCreateSpec{Name: name, Flavor: "tiny", SourceImageID: img, Start: i == 2,
			AttachedDisks: []api.AttachedDiskCreateSpec{{Name: "boot", Kind: "ephemeral-disk", Flavor: "eph", CapacityGB: 1, BootDisk: true}}}
		created := time.Now()
		id := wait(cl.CreateVM(ctx, project, spec)).Entity.ID
		vms = append(vms, id)
		start := time.Now()
		if spec.Start {
			vm, err := cl.GetVM(ctx, id)
			tasks, terr := cl.ListVMTasks(ctx, id, "")
			if err != nil || vm.State != api.VMStarted || terr != nil || len(tasks) != 1 || tasks[0].Operation != "CREATE_VM" {
				t.Fatalf("%s created with start: %+v, %v; tasks %+v, %v; want STARTED by its one CREATE_VM task", name, vm, err, tasks, terr)
			}
		} else {
			wait(cl.StartVM(ctx, id))
		}
		waitFor(name+": instance-id on the console", 90*time.Second, func() bool {
			return strings.Contains(console(id), "instance-id: "+id)
		})
		if spec.Start {
			t.Logf("API create call (with start) to instance-id on the console: %s", time.Since(created).Round(time.Millisecond))
		} else {
			took = append(took, time.Since(start))
		}
		// The hostname line follows the instance id's; the console may
		// have been read between the two.
		hostname := func() bool { return strings.Contains(console(id), "local-hostname: "+name) }
		for end := time.Now().Add(10 * time.Second); !hostname() && time.Now().Before(end); {
			time.Sleep(100 * time.Millisecond)
		}
		if !hostname() {
			t.Errorf("%s: console lacks its hostname:\n%s", name, console(id))
		}
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	t.Logf("API start call to instance-id on the console: median %s (of %v)", took[len(took)/2].Round(time.Millisecond), took)

	// Suspend, resume; a persistent disk the running guest sees.
	wait(cl.SuspendVM(ctx, vms[0]))
	wait(cl.ResumeVM(ctx, vms[0]))
	waitFor(vms[0]+": ready", 60*time.Second, func() bool { return strings.Contains(console(vms[0]), "ready") })
	dk := wait(cl.CreateDisk(ctx, project, &api.DiskCreateSpec{Name: "data", Kind: "persistent-disk", Flavor: "pd", CapacityGB: 1,
		Affinities: []api.LocalitySpec{{Kind: "vm", ID: vms[0]}}})).Entity.ID
	// The console through the API (the agent relays it): a plain read has
	// the seed's instance-id; a follow sees the guest find a new disk.
	if r, err := cl.VMConsole(ctx, vms[0], false); err != nil {
		t.Errorf("console through the API: %v", err)
	} else {
		b, _ := io.ReadAll(r)
		r.Close()
		if !strings.Contains(string(b), "instance-id: "+vms[0]) {
			t.Errorf("console through the API lacks the instance-id:\n%s", b)
		}
	}
	fctx, fcancel := context.WithCancel(ctx)
	follow, err := cl.VMConsole(fctx, vms[0], true)
	if err != nil {
		t.Fatalf("console -f through the API: %v", err)
	}
	sawDisk := make(chan bool, 1)
	go func() {
		s := bufio.NewScanner(follow)
		for s.Scan() {
			if strings.Contains(s.Text(), "block-devices: sda vda vdb") {
				sawDisk <- true
				return
			}
		}
		sawDisk <- false
	}()
	wait(cl.AttachDisk(ctx, vms[0], dk))
	waitFor("the guest sees the new disk", 30*time.Second, func() bool {
		return strings.Contains(console(vms[0]), "block-devices: sda vda vdb")
	})
	// Running VMs, a persistent disk attached: every host file is the
	// agent's user's only; the image is opened as the format the
	// controller stored it in, with no backing file of its own.
	checkPrivate(t, agentDir, view.runDir)
	checkController(t, c.DataDir)
	checkPinned(t, view, vms[0])
	// The format came from the controller: the host's desired state says it.
	var ident struct{ HostID, Credential string }
	if b, err := os.ReadFile(filepath.Join(agentDir, "agent.json")); err != nil || json.Unmarshal(b, &ident) != nil {
		t.Fatalf("agent.json: %s, %v", b, err)
	}
	hc, err := client.New(c.URL, client.WithCACertFile(c.CACert), client.WithToken(ident.Credential))
	if err != nil {
		t.Fatal(err)
	}
	var desired api.HostDesiredState
	if err := hc.Do(ctx, "GET", "/v1/agent/hosts/"+ident.HostID+"/desired", nil, &desired); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, v := range desired.VMs {
		if v.ID == vms[0] {
			found = true
			if len(v.Disks) == 0 || v.Disks[0].ImageFormat != "qcow2" {
				t.Errorf("desired state of %s: disks %+v, want the boot disk's imageFormat qcow2", v.ID, v.Disks)
			}
		}
	}
	if !found {
		t.Errorf("desired state %+v lacks VM %s", desired, vms[0])
	}
	select {
	case ok := <-sawDisk:
		if !ok {
			t.Errorf("the console follow ended before the guest saw the disk")
		}
	case <-time.After(10 * time.Second):
		t.Errorf("the console follow did not show the guest seeing the disk")
	}
	fcancel()
	follow.Close()
	wait(cl.DetachDisk(ctx, vms[0], dk))
	wait(cl.DeleteDisk(ctx, dk))
	// Stop (ACPI: the guest powers itself off) and start again.
	wait(cl.StopVM(ctx, vms[1]))
	if !strings.Contains(console(vms[1]), "power button, powering off") {
		t.Errorf("%s: stopped without the guest powering off:\n%s", vms[1], console(vms[1]))
	}
	wait(cl.StartVM(ctx, vms[1]))

	// kill -9 a VM's QEMU: the host reports it and the agent boots it
	// again (its desired state is STARTED).
	var victim int
	for _, pid := range view.ourProcesses() {
		if cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline"); strings.Contains(string(cmdline), qemuName(vms[2])+"\x00") {
			victim = pid
		}
	}
	if victim == 0 {
		t.Fatalf("no QEMU process for %s", vms[2])
	}
	killed := time.Now()
	_ = syscallKill(victim)
	waitFor("the killed VM runs again", 60*time.Second, func() bool {
		for _, pid := range view.ourProcesses() {
			cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
			if pid != victim && strings.Contains(string(cmdline), qemuName(vms[2])+"\x00") {
				return true
			}
		}
		return false
	})
	t.Logf("a killed VM's QEMU ran again %s after kill -9", time.Since(killed).Round(time.Millisecond))
	waitFor("it boots again", 90*time.Second, func() bool {
		return strings.Count(console(vms[2]), "instance-id: "+vms[2]) == 2
	})

	// kill -9 the agent while VMs run; restart it: the same QEMU processes.
	pids := map[int]bool{}
	for _, pid := range view.ourProcesses() {
		pids[pid] = true
	}
	if len(pids) != len(vms) {
		t.Fatalf("%d QEMU processes for %d VMs", len(pids), len(vms))
	}
	agent.Kill()
	time.Sleep(time.Second)
	for _, pid := range view.ourProcesses() {
		if !pids[pid] {
			t.Errorf("a new QEMU process %d while the agent was dead", pid)
		}
		delete(pids, pid)
	}
	if len(pids) > 0 {
		t.Fatalf("QEMU processes %v died with the agent", pids)
	}
	agent.Start(t)
	waitFor("the agent re-adopts its VMs", 30*time.Second, func() bool {
		return strings.Contains(agent.Output(), "qemu: recovered") && strings.Contains(agent.Output(), "vms=3")
	})
	for _, id := range vms[:2] {
		v, err := cl.GetVM(ctx, id)
		if err != nil || v.State != api.VMStarted {
			t.Errorf("after the agent restart, VM %s: %+v, %v", id, v, err)
		}
	}
	// The re-adopted VMs obey: stop, delete. (The controller keeps a VM
	// that broke ERROR even after its host booted it again; delete takes
	// an ERROR VM as it is.)
	for _, id := range vms {
		if v, _ := cl.GetVM(ctx, id); v != nil && v.State == api.VMStarted {
			wait(cl.StopVM(ctx, id))
		}
		wait(cl.DeleteVM(ctx, id))
	}
	waitFor("no QEMU process left", 30*time.Second, func() bool { return len(view.ourProcesses()) == 0 })
	for _, id := range vms {
		if left := leftovers(view, id); len(left) > 0 {
			t.Errorf("VM %s left behind: %v", id, left)
		}
	}
}

// checkPrivate walks dirs: every directory must be 0700, every file
// (disks, records, seeds, logs, sockets, the image cache) 0600.
func checkPrivate(t *testing.T, dirs ...string) {
	t.Helper()
	n := 0
	for _, dir := range dirs {
		err := filepath.WalkDir(dir, func(p string, e fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := os.Lstat(p)
			if err != nil {
				return err
			}
			want := fs.FileMode(0o600)
			if fi.IsDir() {
				want = 0o700
			}
			n++
			if fi.Mode().Perm() != want {
				t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
			}
			return nil
		})
		if err != nil {
			t.Error(err)
		}
	}
	t.Logf("host files: %d checked under %v", n, dirs)
}

// checkController: the controller's data dir and what it keeps of its
// own are its user's only (its CA certificate and URL are public).
func checkController(t *testing.T, dir string) {
	t.Helper()
	for p, want := range map[string]fs.FileMode{
		dir: 0o700, filepath.Join(dir, "etcd"): 0o700, filepath.Join(dir, "images"): 0o700,
		filepath.Join(dir, "admin.token"): 0o600, filepath.Join(dir, "etcd", "etcd.sock"): 0o600,
	} {
		fi, err := os.Stat(p)
		if err != nil {
			t.Error(err)
			continue
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", p, fi.Mode().Perm(), want)
		}
	}
}

// checkPinned: the VM's QEMU opens its boot disk's image as a node of its
// own, qcow2 (the format the controller recorded at upload) with
// "backing": null, under the overlay.
func checkPinned(t *testing.T, view *Driver, id string) {
	t.Helper()
	var pid int
	for _, p := range view.ourProcesses() {
		if cmdline, _ := os.ReadFile("/proc/" + strconv.Itoa(p) + "/cmdline"); strings.Contains(string(cmdline), qemuName(id)+"\x00") {
			pid = p
		}
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		t.Fatalf("QEMU of %s: %v", id, err)
	}
	var base, overlay map[string]any
	args := strings.Split(string(cmdline), "\x00")
	for i := 0; i+1 < len(args); i++ {
		if args[i] != "-blockdev" {
			continue
		}
		var b map[string]any
		if err := json.Unmarshal([]byte(args[i+1]), &b); err != nil {
			t.Fatal(err)
		}
		if name, _ := b["node-name"].(string); strings.HasPrefix(name, "b") {
			base = b
		} else if backing, ok := b["backing"].(string); ok && base != nil && backing == base["node-name"] {
			overlay = b
		}
	}
	if base == nil || overlay == nil {
		t.Fatalf("QEMU of %s: no image node under its boot overlay: %q", id, args)
	}
	if backing, has := base["backing"]; base["driver"] != "qcow2" || base["read-only"] != true || !has || backing != nil {
		t.Errorf("image node %v: want qcow2, read-only, \"backing\": null", base)
	}
	// The format came from the controller: the agent's desired state says it.
	rec, err := os.ReadFile(filepath.Join(view.cfg.DataDir, vmsDir, id, recordFile))
	if err != nil || !strings.Contains(string(rec), `"baseFormat": "qcow2"`) {
		t.Errorf("VM record %s, %v: want baseFormat qcow2", rec, err)
	}
}

package main_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/photontest"
)

// TestAgentsAsProcesses runs a controller and three agents as separate
// processes (fake driver): the VM and disk lifecycle; then kill -9 of an
// agent with VMs: its host turns ERROR within the heartbeat timeout, and
// after a restart it is READY again with its VMs reconciled and nothing
// duplicated.
func TestAgentsAsProcesses(t *testing.T) {
	const timeout = 3 * time.Second
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	c := photontest.StartController(t, "", nil, "--heartbeat-timeout", timeout.String(), "--host-timeout", "30s")
	cl, err := client.New(c.URL, client.WithCACertFile(c.CACert), client.WithToken(c.Token))
	if err != nil {
		t.Fatal(err)
	}
	wait := photontest.Done(t, ctx, cl)

	agents := map[string]*photontest.AgentProcess{} // by host address
	for i := range 3 {
		jt, err := cl.CreateJoinToken(ctx, "")
		if err != nil {
			t.Fatal(err)
		}
		addr := fmt.Sprintf("10.9.0.%d", i+1)
		agents[addr] = photontest.StartAgentProcess(t, c, t.TempDir(), "--join-token", jt.Token, "--address", addr,
			"--heartbeat", "300ms", "--fake-cpus", "8", "--fake-memory-mb", "16384")
	}
	hostsIn := func(state string) map[string]api.Host {
		hs, err := cl.ListHosts(ctx)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]api.Host{}
		for _, h := range hs {
			if h.State == state {
				out[h.Address] = h
			}
		}
		return out
	}
	waitFor := func(what string, limit time.Duration, ok func() bool) time.Duration {
		t.Helper()
		start := time.Now()
		for !ok() {
			if time.Since(start) > limit {
				t.Fatalf("%s: not within %s", what, limit)
			}
			time.Sleep(50 * time.Millisecond)
		}
		return time.Since(start)
	}
	waitFor("3 hosts READY", 30*time.Second, func() bool { return len(hostsIn(api.HostReady)) == 3 })

	// Tenancy and flavors.
	lim, _ := api.ParseLimits("vm 20 COUNT, vm.cpu 20 COUNT, vm.memory 40 GB")
	tt := wait(cl.CreateTenant(ctx, &api.TenantCreateSpec{Name: "t", Quota: api.QuotaSpecFromItems(lim)}))
	pt := wait(cl.CreateProject(ctx, tt.Entity.ID, &api.ProjectCreateSpec{Name: "p", Quota: api.QuotaSpecFromItems(lim)}))
	project := pt.Entity.ID
	for _, f := range []api.FlavorCreateSpec{
		{Name: "small", Kind: "vm", Cost: []api.QuotaLineItem{{Key: "vm", Value: 1, Unit: "COUNT"}, {Key: "vm.cpu", Value: 1, Unit: "COUNT"}, {Key: "vm.memory", Value: 1, Unit: "GB"}}},
		{Name: "eph", Kind: "ephemeral-disk", Cost: []api.QuotaLineItem{{Key: "ephemeral-disk", Value: 1, Unit: "COUNT"}}},
		{Name: "pd", Kind: "persistent-disk", Cost: []api.QuotaLineItem{{Key: "persistent-disk", Value: 1, Unit: "COUNT"}}},
	} {
		wait(cl.CreateFlavor(ctx, &f))
	}

	// Six VMs, started.
	var vms []string
	for i := range 6 {
		spec := &api.VMCreateSpec{Name: fmt.Sprintf("vm%d", i), Flavor: "small",
			AttachedDisks: []api.AttachedDiskCreateSpec{{Name: "boot", Kind: "ephemeral-disk", Flavor: "eph", CapacityGB: 1, BootDisk: true}}}
		id := wait(cl.CreateVM(ctx, project, spec)).Entity.ID
		wait(cl.StartVM(ctx, id))
		vms = append(vms, id)
	}
	// Disk lifecycle on the first VM.
	d := wait(cl.CreateDisk(ctx, project, &api.DiskCreateSpec{Name: "data", Kind: "persistent-disk", Flavor: "pd", CapacityGB: 5,
		Affinities: []api.LocalitySpec{{Kind: "vm", ID: vms[0]}}})).Entity.ID
	wait(cl.AttachDisk(ctx, vms[0], d))
	wait(cl.DetachDisk(ctx, vms[0], d))
	wait(cl.DeleteDisk(ctx, d))
	// Stop and delete the last VM.
	wait(cl.StopVM(ctx, vms[5]))
	wait(cl.DeleteVM(ctx, vms[5]))
	vms = vms[:5]

	// Kill -9 the agent of the first VM's host.
	vm0, err := cl.GetVM(ctx, vms[0])
	if err != nil {
		t.Fatal(err)
	}
	victim := agents[vm0.Host]
	onVictim := func() []api.VM {
		l, err := cl.ListHostVMs(ctx, vm0.HostID)
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	before := onVictim()
	victim.Kill()
	took := waitFor("host ERROR after kill -9", timeout+10*time.Second, func() bool { _, ok := hostsIn(api.HostError)[vm0.Host]; return ok })
	t.Logf("host %s ERROR %s after its agent was killed (timeout %s)", vm0.Host, took.Round(100*time.Millisecond), timeout)
	if _, err := cl.StopVM(ctx, vms[0]); err == nil || !strings.Contains(err.Error(), "InvalidHostState") {
		t.Errorf("stop a VM on a dead host: %v, want InvalidHostState", err)
	}

	// Restart: READY again, VMs reconciled, nothing duplicated.
	victim.Start(t)
	took = waitFor("host READY after restart", 30*time.Second, func() bool { _, ok := hostsIn(api.HostReady)[vm0.Host]; return ok })
	t.Logf("host %s READY %s after its agent restarted", vm0.Host, took.Round(100*time.Millisecond))
	after := onVictim()
	if len(after) != len(before) {
		t.Fatalf("VMs on the host: %d before, %d after", len(before), len(after))
	}
	for _, v := range after {
		if v.State != api.VMStarted {
			t.Errorf("VM %s is %s after the agent restart, want STARTED", v.Name, v.State)
		}
	}
	files, _ := filepath.Glob(filepath.Join(victim.DataDir, "fake", "vms", "*.json"))
	if len(files) != len(after) {
		t.Errorf("the driver holds %d VMs, the controller places %d there", len(files), len(after))
	}
	// It still works: stop, and delete, a VM on it.
	wait(cl.StopVM(ctx, vms[0]))
	wait(cl.DeleteVM(ctx, vms[0]))
	waitFor("driver removes the deleted VM", 10*time.Second, func() bool {
		_, err := os.Stat(filepath.Join(victim.DataDir, "fake", "vms", vms[0]+".json"))
		return os.IsNotExist(err)
	})
}

package main_test

import (
	"context"
	"errors"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/photontest"
)

// TestPlacementFlags: --cpu-overcommit and --memory-overcommit scale what
// the scheduler places on a host, through the binary and the API, for
// photond controller (with an agent process) and photond dev; bad values
// stop photond at start with a message naming the flag.
func TestPlacementFlags(t *testing.T) {
	t.Run("controller cpu", func(t *testing.T) {
		// One host reporting 2 CPUs, overcommitted 4 times: 8 vCPUs, so
		// four VMs of 2 vCPUs (no VM may have more vCPUs than the host
		// has CPUs).
		c := photontest.StartController(t, "", nil, "--cpu-overcommit", "4", "--placement-sample", "-1")
		cl := newClient(t, c)
		jt, err := cl.CreateJoinToken(context.Background(), "")
		if err != nil {
			t.Fatal(err)
		}
		photontest.StartAgentProcess(t, c, t.TempDir(), "--join-token", jt.Token, "--address", "10.9.1.1",
			"--heartbeat", "300ms", "--fake-cpus", "2", "--fake-memory-mb", "65536")
		fillHost(t, cl, 2, 1, 4, "NotEnoughCpuResource")
	})
	t.Run("dev memory", func(t *testing.T) {
		// One local host reporting 4096 MB, overcommitted 2 times: 8 GB.
		c := photontest.StartDev(t, "", "--sim-hosts", "1", "--fake-cpus", "64", "--fake-memory-mb", "4096",
			"--memory-overcommit", "2", "--placement-sample", "8")
		fillHost(t, newClient(t, c), 1, 4, 2, "NotEnoughMemoryResource")
	})
	t.Run("bad values", func(t *testing.T) {
		bin := photontest.Binary(t, "photond")
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"controller", "--cpu-overcommit", "0"}, "--cpu-overcommit 0: want a ratio above 0"},
			{[]string{"controller", "--memory-overcommit", "-1.5"}, "--memory-overcommit -1.5: want a ratio above 0"},
			{[]string{"controller", "--cpu-overcommit", "NaN"}, "--cpu-overcommit NaN: want a ratio above 0"},
			{[]string{"controller", "--placement-sample", "-2"}, "--placement-sample -2: want a count of hosts"},
			{[]string{"dev", "--cpu-overcommit", "-4"}, "--cpu-overcommit -4: want a ratio above 0"},
			{[]string{"dev", "--memory-overcommit", "lots"}, `invalid argument "lots" for "--memory-overcommit"`},
		} {
			dir := filepath.Join(t.TempDir(), "data")
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			cmd := exec.CommandContext(ctx, bin, append(tc.args, "--data-dir", dir, "--listen", "127.0.0.1:0")...)
			out, err := cmd.CombinedOutput()
			cancel()
			var ee *exec.ExitError
			if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(string(out), tc.want) ||
				strings.Contains(string(out), "panic") || strings.Contains(string(out), "serving") {
				t.Errorf("photond %s: %v\n%s\nwant exit status 1 and %q", strings.Join(tc.args, " "), err, out, tc.want)
			}
		}
	})
}

func newClient(t *testing.T, c *photontest.Controller) *client.Client {
	t.Helper()
	cl, err := client.New(c.URL, client.WithCACertFile(c.CACert), client.WithToken(c.Token))
	if err != nil {
		t.Fatal(err)
	}
	return cl
}

// fillHost waits for the one host to be READY, then creates VMs of cpu
// vCPUs and memGB GB: fit of them are placed, and one more is refused
// with code.
func fillHost(t *testing.T, cl *client.Client, cpu, memGB, fit int, code string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for start := time.Now(); ; time.Sleep(50 * time.Millisecond) {
		hs, err := cl.ListHosts(ctx)
		if err == nil && len(hs) == 1 && hs[0].State == api.HostReady {
			break
		}
		if time.Since(start) > 30*time.Second {
			t.Fatalf("no READY host: %+v %v", hs, err)
		}
	}
	run := func(task *api.Task, err error) (*api.Task, error) {
		if err == nil {
			task, err = cl.WaitTask(ctx, task)
		}
		if err == nil {
			err = task.Err()
		}
		return task, err
	}
	must := func(task *api.Task, err error) *api.Task {
		t.Helper()
		task, err = run(task, err)
		if err != nil {
			t.Fatal(err)
		}
		return task
	}
	lim, _ := api.ParseLimits("vm 100 COUNT, vm.cpu 1000 COUNT, vm.memory 1000 GB")
	tt := must(cl.CreateTenant(ctx, &api.TenantCreateSpec{Name: "t", Quota: api.QuotaSpecFromItems(lim)}))
	project := must(cl.CreateProject(ctx, tt.Entity.ID, &api.ProjectCreateSpec{Name: "p", Quota: api.QuotaSpecFromItems(lim)})).Entity.ID
	must(cl.CreateFlavor(ctx, &api.FlavorCreateSpec{Name: "f", Kind: "vm", Cost: []api.QuotaLineItem{
		{Key: "vm", Value: 1, Unit: "COUNT"}, {Key: "vm.cpu", Value: float64(cpu), Unit: "COUNT"}, {Key: "vm.memory", Value: float64(memGB), Unit: "GB"}}}))
	must(cl.CreateFlavor(ctx, &api.FlavorCreateSpec{Name: "eph", Kind: "ephemeral-disk", Cost: []api.QuotaLineItem{{Key: "ephemeral-disk", Value: 1, Unit: "COUNT"}}}))
	create := func(i int) (*api.Task, error) {
		return run(cl.CreateVM(ctx, project, &api.VMCreateSpec{Name: fmt.Sprintf("vm%d", i), Flavor: "f",
			AttachedDisks: []api.AttachedDiskCreateSpec{{Name: "boot", Kind: "ephemeral-disk", Flavor: "eph", CapacityGB: 1, BootDisk: true}}}))
	}
	for i := range fit {
		if _, err := create(i); err != nil {
			t.Fatalf("VM %d of %d (%d vCPU, %d GB each): %v", i+1, fit, cpu, memGB, err)
		}
	}
	_, err := create(fit)
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != code {
		t.Fatalf("VM %d (%d vCPU, %d GB): %v, want %s", fit+1, cpu, memGB, err, code)
	}
	t.Logf("VM %d refused: %v", fit+1, err)
}

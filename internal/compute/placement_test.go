package compute_test

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver/fake"
)

// TestPlacementGroupThroughAPI: a strict anti-affinity group of 10 on 8
// hosts, created concurrently: 8 placed on distinct hosts, 2 refused with
// the reason; a dry run shows the choice and scoring without creating
// anything; deleting a member frees its host for the group.
func TestPlacementGroupThroughAPI(t *testing.T) {
	hosts := make([]fake.Config, 8)
	for i := range hosts {
		hosts[i] = fake.Config{CPUCount: 16, MemoryMB: 16 * 1024}
	}
	c := newCloud(t, "vm 100 COUNT, vm.cpu 100 COUNT, vm.memory 100 GB", hosts...)
	group := &api.PlacementGroupSpec{Name: "web", Policy: api.PlacementAntiAffinity, Scope: api.PlacementScopeHost, Strict: true}
	spec := func(name string) *api.VMCreateSpec {
		s := vmSpec(name)
		s.PlacementGroup = group
		return s
	}

	// Dry run on the empty fleet: placed, scored, nothing made.
	var pv api.PlacementPreview
	if err := c.cl.Do(ctx, "POST", "/v1/projects/"+c.project+"/vms?dryRun=true", spec("dry"), &pv); err != nil {
		t.Fatal(err)
	}
	if !pv.Placed || pv.HostID == "" || pv.Host == "" || pv.Feasible != 8 || len(pv.Candidates) == 0 {
		t.Fatalf("dry run = %+v", pv)
	}
	var ae *api.Error
	if err := c.cl.Do(ctx, "POST", "/v1/projects/"+c.project+"/vms?dryRun=yes", spec("dry"), &pv); !errors.As(err, &ae) || ae.Code != api.CodeInvalidQuery {
		t.Fatalf("dryRun=yes: %v; want InvalidQuery", err)
	}
	if vms, err := c.cl.ListVMs(ctx, c.project, ""); err != nil || len(vms) != 0 {
		t.Fatalf("dry run made VMs: %v %v", vms, err)
	}

	var mu sync.Mutex
	var ok []string
	var refused []string
	var wg sync.WaitGroup
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			task, err := c.wait(c.cl.CreateVM(ctx, c.project, spec(fmt.Sprint("web-", i))))
			mu.Lock()
			defer mu.Unlock()
			var ae *api.Error
			switch {
			case err == nil:
				ok = append(ok, task.Entity.ID)
			case errors.As(err, &ae) && ae.Code == "UnfullfillableAffinities":
				refused = append(refused, ae.Message)
			default:
				t.Errorf("create: %v", err)
			}
		}()
	}
	wg.Wait()
	if len(ok) != 8 || len(refused) != 2 {
		t.Fatalf("%d placed, refused %q", len(ok), refused)
	}
	for _, m := range refused {
		if !strings.Contains(m, "8 placement group web (anti-affinity per host)") {
			t.Errorf("refusal %q does not name the group", m)
		}
	}
	seen := map[string]bool{}
	for _, id := range ok {
		vm, err := c.cl.GetVM(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if seen[vm.HostID] {
			t.Fatalf("two members on host %s", vm.HostID)
		}
		seen[vm.HostID] = true
	}
	// The dry run now refuses, per constraint.
	pv = api.PlacementPreview{}
	if err := c.cl.Do(ctx, "POST", "/v1/projects/"+c.project+"/vms?dryRun=true", spec("dry"), &pv); err != nil {
		t.Fatal(err)
	}
	if pv.Placed || pv.Error == nil || pv.Eliminated["placement group web (anti-affinity per host)"] != 8 {
		t.Fatalf("dry run on a full group = %+v", pv)
	}
	// A member leaves: its host takes a new one.
	vm, _ := c.cl.GetVM(ctx, ok[0])
	c.done(t)(c.cl.DeleteVM(ctx, ok[0]))
	task := c.done(t)(c.cl.CreateVM(ctx, c.project, spec("web-again")))
	if again, err := c.cl.GetVM(ctx, task.Entity.ID); err != nil || again.HostID != vm.HostID {
		t.Fatalf("replacement on %s, want %s (%v)", again.HostID, vm.HostID, err)
	}
	// A different policy for the same group is refused.
	bad := vmSpec("bad")
	bad.PlacementGroup = &api.PlacementGroupSpec{Name: "web", Policy: api.PlacementAffinity}
	if _, err := c.cl.CreateVM(ctx, c.project, bad); err == nil || !strings.Contains(err.Error(), "anti-affinity") {
		t.Fatalf("policy change: %v", err)
	}
}

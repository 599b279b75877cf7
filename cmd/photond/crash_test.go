package main_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/photontest"
)

// TestCrashBetweenSteps kills the controller (SIGKILL, through a failpoint)
// after a project's quota is reserved and before the project is made READY,
// then restarts it: the task resumes and completes, the quota is held once.
// Run on embedded etcd (state in the data dir) and on an external etcd.
func TestCrashBetweenSteps(t *testing.T) {
	for _, mode := range []struct {
		name string
		args func(t *testing.T) []string
	}{
		{"embedded", func(*testing.T) []string { return nil }},
		{"external", func(t *testing.T) []string { return []string{"--etcd-endpoints", photontest.ExternalEtcd(t)} }},
	} {
		t.Run(mode.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			args := mode.args(t)
			dir := t.TempDir()
			c := photontest.StartController(t, dir, []string{"PHOTON_FAILPOINTS=CREATE_PROJECT/CREATE_PROJECT=crash"}, args...)
			cl, err := client.New(c.URL, client.WithCACertFile(c.CACert), client.WithToken(c.Token))
			if err != nil {
				t.Fatal(err)
			}
			q := &api.QuotaSpec{QuotaItems: map[string]api.QuotaItem{"vm.cpu": {Limit: 10, Unit: "COUNT"}}}
			tt, err := cl.CreateTenant(ctx, &api.TenantCreateSpec{Name: "t1", Quota: q})
			if err != nil || tt.State != api.TaskCompleted {
				t.Fatalf("create tenant: %+v, %v", tt, err)
			}
			pq := &api.QuotaSpec{QuotaItems: map[string]api.QuotaItem{"vm.cpu": {Limit: 4, Unit: "COUNT"}}}
			if _, err := cl.CreateProject(ctx, tt.Entity.ID, &api.ProjectCreateSpec{Name: "p1", Quota: pq}); err == nil {
				t.Fatal("create project answered; the failpoint should have killed the controller")
			}
			if err := c.Wait(ctx); err != nil {
				t.Fatalf("controller still running after the failpoint: %v", err)
			}

			// Restart without the failpoint, on the same data dir (and etcd).
			c2 := photontest.StartController(t, dir, nil, args...)
			cl2, err := client.New(c2.URL, client.WithCACertFile(c2.CACert), client.WithToken(c2.Token))
			if err != nil {
				t.Fatal(err)
			}
			var task api.Task
			for {
				l, err := cl2.ListTasks(ctx, client.TaskFilter{EntityKind: api.KindProject})
				if err != nil {
					t.Fatal(err)
				}
				if len(l) != 1 {
					t.Fatalf("project tasks after restart = %+v, want the one interrupted", l)
				}
				if task = l[0]; task.Done() {
					break
				}
				if ctx.Err() != nil {
					t.Fatalf("task did not finish after restart: %+v", task)
				}
				time.Sleep(50 * time.Millisecond)
			}
			if task.State != api.TaskCompleted || task.Steps[0].Operation != "RESERVE_QUOTA" || task.Steps[1].State != api.TaskCompleted {
				t.Fatalf("resumed task = %+v", task)
			}
			p, err := cl2.GetProject(ctx, task.Entity.ID)
			if err != nil || p.State != api.StateReady {
				t.Fatalf("project after resume = %+v, %v", p, err)
			}
			tq, err := cl2.GetTenantQuota(ctx, tt.Entity.ID)
			if err != nil || tq.QuotaItems["vm.cpu"].Usage != 4 {
				t.Fatalf("tenant quota after resume = %+v, %v; want usage 4", tq, err)
			}
			// The resumed task released its lock: the project takes new tasks.
			dt, err := cl2.DeleteProject(ctx, p.ID)
			if err == nil {
				dt, err = cl2.WaitTask(ctx, dt)
			}
			if err != nil || dt.State != api.TaskCompleted {
				t.Fatalf("delete project after resume: %+v, %v", dt, err)
			}
			if _, err := cl2.GetProject(ctx, p.ID); !errors.Is(err, &api.Error{Code: api.CodeProjectNotFound}) {
				t.Fatalf("project after delete: %v", err)
			}
		})
	}
}

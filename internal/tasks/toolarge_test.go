package tasks_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/photontest"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tasks"
)

// TestStepTooLargeForEtcd: a step whose changes etcd refuses for their
// size ends the task ERROR (RequestTooLarge) and runs undo at once; run
// again, it could only be refused again.
func TestStepTooLargeForEtcd(t *testing.T) {
	ctx := context.Background()
	st := photontest.Store(t, photontest.StartEtcd(t, photontest.EtcdOptions{Args: []string{"--max-request-bytes", "65536"}}).Endpoint)
	big := &tasks.Operation{
		Name: "BIG",
		Steps: []tasks.Step{{Name: "WRITE", Run: func(ctx context.Context, tx *store.Txn, t *api.Task) error {
			return tx.Put(store.Key("test", t.Entity.ID), strings.Repeat("x", 128<<10))
		}}},
		Undo: func(ctx context.Context, tx *store.Txn, t *api.Task, cause *api.Error) error {
			return tx.Put(store.Key("test", t.Entity.ID, "undo"), cause.Code)
		},
	}
	e, err := tasks.New(st, photontest.Logger(t), big)
	if err != nil {
		t.Fatal(err)
	}
	task, err := e.NewTask("BIG", api.Entity{ID: "big", Kind: "test"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update(ctx, func(tx *store.Txn) error { return e.Submit(ctx, tx, task) }); err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	got, err := e.Run(rctx, task.ID)
	if err != nil {
		t.Fatalf("Run: %v (the step should end the task, not be retried)", err)
	}
	if got.State != api.TaskError || len(got.Steps[0].Errors) != 1 || got.Steps[0].Errors[0].Code != api.CodeRequestTooLarge {
		t.Fatalf("task = %+v, want ERROR with RequestTooLarge", got)
	}
	var code string
	if _, err := st.Get(ctx, store.Key("test", "big", "undo"), &code); err != nil || code != api.CodeRequestTooLarge {
		t.Fatalf("undo recorded %q, %v", code, err)
	}
	if ok, _ := st.Get(ctx, store.Key("test", "big"), new(string)); ok != 0 {
		t.Fatalf("the refused write is there (rev %d)", ok)
	}
}

package tenancy_test

import (
	"context"
	"errors"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/photontest"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tasks"
	"github.com/photon-cloud/photon/internal/tenancy"
)

// TestFlavorInUse: a flavor with users goes PENDING_DELETE on delete, can't
// gain users, and disappears with its last user.
func TestFlavorInUse(t *testing.T) {
	ctx := context.Background()
	st := photontest.Store(t, photontest.EmbeddedEtcd(t))
	engine, err := tasks.New(st, photontest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	svc, err := tenancy.New(st, engine)
	if err != nil {
		t.Fatal(err)
	}
	task, err := svc.CreateFlavor(ctx, &api.FlavorCreateSpec{Name: "small", Kind: api.FlavorKindVM,
		Cost: []api.QuotaLineItem{{Key: "vm.cpu", Value: 1, Unit: "COUNT"}, {Key: "vm.memory", Value: 1, Unit: "GB"}}})
	if err != nil {
		t.Fatal(err)
	}
	id := task.Entity.ID
	update := func(fn func(tx *store.Txn) error) error { _, err := st.Update(ctx, fn); return err }
	for i := 0; i < 2; i++ {
		if err := update(func(tx *store.Txn) error { _, err := tenancy.AcquireFlavor(ctx, tx, id); return err }); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := svc.DeleteFlavor(ctx, id); err != nil {
		t.Fatal(err)
	}
	f, err := svc.GetFlavor(ctx, id)
	if err != nil || f.State != api.StatePendingDelete || f.Users != 2 {
		t.Fatalf("flavor after delete = %+v, %v; want PENDING_DELETE with 2 users", f, err)
	}
	err = update(func(tx *store.Txn) error { _, err := tenancy.AcquireFlavor(ctx, tx, id); return err })
	if !errors.Is(err, &api.Error{Code: api.CodeInvalidFlavorState}) {
		t.Fatalf("acquire PENDING_DELETE flavor: %v, want InvalidFlavorState", err)
	}
	for i, wantGone := range []bool{false, true} {
		if err := update(func(tx *store.Txn) error { return tenancy.ReleaseFlavor(ctx, tx, id) }); err != nil {
			t.Fatal(err)
		}
		_, err := svc.GetFlavor(ctx, id)
		if gone := errors.Is(err, &api.Error{Code: api.CodeFlavorNotFound}); gone != wantGone {
			t.Fatalf("after release %d: gone = %v (%v), want %v", i+1, gone, err, wantGone)
		}
	}
	// The name is free again.
	if _, err := svc.CreateFlavor(ctx, &api.FlavorCreateSpec{Name: "small", Kind: api.FlavorKindVM,
		Cost: []api.QuotaLineItem{{Key: "vm.cpu", Value: 1, Unit: "COUNT"}, {Key: "vm.memory", Value: 1, Unit: "GB"}}}); err != nil {
		t.Fatalf("re-create: %v", err)
	}
}

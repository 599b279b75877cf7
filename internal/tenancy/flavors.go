package tenancy

import (
	"context"
	"errors"
	"slices"
	"strconv"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

var flavorKinds = []string{api.FlavorKindVM, api.FlavorKindEphemeralDisk, api.FlavorKindPersistentDisk}

// ValidateFlavorSpec checks a flavor create spec.
func ValidateFlavorSpec(spec *api.FlavorCreateSpec) error {
	if err := api.ValidateName("name", spec.Name); err != nil {
		return err
	}
	if !slices.Contains(flavorKinds, spec.Kind) {
		return api.FieldError("kind", "unknown kind %q (want vm, ephemeral-disk or persistent-disk)", spec.Kind)
	}
	if err := api.ValidateLineItems("cost", spec.Cost); err != nil {
		return err
	}
	if spec.Kind == api.FlavorKindVM {
		for _, k := range []string{"vm.cpu", "vm.memory"} {
			if !slices.ContainsFunc(spec.Cost, func(it api.QuotaLineItem) bool { return it.Key == k }) {
				return api.FieldError("cost", "a vm flavor must carry %s", k)
			}
		}
	}
	for i, tag := range spec.Tags {
		if tag == "" || len(tag) > 256 {
			return api.FieldError("tags["+strconv.Itoa(i)+"]", "must be 1-256 characters")
		}
	}
	return nil
}

// CreateFlavor creates a flavor; names are unique per kind.
func (s *Service) CreateFlavor(ctx context.Context, spec *api.FlavorCreateSpec) (*api.Task, error) {
	if err := ValidateFlavorSpec(spec); err != nil {
		return nil, err
	}
	id := newID()
	return s.submit(ctx, OpCreateFlavor, api.Entity{ID: id, Kind: api.KindFlavor}, "", "", 1, func(tx *store.Txn, t *api.Task) error {
		if err := claimName(ctx, tx, flavorNameKey(spec.Kind, spec.Name), spec.Kind+" flavor", spec.Name); err != nil {
			return err
		}
		tags := spec.Tags
		if tags == nil {
			tags = []string{}
		}
		f := api.Flavor{Base: api.Base{ID: id, Kind: api.KindFlavor}, Name: spec.Name, Kind: spec.Kind,
			Cost: spec.Cost, State: api.StateReady, Tags: tags}
		if err := tx.Put(flavorNameKey(spec.Kind, spec.Name), id); err != nil {
			return err
		}
		return tx.Put(flavorKey(id), &f)
	})
}

// GetFlavor reads a flavor.
func (s *Service) GetFlavor(ctx context.Context, id string) (*api.Flavor, error) {
	var f api.Flavor
	if !ValidID(id) {
		return nil, notFound(store.ErrNotFound, api.CodeFlavorNotFound, "flavor", id)
	}
	if _, err := s.st.Get(ctx, flavorKey(id), &f); err != nil {
		return nil, notFound(err, api.CodeFlavorNotFound, "flavor", id)
	}
	return &f, nil
}

// ListFlavors lists flavors, filtered by name and kind.
func (s *Service) ListFlavors(ctx context.Context, name, kind, token string, size int) ([]api.Flavor, string, error) {
	if kind != "" && !slices.Contains(flavorKinds, kind) {
		return nil, "", api.Errorf(api.CodeInvalidQuery, "kind: unknown kind %q (want vm, ephemeral-disk or persistent-disk)", kind)
	}
	if name != "" {
		var out []api.Flavor
		for _, k := range flavorKinds {
			if kind != "" && k != kind {
				continue
			}
			l, err := byName[api.Flavor](ctx, s.st, flavorNameKey(k, name), flavorKey)
			if err != nil {
				return nil, "", err
			}
			out = append(out, l...)
		}
		return append([]api.Flavor{}, out...), "", nil
	}
	l, next, err := page[api.Flavor](ctx, s.st, store.Prefix("flavors"), token, size, nil)
	if err != nil || kind == "" {
		return l, next, err
	}
	return slices.DeleteFunc(l, func(f api.Flavor) bool { return f.Kind != kind }), next, nil
}

// DeleteFlavor deletes an unused flavor; one in use goes PENDING_DELETE and
// disappears when its last user releases it.
func (s *Service) DeleteFlavor(ctx context.Context, id string) (*api.Task, error) {
	if _, err := s.GetFlavor(ctx, id); err != nil {
		return nil, err
	}
	return s.submit(ctx, OpDeleteFlavor, api.Entity{ID: id, Kind: api.KindFlavor}, "", "", 1, func(tx *store.Txn, t *api.Task) error {
		var f api.Flavor
		if err := tx.MustGet(ctx, flavorKey(id), &f); err != nil {
			return notFound(err, api.CodeFlavorNotFound, "flavor", id)
		}
		if f.Users > 0 {
			f.State = api.StatePendingDelete
			return tx.Put(flavorKey(id), &f)
		}
		tx.Delete(flavorKey(id))
		tx.Delete(flavorNameKey(f.Kind, f.Name))
		return nil
	})
}

// AcquireFlavor counts one more user of a flavor in tx (e.g. a VM being
// created from it) and returns it, its slices shared with tx (read only).
// A PENDING_DELETE flavor is InvalidFlavorState.
func AcquireFlavor(ctx context.Context, tx *store.Txn, id string) (*api.Flavor, error) {
	key := flavorKey(id)
	var f api.Flavor // as the create before it in tx left it, if one did
	if err := store.MustGetKept(ctx, tx, key, &f); err != nil {
		return nil, notFound(err, api.CodeFlavorNotFound, "flavor", id)
	}
	if f.State != api.StateReady {
		return nil, api.Errorf(api.CodeInvalidFlavorState, "flavor %s is %s", f.Name, f.State)
	}
	f.Users++
	kept := f
	return &f, tx.PutKept(key, &kept)
}

// ReleaseFlavor counts one user fewer in tx; the last user of a
// PENDING_DELETE flavor deletes it.
func ReleaseFlavor(ctx context.Context, tx *store.Txn, id string) error {
	var f api.Flavor
	if err := tx.MustGet(ctx, flavorKey(id), &f); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil
		}
		return err
	}
	if f.Users > 0 {
		f.Users--
	}
	if f.Users == 0 && f.State == api.StatePendingDelete {
		tx.Delete(flavorKey(id))
		tx.Delete(flavorNameKey(f.Kind, f.Name))
		return nil
	}
	return tx.Put(flavorKey(id), &f)
}

// AcquireFlavorNamed is AcquireFlavor for a flavor named by name or id,
// which must be of kind (e.g. a VM create spec's "flavor": "small").
func AcquireFlavorNamed(ctx context.Context, tx *store.Txn, kind, nameOrID, field string) (*api.Flavor, error) {
	id := nameOrID
	var byName string
	if ok, err := tx.Get(ctx, flavorNameKey(kind, nameOrID), &byName); err != nil {
		return nil, err
	} else if ok {
		id = byName
	}
	if !ValidID(id) {
		return nil, api.FieldError(field, "no %s flavor %q", kind, nameOrID)
	}
	f, err := AcquireFlavor(ctx, tx, id)
	if errors.Is(err, &api.Error{Code: api.CodeFlavorNotFound}) {
		e := api.Errorf(api.CodeFlavorNotFound, "no %s flavor %q", kind, nameOrID)
		e.Data = map[string]string{"field": field}
		return nil, e
	}
	if err == nil && f.Kind != kind {
		return nil, api.FieldError(field, "flavor %q is a %s flavor, not %s", nameOrID, f.Kind, kind)
	}
	return f, err
}

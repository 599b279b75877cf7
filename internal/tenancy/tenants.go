package tenancy

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

func securityGroups(names []string, inherited bool) []api.SecurityGroup {
	out := make([]api.SecurityGroup, 0, len(names))
	for _, n := range names {
		out = append(out, api.SecurityGroup{Name: n, Inherited: inherited})
	}
	return out
}

func validateSecurityGroups(names []string) error {
	for i, n := range names {
		if n == "" || len(n) > 256 {
			return api.FieldError("securityGroups["+strconv.Itoa(i)+"]", "must be 1-256 characters")
		}
	}
	return nil
}

// ValidateTenantSpec checks a tenant create spec.
func ValidateTenantSpec(spec *api.TenantCreateSpec) error {
	if err := api.ValidateName("name", spec.Name); err != nil {
		return err
	}
	if err := validateSecurityGroups(spec.SecurityGroups); err != nil {
		return err
	}
	if spec.Quota != nil {
		return spec.Quota.Validate("quota")
	}
	return nil
}

// CreateTenant creates a tenant with its quota.
func (s *Service) CreateTenant(ctx context.Context, spec *api.TenantCreateSpec) (*api.Task, error) {
	if err := ValidateTenantSpec(spec); err != nil {
		return nil, err
	}
	id := newID()
	return s.submit(ctx, OpCreateTenant, api.Entity{ID: id, Kind: api.KindTenant}, id, "", 1, func(tx *store.Txn, t *api.Task) error {
		if err := claimName(ctx, tx, tenantNameKey(spec.Name), "tenant", spec.Name); err != nil {
			return err
		}
		tn := api.Tenant{
			Base: api.Base{ID: id, Kind: api.KindTenant}, Name: spec.Name, State: api.StateReady,
			Projects: []api.ProjectRef{}, SecurityGroups: securityGroups(spec.SecurityGroups, false),
			Quota: api.Quota{QuotaItems: specItems(spec.Quota)}, Tags: []string{},
		}
		if err := tx.Put(tenantNameKey(spec.Name), id); err != nil {
			return err
		}
		return tx.Put(tenantKey(id), &tn)
	})
}

// GetTenant reads a tenant.
func (s *Service) GetTenant(ctx context.Context, id string) (*api.Tenant, error) {
	var tn api.Tenant
	if !ValidID(id) {
		return nil, notFound(store.ErrNotFound, api.CodeTenantNotFound, "tenant", id)
	}
	if _, err := s.st.Get(ctx, tenantKey(id), &tn); err != nil {
		return nil, notFound(err, api.CodeTenantNotFound, "tenant", id)
	}
	return &tn, nil
}

// ListTenants lists tenants, or the one named name.
func (s *Service) ListTenants(ctx context.Context, name, token string, size int) ([]api.Tenant, string, error) {
	if name != "" {
		l, err := byName[api.Tenant](ctx, s.st, tenantNameKey(name), tenantKey)
		return l, "", err
	}
	return page[api.Tenant](ctx, s.st, store.Prefix("tenants"), token, size, nil)
}

// DeleteTenant deletes a tenant that has no projects.
func (s *Service) DeleteTenant(ctx context.Context, id string) (*api.Task, error) {
	if _, err := s.GetTenant(ctx, id); err != nil {
		return nil, err
	}
	return s.submit(ctx, OpDeleteTenant, api.Entity{ID: id, Kind: api.KindTenant}, id, "", 1, func(tx *store.Txn, t *api.Task) error {
		var tn api.Tenant
		if err := tx.MustGet(ctx, tenantKey(id), &tn); err != nil {
			return notFound(err, api.CodeTenantNotFound, "tenant", id)
		}
		if len(tn.Projects) > 0 {
			return api.Errorf(api.CodeContainerNotEmpty, "tenant %s has %d project(s); delete them first", tn.Name, len(tn.Projects))
		}
		tx.Delete(tenantKey(id))
		tx.Delete(tenantNameKey(tn.Name))
		return nil
	})
}

// SetTenantQuota changes a tenant's quota by verb (PUT, PATCH, DELETE). A
// limit below what its projects hold is a QuotaError.
func (s *Service) SetTenantQuota(ctx context.Context, id, verb string, spec *api.QuotaSpec) (*api.Task, error) {
	if _, err := s.GetTenant(ctx, id); err != nil {
		return nil, err
	}
	return s.submit(ctx, OpSetQuota, api.Entity{ID: id, Kind: api.KindTenant}, id, "", 1, func(tx *store.Txn, t *api.Task) error {
		var tn api.Tenant
		if err := tx.MustGet(ctx, tenantKey(id), &tn); err != nil {
			return notFound(err, api.CodeTenantNotFound, "tenant", id)
		}
		next, err := applyVerb(tn.Quota, verb, *spec, "quota")
		if err != nil {
			return err
		}
		// Usage is derived afresh from the projects, so keys new to the
		// tenant's limits start at what its projects hold.
		derived := api.Quota{QuotaItems: next}
		if err := s.deriveTenantUsage(ctx, tx, &api.Tenant{Projects: tn.Projects, Quota: derived}); err != nil {
			return err
		}
		for _, k := range slices.Sorted(maps.Keys(derived.QuotaItems)) {
			it := derived.QuotaItems[k]
			if it.Usage > it.Limit+eps*max(1, it.Limit) {
				return api.Errorf(api.CodeQuotaError, "%s limit %s %s is below what its projects hold, %s %s",
					k, fmtNum(it.Limit), it.Unit, fmtNum(it.Usage), it.Unit)
			}
		}
		tn.Quota = derived
		return tx.Put(tenantKey(id), &tn)
	})
}

// deriveTenantUsage sets the usage of every key tn limits to the sum of its
// projects' limits, reading the projects in tx.
func (s *Service) deriveTenantUsage(ctx context.Context, tx *store.Txn, tn *api.Tenant) error {
	for k, it := range tn.Quota.QuotaItems {
		it.Usage = 0
		tn.Quota.QuotaItems[k] = it
	}
	for _, ref := range tn.Projects {
		var p api.Project
		if err := tx.MustGet(ctx, projectKey(ref.ID), &p); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				continue
			}
			return err
		}
		for k, it := range tn.Quota.QuotaItems {
			it.Usage += inUnit(p.Quota.QuotaItems[k], it.Unit)
			tn.Quota.QuotaItems[k] = it
		}
	}
	return nil
}

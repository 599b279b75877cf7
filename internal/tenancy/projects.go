package tenancy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// CreateProject creates a project in a tenant. Its quota is carved from the
// tenant's in the submitting transaction (RESERVE_QUOTA), so a shortfall is
// refused at once with QuotaError; the CREATE_PROJECT step then makes it READY.
func (s *Service) CreateProject(ctx context.Context, tenantID string, spec *api.ProjectCreateSpec) (*api.Task, error) {
	if err := ValidateProjectSpec(spec); err != nil {
		return nil, err
	}
	if _, err := s.GetTenant(ctx, tenantID); err != nil {
		return nil, err
	}
	id := newID()
	limits := specItems(spec.Quota)
	return s.submit(ctx, OpCreateProject, api.Entity{ID: id, Kind: api.KindProject}, tenantID, id, 1, func(tx *store.Txn, t *api.Task) error {
		var tn api.Tenant
		if err := tx.MustGet(ctx, tenantKey(tenantID), &tn); err != nil {
			return notFound(err, api.CodeTenantNotFound, "tenant", tenantID)
		}
		if tn.State != api.StateReady {
			return api.Errorf(api.CodeInvalidState, "tenant %s is %s", tn.Name, tn.State)
		}
		if err := claimName(ctx, tx, projectNameKey(tenantID, spec.Name), "project", spec.Name); err != nil {
			return err
		}
		if err := requireKeys(tn.Quota, limits, "quota"); err != nil {
			return err
		}
		if err := carve(&tn.Quota, nil, limits); err != nil {
			return err
		}
		tn.Projects = append(tn.Projects, api.ProjectRef{ID: id, Name: spec.Name})
		inherited := make([]api.SecurityGroup, 0, len(tn.SecurityGroups)+len(spec.SecurityGroups))
		for _, g := range tn.SecurityGroups {
			inherited = append(inherited, api.SecurityGroup{Name: g.Name, Inherited: true})
		}
		p := api.Project{
			Base: api.Base{ID: id, Kind: api.KindProject}, Name: spec.Name, State: api.StateCreating,
			TenantID: tenantID, Quota: api.Quota{QuotaItems: limits},
			SecurityGroups:             append(inherited, securityGroups(spec.SecurityGroups, false)...),
			DefaultRouterPrivateIPCidr: spec.DefaultRouterPrivateIPCidr, Tags: []string{},
		}
		for _, put := range []struct {
			k string
			v any
		}{
			{tenantKey(tenantID), &tn}, {projectKey(id), &p},
			{projectNameKey(tenantID, spec.Name), id}, {tenantProjectKey(tenantID, id), id},
		} {
			if err := tx.Put(put.k, put.v); err != nil {
				return err
			}
		}
		if c := spec.DefaultRouterPrivateIPCidr; c != "" && s.defaults != nil {
			return s.defaults(ctx, tx, id, c)
		}
		return nil
	})
}

// ValidateProjectSpec checks a project create spec.
func ValidateProjectSpec(spec *api.ProjectCreateSpec) error {
	if err := api.ValidateName("name", spec.Name); err != nil {
		return err
	}
	if err := validateSecurityGroups(spec.SecurityGroups); err != nil {
		return err
	}
	if spec.Quota != nil {
		if err := spec.Quota.Validate("quota"); err != nil {
			return err
		}
	}
	if c := spec.DefaultRouterPrivateIPCidr; c != "" {
		if _, err := netip.ParsePrefix(c); err != nil {
			return api.FieldError("defaultRouterPrivateIpCidr", "%q is not a CIDR like 192.168.0.0/16", c)
		}
	}
	return nil
}

// stepCreateProject makes a reserved project READY.
func (s *Service) stepCreateProject(ctx context.Context, tx *store.Txn, t *api.Task) error {
	var p api.Project
	if err := tx.MustGet(ctx, projectKey(t.Entity.ID), &p); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return api.Errorf(api.CodeProjectNotFound, "project %s vanished while being created", t.Entity.ID)
		}
		return err
	}
	p.State = api.StateReady
	return tx.Put(projectKey(p.ID), &p)
}

// GetProject reads a project.
func (s *Service) GetProject(ctx context.Context, id string) (*api.Project, error) {
	var p api.Project
	if !ValidID(id) {
		return nil, notFound(store.ErrNotFound, api.CodeProjectNotFound, "project", id)
	}
	if _, err := s.st.Get(ctx, projectKey(id), &p); err != nil {
		return nil, notFound(err, api.CodeProjectNotFound, "project", id)
	}
	return &p, nil
}

// ListProjects lists a tenant's projects, or the one named name.
func (s *Service) ListProjects(ctx context.Context, tenantID, name, token string, size int) ([]api.Project, string, error) {
	if _, err := s.GetTenant(ctx, tenantID); err != nil {
		return nil, "", err
	}
	if name != "" {
		l, err := byName[api.Project](ctx, s.st, projectNameKey(tenantID, name), projectKey)
		return l, "", err
	}
	return page[api.Project](ctx, s.st, store.Prefix("tenant-projects", tenantID), token, size, projectKey)
}

// DeleteProject deletes a project; its quota returns to its tenant in the
// same transaction.
func (s *Service) DeleteProject(ctx context.Context, id string) (*api.Task, error) {
	p, err := s.GetProject(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.submit(ctx, OpDeleteProject, api.Entity{ID: id, Kind: api.KindProject}, p.TenantID, id, 0, func(tx *store.Txn, t *api.Task) error {
		var cur api.Project
		if err := tx.MustGet(ctx, projectKey(id), &cur); err != nil {
			return notFound(err, api.CodeProjectNotFound, "project", id)
		}
		for k, it := range cur.Quota.QuotaItems {
			if it.Usage > 0 {
				return api.Errorf(api.CodeContainerNotEmpty, "project %s still uses %s %s of %s", cur.Name, fmtNum(it.Usage), it.Unit, k)
			}
		}
		return nil
	})
}

func (s *Service) stepDeleteProject(ctx context.Context, tx *store.Txn, t *api.Task) error {
	return s.removeProject(ctx, tx, t.Entity.ID)
}

// removeProject deletes a project and its index entries and returns its
// quota to its tenant. A project already gone is fine (the step is idempotent).
func (s *Service) removeProject(ctx context.Context, tx *store.Txn, id string) error {
	var p api.Project
	if ok, err := tx.Get(ctx, projectKey(id), &p); err != nil || !ok {
		return err
	}
	var tn api.Tenant
	ok, err := tx.Get(ctx, tenantKey(p.TenantID), &tn)
	if err != nil {
		return err
	}
	if ok {
		if err := carve(&tn.Quota, p.Quota.QuotaItems, nil); err != nil {
			return err
		}
		tn.Projects = slices.DeleteFunc(tn.Projects, func(r api.ProjectRef) bool { return r.ID == id })
		if err := tx.Put(tenantKey(tn.ID), &tn); err != nil {
			return err
		}
	}
	tx.Delete(projectKey(id))
	tx.Delete(projectNameKey(p.TenantID, p.Name))
	tx.Delete(tenantProjectKey(p.TenantID, id))
	return nil
}

// SetProjectQuota changes a project's quota by verb; the difference is
// carved from (or returned to) its tenant in the same transaction.
func (s *Service) SetProjectQuota(ctx context.Context, id, verb string, spec *api.QuotaSpec) (*api.Task, error) {
	p, err := s.GetProject(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.submit(ctx, OpSetQuota, api.Entity{ID: id, Kind: api.KindProject}, p.TenantID, id, 1, func(tx *store.Txn, t *api.Task) error {
		var cur api.Project
		if err := tx.MustGet(ctx, projectKey(id), &cur); err != nil {
			return notFound(err, api.CodeProjectNotFound, "project", id)
		}
		var tn api.Tenant
		if err := tx.MustGet(ctx, tenantKey(cur.TenantID), &tn); err != nil {
			return notFound(err, api.CodeTenantNotFound, "tenant", cur.TenantID)
		}
		next, err := applyVerb(cur.Quota, verb, *spec, "quota")
		if err != nil {
			return err
		}
		if err := requireKeys(tn.Quota, next, "quota"); err != nil {
			return err
		}
		if err := carve(&tn.Quota, cur.Quota.QuotaItems, next); err != nil {
			return err
		}
		cur.Quota = api.Quota{QuotaItems: next}
		if err := tx.Put(tenantKey(tn.ID), &tn); err != nil {
			return err
		}
		return tx.Put(projectKey(id), &cur)
	})
}

// ChargeProject adds (sign +1) or returns (sign -1) cost to a project's
// quota usage in tx. Keys the project limits are enforced: a charge beyond a
// limit is a QuotaError naming the key; other keys are not tracked. The
// project must be READY to be charged.
func ChargeProject(ctx context.Context, tx *store.Txn, projectID string, cost []api.QuotaLineItem, sign int) error {
	p, err := ReadProject(ctx, tx, projectID)
	if err != nil {
		return err
	}
	return ChargeRead(tx, projectID, p, cost, sign)
}

// ReadProject reads a project in tx: ProjectNotFound if there is none. Its
// map and slices may be shared with tx (read only): a project that the
// creates before it in a batch charged is not decoded again (see
// store.Txn.PutKept).
func ReadProject(ctx context.Context, tx *store.Txn, projectID string) (*api.Project, error) {
	var p api.Project
	if err := store.MustGetKept(ctx, tx, projectKey(projectID), &p); err != nil {
		return nil, notFound(err, api.CodeProjectNotFound, "project", projectID)
	}
	return &p, nil
}

// ChargeRead is ChargeProject for project projectID as ReadProject read
// it into p (tx has not written it since): a caller that read it already
// (a create, for its tenant) saves reading it again. It changes p, not
// what p shares with tx.
func ChargeRead(tx *store.Txn, projectID string, p *api.Project, cost []api.QuotaLineItem, sign int) error {
	p.Quota.QuotaItems = maps.Clone(p.Quota.QuotaItems) // written below: p's own
	if sign > 0 && p.State != api.StateReady {
		return api.Errorf(api.CodeInvalidState, "project %s is %s", p.Name, p.State)
	}
	var short []string
	for _, c := range cost {
		it, ok := p.Quota.QuotaItems[c.Key]
		if !ok {
			continue
		}
		d := float64(sign) * api.ConvertUnit(c.Value, c.Unit, it.Unit)
		if d > 0 && it.Usage+d > it.Limit+eps*max(1, it.Limit) {
			short = append(short, fmt.Sprintf("%s needs %s %s, %s %s free", c.Key, fmtNum(d), it.Unit, fmtNum(max(0, it.Limit-it.Usage)), it.Unit))
			continue
		}
		it.Usage = max(0, it.Usage+d)
		if it.Usage < eps*max(1, it.Limit) {
			it.Usage = 0
		}
		p.Quota.QuotaItems[c.Key] = it
	}
	if len(short) > 0 {
		e := api.Errorf(api.CodeQuotaError, "Not enough quota in project %s: %s", p.Name, strings.Join(short, "; "))
		e.Data = map[string]string{"key": firstKey(short)}
		return e
	}
	return tx.PutKept(projectKey(projectID), p)
}

// SumCost adds line items by key, in the unit each key first appears with.
func SumCost(lists ...[]api.QuotaLineItem) []api.QuotaLineItem {
	var out []api.QuotaLineItem
	idx := map[string]int{}
	for _, l := range lists {
		for _, c := range l {
			if i, ok := idx[c.Key]; ok {
				out[i].Value += api.ConvertUnit(c.Value, c.Unit, out[i].Unit)
				continue
			}
			idx[c.Key] = len(out)
			out = append(out, c)
		}
	}
	return out
}

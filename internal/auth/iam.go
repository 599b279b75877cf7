package auth

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// Role bindings live per scope (iam/policies/<kind>/<id>: the list of
// RoleBinding) with an index by subject
// (iam/by-subject/<subject>/<kind>/<id>/<role> -> tenant id), written in the
// same transaction, so a request's access is a few prefix reads.

// Scope kinds.
const (
	ScopeSystem  = "system"
	ScopeTenant  = "tenant"
	ScopeProject = "project"
	// Objects: a grant on one VM, disk or image.
	ScopeVM    = "vm"
	ScopeDisk  = "disk"
	ScopeImage = "image"
)

// Scope is what a policy applies to.
type Scope struct {
	Kind string `json:"kind"`
	ID   string `json:"id"`
	// TenantID is the tenant of a tenant, project or object scope.
	TenantID string `json:"tenantId,omitempty"`
	// ProjectID is the project of an object scope.
	ProjectID string `json:"projectId,omitempty"`
}

// SystemScope is the whole cloud.
var SystemScope = Scope{Kind: ScopeSystem, ID: ScopeSystem}

// rolesFor are the roles a scope kind may bind.
var rolesFor = map[string][]string{
	ScopeSystem:  {api.RoleSystemAdmin},
	ScopeTenant:  {api.RoleTenantAdmin},
	ScopeProject: {api.RoleProjectUser, api.RoleProjectViewer},
	ScopeVM:      {api.RoleProjectUser, api.RoleProjectViewer},
	ScopeDisk:    {api.RoleProjectUser, api.RoleProjectViewer},
	ScopeImage:   {api.RoleProjectUser, api.RoleProjectViewer},
}

type policyRecord struct {
	Scope    Scope             `json:"scope"`
	Bindings []api.RoleBinding `json:"bindings"`
}

func policyKey(sc Scope) string { return store.Key("iam", "policies", sc.Kind, sc.ID) }
func subjectPrefix(subject string) string {
	return store.Prefix("iam", "by-subject", subject)
}
func indexKey(subject string, sc Scope, role string) string {
	return store.Key("iam", "by-subject", subject, sc.Kind, sc.ID, role)
}

// NormalizeSubject returns "user:NAME" or "group:NAME"; a bare NAME is a user.
func NormalizeSubject(field, s string) (string, error) {
	kind, name, ok := strings.Cut(s, ":")
	if !ok {
		kind, name = "user", s
	}
	if kind != "user" && kind != "group" {
		return "", api.FieldError(field, "%q: want user:NAME or group:NAME", s)
	}
	if err := api.ValidateName(field, name); err != nil {
		return "", err
	}
	return kind + ":" + name, nil
}

// ValidateBindings checks and normalizes bindings for a scope kind:
// known roles, valid subjects, one binding per role, sorted.
func ValidateBindings(kind string, in []api.RoleBinding) ([]api.RoleBinding, error) {
	byRole := map[string][]string{}
	for i, b := range in {
		field := "[" + strconv.Itoa(i) + "]"
		if !slices.Contains(rolesFor[kind], b.Role) {
			return nil, api.FieldError(field+".role", "%q: a %s may bind %s", b.Role, kind, strings.Join(rolesFor[kind], ", "))
		}
		for j, sub := range b.Subjects {
			n, err := NormalizeSubject(field+".subjects["+strconv.Itoa(j)+"]", sub)
			if err != nil {
				return nil, err
			}
			byRole[b.Role] = append(byRole[b.Role], n)
		}
	}
	var out []api.RoleBinding
	for _, role := range rolesFor[kind] {
		subs := byRole[role]
		slices.Sort(subs)
		subs = slices.Compact(subs)
		if len(subs) > 0 {
			out = append(out, api.RoleBinding{Role: role, Subjects: subs})
		}
	}
	if out == nil {
		out = []api.RoleBinding{}
	}
	return out, nil
}

// ValidateDeltas checks deltas for a scope kind.
func ValidateDeltas(kind string, ds []api.RoleBindingDelta) error {
	if len(ds) == 0 {
		return api.FieldError("body", "no changes given")
	}
	for i, d := range ds {
		field := "[" + strconv.Itoa(i) + "]"
		if d.Action != api.ActionAdd && d.Action != api.ActionRemove {
			return api.FieldError(field+".action", "%q: want ADD or REMOVE", d.Action)
		}
		if !slices.Contains(rolesFor[kind], d.Role) {
			return api.FieldError(field+".role", "%q: a %s may bind %s", d.Role, kind, strings.Join(rolesFor[kind], ", "))
		}
		if _, err := NormalizeSubject(field+".subject", d.Subject); err != nil {
			return err
		}
	}
	return nil
}

// Policy returns a scope's bindings.
func (s *Service) Policy(ctx context.Context, sc Scope) ([]api.RoleBinding, error) {
	var p policyRecord
	if _, err := s.st.Get(ctx, policyKey(sc), &p); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	if p.Bindings == nil {
		p.Bindings = []api.RoleBinding{}
	}
	return p.Bindings, nil
}

func scopeEntity(sc Scope) (api.Entity, string, string) {
	switch sc.Kind {
	case ScopeTenant:
		return api.Entity{ID: sc.ID, Kind: api.KindTenant}, sc.ID, ""
	case ScopeProject:
		return api.Entity{ID: sc.ID, Kind: api.KindProject}, sc.TenantID, sc.ID
	case ScopeVM, ScopeDisk, ScopeImage:
		kind := sc.Kind
		if kind == ScopeDisk {
			kind = api.KindPersistentDisk
		}
		return api.Entity{ID: sc.ID, Kind: kind}, sc.TenantID, sc.ProjectID
	}
	return api.Entity{ID: ScopeSystem, Kind: ScopeSystem}, "", ""
}

// SetPolicy replaces a scope's bindings.
func (s *Service) SetPolicy(ctx context.Context, sc Scope, bindings []api.RoleBinding) (*api.Task, error) {
	norm, err := ValidateBindings(sc.Kind, bindings)
	if err != nil {
		return nil, err
	}
	e, tid, pid := scopeEntity(sc)
	return s.submit(ctx, OpSetIAMPolicy, e, tid, pid, func(tx *store.Txn) error {
		return s.editPolicy(ctx, tx, sc, func([]api.RoleBinding) ([]api.RoleBinding, error) { return norm, nil })
	})
}

// PatchPolicy adds or removes single grants.
func (s *Service) PatchPolicy(ctx context.Context, sc Scope, deltas []api.RoleBindingDelta) (*api.Task, error) {
	if err := ValidateDeltas(sc.Kind, deltas); err != nil {
		return nil, err
	}
	e, tid, pid := scopeEntity(sc)
	return s.submit(ctx, OpSetIAMPolicy, e, tid, pid, func(tx *store.Txn) error {
		return s.editPolicy(ctx, tx, sc, func(bs []api.RoleBinding) ([]api.RoleBinding, error) {
			for _, d := range deltas {
				sub, _ := NormalizeSubject("subject", d.Subject)
				i := slices.IndexFunc(bs, func(b api.RoleBinding) bool { return b.Role == d.Role })
				if d.Action == api.ActionAdd {
					if i < 0 {
						bs = append(bs, api.RoleBinding{Role: d.Role})
						i = len(bs) - 1
					}
					bs[i].Subjects = append(bs[i].Subjects, sub)
				} else if i >= 0 {
					bs[i].Subjects = slices.DeleteFunc(bs[i].Subjects, func(x string) bool { return x == sub })
				}
			}
			return bs, nil
		})
	})
}

// editPolicy rewrites a scope's bindings with fn inside tx, keeping the
// subject index in step. Users named must exist.
func (s *Service) editPolicy(ctx context.Context, tx *store.Txn, sc Scope, fn func([]api.RoleBinding) ([]api.RoleBinding, error)) error {
	var p policyRecord
	if _, err := tx.Get(ctx, policyKey(sc), &p); err != nil {
		return err
	}
	if p.Scope.Kind != "" {
		sc = p.Scope // keep the tenant of an existing policy
	}
	had := map[string]bool{}
	cur := make([]api.RoleBinding, len(p.Bindings))
	for i, b := range p.Bindings {
		for _, sub := range b.Subjects {
			had[indexKey(sub, sc, b.Role)] = true
		}
		cur[i] = api.RoleBinding{Role: b.Role, Subjects: slices.Clone(b.Subjects)}
	}
	next, err := fn(cur)
	if err != nil {
		return err
	}
	if next, err = ValidateBindings(sc.Kind, next); err != nil {
		return err
	}
	for _, b := range next {
		for _, sub := range b.Subjects {
			k := indexKey(sub, sc, b.Role)
			if had[k] {
				delete(had, k)
				continue
			}
			if name, ok := strings.CutPrefix(sub, "user:"); ok {
				if exists, err := tx.Exists(ctx, userKey(name)); err != nil {
					return err
				} else if !exists {
					e := api.Errorf(api.CodeInvalidEntity, "%s: no such user", sub)
					e.Data = map[string]string{"field": "subject"}
					return e
				}
			}
			if err := tx.Put(k, sc.TenantID); err != nil {
				return err
			}
		}
	}
	for k := range had {
		tx.Delete(k)
	}
	if len(next) == 0 {
		tx.Delete(policyKey(sc))
		return nil
	}
	return tx.Put(policyKey(sc), &policyRecord{Scope: sc, Bindings: next})
}

// grant is one index entry: subject holds role on scope.
type grant struct {
	scope Scope
	role  string
}

func (s *Service) grantsOf(ctx context.Context, subject string) ([]grant, error) {
	pre := subjectPrefix(subject)
	resp, err := s.st.Client().Get(ctx, pre, clientv3.WithPrefix())
	if err != nil {
		return nil, fmt.Errorf("grants of %s: %w", subject, err)
	}
	var out []grant
	for _, kv := range resp.Kvs {
		parts := strings.Split(string(kv.Key)[len(pre):], "/")
		if len(parts) != 3 {
			continue
		}
		var tid string
		_ = json.Unmarshal(kv.Value, &tid)
		out = append(out, grant{scope: Scope{Kind: parts[0], ID: parts[1], TenantID: tid}, role: parts[2]})
	}
	return out, nil
}

func (s *Service) scopesOf(ctx context.Context, subject string) ([]Scope, error) {
	gs, err := s.grantsOf(ctx, subject)
	if err != nil {
		return nil, err
	}
	var out []Scope
	for _, g := range gs {
		if !slices.Contains(out, g.scope) {
			out = append(out, g.scope)
		}
	}
	return out, nil
}

// Access levels on a tenant or project, weakest first.
const (
	LevelNone   = iota
	LevelViewer // read the project and what is in it (tenant: see it)
	LevelUser   // also create, change and delete the project's objects
	LevelAdmin  // also manage the tenant, its projects, quotas and bindings
)

// Access is what a principal may reach, from its role and bindings.
type Access struct {
	Principal *Principal
	// System: a system administrator.
	System bool
	// HostID is set for a host's credential.
	HostID string
	// tenants maps a tenant id to the level held on the tenant itself
	// (LevelAdmin) or through one of its projects (LevelViewer).
	tenants map[string]int
	// projects maps a project id to the level held on it directly.
	projects map[string]int
	// objects maps a VM, disk or image id to the level held on it directly.
	objects map[string]int
}

// Access computes a principal's access.
func (s *Service) Access(ctx context.Context, p *Principal) (*Access, error) {
	a := &Access{Principal: p, tenants: map[string]int{}, projects: map[string]int{}, objects: map[string]int{}}
	switch p.Role {
	case RoleSystemAdmin:
		a.System = true
		return a, nil
	case RoleHost:
		a.HostID = strings.TrimPrefix(p.Subject, "host:")
		return a, nil
	case RoleUser:
	default:
		return a, nil
	}
	subjects := []string{p.Subject}
	for _, g := range p.Groups {
		subjects = append(subjects, "group:"+g)
	}
	for _, sub := range subjects {
		gs, err := s.grantsOf(ctx, sub)
		if err != nil {
			return nil, err
		}
		for _, g := range gs {
			switch g.role {
			case api.RoleSystemAdmin:
				a.System = true
			case api.RoleTenantAdmin:
				a.tenants[g.scope.ID] = LevelAdmin
			case api.RoleProjectUser, api.RoleProjectViewer:
				lvl := LevelViewer
				if g.role == api.RoleProjectUser {
					lvl = LevelUser
				}
				if g.scope.Kind != ScopeProject {
					a.objects[g.scope.ID] = max(a.objects[g.scope.ID], lvl)
					continue
				}
				a.projects[g.scope.ID] = max(a.projects[g.scope.ID], lvl)
				a.tenants[g.scope.TenantID] = max(a.tenants[g.scope.TenantID], LevelViewer)
			}
		}
	}
	return a, nil
}

// Tenant is the level held on tenant tid.
func (a *Access) Tenant(tid string) int {
	if a.System {
		return LevelAdmin
	}
	return a.tenants[tid]
}

// Project is the level held on project pid of tenant tid.
func (a *Access) Project(pid, tid string) int {
	if a.Tenant(tid) == LevelAdmin {
		return LevelAdmin
	}
	return a.projects[pid]
}

// Object is the level held on one VM, disk or image by a grant on it alone
// (a project's or tenant's grants reach its objects through Project).
func (a *Access) Object(id string) int {
	if a.System {
		return LevelAdmin
	}
	return a.objects[id]
}

// Tenants lists the tenants the principal holds a role in (not for system
// administrators, who see all).
func (a *Access) Tenants() []string {
	var out []string
	for t, l := range a.tenants {
		if l > LevelNone {
			out = append(out, t)
		}
	}
	slices.Sort(out)
	return out
}

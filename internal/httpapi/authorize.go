package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/auth"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tenancy"
)

// Authorization: one function, authorize, decides every request from the
// route's Perm, the caller's Access (role bindings) and the owner of the
// path's {id}. Objects the caller cannot see answer exactly as objects that
// do not exist (404 with the kind's not-found code), so nothing leaks
// across tenants; objects it can see but not change answer 403.

// requestInfo is what the wrapper learns about a request, for handlers
// (filtering) and for the audit log.
type requestInfo struct {
	principal *auth.Principal
	access    *auth.Access
	// subject overrides the principal in the audit record (a login names
	// the user it tried).
	subject string
	body    any
	err     error
}

type infoKey struct{}

func infoOf(r *http.Request) *requestInfo {
	if i, ok := r.Context().Value(infoKey{}).(*requestInfo); ok {
		return i
	}
	return &requestInfo{}
}

// PrincipalOf is who the request was authenticated as (nil on public routes).
func PrincipalOf(r *http.Request) *auth.Principal { return infoOf(r).principal }

// accessOf is the caller's access; nil only on public routes.
func accessOf(r *http.Request) *auth.Access { return infoOf(r).access }

// owner is what an object named by a path's {id} belongs to.
type owner struct {
	tenantID, projectID string
	// public objects (flavors, infrastructure images) are readable by every
	// authenticated caller and changed only by system administrators.
	public bool
}

// ownerRule finds the owner of an object of one collection. A missing
// object is its kind's not-found API error.
type ownerRule struct {
	// notFound is the error code of the kind, e.g. "VmNotFound".
	notFound string
	// kind names the object in messages, e.g. "vm".
	kind string
	find func(ctx context.Context, id string) (owner, error)
}

// ownerRules maps a collection (the path segment before {id}, e.g.
// "projects" in /v1/projects/{id}/quota) to how its objects' owners are
// found. A route whose Perm needs an owner and whose collection has no rule
// is refused (and fails the isolation matrix test): add a rule here with a
// new kind of object.
func (s *Server) ownerRules() map[string]ownerRule {
	return map[string]ownerRule{
		"tenants": {api.CodeTenantNotFound, "tenant", func(ctx context.Context, id string) (owner, error) {
			if _, err := s.Tenancy.GetTenant(ctx, id); err != nil {
				return owner{}, err
			}
			return owner{tenantID: id}, nil
		}},
		"projects": {api.CodeProjectNotFound, "project", func(ctx context.Context, id string) (owner, error) {
			p, err := s.Tenancy.GetProject(ctx, id)
			if err != nil {
				return owner{}, err
			}
			return owner{tenantID: p.TenantID, projectID: id}, nil
		}},
		"tasks": {api.CodeTaskNotFound, "task", func(ctx context.Context, id string) (owner, error) {
			if !tenancy.ValidID(id) {
				return owner{}, api.Errorf(api.CodeTaskNotFound, "task %s not found", id)
			}
			t, err := s.Tasks.Get(ctx, id)
			if err != nil {
				return owner{}, err
			}
			s.fillTaskTenant(ctx, t, nil)
			return owner{tenantID: t.TenantID, projectID: t.ProjectID}, nil
		}},
		"flavors": {api.CodeFlavorNotFound, "flavor", func(ctx context.Context, id string) (owner, error) {
			return owner{public: true}, nil
		}},
		"vms":    s.storedOwner("vms", "VmNotFound", "vm"),
		"disks":  s.storedOwner("disks", "DiskNotFound", "disk"),
		"images": s.storedOwner("images", "ImageNotFound", "image"),
		// Routers and subnets carry their projectId.
		"routers": s.storedOwner("routers", api.CodeRouterNotFound, "router"),
		"subnets": s.storedOwner("subnets", api.CodeSubnetNotFound, "subnet"),
	}
}

// storedOwner finds the owner of an object stored as JSON at
// <collection>/<id> from its projectId (VMs, disks) or its scope (images:
// {"kind": "project", "id": ...}; anything else is public).
func (s *Server) storedOwner(collection, notFound, kind string) ownerRule {
	return ownerRule{notFound, kind, func(ctx context.Context, id string) (owner, error) {
		missing := api.Errorf(notFound, "%s %s not found", kind, id)
		if !tenancy.ValidID(id) {
			return owner{}, missing
		}
		var o struct {
			ProjectID string `json:"projectId"`
			TenantID  string `json:"tenantId"`
			Scope     *struct {
				Kind string `json:"kind"`
				ID   string `json:"id"`
			} `json:"scope"`
		}
		if _, err := s.Store.Get(ctx, store.Key(collection, id), &o); errors.Is(err, store.ErrNotFound) {
			return owner{}, missing
		} else if err != nil {
			return owner{}, err
		}
		pid := o.ProjectID
		if o.Scope != nil && o.Scope.Kind == api.KindProject {
			pid = o.Scope.ID
		}
		if pid == "" {
			if o.TenantID != "" {
				return owner{tenantID: o.TenantID}, nil
			}
			return owner{public: true}, nil
		}
		p, err := s.Tenancy.GetProject(ctx, pid)
		if err != nil {
			// The project went away under the object: only admins see it.
			return owner{tenantID: "-", projectID: pid}, nil
		}
		return owner{tenantID: p.TenantID, projectID: pid}, nil
	}}
}

// collectionOf is the path segment before {id}, e.g. "projects" for
// /v1/projects/{id}/quota; "" if the path has no {id}.
func collectionOf(path string) string {
	before, _, ok := strings.Cut(path, "/{id}")
	if !ok {
		return ""
	}
	return before[strings.LastIndex(before, "/")+1:]
}

// needsOwner reports whether a Perm is checked against the owner of {id}.
func needsOwner(p Perm) bool {
	switch p {
	case PermTenantRead, PermTenantWrite, PermProjectRead, PermProjectWrite, PermObjectRead, PermObjectWrite:
		return true
	}
	return false
}

// RuleProblems lists routes authorization has no rule for: an unknown
// Perm, or a Perm checked against {id} on a collection without an owner
// rule (or a path without {id}). The isolation matrix test fails on any.
func (s *Server) RuleProblems() []string {
	rules := s.ownerRules()
	var out []string
	for _, rt := range s.routes {
		switch {
		case rt.Perm < PermPublic || rt.Perm > PermHost:
			out = append(out, fmt.Sprintf("%s %s: unknown Perm %d", rt.Method, rt.Path, rt.Perm))
		case needsOwner(rt.Perm):
			c := collectionOf(rt.Path)
			if _, ok := rules[c]; !ok {
				out = append(out, fmt.Sprintf("%s %s: Perm %d needs an owner rule for collection %q (ownerRules in authorize.go)", rt.Method, rt.Path, rt.Perm, c))
			}
		}
	}
	return out
}

func forbidden(format string, args ...any) error {
	return api.Errorf(api.CodeAccessForbidden, format, args...)
}

// authenticate finds who the request is and what it may reach, and then
// asks authorize whether it may use the route.
func (s *Server) authenticate(r *http.Request, rt Route, info *requestInfo) error {
	if rt.Perm == PermPublic {
		return nil
	}
	if s.Tokens == nil || s.Auth == nil {
		return api.Errorf(api.CodeUnavailable, "authentication is not configured")
	}
	p, err := s.Tokens.Authenticate(r.Context(), r.Header.Get("Authorization"))
	if err != nil {
		return err
	}
	info.principal = p
	a, err := s.Auth.Access(r.Context(), p)
	if err != nil {
		return err
	}
	info.access = a
	return s.authorize(r.Context(), rt, r.PathValue("id"), a)
}

// authorize is the one decision: may a (the caller's access) use route rt
// on the object id (the path's {id}, "" if none)?
func (s *Server) authorize(ctx context.Context, rt Route, id string, a *auth.Access) error {
	switch rt.Perm {
	case PermPublic:
		return nil
	case PermHost:
		if a.HostID == "" {
			return forbidden("only a host's own credential may call %s %s", rt.Method, rt.Path)
		}
		if strings.Contains(rt.Path, "{id}") && id != a.HostID {
			return api.Errorf("HostNotFound", "host %s not found", id)
		}
		return nil
	}
	if a.HostID != "" {
		return forbidden("a host's credential may only reach its own host's state")
	}
	if rt.Perm == PermAuthenticated || a.System {
		return nil
	}
	if rt.Perm == PermSystemAdmin {
		return forbidden("%s %s needs the system-admin role", rt.Method, rt.Path)
	}
	if !needsOwner(rt.Perm) {
		return forbidden("no rule for this route")
	}
	rule, ok := s.ownerRules()[collectionOf(rt.Path)]
	if !ok {
		s.Log.Error("authorization: no owner rule", "method", rt.Method, "path", rt.Path)
		return forbidden("no rule for this route")
	}
	o, err := rule.find(ctx, id)
	if err != nil {
		return err
	}
	tenant, project := a.Tenant(o.tenantID), auth.LevelNone
	if o.projectID != "" {
		project = a.Project(o.projectID, o.tenantID)
	}
	if _, object := objectCollections[rule.kind]; object {
		project = max(project, a.Object(id)) // a grant on this object alone
	}
	visible := o.public || (o.projectID == "" && tenant >= auth.LevelViewer) || project >= auth.LevelViewer
	if !visible {
		// Exactly what a missing object answers.
		return api.Errorf(rule.notFound, "%s %s not found", rule.kind, id)
	}
	need, have := auth.LevelViewer, tenant
	switch rt.Perm {
	case PermTenantRead:
	case PermTenantWrite:
		need = auth.LevelAdmin
	case PermProjectRead, PermObjectRead, PermProjectWrite, PermObjectWrite:
		if o.projectID != "" {
			have = project
		}
		if rt.Perm == PermProjectWrite || rt.Perm == PermObjectWrite {
			need = auth.LevelUser
			if o.projectID == "" {
				need = auth.LevelAdmin
			}
		}
		if o.public {
			have = auth.LevelViewer
		}
	}
	if have < need {
		return forbidden("your roles do not allow %s %s on this %s", rt.Method, rt.Path, rule.kind)
	}
	return nil
}

// taskVisible: may a see task t (listings filter with it)?
func taskVisible(a *auth.Access, t *api.Task) bool {
	switch {
	case a == nil:
		return false
	case a.System:
		return true
	case t.TenantID == "":
		return false
	case t.ProjectID != "":
		return a.Project(t.ProjectID, t.TenantID) >= auth.LevelViewer
	}
	return a.Tenant(t.TenantID) >= auth.LevelViewer
}

// recordAudit appends a mutating request to the audit log.
func (s *Server) recordAudit(r *http.Request, rt Route, info *requestInfo, status int) {
	// Agents' own reports (PermHost: status every few seconds per host)
	// are telemetry, not changes people make: they would drown the log.
	if s.Audit == nil || rt.Perm == PermHost || r.Method == http.MethodGet || r.Method == http.MethodHead || r.Method == http.MethodOptions {
		return
	}
	e := &api.AuditEntry{Method: r.Method, Path: r.URL.Path, Status: status, Object: r.PathValue("id"), Subject: "anonymous"}
	if info.principal != nil {
		e.Subject = info.principal.Subject
	}
	if info.subject != "" {
		e.Subject = info.subject
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		e.RemoteAddr = host
	}
	if info.err != nil {
		ae, _ := toAPIError(info.err)
		e.Code = ae.Code
	}
	if t, ok := info.body.(*api.Task); ok && t != nil {
		e.TaskID = t.ID
		if e.Object == "" {
			e.Object = t.Entity.ID
		}
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(r.Context()), RequestTimeout)
	defer cancel()
	if s.Store != nil { // its own bound on waiting for etcd, not what the request left
		ctx = store.WithWaitBudget(ctx, s.Store.Limits().OpTimeout)
	}
	if err := s.Audit.Append(ctx, e); (errors.Is(err, store.ErrUnavailable) || errors.Is(err, store.ErrNoSpace)) && status >= 400 {
		// A request refused while etcd is away or full (the store logs
		// that once): its entry is not worth a line per request.
		s.Log.Debug("audit log", "error", err, "entry", mustJSON(e))
	} else if err != nil {
		s.Log.Warn("audit log", "error", err, "entry", mustJSON(e))
	}
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// visibleTenants lists the tenants a non-administrator holds a role in
// (all on one page: a caller holds few), with ?name= applied.
func (s *Server) visibleTenants(r *http.Request, a *auth.Access) []api.Tenant {
	name := r.URL.Query().Get("name")
	var out []api.Tenant
	for _, id := range a.Tenants() {
		t, err := s.Tenancy.GetTenant(r.Context(), id)
		if err != nil || (name != "" && t.Name != name) {
			continue
		}
		trimProjects(a, t)
		out = append(out, *t)
	}
	return out
}

// trimProjects drops from a tenant the projects a caller cannot see.
func trimProjects(a *auth.Access, t *api.Tenant) {
	if a == nil || a.Tenant(t.ID) >= auth.LevelAdmin {
		return
	}
	out := []api.ProjectRef{}
	for _, p := range t.Projects {
		if a.Project(p.ID, t.ID) >= auth.LevelViewer {
			out = append(out, p)
		}
	}
	t.Projects = out
}

func visibleProjects(a *auth.Access, l []api.Project) []api.Project {
	if a == nil || a.System {
		return l
	}
	out := l[:0]
	for _, p := range l {
		if a.Project(p.ID, p.TenantID) >= auth.LevelViewer {
			out = append(out, p)
		}
	}
	return out
}

// fillTaskTenant sets the tenant of a task that names only its project
// (memo caches project -> tenant across a listing).
func (s *Server) fillTaskTenant(ctx context.Context, t *api.Task, memo map[string]string) {
	if t.TenantID != "" || t.ProjectID == "" || s.Tenancy == nil {
		return
	}
	if tid, ok := memo[t.ProjectID]; ok {
		t.TenantID = tid
		return
	}
	if p, err := s.Tenancy.GetProject(ctx, t.ProjectID); err == nil {
		t.TenantID = p.TenantID
	}
	if memo != nil {
		memo[t.ProjectID] = t.TenantID
	}
}

func (s *Server) visibleTasks(ctx context.Context, a *auth.Access, l []api.Task) []api.Task {
	if a != nil && a.System {
		return l
	}
	visible := s.taskVisibleTo(ctx, a)
	out := l[:0]
	for i := range l {
		if visible(&l[i]) {
			out = append(out, l[i])
		}
	}
	return out
}

// taskVisibleTo returns whether a may see a task (filling in its tenant),
// for a list of tasks: it remembers each project's tenant.
func (s *Server) taskVisibleTo(ctx context.Context, a *auth.Access) func(*api.Task) bool {
	memo := map[string]string{}
	return func(t *api.Task) bool {
		s.fillTaskTenant(ctx, t, memo)
		return taskVisible(a, t)
	}
}

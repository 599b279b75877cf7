package httpapi

import (
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tasks"
	"github.com/photon-cloud/photon/internal/tenancy"
	"github.com/photon-cloud/photon/internal/version"
)

// linker sets selfLinks of objects answered to r.
type linker struct{ base string }

func links(r *http.Request) linker { return linker{base: baseURL(r)} }

func (l linker) tenant(t *api.Tenant)   { t.SelfLink = l.base + "/v1/tenants/" + t.ID }
func (l linker) project(p *api.Project) { p.SelfLink = l.base + "/v1/projects/" + p.ID }
func (l linker) flavor(f *api.Flavor)   { f.SelfLink = l.base + "/v1/flavors/" + f.ID }
func (l linker) task(t *api.Task)       { t.SelfLink = l.base + "/v1/tasks/" + t.ID }

// taskAnswer is how every state-changing call answers: 201 with the task.
func taskAnswer(r *http.Request, t *api.Task, err error) (int, any, error) {
	if err != nil {
		return 0, nil, err
	}
	links(r).task(t)
	return http.StatusCreated, t, nil
}

func (s *Server) info(r *http.Request) (int, any, error) {
	return http.StatusOK, &api.Info{BaseVersion: version.Base, FullVersion: version.Version,
		GitCommitHash: version.GitCommit, NetworkType: "NOT_CONFIGURED"}, nil
}

func (s *Server) openapi(r *http.Request) (int, any, error) { return http.StatusOK, openAPI, nil }

func (s *Server) authInfo(r *http.Request) (int, any, error) {
	host, port, _ := net.SplitHostPort(r.Host)
	p, _ := strconv.Atoi(port)
	return http.StatusOK, &api.AuthInfo{Enabled: true, Endpoint: host, Port: p}, nil
}

func (s *Server) status(r *http.Request) (int, any, error) {
	st := &api.SystemStatus{Status: "READY", Components: []api.ComponentStatus{{Component: "controller", Status: "READY"}}}
	// A check of its own, bounded by the store's ProbeTimeout (seconds):
	// the store logs etcd's comings and goings, once each.
	err := store.ErrUnavailable // known away: no need to wait for a check
	if s.Store.Available() {
		err = s.Store.Probe(r.Context())
	}
	if err != nil {
		s.Log.Debug("status: etcd", "error", err)
		e := api.Errorf(api.CodeUnavailable, "the store (etcd) is unavailable; retry later")
		e.Data = map[string]string{"controller": "READY", "etcd": "ERROR"}
		return 0, nil, e
	}
	st.Components = append(st.Components, api.ComponentStatus{Component: "etcd", Status: "READY"})
	return http.StatusOK, st, nil
}

func (s *Server) usage(r *http.Request) (int, any, error) {
	t, p, err := s.Tenancy.SystemCounts(r.Context())
	if err != nil {
		return 0, nil, err
	}
	u := &api.SystemUsage{NumberTenants: t, NumberProjects: p}
	for _, c := range []struct {
		n      *int
		prefix string
	}{{&u.NumberHosts, "hosts"}, {&u.NumberVMs, "vms"}, {&u.NumberDatastores, "datastores"}} {
		if *c.n, err = s.Store.Count(r.Context(), store.Prefix(c.prefix)); err != nil {
			return 0, nil, err
		}
	}
	return http.StatusOK, u, nil
}

// Tenants.

func (s *Server) listTenants(r *http.Request) (int, any, error) {
	token, size, err := pageParams(r)
	if err != nil {
		return 0, nil, err
	}
	if a := accessOf(r); a != nil && !a.System {
		return http.StatusOK, list(r, s.visibleTenants(r, a), "", links(r).tenant), nil
	}
	l, next, err := s.Tenancy.ListTenants(r.Context(), r.URL.Query().Get("name"), token, size)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, list(r, l, next, links(r).tenant), nil
}

func (s *Server) createTenant(r *http.Request) (int, any, error) {
	var spec api.TenantCreateSpec
	if err := decode(r, &spec); err != nil {
		return 0, nil, err
	}
	t, err := s.Tenancy.CreateTenant(r.Context(), &spec)
	return taskAnswer(r, t, err)
}

func (s *Server) getTenant(r *http.Request) (int, any, error) {
	t, err := s.Tenancy.GetTenant(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	trimProjects(accessOf(r), t)
	links(r).tenant(t)
	return http.StatusOK, t, nil
}

func (s *Server) deleteTenant(r *http.Request) (int, any, error) {
	t, err := s.Tenancy.DeleteTenant(r.Context(), r.PathValue("id"))
	return taskAnswer(r, t, err)
}

func (s *Server) getTenantQuota(r *http.Request) (int, any, error) {
	t, err := s.Tenancy.GetTenant(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, quotaBody(t.Quota), nil
}

func (s *Server) setTenantQuota(r *http.Request) (int, any, error) {
	var spec api.QuotaSpec
	if err := decode(r, &spec); err != nil {
		return 0, nil, err
	}
	t, err := s.Tenancy.SetTenantQuota(r.Context(), r.PathValue("id"), r.Method, &spec)
	return taskAnswer(r, t, err)
}

func quotaBody(q api.Quota) api.Quota {
	if q.QuotaItems == nil {
		q.QuotaItems = map[string]api.QuotaItem{}
	}
	return q
}

// Projects.

func (s *Server) listProjects(r *http.Request) (int, any, error) {
	token, size, err := pageParams(r)
	if err != nil {
		return 0, nil, err
	}
	l, next, err := s.Tenancy.ListProjects(r.Context(), r.PathValue("id"), r.URL.Query().Get("name"), token, size)
	if err != nil {
		return 0, nil, err
	}
	l = visibleProjects(accessOf(r), l)
	return http.StatusOK, list(r, l, next, links(r).project), nil
}

func (s *Server) createProject(r *http.Request) (int, any, error) {
	var spec api.ProjectCreateSpec
	if err := decode(r, &spec); err != nil {
		return 0, nil, err
	}
	t, err := s.Tenancy.CreateProject(r.Context(), r.PathValue("id"), &spec)
	return taskAnswer(r, t, err)
}

func (s *Server) getProject(r *http.Request) (int, any, error) {
	p, err := s.Tenancy.GetProject(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	links(r).project(p)
	return http.StatusOK, p, nil
}

func (s *Server) deleteProject(r *http.Request) (int, any, error) {
	t, err := s.Tenancy.DeleteProject(r.Context(), r.PathValue("id"))
	return taskAnswer(r, t, err)
}

func (s *Server) getProjectQuota(r *http.Request) (int, any, error) {
	p, err := s.Tenancy.GetProject(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, quotaBody(p.Quota), nil
}

func (s *Server) setProjectQuota(r *http.Request) (int, any, error) {
	var spec api.QuotaSpec
	if err := decode(r, &spec); err != nil {
		return 0, nil, err
	}
	t, err := s.Tenancy.SetProjectQuota(r.Context(), r.PathValue("id"), r.Method, &spec)
	return taskAnswer(r, t, err)
}

// Flavors.

func (s *Server) listFlavors(r *http.Request) (int, any, error) {
	token, size, err := pageParams(r)
	if err != nil {
		return 0, nil, err
	}
	q := r.URL.Query()
	l, next, err := s.Tenancy.ListFlavors(r.Context(), q.Get("name"), q.Get("kind"), token, size)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, list(r, l, next, links(r).flavor), nil
}

func (s *Server) createFlavor(r *http.Request) (int, any, error) {
	var spec api.FlavorCreateSpec
	if err := decode(r, &spec); err != nil {
		return 0, nil, err
	}
	t, err := s.Tenancy.CreateFlavor(r.Context(), &spec)
	return taskAnswer(r, t, err)
}

func (s *Server) getFlavor(r *http.Request) (int, any, error) {
	f, err := s.Tenancy.GetFlavor(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	links(r).flavor(f)
	return http.StatusOK, f, nil
}

func (s *Server) deleteFlavor(r *http.Request) (int, any, error) {
	t, err := s.Tenancy.DeleteFlavor(r.Context(), r.PathValue("id"))
	return taskAnswer(r, t, err)
}

// Tasks.

func (s *Server) listTasks(r *http.Request) (int, any, error) {
	q := r.URL.Query()
	if q.Has("ids") {
		return s.tasksByID(r)
	}
	return s.tasksPage(r, tasks.Filter{EntityID: q.Get("entityId"), EntityKind: q.Get("entityKind"), State: q.Get("state")})
}

// entityTasks lists the tasks of the tenant, project or flavor in the path.
func (s *Server) entityTasks(kind string) handler {
	return func(r *http.Request) (int, any, error) {
		id := r.PathValue("id")
		var err error
		switch kind {
		case api.KindTenant:
			_, err = s.Tenancy.GetTenant(r.Context(), id)
		case api.KindProject:
			_, err = s.Tenancy.GetProject(r.Context(), id)
		case api.KindFlavor:
			_, err = s.Tenancy.GetFlavor(r.Context(), id)
		}
		if err != nil {
			return 0, nil, err
		}
		return s.tasksPage(r, tasks.Filter{EntityID: id, State: r.URL.Query().Get("state")})
	}
}

func (s *Server) tasksPage(r *http.Request, f tasks.Filter) (int, any, error) {
	token, size, err := pageParams(r)
	if err != nil {
		return 0, nil, err
	}
	if f.EntityID != "" && !tenancy.ValidID(f.EntityID) {
		return http.StatusOK, list[api.Task](r, nil, "", links(r).task), nil
	}
	l, next, err := s.Tasks.List(r.Context(), f, token, size)
	if err != nil {
		return 0, nil, err
	}
	l = s.visibleTasks(r.Context(), accessOf(r), l)
	return http.StatusOK, list(r, l, next, links(r).task), nil
}

// tasksByID lists the tasks named by ?ids=A,B,... (our extension; up to
// tasks.MaxListed, those the caller may see, in the order named). With
// ?wait=D it lists only those that have ended, waiting up to D for one of
// them to end if none has: one long poll follows a batch's tasks.
func (s *Server) tasksByID(r *http.Request) (int, any, error) {
	q := r.URL.Query()
	wait, err := parseWait(q.Get("wait"))
	if err != nil {
		return 0, nil, err
	}
	for _, f := range []string{"entityId", "entityKind", "state", "pageLink", "pageSize"} {
		if q.Has(f) {
			return 0, nil, api.Errorf(api.CodeInvalidQuery, "ids: names the tasks to list; it does not go with %s", f)
		}
	}
	var ids []string
	for _, v := range q["ids"] {
		for id := range strings.SplitSeq(v, ",") {
			if id = strings.TrimSpace(id); tenancy.ValidID(id) {
				ids = append(ids, id)
			}
		}
	}
	var keep func(*api.Task) bool
	if a := accessOf(r); a == nil || !a.System {
		keep = s.taskVisibleTo(r.Context(), a)
	}
	ts, err := s.Tasks.Ended(r.Context(), ids, wait, keep)
	if err != nil {
		return 0, nil, err
	}
	l := make([]api.Task, 0, len(ts))
	for _, t := range ts {
		if wait == 0 || t.Done() {
			l = append(l, *t)
		}
	}
	return http.StatusOK, list(r, l, "", links(r).task), nil
}

func (s *Server) getTask(r *http.Request) (int, any, error) {
	wait, err := parseWait(r.URL.Query().Get("wait"))
	if err != nil {
		return 0, nil, err
	}
	id := r.PathValue("id")
	if !tenancy.ValidID(id) {
		return 0, nil, api.Errorf(api.CodeTaskNotFound, "task %s not found", id)
	}
	t, err := s.Tasks.Wait(r.Context(), id, wait)
	if err != nil {
		return 0, nil, err
	}
	links(r).task(t)
	return http.StatusOK, t, nil
}

// parseWait reads a task read's wait: a duration ("20s", "1m") or a
// number of seconds, 0 to tasks.MaxWait.
func parseWait(v string) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		n, nerr := strconv.ParseInt(v, 10, 32)
		if nerr != nil {
			return 0, api.Errorf(api.CodeInvalidQuery, "wait: want a duration such as 20s, got %q", v)
		}
		d = time.Duration(n) * time.Second
	}
	if d < 0 || d > tasks.MaxWait {
		return 0, api.Errorf(api.CodeInvalidQuery, "wait: want 0 to %s, got %q", tasks.MaxWait, v)
	}
	return d, nil
}

package tenancy

import (
	"context"
	"errors"
	"strings"

	"github.com/google/uuid"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tasks"
)

// Operations.
const (
	OpCreateTenant  = "CREATE_TENANT"
	OpDeleteTenant  = "DELETE_TENANT"
	OpCreateProject = "CREATE_PROJECT"
	OpDeleteProject = "DELETE_PROJECT"
	OpCreateFlavor  = "CREATE_FLAVOR"
	OpDeleteFlavor  = "DELETE_FLAVOR"
	OpSetQuota      = "SET_QUOTA"

	// Step names.
	StepReserveQuota = "RESERVE_QUOTA"
)

// MaxPageSize bounds list pages (and is their default).
const MaxPageSize = 100

func tenantKey(id string) string             { return store.Key("tenants", id) }
func projectKey(id string) string            { return store.Key("projects", id) }
func flavorKey(id string) string             { return store.Key("flavors", id) }
func tenantNameKey(name string) string       { return store.Key("names", "tenants", name) }
func projectNameKey(tid, name string) string { return store.Key("names", "projects", tid, name) }
func flavorNameKey(kind, name string) string { return store.Key("names", "flavors", kind, name) }

// ProjectKey and FlavorNameKey are where a project and a flavor's name
// live, for callers that prefetch what ChargeProject and
// AcquireFlavorNamed will read.
func ProjectKey(id string) string            { return projectKey(id) }
func FlavorNameKey(kind, name string) string { return flavorNameKey(kind, name) }
func tenantProjectKey(tid, pid string) string {
	return store.Key("tenant-projects", tid, pid)
}

// Service carries out tenancy requests.
type Service struct {
	st    *store.Store
	tasks *tasks.Engine
	// defaults, when set, gives a project created with a
	// defaultRouterPrivateIpCidr its default router and subnet, in the
	// project's create transaction (SetProjectDefaults).
	defaults func(ctx context.Context, tx *store.Txn, projectID, cidr string) error
}

// SetProjectDefaults sets what makes a new project's default network
// (network.Service.CreateDefaults) without tenancy importing network.
func (s *Service) SetProjectDefaults(fn func(ctx context.Context, tx *store.Txn, projectID, cidr string) error) {
	s.defaults = fn
}

// New returns the service and registers its operations with the engine.
func New(st *store.Store, engine *tasks.Engine) (*Service, error) {
	s := &Service{st: st, tasks: engine}
	if err := engine.Register(s.operations()...); err != nil {
		return nil, err
	}
	return s, nil
}

func (s *Service) operations() []*tasks.Operation {
	sync := func(name string) *tasks.Operation {
		// Done in the submitting transaction; the step never runs later.
		return &tasks.Operation{Name: name, Steps: []tasks.Step{{Name: name, Run: done}}}
	}
	return []*tasks.Operation{
		sync(OpCreateTenant), sync(OpDeleteTenant), sync(OpCreateFlavor), sync(OpDeleteFlavor), sync(OpSetQuota),
		{
			Name: OpCreateProject,
			Steps: []tasks.Step{
				{Name: StepReserveQuota, Run: done}, // in the submitting transaction
				{Name: OpCreateProject, Run: s.stepCreateProject},
			},
			Undo: func(ctx context.Context, tx *store.Txn, t *api.Task, _ *api.Error) error {
				return s.removeProject(ctx, tx, t.Entity.ID)
			},
		},
		{
			Name:  OpDeleteProject,
			Steps: []tasks.Step{{Name: OpDeleteProject, Run: s.stepDeleteProject}},
		},
	}
}

func done(context.Context, *store.Txn, *api.Task) error { return nil }

// submit runs fn and submits a task for op in one transaction; the first
// syncSteps steps are recorded as done there. It then runs the rest of the
// task and returns it as it ends, or as it stands if ctx ends first (the
// task goes on in the background).
func (s *Service) submit(ctx context.Context, op string, entity api.Entity, tenantID, projectID string, syncSteps int,
	fn func(tx *store.Txn, t *api.Task) error) (*api.Task, error) {
	var task *api.Task
	_, err := s.st.Update(ctx, func(tx *store.Txn) error {
		var err error
		task, err = s.tasks.NewTask(op, entity, tenantID, projectID)
		if err != nil {
			return err
		}
		if err := fn(tx, task); err != nil {
			return err
		}
		for i := 0; i < syncSteps; i++ {
			s.tasks.CompleteStep(task, i)
		}
		return s.tasks.Submit(ctx, tx, task)
	})
	if err != nil {
		return nil, err
	}
	if task.Done() {
		return task, nil
	}
	t, err := s.tasks.Run(ctx, task.ID)
	if err != nil {
		// The task is persisted; the engine carries it on. Answer with it as it stands.
		if cur, gerr := s.tasks.Get(context.WithoutCancel(ctx), task.ID); gerr == nil {
			return cur, nil
		}
		return task, nil
	}
	return t, nil
}

// notFound maps store.ErrNotFound to an API not-found error.
func notFound(err error, code, kind, id string) error {
	if errors.Is(err, store.ErrNotFound) {
		return api.Errorf(code, "%s %s not found", kind, id)
	}
	return err
}

// page lists one page of objects of type T under prefix (see store.PageOf).
func page[T any](ctx context.Context, st *store.Store, prefix, token string, size int, index func(id string) string) ([]T, string, error) {
	if size <= 0 || size > MaxPageSize {
		size = MaxPageSize
	}
	return store.PageOf[T](ctx, st, prefix, token, size, index)
}

// byName returns the one object named by the name index key, if any.
func byName[T any](ctx context.Context, st *store.Store, nameKey string, objKey func(string) string) ([]T, error) {
	var id string
	if _, err := st.Get(ctx, nameKey, &id); errors.Is(err, store.ErrNotFound) {
		return []T{}, nil
	} else if err != nil {
		return nil, err
	}
	var v T
	if _, err := st.Get(ctx, objKey(id), &v); errors.Is(err, store.ErrNotFound) {
		return []T{}, nil
	} else if err != nil {
		return nil, err
	}
	return []T{v}, nil
}

// claimName reserves a name index key for id in tx, or fails NameTaken.
func claimName(ctx context.Context, tx *store.Txn, key, kind, name string) error {
	taken, err := tx.Exists(ctx, key)
	if err != nil {
		return err
	}
	if taken {
		e := api.Errorf(api.CodeNameTaken, "%s name %q is taken", kind, name)
		e.Data = map[string]string{"field": "name"}
		return e
	}
	return nil
}

func newID() string { return uuid.Must(uuid.NewV7()).String() }

// ValidID rejects ids that could not be ours before they reach a key.
func ValidID(id string) bool {
	return id != "" && len(id) <= 64 && !strings.ContainsAny(id, "/\x00")
}

// SystemCounts returns the number of tenants and projects.
func (s *Service) SystemCounts(ctx context.Context) (tenants, projects int, err error) {
	if tenants, err = s.st.Count(ctx, store.Prefix("tenants")); err != nil {
		return 0, 0, err
	}
	projects, err = s.st.Count(ctx, store.Prefix("projects"))
	return tenants, projects, err
}

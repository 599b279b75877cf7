package tasks

import (
	"context"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// Filter selects tasks; empty fields match all.
type Filter struct {
	EntityID   string
	EntityKind string
	State      string
}

// validStates are the task states a filter may name.
var validStates = map[string]bool{api.TaskQueued: true, api.TaskStarted: true, api.TaskCompleted: true, api.TaskError: true}

// List returns one page of tasks, oldest first (task ids are time-ordered).
// Filters other than EntityID apply within the page, which may so come out
// shorter than size while a next page exists.
func (e *Engine) List(ctx context.Context, f Filter, token string, size int) ([]api.Task, string, error) {
	if f.State != "" && !validStates[f.State] {
		return nil, "", api.Errorf(api.CodeInvalidQuery, "state: unknown task state %q (want QUEUED, STARTED, COMPLETED or ERROR)", f.State)
	}
	var l []api.Task
	var next string
	var err error
	if f.EntityID != "" {
		l, next, err = store.PageOf[api.Task](ctx, e.st, EntityPrefix(f.EntityID), token, size, Key)
	} else {
		l, next, err = store.PageOf[api.Task](ctx, e.st, Prefix, token, size, nil)
	}
	if err != nil {
		return nil, "", err
	}
	out := l[:0]
	for _, t := range l {
		if (f.EntityKind == "" || t.Entity.Kind == f.EntityKind) && (f.State == "" || t.State == f.State) {
			out = append(out, t)
		}
	}
	return out, next, nil
}

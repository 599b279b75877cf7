package photontest

import (
	"context"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
)

// Done returns a function that waits (within ctx) for the task a
// task-returning call of cl made to finish, and fails the test unless the
// call and the task succeeded:
//
//	done := photontest.Done(t, ctx, cl)
//	task := done(cl.CreateTenant(ctx, spec))
func Done(t testing.TB, ctx context.Context, cl *client.Client) func(*api.Task, error) *api.Task {
	return func(task *api.Task, err error) *api.Task {
		t.Helper()
		if err == nil {
			task, err = cl.WaitTask(ctx, task)
		}
		if err == nil {
			err = task.Err()
		}
		if err != nil {
			t.Fatal(err)
		}
		return task
	}
}

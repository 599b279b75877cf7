package client

import (
	"context"
	"errors"
	"net"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/photon-cloud/photon/api"
)

// TaskFilter selects tasks in ListTasks; empty fields match everything.
type TaskFilter struct {
	// EntityID, e.g. a tenant id.
	EntityID string
	// EntityKind, e.g. "tenant".
	EntityKind string
	// State is QUEUED, STARTED, COMPLETED or ERROR.
	State string
}

func (f TaskFilter) query() string {
	return query("entityId", f.EntityID, "entityKind", f.EntityKind, "state", f.State)
}

// GetTask reads one task.
func (c *Client) GetTask(ctx context.Context, id string) (*api.Task, error) {
	return getOne[api.Task](ctx, c, "/v1/tasks/"+esc(id))
}

// ListTasks lists tasks matching f, all pages.
func (c *Client) ListTasks(ctx context.Context, f TaskFilter) ([]api.Task, error) {
	return ListAll[api.Task](ctx, c, "/v1/tasks"+f.query())
}

// GetTaskWait reads a task, waiting up to wait for it to change if it is
// not done (a long poll: GET /v1/tasks/{id}?wait=). A controller that does
// not wait answers at once.
func (c *Client) GetTaskWait(ctx context.Context, id string, wait time.Duration) (*api.Task, error) {
	return getOne[api.Task](ctx, c, "/v1/tasks/"+esc(id)+query("wait", strconv.Itoa(int(wait/time.Second))))
}

// Following a task: each read waits up to taskWait for a change (less if
// the client's request timeout is short); reads answered at once with the
// task unchanged (a controller that does not wait) back off from pollMin
// to pollMax.
var (
	taskWait = 20 * time.Second
	pollMin  = 50 * time.Millisecond
	pollMax  = time.Second
)

// maxPollFailures is how many transient poll failures in a row WaitTask
// tolerates (a controller restart or failover) before giving up.
const maxPollFailures = 10

// WaitTask follows task until it is COMPLETED or ERROR and returns its
// final state. A task that ends ERROR is returned together with
// task.Err(). It stops with ctx.Err() when ctx ends.
func (c *Client) WaitTask(ctx context.Context, task *api.Task) (*api.Task, error) {
	return c.WatchTask(ctx, task, nil)
}

// WatchTask is WaitTask calling progress (if not nil) with every state of the
// task it reads, the first one included, e.g. to print step progress.
func (c *Client) WatchTask(ctx context.Context, task *api.Task, progress func(*api.Task)) (*api.Task, error) {
	if task == nil {
		return nil, errors.New("wait: no task")
	}
	if progress != nil {
		progress(task)
	}
	wait := taskWait
	if t := c.hc.Timeout; t > 0 {
		wait = min(wait, t/2)
	}
	var p pacer
	for !task.Done() {
		if err := sleepCtx(ctx, p.delay); err != nil {
			return task, err
		}
		asked := time.Now()
		t, err := c.GetTaskWait(ctx, task.ID, wait)
		if err != nil {
			if p.failed(ctx, err) {
				continue
			}
			return task, err
		}
		p.answered(!changed(task, t) && time.Since(asked) < wait/2)
		task = t
		if progress != nil {
			progress(task)
		}
	}
	return task, task.Err()
}

// tasksPerWait bounds the tasks one read of WaitTasks names (its URL
// stays under 4 KB).
const tasksPerWait = 100

// WaitTasks follows tasks until each is COMPLETED or ERROR and returns
// them as they ended, in the order given; ended (if not nil) is called
// with each as it ends. It follows up to 100 at a time with one long poll
// (GET /v1/tasks?ids=A,B,...&wait=: our extension, answered once any of
// them has ended), so following a batch create's tasks costs a request
// per few VMs done instead of one per change of each. A task that ended
// ERROR is returned as such (task.Err()); the error is for following
// itself (ctx ending, a task that no longer exists). Against a controller
// without the extension it follows them one at a time (WaitTask).
func (c *Client) WaitTasks(ctx context.Context, tasks []*api.Task, ended func(*api.Task)) ([]*api.Task, error) {
	out := slices.Clone(tasks)
	at := map[string][]int{} // id -> its places in out
	finish := func(t *api.Task) {
		for _, k := range at[t.ID] {
			out[k] = t
		}
		if ended != nil {
			ended(t)
		}
	}
	var pending []string
	for i, t := range tasks {
		if t == nil {
			return out, errors.New("wait: no task")
		}
		if t.Done() {
			finish(t)
			continue
		}
		if at[t.ID] == nil {
			pending = append(pending, t.ID)
		}
		at[t.ID] = append(at[t.ID], i)
	}
	wait := taskWait
	if t := c.hc.Timeout; t > 0 {
		wait = min(wait, t/2)
	}
	secs := strconv.Itoa(max(int(wait/time.Second), 1))
	var p pacer
	for len(pending) > 0 {
		if err := sleepCtx(ctx, p.delay); err != nil {
			return out, err
		}
		ask := pending[:min(len(pending), tasksPerWait)]
		asked := time.Now()
		var l api.List[api.Task]
		err := c.get(ctx, "/v1/tasks"+query("ids", strings.Join(ask, ","), "wait", secs), &l)
		if err != nil {
			if p.failed(ctx, err) {
				continue
			}
			return out, err
		}
		done := map[string]bool{}
		for i := range l.Items {
			t := &l.Items[i]
			if at[t.ID] == nil || !t.Done() { // the controller ignored ids: no extension
				return out, c.waitEach(ctx, pending, out, at, finish)
			}
			done[t.ID] = true
			finish(t)
		}
		p.answered(len(done) == 0 && time.Since(asked) < wait/2)
		if len(done) > 0 {
			pending = slices.DeleteFunc(pending, func(id string) bool { return done[id] })
			continue
		}
		// None ended: check none is gone (it would never end; the
		// controller answers at once when none it waits on is left).
		var all api.List[api.Task]
		if err := c.get(ctx, "/v1/tasks"+query("ids", strings.Join(ask, ",")), &all); err != nil {
			continue // the next poll retries, or fails
		}
		if len(all.Items) < len(ask) {
			have := map[string]bool{}
			for _, t := range all.Items {
				have[t.ID] = true
			}
			for _, id := range ask {
				if !have[id] {
					return out, api.Errorf(api.CodeTaskNotFound, "task %s not found", id)
				}
			}
		}
	}
	return out, nil
}

// waitEach is WaitTasks one task at a time (out[at[id][0]] as last
// seen), for a controller without the batch long poll.
func (c *Client) waitEach(ctx context.Context, pending []string, out []*api.Task, at map[string][]int, finish func(*api.Task)) error {
	for _, id := range pending {
		t, err := c.WaitTask(ctx, out[at[id][0]])
		if t == nil || !t.Done() {
			return err
		}
		finish(t)
	}
	return nil
}

// sleepCtx sleeps d (none if d <= 0) or until ctx ends.
func sleepCtx(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-timer.C:
		return nil
	}
}

// pacer paces a follower's reads: the delay before the next one, and
// the transient failures in a row.
type pacer struct {
	delay    time.Duration
	failures int
}

// failed reports whether a read that failed with err is worth another
// (transient, not too many in a row, ctx alive), backing off if so.
func (p *pacer) failed(ctx context.Context, err error) bool {
	if ctx.Err() != nil || !transient(err) || p.failures >= maxPollFailures {
		return false
	}
	p.failures++
	p.delay = backoff(p.delay)
	return true
}

// answered records an answer: one given at once with nothing new (a
// controller that does not wait) backs off; any other reads again at once.
func (p *pacer) answered(atOnce bool) {
	p.failures = 0
	if atOnce {
		p.delay = backoff(p.delay)
	} else {
		p.delay = 0
	}
}

// backoff is the delay after d before a task is read again.
func backoff(d time.Duration) time.Duration { return min(max(d*3/2, pollMin), pollMax) }

// changed reports whether b shows progress over a: its state or a step's.
func changed(a, b *api.Task) bool {
	if a.State != b.State || len(a.Steps) != len(b.Steps) {
		return true
	}
	for i := range a.Steps {
		if a.Steps[i].State != b.Steps[i].State {
			return true
		}
	}
	return false
}

// Wait returns a function that waits for the task a state-changing call
// returned, passing the call's error through:
//
//	task, err := c.Wait(ctx)(c.DeleteTenant(ctx, id))
func (c *Client) Wait(ctx context.Context) func(*api.Task, error) (*api.Task, error) {
	return func(t *api.Task, err error) (*api.Task, error) {
		if err != nil {
			return t, err
		}
		return c.WaitTask(ctx, t)
	}
}

// transient reports whether a poll error may go away on retry.
func transient(err error) bool {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Code == api.CodeUnavailable || ae.HTTPStatus == 502 || ae.HTTPStatus == 504
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, net.ErrClosed)
}

package tasks

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"os"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// StepFunc does one step's work inside tx, which also records the step as
// done: either both commit or neither. It may be called more than once (a
// conflicting commit retries it with fresh reads), so it must only act
// through tx. An *api.Error ends the task ERROR, and so does a commit etcd
// refuses for its size (RequestTooLarge: it would never fit); any other
// error leaves the task queued to be retried later (e.g. etcd unavailable).
type StepFunc func(ctx context.Context, tx *store.Txn, t *api.Task) error

// ErrWait, returned by a step, means "not yet": what the step wrote commits
// with the task's progress, the step stays unfinished, and it runs again on
// Kick or the next scan. Steps that wait for a host to act use it, keeping
// what they need to remember in the step's Options.
var ErrWait = errors.New("step waits")

// UndoFunc undoes, inside tx, what a failed task reserved; it runs in the
// transaction that marks the task ERROR.
type UndoFunc func(ctx context.Context, tx *store.Txn, t *api.Task, cause *api.Error) error

// Step names one step of an operation and its work.
type Step struct {
	Name string
	Run  StepFunc
}

// Operation is a kind of task, e.g. CREATE_PROJECT, and its ordered steps.
type Operation struct {
	Name  string
	Steps []Step
	// Undo, if set, runs when a step fails.
	Undo UndoFunc
}

// Keys of a task's records.
func Key(id string) string              { return store.Key("tasks", id) }
func queueKey(id string) string         { return store.Key("taskqueue", id) }
func lockKey(entity string) string      { return store.Key("locks", entity) }
func EntityPrefix(entity string) string { return store.Prefix("tasks-by-entity", entity) }
func entityKey(entity, id string) string {
	return store.Key("tasks-by-entity", entity, id)
}

// Prefix is where all tasks live.
var Prefix = store.Prefix("tasks")

// Engine runs tasks. Several engines (controllers) may share one etcd: a
// step commits only if the task did not move since it was read, so racing
// runners never both complete a step.
type Engine struct {
	st  *store.Store
	log *slog.Logger
	ops map[string]*Operation
	now func() time.Time

	// ScanInterval is how often unfinished tasks are looked for (default 2 s).
	ScanInterval time.Duration

	fail    map[string]string // "OP/STEP" -> action
	mu      sync.Mutex
	running map[string]*runner // in this process: id -> its runner
	// resumed are the tasks whose resumption was logged (at Info, once
	// while the task stays unfinished; later resumptions at Debug); a
	// scan that no longer finds one forgets it.
	resumed map[string]bool
	kick    chan struct{}
	hub     *store.Hub // changes to tasks, for Wait
}

// New returns an engine for the given operations. Failpoints come from the
// PHOTON_FAILPOINTS environment variable.
func New(st *store.Store, log *slog.Logger, ops ...*Operation) (*Engine, error) {
	e := &Engine{st: st, log: log, ops: map[string]*Operation{}, now: time.Now,
		ScanInterval: 2 * time.Second, running: map[string]*runner{}, resumed: map[string]bool{}, kick: make(chan struct{}, 1), hub: st.NewHub("tasks")}
	e.hub.KeepValues(keptTasks)
	if err := e.Register(ops...); err != nil {
		return nil, err
	}
	fp, err := ParseFailpoints(os.Getenv("PHOTON_FAILPOINTS"))
	if err != nil {
		return nil, err
	}
	e.fail = fp
	return e, nil
}

// Register adds operations; call it before Loop or Run.
func (e *Engine) Register(ops ...*Operation) error {
	for _, op := range ops {
		if len(op.Steps) == 0 {
			return fmt.Errorf("operation %s has no steps", op.Name)
		}
		if _, dup := e.ops[op.Name]; dup {
			return fmt.Errorf("operation %s registered twice", op.Name)
		}
		e.ops[op.Name] = op
	}
	return nil
}

// ParseFailpoints parses "OP/STEP=crash,OP2/STEP2=crash".
func ParseFailpoints(s string) (map[string]string, error) {
	m := map[string]string{}
	for _, part := range strings.Split(s, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		k, v, ok := strings.Cut(part, "=")
		if !ok || !strings.Contains(k, "/") || v != "crash" {
			return nil, fmt.Errorf("PHOTON_FAILPOINTS: %q: want OPERATION/STEP=crash", part)
		}
		m[k] = v
	}
	return m, nil
}

// NewTask builds a QUEUED task for op on entity with the operation's steps,
// scoped to tenantID/projectID for listing.
func (e *Engine) NewTask(op string, entity api.Entity, tenantID, projectID string) (*api.Task, error) {
	o, ok := e.ops[op]
	if !ok {
		return nil, fmt.Errorf("unknown operation %s", op)
	}
	now := e.now().UnixMilli()
	t := &api.Task{
		Base:      api.Base{ID: uuid.Must(uuid.NewV7()).String(), Kind: api.KindTask},
		Operation: op, State: api.TaskQueued, QueuedTime: now,
		Entity: entity, TenantID: tenantID, ProjectID: projectID,
	}
	for i, s := range o.Steps {
		t.Steps = append(t.Steps, api.Step{Sequence: i, Operation: s.Name, State: api.TaskQueued,
			QueuedTime: now, Errors: []api.Error{}, Warnings: []api.Error{}, Options: map[string]string{}})
	}
	return t, nil
}

// CompleteStep marks step i done in t: for work the caller did in the
// submitting transaction (e.g. a quota reservation refused synchronously).
func (e *Engine) CompleteStep(t *api.Task, i int) {
	now := e.now().UnixMilli()
	if t.StartedTime == 0 {
		t.StartedTime = now
	}
	t.State = api.TaskStarted
	t.Steps[i].State, t.Steps[i].StartedTime, t.Steps[i].EndTime = api.TaskCompleted, now, now
	if i == len(t.Steps)-1 {
		t.State, t.EndTime = api.TaskCompleted, now
	}
}

// StartStep marks step i of a task not yet submitted as started now: a
// step that waits (e.g. for a host) from the moment the task is submitted,
// so that the submitter need not run the task once only to start it.
func (e *Engine) StartStep(t *api.Task, i int) { e.startStep(t, i) }

// startStep marks t and its step i STARTED (since now, unless they were)
// and returns now.
func (e *Engine) startStep(t *api.Task, i int) int64 {
	now := e.now().UnixMilli()
	if t.StartedTime == 0 {
		t.StartedTime = now
	}
	t.State, t.Steps[i].State = api.TaskStarted, api.TaskStarted
	if t.Steps[i].StartedTime == 0 {
		t.Steps[i].StartedTime = now
	}
	return now
}

// StartInline runs t's next step inside tx, the transaction that submits
// t (call it before Submit), when that step is one that starts something
// and then waits (ErrWait): its writes and t's progress then commit with
// the submission, and the submitter need not Run the task only to start
// it; it reports true. A step that completes, fails or errs at once is
// taken back (writes and t) and left to Run, as is a step with a
// failpoint.
func (e *Engine) StartInline(ctx context.Context, tx *store.Txn, t *api.Task) (bool, error) {
	op := e.ops[t.Operation]
	i := nextStep(t)
	if op == nil || i < 0 || e.fail[t.Operation+"/"+t.Steps[i].Operation] != "" {
		return false, nil
	}
	state, started, ended := t.State, t.StartedTime, t.EndTime
	saved := t.Steps[i]
	saved.Options = maps.Clone(saved.Options)
	m := tx.Mark()
	err := e.runStep(ctx, tx, op, t, i)
	if errors.Is(err, ErrWait) {
		return true, nil
	}
	tx.RollbackTo(m)
	t.State, t.StartedTime, t.EndTime, t.Steps[i] = state, started, ended, saved
	if errors.Is(err, store.ErrConflict) {
		return false, err // a stale read: the submission runs again
	}
	return false, nil
}

// FailStep marks step i of a task not yet submitted as failed with err,
// ending it ERROR: for a request accepted but refused at once (e.g. no host
// fits), whose task must still record why.
func (e *Engine) FailStep(t *api.Task, i int, err *api.Error) {
	now := e.now().UnixMilli()
	if t.StartedTime == 0 {
		t.StartedTime = now
	}
	s := &t.Steps[i]
	s.State, s.StartedTime, s.EndTime = api.TaskError, now, now
	s.Errors = append(s.Errors, api.Error{Code: err.Code, Message: err.Message, Data: err.Data})
	t.State, t.EndTime = api.TaskError, now
}

// Submit adds t to tx: the record, its entity index and, while unfinished,
// its queue entry and the lock on its entity. It fails with ConcurrentTask if
// another unfinished task holds the entity. Call it in the same transaction
// that checks and writes the request's synchronous effects; after the
// commit, Run (or the background scan) carries the task on.
func (e *Engine) Submit(ctx context.Context, tx *store.Txn, t *api.Task) error {
	if t.Entity.ID != "" {
		var holder string
		held, err := tx.Get(ctx, lockKey(t.Entity.ID), &holder)
		if err != nil {
			return err
		}
		if held && holder != t.ID {
			return api.Errorf(api.CodeConcurrentTask, "%s %s is busy with task %s", t.Entity.Kind, t.Entity.ID, holder)
		}
		if err := tx.Put(entityKey(t.Entity.ID, t.ID), t.ID); err != nil {
			return err
		}
	}
	if !t.Done() {
		// Unfinished, it is found again (scan) by its entity's lock, or,
		// with no entity, its queue entry: two keys less to write and
		// delete per task on an entity.
		k := queueKey(t.ID)
		if t.Entity.ID != "" {
			k = lockKey(t.Entity.ID)
		}
		if err := tx.Put(k, t.ID); err != nil {
			return err
		}
	}
	return tx.Put(Key(t.ID), t)
}

// Get reads a task.
func (e *Engine) Get(ctx context.Context, id string) (*api.Task, error) {
	t, _, err := e.get(ctx, id)
	return t, err
}

func (e *Engine) get(ctx context.Context, id string) (*api.Task, int64, error) {
	return e.getWith(ctx, id, e.st.GetAt)
}

// getLinearizable is get with a linearizable read (see
// store.Store.GetAtLinearizable).
func (e *Engine) getLinearizable(ctx context.Context, id string) (*api.Task, int64, error) {
	return e.getWith(ctx, id, e.st.GetAtLinearizable)
}

func (e *Engine) getWith(ctx context.Context, id string, getAt func(context.Context, string, any) (int64, error)) (*api.Task, int64, error) {
	var t api.Task
	rev, err := getAt(ctx, Key(id), &t)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, 0, api.Errorf(api.CodeTaskNotFound, "task %s not found", id)
		}
		return nil, 0, err
	}
	return &t, rev, nil
}

// MaxWait bounds how long Wait holds a request.
const MaxWait = 50 * time.Second

// keptTasks bounds the task records Wait may answer from the watch that
// wakes it (the last changes of at most this many tasks; about 1 KB each).
const keptTasks = 1 << 15

// Wait reads task id; if it is not done, it waits up to d (at most
// MaxWait) for the task to change (a step starts or ends, the task ends)
// and reads it again. A long poll: a client following a task makes one
// request per change instead of polling on a timer. The engine's Loop
// feeds the watch it waits on; without it Wait does not wait.
//
// Both reads take the task's last change from that watch when it is
// visible to reads (store.Visible), and etcd otherwise. Not an invisible
// one: etcd notifies watchers before a write is visible to reads, and a
// client told "COMPLETED" that then asks for the next operation must find
// what the task did (a serializable read right after the notification
// can still see the VM CREATING). The first may be older than etcd's
// value (the watch lags): then the change after it wakes the wait at
// once. A read is never ahead of what later reads see; one that runs
// before the change is visible (serializable, see store.SingleMember)
// answers the task as it was, and the client asks again.
func (e *Engine) Wait(ctx context.Context, id string, d time.Duration) (*api.Task, error) {
	if d <= 0 {
		return e.Get(ctx, id)
	}
	t, rev, err := e.read(ctx, id, 0)
	if err != nil {
		return nil, err
	}
	if t.Done() {
		return t, nil
	}
	e.hub.Wait(ctx, id, rev, min(d, MaxWait))
	if ctx.Err() != nil {
		return t, nil // the request is over; this answer goes nowhere
	}
	t, _, err = e.readChanged(ctx, id, rev)
	return t, err
}

// readChanged is read after a wait for a change of task id after
// revision after: when the hub saw a change that a plain read does not
// show yet (etcd notifies watchers before a write is visible to reads),
// it reads linearizably, so that a wait woken by a change answers it.
func (e *Engine) readChanged(ctx context.Context, id string, after int64) (*api.Task, int64, error) {
	t, rev, err := e.read(ctx, id, after)
	if err == nil && rev < e.hub.Version(id) {
		return e.getLinearizable(ctx, id)
	}
	return t, rev, err
}

// read reads task id as the hub saw it change after revision after (see
// seen), or else from etcd, with the revision a wait for its next change
// is after.
func (e *Engine) read(ctx context.Context, id string, after int64) (*api.Task, int64, error) {
	if t, rev, ok := e.seen(id, after); ok {
		return t, rev, nil
	}
	return e.get(ctx, id)
}

// errTaskNotFound matches get's error for a task that does not exist.
var errTaskNotFound = &api.Error{Code: api.CodeTaskNotFound}

// MaxListed bounds the tasks one Ended call names.
const MaxListed = 1000

// Ended reads tasks ids and returns those that exist and keep accepts
// (nil: all), in the order asked. With d > 0, when none of them has ended
// (COMPLETED or ERROR) it waits up to d (at most MaxWait) for one to end
// and returns them as then read: one long poll follows many tasks (e.g.
// a batch create's), answered as soon as any ends.
func (e *Engine) Ended(ctx context.Context, ids []string, d time.Duration, keep func(*api.Task) bool) ([]*api.Task, error) {
	if len(ids) > MaxListed {
		return nil, api.Errorf(api.CodeInvalidQuery, "ids: at most %d tasks, got %d", MaxListed, len(ids))
	}
	var kept []string
	var ts []*api.Task
	var revs []int64
	ended := false
	for _, id := range ids {
		t, rev, err := e.read(ctx, id, 0)
		if errors.Is(err, errTaskNotFound) {
			continue
		} else if err != nil {
			return nil, err
		}
		if keep == nil || keep(t) {
			kept, ts, revs = append(kept, id), append(ts, t), append(revs, rev)
			ended = ended || t.Done()
		}
	}
	deadline := time.Now().Add(min(d, MaxWait))
	for !ended && len(ts) > 0 && ctx.Err() == nil {
		left := time.Until(deadline)
		if left <= 0 {
			break
		}
		e.hub.WaitAny(ctx, kept, revs, left)
		if ctx.Err() != nil {
			break
		}
		changed, watched := false, true
		for i, id := range kept {
			v := e.hub.Version(id)
			if v == 0 {
				watched = false // no watch: read them all once more
			} else if v <= revs[i] {
				continue // not this one (or gone: revs[i] is the largest)
			}
			t, rev, err := e.readChanged(ctx, id, revs[i])
			if errors.Is(err, errTaskNotFound) {
				ts[i], revs[i] = nil, math.MaxInt64 // gone: left out
				continue
			} else if err != nil {
				return nil, err
			}
			changed = changed || rev > revs[i]
			ts[i], revs[i] = t, rev
			ended = ended || t.Done()
		}
		if !changed || !watched {
			break // no watch to wait on (see Wait): the caller polls
		}
	}
	return slices.DeleteFunc(ts, func(t *api.Task) bool { return t == nil }), nil
}

// seen returns the task as the hub last saw it change after revision
// after, if it keeps that change and it is visible to reads, and the
// revision through which the hub has seen every change (the task's is
// the same at it: a wait is for a change after it).
func (e *Engine) seen(id string, after int64) (*api.Task, int64, bool) {
	val, rev, through, ok := e.hub.Latest(id)
	if !ok || val == nil || rev <= after || !e.st.Visible(rev) {
		return nil, 0, false
	}
	var t api.Task
	if err := store.Decode(val, &t); err != nil {
		return nil, 0, false
	}
	return &t, through, true
}

type runner struct {
	done  chan struct{}
	again bool // Kicked while running: run once more before leaving
}

// Run carries task id as far as it can go now: to its end, or to a step
// that waits (or until ctx ends or a transient error). It returns the task
// as it then is. Concurrent Runs of one task in this process share one
// runner; one that arrives while the runner works makes it try once more.
func (e *Engine) Run(ctx context.Context, id string) (*api.Task, error) {
	return e.RunSeeded(ctx, id, nil)
}

// RunSeeded is Run whose first step reads from sn (e.g. what the commit
// that woke the task wrote) before etcd; a stale value in sn only makes
// that step's commit conflict and run again on fresh reads.
func (e *Engine) RunSeeded(ctx context.Context, id string, sn *store.Snapshot) (*api.Task, error) {
	e.mu.Lock()
	r, busy := e.running[id]
	if busy {
		r.again = true
	} else {
		r = &runner{done: make(chan struct{})}
		e.running[id] = r
	}
	e.mu.Unlock()
	if busy {
		select {
		case <-r.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return e.Get(ctx, id)
	}
	defer close(r.done)
	for {
		t, more, err := e.step(ctx, id, sn)
		sn = nil
		if err == nil && more {
			continue
		}
		e.mu.Lock()
		again := r.again && err == nil && !t.Done()
		r.again = false
		if !again {
			delete(e.running, id)
		}
		e.mu.Unlock()
		if !again {
			return t, err
		}
	}
}

// KickTask runs task id in the background now, e.g. when a host reported
// what a waiting step waits for.
func (e *Engine) KickTask(id string) { e.KickTaskSeeded(id, nil) }

// KickTaskSeeded is KickTask with RunSeeded's snapshot.
func (e *Engine) KickTaskSeeded(id string, sn *store.Snapshot) {
	go func() {
		if _, err := e.RunSeeded(context.Background(), id, sn); err != nil {
			e.log.Warn("run task", "task", id, "error", err)
		}
	}()
}

// errNothingToCommit ends a waiting step's transaction that wrote nothing.
var errNothingToCommit = errors.New("nothing to commit")

// errStepFailed carries a step's refusal out of the step transaction.
type errStepFailed struct {
	step int
	err  *api.Error
}

func (e *errStepFailed) Error() string { return e.err.Error() }

// step runs the task's next step in one transaction. It reports whether
// more steps remain.
func (e *Engine) step(ctx context.Context, id string, sn *store.Snapshot) (*api.Task, bool, error) {
	var t api.Task
	var op *Operation
	// Read once outside the transaction to honor failpoints before acting;
	// the transaction's first attempt uses this read (its commit is
	// conditioned on it) instead of reading again.
	pre := e.st.Txn()
	if sn != nil {
		pre.SeedSnapshot(sn)
	}
	if err := pre.MustGet(ctx, Key(id), &t); err != nil {
		return nil, false, fmt.Errorf("task %s: %w", id, err)
	}
	if t.Done() {
		return &t, false, nil
	}
	if i := nextStep(&t); i >= 0 && e.fail[t.Operation+"/"+t.Steps[i].Operation] == "crash" {
		e.log.Warn("failpoint: crashing before step", "task", id, "operation", t.Operation, "step", t.Steps[i].Operation)
		_ = syscall.Kill(os.Getpid(), syscall.SIGKILL)
		select {} // never returns
	}
	waiting := false
	stepIdx := -1 // the step the transaction ran, for a commit etcd refuses
	_, err := e.st.Update(ctx, func(tx *store.Txn) error {
		if pre != nil {
			tx.Seed(pre)
			pre = nil
		}
		waiting = false
		t = api.Task{}
		if err := tx.MustGet(ctx, Key(id), &t); err != nil {
			return err
		}
		if t.Done() {
			return nil
		}
		op = e.ops[t.Operation]
		if op == nil {
			return fmt.Errorf("task %s: unknown operation %s", id, t.Operation)
		}
		i := nextStep(&t)
		stepIdx = i
		first := t.State != api.TaskStarted || t.Steps[i].StartedTime == 0
		err := e.runStep(ctx, tx, op, &t, i)
		if errors.Is(err, ErrWait) {
			waiting = true
			if tx.Empty() && !first {
				return errNothingToCommit
			}
			return tx.Put(Key(id), &t)
		}
		if err != nil {
			var ae *api.Error
			if errors.As(err, &ae) {
				return &errStepFailed{step: i, err: ae}
			}
			return fmt.Errorf("task %s step %s: %w", id, t.Steps[i].Operation, err)
		}
		return tx.Put(Key(id), &t)
	})
	var sf *errStepFailed
	if errors.As(err, &sf) {
		return e.failTask(ctx, id, sf)
	}
	if errors.Is(err, store.ErrTooLarge) && stepIdx >= 0 {
		// The step's changes will never fit in one etcd request:
		// running it again cannot help.
		e.log.Warn("task step too large for etcd", "task", id, "error", err)
		return e.failTask(ctx, id, &errStepFailed{step: stepIdx, err: api.Errorf(api.CodeRequestTooLarge,
			"the changes of step %s are larger than the store takes in one request", t.Steps[stepIdx].Operation)})
	}
	if errors.Is(err, errNothingToCommit) {
		err = nil
	}
	if waiting && err == nil {
		return &t, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if t.Done() {
		e.log.Debug("task done", "task", id, "operation", t.Operation, "state", t.State)
	}
	return &t, !t.Done(), nil
}

// runStep runs step i of t (of operation op) in tx and, when it
// completes, records it done: the task too, and released, after its last
// step. The step's error (ErrWait included) is returned as is.
func (e *Engine) runStep(ctx context.Context, tx *store.Txn, op *Operation, t *api.Task, i int) error {
	now := e.startStep(t, i)
	if t.Steps[i].Options == nil {
		t.Steps[i].Options = map[string]string{}
	}
	if err := op.Steps[i].Run(ctx, tx, t); err != nil {
		return err
	}
	t.Steps[i].State, t.Steps[i].EndTime = api.TaskCompleted, now
	if i == len(t.Steps)-1 {
		t.State, t.EndTime = api.TaskCompleted, now
		e.release(tx, t)
	}
	return nil
}

// Advance runs the next step of task id inside tx, a transaction of the
// caller's that has just written what that step waits for (a host's
// report of a VM): the step then completes in the same commit instead of
// one of its own after it, its effects and the task's progress in tx. A
// step that still waits, fails or errs is taken back, as is one with a
// failpoint. Advance reports whether the task needs Run (KickTask) after
// the commit: its step was taken back, or steps remain.
func (e *Engine) Advance(ctx context.Context, tx *store.Txn, id string) (bool, error) {
	var t api.Task
	if err := tx.MustGet(ctx, Key(id), &t); errors.Is(err, store.ErrNotFound) {
		return false, nil // (a lock naming no task: nothing to run)
	} else if err != nil {
		return false, err
	}
	op := e.ops[t.Operation]
	i := nextStep(&t)
	if t.Done() {
		return false, nil
	}
	if op == nil || i < 0 || e.fail[t.Operation+"/"+t.Steps[i].Operation] != "" {
		return true, nil
	}
	m := tx.Mark()
	err := e.runStep(ctx, tx, op, &t, i)
	if err == nil {
		err = tx.Put(Key(id), &t)
	}
	if err != nil {
		tx.RollbackTo(m)
		if errors.Is(err, store.ErrConflict) {
			return false, err // a stale read: the caller's transaction runs again
		}
		return true, nil
	}
	return !t.Done(), nil
}

// failTask ends the task ERROR with the step's error and undoes, in the
// same transaction, what the operation reserved.
func (e *Engine) failTask(ctx context.Context, id string, sf *errStepFailed) (*api.Task, bool, error) {
	var t api.Task
	_, err := e.st.Update(ctx, func(tx *store.Txn) error {
		t = api.Task{}
		if err := tx.MustGet(ctx, Key(id), &t); err != nil {
			return err
		}
		if t.Done() {
			return nil
		}
		now := e.now().UnixMilli()
		s := &t.Steps[sf.step]
		s.State, s.EndTime = api.TaskError, now
		s.Errors = append(s.Errors, api.Error{Code: sf.err.Code, Message: sf.err.Message, Data: sf.err.Data})
		t.State, t.EndTime = api.TaskError, now
		if op := e.ops[t.Operation]; op != nil && op.Undo != nil {
			if err := op.Undo(ctx, tx, &t, sf.err); err != nil {
				return err
			}
		}
		e.release(tx, &t)
		return tx.Put(Key(id), &t)
	})
	if err != nil {
		return nil, false, fmt.Errorf("task %s: record failure: %w", id, err)
	}
	e.log.Info("task failed", "task", id, "operation", t.Operation, "error", sf.err)
	return &t, false, nil
}

// release drops the entity lock, or the queue entry, of a finished task.
func (e *Engine) release(tx *store.Txn, t *api.Task) {
	if t.Entity.ID != "" {
		tx.Delete(lockKey(t.Entity.ID))
	} else {
		tx.Delete(queueKey(t.ID))
	}
}

// queuedAt is when task id was queued: the time in its id (a version 7
// UUID, see NewTask), without reading it; or its record's QueuedTime; or
// the zero time if it cannot be read.
func (e *Engine) queuedAt(ctx context.Context, id string) time.Time {
	if u, err := uuid.Parse(id); err == nil && u.Version() == 7 {
		return time.Unix(u.Time().UnixTime())
	}
	t, err := e.Get(ctx, id)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(t.QueuedTime)
}

func nextStep(t *api.Task) int {
	for i := range t.Steps {
		if t.Steps[i].State != api.TaskCompleted {
			return i
		}
	}
	return -1
}

// Kick asks the background loop to scan for unfinished tasks now.
func (e *Engine) Kick() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Loop resumes unfinished tasks until ctx ends: at once (tasks a previous
// run of this or another controller left behind), then every ScanInterval
// and on Kick. Tasks queued within the last ScanInterval are left to the
// runner that submitted them.
func (e *Engine) Loop(ctx context.Context) {
	go e.hub.Run(ctx)
	first := true
	t := time.NewTicker(e.ScanInterval)
	defer t.Stop()
	for {
		e.scan(ctx, first)
		first = false
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		case <-e.kick:
		}
	}
}

func (e *Engine) scan(ctx context.Context, all bool) {
	seen := map[string]bool{}
	for _, prefix := range []string{"locks", "taskqueue"} {
		if !e.scanUnder(ctx, prefix, all, seen) {
			return
		}
	}
	// Tasks no longer unfinished end their episode: resumed again later,
	// they are logged again.
	e.mu.Lock()
	for id := range e.resumed {
		if !seen[id] {
			delete(e.resumed, id)
		}
	}
	e.mu.Unlock()
}

// logResume logs that a task is resumed: at Info the first time in its
// episode (until a scan no longer finds it unfinished), then at Debug, so
// a task waiting for minutes is not logged every ScanInterval.
func (e *Engine) logResume(id string) {
	e.mu.Lock()
	again := e.resumed[id]
	e.resumed[id] = true
	e.mu.Unlock()
	level := slog.LevelInfo
	if again {
		level = slog.LevelDebug
	}
	e.log.Log(context.Background(), level, "resuming task", "task", id)
}

// scanUnder resumes the unfinished tasks named under prefix: "locks" (the
// task holding each entity) or "taskqueue" (tasks with no entity, keyed
// by id), and marks each in seen. It returns false if it could not read
// them all.
func (e *Engine) scanUnder(ctx context.Context, prefix string, all bool, seen map[string]bool) bool {
	token := ""
	for {
		kvs, next, err := e.st.Page(ctx, store.Prefix(prefix), token, 500)
		if err != nil {
			if ctx.Err() == nil {
				e.log.Warn("task scan", "error", err)
			}
			return false
		}
		for _, kv := range kvs {
			var id string
			if err := store.Decode(kv.Value, &id); err != nil || id == "" {
				e.log.Warn("task scan: not a task id", "key", kv.Key, "error", err)
				continue
			}
			seen[id] = true
			e.mu.Lock()
			_, busy := e.running[id]
			e.mu.Unlock()
			if busy {
				continue
			}
			if !all && e.now().Sub(e.queuedAt(ctx, id)) < e.ScanInterval {
				continue
			}
			e.logResume(id)
			go func() {
				t, err := e.Run(ctx, id)
				if err != nil && ctx.Err() == nil {
					e.log.Warn("resume task", "task", id, "error", err)
				}
				if err == nil && t != nil && t.Done() && t.Entity.ID != "" && prefix == "taskqueue" {
					// An entry an older controller wrote for a task on an
					// entity (which its lock now stands for): ended, its
					// end did not delete it. (A task on no entity's end
					// did.)
					_, _ = e.st.Update(ctx, func(tx *store.Txn) error {
						tx.Delete(queueKey(id))
						return nil
					})
				}
			}()
		}
		if next == "" {
			return true
		}
		token = next
	}
}

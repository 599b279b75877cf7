package tasks_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/photontest"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tasks"
)

// counterOp has two steps that each add 1 to a counter key in the step's
// transaction; its undo writes "undone". A step fails if the counter key
// holds -1.
func counterOp(name string) *tasks.Operation {
	add := func(ctx context.Context, tx *store.Txn, t *api.Task) error {
		var n int
		if _, err := tx.Get(ctx, store.Key("test", t.Entity.ID), &n); err != nil {
			return err
		}
		if n < 0 {
			return api.Errorf(api.CodeInvalidState, "counter is negative")
		}
		return tx.Put(store.Key("test", t.Entity.ID), n+1)
	}
	return &tasks.Operation{
		Name:  name,
		Steps: []tasks.Step{{Name: "ONE", Run: add}, {Name: "TWO", Run: add}},
		Undo: func(ctx context.Context, tx *store.Txn, t *api.Task, cause *api.Error) error {
			return tx.Put(store.Key("test", t.Entity.ID, "undo"), cause.Code)
		},
	}
}

// waitOp has one step that records it asked, then waits until the key
// test/<entity>/ready exists.
func waitOp() *tasks.Operation {
	return &tasks.Operation{Name: "WAIT", Steps: []tasks.Step{{Name: "WAIT", Run: func(ctx context.Context, tx *store.Txn, t *api.Task) error {
		t.Steps[0].Options["asked"] = "yes"
		ok, err := tx.Exists(ctx, store.Key("test", t.Entity.ID, "ready"))
		if err != nil {
			return err
		}
		if !ok {
			return tasks.ErrWait
		}
		return nil
	}}}}
}

func submit(t *testing.T, st *store.Store, e *tasks.Engine, entity string) (*api.Task, error) {
	t.Helper()
	task, err := e.NewTask("COUNT", api.Entity{ID: entity, Kind: "test"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	_, err = st.Update(context.Background(), func(tx *store.Txn) error { return e.Submit(context.Background(), tx, task) })
	return task, err
}

func TestEngine(t *testing.T) {
	for _, mode := range photontest.EtcdModes {
		t.Run(mode.Name, func(t *testing.T) {
			ctx := context.Background()
			st := photontest.Store(t, mode.Start(t))
			e, err := tasks.New(st, photontest.Logger(t), counterOp("COUNT"), waitOp())
			if err != nil {
				t.Fatal(err)
			}

			t.Run("steps run once each and the task completes", func(t *testing.T) {
				task, err := submit(t, st, e, "a")
				if err != nil {
					t.Fatal(err)
				}
				got, err := e.Run(ctx, task.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.State != api.TaskCompleted || got.Steps[0].State != api.TaskCompleted || got.Steps[1].State != api.TaskCompleted {
					t.Fatalf("task = %+v", got)
				}
				var n int
				if _, err := st.Get(ctx, store.Key("test", "a"), &n); err != nil || n != 2 {
					t.Fatalf("counter = %d, %v; want 2", n, err)
				}
				// The lock is released: a second task on the entity is accepted.
				if _, err := submit(t, st, e, "a"); err != nil {
					t.Fatalf("second task: %v", err)
				}
			})

			t.Run("Ended without the loop's watch answers at once", func(t *testing.T) {
				task, _ := e.NewTask("WAIT", api.Entity{ID: "nw", Kind: "test"}, "", "")
				if _, err := st.Update(ctx, func(tx *store.Txn) error { return e.Submit(ctx, tx, task) }); err != nil {
					t.Fatal(err)
				}
				if got, err := e.Run(ctx, task.ID); err != nil || got.State != api.TaskStarted {
					t.Fatalf("waiting task = %+v, %v", got, err)
				}
				start := time.Now()
				ts, err := e.Ended(ctx, []string{task.ID, "no-such-task"}, 5*time.Second, nil)
				if err != nil || len(ts) != 1 || ts[0].ID != task.ID || ts[0].Done() {
					t.Fatalf("Ended = %v, %v; want the task, not ended, and the unknown id left out", ts, err)
				}
				if took := time.Since(start); took > 2*time.Second {
					t.Errorf("Ended with no watch took %v: it should answer at once (the caller polls)", took)
				}
			})

			t.Run("a second task on a held entity is ConcurrentTask", func(t *testing.T) {
				if _, err := submit(t, st, e, "b"); err != nil {
					t.Fatal(err)
				}
				_, err := submit(t, st, e, "b")
				if !errors.Is(err, api.ErrConcurrentTask) {
					t.Fatalf("err = %v, want ConcurrentTask", err)
				}
			})

			t.Run("a failing step ends the task ERROR and runs undo", func(t *testing.T) {
				if _, err := st.Update(ctx, func(tx *store.Txn) error { return tx.Put(store.Key("test", "c"), -1) }); err != nil {
					t.Fatal(err)
				}
				task, _ := submit(t, st, e, "c")
				got, err := e.Run(ctx, task.ID)
				if err != nil {
					t.Fatal(err)
				}
				if got.State != api.TaskError || got.Steps[0].State != api.TaskError || got.Steps[0].Errors[0].Code != api.CodeInvalidState {
					t.Fatalf("task = %+v", got)
				}
				if got.Err() == nil || got.Steps[1].State != api.TaskQueued {
					t.Fatalf("Err() = %v, step 2 = %s", got.Err(), got.Steps[1].State)
				}
				var code string
				if _, err := st.Get(ctx, store.Key("test", "c", "undo"), &code); err != nil || code != api.CodeInvalidState {
					t.Fatalf("undo = %q, %v", code, err)
				}
			})

			t.Run("engines racing on one task complete each step once", func(t *testing.T) {
				engines := make([]*tasks.Engine, 4)
				for i := range engines {
					engines[i], _ = tasks.New(st, photontest.Logger(t), counterOp("COUNT"))
				}
				for round := 0; round < 5; round++ {
					entity := "race" + string(rune('a'+round))
					task, err := submit(t, st, e, entity)
					if err != nil {
						t.Fatal(err)
					}
					var wg sync.WaitGroup
					for _, en := range engines {
						wg.Add(1)
						go func() { defer wg.Done(); _, _ = en.Run(ctx, task.ID) }()
					}
					wg.Wait()
					var n int
					if _, err := st.Get(ctx, store.Key("test", entity), &n); err != nil || n != 2 {
						t.Fatalf("counter = %d, %v; want 2", n, err)
					}
				}
			})

			t.Run("a waiting step resumes when kicked", func(t *testing.T) {
				task, err := e.NewTask("WAIT", api.Entity{ID: "w", Kind: "test"}, "", "")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := st.Update(ctx, func(tx *store.Txn) error { return e.Submit(ctx, tx, task) }); err != nil {
					t.Fatal(err)
				}
				got, err := e.Run(ctx, task.ID)
				if err != nil || got.State != api.TaskStarted || got.Steps[0].Options["asked"] != "yes" {
					t.Fatalf("waiting task = %+v, %v", got, err)
				}
				if _, err := st.Update(ctx, func(tx *store.Txn) error { return tx.Put(store.Key("test", "w", "ready"), true) }); err != nil {
					t.Fatal(err)
				}
				e.KickTask(task.ID)
				deadline := time.Now().Add(10 * time.Second)
				for got.State != api.TaskCompleted {
					if time.Now().After(deadline) {
						t.Fatalf("task not resumed: %+v", got)
					}
					time.Sleep(10 * time.Millisecond)
					got, _ = e.Get(ctx, task.ID)
				}
			})

			t.Run("a waiting step starts in the submitting transaction; others are left to Run", func(t *testing.T) {
				task, err := e.NewTask("WAIT", api.Entity{ID: "wi", Kind: "test"}, "", "")
				if err != nil {
					t.Fatal(err)
				}
				var waiting bool
				if _, err := st.Update(ctx, func(tx *store.Txn) error {
					if waiting, err = e.StartInline(ctx, tx, task); err != nil {
						return err
					}
					return e.Submit(ctx, tx, task)
				}); err != nil || !waiting {
					t.Fatalf("inline start: waiting %v, %v", waiting, err)
				}
				got, err := e.Get(ctx, task.ID)
				if err != nil || got.State != api.TaskStarted || got.Steps[0].StartedTime == 0 || got.Steps[0].Options["asked"] != "yes" {
					t.Fatalf("submitted waiting task = %+v, %v", got, err)
				}
				if _, err := st.Update(ctx, func(tx *store.Txn) error { return tx.Put(store.Key("test", "wi", "ready"), true) }); err != nil {
					t.Fatal(err)
				}
				if got, err = e.Run(ctx, task.ID); err != nil || got.State != api.TaskCompleted {
					t.Fatalf("resumed task = %+v, %v", got, err)
				}

				// COUNT's first step completes at once: taken back, the
				// task is submitted QUEUED and Run does the work once.
				task, err = e.NewTask("COUNT", api.Entity{ID: "ci", Kind: "test"}, "", "")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := st.Update(ctx, func(tx *store.Txn) error {
					if waiting, err = e.StartInline(ctx, tx, task); err != nil {
						return err
					}
					return e.Submit(ctx, tx, task)
				}); err != nil || waiting {
					t.Fatalf("inline start of a step that completes: waiting %v, %v", waiting, err)
				}
				var n int
				if _, err := st.Get(ctx, store.Key("test", "ci"), &n); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("counter after submission = %d, %v; want absent", n, err)
				}
				if got, err = e.Run(ctx, task.ID); err != nil || got.State != api.TaskCompleted || got.Steps[0].StartedTime == 0 {
					t.Fatalf("run task = %+v, %v", got, err)
				}
				if _, err := st.Get(ctx, store.Key("test", "ci"), &n); err != nil || n != 2 {
					t.Fatalf("counter = %d, %v; want 2", n, err)
				}
			})

			t.Run("a step advanced in the transaction that writes what it waits for", func(t *testing.T) {
				task, err := e.NewTask("WAIT", api.Entity{ID: "wa", Kind: "test"}, "", "")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := st.Update(ctx, func(tx *store.Txn) error { return e.Submit(ctx, tx, task) }); err != nil {
					t.Fatal(err)
				}
				// Not ready yet: the step waits, is taken back, the task needs Run.
				var run bool
				rev, err := st.Update(ctx, func(tx *store.Txn) error {
					if err := tx.Put(store.Key("test", "wa", "other"), true); err != nil {
						return err
					}
					run, err = e.Advance(ctx, tx, task.ID)
					return err
				})
				if got, _ := e.Get(ctx, task.ID); err != nil || !run || got.State != api.TaskQueued || got.Steps[0].Options["asked"] != "" {
					t.Fatalf("advance of a waiting step: run %v, %v; task %+v", run, err, got)
				}
				// Ready in the same transaction: the task completes in it.
				rev, err = st.Update(ctx, func(tx *store.Txn) error {
					if err := tx.Put(store.Key("test", "wa", "ready"), true); err != nil {
						return err
					}
					run, err = e.Advance(ctx, tx, task.ID)
					return err
				})
				got, gerr := e.Get(ctx, task.ID)
				if err != nil || gerr != nil || run || got.State != api.TaskCompleted {
					t.Fatalf("advance: run %v, %v; task %+v %v", run, err, got, gerr)
				}
				resp, err := st.Client().Get(ctx, tasks.Key(task.ID))
				if err != nil || resp.Kvs[0].ModRevision != rev {
					t.Fatalf("task written at %d, the transaction committed at %d (%v)", resp.Kvs[0].ModRevision, rev, err)
				}
				if held, err := st.Client().Get(ctx, store.Key("locks", "wa")); err != nil || len(held.Kvs) != 0 {
					t.Fatalf("lock still held after the task ended: %v %v", held.Kvs, err)
				}
				// A two-step task advanced one step still needs Run.
				task, err = submit(t, st, e, "ca")
				if err != nil {
					t.Fatal(err)
				}
				if _, err := st.Update(ctx, func(tx *store.Txn) error {
					run, err = e.Advance(ctx, tx, task.ID)
					return err
				}); err != nil || !run {
					t.Fatalf("advance of the first of two steps: run %v, %v", run, err)
				}
				if got, err = e.Run(ctx, task.ID); err != nil || got.State != api.TaskCompleted {
					t.Fatalf("run after advance = %+v, %v", got, err)
				}
				var n int
				if _, err := st.Get(ctx, store.Key("test", "ca"), &n); err != nil || n != 2 {
					t.Fatalf("counter = %d, %v; want 2 (each step once)", n, err)
				}
			})

			t.Run("when a task was queued, from its id or its record", func(t *testing.T) {
				before := time.Now().Truncate(time.Millisecond)
				v7, _ := submit(t, st, e, "q")
				after := time.Now()
				// A task an older controller made, its id not a time.
				old := &api.Task{Base: api.Base{ID: "6f1f8b0e-4bd4-4c0e-9a4e-2f1d1b3c5a7e", Kind: api.KindTask},
					Operation: "COUNT", State: api.TaskQueued, QueuedTime: 1_700_000_000_000}
				if _, err := st.Update(ctx, func(tx *store.Txn) error { return tx.Put(tasks.Key(old.ID), old) }); err != nil {
					t.Fatal(err)
				}
				for _, c := range []struct {
					name, id      string
					earliest, end time.Time
				}{
					{"version 7 id", v7.ID, before, after},
					{"older id, from the record", old.ID, time.UnixMilli(old.QueuedTime), time.UnixMilli(old.QueuedTime)},
					{"no such task", "0e6f0b8a-9d1c-4c55-8f0e-3b3f3c2a1d00", time.Time{}, time.Time{}},
				} {
					if got := e.QueuedAt(ctx, c.id); got.Before(c.earliest) || got.After(c.end) {
						t.Errorf("%s: queued at %v, want in [%v, %v]", c.name, got, c.earliest, c.end)
					}
				}
				if got := time.UnixMilli(v7.QueuedTime); got.Before(before) || got.After(after) {
					t.Errorf("QueuedTime %v, want in [%v, %v]", got, before, after)
				}
			})

			t.Run("a long poll waits for the task's next change, even once the hub forgot the task", func(t *testing.T) {
				lctx, cancel := context.WithCancel(ctx)
				defer cancel()
				e3, _ := tasks.New(st, photontest.Logger(t), counterOp("COUNT"), waitOp())
				e3.TaskHub().SetMaxTracked(2)
				go e3.Loop(lctx)
				kept := func(id string) {
					t.Helper()
					for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
						if _, _, _, ok := e3.TaskHub().Latest(id); ok {
							return
						}
						if time.Now().After(deadline) {
							t.Fatalf("the hub never saw task %s", id)
						}
					}
				}
				task, _ := e3.NewTask("WAIT", api.Entity{ID: "lp", Kind: "test"}, "", "")
				if _, err := st.Update(ctx, func(tx *store.Txn) error { return e3.Submit(ctx, tx, task) }); err != nil {
					t.Fatal(err)
				}
				if got, err := e3.Run(ctx, task.ID); err != nil || got.State != api.TaskStarted {
					t.Fatalf("waiting task = %+v, %v", got, err)
				}
				kept(task.ID)
				// Three tasks more: the hub, remembering 2, forgets the
				// revisions of the ones before (the waiting task's too).
				for _, entity := range []string{"lp1", "lp2", "lp3"} {
					other, err := submit(t, st, e3, entity)
					if err != nil {
						t.Fatal(err)
					}
					kept(other.ID)
				}
				done := make(chan *api.Task, 1)
				go func() {
					got, err := e3.Wait(ctx, task.ID, 10*time.Second)
					if err != nil {
						t.Error(err)
					}
					done <- got
				}()
				select {
				case got := <-done:
					t.Fatalf("the long poll answered %s before the task changed", got.State)
				case <-time.After(500 * time.Millisecond):
				}
				if _, err := st.Update(ctx, func(tx *store.Txn) error { return tx.Put(store.Key("test", "lp", "ready"), true) }); err != nil {
					t.Fatal(err)
				}
				e3.KickTask(task.ID)
				select {
				case got := <-done:
					if got == nil || got.State != api.TaskCompleted {
						t.Fatalf("the long poll answered %+v, want the task COMPLETED", got)
					}
				case <-time.After(10 * time.Second):
					t.Fatal("the long poll did not answer the task's change")
				}
			})

			t.Run("the loop resumes tasks left unfinished", func(t *testing.T) {
				keys := func(prefix string) map[string]bool {
					t.Helper()
					ks, err := st.Keys(ctx, store.Prefix(prefix))
					if err != nil {
						t.Fatal(err)
					}
					m := map[string]bool{}
					for _, k := range ks {
						m[k] = true
					}
					return m
				}
				// A task on an entity is found by the entity's lock, one
				// with none by its queue entry; an older controller queued
				// tasks on entities too.
				onEntity, _ := submit(t, st, e, "d")
				noEntity, _ := submit(t, st, e, "")
				older, _ := submit(t, st, e, "d2")
				if _, err := st.Update(ctx, func(tx *store.Txn) error { return tx.Put(store.Key("taskqueue", older.ID), older.ID) }); err != nil {
					t.Fatal(err)
				}
				q := keys("taskqueue")
				if q[store.Key("taskqueue", onEntity.ID)] || !q[store.Key("taskqueue", noEntity.ID)] || !keys("locks")[store.Key("locks", "d")] {
					t.Fatalf("queued %v, locks %v: want the lock of the task on an entity, the queue entry of the one with none", q, keys("locks"))
				}
				e2, _ := tasks.New(st, photontest.Logger(t), counterOp("COUNT"))
				lctx, cancel := context.WithCancel(ctx)
				defer cancel()
				go e2.Loop(lctx)
				for _, task := range []*api.Task{onEntity, noEntity, older} {
					deadline := time.Now().Add(20 * time.Second)
					for {
						got, err := e2.Get(ctx, task.ID)
						if err == nil && got.State == api.TaskCompleted {
							break
						}
						if time.Now().After(deadline) {
							t.Fatalf("task on %q not resumed: %+v %v", task.Entity.ID, got, err)
						}
						time.Sleep(20 * time.Millisecond)
					}
				}
				// Ended, they hold nothing: no lock, no queue entry (the
				// older controller's removed once its task ended).
				for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
					q, l := keys("taskqueue"), keys("locks")
					if len(q) == 0 && !l[store.Key("locks", "d")] && !l[store.Key("locks", "d2")] {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("after the tasks ended: queued %v, locks %v", q, l)
					}
				}
			})
		})
	}
}

func TestParseFailpoints(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want int
		bad  bool
	}{
		{"", 0, false},
		{"CREATE_TENANT/CREATE_TENANT=crash", 1, false},
		{"A/B=crash, C/D=crash", 2, false},
		{"A/B=panic", 0, true},
		{"AB=crash", 0, true},
	} {
		m, err := tasks.ParseFailpoints(tc.in)
		if (err != nil) != tc.bad || len(m) != tc.want {
			t.Errorf("ParseFailpoints(%q) = %v, %v", tc.in, m, err)
		}
	}
}

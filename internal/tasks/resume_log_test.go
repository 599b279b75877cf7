package tasks_test

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/photontest"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tasks"
)

// records is a slog.Handler that keeps every record.
type records struct {
	mu  sync.Mutex
	all []slog.Record
}

func (h *records) Enabled(context.Context, slog.Level) bool { return true }
func (h *records) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.all = append(h.all, r.Clone())
	return nil
}
func (h *records) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *records) WithGroup(string) slog.Handler      { return h }

// count counts the records with message msg, at level, naming task id.
func (h *records) count(msg string, level slog.Level, id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, r := range h.all {
		if r.Message != msg || r.Level != level {
			continue
		}
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "task" && a.Value.String() == id {
				n++
			}
			return true
		})
	}
	return n
}

// A task that waits is resumed on every scan, but logged "resuming task"
// at Info once, then at Debug.
func TestResumeLoggedOnce(t *testing.T) {
	ctx := context.Background()
	st := photontest.Store(t, photontest.EtcdModes[0].Start(t))
	h := &records{}
	e, err := tasks.New(st, slog.New(h), waitOp())
	if err != nil {
		t.Fatal(err)
	}
	e.ScanInterval = 20 * time.Millisecond
	task, err := e.NewTask("WAIT", api.Entity{ID: "rl", Kind: "test"}, "", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Update(ctx, func(tx *store.Txn) error { return e.Submit(ctx, tx, task) }); err != nil {
		t.Fatal(err)
	}
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	go e.Loop(lctx)
	for deadline := time.Now().Add(10 * time.Second); h.count("resuming task", slog.LevelDebug, task.ID) < 5; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the waiting task was resumed %d times in 10 s at Debug, %d at Info", h.count("resuming task", slog.LevelDebug, task.ID),
				h.count("resuming task", slog.LevelInfo, task.ID))
		}
	}
	if n := h.count("resuming task", slog.LevelInfo, task.ID); n != 1 {
		t.Errorf("\"resuming task\" logged %d times at Info, want once", n)
	}
}

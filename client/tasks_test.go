package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
)

// TestWatchTaskPolls: against a controller that answers a task read at
// once (one without long polls), WatchTask asks for a wait, finds the task
// unchanged and backs off instead of spinning; it returns the task once
// done.
func TestWatchTaskPolls(t *testing.T) {
	var reads atomic.Int32
	var mu sync.Mutex
	var waits []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		n := reads.Add(1)
		mu.Lock()
		waits = append(waits, r.URL.Query().Get("wait"))
		mu.Unlock()
		task := api.Task{Base: api.Base{ID: "t1", Kind: "task"}, State: api.TaskQueued}
		if n >= 4 {
			task.State = api.TaskCompleted
		}
		_ = json.NewEncoder(w).Encode(task)
	}))
	defer srv.Close()
	c, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	task, err := c.WaitTask(context.Background(), &api.Task{Base: api.Base{ID: "t1"}, State: api.TaskQueued})
	if err != nil || task.State != api.TaskCompleted {
		t.Fatalf("WaitTask = %+v, %v; want COMPLETED", task, err)
	}
	if n := reads.Load(); n != 4 {
		t.Errorf("%d reads, want 4 (3 unchanged, then the one that finds it done)", n)
	}
	// Three unchanged answers at once: three delays, pollMin growing by half.
	if took, least := time.Since(start), pollMin+pollMin*3/2+pollMin*9/4; took < least {
		t.Errorf("took %v: less than the backoff (%v); polling without delay", took, least)
	}
	mu.Lock()
	defer mu.Unlock()
	for i, w := range waits {
		if w != "20" {
			t.Errorf("read %d asked wait=%q, want 20 (seconds)", i, w)
		}
	}
}

package client

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
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

// TestWaitTasksWithoutExtension: a controller that ignores ?ids= (it
// lists every task, as Photon Controller does) is followed one task at a
// time; WaitTasks still returns each task as it ended, in order.
func TestWaitTasksWithoutExtension(t *testing.T) {
	var single atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/v1/tasks" {
			_ = json.NewEncoder(w).Encode(api.List[api.Task]{Items: []api.Task{{Base: api.Base{ID: "other"}, State: api.TaskQueued}}})
			return
		}
		single.Add(1)
		id := strings.TrimPrefix(r.URL.Path, "/v1/tasks/")
		_ = json.NewEncoder(w).Encode(api.Task{Base: api.Base{ID: id, Kind: "task"}, State: api.TaskCompleted})
	}))
	defer srv.Close()
	c, err := New(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	in := []*api.Task{{Base: api.Base{ID: "t1"}, State: api.TaskQueued}, {Base: api.Base{ID: "t2"}, State: api.TaskStarted}}
	var ended []string
	got, err := c.WaitTasks(context.Background(), in, func(t *api.Task) { ended = append(ended, t.ID) })
	if err != nil || len(got) != 2 || got[0].ID != "t1" || got[1].ID != "t2" || got[0].State != api.TaskCompleted || got[1].State != api.TaskCompleted {
		t.Fatalf("WaitTasks = %+v, %v; want t1 and t2 COMPLETED", got, err)
	}
	if strings.Join(ended, ",") != "t1,t2" || single.Load() != 2 {
		t.Errorf("ended %v after %d single reads; want t1,t2 after 2", ended, single.Load())
	}
}

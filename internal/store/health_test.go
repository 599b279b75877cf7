package store_test

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/photon-cloud/photon/internal/photontest"
	"github.com/photon-cloud/photon/internal/store"
)

// syncBuffer is a log sink safe for the health loop and the test.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestUnavailableBounded: against an etcd that answers nothing (stopped),
// every kind of request (read, commit, lease, a raw client call) fails
// with ErrUnavailable within OpTimeout, at once once RunHealth found
// etcd away (logged once); a request's wait budget bounds its requests
// in all; all works again soon after etcd is back (logged once).
func TestUnavailableBounded(t *testing.T) {
	ctx := context.Background()
	e := photontest.StartEtcd(t, photontest.EtcdOptions{})
	s := photontest.Store(t, e.Endpoint)
	limits := store.Limits{OpTimeout: time.Second, ProbeInterval: 200 * time.Millisecond, ProbeTimeout: 500 * time.Millisecond}
	s.SetLimits(limits)
	var logs syncBuffer
	hctx, stop := context.WithCancel(context.Background())
	defer stop()
	go s.RunHealth(hctx, slog.New(slog.NewTextHandler(&logs, nil)))
	key := store.Key("health", "x")
	if _, err := s.Update(ctx, func(tx *store.Txn) error { return tx.Put(key, 1) }); err != nil {
		t.Fatal(err)
	}
	ops := []struct {
		name string
		do   func(context.Context) error
	}{
		{"get", func(ctx context.Context) error { var v int; _, err := s.Get(ctx, key, &v); return err }},
		{"update", func(ctx context.Context) error {
			_, err := s.Update(ctx, func(tx *store.Txn) error {
				var v int
				if _, err := tx.Get(ctx, key, &v); err != nil {
					return err
				}
				return tx.Put(key, v+1)
			})
			return err
		}},
		{"lease", func(ctx context.Context) error {
			_, err := s.PutWithLease(ctx, store.Key("health", "l"), 1, 5)
			return err
		}},
		{"client", func(ctx context.Context) error { _, err := s.Client().Put(ctx, "/photon/health", "x"); return err }},
	}
	if err := e.Pause(); err != nil {
		t.Fatal(err)
	}
	defer e.Resume()
	for round := range 2 {
		for _, op := range ops {
			start := time.Now()
			err := op.do(ctx)
			d := time.Since(start)
			if !errors.Is(err, store.ErrUnavailable) || d > limits.OpTimeout+300*time.Millisecond {
				t.Errorf("round %d: %s while etcd is stopped: %v after %v; want ErrUnavailable within %v", round, op.name, err, d, limits.OpTimeout)
			}
		}
		if round == 0 {
			time.Sleep(2 * time.Second) // RunHealth finds etcd away
			if s.Available() {
				t.Fatal("etcd stopped for 2 s still taken as available")
			}
		}
	}
	// Found away: requests fail at once.
	start := time.Now()
	if err := ops[0].do(ctx); !errors.Is(err, store.ErrUnavailable) || time.Since(start) > 50*time.Millisecond {
		t.Errorf("a read once etcd is known away: %v after %v; want ErrUnavailable at once", err, time.Since(start))
	}
	if n := strings.Count(logs.String(), "etcd unreachable"); n != 1 {
		t.Errorf("\"etcd unreachable\" logged %d times, want once:\n%s", n, logs.String())
	}
	if err := e.Resume(); err != nil {
		t.Fatal(err)
	}
	start = time.Now()
	for ops[1].do(ctx) != nil {
		if time.Since(start) > 5*time.Second {
			t.Fatal("no commit within 5 s of etcd's return")
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Logf("first commit %v after etcd returned", time.Since(start).Round(time.Millisecond))
	time.Sleep(300 * time.Millisecond)
	if n := strings.Count(logs.String(), "etcd reachable again"); n != 1 {
		t.Errorf("\"etcd reachable again\" logged %d times, want once:\n%s", n, logs.String())
	}
	// A wait budget bounds a request's reads in all.
	bctx := store.WithWaitBudget(ctx, 0)
	if err := ops[0].do(bctx); !errors.Is(err, store.ErrUnavailable) {
		t.Errorf("a read with its wait budget spent: %v, want ErrUnavailable", err)
	}
	if err := ops[0].do(store.WithWaitBudget(ctx, time.Second)); err != nil {
		t.Errorf("a read within its budget: %v", err)
	}
}

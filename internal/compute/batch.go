package compute

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// Group commit: concurrent creates mostly touch the same few records (the
// project's quota, the flavors' user counts), so committed one by one they
// conflict and retry. The batcher runs every create waiting at the moment
// in one transaction, each seeing the others' writes, and commits them
// together; one that fails (quota, name taken) has its writes rolled back
// and gets its error once the batch's reads are confirmed by the commit.

// maxBatch bounds the creates committed in one transaction; perItemOps is
// room kept for one more create's reads and writes.
const (
	maxBatch   = 128
	perItemOps = 40
)

type batchItem struct {
	ctx   context.Context
	fn    func(tx *store.Txn) error
	err   error
	tries int
	done  chan struct{}
}

// maxStale bounds how often one create may find its fleet view stale.
const maxStale = 50

type batcher struct {
	st *store.Store
	// maxOps is etcd's bound on a transaction's operations.
	maxOps int
	once   sync.Once
	ch     chan *batchItem
}

// do runs fn in a batch and returns once the batch committed (or fn's
// own error).
func (b *batcher) do(ctx context.Context, fn func(tx *store.Txn) error) error {
	b.once.Do(func() {
		b.ch = make(chan *batchItem, 4*maxBatch)
		go b.loop()
	})
	it := &batchItem{ctx: ctx, fn: fn, done: make(chan struct{})}
	select {
	case b.ch <- it:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case <-it.done:
		return it.err
	case <-ctx.Done():
		// The batch may still commit it; the caller's request is over.
		return ctx.Err()
	}
}

func (b *batcher) loop() {
	var carry []*batchItem
	for {
		batch := carry
		carry = nil
		if len(batch) == 0 {
			batch = append(batch, <-b.ch)
		}
	gather:
		for len(batch) < maxBatch {
			select {
			case it := <-b.ch:
				batch = append(batch, it)
			default:
				break gather
			}
		}
		carry = b.commit(batch)
	}
}

// commit runs one batch; it returns the items to retry in the next one
// (their view of the fleet was stale).
func (b *batcher) commit(batch []*batchItem) []*batchItem {
	backoff := time.Millisecond
	for attempt := 0; ; attempt++ {
		tx := b.prefetch(batch)
		var ok, retry []*batchItem
		for i, it := range batch {
			if r, w := tx.Size(); i > 0 && (r+perItemOps > b.maxOps || w+perItemOps > b.maxOps) {
				retry = append(retry, batch[i:]...) // the next batch takes them
				break
			}
			if it.ctx.Err() != nil {
				it.err = it.ctx.Err()
				close(it.done)
				continue
			}
			m := tx.Mark()
			err := it.fn(tx)
			switch {
			case err == nil:
				it.err = nil
				ok = append(ok, it)
			case errors.Is(err, store.ErrConflict):
				tx.RollbackTo(m)
				if it.tries++; it.tries >= maxStale {
					it.err = fmt.Errorf("placement: the fleet changed under %d attempts: %w", it.tries, err)
					close(it.done)
					continue
				}
				retry = append(retry, it)
			default:
				tx.RollbackTo(m)
				it.err = err
				ok = append(ok, it) // its error stands if the batch's reads do
			}
		}
		if len(ok) == 0 {
			return retry
		}
		var err error
		if !tx.Empty() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_, err = tx.Commit(ctx)
			cancel()
		}
		if errors.Is(err, store.ErrConflict) && attempt+1 < b.st.MaxAttempts {
			time.Sleep(backoff/2 + rand.N(backoff))
			backoff = min(2*backoff, 50*time.Millisecond)
			batch = append(ok, retry...)
			continue
		}
		for _, it := range ok {
			if it.err == nil {
				it.err = err
			}
			close(it.done)
		}
		return retry
	}
}

// submitBatched is submit through the group committer.
func (s *Service) submitBatched(ctx context.Context, op string, entity api.Entity, tenantID, projectID string,
	fn func(tx *store.Txn, t *api.Task) error) (*api.Task, error) {
	var task *api.Task
	err := s.batch.do(ctx, func(tx *store.Txn) error {
		var err error
		if task, err = s.tasks.NewTask(op, entity, tenantID, projectID); err != nil {
			return err
		}
		if err := fn(tx, task); err != nil {
			return err
		}
		return s.tasks.Submit(ctx, tx, task)
	})
	if err != nil {
		return nil, err
	}
	// A create that placed its VM is submitted with its next step started
	// (it waits for the host, and Observe kicks it when the host reports):
	// running it now would only read it again to find it waiting.
	return task, nil
}

// prefetch runs the batch's requests concurrently on scratch transactions
// (they have no effect but on their transaction) and returns a transaction
// seeded with everything they read, so that the real, sequential run reads
// from memory instead of waiting on etcd once per key.
func (b *batcher) prefetch(batch []*batchItem) *store.Txn {
	tx := b.st.Txn()
	if len(batch) < 2 {
		return tx
	}
	scratch := make([]*store.Txn, len(batch))
	var wg sync.WaitGroup
	for i, it := range batch {
		if it.ctx.Err() != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			scratch[i] = b.st.Txn()
			_ = it.fn(scratch[i])
		}()
	}
	wg.Wait()
	for _, s := range scratch {
		if s != nil {
			tx.Seed(s)
		}
	}
	return tx
}

package compute

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/stackgrow"
	"github.com/photon-cloud/photon/internal/store"
)

// Group commit: concurrent creates mostly touch the same few records (the
// project's quota, the flavors' user counts), so committed one by one they
// conflict and retry. The batcher runs every create waiting at the moment
// in one transaction, each seeing the others' writes, and commits them
// together; one that fails (quota, name taken) has its writes rolled back
// and gets its error once the batch's reads are confirmed by the commit.

// maxBatch bounds the creates committed in one transaction; perItemOps
// and perItemBytes are room kept for one more create's reads and writes
// (under etcd's bounds: the batcher's maxOps, store.MaxTxnBytes).
const (
	maxBatch     = 128
	perItemOps   = 40
	perItemBytes = 64 << 10
)

type batchItem struct {
	ctx context.Context
	// fn runs the request in tx; probe says it is the scratch run, which
	// only learns what the request reads (see gathering.add): it may stop
	// once it has read everything.
	fn    func(tx *store.Txn, probe bool) error
	reads batchReads
	err   error
	tries int // stale fleet views
	// commits counts the batch commits it was in that conflicted.
	commits int
	done    chan struct{}
}

// batchReads is what a request's fn reads in a transaction (beyond the
// store's caches), so that its batch may skip the scratch run (see
// gathering.add).
type batchReads struct {
	// all, when set, names every key fn reads: those the transaction does
	// not know are prefetched instead.
	all []string
	// first, when set, names the keys fn reads before the rest, which
	// depends on them (a create's project, flavor and name, before the
	// host it places the VM on): when the carry holds them all, fn runs
	// for real only, reading in the batch what else it needs and no
	// cache holds.
	first func() []string
	// extra is room the request needs in the transaction beyond
	// perItemOps (a create's ports: see portOps).
	extra int
}

// maxStale bounds how often one create may find its fleet view stale.
const maxStale = 50

type batcher struct {
	st *store.Store
	// maxOps is etcd's bound on a transaction's operations.
	maxOps int
	once   sync.Once
	ch     chan *batchItem
	// carry is what the last committed batch read and wrote, at its
	// commit's revision (only the loop uses it): the next batch reads the
	// hot records (quota, flavors, host usage) from it instead of etcd.
	// A record changed since makes the commit conflict; the batch then
	// runs again without it.
	carry *store.Snapshot
	// id names this controller's batcher in the turn record; wait is how
	// long the loop pauses before the next batch (another controller has
	// the turn).
	id   string
	wait time.Duration
	// catchUp (the placer's) brings the fleet view up to date after a
	// commit conflicted, which a stale copy of a record (seedCopies)
	// may have caused.
	catchUp func(context.Context) error
	// conflicts counts the batch commits that conflicted (their items
	// ran again).
	conflicts atomic.Int64
	// beforeSend, when set (tests), runs before each batch commit is sent.
	beforeSend func()
}

// Several controllers committing batches on the same hot records (a
// project's quota, a flavor's users) conflict, and the one committing less
// often can lose every time: its batch reads, runs and commits over a
// window in which the other commits again, and again. A batch that
// conflicted claimAfter times in a row claims the turn (a record in etcd,
// held for at most turnFor); every batch reads the turn record (a
// condition of its commit, so a claim makes the others' commits under way
// conflict), and one that finds it held by another controller waits for
// it; the holder's next commit releases it.
const (
	claimAfter = 3
	turnFor    = 2 * time.Second
)

var turnKey = store.Key("batch-turn")

type turnRecord struct {
	Holder string `json:"holder"`
	Until  int64  `json:"until"` // ms since the epoch
}

// takeTurn claims the turn unless another controller holds it.
func (b *batcher) takeTurn() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, _ = b.st.Update(ctx, func(tx *store.Txn) error {
		var cur turnRecord
		held, err := tx.Get(ctx, turnKey, &cur)
		if err != nil {
			return err
		}
		now := time.Now()
		if held && cur.Holder != b.id && now.UnixMilli() < cur.Until {
			return nil
		}
		return tx.Put(turnKey, turnRecord{Holder: b.id, Until: now.Add(turnFor).UnixMilli()})
	})
}

// turn reads the turn record in tx (its commit is then conditioned on it):
// false when another controller holds it; held by this one, the commit
// releases it.
func (b *batcher) turn(tx *store.Txn) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	var cur turnRecord
	held, err := tx.Get(ctx, turnKey, &cur)
	switch {
	case err != nil || !held:
		return true // (unreadable: the commit finds out)
	case cur.Holder == b.id:
		tx.Delete(turnKey)
		return true
	}
	return time.Now().UnixMilli() >= cur.Until
}

// do runs fn in a batch and returns once the batch committed (or fn's
// own error).
func (b *batcher) do(ctx context.Context, fn func(tx *store.Txn, probe bool) error, reads batchReads) error {
	b.once.Do(func() {
		b.ch = make(chan *batchItem, 4*maxBatch)
		go b.loop()
	})
	it := &batchItem{ctx: ctx, fn: fn, reads: reads, done: make(chan struct{})}
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

// The loop is a pipeline: while one batch commits, the next is gathered,
// each request prefetching (its reads, on a scratch transaction) as it
// arrives; the batch then runs for real, from memory, on what the commit
// before it wrote, so that consecutive batches touching the same quota
// and flavor records do not conflict: once that commit is settled, on
// what it wrote at its revision (the carry); or, when the batch is big
// enough, while that commit is still under way, on its pending writes,
// conditioned on their values (store.Pending): the two commits then
// overlap.
func (b *batcher) loop() {
	var next []*batchItem   // to run in the next batch
	var inflight []*pending // the batches committing, oldest first
	for {
		g := &gathering{b: b, fetched: make(chan struct{}, maxBatch)}
		for _, it := range next {
			g.add(it)
		}
		next = nil
		if len(g.batch) == 0 && len(inflight) == 0 {
			g.add(<-b.ch)
		}
		// Gather until every request gathered has prefetched and the
		// commit before is settled, or, with a commit under way, until
		// the batch is big enough to commit beside it (on its pending
		// writes): the requests that arrive meanwhile join (and
		// prefetch) too, up to a full batch.
		for g.fetching > 0 || len(inflight) >= maxInflight || (len(inflight) > 0 && len(g.batch) < overlapAt) {
			in := b.ch
			if len(g.batch) >= maxBatch {
				in = nil
			}
			var settled chan struct{}
			if len(inflight) > 0 {
				settled = inflight[0].done
			}
			select {
			case it := <-in:
				g.add(it)
			case <-g.fetched:
				g.fetching--
			case <-settled:
				// A conflicting batch runs again first, prefetching again
				// like any request: its real run is then from memory, not
				// a round trip per read. Run on cold reads, it spans so
				// many of another controller's commits (each writing the
				// project's quota and the flavors it reads first) that it
				// conflicts again, and again: starved until that
				// controller goes quiet.
				again, gathered := b.settle(inflight[0]), g.batch
				inflight = inflight[1:]
				g.batch = nil
				for _, it := range again {
					g.add(it)
				}
				g.batch = append(g.batch, gathered...)
			}
		}
		if len(g.batch) == 0 {
			continue
		}
		base, prev := b.carry, (*pending)(nil)
		if len(inflight) > 0 {
			prev = inflight[len(inflight)-1]
			base = store.Pending(prev.tx, b.carry)
		}
		var p *pending
		for {
			if p, next = b.run(g.batch, g.scratch, base, prev); b.wait == 0 {
				break
			}
			// Another controller's turn: the batch waits as it is (its
			// scratch reads, stale by then, only risk a conflict).
			time.Sleep(b.wait)
			b.wait = 0
		}
		if p != nil {
			inflight = append(inflight, p)
		}
	}
}

// maxInflight bounds the batch commits under way at once; a batch of at
// least overlapAt creates runs while the one before it still commits,
// on the values that one writes (store.Pending), and its commit follows
// at once (see run). A smaller batch waits for that commit, gathering
// more.
const (
	maxInflight = 2
	overlapAt   = maxBatch / 2
)

// gathering is a batch being gathered, its requests prefetching.
type gathering struct {
	b        *batcher
	batch    []*batchItem
	scratch  []*store.Txn
	fetching int           // scratch runs under way
	fetched  chan struct{} // one per scratch run done
}

// add puts it in the batch and runs it on a scratch transaction (it has
// no effect but on that transaction), seeded with the carry as it is now,
// to learn what it reads: the real, sequential run is seeded with
// everything the scratch runs read, so that it reads from memory instead
// of waiting on etcd once per key. A request that names its reads only
// prefetches those the transaction does not know (none, when the store
// keeps them: a VM's record and lock after its last operation). A create
// whose first reads the carry holds (one in a stream of them: the project
// and flavors the batch before wrote, its name read with its batch
// create's) has no scratch run: what it reads then (the chosen host's
// records and usage) the caches and the fleet index mostly hold, and its
// real run places it. (With creates that also start their VMs, the
// scratch runs were an eighth of the controller's CPU.)
func (g *gathering) add(it *batchItem) {
	g.batch = append(g.batch, it)
	if it.ctx.Err() != nil {
		return
	}
	tx := g.b.st.ScratchTxn()
	if g.b.carry != nil {
		tx.SeedSnapshot(g.b.carry)
	}
	unknown := func(k string) bool { return !tx.Knows(k) }
	if it.reads.all != nil && !slices.ContainsFunc(it.reads.all, unknown) ||
		it.reads.first != nil && g.b.carry != nil && !slices.ContainsFunc(it.reads.first(), unknown) {
		return
	}
	g.scratch = append(g.scratch, tx)
	g.fetching++
	go func() {
		if it.reads.all != nil {
			_ = tx.Prefetch(it.ctx, it.reads.all...)
			g.fetched <- struct{}{}
			return
		}
		stackgrow.Grow()
		_ = it.fn(tx, true)
		g.fetched <- struct{}{}
	}()
}

// pending is a batch whose commit is under way.
type pending struct {
	tx   *store.Txn
	ok   []*batchItem
	rev  int64
	err  error
	done chan struct{}
}

// run runs a batch in one transaction (seeded with base, what the
// commits before it wrote, and the scratch reads) and starts its commit
// once prev's (the commit under way whose pending writes base holds, or
// nil) is done. It returns the commit under way (nil when there is
// nothing to commit) and the items to run in the next batch (their view
// of the fleet was stale, or the transaction was full).
//
// The commit waits for prev's because it is conditioned on prev's
// writes: sent at once, etcd may apply it first (the two requests race
// to raft), and it then conflicts, and the batches after it with it.
// Measured (bench/fleet, 5,000 hosts, 100,000 VMs), 144 batch commits
// conflicted that way and 24% of the creates ran again. The run, the
// costly part, still overlaps prev's commit.
func (b *batcher) run(batch []*batchItem, scratch []*store.Txn, base *store.Snapshot, prev *pending) (*pending, []*batchItem) {
	tx := b.st.Txn()
	if base != nil {
		tx.SeedSnapshot(base)
	}
	for _, sc := range scratch {
		if sc != nil {
			tx.Seed(sc)
		}
	}
	if !b.turn(tx) {
		b.wait = time.Millisecond
		return nil, batch
	}
	var ok, retry []*batchItem
	for i, it := range batch {
		room := perItemOps + it.reads.extra
		if r, w := tx.Size(); i > 0 && (r+room > b.maxOps || w+room > b.maxOps || tx.Bytes()+perItemBytes > store.MaxTxnBytes) {
			retry = append(retry, batch[i:]...) // the next batch takes them
			break
		}
		if it.ctx.Err() != nil {
			it.err = it.ctx.Err()
			close(it.done)
			continue
		}
		m := tx.Mark()
		err := it.fn(tx, false)
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
	p := &pending{tx: tx, ok: ok, done: make(chan struct{})}
	if len(ok) == 0 {
		return nil, retry
	}
	go func() {
		if prev != nil {
			<-prev.done
		}
		if b.beforeSend != nil {
			b.beforeSend()
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if tx.Empty() {
			// Every item failed: nothing to write, but their refusals
			// rest on what they read (from the carry too, which a change
			// outside the batches, e.g. a host's report, makes stale).
			// They stand only if those reads are current.
			p.err = tx.Verify(ctx)
		} else {
			p.rev, p.err = tx.Commit(ctx)
		}
		cancel()
		close(p.done)
	}()
	return p, retry
}

// settle ends a batch whose commit is done: its items get their answers,
// and the next batch the carry; a commit that conflicted (a record changed
// outside the batches) returns its items to run again, on fresh reads.
func (b *batcher) settle(p *pending) []*batchItem {
	switch {
	case p.err == nil && p.rev != 0:
		b.carry = store.Committed(p.tx, p.rev)
	case p.err != nil:
		b.carry = nil
	}
	if errors.Is(p.err, store.ErrConflict) {
		b.conflicts.Add(1)
	}
	var again []*batchItem
	for _, it := range p.ok {
		if errors.Is(p.err, store.ErrConflict) {
			if it.commits++; it.commits < b.st.MaxAttempts {
				it.err = nil
				again = append(again, it)
				continue
			}
			it.err = fmt.Errorf("after %d attempts: %w", it.commits, p.err)
		} else if it.err == nil {
			it.err = p.err
		}
		close(it.done)
	}
	if len(again) > 0 {
		if slices.ContainsFunc(again, func(it *batchItem) bool { return it.commits >= claimAfter }) {
			b.takeTurn()
		}
		if b.catchUp != nil {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			_ = b.catchUp(ctx)
			cancel()
		}
		// Spread out from whatever conflicts with us.
		time.Sleep(time.Millisecond/2 + rand.N(time.Millisecond))
	}
	return again
}

// submitBatched is submit through the group committer; reads are what fn
// reads (see batchReads), the entity's lock aside.
func (s *Service) submitBatched(ctx context.Context, op string, entity api.Entity, tenantID, projectID string,
	fn func(tx *store.Txn, t *api.Task, probe bool) error, reads batchReads) (*api.Task, error) {
	reads.all = readsWith(reads.all, lockKey(entity.ID))
	var task *api.Task
	err := s.batch.do(ctx, func(tx *store.Txn, probe bool) error {
		var err error
		if task, err = s.tasks.NewTask(op, entity, tenantID, projectID); err != nil {
			return err
		}
		if err := fn(tx, task, probe); err != nil {
			return err
		}
		return s.tasks.Submit(ctx, tx, task)
	}, reads)
	if err != nil {
		return nil, err
	}
	// A create that placed its VM is submitted with its next step started
	// (it waits for the host, and Observe kicks it when the host reports):
	// running it now would only read it again to find it waiting.
	return task, nil
}

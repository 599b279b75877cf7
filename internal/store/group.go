package store

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Group commits concurrent transactions that touch disjoint keys (each
// host's report writes its own VMs and their tasks) as one etcd
// transaction: one raft proposal, one WAL write and one apply instead of
// one each. A transaction that shares a key with those already gathered
// waits for the next commit. While inflight commits are under way the
// transactions that arrive queue up and go in the next one together; an
// idle group commits a transaction at once, alone.
//
// The gathered transactions are independent, so their merged commit is
// conditioned on all their reads: when one of them is stale the merged
// commit fails, and each is then committed again on its own (so only the
// stale ones conflict).
type Group struct {
	s      *Store
	maxOps int
	once   sync.Once
	ch     chan *grouped
	slots  chan struct{}
	// Commits made, transactions in them, and merged commits that failed
	// (their transactions committed one by one).
	commits, txns, split atomic.Int64
}

// commitTimeout bounds a merged commit.
const commitTimeout = 30 * time.Second

type grouped struct {
	ctx  context.Context
	tx   *Txn
	rev  int64
	err  error
	done chan struct{}
}

// NewGroup returns a group committer for s: merged commits of at most
// maxOps conditions and as many operations (etcd's bound on a
// transaction), inflight of them under way at once.
func (s *Store) NewGroup(maxOps, inflight int) *Group {
	return &Group{s: s, maxOps: maxOps, slots: make(chan struct{}, max(inflight, 1))}
}

// Update is Store.Update with the commit made through the group.
func (g *Group) Update(ctx context.Context, fn func(tx *Txn) error) (int64, error) {
	return g.s.update(ctx, fn, g.commit)
}

// Counts returns the merged commits made, the transactions they held,
// and the merged commits that failed on a stale read.
func (g *Group) Counts() (commits, txns, split int64) {
	return g.commits.Load(), g.txns.Load(), g.split.Load()
}

// commit commits tx with whatever else is gathered meanwhile.
func (g *Group) commit(ctx context.Context, tx *Txn) (int64, error) {
	if tx.Empty() {
		return 0, nil
	}
	if r, w := tx.Size(); r > g.maxOps || w > g.maxOps || tx.Bytes() > MaxTxnBytes {
		return tx.Commit(ctx) // too big to share a commit: its own
	}
	g.once.Do(func() {
		g.ch = make(chan *grouped, 1024)
		go g.loop()
	})
	it := &grouped{ctx: ctx, tx: tx, done: make(chan struct{})}
	select {
	case g.ch <- it:
	case <-ctx.Done():
		return 0, ctx.Err()
	}
	// Once queued it commits (or not) whatever ctx does: wait for the
	// outcome, as Txn.Commit would.
	<-it.done
	return it.rev, it.err
}

func (g *Group) loop() {
	var next []*grouped // left over from the last gathering
	for {
		if len(next) == 0 {
			next = append(next, <-g.ch)
		}
		g.slots <- struct{}{} // the transactions that come meanwhile join
		var batch []*grouped
		var m merge
		keep := next[:0:0]
		for _, it := range next {
			if !m.add(it, g.maxOps) {
				keep = append(keep, it)
				continue
			}
			batch = append(batch, it)
		}
		next = keep
	gather:
		for !m.full(g.maxOps) {
			select {
			case it := <-g.ch:
				if m.add(it, g.maxOps) {
					batch = append(batch, it)
				} else {
					next = append(next, it)
				}
			default:
				break gather
			}
		}
		go func() {
			defer func() { <-g.slots }()
			g.run(batch, &m)
		}()
	}
}

// run commits a gathered batch and answers its transactions.
func (g *Group) run(batch []*grouped, m *merge) {
	g.commits.Add(1)
	g.txns.Add(int64(len(batch)))
	// The callers wait for the outcome whatever their contexts do (see
	// commit): none of them may cancel the others' commit.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(batch[0].ctx), commitTimeout)
	defer cancel()
	resp, err := g.s.c.Txn(ctx).If(m.cmps...).Then(m.ops...).Commit()
	switch {
	case err != nil:
		for _, it := range batch {
			g.s.recent.drop(it.tx.order) // written or not: unknown
			it.err = writeErr("commit", err)
		}
	case resp.Succeeded:
		for _, it := range batch {
			it.rev = resp.Header.Revision
			g.s.recent.wrote(it.tx, it.rev)
			g.s.committed(it.tx.order)
		}
		g.s.saw(resp.Header.Revision) // once kept (see Txn.Commit)
	case len(batch) == 1:
		batch[0].err = batch[0].tx.conflicted()
	default:
		// One (or more) read stale: each on its own finds out which.
		g.split.Add(1)
		var wg sync.WaitGroup
		for _, it := range batch {
			wg.Go(func() { it.rev, it.err = it.tx.Commit(it.ctx) })
		}
		wg.Wait()
	}
	for _, it := range batch {
		close(it.done)
	}
}

// merge is the union of independent transactions' conditions and writes.
type merge struct {
	cmps   []clientv3.Cmp
	ops    []clientv3.Op
	reads  map[string]bool
	writes map[string]bool
	bytes  int // Txn.Bytes of those merged
}

func (m *merge) full(maxOps int) bool {
	return len(m.cmps) >= maxOps || len(m.ops) >= maxOps || m.bytes >= MaxTxnBytes
}

// add merges it's transaction unless it would overflow the merged one
// (etcd's bounds on a transaction's operations and a request's bytes) or
// shares a key that one of them writes.
func (m *merge) add(it *grouped, maxOps int) bool {
	t := it.tx
	if len(m.ops) > 0 && (len(m.cmps)+len(t.reads) > maxOps || len(m.ops)+len(t.order) > maxOps || m.bytes+t.Bytes() > MaxTxnBytes) {
		return false
	}
	for k := range t.reads {
		if m.writes[k] {
			return false
		}
	}
	for _, k := range t.order {
		if m.writes[k] || m.reads[k] {
			return false
		}
	}
	if m.reads == nil {
		m.reads, m.writes = map[string]bool{}, map[string]bool{}
	}
	for k := range t.reads {
		m.reads[k] = true
	}
	for _, k := range t.order {
		m.writes[k] = true
	}
	m.cmps = append(m.cmps, t.conditions()...)
	m.ops = append(m.ops, t.ops()...)
	m.bytes += t.Bytes()
	return true
}

package store

import (
	"context"
	"strings"
	"sync"
)

// recent is what this Store's own commits wrote under a few prefixes
// (KeepRecent): each key's value and mod revision as of the last commit
// through this Store that wrote it. A transaction's read of such a key
// takes it from here instead of a round trip to etcd, conditioned on that
// revision like any read. The records a controller's work goes through
// (a VM's, its lock, its task) are mostly read back by the same
// controller soon after it wrote them: a host reports the VM its desired
// state showed, the task the report completes is the one this controller
// submitted.
//
// It may be stale (another controller, or a write whose outcome was not
// known, changed a key since, or a commit's answer is still on its way
// while a watch already woke the client that reads next): a transaction
// that read a stale value
// conflicts, which drops every key it read from here, and runs again on
// etcd's. Only reads that become commit conditions use it, never a plain
// read (Get, GetMany, List), which must not go back in time.
type recent struct {
	prefixes []string
	max      int

	// Two generations: writes go to cur; once it holds max/2 keys it
	// becomes prev, and the prev before it is dropped. The keys written
	// least recently go first, without an order to keep.
	mu        sync.Mutex
	cur, prev map[string]recentKV
}

type recentKV struct {
	val []byte // nil: absent (deleted)
	rev int64  // mod revision (0 when absent)
	at  int64  // the revision of the commit that wrote it
}

// KeepRecent makes the Store keep what its commits write under prefixes
// (parts for Prefix, e.g. "vms"), at most max keys, for its transactions'
// reads (see recent). Call it before the Store is used.
func (s *Store) KeepRecent(max int, prefixes ...string) {
	r := &recent{max: max, cur: map[string]recentKV{}}
	for _, p := range prefixes {
		r.prefixes = append(r.prefixes, Prefix(p))
	}
	s.recent = r
}

func (r *recent) keeps(key string) bool {
	for _, p := range r.prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// get returns key as this Store last wrote it, if it keeps it.
func (r *recent) get(key string) (recentKV, bool) {
	if r == nil || !r.keeps(key) {
		return recentKV{}, false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.lookup(key)
}

func (r *recent) lookup(key string) (recentKV, bool) {
	if kv, ok := r.cur[key]; ok {
		return kv, true
	}
	kv, ok := r.prev[key]
	return kv, ok
}

// wrote records t's writes, committed at revision rev. A key written
// since by a later commit of this Store keeps the later value (commits'
// answers may arrive out of order).
func (r *recent) wrote(t *Txn, rev int64) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range t.order {
		if !r.keeps(k) {
			continue
		}
		if old, ok := r.lookup(k); ok && old.at > rev {
			continue
		}
		if len(r.cur) >= r.max/2 {
			r.prev, r.cur = r.cur, make(map[string]recentKV, len(r.cur))
		}
		kv := recentKV{at: rev}
		if v := t.writes[k]; v != nil {
			kv.val, kv.rev = v, rev
		}
		delete(r.prev, k)
		r.cur[k] = kv
	}
}

// drop forgets keys: a transaction found one of them stale, or a commit
// that wrote them failed without saying whether it took effect.
func (r *recent) drop(keys []string) {
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, k := range keys {
		delete(r.cur, k)
		delete(r.prev, k)
	}
}

// RecentLen is the number of keys kept (KeepRecent), for tests and metrics.
func (s *Store) RecentLen() int {
	if s.recent == nil {
		return 0
	}
	s.recent.mu.Lock()
	defer s.recent.mu.Unlock()
	return len(s.recent.cur) + len(s.recent.prev)
}

// GetManyRecent is GetMany answered, for the keys this Store keeps
// (KeepRecent), from what its commits last wrote: for a caller that seeds
// a transaction with what it reads (SeedKV), whose commit is conditioned
// on those revisions, never for a plain read. The rest are read from etcd
// in one round trip.
func (s *Store) GetManyRecent(ctx context.Context, keys []string) ([]KV, error) {
	out := make([]KV, len(keys))
	var need []string
	var at []int
	for i, k := range keys {
		if kv, ok := s.recent.get(k); ok {
			out[i] = KV{Key: k, Value: kv.val, Rev: kv.rev}
			continue
		}
		need, at = append(need, k), append(at, i)
	}
	if len(need) == 0 {
		return out, nil
	}
	kvs, err := s.GetMany(ctx, need)
	if err != nil {
		return nil, err
	}
	for j, i := range at {
		out[i] = kvs[j]
	}
	return out, nil
}

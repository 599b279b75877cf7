package store

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"
)

// Cache is a read-through cache of single keys under a few prefixes, for
// records read on every request and rarely written (credentials, sessions,
// users). It stays exact without a round trip per read:
//
//   - one watch per prefix, started at a known revision, drops every key
//     written or deleted by anyone (another controller included);
//   - a commit through this Store drops the keys it wrote before Commit
//     returns, so a credential this process revokes stops working here at
//     once (elsewhere: once the watch delivers the change, milliseconds);
//   - a read fills the cache only if nothing was dropped while it was in
//     flight (a generation count), so an old value never lands after the
//     change that replaced it;
//   - while a watch is down (compaction, a lost connection) the cache is
//     empty and reads go to etcd, until the watch is back.
//
// Reads through the cache are linearizable like Store.Get.
type Cache struct {
	s        *Store
	prefixes []string
	max      int

	mu   sync.Mutex
	m    map[string]cached
	gen  uint64
	live int // prefixes whose watch is up
}

type cached struct {
	val []byte // nil: the key is absent
	rev int64  // its mod revision
}

// NewCache returns a cache of keys under prefixes holding at most max
// entries (beyond that, reads go to etcd). Run it with Run.
func (s *Store) NewCache(max int, prefixes ...string) *Cache {
	c := &Cache{s: s, prefixes: prefixes, max: max, m: map[string]cached{}}
	s.onCommit(c.committed)
	return c
}

// Run keeps the cache's watches up until ctx ends.
func (c *Cache) Run(ctx context.Context, log *slog.Logger) {
	var wg sync.WaitGroup
	for _, p := range c.prefixes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.watch(ctx, p, log)
		}()
	}
	wg.Wait()
}

func (c *Cache) watch(ctx context.Context, prefix string, log *slog.Logger) {
	for ctx.Err() == nil {
		// Start at a revision read now: every change after it is seen.
		rev, err := c.s.Rev(ctx)
		if err == nil {
			ch := c.s.Watch(ctx, prefix, rev)
			c.setLive(+1)
			for evs := range ch {
				c.mu.Lock()
				for _, e := range evs {
					c.dropLocked(e.Key)
				}
				c.mu.Unlock()
			}
			c.setLive(-1)
		}
		if ctx.Err() == nil {
			log.Warn("cache watch ended; reading through until it is back", "prefix", prefix, "err", err)
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}
}

func (c *Cache) setLive(d int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.live += d
	clear(c.m) // what was cached while a watch was down is unproven
	c.gen++
}

func (c *Cache) dropLocked(key string) {
	delete(c.m, key)
	c.gen++
}

// committed drops the keys a commit of this process wrote, or, for a
// commit that conflicted, read: one of them changed.
func (c *Cache) committed(keys []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range keys {
		if c.covers(k) {
			c.dropLocked(k)
		}
	}
}

func (c *Cache) covers(key string) bool {
	for _, p := range c.prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// Get reads key into v like Store.Get (ErrNotFound when absent), from
// the cache when it holds the key.
func (c *Cache) Get(ctx context.Context, key string, v any) error {
	c.mu.Lock()
	e, hit := c.m[key]
	gen, live := c.gen, c.live == len(c.prefixes)
	c.mu.Unlock()
	val := e.val
	if !hit {
		resp, err := c.s.get1(ctx, key)
		if err != nil {
			return fmt.Errorf("get %s: %w", key, err)
		}
		var rev int64
		if len(resp.Kvs) > 0 {
			val, rev = resp.Kvs[0].Value, resp.Kvs[0].ModRevision
		}
		if live {
			c.fill(gen, []KV{{Key: key, Value: val, Rev: rev}})
		}
	}
	if val == nil {
		return ErrNotFound
	}
	if err := Decode(val, v); err != nil {
		return fmt.Errorf("decode %s: %w", key, err)
	}
	return nil
}

// fill caches kvs, read when the generation was gen, unless a key was
// dropped since (the read may predate the change that dropped it).
func (c *Cache) fill(gen uint64, kvs []KV) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	for _, kv := range kvs {
		if c.covers(kv.Key) && len(c.m) < c.max {
			c.m[kv.Key] = cached{val: kv.Value, rev: kv.Rev}
		}
	}
}

// Seed seeds tx (SeedKV) with keys it has neither read, written nor been
// seeded with: from the cache, and the others from etcd in one round trip
// (filling the cache). tx's commit is then conditioned on their
// revisions, so a value the watch has not dropped yet only makes it
// conflict (as does one read just before a change became visible: etcd
// notifies watchers first), and a conflicting commit drops every key it
// read from the cache: the next attempt reads them from etcd.
func (c *Cache) Seed(ctx context.Context, tx *Txn, keys ...string) error {
	var miss []string
	c.mu.Lock()
	gen, live := c.gen, c.live == len(c.prefixes)
	for _, k := range keys {
		if tx.knows(k) {
			continue
		}
		if e, ok := c.m[k]; ok {
			tx.SeedKV(k, e.val, e.rev)
			continue
		}
		miss = append(miss, k)
	}
	c.mu.Unlock()
	if len(miss) == 0 {
		return nil
	}
	kvs, err := c.s.GetMany(ctx, miss)
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		tx.SeedKV(kv.Key, kv.Value, kv.Rev)
	}
	if live {
		c.fill(gen, kvs)
	}
	return nil
}

// Len is the number of keys cached.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// onCommit registers fn to be called with the keys of each commit of this
// Store, before the commit returns: those it wrote, or, when it
// conflicted, those it read.
func (s *Store) onCommit(fn func(keys []string)) {
	s.obsMu.Lock()
	defer s.obsMu.Unlock()
	s.observers = append(s.observers, fn)
}

func (s *Store) committed(keys []string) {
	s.obsMu.Lock()
	obs := s.observers
	s.obsMu.Unlock()
	for _, fn := range obs {
		fn(keys)
	}
}

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
	m    map[string][]byte // nil: the key is absent
	gen  uint64
	live int // prefixes whose watch is up
}

// NewCache returns a cache of keys under prefixes holding at most max
// entries (beyond that, reads go to etcd). Run it with Run.
func (s *Store) NewCache(max int, prefixes ...string) *Cache {
	c := &Cache{s: s, prefixes: prefixes, max: max, m: map[string][]byte{}}
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

// committed drops the keys a commit of this process wrote.
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
	val, hit := c.m[key]
	gen, live := c.gen, c.live == len(c.prefixes)
	c.mu.Unlock()
	if !hit {
		resp, err := c.s.c.Get(ctx, key)
		if err != nil {
			return fmt.Errorf("get %s: %w", key, err)
		}
		if len(resp.Kvs) > 0 {
			val = resp.Kvs[0].Value
		}
		if live && c.covers(key) {
			c.mu.Lock()
			if c.gen == gen && len(c.m) < c.max {
				c.m[key] = val
			}
			c.mu.Unlock()
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

// Len is the number of keys cached.
func (c *Cache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.m)
}

// onCommit registers fn to be called with the keys of each commit of this
// Store, before the commit returns.
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

package store_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/photon-cloud/photon/internal/photontest"
	"github.com/photon-cloud/photon/internal/store"
)

type counter struct {
	N int `json:"n"`
}

// TestStore runs every store scenario against the embedded member and a
// separately started etcd process, so both paths stay real.
func TestStore(t *testing.T) {
	scenarios := []struct {
		name string
		run  func(t *testing.T, s *store.Store)
	}{
		{"get-put-delete", testGetPutDelete},
		{"conflict-detected", testConflict},
		{"concurrent-increments", testConcurrentIncrements},
		{"absent-key-condition", testAbsentKey},
		{"paging", testPaging},
		{"watch", testWatch},
		{"rollback-and-seed", testRollbackAndSeed},
		{"kept", testKept},
		{"handed", testHanded},
		{"assume-absent", testAssumeAbsent},
		{"getmany-prefetch-committed", testGetManyPrefetchCommitted},
		{"cache", testCache},
		{"pending", testPending},
		{"hub", testHub},
		{"group-commit", testGroup},
		{"group-commit-bytes", testGroupBytes},
		{"bytes", testBytes},
		{"mirror", testMirror},
		{"recent", testRecent},
		{"hub-values", testHubValues},
		{"too-large", testTooLarge},
	}
	for _, mode := range photontest.EtcdModes {
		t.Run(mode.Name, func(t *testing.T) {
			ep := mode.Start(t)
			for _, sc := range scenarios {
				t.Run(sc.name, func(t *testing.T) {
					s := photontest.Store(t, ep)
					if mode.Name == "embedded" {
						s.SingleMember() // its plain reads serializable
					}
					sc.run(t, s)
				})
			}
		})
	}
}

func testGetPutDelete(t *testing.T, s *store.Store) {
	ctx := context.Background()
	key := store.Key("test", t.Name())
	var c counter
	if _, err := s.Get(ctx, key, &c); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("get absent: %v, want ErrNotFound", err)
	}
	if _, err := s.Update(ctx, func(tx *store.Txn) error { return tx.Put(key, counter{7}) }); err != nil {
		t.Fatal(err)
	}
	rev, err := s.Get(ctx, key, &c)
	if err != nil || c.N != 7 || rev == 0 {
		t.Fatalf("get = %+v rev %d err %v", c, rev, err)
	}
	if _, err := s.Update(ctx, func(tx *store.Txn) error { tx.Delete(key); return nil }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, key, &c); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("after delete: %v", err)
	}
}

func testConflict(t *testing.T, s *store.Store) {
	ctx := context.Background()
	key := store.Key("test", t.Name())
	s.Update(ctx, func(tx *store.Txn) error { return tx.Put(key, counter{1}) })
	tx := s.Txn()
	var c counter
	if err := tx.MustGet(ctx, key, &c); err != nil {
		t.Fatal(err)
	}
	if err := tx.Verify(ctx); err != nil {
		t.Fatalf("Verify with nothing changed: %v", err)
	}
	// Someone else writes in between.
	s.Update(ctx, func(tx *store.Txn) error { return tx.Put(key, counter{100}) })
	if err := tx.Verify(ctx); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Verify of a stale read: %v, want ErrConflict", err)
	}
	tx.Put(key, counter{c.N + 1})
	if _, err := tx.Commit(ctx); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("stale commit: %v, want ErrConflict", err)
	}
	s.Get(ctx, key, &c)
	if c.N != 100 {
		t.Fatalf("stale write landed: %d", c.N)
	}
}

func testConcurrentIncrements(t *testing.T, s *store.Store) {
	ctx := context.Background()
	key := store.Key("test", t.Name())
	const workers, each = 16, 10
	var wg sync.WaitGroup
	var failed atomic.Int32
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < each; i++ {
				_, err := s.Update(ctx, func(tx *store.Txn) error {
					var c counter
					if _, err := tx.Get(ctx, key, &c); err != nil {
						return err
					}
					return tx.Put(key, counter{c.N + 1})
				})
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	var c counter
	s.Get(ctx, key, &c)
	if failed.Load() != 0 || c.N != workers*each {
		t.Fatalf("counter = %d (failed %d), want %d: lost updates", c.N, failed.Load(), workers*each)
	}
}

func testAbsentKey(t *testing.T, s *store.Store) {
	ctx := context.Background()
	key := store.Key("test", t.Name())
	// Two creators both see the key absent; only one may create it.
	tx1, tx2 := s.Txn(), s.Txn()
	for _, tx := range []*store.Txn{tx1, tx2} {
		if ok, err := tx.Exists(ctx, key); ok || err != nil {
			t.Fatalf("exists = %v, %v", ok, err)
		}
	}
	tx1.Put(key, counter{1})
	tx2.Put(key, counter{2})
	if _, err := tx1.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := tx2.Commit(ctx); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second create: %v, want ErrConflict", err)
	}
}

func testPaging(t *testing.T, s *store.Store) {
	ctx := context.Background()
	prefix := store.Prefix("test", t.Name())
	s.Update(ctx, func(tx *store.Txn) error {
		for i := 0; i < 25; i++ {
			tx.Put(fmt.Sprintf("%s%03d", prefix, i), counter{i})
		}
		return nil
	})
	var seen []string
	token := ""
	pages := 0
	for {
		kvs, next, err := s.Page(ctx, prefix, token, 10)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, kv := range kvs {
			seen = append(seen, kv.Key)
		}
		if next == "" {
			break
		}
		token = next
	}
	if len(seen) != 25 || pages != 3 || seen[24] != prefix+"024" {
		t.Fatalf("paging: %d keys in %d pages, last %q", len(seen), pages, seen[len(seen)-1])
	}
	if _, _, err := s.Page(ctx, prefix, "!!garbage", 10); !errors.Is(err, store.ErrBadPageToken) {
		t.Fatalf("bad token: %v", err)
	}
	if n, _ := s.Count(ctx, prefix); n != 25 {
		t.Fatalf("count = %d", n)
	}
}

func testWatch(t *testing.T, s *store.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	prefix := store.Prefix("test", t.Name())
	ch := s.Watch(ctx, prefix, 0)
	time.Sleep(100 * time.Millisecond) // let the watch register
	s.Update(ctx, func(tx *store.Txn) error { return tx.Put(prefix+"a", counter{1}) })
	s.Update(ctx, func(tx *store.Txn) error { tx.Delete(prefix + "a"); return nil })
	var got []store.Event
	for len(got) < 2 {
		select {
		case evs := <-ch:
			got = append(got, evs...)
		case <-ctx.Done():
			t.Fatalf("watch saw %d events, want 2", len(got))
		}
	}
	if got[0].Delete || string(got[0].Value) != `{"n":1}` || !got[1].Delete {
		t.Fatalf("events = %+v", got)
	}
}

// testAssumeAbsent: a key assumed absent reads as absent, and is no
// condition of the commit: it commits though the key was written since.
func testAssumeAbsent(t *testing.T, s *store.Store) {
	ctx := context.Background()
	k := func(n string) string { return store.Key("test", t.Name(), n) }
	tx := s.Txn()
	tx.AssumeAbsent(k("lock"))
	if ok, err := tx.Exists(ctx, k("lock")); err != nil || ok {
		t.Fatalf("assumed absent: exists %v, %v", ok, err)
	}
	if r, _ := tx.Size(); r != 0 {
		t.Fatalf("%d reads, want none", r)
	}
	if _, err := s.Update(ctx, func(o *store.Txn) error { return o.Put(k("lock"), 1) }); err != nil {
		t.Fatal(err)
	}
	if err := tx.Put(k("vm"), 1); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Commit(ctx); err != nil {
		t.Fatalf("commit after the assumed key was written: %v, want no condition on it", err)
	}
}

// testKept: Kept returns what PutKept wrote while the key holds those
// bytes: not after another write of the key, again once a rollback
// brings them back, and never in a scratch transaction.
func testKept(t *testing.T, s *store.Store) {
	k := store.Key("test", t.Name())
	kept := func(tx *store.Txn) int {
		t.Helper()
		v, ok := tx.Kept(k)
		if !ok {
			return 0
		}
		return v.(*counter).N
	}
	tx := s.Txn()
	if n := kept(tx); n != 0 {
		t.Fatalf("kept before any write: %d", n)
	}
	if err := tx.PutKept(k, &counter{1}); err != nil {
		t.Fatal(err)
	}
	m := tx.Mark()
	if n := kept(tx); n != 1 {
		t.Fatalf("kept after PutKept 1: %d", n)
	}
	var got counter
	if err := store.MustGetKept(context.Background(), tx, k, &got); err != nil || got.N != 1 {
		t.Fatalf("MustGetKept after PutKept 1: %d, %v", got.N, err)
	}
	if err := tx.Put(k, counter{2}); err != nil {
		t.Fatal(err)
	}
	if n := kept(tx); n != 0 {
		t.Fatalf("kept after a plain Put: %d, want none", n)
	}
	if err := store.MustGetKept(context.Background(), tx, k, &got); err != nil || got.N != 2 {
		t.Fatalf("MustGetKept after a plain Put of 2: %d, %v (decoded, not kept)", got.N, err)
	}
	tx.RollbackTo(m)
	if n := kept(tx); n != 1 {
		t.Fatalf("kept after rolling back to the PutKept: %d, want 1", n)
	}
	if err := tx.PutKept(k, &counter{3}); err != nil {
		t.Fatal(err)
	}
	tx.RollbackTo(0)
	if n := kept(tx); n != 0 {
		t.Fatalf("kept after rolling back every write: %d, want none", n)
	}
	scratch := s.ScratchTxn()
	if err := scratch.PutKept(k, &counter{4}); err != nil {
		t.Fatal(err)
	}
	if n := kept(scratch); n != 0 {
		t.Fatalf("a scratch transaction kept %d", n)
	}
}

// testHanded: Take returns, once, what PutHanded wrote while the key
// holds those bytes; Kept never returns it, nor Take what PutKept wrote.
func testHanded(t *testing.T, s *store.Store) {
	k := store.Key("test", t.Name())
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// none checks that Take finds nothing in tx after what was done.
	none := func(tx *store.Txn, after string) {
		t.Helper()
		if v, ok := tx.Take(k); ok {
			t.Fatalf("Take after %s = %v, want none", after, v)
		}
	}
	tx := s.Txn()
	c := &counter{1}
	must(tx.PutHanded(k, c))
	if v, ok := tx.Kept(k); ok {
		t.Fatalf("Kept returned a handed value: %v", v)
	}
	if v, ok := tx.Take(k); !ok || v != c {
		t.Fatalf("Take after PutHanded = %v, %v, want the value handed", v, ok)
	}
	none(tx, "a Take")
	must(tx.PutKept(k, &counter{2}))
	none(tx, "PutKept")
	m := tx.Mark()
	must(tx.PutHanded(k, &counter{3}))
	must(tx.Put(k, counter{4}))
	none(tx, "a plain Put")
	must(tx.PutHanded(k, &counter{5}))
	tx.RollbackTo(m)
	none(tx, "rolling back the PutHanded")
	scratch := s.ScratchTxn()
	must(scratch.PutHanded(k, &counter{6}))
	none(scratch, "PutHanded in a scratch transaction")
}

// testRollbackAndSeed: RollbackTo takes back the writes since a mark (a
// group commit dropping one request), and a transaction seeded with what
// another read conditions on those revisions without reading again.
func testRollbackAndSeed(t *testing.T, s *store.Store) {
	ctx := context.Background()
	k := func(n string) string { return store.Key("test", t.Name(), n) }
	if _, err := s.Update(ctx, func(tx *store.Txn) error { return tx.Put(k("a"), 1) }); err != nil {
		t.Fatal(err)
	}
	tx := s.Txn()
	if err := tx.Put(k("a"), 2); err != nil {
		t.Fatal(err)
	}
	m := tx.Mark()
	_ = tx.Put(k("a"), 3)
	_ = tx.Put(k("b"), 3)
	tx.Delete(k("c"))
	tx.RollbackTo(m)
	if r, w := tx.Size(); r != 0 || w != 1 {
		t.Fatalf("after rollback: %d reads, %d writes", r, w)
	}
	if _, err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	var a int
	if _, err := s.Get(ctx, k("a"), &a); err != nil || a != 2 {
		t.Fatalf("a = %d, %v", a, err)
	}
	if _, err := s.Get(ctx, k("b"), &a); err == nil {
		t.Fatal("b was written")
	}
	// A scratch transaction learns reads only: its writes are dropped
	// (a read of one reads the stored value), and it does not commit.
	// Seeded reads are conditions: a change after the scratch read makes
	// the commit conflict.
	scratch := s.ScratchTxn()
	if err := scratch.Put(k("a"), 9); err != nil {
		t.Fatal(err)
	}
	scratch.Delete(k("b"))
	if _, err := scratch.Get(ctx, k("a"), &a); err != nil || a != 2 {
		t.Fatalf("scratch read of a key it wrote = %d, %v; want the stored 2", a, err)
	}
	if r, w := scratch.Size(); r != 1 || w != 0 || !scratch.Empty() {
		t.Fatalf("scratch: %d reads, %d writes", r, w)
	}
	if _, err := scratch.Commit(ctx); err == nil {
		t.Fatal("a scratch transaction committed")
	}
	if _, err := s.Update(ctx, func(tx *store.Txn) error { return tx.Put(k("a"), 4) }); err != nil {
		t.Fatal(err)
	}
	tx = s.Txn()
	tx.Seed(scratch)
	if _, err := tx.Get(ctx, k("a"), &a); err != nil || a != 2 {
		t.Fatalf("seeded a = %d, %v", a, err)
	}
	_ = tx.Put(k("a"), 5)
	if _, err := tx.Commit(ctx); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("commit on a stale seeded read: %v", err)
	}
}

// GetMany reads many keys at once (absent ones nil at revision 0);
// Prefetch makes later reads free without making unread keys conditions;
// a snapshot of a commit seeds the next transaction, which still
// conflicts if a seeded key changed since.
func testGetManyPrefetchCommitted(t *testing.T, s *store.Store) {
	ctx := context.Background()
	keys := make([]string, 300) // more than one etcd transaction's worth
	for i := range keys {
		keys[i] = store.Key("test", t.Name(), fmt.Sprintf("k%03d", i))
	}
	for lo := 0; lo < len(keys); lo += 100 {
		if _, err := s.Update(ctx, func(tx *store.Txn) error {
			for i := lo; i < lo+100; i += 2 {
				if err := tx.Put(keys[i], counter{i}); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
			t.Fatal(err)
		}
	}
	for _, get := range []struct {
		name string
		get  func(context.Context, []string) ([]store.KV, error)
	}{{"GetMany", s.GetMany}, {"GetManyLinearizable", s.GetManyLinearizable}} {
		kvs, err := get.get(ctx, keys)
		if err != nil || len(kvs) != len(keys) {
			t.Fatalf("%s: %d kvs, %v", get.name, len(kvs), err)
		}
		for i, kv := range kvs {
			if kv.Key != keys[i] || (i%2 == 0) != (kv.Value != nil) || (kv.Rev == 0) != (kv.Value == nil) {
				t.Fatalf("%s: kv %d = %q %q rev %d", get.name, i, kv.Key, kv.Value, kv.Rev)
			}
		}
	}

	// Prefetched but unread keys are no conditions: a change to one
	// does not make the commit conflict.
	tx := s.Txn()
	if err := tx.Prefetch(ctx, keys[0], keys[2]); err != nil {
		t.Fatal(err)
	}
	var c counter
	if ok, err := tx.Get(ctx, keys[0], &c); !ok || err != nil || c.N != 0 {
		t.Fatalf("get prefetched: %v %v %+v", ok, err, c)
	}
	if _, err := s.Update(ctx, func(tx *store.Txn) error { return tx.Put(keys[2], counter{-1}) }); err != nil {
		t.Fatal(err)
	}
	if err := tx.Put(keys[1], counter{1}); err != nil {
		t.Fatal(err)
	}
	rev, err := tx.Commit(ctx)
	if err != nil {
		t.Fatalf("commit after an unread prefetched key changed: %v", err)
	}

	// The next transaction, seeded with that commit, reads nothing again
	// and commits; then one seeded with the same (now stale) snapshot
	// conflicts.
	sn := store.Committed(tx, rev)
	next := func() error {
		tx := s.Txn()
		tx.SeedSnapshot(sn)
		var c counter
		if ok, err := tx.Get(ctx, keys[1], &c); !ok || err != nil || c.N != 1 {
			t.Fatalf("seeded get: %v %v %+v", ok, err, c)
		}
		if err := tx.Put(keys[1], counter{c.N + 1}); err != nil {
			return err
		}
		_, err := tx.Commit(ctx)
		return err
	}
	if err := next(); err != nil {
		t.Fatalf("commit on a current snapshot: %v", err)
	}
	if err := next(); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("commit on a stale snapshot: %v, want ErrConflict", err)
	}
	if _, err := s.Get(ctx, keys[1], &c); err != nil || c.N != 2 {
		t.Fatalf("keys[1] = %+v, %v; want 2", c, err)
	}
}

// testCache: a Cache answers from memory, drops a key this Store commits
// before the commit returns, and one written by another client (as by
// another controller: a raw etcd write, no commit hook) once its watch
// delivers it.
func testCache(t *testing.T, s *store.Store) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	prefix := store.Prefix("test", t.Name(), "cached")
	key, outside := prefix+"k", store.Key("test", t.Name(), "other")
	c := s.NewCache(2, prefix)
	put := func(k string, n int) {
		t.Helper()
		if _, err := s.Update(ctx, func(tx *store.Txn) error { return tx.Put(k, counter{n}) }); err != nil {
			t.Fatal(err)
		}
	}
	get := func(k string) (int, error) {
		var v counter
		err := c.Get(ctx, k, &v)
		return v.N, err
	}
	eventually := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(10 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("not within 10 s: %s", what)
			}
		}
	}
	put(key, 1)
	put(outside, 1)
	// Started after the puts, so that its watch (from a revision read
	// then) does not deliver them late and drop what a read filled.
	go c.Run(ctx, photontest.Logger(t))
	// Filled once its watch is up.
	eventually("the key cached", func() bool { n, err := get(key); return err == nil && n == 1 && c.Len() == 1 })
	if n, err := get(outside); err != nil || n != 1 || c.Len() != 1 {
		t.Fatalf("outside the prefix: %d %v, %d cached", n, err, c.Len())
	}
	// This Store's commit: seen at once.
	put(key, 2)
	if n, err := get(key); err != nil || n != 2 {
		t.Fatalf("after a commit here: %d %v, want 2", n, err)
	}
	// Another writer: seen once the watch delivers it.
	if _, err := s.Client().Put(ctx, key, `{"n":3}`); err != nil {
		t.Fatal(err)
	}
	eventually("another writer's put", func() bool { n, err := get(key); return err == nil && n == 3 })
	if _, err := s.Client().Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	eventually("another writer's delete", func() bool { _, err := get(key); return errors.Is(err, store.ErrNotFound) })
	// Absence is cached too, and a create ends it.
	put(key, 4)
	if n, err := get(key); err != nil || n != 4 {
		t.Fatalf("after a create here: %d %v, want 4", n, err)
	}
	// The bound holds.
	for i := range 5 {
		put(fmt.Sprint(prefix, "more-", i), i)
		if _, err := get(fmt.Sprint(prefix, "more-", i)); err != nil {
			t.Fatal(err)
		}
	}
	if c.Len() > 2 {
		t.Fatalf("%d cached, bound 2", c.Len())
	}
	testCacheSeed(t, s, ctx)
}

// testCacheSeed: Seed gives a transaction cached values as reads (its
// commit conditioned on them), leaves alone a key the transaction wrote,
// and a commit that conflicts on a value the watch had not dropped yet
// drops it, so the next attempt reads the new one.
func testCacheSeed(t *testing.T, s *store.Store, ctx context.Context) {
	prefix := store.Prefix("test", t.Name(), "seeded")
	key, out := prefix+"k", store.Key("test", t.Name(), "seed-out")
	c := s.NewCache(100, prefix)
	go c.Run(ctx, photontest.Logger(t))
	if _, err := s.Update(ctx, func(tx *store.Txn) error { return tx.Put(key, counter{1}) }); err != nil {
		t.Fatal(err)
	}
	// attempt seeds a transaction, reads key and writes out conditioned on it.
	attempt := func() (int, error) {
		tx := s.Txn()
		if err := c.Seed(ctx, tx, key); err != nil {
			return 0, err
		}
		var v counter
		if _, err := tx.Get(ctx, key, &v); err != nil {
			return 0, err
		}
		if err := tx.Put(out, v); err != nil {
			return 0, err
		}
		_, err := tx.Commit(ctx)
		return v.N, err
	}
	for deadline := time.Now().Add(10 * time.Second); c.Len() == 0; time.Sleep(10 * time.Millisecond) {
		if n, err := attempt(); err != nil || n != 1 {
			t.Fatalf("seeded read: %d, %v; want 1", n, err)
		}
		if time.Now().After(deadline) {
			t.Fatal("Seed never filled the cache")
		}
	}
	// A key the transaction wrote keeps its write.
	tx := s.Txn()
	if err := tx.Put(key, counter{9}); err != nil {
		t.Fatal(err)
	}
	var v counter
	if err := c.Seed(ctx, tx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Get(ctx, key, &v); err != nil || v.N != 9 {
		t.Fatalf("after Seed, a written key reads %d, %v; want the write, 9", v.N, err)
	}
	// Another writer, and at once an attempt: on the cached value (the
	// watch has not dropped it yet) it conflicts, once.
	for i := 2; i < 12; i++ {
		if _, err := s.Client().Put(ctx, key, fmt.Sprintf(`{"n":%d}`, i)); err != nil {
			t.Fatal(err)
		}
		n, err := attempt()
		if errors.Is(err, store.ErrConflict) {
			n, err = attempt()
		}
		if err != nil || n != i {
			t.Fatalf("after another writer put %d: read %d, %v (a stale cached value conflicted twice?)", i, n, err)
		}
	}
}

// testPending: a transaction seeded with another's pending writes commits
// once that one has (in either order of their calls, it conflicts until
// then), and conflicts if the pending one never commits.
func testPending(t *testing.T, s *store.Store) {
	ctx := context.Background()
	k, gone, other := store.Key("test", t.Name(), "k"), store.Key("test", t.Name(), "gone"), store.Key("test", t.Name(), "other")
	if _, err := s.Update(ctx, func(tx *store.Txn) error { return tx.Put(gone, counter{1}) }); err != nil {
		t.Fatal(err)
	}
	// first reads k (absent) and gone, writes k = 1 and deletes gone.
	newFirst := func() *store.Txn {
		first := s.Txn()
		var c counter
		if ok, err := first.Get(ctx, k, &c); err != nil || ok {
			t.Fatalf("k: %v %v", ok, err)
		}
		if err := first.Put(k, counter{1}); err != nil {
			t.Fatal(err)
		}
		first.Delete(gone)
		return first
	}
	// second, on first's pending writes: k + 1 into other, gone absent.
	newSecond := func(first *store.Txn) *store.Txn {
		second := s.Txn()
		second.SeedSnapshot(store.Pending(first, nil))
		var c counter
		if ok, err := second.Get(ctx, k, &c); err != nil || !ok || c.N != 1 {
			t.Fatalf("second reads k = %+v %v %v, want 1 (pending)", c, ok, err)
		}
		if ok, err := second.Exists(ctx, gone); err != nil || ok {
			t.Fatalf("second sees gone: %v %v", ok, err)
		}
		if err := second.Put(other, counter{c.N + 1}); err != nil {
			t.Fatal(err)
		}
		return second
	}
	first := newFirst()
	second := newSecond(first)
	if _, err := second.Commit(ctx); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("second before first: %v, want a conflict", err)
	}
	if _, err := first.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	second = newSecond(first)
	if _, err := second.Commit(ctx); err != nil {
		t.Fatalf("second after first: %v", err)
	}
	var c counter
	if _, err := s.Get(ctx, other, &c); err != nil || c.N != 2 {
		t.Fatalf("other = %+v %v", c, err)
	}
	// A pending transaction that never commits: k changed otherwise.
	if _, err := s.Update(ctx, func(tx *store.Txn) error { tx.Delete(k); return tx.Put(gone, counter{1}) }); err != nil {
		t.Fatal(err)
	}
	never := newFirst()
	if _, err := s.Update(ctx, func(tx *store.Txn) error { return tx.Put(k, counter{7}) }); err != nil {
		t.Fatal(err)
	}
	if _, err := newSecond(never).Commit(ctx); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("on a pending write that never landed: %v, want a conflict", err)
	}
}

// testHub: a Hub wakes a waiter on a change to its id after its read
// only, tells one that read before a change at once, takes back the
// channel of one that timed out, wakes a waiter on several ids by any
// of them, and once it forgets ids, says "changed" rather than sleep through
// a change.
func testHub(t *testing.T, s *store.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h := s.NewHub("hubtest")
	go h.Run(ctx)
	for h.Version("a") == 0 {
		if ctx.Err() != nil {
			t.Fatal("the hub's watch did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	put := func(key string) int64 {
		t.Helper()
		rev, err := s.Update(ctx, func(tx *store.Txn) error { return tx.Put(store.Prefix("hubtest")+key, counter{1}) })
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	rev, err := s.Rev(ctx)
	if err != nil {
		t.Fatal(err)
	}
	changed, ch := h.ChangedSince("a", rev)
	if changed {
		t.Fatal("ChangedSince(a) right after the watch started: changed")
	}
	bRev := put("b/x")
	// Once b's change is seen, a's waiter must still be waiting.
	for h.Version("b") < bRev {
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case <-ch:
		t.Fatal("a change to b woke a's waiter")
	default:
	}
	aRev := put("a/x")
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatal("a change to a did not wake its waiter")
	}
	if changed, _ := h.ChangedSince("a", rev); !changed {
		t.Fatalf("ChangedSince(a, %d) after a change at %d: not changed", rev, aRev)
	}
	if changed, _ := h.ChangedSince("a", aRev); changed {
		t.Fatalf("ChangedSince(a, %d) with no change after it: changed", aRev)
	}

	// woken runs wait in the background until it waits on id, writes
	// key, and fails unless that wakes it.
	woken := func(what, id, key string, wait func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { wait(); close(done) }()
		for store.Waiting(h, id) == 0 {
			time.Sleep(5 * time.Millisecond)
		}
		put(key)
		select {
		case <-done:
		case <-ctx.Done():
			t.Fatalf("%s not woken by a change to %s", what, key)
		}
	}

	// Wait: woken by the change, or given up on at its timeout, with the
	// channel taken back.
	woken("Wait(c)", "c", "c/x", func() { h.Wait(ctx, "c", aRev, time.Minute) })
	h.Wait(ctx, "d", aRev, 20*time.Millisecond)
	if n := store.Waiting(h, "d"); n != 0 {
		t.Fatalf("%d waiters left for d after a Wait timed out", n)
	}

	// WaitAny: woken by a change to any one of its ids; its waiters on
	// the others are taken back.
	woken("WaitAny(p, q, r)", "r", "q/x", func() {
		h.WaitAny(ctx, []string{"p", "q", "r"}, []int64{aRev, aRev, aRev}, time.Minute)
	})
	for _, id := range []string{"p", "q", "r"} {
		if n := store.Waiting(h, id); n != 0 {
			t.Fatalf("%d waiters left for %s after WaitAny was woken", n, id)
		}
	}
	put("r/x") // the wake is spent: a second change must not close it again

	// A watch that lags behind reads: a waiter that read at gRev, a
	// change the watch delivers only then, is not woken by it (a long
	// poll answered with what its client has); by the next change it is.
	gRev := put("g/x")
	changed, ch = h.ChangedSince("g", gRev)
	if changed {
		t.Fatalf("ChangedSince(g, %d) with no change after it: changed", gRev)
	}
	store.Deliver(h, "g", gRev)
	select {
	case <-ch:
		t.Fatal("a change at the revision g's waiter read at woke it")
	default:
	}
	put("g/x")
	select {
	case <-ch:
	case <-ctx.Done():
		t.Fatal("a change to g after its waiter's read did not wake it")
	}

	// Forgetting: with room for 2 ids, a new one makes the hub forget a,
	// b and c; a waiter that read a before its change (at bRev) must
	// still be told it changed.
	h.SetMaxTracked(2)
	eRev := put("e/x")
	for h.Version("e") < eRev {
		time.Sleep(5 * time.Millisecond)
	}
	if changed, _ := h.ChangedSince("a", bRev); !changed {
		t.Fatal("a change to a forgotten id: not changed")
	}
	if changed, _ := h.ChangedSince("f", eRev); changed {
		t.Fatal("an id with no change after the last one seen: changed")
	}
}

// testBytes: a transaction's Bytes count the keys it writes and their
// values, and the keys it reads; a write again counts its last value
// only, and a rollback takes back what it counted.
func testBytes(t *testing.T, s *store.Store) {
	ctx := context.Background()
	k := func(n string) string { return store.Key("test", t.Name(), n) }
	tx := s.Txn()
	if _, err := tx.Get(ctx, k("read"), &counter{}); err != nil {
		t.Fatal(err)
	}
	tx.PutRaw(k("a"), make([]byte, 100))
	want := len(k("read")) + len(k("a")) + 100
	if got := tx.Bytes(); got != want {
		t.Fatalf("a read and a write: %d bytes, want %d", got, want)
	}
	m := tx.Mark()
	tx.PutRaw(k("a"), make([]byte, 300)) // again: its last value counts
	tx.PutRaw(k("b"), make([]byte, 50))
	tx.Delete(k("c"))
	if got, after := tx.Bytes(), want+200+len(k("b"))+50+len(k("c")); got != after {
		t.Fatalf("after more writes: %d bytes, want %d", got, after)
	}
	tx.RollbackTo(m)
	if got := tx.Bytes(); got != want {
		t.Fatalf("after rollback: %d bytes, want %d", got, want)
	}
}

// testGroupBytes: transactions whose values together are more than etcd
// takes in one request (1.5 MiB by default) commit through a Group in
// merged commits each under store.MaxTxnBytes; one over it alone (but
// under etcd's bound) commits on its own.
func testGroupBytes(t *testing.T, s *store.Store) {
	ctx := context.Background()
	g := s.NewGroup(128, 1)
	const n, size = 40, 100 << 10 // 4 MB in all
	var wg sync.WaitGroup
	errs := make(chan error, n+1)
	put := func(name string, size int) {
		_, err := g.Update(ctx, func(tx *store.Txn) error {
			tx.PutRaw(store.Key("test", t.Name(), name), bytes.Repeat([]byte("x"), size))
			return nil
		})
		errs <- err
	}
	for i := range n {
		wg.Go(func() { put(fmt.Sprint(i), size) })
	}
	wg.Go(func() { put("alone", store.MaxTxnBytes+100<<10) })
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	commits, txns, _ := g.Counts()
	if min := n * size / store.MaxTxnBytes; commits < int64(min) {
		t.Fatalf("%d transactions of %d KB in %d merged commits, want at least %d", txns, size>>10, commits, min)
	}
	t.Logf("%d transactions in %d merged commits", txns, commits)
}

// testGroup: concurrent updates through a Group, on keys of their own and
// on one shared key, lose nothing and share commits; in a merged commit a
// transaction whose read is stale conflicts alone.
func testGroup(t *testing.T, s *store.Store) {
	ctx := context.Background()
	g := s.NewGroup(128, 1)
	own := func(i int) string { return store.Key("test", t.Name(), fmt.Sprint("own-", i)) }
	hot := store.Key("test", t.Name(), "hot")
	incr := func(key string) error {
		_, err := g.Update(ctx, func(tx *store.Txn) error {
			var c counter
			if _, err := tx.Get(ctx, key, &c); err != nil {
				return err
			}
			c.N++
			return tx.Put(key, c)
		})
		return err
	}
	const writers, rounds = 32, 10
	var wg sync.WaitGroup
	errs := make(chan error, 2*writers*rounds)
	for i := range writers {
		wg.Go(func() {
			for range rounds {
				errs <- incr(own(i))
				errs <- incr(hot)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	for i := range writers {
		var c counter
		if _, err := s.Get(ctx, own(i), &c); err != nil || c.N != rounds {
			t.Fatalf("%s = %d (%v), want %d", own(i), c.N, err, rounds)
		}
	}
	var c counter
	if _, err := s.Get(ctx, hot, &c); err != nil || c.N != writers*rounds {
		t.Fatalf("hot = %d (%v), want %d", c.N, err, writers*rounds)
	}
	commits, txns, _ := g.Counts()
	if txns < 2*writers*rounds || commits >= txns {
		t.Fatalf("%d commits for %d transactions: none shared", commits, txns)
	}
	t.Logf("%d transactions in %d commits", txns, commits)

	// One of three transactions read a key that changed since: it alone
	// conflicts, the others commit.
	tx := make([]*store.Txn, 3)
	for i := range tx {
		tx[i] = s.Txn()
		var c counter
		if _, err := tx[i].Get(ctx, own(i), &c); err != nil {
			t.Fatal(err)
		}
		c.N = 100 + i
		if err := tx[i].Put(own(i), c); err != nil {
			t.Fatal(err)
		}
	}
	if err := incr(own(1)); err != nil {
		t.Fatal(err)
	}
	_, _, split0 := g.Counts()
	got := store.CommitTogether(g, tx...)
	if got[0] != nil || !errors.Is(got[1], store.ErrConflict) || got[2] != nil {
		t.Fatalf("merged commit with a stale read: %v, want nil, ErrConflict, nil", got)
	}
	for i, want := range []int{100, rounds + 1, 102} {
		var c counter
		if _, err := s.Get(ctx, own(i), &c); err != nil || c.N != want {
			t.Fatalf("%s = %d (%v), want %d", own(i), c.N, err, want)
		}
	}
	if _, _, split := g.Counts(); split != split0+1 {
		t.Fatalf("%d merged commits split, want 1", split-split0)
	}
}

// testMirror: a Mirror lists its range, follows changes, groups keys by
// id and prefix (skipping keys in its range under none of them), and
// wakes an id's waiters only once the change is in what Read returns.
func testMirror(t *testing.T, s *store.Store) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	a, b, between := "mirrortest-a", "mirrortest-b", "mirrortest-ab"
	put := func(key string, n int) int64 {
		t.Helper()
		rev, err := s.Update(ctx, func(tx *store.Txn) error { return tx.Put(store.Key(key), counter{n}) })
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	put(a+"/h1/y", 2)
	put(a+"/h1/x", 1)
	put(b+"/h1/z", 3)
	put(a+"/h2/w", 4)
	last := put(between+"/h1/q", 5)
	m := s.NewMirror(b, a)
	if _, _, ok := m.Read("h1", a); ok {
		t.Fatal("Read before Run: ready")
	}
	go m.Run(ctx)
	var rev int64
	for ok := false; !ok; {
		if ctx.Err() != nil {
			t.Fatal("the mirror never got ready")
		}
		time.Sleep(5 * time.Millisecond)
		_, rev, ok = m.Read("h1", a)
	}
	if rev < last {
		t.Fatalf("listed at %d, before the last write (%d)", rev, last)
	}
	// values lists what Read returns for h1 under a and b.
	values := func() (string, int64) {
		t.Helper()
		lists, rev, ok := m.Read("h1", a, b)
		if !ok {
			t.Fatal("mirror not ready")
		}
		var out []string
		for _, l := range lists {
			var vs []string
			for _, kv := range l {
				var c counter
				if err := store.Decode(kv.Value, &c); err != nil {
					t.Fatal(err)
				}
				vs = append(vs, fmt.Sprintf("%s=%d", kv.Key[strings.LastIndex(kv.Key, "/")+1:], c.N))
			}
			out = append(out, strings.Join(vs, ","))
		}
		return strings.Join(out, " | "), rev
	}
	if got, _ := values(); got != "x=1,y=2 | z=3" {
		t.Fatalf("h1 = %q, want %q", got, "x=1,y=2 | z=3")
	}
	h := m.Hub()
	for _, step := range []struct {
		change func() int64
		want   string
	}{
		{func() int64 { return put(a+"/h1/v", 6) }, "v=6,x=1,y=2 | z=3"},
		{func() int64 {
			r, err := s.Update(ctx, func(tx *store.Txn) error { tx.Delete(store.Key(a + "/h1/x")); return nil })
			if err != nil {
				t.Fatal(err)
			}
			return r
		}, "v=6,y=2 | z=3"},
		{func() int64 { return put(b+"/h1/z", 7) }, "v=6,y=2 | z=7"},
	} {
		_, rev := values()
		changed, ch := h.ChangedSince("h1", rev)
		if changed {
			t.Fatal("ChangedSince(h1) with no change: changed")
		}
		// Changes to another id, or in the range under neither prefix,
		// do not wake h1.
		put(a+"/h2/w", 8)
		put(between+"/h1/q", 9)
		select {
		case <-ch:
			t.Fatal("h1 woken by another id's change")
		case <-time.After(50 * time.Millisecond):
		}
		at := step.change()
		select {
		case <-ch:
		case <-ctx.Done():
			t.Fatal("h1 not woken by its change")
		}
		got, rev := values()
		if got != step.want || rev < at {
			t.Fatalf("after the change at %d: h1 = %q at %d, want %q", at, got, rev, step.want)
		}
	}
}

// testHubValues: a hub that keeps values (KeepValues) gives each id's last
// change, a delete as nil, and keeps the most recently changed ids only;
// Visible says a change is visible to reads once an answer at its
// revision came back (always, against a cluster: linearizable reads).
func testHubValues(t *testing.T, s *store.Store) {
	local := store.SingleMembered(s)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	h := s.NewHub("hubvals")
	h.KeepValues(4) // two generations of 2 ids
	go h.Run(ctx)
	for h.Version("a") == 0 {
		if ctx.Err() != nil {
			t.Fatal("the hub's watch did not start")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// seen waits for the hub to see id's change at rev.
	seen := func(id string, rev int64) []byte {
		t.Helper()
		for {
			val, r, through, ok := h.Latest(id)
			if ok && r == rev {
				if through < rev {
					t.Fatalf("Latest(%s): seen through %d, before its change at %d", id, through, rev)
				}
				return val
			}
			if ok && r > rev || ctx.Err() != nil {
				t.Fatalf("Latest(%s) = %q at %d, %v; want the change at %d", id, val, r, ok, rev)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	update := func(fn func(tx *store.Txn) error) int64 {
		t.Helper()
		rev, err := s.Update(ctx, fn)
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	put := func(id string, n int) int64 {
		return update(func(tx *store.Txn) error { return tx.Put(store.Key("hubvals", id), counter{n}) })
	}
	if _, _, _, ok := h.Latest("a"); ok {
		t.Fatal("Latest(a) before any change: kept")
	}
	ra := put("a", 1)
	if got := string(seen("a", ra)); got != `{"n":1}` {
		t.Errorf("Latest(a) = %s, want {\"n\":1}", got)
	}
	if !s.Visible(ra) {
		t.Errorf("Visible(%d) after the commit at %d was answered: false", ra, ra)
	}
	if far := ra + 1_000_000; s.Visible(far) != !local {
		t.Errorf("Visible(%d), a revision no answer has reached = %v, want %v (single member: %v)", far, s.Visible(far), !local, local)
	}
	rd := update(func(tx *store.Txn) error { tx.Delete(store.Key("hubvals", "a")); return nil })
	if val := seen("a", rd); val != nil {
		t.Errorf("Latest(a) after its delete = %q, want nil", val)
	}
	// b, c, d, e, f: a and b fall out with the older generation.
	var last int64
	for i, id := range []string{"b", "c", "d", "e", "f"} {
		last = put(id, i)
	}
	seen("f", last)
	// Seen through f's change, e's value is still e's change; e did not
	// change before f's revision (f's transaction could change it too).
	if _, r, through, _ := h.Latest("e"); r >= last || through != last-1 {
		t.Errorf("Latest(e): change at %d, through %d; want before %d, through %d", r, through, last, last-1)
	}

	for id, want := range map[string]bool{"a": false, "b": false, "c": true, "d": true, "e": true, "f": true} {
		if _, _, _, ok := h.Latest(id); ok != want {
			t.Errorf("Latest(%s) kept = %v, want %v", id, ok, want)
		}
	}
	// A transaction changing g, then f, its events delivered one at a
	// time: in between, f's value is from before, and f may still change
	// at that revision, so through stays before it.
	far := last + 1_000
	store.DeliverEvent(h, store.Event{Key: store.Key("hubvals", "g"), Value: []byte(`{"n":7}`), Rev: far})
	if _, r, through, ok := h.Latest("f"); !ok || r != last || through >= far {
		t.Errorf("Latest(f) amid a transaction at %d: change at %d, through %d, %v; want at %d, through before %d", far, r, through, ok, last, far)
	}
}

// A write larger than etcd takes is ErrTooLarge (a client error to
// callers), and writes nothing.
func testTooLarge(t *testing.T, s *store.Store) {
	ctx := context.Background()
	big := strings.Repeat("x", 2<<20)
	_, err := s.Update(ctx, func(tx *store.Txn) error { return tx.Put(store.Key("big", "one"), big) })
	if !errors.Is(err, store.ErrTooLarge) {
		t.Fatalf("2 MiB put = %v, want ErrTooLarge", err)
	}
	var got string
	if _, err := s.Get(ctx, store.Key("big", "one"), &got); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("after the refused put: %v, want not found", err)
	}
	// Just under etcd's limit passes.
	if _, err := s.Update(ctx, func(tx *store.Txn) error { return tx.Put(store.Key("big", "two"), big[:1<<20]) }); err != nil {
		t.Errorf("1 MiB put: %v", err)
	}
}

package store_test

import (
	"context"
	"fmt"
	"slices"
	"testing"

	"github.com/photon-cloud/photon/internal/store"
)

// testRecent: with KeepRecent, a transaction reads what this Store's
// commits last wrote under the prefixes, not etcd: a key changed behind
// its back is read stale, the commit conflicts, and the run again reads
// etcd's value; a delete is kept as absent; plain reads (Get, GetMany)
// never use what is kept; GetManyRecent does; at most max keys are kept.
func testRecent(t *testing.T, s *store.Store) {
	ctx := context.Background()
	s.KeepRecent(1000, "recent-test")
	key := func(n string) string { return store.Key("recent-test", t.Name(), n) }
	a, b, other := key("a"), key("b"), store.Key("test", t.Name(), "other")
	put := func(fn func(tx *store.Txn) error) {
		t.Helper()
		if _, err := s.Update(ctx, fn); err != nil {
			t.Fatal(err)
		}
	}
	behind := func(k string, n int) {
		t.Helper()
		if _, err := s.Client().Put(ctx, k, fmt.Sprintf(`{"n":%d}`, n)); err != nil {
			t.Fatal(err)
		}
	}
	// reads runs a transaction reading k (-1: absent) into c, and returns
	// what each of its runs read.
	reads := func(k string, then func(tx *store.Txn, c counter) error) []int {
		t.Helper()
		var seen []int
		put(func(tx *store.Txn) error {
			c := counter{-1}
			if _, err := tx.Get(ctx, k, &c); err != nil {
				return err
			}
			seen = append(seen, c.N)
			return then(tx, c)
		})
		return seen
	}

	put(func(tx *store.Txn) error {
		if err := tx.Put(a, counter{1}); err != nil {
			return err
		}
		return tx.Put(other, counter{1})
	})
	if n := s.RecentLen(); n != 1 {
		t.Fatalf("%d keys kept after a commit writing one under the prefix and one elsewhere; want 1", n)
	}
	behind(a, 2)
	var plain counter
	if _, err := s.Get(ctx, a, &plain); err != nil || plain.N != 2 {
		t.Fatalf("plain read: %+v, %v; want etcd's 2, never the kept 1", plain, err)
	}
	if ptx := s.PlainTxn(); ptx.Knows(a) {
		t.Fatal("a PlainTxn knows a key from the store's kept commits")
	} else if _, err := ptx.Get(ctx, a, &plain); err != nil || plain.N != 2 {
		t.Fatalf("PlainTxn read: %+v, %v; want etcd's 2, never the kept 1", plain, err)
	}
	if seen := reads(a, func(tx *store.Txn, c counter) error { return tx.Put(b, c) }); !slices.Equal(seen, []int{1, 2}) {
		t.Fatalf("runs of a transaction reading a key changed behind the store's back read %v; want the kept 1 (a conflict), then etcd's 2", seen)
	}
	if seen := reads(a, func(*store.Txn, counter) error { return nil }); !slices.Equal(seen, []int{2}) {
		t.Fatalf("after the conflict: %v; want etcd's 2 at once", seen)
	}

	// A delete is kept as the key's absence.
	put(func(tx *store.Txn) error { tx.Delete(b); return nil })
	behind(b, 3)
	kvs, err := s.GetManyRecent(ctx, []string{b, other})
	if err != nil || kvs[0].Value != nil || kvs[0].Rev != 0 || string(kvs[1].Value) != `{"n":1}` {
		t.Fatalf("GetManyRecent = %+v, %v; want b absent as kept, the other key from etcd", kvs, err)
	}
	if kvs, err := s.GetMany(ctx, []string{b}); err != nil || string(kvs[0].Value) != `{"n":3}` {
		t.Fatalf("GetMany = %+v, %v; want etcd's b", kvs, err)
	}
	if seen := reads(b, func(tx *store.Txn, c counter) error { return tx.Put(a, c) }); !slices.Equal(seen, []int{-1, 3}) {
		t.Fatalf("runs reading a key deleted here and written behind the store's back read %v; want absent (a conflict), then 3", seen)
	}

	// Bounded.
	s.KeepRecent(8, "recent-test")
	put(func(tx *store.Txn) error {
		for i := range 20 {
			if err := tx.Put(key(fmt.Sprint("k", i)), counter{i}); err != nil {
				return err
			}
		}
		return nil
	})
	if n := s.RecentLen(); n == 0 || n > 8 {
		t.Fatalf("%d keys kept with a bound of 8", n)
	}
}

package compute

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/photon-cloud/photon/internal/store"
)

// TestBatcherCommitsInOrder: requests that all update one record (as
// creates do a project's quota) from many clients at once, through one
// batcher on the embedded etcd (as the controller runs it). Consecutive
// batches overlap, each run on the writes of the commit before it still
// under way: every request is counted once, and no batch commit
// conflicts, which one sent before the commit it runs on would (etcd may
// then apply it first; here every other commit is slow to leave).
func TestBatcherCommitsInOrder(t *testing.T) {
	ctx := context.Background()
	b := &batcher{st: embeddedStore(t), maxOps: store.EmbeddedMaxTxnOps, id: "test"}
	// Every other commit is slow to leave (a busy machine): the one after
	// it must still not be sent first.
	var sends atomic.Int64
	b.beforeSend = func() {
		if sends.Add(1)%2 == 1 {
			time.Sleep(20 * time.Millisecond)
		}
	}
	counter := store.Key("test", "counter")
	const clients, each = 128, 20
	doFromClients(t, b, clients, each, func(c, i int, tx *store.Txn) error {
		var n int
		if _, err := tx.Get(ctx, counter, &n); err != nil {
			return err
		}
		if err := tx.Put(counter, n+1); err != nil {
			return err
		}
		return tx.Put(store.Key("test", "item", fmt.Sprint(c, "-", i)), i)
	})
	var n int
	if _, err := b.st.Get(ctx, counter, &n); err != nil || n != clients*each {
		t.Fatalf("counter = %d, %v; want %d", n, err, clients*each)
	}
	if c := b.conflicts.Load(); c != 0 {
		t.Errorf("%d batch commits conflicted, want none", c)
	}
}

// embeddedStore is a store on an embedded etcd of the test's own.
func embeddedStore(t *testing.T) *store.Store {
	ctx := context.Background()
	e, err := store.StartEmbedded(ctx, filepath.Join(t.TempDir(), "etcd"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	st, err := store.ConnectClient(ctx, e.Client(), "embedded")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	return st
}

// TestBatcherStaysUnderRequestBytes: requests whose writes together are
// more than etcd takes in one request (4 MB, 100 KB each, all at once)
// are committed in batches under store.MaxTxnBytes, each once.
func TestBatcherStaysUnderRequestBytes(t *testing.T) {
	ctx := context.Background()
	b := &batcher{st: embeddedStore(t), maxOps: store.EmbeddedMaxTxnOps, id: "test"}
	const n, size = 40, 100 << 10
	doFromClients(t, b, n, 1, func(c, _ int, tx *store.Txn) error {
		tx.PutRaw(store.Key("test", "big", fmt.Sprint(c)), bytes.Repeat([]byte("x"), size))
		return nil
	})
	kvs, _, err := b.st.Page(ctx, store.Prefix("test", "big"), "", n+1)
	if err != nil || len(kvs) != n {
		t.Fatalf("%d values written (%v), want %d", len(kvs), err, n)
	}
}

// doFromClients runs requests through b from clients at once, each
// sending each in turn (fn(c, i, tx) is client c's i-th), and fails t on
// any error.
func doFromClients(t *testing.T, b *batcher, clients, each int, fn func(c, i int, tx *store.Txn) error) {
	t.Helper()
	ctx := context.Background()
	var wg sync.WaitGroup
	errs := make(chan error, clients*each)
	for c := range clients {
		wg.Go(func() {
			for i := range each {
				errs <- b.do(ctx, func(tx *store.Txn, probe bool) error { return fn(c, i, tx) }, batchReads{})
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
}

package store_test

import (
	"testing"

	"go.etcd.io/etcd/api/v3/etcdserverpb"
	"go.etcd.io/etcd/api/v3/mvccpb"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photon-cloud/photon/internal/store"
)

// TestWatchedRev: a response with events shows the range up to its last
// event (a chunk of a catch-up carries the store's current revision,
// ahead of events still to come); a progress notification, up to its
// revision.
func TestWatchedRev(t *testing.T) {
	ev := func(rev int64) *clientv3.Event { return &clientv3.Event{Kv: &mvccpb.KeyValue{ModRevision: rev}} }
	for _, tc := range []struct {
		name   string
		header int64
		events []*clientv3.Event
		want   int64
	}{
		{"progress notification", 90, nil, 90},
		{"caught up", 42, []*clientv3.Event{ev(41), ev(42)}, 42},
		{"chunk of a catch-up", 5000, []*clientv3.Event{ev(100), ev(1099)}, 1099},
	} {
		resp := clientv3.WatchResponse{Header: etcdserverpb.ResponseHeader{Revision: tc.header}, Events: tc.events}
		if got := store.WatchedRev(resp); got != tc.want {
			t.Errorf("%s: WatchedRev = %d, want %d", tc.name, got, tc.want)
		}
	}
}

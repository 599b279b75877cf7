package audit_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/audit"
	"github.com/photon-cloud/photon/internal/photontest"
)

// TestRetention: Sweep deletes records older than Retention and keeps the rest;
// List pages in time order from since.
func TestRetention(t *testing.T) {
	ctx := context.Background()
	l := audit.New(photontest.Store(t, photontest.EmbeddedEtcd(t)))
	now := time.Now()
	l.Now = func() time.Time { return now }
	l.Retention = 24 * time.Hour
	for _, age := range []time.Duration{72 * time.Hour, 48 * time.Hour, 2 * time.Hour, time.Minute} {
		if err := l.Append(ctx, &api.AuditEntry{Time: now.Add(-age).UnixMilli(), Subject: "admin", Method: "POST", Path: "/v1/tenants", Status: 201}); err != nil {
			t.Fatal(err)
		}
	}
	n, err := l.Sweep(ctx)
	if err != nil || n != 2 {
		t.Fatalf("sweep deleted %d, %v; want 2", n, err)
	}
	page, next, err := l.List(ctx, 0, "", 1)
	if err != nil || len(page) != 1 || next == "" || page[0].Time != now.Add(-2*time.Hour).UnixMilli() {
		t.Fatalf("first page = %+v, next %q, %v", page, next, err)
	}
	page, next, err = l.List(ctx, 0, next, 1)
	if err != nil || len(page) != 1 || page[0].Time != now.Add(-time.Minute).UnixMilli() {
		t.Fatalf("second page = %+v, next %q, %v", page, next, err)
	}
	recent, _, err := l.List(ctx, now.Add(-time.Hour).UnixMilli(), "", 100)
	if err != nil || len(recent) != 1 {
		t.Fatalf("since an hour ago = %+v, %v", recent, err)
	}
}

func TestParseSince(t *testing.T) {
	now := time.UnixMilli(1_800_000_000_000)
	for _, tc := range []struct {
		in   string
		want int64
		ok   bool
	}{
		{"", 0, true},
		{"1700000000000", 1700000000000, true},
		{"1h", 1_800_000_000_000 - 3600_000, true},
		{"2026-01-02T00:00:00Z", time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC).UnixMilli(), true},
		{"-5", 0, false},
		{"-1h", 0, false},
		{"yesterday", 0, false},
	} {
		got, err := audit.ParseSince(tc.in, now)
		if (err == nil) != tc.ok || (tc.ok && got != tc.want) {
			t.Errorf("ParseSince(%q) = %d, %v; want %d ok=%v", tc.in, got, err, tc.want, tc.ok)
		}
	}
}

// TestConcurrentAppends: appends made at once are written together (group
// commit: fewer etcd revisions than records, and more than maxAppends in
// flight still fit etcd's operation bound) and none is lost or doubled.
func TestConcurrentAppends(t *testing.T) {
	ctx := context.Background()
	st := photontest.Store(t, photontest.EmbeddedEtcd(t))
	l := audit.New(st)
	before, err := st.Client().Get(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	const n = 400
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Go(func() {
			errs <- l.Append(ctx, &api.AuditEntry{Subject: "admin", Method: "POST", Path: fmt.Sprintf("/v1/tenants/%d", i), Status: 201})
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	after, err := st.Client().Get(ctx, "/")
	if err != nil {
		t.Fatal(err)
	}
	page, next, err := l.List(ctx, 0, "", 1000)
	if err != nil || next != "" {
		t.Fatalf("list: %v (next %q)", err, next)
	}
	seen := map[string]bool{}
	for _, e := range page {
		seen[e.Path] = true
	}
	revs := after.Header.Revision - before.Header.Revision
	t.Logf("%d appends in %d etcd revisions", n, revs)
	if len(page) != n || len(seen) != n {
		t.Fatalf("listed %d records, %d distinct; want %d", len(page), len(seen), n)
	}
	if revs >= n {
		t.Fatalf("%d concurrent appends took %d revisions: not group-committed", n, revs)
	}
}

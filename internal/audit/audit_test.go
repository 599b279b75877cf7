package audit_test

import (
	"context"
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

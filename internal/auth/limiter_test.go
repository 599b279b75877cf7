package auth

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := NewLimiter(LoginLimits{UserBurst: 3, UserEvery: 10 * time.Second, IPBurst: 5, IPEvery: time.Second})
	l.now = func() time.Time { return now }
	for i := 0; i < 3; i++ {
		if w := l.Blocked("user:a", "ip:1"); w != 0 {
			t.Fatalf("attempt %d blocked for %v", i, w)
		}
		l.Fail("user:a", "ip:1")
	}
	if w := l.Blocked("user:a", "ip:1"); w != 10*time.Second {
		t.Fatalf("after the burst: blocked %v, want 10s", w)
	}
	if w := l.Blocked("user:b", "ip:2"); w != 0 {
		t.Fatalf("other user and address: blocked %v", w)
	}
	now = now.Add(10 * time.Second)
	if w := l.Blocked("user:a"); w != 0 {
		t.Fatalf("after one interval: blocked %v", w)
	}
	l.Fail("user:a")
	if w := l.Blocked("user:a"); w != 10*time.Second {
		t.Fatalf("one guess per interval: blocked %v", w)
	}
	l.Reset("user:a")
	if w := l.Blocked("user:a"); w != 0 {
		t.Fatalf("after reset: blocked %v", w)
	}
	now = now.Add(time.Hour)
	l.Blocked("ip:1")
	if len(l.buckets) != 1 { // user:a was reset; ip:1 refilled and dropped
		t.Logf("buckets: %v", l.buckets)
	}
}

package auth

import (
	"sync"
	"time"
)

// LoginLimits bound failed logins: each key (a user name, a client address)
// has a bucket of Burst failures that refills one every Every. While a
// bucket is empty every login for that key is refused with 429, the right
// password included, so a brute-force loop gets one guess per Every.
type LoginLimits struct {
	UserBurst int
	UserEvery time.Duration
	IPBurst   int
	IPEvery   time.Duration
}

// DefaultLoginLimits: 5 failures per user, then one guess every 10 s; 20
// failures per client address, then one a second.
var DefaultLoginLimits = LoginLimits{UserBurst: 5, UserEvery: 10 * time.Second, IPBurst: 20, IPEvery: time.Second}

// Limiter counts failed logins per key in this controller's memory.
type Limiter struct {
	lim     LoginLimits
	now     func() time.Time
	mu      sync.Mutex
	buckets map[string]*bucket
}

type bucket struct {
	tokens float64
	at     time.Time
}

// NewLimiter returns a limiter with the given limits.
func NewLimiter(l LoginLimits) *Limiter {
	return &Limiter{lim: l, now: time.Now, buckets: map[string]*bucket{}}
}

func (l *Limiter) params(key string) (float64, time.Duration) {
	if len(key) > 3 && key[:3] == "ip:" {
		return float64(l.lim.IPBurst), l.lim.IPEvery
	}
	return float64(l.lim.UserBurst), l.lim.UserEvery
}

// level refills key's bucket to now and returns it (nil: full).
func (l *Limiter) level(key string, now time.Time) *bucket {
	b := l.buckets[key]
	if b == nil {
		return nil
	}
	burst, every := l.params(key)
	b.tokens += float64(now.Sub(b.at)) / float64(every)
	b.at = now
	if b.tokens >= burst {
		delete(l.buckets, key)
		return nil
	}
	return b
}

// Blocked returns how long until a login for all keys may be tried again
// (0: now).
func (l *Limiter) Blocked(keys ...string) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	var wait time.Duration
	for _, k := range keys {
		if b := l.level(k, now); b != nil && b.tokens < 1 {
			_, every := l.params(k)
			if w := time.Duration((1 - b.tokens) * float64(every)); w > wait {
				wait = w
			}
		}
	}
	return wait
}

// Fail records a failed login for every key.
func (l *Limiter) Fail(keys ...string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if len(l.buckets) > 100000 { // bound memory under a spray of names
		for k := range l.buckets {
			l.level(k, now)
		}
	}
	for _, k := range keys {
		b := l.level(k, now)
		if b == nil {
			burst, _ := l.params(k)
			b = &bucket{tokens: burst, at: now}
			l.buckets[k] = b
		}
		b.tokens = max(b.tokens-1, 0)
	}
}

// Reset forgets key's failures (after a successful login).
func (l *Limiter) Reset(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.buckets, key)
}

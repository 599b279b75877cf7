// Package audit owns the audit log: one record per mutating API request
// (who, what, which object, the result, the task), kept in etcd under
// audit/<ms>-<id> in time order, deleted after a retention period, read back
// by time.
package audit

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// DefaultRetention is how long records are kept unless configured.
const DefaultRetention = 90 * 24 * time.Hour

// Log is the audit log.
type Log struct {
	st *store.Store
	// Retention: records older than this are deleted by Sweep.
	Retention time.Duration
	// Now is the clock (tests set it).
	Now func() time.Time

	// Appends waiting to be written, and whether a writer is at work.
	mu      sync.Mutex
	queue   []*appendReq
	writing bool
}

// appendReq is one record waiting for the writer.
type appendReq struct {
	key, value string
	done       chan error
}

// maxAppends bounds the records one transaction writes: etcd's default
// bound on a transaction's operations, so that any etcd takes it.
const maxAppends = 128

// New returns the log.
func New(st *store.Store) *Log {
	return &Log{st: st, Retention: DefaultRetention, Now: time.Now}
}

var prefix = store.Prefix("audit")

func key(ms int64, id string) string { return fmt.Sprintf("%s%016d-%s", prefix, ms, id) }

// Append records e, filling its id and time.
func (l *Log) Append(ctx context.Context, e *api.AuditEntry) error {
	if e.Time == 0 {
		e.Time = l.Now().UnixMilli()
	}
	e.ID = uuid.Must(uuid.NewV7()).String()
	b, err := store.Encode(e)
	if err != nil {
		return err
	}
	r := &appendReq{key: key(e.Time, e.ID), value: string(b), done: make(chan error, 1)}
	l.mu.Lock()
	l.queue = append(l.queue, r)
	start := !l.writing
	l.writing = true
	l.mu.Unlock()
	if start {
		go l.write()
	}
	select {
	case err := <-r.done:
		if err != nil {
			return fmt.Errorf("audit: %w", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("audit: %w", ctx.Err())
	}
}

// write writes the queued records, those that arrive meanwhile in the next
// transaction (group commit: every mutating request appends one record, and
// one etcd proposal per record was a fifth of etcd's requests under load),
// until the queue is empty. Each Append returns once its transaction did.
func (l *Log) write() {
	for {
		l.mu.Lock()
		n := min(len(l.queue), maxAppends)
		if n == 0 {
			l.writing = false
			l.mu.Unlock()
			return
		}
		batch := l.queue[:n:n]
		l.queue = slices.Clone(l.queue[n:])
		l.mu.Unlock()
		ops := make([]clientv3.Op, len(batch))
		for i, r := range batch {
			ops[i] = clientv3.OpPut(r.key, r.value)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		_, err := l.st.Client().Txn(ctx).Then(ops...).Commit()
		cancel()
		for _, r := range batch {
			r.done <- err
		}
	}
}

// List returns up to size records at or after since (ms since the epoch),
// oldest first, and the token of the next page ("" on the last).
func (l *Log) List(ctx context.Context, since int64, token string, size int) ([]api.AuditEntry, string, error) {
	start := key(max(since, 0), "")
	if token != "" {
		b, err := base64.RawURLEncoding.DecodeString(token)
		if err != nil || !strings.HasPrefix(string(b), prefix) {
			return nil, "", store.ErrBadPageToken
		}
		start = string(b) + "\x00"
	}
	resp, err := l.st.Client().Get(ctx, start, clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix)), clientv3.WithLimit(int64(size)))
	if err != nil {
		return nil, "", fmt.Errorf("audit: %w", err)
	}
	out := make([]api.AuditEntry, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var e api.AuditEntry
		if err := json.Unmarshal(kv.Value, &e); err != nil {
			return nil, "", fmt.Errorf("audit %s: %w", kv.Key, err)
		}
		out = append(out, e)
	}
	next := ""
	if resp.More && len(resp.Kvs) > 0 {
		next = base64.RawURLEncoding.EncodeToString(resp.Kvs[len(resp.Kvs)-1].Key)
	}
	return out, next, nil
}

// Sweep deletes records older than Retention. Several controllers may
// sweep at once: a range delete is idempotent.
func (l *Log) Sweep(ctx context.Context) (int64, error) {
	cutoff := l.Now().Add(-l.Retention).UnixMilli()
	resp, err := l.st.Client().Delete(ctx, prefix, clientv3.WithRange(key(cutoff, "")))
	if err != nil {
		return 0, fmt.Errorf("audit sweep: %w", err)
	}
	return resp.Deleted, nil
}

// Loop sweeps every interval until ctx ends.
func (l *Log) Loop(ctx context.Context, interval time.Duration, log *slog.Logger) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := l.Sweep(ctx); err != nil && ctx.Err() == nil {
			log.Warn("audit sweep", "error", err)
		} else if n > 0 {
			log.Info("audit sweep", "deleted", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// ParseSince reads ?since=: milliseconds since the epoch, an RFC 3339 time,
// or a duration back from now ("1h", "30m"). Empty is the beginning.
func ParseSince(s string, now time.Time) (int64, error) {
	bad := func() error {
		e := api.Errorf(api.CodeInvalidQuery, "since: %q: want ms since the epoch, an RFC 3339 time or a duration like 1h", s)
		e.Data = map[string]string{"field": "since"}
		return e
	}
	if s == "" {
		return 0, nil
	}
	if len(s) > 64 {
		return 0, bad()
	}
	var ms int64
	if _, err := fmt.Sscanf(s, "%d", &ms); err == nil && fmt.Sprint(ms) == s {
		if ms < 0 {
			return 0, bad()
		}
		return ms, nil
	}
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return max(t.UnixMilli(), 0), nil
	}
	if d, err := time.ParseDuration(s); err == nil && d >= 0 {
		return max(now.Add(-d).UnixMilli(), 0), nil
	}
	return 0, bad()
}

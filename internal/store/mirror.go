package store

import (
	"context"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

// Mirror is a complete copy, in memory, of the keys under a few prefixes,
// grouped by id (the first path element after the prefix, as in Hub: a
// host's desired/<host>/<vm>), kept current by one watch. Reads of an id's
// keys then cost no round trip to etcd (a host's long poll reads its
// desired state after every change to it).
//
// The watch covers the key range from the least prefix to past the
// greatest, so that all its changes come in one stream, in revision
// order: the mirror is always a state etcd was in, at Rev. Keys in the
// range under none of the prefixes are skipped (keep the range narrow).
//
// The mirror feeds its Hub: a change is applied before its id's waiters
// wake, so a waiter woken for a change reads it. While the watch is down
// (compaction, a lost connection) Read reports the mirror not ready; the
// caller reads etcd.
type Mirror struct {
	st         *Store
	start, end string // the watched range
	hub        *Hub

	mu    sync.RWMutex
	ready bool
	rev   int64
	ids   map[string]map[string]KV // id -> key -> KV
}

// NewMirror returns a mirror of the keys under prefixes (names as given to
// Prefix); Run keeps it.
func (s *Store) NewMirror(prefixes ...string) *Mirror {
	m := &Mirror{st: s, hub: s.NewHub(prefixes...), ids: map[string]map[string]KV{}}
	sorted := slices.Sorted(slices.Values(m.hub.full))
	m.start = sorted[0]
	m.end = strings.TrimSuffix(sorted[len(sorted)-1], "/") + "0" // '0' follows '/'
	return m
}

// Hub wakes waiters on changes to an id, as the mirror applies them.
func (m *Mirror) Hub() *Hub { return m.hub }

// Run keeps the mirror until ctx ends, listing again (and waking every
// waiter) whenever the watch ends.
func (m *Mirror) Run(ctx context.Context) {
	for ctx.Err() == nil {
		m.run(ctx)
		m.mu.Lock()
		m.ready = false
		m.mu.Unlock()
		select {
		case <-time.After(200 * time.Millisecond):
		case <-ctx.Done():
		}
	}
}

func (m *Mirror) run(ctx context.Context) {
	resp, err := m.st.c.Get(ctx, m.start, m.st.readOpts(clientv3.WithRange(m.end))...)
	if err != nil {
		return
	}
	rev := resp.Header.Revision
	m.mu.Lock()
	clear(m.ids)
	for _, kv := range resp.Kvs {
		m.apply(string(kv.Key), kv.Value, kv.ModRevision)
	}
	m.rev, m.ready = rev, true
	m.mu.Unlock()
	// Any change before the list counts as new for every waiter.
	m.hub.restart(rev)
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	wc := m.st.c.Watch(clientv3.WithRequireLeader(wctx), m.start, clientv3.WithRange(m.end), clientv3.WithRev(rev+1))
	for resp := range wc {
		if resp.Err() != nil {
			return
		}
		if len(resp.Events) == 0 {
			continue
		}
		ids := make([]string, len(resp.Events))
		m.mu.Lock()
		for i, e := range resp.Events {
			var val []byte
			if e.Type != clientv3.EventTypeDelete {
				val = e.Kv.Value
			}
			ids[i] = m.apply(string(e.Kv.Key), val, e.Kv.ModRevision)
		}
		m.rev = WatchedRev(resp)
		m.mu.Unlock()
		for i, e := range resp.Events {
			if ids[i] != "" {
				m.hub.bump(ids[i], e.Kv.ModRevision)
			}
		}
	}
}

// apply sets (val nil: deletes) key (mu held) and returns its id ("" for
// a key in the range under none of the prefixes: skipped).
func (m *Mirror) apply(key string, val []byte, rev int64) string {
	id := m.hub.idOf(key)
	if id == "" {
		return ""
	}
	keys := m.ids[id]
	if val == nil {
		delete(keys, key)
		if len(keys) == 0 {
			delete(m.ids, id)
		}
		return id
	}
	if keys == nil {
		keys = map[string]KV{}
		m.ids[id] = keys
	}
	keys[key] = KV{Key: key, Value: val, Rev: rev}
	return id
}

// Read returns id's keys under each of prefixes (names as given to Prefix;
// each list in key order) and the revision the mirror is at: every change
// up to it is in, a later one wakes the Hub's waiters for id after it.
// False while the mirror is not ready.
func (m *Mirror) Read(id string, prefixes ...string) ([][]KV, int64, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	if !m.ready {
		return nil, 0, false
	}
	out := make([][]KV, len(prefixes))
	for i, p := range prefixes {
		out[i] = []KV{}
		under := Prefix(p, id)
		for k, kv := range m.ids[id] {
			if strings.HasPrefix(k, under) {
				out[i] = append(out[i], kv)
			}
		}
		slices.SortFunc(out[i], func(a, b KV) int { return strings.Compare(a.Key, b.Key) })
	}
	return out, m.rev, true
}

// WatchedRev is the revision up to which a watch response shows every
// change in the watched range: its last event's, or, for a progress
// notification (no events; etcd sends one only to a watcher that is
// caught up), the response's. Not the response's revision when it has
// events: a watcher catching up on more than etcd sends at once gets its
// events in chunks, each carrying the store's current revision.
func WatchedRev(resp clientv3.WatchResponse) int64 {
	if n := len(resp.Events); n > 0 {
		return resp.Events[n-1].Kv.ModRevision
	}
	return resp.Header.Revision
}

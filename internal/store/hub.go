package store

import (
	"context"
	"strings"
	"sync"
	"time"
)

// Hub wakes long polls on changes in etcd: one watch per prefix, whatever
// the number of waiters. Each changed key concerns one id (the first path
// element after its prefix: a host's desired/<host>/<vm>, a task's
// tasks/<id>); a waiter waits for a change to its id after a revision.
//
// The hub remembers the revision of each id's last change so that a waiter
// that read at an older revision learns at once that it missed one. When
// it remembers more than maxTracked ids (65,536) it forgets them all and treats
// every wait from before then as changed: a waiter may be woken for
// nothing (and reads again), but never sleeps through a change.
type Hub struct {
	st       *Store
	prefixes []string

	mu      sync.Mutex
	start   int64            // revision the watches started from (0: not up)
	last    map[string]int64 // id -> revision of its last change
	floor   int64            // changes up to floor are forgotten
	waiters map[string][]*waiter
	all     int64 // revision of the last change that concerns every id
	// maxTracked bounds the ids remembered (see Hub).
	maxTracked int
}

// waiter is one wait; a change closes ch, having set ev (the change to
// the id's key that woke it; none when every id was woken).
type waiter struct {
	ch chan struct{}
	ev *Event
}

// NewHub returns a hub over the keys under prefixes (names as given to
// Prefix); Run feeds it.
func (s *Store) NewHub(prefixes ...string) *Hub {
	return &Hub{st: s, prefixes: prefixes, last: map[string]int64{}, waiters: map[string][]*waiter{}, maxTracked: 1 << 16}
}

// Run watches until ctx ends, starting the watches again (and waking every
// waiter) whenever one ends.
func (h *Hub) Run(ctx context.Context) {
	for ctx.Err() == nil {
		rev, err := h.st.Rev(ctx)
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		h.mu.Lock()
		h.start = rev
		h.mu.Unlock()
		// Any change before the watch started counts as new for everyone.
		h.BumpAll(rev)
		wctx, cancel := context.WithCancel(ctx)
		merged := make(chan []Event)
		var ended sync.Once
		done := make(chan struct{})
		for _, p := range h.prefixes {
			go func() {
				for evs := range h.st.Watch(wctx, Prefix(p), rev) {
					select {
					case merged <- evs:
					case <-wctx.Done():
						return
					}
				}
				ended.Do(func() { close(done) })
			}()
		}
		for open := true; open; {
			select {
			case evs := <-merged:
				for i := range evs {
					h.bump(&evs[i])
				}
			case <-done:
				open = false
			}
		}
		cancel() // one watch ended: start them all again
	}
}

func (h *Hub) idOf(key string) string {
	for _, p := range h.prefixes {
		if rest, ok := strings.CutPrefix(key, Prefix(p)); ok {
			id, _, _ := strings.Cut(rest, "/")
			return id
		}
	}
	return ""
}

func (h *Hub) bump(ev *Event) {
	id, rev := h.idOf(ev.Key), ev.Rev
	h.mu.Lock()
	if rev > h.last[id] {
		if _, ok := h.last[id]; !ok && len(h.last) >= h.maxTracked {
			for _, r := range h.last {
				h.floor = max(h.floor, r)
			}
			clear(h.last)
		}
		h.last[id] = rev
	}
	ws := h.waiters[id]
	delete(h.waiters, id)
	h.mu.Unlock()
	for _, w := range ws {
		w.ev = ev
		close(w.ch)
	}
}

// BumpAll wakes every waiter, as if every id changed at rev (e.g. a
// change that concerns every host).
func (h *Hub) BumpAll(rev int64) {
	h.mu.Lock()
	if rev > h.all {
		h.all = rev
	}
	ws := h.waiters
	h.waiters = map[string][]*waiter{}
	h.mu.Unlock()
	for _, l := range ws {
		for _, w := range l {
			close(w.ch)
		}
	}
}

// Version is a number that grows whenever id may have changed, as the
// watches have seen it (0 while they are not up).
func (h *Hub) Version(id string) int64 {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.start == 0 {
		return 0
	}
	return max(h.start, h.last[id], h.all, h.floor)
}

// ChangedSince reports whether id may have changed after revision rev, or
// else returns a channel closed when it does.
func (h *Hub) ChangedSince(id string, rev int64) (bool, <-chan struct{}) {
	changed, w := h.register(id, rev)
	if changed {
		return true, nil
	}
	return false, w.ch
}

func (h *Hub) register(id string, rev int64) (bool, *waiter) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.start == 0 || rev < h.start || rev < h.floor || h.last[id] > rev || h.all > rev {
		return true, nil
	}
	w := &waiter{ch: make(chan struct{})}
	h.waiters[id] = append(h.waiters[id], w)
	return false, w
}

// Wait returns once id may have changed after rev, after d, or when ctx
// ends, whichever comes first. Woken by a change to one of the id's keys,
// it returns that change (the key's value at its revision).
func (h *Hub) Wait(ctx context.Context, id string, rev int64, d time.Duration) *Event {
	changed, w := h.register(id, rev)
	if changed {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-w.ch:
		return w.ev
	case <-t.C:
	case <-ctx.Done():
	}
	// Not woken: take the channel back (a task that never changes again
	// must not keep one per poll).
	h.mu.Lock()
	defer h.mu.Unlock()
	ws := h.waiters[id]
	for i, o := range ws {
		if o == w {
			ws = append(ws[:i], ws[i+1:]...)
			break
		}
	}
	if len(ws) == 0 {
		delete(h.waiters, id)
	} else {
		h.waiters[id] = ws
	}
	return nil
}

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
	full     []string // Prefix(p) of each, for idOf

	mu      sync.Mutex
	start   int64            // revision the watches started from (0: not up)
	last    map[string]int64 // id -> revision of its last change
	floor   int64            // changes up to floor are forgotten
	waiters map[string][]waiter
	all     int64 // revision of the last change that concerns every id
	// maxTracked bounds the ids remembered (see Hub).
	maxTracked int
	// vals keeps the value of each id's last change (KeepValues): two
	// generations of at most maxVals/2 ids each, the older dropped when
	// the newer is full.
	vals, oldVals map[string]hubValue
	maxVals       int
	// through is the revision of the last change the watch delivered:
	// with one prefix, the hub has seen every change before it (the
	// transaction that made it may have more to come).
	through int64
}

// hubValue is the value of a key's change (nil: deleted) and its revision.
type hubValue struct {
	val []byte
	rev int64
}

// SetMaxTracked bounds the ids the hub remembers (65,536 unless set; see
// Hub): fewer, it forgets them sooner (tests lower it). Call it before Run.
func (h *Hub) SetMaxTracked(n int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.maxTracked = n
}

// KeepValues makes the hub keep the values of the last changes of up to
// max ids (those changed most recently), for Latest. The hub must watch
// one prefix, and each id name one key under it (e.g. tasks/<id>). Call
// it before Run.
func (h *Hub) KeepValues(max int) {
	if len(h.prefixes) != 1 {
		panic("store: KeepValues on a hub of more than one prefix")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.maxVals, h.vals, h.oldVals = max, map[string]hubValue{}, map[string]hubValue{}
}

// Latest returns the value (nil: deleted) and revision of the last change
// to id the hub has seen, if it keeps it (KeepValues), and a revision
// through which id did not change after it: the hub has seen every change
// before the revision of the last one it saw (that transaction may have
// more to come), and a key changes once at most per revision. A later
// change may not have reached the hub yet: a waiter after through is
// woken by it.
func (h *Hub) Latest(id string) (val []byte, rev, through int64, ok bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	v, ok := h.vals[id]
	if !ok {
		v, ok = h.oldVals[id]
	}
	// Every change before h.through is in, and id changes once at most
	// per revision: id's next change, if any, is after this.
	return v.val, v.rev, max(v.rev, h.through-1), ok
}

// keep records id's change (mu held).
func (h *Hub) keep(id string, ev Event) {
	if h.maxVals == 0 {
		return
	}
	h.through = max(h.through, ev.Rev)
	if id == "" {
		return
	}
	if _, ok := h.vals[id]; !ok && len(h.vals) >= h.maxVals/2 {
		h.oldVals, h.vals = h.vals, make(map[string]hubValue, len(h.vals))
	}
	h.vals[id] = hubValue{ev.Value, ev.Rev}
}

// waiter is a long poll waiting for a change to its id after rev. A
// poll waiting on several ids has one waiter per id, sharing one wake.
type waiter struct {
	rev  int64
	wake *wake
}

// wake is closed (once) when any of its waiters' ids changes.
type wake struct {
	ch   chan struct{}
	once sync.Once
}

func (w *wake) fire() { w.once.Do(func() { close(w.ch) }) }

// NewHub returns a hub over the keys under prefixes (names as given to
// Prefix); Run feeds it.
func (s *Store) NewHub(prefixes ...string) *Hub {
	full := make([]string, len(prefixes))
	for i, p := range prefixes {
		full[i] = Prefix(p)
	}
	return &Hub{st: s, prefixes: prefixes, full: full, last: map[string]int64{}, waiters: map[string][]waiter{}, maxTracked: 1 << 16}
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
		h.restart(rev)
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
				for _, ev := range evs {
					h.deliver(ev)
				}
			case <-done:
				open = false
			}
		}
		cancel() // one watch ended: start them all again
	}
}

// deliver takes in a change the watch delivered.
func (h *Hub) deliver(ev Event) {
	id := h.idOf(ev.Key)
	h.mu.Lock()
	h.keep(id, ev)
	h.mu.Unlock()
	h.bump(id, ev.Rev)
}

// restart marks the hub's feed (re)started at rev: any change before it
// counts as new for everyone.
func (h *Hub) restart(rev int64) {
	h.mu.Lock()
	h.start = rev
	if h.maxVals > 0 { // changes may have been missed: the values may be stale
		clear(h.vals)
		clear(h.oldVals)
	}
	h.mu.Unlock()
	h.BumpAll(rev)
}

func (h *Hub) idOf(key string) string {
	for _, p := range h.full {
		if rest, ok := strings.CutPrefix(key, p); ok {
			id, _, _ := strings.Cut(rest, "/")
			return id
		}
	}
	return ""
}

func (h *Hub) bump(id string, rev int64) {
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
	// Only the waiters that read before this change: the watch can lag
	// behind reads, and one that read at or after rev has seen it.
	var wake []waiter
	if ws := h.waiters[id]; len(ws) > 0 {
		keep := ws[:0]
		for _, w := range ws {
			if w.rev < rev {
				wake = append(wake, w)
			} else {
				keep = append(keep, w)
			}
		}
		clear(ws[len(keep):])
		if len(keep) == 0 {
			delete(h.waiters, id)
		} else {
			h.waiters[id] = keep
		}
	}
	h.mu.Unlock()
	for _, w := range wake {
		w.wake.fire()
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
	h.waiters = map[string][]waiter{}
	h.mu.Unlock()
	for _, l := range ws {
		for _, w := range l {
			w.wake.fire()
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
	return h.changedSince([]string{id}, []int64{rev})
}

// changedSince reports whether any of ids may have changed after its
// revision in revs, or else returns a channel closed when one does.
func (h *Hub) changedSince(ids []string, revs []int64) (bool, <-chan struct{}) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for i, id := range ids {
		if rev := revs[i]; h.start == 0 || rev < h.start || rev < h.floor || h.last[id] > rev || h.all > rev {
			return true, nil
		}
	}
	w := &wake{ch: make(chan struct{})}
	for i, id := range ids {
		h.waiters[id] = append(h.waiters[id], waiter{rev: revs[i], wake: w})
	}
	return false, w.ch
}

// Wait returns once id may have changed after rev, after d, or when ctx
// ends, whichever comes first.
func (h *Hub) Wait(ctx context.Context, id string, rev int64, d time.Duration) {
	h.WaitAny(ctx, []string{id}, []int64{rev}, d)
}

// WaitAny returns once any of ids may have changed after its revision in
// revs (revs[i] for ids[i]), after d, or when ctx ends, whichever comes
// first.
func (h *Hub) WaitAny(ctx context.Context, ids []string, revs []int64, d time.Duration) {
	changed, ch := h.changedSince(ids, revs)
	if changed {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
		if len(ids) == 1 {
			return // the change that woke it took its one waiter
		}
	case <-t.C:
	case <-ctx.Done():
	}
	// Take the waiters back: those of the ids that did not change are
	// still there (a task that never changes again must not keep one per
	// poll).
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, id := range ids {
		ws := h.waiters[id]
		for i, w := range ws {
			if w.wake.ch == ch {
				ws = append(ws[:i], ws[i+1:]...)
				break
			}
		}
		if len(ws) == 0 {
			delete(h.waiters, id)
		} else {
			h.waiters[id] = ws
		}
	}
}

package store

import "context"

// Deliver feeds h a change to id at rev, as its watch does: to test a
// watch that lags behind reads.
func Deliver(h *Hub, id string, rev int64) { h.bump(id, rev) }

// SingleMembered reports whether SingleMember was called on s.
func SingleMembered(s *Store) bool { return s.local }

// DeliverEvent feeds h a change as its watch does (value included).
func DeliverEvent(h *Hub, ev Event) { h.deliver(ev) }

// Waiting is the number of waiters h holds for id.
func Waiting(h *Hub, id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.waiters[id])
}

// CommitTogether commits txs as one merged commit of g (as if gathered
// together) and returns each one's outcome.
func CommitTogether(g *Group, txs ...*Txn) []error {
	var m merge
	batch := make([]*grouped, len(txs))
	for i, tx := range txs {
		batch[i] = &grouped{ctx: context.Background(), tx: tx, done: make(chan struct{})}
		if !m.add(batch[i], g.maxOps) {
			panic("CommitTogether: transactions share keys")
		}
	}
	g.run(batch, &m)
	errs := make([]error, len(txs))
	for i, it := range batch {
		errs[i] = it.err
	}
	return errs
}

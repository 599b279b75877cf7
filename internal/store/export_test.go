package store

// SetMaxTracked lowers how many ids h remembers, to test forgetting.
func SetMaxTracked(h *Hub, n int) { h.maxTracked = n }

// Waiting is the number of waiters h holds for id.
func Waiting(h *Hub, id string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.waiters[id])
}

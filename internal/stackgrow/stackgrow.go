// Package stackgrow owns one trick: growing a new goroutine's stack once,
// while it is still shallow, before the goroutine runs code that goes
// deep (a request's trip through the embedded etcd's server, JSON's
// reflection).
//
// A goroutine starts with a small stack, and each time it runs out the
// runtime allocates one twice the size and copies the old one over,
// adjusting every frame's pointers; a request handler that reaches etcd's
// storage from an HTTP/2 handler goroutine doubled its stack three or four
// times, each copy deeper than the last (bench/fleet, 5,000 hosts: 5.9% of
// the controller's CPU in runtime.newstack). One frame of Size bytes at
// the top makes the runtime grow the stack in one step, copying only a
// few frames: 4.0% with Grow at the top of every request and every
// create's scratch run, counting the collector shrinking the bigger
// stacks of parked long polls (4.5% with an 8 KB frame: the deep paths
// need more than a 16 KB stack). The price is memory: a 32 KB stack per
// request under way (the collector shrinks idle ones).
package stackgrow

// Size is how much stack Grow makes room for.
const Size = 16 << 10

// Grow makes room for Size bytes of stack below its caller's frame.
//
//go:noinline
func Grow() {
	var buf [Size]byte
	keep(buf[:])
}

// keep uses b so that the compiler keeps buf (and its frame) in Grow.
//
//go:noinline
func keep(b []byte) {
	if len(b) > 0 && b[0] != 0 {
		panic("stackgrow: unreachable")
	}
}

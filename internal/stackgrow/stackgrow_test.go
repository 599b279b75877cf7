package stackgrow

import (
	"sync"
	"testing"
)

// Grow's frame must stay on the stack: moved to the heap (the compiler
// deciding buf escapes), every call would allocate Size bytes and grow
// nothing.
func TestGrowDoesNotAllocate(t *testing.T) {
	if n := testing.AllocsPerRun(100, Grow); n != 0 {
		t.Fatalf("Grow allocates %v times per call, want 0", n)
	}
}

// deep uses about n KB of stack.
//
//go:noinline
func deep(n int) byte {
	var buf [1 << 10]byte
	buf[n%len(buf)] = byte(n)
	if n == 0 {
		return buf[0]
	}
	return deep(n-1) + buf[n%len(buf)]
}

// BenchmarkGoroutine compares a new goroutine going 12 KB deep with and
// without Grow first.
func BenchmarkGoroutine(b *testing.B) {
	for _, grow := range []bool{false, true} {
		name := "plain"
		if grow {
			name = "grow"
		}
		b.Run(name, func(b *testing.B) {
			var wg sync.WaitGroup
			for b.Loop() {
				wg.Add(1)
				go func() {
					defer wg.Done()
					if grow {
						Grow()
					}
					deep(12)
				}()
				wg.Wait()
			}
		})
	}
}

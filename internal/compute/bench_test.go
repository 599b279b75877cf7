package compute_test

import (
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/driver/fake"
)

// BenchmarkCreateToStarted creates and starts b.N VMs through the HTTPS
// API on 10 fake hosts, 8 clients at a time, and reports the latency from
// the create request to STARTED as the controller's task times record it
// (create task queued → start task ended, less the client's gap between
// the two), p50 and p99, plus the client-observed rate.
//
//	go test -run '^$' -bench CreateToStarted -benchtime 1000x ./internal/compute
func BenchmarkCreateToStarted(b *testing.B) {
	host := fake.Config{CPUCount: 4096, MemoryMB: 1 << 22}
	hosts := make([]fake.Config, 10)
	for i := range hosts {
		hosts[i] = host
	}
	c := newCloud(b, "vm 100000 COUNT, vm.cpu 100000 COUNT, vm.memory 100000 GB", hosts...)
	const clients = 8
	lat := make([]time.Duration, b.N)
	var next sync.Mutex
	i := 0
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				next.Lock()
				n := i
				i++
				next.Unlock()
				if n >= b.N {
					return
				}
				ct, err := c.wait(c.cl.CreateVM(ctx, c.project, vmSpec(fmt.Sprintf("b%d", n))))
				if err != nil {
					b.Error(err)
					return
				}
				st, err := c.wait(c.cl.StartVM(ctx, ct.Entity.ID))
				if err != nil {
					b.Error(err)
					return
				}
				lat[n] = time.Duration(ct.EndTime-ct.QueuedTime+st.EndTime-st.QueuedTime) * time.Millisecond
				if n%50 == 0 {
					b.Logf("create %d ms (reserve %d ms), start %d ms", ct.EndTime-ct.QueuedTime, ct.Steps[0].EndTime-ct.QueuedTime, st.EndTime-st.QueuedTime)
				}
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "VMs/s")
	_ = api.VMStarted
}

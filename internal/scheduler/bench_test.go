package scheduler

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/photon-cloud/photon/api"
)

// benchFleet is n hosts of 64 CPUs and 256 GB, partly used, in 8 zones,
// half of them tagged "ssd".
func benchFleet(n int) []Host {
	r := rand.New(rand.NewPCG(1, uint64(n)))
	hs := make([]Host, n)
	zones := []string{"z0", "z1", "z2", "z3", "z4", "z5", "z6", "z7"}
	tagged := []string{"CLOUD", "ssd"}
	plain := []string{"CLOUD"}
	for i := range hs {
		id := fmt.Sprintf("0190a4c2-7e1b-7000-8000-%012d", i)
		h := Host{ID: id, Address: fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255), Zone: zones[i%len(zones)], State: api.HostReady,
			CPUTotal: 64, CPUFree: 64 - r.IntN(48), MemTotalMB: 256 << 10, MemFreeMB: 256<<10 - r.Int64N(192<<10),
			Datastores: []Datastore{{ID: id + ".local", Name: "local", FreeGB: 2000 - float64(r.IntN(1500))}}, Tags: plain}
		if i%2 == 0 {
			h.Tags = tagged
		}
		h.SumDatastores() // as the fleet index holds its hosts
		hs[i] = h
	}
	return hs
}

// BenchmarkPlace times one placement decision (no commit) on 1k, 5k and
// 10k hosts: pack or spread scoring, a strict anti-affinity group with
// members on a tenth of the hosts, half of the hosts infeasible by tag,
// and a full scan without sampling for comparison.
func BenchmarkPlace(b *testing.B) {
	for _, n := range []int{1000, 5000, 10000} {
		hs := benchFleet(n)
		group := func() *Group {
			g := &Group{Name: "web", Policy: AntiAffinity, Scope: ScopeHost, Strict: true, Hosts: map[string]int{}, Zones: map[string]int{}}
			for i := 0; i < n; i += 10 {
				g.Hosts[hs[i].ID]++
				g.Zones[hs[i].Zone]++
			}
			return g
		}
		ssd := []api.LocalitySpec{{Kind: "hostTag", ID: "ssd"}}
		cases := []struct {
			name   string
			req    Request
			sample int
		}{
			{"pack", Request{Strategy: Pack}, DefaultSample},
			{"spread", Request{}, DefaultSample},
			{"spread+antiaffinity", Request{Group: group()}, DefaultSample},
			{"spread+tag50", Request{Affinities: ssd}, DefaultSample},
			{"spread+antiaffinity+tag50", Request{Group: group(), Affinities: ssd}, DefaultSample},
			{"spread+antiaffinity/all", Request{Group: group()}, 0},
		}
		for _, c := range cases {
			b.Run(fmt.Sprintf("hosts=%d/%s", n, c.name), func(b *testing.B) {
				req := c.req
				req.CPU, req.MemoryMB, req.DiskGB = 2, 4096, 20
				f := &Fleet{Hosts: hs, Sample: c.sample}
				b.ReportAllocs()
				b.ResetTimer()
				for range b.N {
					if _, err := Place(f, &req); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
	}
}

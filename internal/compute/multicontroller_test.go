package compute_test

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/agent"
	"github.com/photon-cloud/photon/internal/controller"
	"github.com/photon-cloud/photon/internal/driver/fake"
	"github.com/photon-cloud/photon/internal/hosts"
	"github.com/photon-cloud/photon/internal/photontest"
	"github.com/photon-cloud/photon/internal/scheduler"
)

// stormHost is a simulated host of a storm: what it offers, its own
// overcommit ratios (host metadata; none: the controllers' ratios) and the
// controller (0 or 1) its agent joins.
type stormHost struct {
	cpu   int
	memGB int64
	meta  map[string]string
	ctrl  int
}

// TestMultiControllerStorm: two controllers on one external etcd, hosts
// joined to either, 64 clients split across both controllers' APIs create
// 2,000 VMs ("small": 1 CPU, 1 GB) on hosts that fit 1,500 after
// overcommit. While it runs, a checker reads the hosts, their usage and the
// VMs from etcd in one read (one revision) after every 100 completed
// creates and asserts no host is over capacity × overcommit and each
// host's usage is the sum of the VMs placed on it. At the end exactly
// 1,500 are created and 500 refused for capacity; deleting everything
// leaves nothing held.
func TestMultiControllerStorm(t *testing.T) {
	cpu2 := map[string]string{hosts.MetaCPUOvercommit: "2"}
	mem15 := map[string]string{hosts.MetaMemoryOvercommit: "1.5"}
	// 1,500 places: controllers' CPU overcommit 4, memory none; some hosts
	// override one ratio. Four hosts are bound by memory, two by CPU, so a
	// full fleet refuses with NotEnoughMemoryResource (the majority).
	fleet := []stormHost{
		{cpu: 100, memGB: 200, meta: mem15, ctrl: 0}, // memory 200 × 1.5 = 300
		{cpu: 100, memGB: 200, meta: mem15, ctrl: 0}, // 300
		{cpu: 60, memGB: 512, ctrl: 0},               // CPU 60 × 4 = 240
		{cpu: 100, memGB: 220, ctrl: 1},              // memory 220
		{cpu: 100, memGB: 160, meta: mem15, ctrl: 1}, // memory 160 × 1.5 = 240
		{cpu: 100, memGB: 400, meta: cpu2, ctrl: 1},  // CPU 100 × 2 = 200
	}
	for _, tc := range []struct {
		name                   string
		cpuOvercommit, memOver float64 // the controllers' ratios
		hosts                  []stormHost
		strategy               string
		creates, clients, fits int
		refusal                string // the error code of a create the full fleet refuses
		checkEvery             int    // completed creates between etcd checks
		deleters               int    // clients deleting at the end
	}{
		{name: "spread", cpuOvercommit: 4, memOver: 1, hosts: fleet, strategy: scheduler.Spread,
			creates: 2000, clients: 64, fits: 1500, refusal: "NotEnoughMemoryResource", checkEvery: 100, deleters: 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fleetPlaces(tc.hosts, tc.cpuOvercommit, tc.memOver); got != tc.fits {
				t.Fatalf("the table's fleet fits %d small VMs, not %d", got, tc.fits)
			}
			setup := time.Now()
			etcd := photontest.ExternalEtcd(t)
			ratios := func(c *controller.Config) { c.CPUOvercommit, c.MemoryOvercommit = tc.cpuOvercommit, tc.memOver }
			ctrls := []*photontest.Cloud{photontest.NewController(t, etcd, ratios)}
			ctrls = append(ctrls, ctrls[0].NewPeer(t))
			c := setUp(t, ctrls[0], "vm 100000 COUNT, vm.cpu 100000 COUNT, vm.memory 100000 GB")
			for i, h := range tc.hosts {
				addr := fmt.Sprintf("10.20.0.%d", i+1)
				c.done(t)(c.cl.CreateHost(ctx, &api.HostCreateSpec{Address: addr, Metadata: h.meta}))
				c.agents = append(c.agents, photontest.NewAgent(t, ctrls[h.ctrl], fake.Config{CPUCount: h.cpu, MemoryMB: h.memGB * 1024},
					func(a *agent.Config) { a.Address, a.HeartbeatInterval = addr, time.Second }))
			}
			c.waitHosts(t, len(tc.hosts))
			t.Logf("set up 2 controllers and %d hosts in %v", len(tc.hosts), time.Since(setup).Round(time.Millisecond))
			st := photontest.Store(t, etcd)
			clients := make([]*client.Client, tc.clients)
			for i := range clients {
				clients[i] = ctrls[i%len(ctrls)].NewClient(t, ctrls[0].Token)
			}

			// The checker: one consistent read of etcd after every
			// checkEvery completed creates (kicks coalesce while it reads).
			var during, revisions atomic.Int64 // checks while creates ran; distinct revisions checked
			check := func(when string) *photontest.FleetState {
				s, err := photontest.ReadFleet(ctx, st)
				if err != nil {
					t.Errorf("%s: read etcd: %v", when, err)
					return nil
				}
				if bad := s.Violations(tc.cpuOvercommit, tc.memOver); len(bad) > 0 {
					t.Errorf("%s, etcd revision %d: %d violations:\n%s", when, s.Rev, len(bad), strings.Join(bad[:min(len(bad), 10)], "\n"))
				}
				return s
			}
			kick, stop, checkerDone := make(chan struct{}, 1), make(chan struct{}), make(chan struct{})
			go func() {
				defer close(checkerDone)
				last := int64(0)
				for {
					select {
					case <-stop:
						return
					case <-kick:
						if s := check("during the storm"); s != nil {
							during.Add(1)
							if s.Rev != last {
								revisions.Add(1)
								last = s.Rev
							}
						}
					}
				}
			}()

			var (
				next, completed atomic.Int64
				mu              sync.Mutex
				created         []string
				perCtrl         [2]int
				latency         [2][]time.Duration // per controller, of every create
				refused         int
				other           []string
			)
			start := time.Now()
			var wg sync.WaitGroup
			for i, cl := range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						n := next.Add(1) - 1
						if n >= int64(tc.creates) {
							return
						}
						spec := vmSpec(fmt.Sprintf("vm%d", n))
						spec.PlacementStrategy = tc.strategy
						began := time.Now()
						task, err := waitWith(cl)(cl.CreateVM(ctx, c.project, spec))
						took := time.Since(began)
						var ae *api.Error
						mu.Lock()
						latency[i%len(ctrls)] = append(latency[i%len(ctrls)], took)
						switch {
						case err == nil:
							created = append(created, task.Entity.ID)
							perCtrl[i%len(ctrls)]++
						case errors.As(err, &ae) && ae.Code == tc.refusal:
							refused++
						default:
							other = append(other, err.Error())
						}
						mu.Unlock()
						if completed.Add(1)%int64(tc.checkEvery) == 0 {
							select {
							case kick <- struct{}{}:
							default:
							}
						}
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			close(stop)
			<-checkerDone
			end := check("after the storm")
			t.Logf("%d clients, %d creates for %d places in %v: %d created (%d via controller 0, %d via 1), %d refused %s, %d other; %d etcd checks during the storm at %d revisions",
				tc.clients, tc.creates, tc.fits, elapsed.Round(time.Millisecond), len(created), perCtrl[0], perCtrl[1], refused, tc.refusal, len(other),
				during.Load(), revisions.Load())
			for i, l := range latency {
				slices.Sort(l)
				if len(l) > 0 {
					t.Logf("controller %d: %d creates, latency p50 %v, p99 %v, max %v", i, len(l), l[len(l)/2].Round(time.Millisecond),
						l[len(l)*99/100].Round(time.Millisecond), l[len(l)-1].Round(time.Millisecond))
				}
			}
			if len(created) != tc.fits || refused != tc.creates-tc.fits || len(other) > 0 {
				t.Errorf("created %d, refused %d, other errors %d (want %d, %d, 0): %q", len(created), refused, len(other), tc.fits, tc.creates-tc.fits,
					other[:min(len(other), 5)])
			}
			if perCtrl[0] == 0 || perCtrl[1] == 0 {
				t.Errorf("created per controller %v: both should have placed (one starved by the other?)", perCtrl)
			}
			if during.Load() < 3 {
				t.Errorf("etcd was checked %d times during the storm, want at least 3", during.Load())
			}
			if end != nil {
				t.Logf("after the storm, revision %d: %s", end.Rev, end.Summary(tc.cpuOvercommit, tc.memOver))
				if placed := end.Placed(); placed != tc.fits {
					t.Errorf("VMs holding a host in etcd: %d, want %d", placed, tc.fits)
				}
			}

			start = time.Now()
			c.deleteAll(t, created, tc.deleters, clients...)
			t.Logf("deleted %d VMs in %v", tc.creates, time.Since(start).Round(time.Millisecond))
			if s := check("after deleting everything"); s != nil && (len(s.VMs) != 0 || s.Placed() != 0) {
				t.Errorf("after deleting everything etcd holds %d VMs", len(s.VMs))
			}
		})
	}
}

// fleetPlaces is how many small VMs (1 CPU, 1 GB) hosts fit.
func fleetPlaces(hs []stormHost, cpuR, memR float64) int {
	n := 0
	for _, h := range hs {
		cr, mr := photontest.Overcommit(h.meta, cpuR, memR)
		n += min(int(float64(h.cpu)*cr), int(float64(h.memGB)*mr))
	}
	return n
}

// TestFleetCheck: the storm's etcd check finds what it is there to find.
func TestFleetCheck(t *testing.T) {
	vm := func(host string, cpu int, memMB int64) photontest.StoredVM {
		return photontest.StoredVM{HostID: host, DatastoreID: host + ".local", Reserved: true, Request: scheduler.Request{CPU: cpu, MemoryMB: memMB, DiskGB: 2}}
	}
	for _, tc := range []struct {
		name  string
		meta  map[string]string // host h's
		usage hosts.Usage
		dsGB  float64
		vms   []photontest.StoredVM
		want  []string // substrings, one per violation
	}{
		{name: "within capacity × overcommit", usage: hosts.Usage{CPU: 16, MemoryMB: 4096, VMs: 2}, dsGB: 4,
			vms: []photontest.StoredVM{vm("h", 8, 2048), vm("h", 8, 2048), {HostID: "h", Request: scheduler.Request{CPU: 8}}}},
		{name: "over CPU × overcommit", usage: hosts.Usage{CPU: 17, MemoryMB: 2048, VMs: 2}, dsGB: 4,
			vms: []photontest.StoredVM{vm("h", 9, 1024), vm("h", 8, 1024)}, want: []string{"over CPU: 17 used of 4 × 4 = 16"}},
		{name: "host overcommit overrides", meta: map[string]string{hosts.MetaMemoryOvercommit: "1.5"}, usage: hosts.Usage{CPU: 2, MemoryMB: 6145, VMs: 2}, dsGB: 4,
			vms: []photontest.StoredVM{vm("h", 1, 3072), vm("h", 1, 3073)}, want: []string{"over memory: 6145 MB used of 4096 × 1.5 = 6144 MB"}},
		{name: "usage drifted from the VMs", usage: hosts.Usage{CPU: 1, MemoryMB: 1024, VMs: 1}, dsGB: 2,
			vms:  []photontest.StoredVM{vm("h", 1, 1024), {HostID: "h", DatastoreID: "h.local", Request: scheduler.Request{CPU: 1, MemoryMB: 1024, DiskGB: 2}, Reserved: true}},
			want: []string{"its VMs add up to {CPU:2 MemoryMB:2048 VMs:2}", "datastore h.local usage 2 GB, its VMs' disks add up to 4 GB"}},
		{name: "VM on an unknown host", dsGB: 0, vms: []photontest.StoredVM{vm("gone", 1, 1024)},
			want: []string{"VM vm0 holds unknown host \"gone\""}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &photontest.FleetState{
				Hosts:          map[string]hosts.Record{"h": {Host: api.Host{Address: "h", Metadata: tc.meta, Capacity: api.HostResources{CPUCount: 4, MemoryMB: 4096}}}},
				Usage:          map[string]hosts.Usage{"h": tc.usage},
				Datastores:     map[string]api.Datastore{"h.local": {CapacityGB: 100}},
				DatastoreUsage: map[string]hosts.DatastoreUsage{"h.local": {UsedGB: tc.dsGB}},
				VMs:            map[string]photontest.StoredVM{},
			}
			for i, v := range tc.vms {
				s.VMs[fmt.Sprintf("vm%d", i)] = v
			}
			bad := s.Violations(4, 1)
			t.Logf("%d violations: %q", len(bad), bad)
			if len(bad) != len(tc.want) {
				t.Fatalf("violations %q, want %d: %q", bad, len(tc.want), tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(strings.Join(bad, "\n"), w) {
					t.Errorf("no violation says %q: %q", w, bad)
				}
			}
		})
	}
}

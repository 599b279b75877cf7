package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/driver/fake"
	"github.com/photon-cloud/photon/internal/netplumb"
	"github.com/photon-cloud/photon/internal/store"
)

// runConverge is --converge: the controller in this process, --hosts
// simulated hosts of 1 CPU each, each with a fake network driver
// (netplumb.Fake) and an underlay address, and one VM with a NIC on one
// subnet on each (a host holds one VM, so the VMs spread). Then one more
// host joins, of 3 CPUs, and gets a VM on the subnet: the time from its
// create request until every other host's driver has been given the new
// host's underlay address among the subnet's Peers (Fake.Last, polled).
// Then two more VMs on the new host, one with a NIC (the host already on
// the subnet) and one without; for each of the three creates, the etcd
// keys written (put or deleted, watched) from its request to its task
// ending, by key kind.
func runConverge(ctx context.Context, cfg config) error {
	raiseFileLimit()
	n := cfg.hosts
	if n <= 0 || n > 60000 {
		return errors.New("--hosts: 1 to 60000")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dir, err := os.MkdirTemp("", "photon-converge-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	level := slog.LevelError
	if cfg.verbose {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	c, err := startInProcess(ctx, cfg, dir, log)
	if err != nil {
		return err
	}
	defer c.close()
	cl, err := client.New(c.url, client.WithCACertFile(c.caCert), client.WithToken(c.token), client.WithTimeout(5*time.Minute))
	if err != nil {
		return err
	}
	cfg.vms, cfg.subnets = n+10, 1
	project, subnets, err := setup(ctx, cl, cfg)
	if err != nil {
		return err
	}
	subnet := subnets[0]
	underlay := func(i int) string { return fmt.Sprintf("172.%d.%d.%d", 16+i>>16, (i>>8)&255, i&255) }

	// n hosts of 1 CPU, then n VMs with a NIC, one per host.
	t0 := time.Now()
	fcfg := fake.Config{CPUCount: 1, MemoryMB: 4 << 10, Datastores: []api.DatastoreReport{{Name: "local", CapacityGB: 1000}}}
	drivers, err := fake.NewFleet(n, fcfg)
	if err != nil {
		return err
	}
	nets := make([]*netplumb.Fake, n+1)
	hostLogs := newLogCounts()
	quiet := slog.New(hostLogs)
	if err := parallel(16, n, func(i int) error {
		nets[i] = netplumb.NewFake()
		_, err := startAgent(ctx, cl, c, dir, i, drivers[i], nets[i], underlay(i), cfg, quiet)
		return err
	}); err != nil {
		return err
	}
	if err := waitReady(ctx, cl, n); err != nil {
		return err
	}
	fmt.Printf("%d hosts joined and READY in %.1f s\n", n, time.Since(t0).Seconds())
	t0 = time.Now()
	spec := func(name string, nic bool) *api.VMCreateSpec {
		s := &api.VMCreateSpec{Name: name, Flavor: "bench",
			AttachedDisks: []api.AttachedDiskCreateSpec{{Name: "boot", Kind: api.KindEphemeralDisk, Flavor: "bench-disk", CapacityGB: 1, BootDisk: true}}}
		if nic {
			s.Subnets = []string{subnet}
		}
		return s
	}
	create := func(s *api.VMCreateSpec) (*api.Task, error) {
		t, err := cl.CreateVM(ctx, project, s)
		if err == nil {
			t, err = cl.WaitTask(ctx, t)
		}
		if err == nil {
			err = t.Err()
		}
		return t, err
	}
	if err := parallel(32, n, func(i int) error {
		_, err := create(spec(fmt.Sprintf("vm-%06d", i), true))
		return err
	}); err != nil {
		return err
	}
	fmt.Printf("%d VMs with a NIC created in %.1f s\n", n, time.Since(t0).Seconds())
	// Every host a peer of every other on the subnet.
	peers := func(i int) []string {
		for _, s := range nets[i].Last().Subnets {
			if s.ID == subnet {
				return s.Peers
			}
		}
		return nil
	}
	if err := waitFor(ctx, 5*time.Minute, func() bool {
		for i := range n {
			if len(peers(i)) != n-1 {
				return false
			}
		}
		return true
	}); err != nil {
		return fmt.Errorf("the first %d hosts: %w", n, err)
	}
	fmt.Printf("%d hosts each with %d peers on the subnet %.1f s after the first create\n", n, n-1, time.Since(t0).Seconds())

	// The new host (3 CPUs: the only room left).
	fcfg.CPUCount = 3
	drv, err := fake.New(fcfg)
	if err != nil {
		return err
	}
	nets[n] = netplumb.NewFake()
	newIP := underlay(n)
	if _, err := startAgent(ctx, cl, c, dir, n, drv, nets[n], newIP, cfg, quiet); err != nil {
		return err
	}
	if err := waitReady(ctx, cl, n+1); err != nil {
		return err
	}
	time.Sleep(time.Second) // let the index settle

	w, err := watchWrites(ctx, c.etcd)
	if err != nil {
		return err
	}
	defer w.stop()
	seen := make([]time.Duration, n)
	var done atomic.Int64
	start := time.Now()
	polled := make(chan struct{})
	go func() {
		defer close(polled)
		for done.Load() < int64(n) && ctx.Err() == nil && time.Since(start) < 5*time.Minute {
			for i := range n {
				// The join adds one peer: the list is searched only once
				// it has grown (searching all 1,000 hosts' 999 peers
				// every round took 13% of the process's CPU).
				if p := peers(i); seen[i] == 0 && len(p) >= n && slices.Contains(p, newIP) {
					seen[i] = time.Since(start)
					done.Add(1)
				}
			}
			time.Sleep(100 * time.Microsecond)
		}
	}()
	stopProfiles, err := startProfiles(cfg) // --cpuprofile etc.: the join
	if err != nil {
		return err
	}
	rev0 := w.rev()
	cpu0 := cpuTime()
	t, err := cl.CreateVM(ctx, project, spec("vm-join", true))
	placed := time.Since(start)
	if err != nil {
		return err
	}
	if t, err = cl.WaitTask(ctx, t); err == nil {
		err = t.Err()
	}
	if err != nil {
		return err
	}
	createdAt := time.Since(start)
	<-polled
	if err := stopProfiles(); err != nil {
		return err
	}
	if done.Load() != int64(n) {
		return fmt.Errorf("%d of %d hosts have the new host as a peer after 5 minutes", done.Load(), n)
	}
	slices.Sort(seen)
	fmt.Printf("VM on a new host joining the subnet: request answered (placed) %s, task COMPLETED %s\n", ms(placed), ms(createdAt))
	q := func(p int) string { return ms(seen[min(n-1, n*p/100)]) }
	fmt.Printf("every one of %d hosts programmed with the new host as a peer: first %s, p10 %s, p25 %s, p50 %s, p75 %s, p90 %s, p99 %s, all %s after the request\n",
		n, ms(seen[0]), q(10), q(25), q(50), q(75), q(90), q(99), ms(seen[n-1]))
	fmt.Printf("this process's CPU (controller, etcd, hosts) from the request to the last host: %.2f s\n", (cpuTime() - cpu0).Seconds())
	if b, err := json.Marshal(nets[0].Last().HostNetworkDesired); err == nil {
		fmt.Printf("a host's Networks (sent whole in each desired state): %d bytes; to every host: %.1f MB\n", len(b), float64(len(b)*n)/1e6)
	}
	if s := hostLogs.String(); s != "" {
		fmt.Printf("the hosts logged (from joining on):\n%s", s)
	}
	time.Sleep(500 * time.Millisecond) // the new host's reports after the VM's
	fmt.Printf("etcd writes, VM with a NIC, its host joining the subnet: %s\n", w.since(rev0))
	for _, c := range []struct {
		what, name string
		nic        bool
	}{{"VM with a NIC, its host on the subnet already", "vm-nic", true}, {"VM without a NIC", "vm-no-nic", false}} {
		rev0 := w.rev()
		if _, err := create(spec(c.name, c.nic)); err != nil {
			return err
		}
		time.Sleep(500 * time.Millisecond)
		fmt.Printf("etcd writes, %s: %s\n", c.what, w.since(rev0))
	}
	return nil
}

// parallel runs f(0..n-1) on k goroutines; the first error ends it.
func parallel(k, n int, f func(i int) error) error {
	var next atomic.Int64
	var once sync.Once
	var first error
	var wg sync.WaitGroup
	for range k {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n {
					return
				}
				if err := f(i); err != nil {
					once.Do(func() { first = fmt.Errorf("%d: %w", i, err) })
					next.Store(int64(n))
					return
				}
			}
		}()
	}
	wg.Wait()
	return first
}

func waitFor(ctx context.Context, d time.Duration, ok func() bool) error {
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			return fmt.Errorf("not within %s", d)
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		time.Sleep(5 * time.Millisecond)
	}
	return nil
}

// writeWatch counts the keys written (put or deleted) under store.Root,
// by kind (the key's first segment), with the revision of each.
type writeWatch struct {
	mu     sync.Mutex
	writes []write
	last   int64
	stop   func()
}

type write struct {
	rev  int64
	kind string
}

func watchWrites(ctx context.Context, endpoints []string) (*writeWatch, error) {
	st, err := store.Connect(ctx, endpoints)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	w := &writeWatch{stop: func() { cancel(); st.Close() }}
	g, err := st.Client().Get(ctx, "health-of-the-watch")
	if err != nil {
		w.stop()
		return nil, err
	}
	w.last = g.Header.Revision
	ch := st.Client().Watch(ctx, store.Root, clientv3.WithPrefix(), clientv3.WithRev(w.last+1))
	go func() {
		for r := range ch {
			w.mu.Lock()
			for _, e := range r.Events {
				k := strings.TrimPrefix(string(e.Kv.Key), store.Root)
				kind, _, _ := strings.Cut(k, "/")
				w.writes = append(w.writes, write{e.Kv.ModRevision, kind})
			}
			w.last = max(w.last, r.Header.Revision)
			w.mu.Unlock()
		}
	}()
	return w, nil
}

// rev is the last revision seen.
func (w *writeWatch) rev() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.last
}

// since sums the writes after rev: the keys, the transactions (revisions)
// and the keys by kind.
func (w *writeWatch) since(rev int64) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	kinds := map[string]int{}
	revs := map[int64]bool{}
	keys := 0
	for _, e := range w.writes {
		if e.rev > rev {
			kinds[e.kind]++
			revs[e.rev] = true
			keys++
		}
	}
	var ks []string
	for k, v := range kinds {
		ks = append(ks, fmt.Sprintf("%s %d", k, v))
	}
	sort.Strings(ks)
	return fmt.Sprintf("%d keys in %d transactions (%s)", keys, len(revs), strings.Join(ks, ", "))
}

// Command fleet is Photon's fleet simulator and load generator: it starts
// a controller (`photond controller` with its embedded etcd, as a child
// process; or, with --in-process, inside this process), joins --hosts
// simulated hosts (the fake driver behind the real agent and its protocol)
// to it, then --clients concurrent API clients create --vms VMs, one per
// request or --batch per batch create (and, with --start, start each once
// created; with --start-in-create too, each create boots its VM in its
// one task instead). It reports placements/s, latencies from create to
// placed, created (STOPPED) and STARTED, the controller's
// CPU and RSS, this process's (agents and clients), and the etcd size, and
// ends with
//
//	placed N VMs on H hosts in T s: R placements/s
//
// The controller process and this one share the machine's cores.
//
//	go run ./bench/fleet --hosts 200 --vms 2000
//
// With --converge it measures network convergence instead (converge.go):
// how long until every host of a subnet spanning --hosts hosts has a new
// host as a peer, and the etcd writes of a VM create with and without a
// NIC.
//
//	go run ./bench/fleet --converge --hosts 1000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	_ "net/http/pprof"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/agent"
	"github.com/photon-cloud/photon/internal/controller"
	"github.com/photon-cloud/photon/internal/driver/fake"
	"github.com/photon-cloud/photon/internal/netplumb"
	"github.com/photon-cloud/photon/internal/store"
)

type config struct {
	hosts, vms, clients, waiters   int
	batch                          int
	cpus                           int
	memGB                          int
	start, startInCreate, noStream bool
	heartbeat, fullReport          time.Duration
	sample                         int
	dir                            string
	keep                           bool
	verbose                        bool
	pprof                          string
	cpuprofile, blockprofile       string
	mutexprofile                   string
	inProcess                      bool
	photond                        string
	gogc                           string
	simGOGC                        int
	ctlProfile, ctlTrace           string
	ctlProfileSecs                 int
	ctlHeap                        string
	subnets                        int
	converge                       bool
}

func main() {
	var cfg config
	flag.IntVar(&cfg.hosts, "hosts", 200, "simulated hosts")
	flag.IntVar(&cfg.vms, "vms", 2000, "VMs to create")
	flag.IntVar(&cfg.clients, "clients", 64, "concurrent API clients creating VMs")
	flag.IntVar(&cfg.batch, "batch", 1, "VMs per create request (above 1: batch creates, POST /v1/projects/{id}/vms/batch)")
	flag.IntVar(&cfg.waiters, "waiters", 256, "concurrent waiters, each following one create request's tasks (and starts) with a long poll for many tasks")
	flag.IntVar(&cfg.cpus, "host-cpus", 64, "CPUs per host")
	flag.IntVar(&cfg.memGB, "host-mem-gb", 256, "memory per host, GB")
	flag.BoolVar(&cfg.start, "start", true, "start each VM once created (measure create to STARTED)")
	flag.BoolVar(&cfg.startInCreate, "start-in-create", false, "with --start, each create says start (its one task makes and boots the VM, as photon vm create --start does) instead of a start request once created")
	flag.DurationVar(&cfg.heartbeat, "heartbeat", 10*time.Second, "agent heartbeat interval")
	flag.BoolVar(&cfg.noStream, "no-stream", false, "the simulated hosts poll and report on their own instead of using their streams (the agent protocol before streams)")
	flag.DurationVar(&cfg.fullReport, "full-report", agent.DefaultFullReportInterval, "at least this often an agent's heartbeat is a full report")
	flag.IntVar(&cfg.subnets, "subnets", 0, "subnets (/16s of one router) the VMs get a NIC on, round robin (0: no NIC)")
	flag.IntVar(&cfg.sample, "sample", 0, "feasible hosts a placement scores (0: the controller's default, -1: all)")
	flag.StringVar(&cfg.dir, "data-dir", "", "data dir (default: a temporary one, removed at the end)")
	flag.BoolVar(&cfg.keep, "keep", false, "keep the data dir")
	flag.BoolVar(&cfg.verbose, "v", false, "log the controller's warnings")
	flag.StringVar(&cfg.pprof, "pprof", "", "serve net/http/pprof on this address, e.g. 127.0.0.1:6060")
	flag.StringVar(&cfg.cpuprofile, "cpuprofile", "", "write a CPU profile of the load phase to this file")
	flag.StringVar(&cfg.blockprofile, "blockprofile", "", "write a block profile of the load phase to this file")
	flag.StringVar(&cfg.mutexprofile, "mutexprofile", "", "write a mutex profile of the load phase to this file")
	flag.BoolVar(&cfg.inProcess, "in-process", false, "run the controller in this process (its CPU is then not told apart; profiles cover it)")
	flag.StringVar(&cfg.photond, "photond", "", "the photond binary to run the controller with (default: built from ./cmd/photond)")
	flag.StringVar(&cfg.gogc, "controller-gogc", "", "GOGC for the controller process (default: photond's own)")
	flag.IntVar(&cfg.simGOGC, "gogc", simGOGC, "GOGC for this process (the simulated hosts and the clients; with --in-process the controller too)")
	flag.StringVar(&cfg.ctlProfile, "controller-cpuprofile", "", "write a CPU profile of the controller process (the first --controller-profile-seconds of the load) to this file")
	flag.StringVar(&cfg.ctlTrace, "controller-trace", "", "write an execution trace of the controller process (the first --controller-profile-seconds of the load) to this file (go tool trace)")
	flag.IntVar(&cfg.ctlProfileSecs, "controller-profile-seconds", 20, "how long --controller-cpuprofile and --controller-trace sample")
	flag.StringVar(&cfg.ctlHeap, "controller-heapprofile", "", "write a heap profile of the controller process, taken when every VM is placed (and created or started), to this file")
	flag.BoolVar(&cfg.converge, "converge", false, "measure network convergence instead (converge.go): one VM with a NIC on one subnet on each of --hosts hosts, then a VM on a new host, and the time until every host's network driver has the new host as a peer; and the etcd writes of a VM create with and without a NIC")
	flag.Parse()
	debug.SetGCPercent(cfg.simGOGC)
	if cfg.pprof != "" {
		go func() { _ = http.ListenAndServe(cfg.pprof, nil) }()
	}
	run := run
	if cfg.converge {
		run = runConverge
	}
	if err := run(context.Background(), cfg); err != nil {
		fmt.Fprintln(os.Stderr, "fleet:", err)
		os.Exit(1)
	}
}

// simGOGC is this process's garbage collector target by default. Its
// simulated hosts and clients share the machine's cores with the
// controller; at Go's default (100) the collector took about 18% of their
// CPU (5,000 hosts, 30,000 VMs), CPU the controller then lacks. At 400
// (photond's controllerGOGC too): 0.64 instead of 0.67 ms of this
// process's CPU per VM, RSS 1.5 GB instead of 0.86 (medians of 3 runs).
const simGOGC = 400

// raiseFileLimit lifts the open files limit (inherited by the controller
// process): every simulated host holds connections to the controller, and
// the controller one per host, beyond a default hard limit of 20,000 at
// 10,000 hosts. Raising the hard limit needs root; without it the soft
// limit is already at the hard one (Go raises it at start).
func raiseFileLimit() {
	want := uint64(1 << 20)
	if b, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
		if n, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64); err == nil {
			want = n
		}
	}
	_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &syscall.Rlimit{Cur: want, Max: want})
}

func run(ctx context.Context, cfg config) error {
	raiseFileLimit()
	if cfg.hosts <= 0 || cfg.vms <= 0 || cfg.clients <= 0 || cfg.waiters <= 0 || cfg.batch <= 0 {
		return errors.New("--hosts, --vms, --clients, --waiters and --batch must be positive")
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	dir := cfg.dir
	if dir == "" {
		d, err := os.MkdirTemp("", "photon-fleet-")
		if err != nil {
			return err
		}
		dir = d
		if !cfg.keep {
			defer os.RemoveAll(dir)
		}
	}
	level := slog.LevelError
	if cfg.verbose {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	hostLogs := newLogCounts()
	quiet := slog.New(hostLogs)
	var c *target
	var err error
	if cfg.inProcess {
		c, err = startInProcess(ctx, cfg, dir, log)
	} else {
		c, err = startProcess(ctx, cfg, dir)
	}
	if err != nil {
		return err
	}
	defer c.close()
	newClient := func() (*client.Client, error) {
		return client.New(c.url, client.WithCACertFile(c.caCert), client.WithToken(c.token), client.WithTimeout(5*time.Minute))
	}
	cl, err := newClient()
	if err != nil {
		return err
	}
	project, subnets, err := setup(ctx, cl, cfg)
	if err != nil {
		return err
	}

	// Hosts: fake drivers behind real agents, joined in parallel.
	t0 := time.Now()
	drivers, err := fake.NewFleet(cfg.hosts, fake.Config{CPUCount: cfg.cpus, MemoryMB: int64(cfg.memGB) << 10,
		Datastores: []api.DatastoreReport{{Name: "local", CapacityGB: 100000}}})
	if err != nil {
		return err
	}
	var joinOnce sync.Once
	var joinErr error
	agents := make([]*agent.Agent, cfg.hosts)
	var wg sync.WaitGroup
	next := atomic.Int64{}
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= cfg.hosts {
					return
				}
				a, err := startAgent(ctx, cl, c, dir, i, drivers[i], nil, "", cfg, quiet)
				if err != nil {
					joinOnce.Do(func() { joinErr = fmt.Errorf("host %d: %w", i, err) })
					return
				}
				agents[i] = a
			}
		}()
	}
	wg.Wait()
	if err := joinErr; err != nil {
		return err
	}
	if err := waitReady(ctx, cl, cfg.hosts); err != nil {
		return err
	}
	fmt.Printf("%d hosts joined and READY in %.1f s\n", cfg.hosts, time.Since(t0).Seconds())
	time.Sleep(time.Second) // let the index settle

	clients := make([]*client.Client, (cfg.clients+7)/8)
	for i := range clients {
		if clients[i], err = newClient(); err != nil {
			return err
		}
		// One request first, so each client's HTTP/2 connection is up
		// before its goroutines share it: started together, they would
		// each dial (and TLS-handshake) a connection of their own and
		// close all but one, which measures handshakes, not placements.
		if _, err := clients[i].GetProject(ctx, project); err != nil {
			return err
		}
	}
	// Load.
	stopProfiles, err := startProfiles(cfg)
	if err != nil {
		return err
	}
	cpu0, ccpu0 := cpuTime(), c.cpu()
	onPoll0, alone0, onStream0, streams0 := reports(agents)
	ctlProfile := func() error { return nil }
	if cfg.ctlProfile != "" {
		ctlProfile = c.profile(cfg.ctlProfile, fmt.Sprintf("profile?seconds=%d", cfg.ctlProfileSecs))
	}
	if cfg.ctlTrace != "" {
		prof, trace := ctlProfile, c.profile(cfg.ctlTrace, fmt.Sprintf("trace?seconds=%d", cfg.ctlProfileSecs))
		ctlProfile = func() error { return errors.Join(prof(), trace()) }
	}
	lat := make([]sample, cfg.vms)
	waitq := make(chan []int, cfg.vms/cfg.batch+1) // each create request's VMs placed
	var refused, failed atomic.Int64
	var firstErr atomic.Value
	start := time.Now()
	var created sync.WaitGroup
	next.Store(0)
	for w := range cfg.clients {
		created.Add(1)
		go func() {
			defer created.Done()
			cl := clients[w/8]
			for {
				i := int(next.Add(int64(cfg.batch))) - cfg.batch
				if i >= cfg.vms {
					return
				}
				n := min(cfg.batch, cfg.vms-i)
				spec := api.VMCreateSpec{Name: fmt.Sprintf("vm-%06d", i), Flavor: "bench", Start: cfg.start && cfg.startInCreate,
					AttachedDisks: []api.AttachedDiskCreateSpec{{Name: "boot", Kind: api.KindEphemeralDisk, Flavor: "bench-disk", CapacityGB: 1, BootDisk: true}}}
				if len(subnets) > 0 {
					spec.Subnets = []string{subnets[(i/cfg.batch)%len(subnets)]}
				}
				t := time.Now()
				tasks := make([]*api.Task, n)
				errs := make([]error, n)
				if cfg.batch == 1 {
					tasks[0], errs[0] = cl.CreateVM(ctx, project, &spec)
				} else if b, err := cl.CreateVMs(ctx, project, &api.VMBatchCreateSpec{VMCreateSpec: spec, Count: n}); err != nil {
					for k := range errs {
						errs[k] = err
					}
				} else {
					for k, it := range b.Items {
						if tasks[k] = it.Task; it.Error != nil {
							errs[k] = it.Error
						}
					}
				}
				placed := time.Since(t)
				var follow []int
				for k := range n {
					s := &lat[i+k]
					s.begin = t
					switch task, err := tasks[k], errs[k]; {
					case err != nil:
						failed.Add(1)
						firstErr.CompareAndSwap(nil, err)
					case task.State == api.TaskError:
						refused.Add(1)
						firstErr.CompareAndSwap(nil, task.Err())
					default:
						s.placed, s.task = placed, task
						follow = append(follow, i+k)
					}
				}
				if len(follow) > 0 {
					waitq <- follow
				}
			}
		}()
	}
	var followed sync.WaitGroup
	for w := range cfg.waiters {
		followed.Add(1)
		go func() {
			defer followed.Done()
			cl := clients[w%len(clients)]
			fail := func(err error) {
				failed.Add(1)
				firstErr.CompareAndSwap(nil, err)
			}
			for batch := range waitq {
				// One long poll follows the request's tasks; a VM's
				// time is taken when its task is seen ended.
				tasks := make([]*api.Task, len(batch))
				at := map[string]*sample{}
				for k, i := range batch {
					tasks[k] = lat[i].task
					at[lat[i].task.ID] = &lat[i]
				}
				var starts []*api.Task
				_, err := cl.WaitTasks(ctx, tasks, func(task *api.Task) {
					s := at[task.ID]
					switch {
					case task.Err() != nil:
						fail(task.Err())
					case !cfg.start:
						s.created = time.Since(s.begin)
					case cfg.startInCreate:
						s.started = time.Since(s.begin)
					default: // create, then start
						s.created = time.Since(s.begin)
						if t, err := cl.StartVM(ctx, task.Entity.ID); err != nil {
							fail(err)
						} else {
							starts = append(starts, t)
							at[t.ID] = s
						}
					}
				})
				if err == nil && len(starts) > 0 {
					_, err = cl.WaitTasks(ctx, starts, func(task *api.Task) {
						if task.Err() != nil {
							fail(task.Err())
						} else {
							at[task.ID].started = time.Since(at[task.ID].begin)
						}
					})
				}
				if err != nil {
					fail(err)
				}
			}
		}()
	}
	created.Wait()
	placedAll := time.Since(start)
	close(waitq)
	followed.Wait()
	doneAll := time.Since(start)
	cpu, ccpu := cpuTime()-cpu0, c.cpu()-ccpu0
	if err := stopProfiles(); err != nil {
		return err
	}
	if err := ctlProfile(); err != nil {
		return fmt.Errorf("controller profile: %w", err)
	}
	if cfg.ctlHeap != "" {
		if err := c.profile(cfg.ctlHeap, "heap")(); err != nil {
			return fmt.Errorf("controller heap profile: %w", err)
		}
	}

	var placed, made, started []time.Duration
	var firstPlaced time.Duration = -1
	for _, s := range lat {
		if s.placed > 0 {
			placed = append(placed, s.placed)
			if at := s.begin.Sub(start) + s.placed; firstPlaced < 0 || at < firstPlaced {
				firstPlaced = at
			}
		}
		if s.created > 0 {
			made = append(made, s.created)
		}
		if s.started > 0 {
			started = append(started, s.started)
		}
	}
	dbSize := c.etcdSize(ctx)
	rss, hwm := memory(os.Getpid())
	n := len(placed)
	rate := float64(n) / placedAll.Seconds()
	fmt.Printf("clients %d (%d VMs per create request), waiters %d, hosts %d x %d CPU / %d GB, GOMAXPROCS %d\n",
		cfg.clients, cfg.batch, cfg.waiters, cfg.hosts, cfg.cpus, cfg.memGB, runtime.GOMAXPROCS(0))
	fmt.Printf("placed %d, refused %d, failed %d", n, refused.Load(), failed.Load())
	if err, _ := firstErr.Load().(error); err != nil {
		fmt.Printf(" (first: %v)", err)
	}
	fmt.Println()
	fmt.Printf("time to first placed %s, all placed %s, all created/started %s\n", ms(firstPlaced), ms(placedAll), ms(doneAll))
	fmt.Printf("create -> placed   %s\n", pcts(placed))
	if len(made) > 0 {
		fmt.Printf("create -> STOPPED  %s\n", pcts(made))
	}
	if cfg.start {
		fmt.Printf("create -> STARTED  %s\n", pcts(started))
	}
	if c.pid != 0 {
		crss, chwm := memory(c.pid)
		fmt.Printf("controller (photond, embedded etcd) CPU %.1f s over %.1f s (%.2f cores; %.2f ms per VM), RSS %d MB (peak %d MB), etcd db %d MB\n",
			ccpu.Seconds(), doneAll.Seconds(), ccpu.Seconds()/doneAll.Seconds(), ccpu.Seconds()*1000/float64(max(n, 1)), crss>>20, chwm>>20, dbSize>>20)
		fmt.Printf("agents and clients (this process) CPU %.1f s (%.2f cores), RSS %d MB (peak %d MB)\n",
			cpu.Seconds(), cpu.Seconds()/doneAll.Seconds(), rss>>20, hwm>>20)
	} else {
		fmt.Printf("process CPU %.1f s over %.1f s (%.2f cores; controller, etcd, %d agents and the clients share it), RSS %d MB (peak %d MB), etcd db %d MB\n",
			cpu.Seconds(), doneAll.Seconds(), cpu.Seconds()/doneAll.Seconds(), cfg.hosts, rss>>20, hwm>>20, dbSize>>20)
	}
	onPoll, alone, onStream, streams := reports(agents)
	fmt.Printf("host reports: %d on streams (%d opened), %d rode a long poll, %d went alone (heartbeats included)\n",
		onStream-onStream0, streams-streams0, onPoll-onPoll0, alone-alone0)
	if s := hostLogs.String(); s != "" {
		fmt.Printf("the hosts logged (from joining on):\n%s", s)
	}
	fmt.Printf("placed %d VMs on %d hosts in %.1f s: %.0f placements/s\n", n, cfg.hosts, placedAll.Seconds(), rate)
	return nil
}

// startProfiles starts the profiles asked for; the function it returns
// stops them and writes them out.
func startProfiles(cfg config) (func() error, error) {
	var cpuf *os.File
	if cfg.cpuprofile != "" {
		f, err := os.Create(cfg.cpuprofile)
		if err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
		cpuf = f
	}
	if cfg.blockprofile != "" {
		runtime.SetBlockProfileRate(int(100 * time.Microsecond)) // one sample per 100 µs blocked
	}
	if cfg.mutexprofile != "" {
		runtime.SetMutexProfileFraction(10)
	}
	return func() error {
		if cpuf != nil {
			pprof.StopCPUProfile()
			if err := cpuf.Close(); err != nil {
				return err
			}
		}
		for _, p := range []struct{ name, file string }{{"block", cfg.blockprofile}, {"mutex", cfg.mutexprofile}} {
			if p.file == "" {
				continue
			}
			f, err := os.Create(p.file)
			if err != nil {
				return err
			}
			if err := pprof.Lookup(p.name).WriteTo(f, 0); err != nil {
				f.Close()
				return err
			}
			if err := f.Close(); err != nil {
				return err
			}
		}
		return nil
	}, nil
}

type sample struct {
	begin                    time.Time
	placed, created, started time.Duration
	task                     *api.Task
}

// setup makes a tenant and project with room for everything and flavors
// of 1 CPU, 1 GB and a 1 GB disk.
// setup makes the tenant, project, flavors and (cfg.subnets) subnets.
func setup(ctx context.Context, cl *client.Client, cfg config) (string, []string, error) {
	n := cfg.vms * 2
	items, err := api.ParseLimits(fmt.Sprintf("vm %d COUNT, vm.cpu %d COUNT, vm.memory %d GB, ephemeral-disk %d COUNT, ephemeral-disk.capacity %d GB", n, n, n, n, n))
	if err != nil {
		return "", nil, err
	}
	wait := func(t *api.Task, err error) (*api.Task, error) {
		if err != nil {
			return nil, err
		}
		if t, err = cl.WaitTask(ctx, t); err != nil {
			return nil, err
		}
		return t, t.Err()
	}
	tt, err := wait(cl.CreateTenant(ctx, &api.TenantCreateSpec{Name: "bench", Quota: api.QuotaSpecFromItems(items)}))
	if err != nil {
		return "", nil, err
	}
	pt, err := wait(cl.CreateProject(ctx, tt.Entity.ID, &api.ProjectCreateSpec{Name: "bench", Quota: api.QuotaSpecFromItems(items)}))
	if err != nil {
		return "", nil, err
	}
	for _, f := range []api.FlavorCreateSpec{
		{Name: "bench", Kind: "vm", Cost: []api.QuotaLineItem{{Key: "vm", Value: 1, Unit: "COUNT"}, {Key: "vm.cpu", Value: 1, Unit: "COUNT"}, {Key: "vm.memory", Value: 1, Unit: "GB"}}},
		{Name: "bench-disk", Kind: "ephemeral-disk", Cost: []api.QuotaLineItem{{Key: "ephemeral-disk", Value: 1, Unit: "COUNT"}}},
	} {
		if _, err := wait(cl.CreateFlavor(ctx, &f)); err != nil {
			return "", nil, err
		}
	}
	var subnets []string
	if cfg.subnets > 0 {
		if cfg.subnets > 255 {
			return "", nil, fmt.Errorf("--subnets: at most 255")
		}
		var rt api.Task
		if err := cl.Do(ctx, "POST", "/v1/projects/"+pt.Entity.ID+"/routers", &api.RouterCreateSpec{Name: "bench", PrivateIPCidr: "10.0.0.0/8"}, &rt); err != nil {
			return "", nil, err
		}
		for i := range cfg.subnets {
			var st api.Task
			if err := cl.Do(ctx, "POST", "/v1/routers/"+rt.Entity.ID+"/subnets", &api.SubnetCreateSpec{Name: fmt.Sprintf("s%d", i),
				PrivateIPCidr: fmt.Sprintf("10.%d.0.0/16", i)}, &st); err != nil {
				return "", nil, err
			}
			subnets = append(subnets, st.Entity.ID)
		}
	}
	return pt.Entity.ID, subnets, nil
}

// reports sums the agents' reports accepted (agent.Agent.Reports).
func reports(agents []*agent.Agent) (onPoll, alone, onStream, streams int64) {
	for _, a := range agents {
		p, l := a.Reports()
		onPoll, alone, onStream, streams = onPoll+p, alone+l, onStream+a.StreamReports(), streams+a.Streams()
	}
	return onPoll, alone, onStream, streams
}

// startAgent joins simulated host i; net, if not nil, is its network
// driver, with underlay its underlay address.
func startAgent(ctx context.Context, cl *client.Client, c *target, dir string, i int, drv *fake.Driver, net netplumb.Driver, underlay string, cfg config, log *slog.Logger) (*agent.Agent, error) {
	jt, err := cl.CreateJoinToken(ctx, "")
	if err != nil {
		return nil, err
	}
	adir := filepath.Join(dir, "hosts", fmt.Sprintf("host-%05d", i))
	a, err := agent.New(agent.Config{ControllerURL: c.url, CACertFile: c.caCert, JoinToken: jt.Token, DataDir: adir, Driver: drv,
		Address: fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255), Zone: fmt.Sprintf("zone-%d", i%8),
		HeartbeatInterval: cfg.heartbeat, FullReportInterval: cfg.fullReport, NoStream: cfg.noStream, Log: log,
		Network: net, UnderlayIP: underlay})
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(adir, 0o700); err != nil {
		return nil, err
	}
	if err := a.Join(ctx); err != nil {
		return nil, err
	}
	go func() { _ = a.Run(ctx) }()
	return a, nil
}

func waitReady(ctx context.Context, cl *client.Client, n int) error {
	deadline := time.Now().Add(5 * time.Minute)
	for {
		hs, err := cl.ListHosts(ctx)
		ready := 0
		for _, h := range hs {
			if h.State == api.HostReady {
				ready++
			}
		}
		if err == nil && ready == n {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d of %d hosts READY (%v)", ready, n, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func pcts(d []time.Duration) string {
	if len(d) == 0 {
		return "-"
	}
	slices.Sort(d)
	p := func(q float64) time.Duration { return d[min(len(d)-1, int(q*float64(len(d))))] }
	return fmt.Sprintf("p50 %s  p95 %s  p99 %s  max %s", ms(p(0.50)), ms(p(0.95)), ms(p(0.99)), ms(d[len(d)-1]))
}

func ms(d time.Duration) string {
	if d < 10*time.Second {
		return fmt.Sprintf("%.1f ms", float64(d.Microseconds())/1000)
	}
	return fmt.Sprintf("%.2f s", d.Seconds())
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// memory returns a process's RSS and peak RSS in bytes.
func memory(pid int) (rss, hwm int64) {
	b, _ := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	for _, l := range strings.Split(string(b), "\n") {
		var v int64
		if _, err := fmt.Sscanf(l, "VmRSS: %d kB", &v); err == nil {
			rss = v << 10
		}
		if _, err := fmt.Sscanf(l, "VmHWM: %d kB", &v); err == nil {
			hwm = v << 10
		}
	}
	return rss, hwm
}

// target is the controller under load: its URL and credentials, and
// how to measure it.
type target struct {
	url, caCert, token string
	pid                int      // the photond process (0: in this process)
	etcd               []string // in process: the etcd endpoints
	dataDir            string   // the controller's data dir
	pprof              string   // the controller process's profiler address
	close              func()
}

// profile fetches a profile of the controller process (name: the path
// under /debug/pprof/, e.g. "heap", "profile?seconds=20") into file; the
// returned function waits for it.
func (t *target) profile(file string, name string) func() error {
	if t.pprof == "" {
		return func() error { return errors.New("controller profiles need the controller in its own process") }
	}
	done := make(chan error, 1)
	go func() {
		resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/%s", t.pprof, name))
		if err != nil {
			done <- err
			return
		}
		defer resp.Body.Close()
		f, err := os.Create(file)
		if err == nil {
			_, err = io.Copy(f, resp.Body)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		done <- err
	}()
	return func() error { return <-done }
}

// startInProcess runs the controller in this process.
func startInProcess(ctx context.Context, cfg config, dir string, log *slog.Logger) (*target, error) {
	c, err := controller.Start(ctx, controller.Config{DataDir: dir, Listen: "127.0.0.1:0", Log: log,
		HeartbeatTimeout: 6 * cfg.heartbeat, HostTimeout: 10 * time.Minute, PlacementSample: cfg.sample})
	if err != nil {
		return nil, err
	}
	tok, err := os.ReadFile(filepath.Join(dir, controller.AdminTokenFile))
	if err != nil {
		c.Close()
		return nil, err
	}
	return &target{url: c.URL, caCert: c.CACert, token: strings.TrimSpace(string(tok)), etcd: c.Etcd, dataDir: dir,
		close: func() { c.Close() }}, nil
}

// startProcess runs `photond controller` in dir/controller and waits
// until it serves.
func startProcess(ctx context.Context, cfg config, dir string) (*target, error) {
	bin := cfg.photond
	if bin == "" {
		bin = filepath.Join(dir, "photond")
		build := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/photond")
		if out, err := build.CombinedOutput(); err != nil {
			return nil, fmt.Errorf("build photond (run from the module root, or pass --photond): %v\n%s", err, out)
		}
	}
	cdir := filepath.Join(dir, "controller")
	args := []string{"controller", "--data-dir", cdir, "--listen", "127.0.0.1:0",
		"--heartbeat-timeout", (6 * cfg.heartbeat).String(), "--host-timeout", "10m"}
	if cfg.sample != 0 {
		args = append(args, "--placement-sample", strconv.Itoa(cfg.sample))
	}
	var pprofAddr string
	if cfg.ctlProfile != "" || cfg.ctlTrace != "" || cfg.ctlHeap != "" {
		ln, err := net.Listen("tcp", "127.0.0.1:0") // a free port for its profiler
		if err != nil {
			return nil, err
		}
		pprofAddr = ln.Addr().String()
		ln.Close()
		args = append(args, "--pprof-listen", pprofAddr)
	}
	cmd := exec.Command(bin, args...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL} // never outlive the benchmark
	if cfg.gogc != "" {
		cmd.Env = append(os.Environ(), "GOGC="+cfg.gogc)
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if cfg.verbose {
		cmd.Stderr = os.Stderr
	}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
	}
	// The first line of its output: "Photon controller serving at URL".
	urlc := make(chan string, 1)
	go func() {
		b := make([]byte, 4096)
		var acc []byte
		for {
			n, err := out.Read(b)
			acc = append(acc, b[:n]...)
			if i := strings.IndexByte(string(acc), '\n'); i >= 0 && urlc != nil {
				f := strings.Fields(string(acc[:i]))
				urlc <- f[len(f)-1]
				urlc = nil
			}
			if err != nil {
				return
			}
		}
	}()
	var url string
	select {
	case url = <-urlc:
	case <-time.After(2 * time.Minute):
		stop()
		return nil, errors.New("photond controller did not start within 2 minutes")
	}
	tok, err := os.ReadFile(filepath.Join(cdir, controller.AdminTokenFile))
	if err != nil {
		stop()
		return nil, err
	}
	return &target{url: url, caCert: filepath.Join(cdir, "ca.crt"), token: strings.TrimSpace(string(tok)), pid: cmd.Process.Pid,
		dataDir: cdir, close: stop, pprof: pprofAddr}, nil
}

// cpu is the controller process's CPU time so far (0 in process: the
// process's own figure covers it).
func (t *target) cpu() time.Duration {
	if t.pid == 0 {
		return 0
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", t.pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which is in parentheses: utime and
	// stime are the 12th and 13th, in clock ticks (100 per second).
	s := string(b)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(ut+st) * (time.Second / 100)
}

// etcdSize is the size of the controller's etcd database.
func (t *target) etcdSize(ctx context.Context) int64 {
	if len(t.etcd) > 0 {
		st, err := store.Connect(ctx, t.etcd)
		if err == nil {
			defer st.Close()
			if s, err := st.Client().Status(ctx, t.etcd[0]); err == nil {
				return s.DbSize
			}
		}
	}
	fi, err := os.Stat(filepath.Join(t.dataDir, "etcd", "member-data", "member", "snap", "db"))
	if err != nil {
		return 0
	}
	return fi.Size()
}

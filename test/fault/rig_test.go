package fault_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/controller"
	"github.com/photon-cloud/photon/internal/driver/fake"
	"github.com/photon-cloud/photon/internal/photontest"
	"github.com/photon-cloud/photon/internal/store"
)

var ctx = context.Background()

// rigConfig shapes a rig: short timeouts keep the suite short.
type rigConfig struct {
	heartbeat time.Duration // hosts' heartbeat timeout (lease TTL)
	limits    store.Limits  // the store's bounds (OpTimeout: a request's bound on waiting for etcd)
	etcdArgs  []string      // more etcd flags
	proxy     bool          // reach etcd through a delaying proxy
	hosts     int
}

// rig is a controller in this process and fake hosts on an etcd process.
type rig struct {
	cfg   rigConfig
	etcd  *photontest.EtcdProcess
	proxy *delayProxy
	c     *photontest.Cloud
	cl    *client.Client
	log   *logLines
	// project is where the load creates VMs.
	project string
	faults  int
}

func newRig(t *testing.T, cfg rigConfig) *rig {
	t.Helper()
	r := &rig{cfg: cfg, log: &logLines{}}
	r.etcd = photontest.StartEtcd(t, photontest.EtcdOptions{Args: cfg.etcdArgs})
	endpoint := r.etcd.Endpoint
	if cfg.proxy {
		r.proxy = newDelayProxy(t, strings.TrimPrefix(endpoint, "http://"))
		endpoint = "http://" + r.proxy.Addr()
	}
	r.c = photontest.NewController(t, endpoint, func(c *controller.Config) {
		c.HeartbeatTimeout = cfg.heartbeat
		c.HostTimeout = 20 * time.Second
		c.StoreLimits = cfg.limits
		c.Log = slog.New(slog.NewTextHandler(io.MultiWriter(r.log, testLogOut()), &slog.HandlerOptions{Level: slog.LevelInfo}))
	})
	r.cl = r.c.NewClient(t, r.c.Token)
	for range cfg.hosts {
		photontest.NewAgent(t, r.c, fake.Config{CPUCount: 512, MemoryMB: 1 << 20})
	}
	r.waitHostsReady(t, 20*time.Second)
	items, err := api.ParseLimits("vm 100000 COUNT, vm.cpu 100000 COUNT, vm.memory 100000 GB, ephemeral-disk 100000 COUNT")
	if err != nil {
		t.Fatal(err)
	}
	done := photontest.Done(t, ctx, r.cl)
	tt := done(r.cl.CreateTenant(ctx, &api.TenantCreateSpec{Name: "base", Quota: api.QuotaSpecFromItems(items)}))
	pt := done(r.cl.CreateProject(ctx, tt.Entity.ID, &api.ProjectCreateSpec{Name: "base", Quota: api.QuotaSpecFromItems(items)}))
	r.project = pt.Entity.ID
	for _, f := range []api.FlavorCreateSpec{
		{Name: "small", Kind: "vm", Cost: []api.QuotaLineItem{{Key: "vm", Value: 1, Unit: "COUNT"}, {Key: "vm.cpu", Value: 1, Unit: "COUNT"}, {Key: "vm.memory", Value: 1, Unit: "GB"}}},
		{Name: "eph", Kind: "ephemeral-disk", Cost: []api.QuotaLineItem{{Key: "ephemeral-disk", Value: 1, Unit: "COUNT"}}},
	} {
		done(r.cl.CreateFlavor(ctx, &f))
	}
	// The scheduler's view of the fleet follows the hosts' records by
	// watch: wait until it places.
	spec, _ := json.Marshal(vmSpec("dry"))
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		a := r.raw("POST", "/v1/projects/"+r.project+"/vms?dryRun=true", string(spec))
		if a.status == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a VM does not place: %d %+v %v", a.status, a.body, a.err)
		}
	}
	return r
}

// testLogOut is where the controller's log goes besides the rig's
// record: stderr with PHOTON_TEST_LOG set.
func testLogOut() io.Writer {
	if os.Getenv("PHOTON_TEST_LOG") != "" {
		return os.Stderr
	}
	return io.Discard
}

func vmSpec(name string) *api.VMCreateSpec {
	return &api.VMCreateSpec{Name: name, Flavor: "small", AttachedDisks: []api.AttachedDiskCreateSpec{
		{Name: "boot", Kind: "ephemeral-disk", Flavor: "eph", CapacityGB: 1, BootDisk: true}}}
}

// waitHostsReady waits until every host is READY; it returns how long
// that took, or fails the test past within.
func (r *rig) waitHostsReady(t *testing.T, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		hs, err := r.cl.ListHosts(ctx)
		ready := 0
		for _, h := range hs {
			if h.State == api.HostReady {
				ready++
			}
		}
		if err == nil && ready == r.cfg.hosts && len(hs) == r.cfg.hosts {
			return time.Since(start)
		}
		if time.Since(start) > within {
			var states []string
			for _, h := range hs {
				states = append(states, h.Address+" "+h.State+" "+h.Reason)
			}
			t.Fatalf("%d of %d hosts READY %v after etcd returned (want within %v): %v %v", ready, r.cfg.hosts, time.Since(start).Round(time.Millisecond), within, states, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// untilAnswered measures how long after now a request first succeeds.
func (r *rig) untilAnswered(t *testing.T, within time.Duration, req func() error) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		err := req()
		if err == nil {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("no success within %v of etcd's return: %v", within, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// logLines is the controller's log, kept to count lines.
type logLines struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logLines) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// count is the number of lines holding s.
func (l *logLines) count(s string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for _, line := range strings.Split(l.b.String(), "\n") {
		if strings.Contains(line, s) {
			n++
		}
	}
	return n
}

// outcome is what one request got.
type outcome struct {
	kind    string
	start   time.Time
	latency time.Duration
	status  int    // HTTP status; 0: no status (reset, timeout)
	err     string // the error, if any
	hdr     bool   // a 503 had Retry-After (checked on raw requests only)
}

// ack is a write the API acknowledged (2xx): it must be found after.
type ack struct {
	kind, id, task string
}

// load runs clients against the API and records every request.
type load struct {
	r       *rig
	mu      sync.Mutex
	out     []outcome
	acks    []ack
	stop    chan struct{}
	wg      sync.WaitGroup
	writes  bool // creates (not only reads)
	seq     atomic.Int64
	tenants map[int][]string // per worker: tenants it made
}

// startLoad runs workers clients, each creating tenants, projects in its
// tenants and VMs in the rig's project, and listing tenants, in turn.
func (r *rig) startLoad(t *testing.T, workers int) *load {
	l := &load{r: r, stop: make(chan struct{}), writes: true, tenants: map[int][]string{}}
	for w := range workers {
		cl, err := client.New(r.c.URL, client.WithCACertFile(r.c.CACert), client.WithToken(r.c.Token), client.WithTimeout(60*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			for i := 0; ; i++ {
				select {
				case <-l.stop:
					return
				case <-time.After(30 * time.Millisecond):
				}
				l.step(cl, w, i)
			}
		}()
	}
	return l
}

func (l *load) step(cl *client.Client, w, i int) {
	n := l.seq.Add(1)
	items := []api.QuotaLineItem{{Key: "vm", Value: 10, Unit: "COUNT"}}
	switch i % 4 {
	case 0:
		l.call("tenant", func() (*api.Task, error) {
			return cl.CreateTenant(ctx, &api.TenantCreateSpec{Name: fmt.Sprintf("t%d", n), Quota: api.QuotaSpecFromItems(items)})
		}, w)
	case 1:
		l.mu.Lock()
		ts := l.tenants[w]
		l.mu.Unlock()
		if len(ts) == 0 {
			return
		}
		tenant := ts[len(ts)-1]
		l.call("project", func() (*api.Task, error) {
			return cl.CreateProject(ctx, tenant, &api.ProjectCreateSpec{Name: fmt.Sprintf("p%d", n), Quota: api.QuotaSpecFromItems(items)})
		}, w)
	case 2:
		l.call("vm", func() (*api.Task, error) { return cl.CreateVM(ctx, l.r.project, vmSpec(fmt.Sprintf("vm%d", n))) }, w)
	case 3:
		l.call("list", func() (*api.Task, error) {
			_, err := cl.ListTenants(ctx, "")
			return nil, err
		}, w)
	}
}

// call makes one request and records it; an acknowledged create is
// noted with its entity and task.
func (l *load) call(kind string, f func() (*api.Task, error), w int) {
	start := time.Now()
	task, err := f()
	o := outcome{kind: kind, start: start, latency: time.Since(start), status: statusOf(err)}
	if err != nil {
		o.err = err.Error()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.out = append(l.out, o)
	if err == nil && task != nil {
		l.acks = append(l.acks, ack{kind: kind, id: task.Entity.ID, task: task.ID})
		if kind == "tenant" {
			l.tenants[w] = append(l.tenants[w], task.Entity.ID)
		}
	}
}

// statusOf is the HTTP status of an SDK call's outcome: 0 when there was
// none (a reset stream, a timeout).
func statusOf(err error) int {
	if err == nil {
		return 200
	}
	var ae *api.Error
	if errors.As(err, &ae) && ae.HTTPStatus != 0 {
		return ae.HTTPStatus
	}
	return 0
}

func (l *load) halt() {
	close(l.stop)
	l.wg.Wait()
}

// report is the counts of one test.
type report struct {
	name                 string
	faults               int
	requests, ok, unavai int
	acked, lost          int
	maxLatency           time.Duration
	recover              []time.Duration // from etcd's return to the first 2xx
	hostsReady           []time.Duration // from etcd's return to every host READY
	extra                string
}

func (rp *report) String() string {
	return fmt.Sprintf("%s: faults injected %d, requests %d (2xx %d, 503 %d), acknowledged writes %d, lost %d, max latency %v, recovery after etcd returned %v, hosts READY after %v %s",
		rp.name, rp.faults, rp.requests, rp.ok, rp.unavai, rp.acked, rp.lost, rp.maxLatency.Round(time.Millisecond), rounded(rp.recover), rounded(rp.hostsReady), rp.extra)
}

func rounded(ds []time.Duration) []time.Duration {
	out := make([]time.Duration, len(ds))
	for i, d := range ds {
		out[i] = d.Round(time.Millisecond)
	}
	return out
}

// publish logs the counts (go test -v) and appends them to
// $PHOTON_FAULT_REPORT if set.
func (rp *report) publish(t *testing.T) {
	t.Log(rp.String())
	if p := os.Getenv("PHOTON_FAULT_REPORT"); p != "" {
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err == nil {
			fmt.Fprintln(f, rp.String())
			f.Close()
		}
	}
}

// check checks what the load saw and what it left: every answer had a
// status and none was a 5xx other than 503; none took longer than bound;
// every acknowledged create is there (its task done, a completed create's
// object present); usage is exact (hosts, datastores, every project); no
// task is left unfinished.
func (l *load) check(t *testing.T, bound time.Duration, rp *report) {
	t.Helper()
	l.mu.Lock()
	outs, acks := l.out, l.acks
	l.mu.Unlock()
	rp.requests += len(outs)
	var bad []string
	for _, o := range outs {
		rp.maxLatency = max(rp.maxLatency, o.latency)
		switch {
		case o.status >= 200 && o.status < 300:
			rp.ok++
		case o.status == 503:
			rp.unavai++
		}
		if o.status == 0 || (o.status >= 500 && o.status != 503) {
			bad = append(bad, fmt.Sprintf("%s at %s: status %d after %v: %s", o.kind, o.start.Format("15:04:05.000"), o.status, o.latency.Round(time.Millisecond), o.err))
		}
		if o.latency > bound {
			bad = append(bad, fmt.Sprintf("%s at %s took %v (bound %v): status %d %s", o.kind, o.start.Format("15:04:05.000"), o.latency.Round(time.Millisecond), bound, o.status, o.err))
		}
	}
	if len(bad) > 0 {
		t.Errorf("%d bad answers of %d:\n%s", len(bad), len(outs), strings.Join(bad[:min(len(bad), 20)], "\n"))
	}
	l.r.checkState(t, acks, rp)
}

// checkState checks what the cloud holds against what was acknowledged.
func (r *rig) checkState(t *testing.T, acks []ack, rp *report) {
	t.Helper()
	// No task left unfinished (VM creates wait for their hosts).
	deadline := time.Now().Add(45 * time.Second)
	for {
		open, err := photontest.UnfinishedTasks(ctx, r.cl)
		if err == nil && len(open) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("tasks unfinished 45 s after the load: %d (%v)", len(open), err)
			for _, tk := range open[:min(len(open), 5)] {
				t.Logf("unfinished: %s %s %s %s", tk.ID, tk.Operation, tk.Entity.Kind, tk.State)
			}
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	rp.acked += len(acks)
	projects := []string{r.project}
	for _, a := range acks {
		task, err := r.cl.GetTask(ctx, a.task)
		if err != nil {
			rp.lost++
			t.Errorf("acknowledged %s create %s: its task %s: %v", a.kind, a.id, a.task, err)
			continue
		}
		if task.State != api.TaskCompleted {
			continue // refused after the answer (e.g. for want of a host): not a write lost
		}
		switch a.kind {
		case "tenant":
			_, err = r.cl.GetTenant(ctx, a.id)
		case "project":
			_, err = r.cl.GetProject(ctx, a.id)
			projects = append(projects, a.id)
		case "vm":
			_, err = r.cl.GetVM(ctx, a.id)
		}
		if err != nil {
			rp.lost++
			t.Errorf("acknowledged %s %s (task %s COMPLETED) is gone: %v", a.kind, a.id, a.task, err)
		}
	}
	fs, err := photontest.ReadFleet(ctx, r.c.Server.Store)
	if err != nil {
		t.Fatalf("read the fleet: %v", err)
	}
	if bad := fs.Violations(1, 1); len(bad) > 0 {
		t.Errorf("fleet: %d violations:\n%s", len(bad), strings.Join(bad[:min(len(bad), 10)], "\n"))
	}
	for _, p := range projects {
		bad, err := photontest.ProjectUsageViolations(ctx, r.cl, fs, p)
		if err != nil || len(bad) > 0 {
			t.Errorf("project %s usage: %v %v", p, bad, err)
		}
	}
}

// delayProxy is a TCP proxy that delays every chunk, each way, by its
// delay (in flight chunks overlap: latency, not less throughput).
type delayProxy struct {
	ln    net.Listener
	to    string
	delay atomic.Int64
}

func newDelayProxy(t *testing.T, to string) *delayProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &delayProxy{ln: ln, to: to}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go p.serve(c)
		}
	}()
	return p
}

func (p *delayProxy) Addr() string { return p.ln.Addr().String() }

// SetDelay sets the delay of chunks read from now on.
func (p *delayProxy) SetDelay(d time.Duration) { p.delay.Store(int64(d)) }

func (p *delayProxy) serve(c net.Conn) {
	u, err := net.Dial("tcp", p.to)
	if err != nil {
		c.Close()
		return
	}
	go p.pipe(u, c)
	p.pipe(c, u)
}

// pipe copies from src to dst, each chunk written its delay after it was
// read.
func (p *delayProxy) pipe(dst, src net.Conn) {
	type chunk struct {
		b  []byte
		at time.Time
	}
	ch := make(chan chunk, 1024)
	go func() {
		defer close(ch)
		for {
			b := make([]byte, 32<<10)
			n, err := src.Read(b)
			if n > 0 {
				ch <- chunk{b[:n], time.Now().Add(time.Duration(p.delay.Load()))}
			}
			if err != nil {
				return
			}
		}
	}()
	for c := range ch {
		time.Sleep(time.Until(c.at))
		if _, err := dst.Write(c.b); err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
}

// quantiles is the 50th and 99th percentile of ds.
func quantiles(ds []time.Duration) (time.Duration, time.Duration) {
	if len(ds) == 0 {
		return 0, 0
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2], s[len(s)*99/100]
}

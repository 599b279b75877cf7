package agent_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/agent"
	"github.com/photon-cloud/photon/internal/driver"
	"github.com/photon-cloud/photon/internal/driver/fake"
	"github.com/photon-cloud/photon/internal/imagecache"
	"github.com/photon-cloud/photon/internal/photontest"
)

// startAgent joins a fake host (8 CPUs, 16 GB, datastore "local") with the
// agent's default image cache in dir/images, and runs it until the test
// ends.
func startAgent(t *testing.T, c *photontest.Cloud, dir, address string) *agent.Agent {
	t.Helper()
	return startAgentBeating(t, c, dir, address, 200*time.Millisecond)
}

// startAgentBeating is startAgent with full reports every heartbeat.
func startAgentBeating(t *testing.T, c *photontest.Cloud, dir, address string, heartbeat time.Duration, opts ...func(*agent.Config)) *agent.Agent {
	t.Helper()
	drv, err := fake.New(fake.Config{CPUCount: 8, MemoryMB: 16384, DataDir: filepath.Join(dir, "fake")})
	if err != nil {
		t.Fatal(err)
	}
	jt, err := c.Server.Hosts.NewJoinToken(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	cfg := agent.Config{ControllerURL: c.URL, CACertFile: c.CACert, JoinToken: jt.Token, DataDir: dir,
		Driver: drv, Address: address, HeartbeatInterval: heartbeat, Log: photontest.Logger(t)}
	for _, o := range opts {
		o(&cfg)
	}
	a, err := agent.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	if err := a.Join(ctx); err != nil {
		cancel()
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return a
}

// newProject makes a tenant and a project with a quota of n VMs (1 CPU
// and 1 GB each) and the flavors "small" (such a VM) and "eph" (a disk).
func newProject(ctx context.Context, t *testing.T, c *photontest.Cloud, wait func(*api.Task, error) *api.Task, n int) string {
	t.Helper()
	lim, err := api.ParseLimits(fmt.Sprintf("vm %d COUNT, vm.cpu %d COUNT, vm.memory %d GB", n, n, n))
	if err != nil {
		t.Fatal(err)
	}
	cl := c.Client
	tt := wait(cl.CreateTenant(ctx, &api.TenantCreateSpec{Name: "t", Quota: api.QuotaSpecFromItems(lim)}))
	project := wait(cl.CreateProject(ctx, tt.Entity.ID, &api.ProjectCreateSpec{Name: "p", Quota: api.QuotaSpecFromItems(lim)})).Entity.ID
	for _, f := range []api.FlavorCreateSpec{
		{Name: "small", Kind: "vm", Cost: []api.QuotaLineItem{{Key: "vm", Value: 1, Unit: "COUNT"}, {Key: "vm.cpu", Value: 1, Unit: "COUNT"}, {Key: "vm.memory", Value: 1, Unit: "GB"}}},
		{Name: "eph", Kind: "ephemeral-disk", Cost: []api.QuotaLineItem{{Key: "ephemeral-disk", Value: 1, Unit: "COUNT"}}},
	} {
		wait(cl.CreateFlavor(ctx, &f))
	}
	return project
}

// vmSpec is a VM of flavor "small" with a boot disk of flavor "eph".
func vmSpec(name string) *api.VMCreateSpec {
	return &api.VMCreateSpec{Name: name, Flavor: "small",
		AttachedDisks: []api.AttachedDiskCreateSpec{{Name: "boot", Kind: "ephemeral-disk", Flavor: "eph", BootDisk: true}}}
}

// newController starts a controller for a test of at most 2 minutes, and
// returns what waits for its tasks.
func newController(t *testing.T) (context.Context, *photontest.Cloud, func(*api.Task, error) *api.Task) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	c := photontest.NewController(t, "")
	return ctx, c, photontest.Done(t, ctx, c.Client)
}

// TestReportsCachedImages: an agent reports the images complete in its
// cache; the controller stores them and the fleet index counts them, so a
// placement of a VM from that image prefers the host (image locality); an
// image removed from the cache stops counting after the next report.
func TestReportsCachedImages(t *testing.T) {
	ctx, c, wait := newController(t)
	cl := c.Client
	content := bytes.Repeat([]byte("photon-image-"), 1000)
	sum := sha256.Sum256(content)
	img := wait(cl.UploadImage(ctx, bytes.NewReader(content), int64(len(content)),
		client.ImageUpload{Name: "disk", ReplicationType: api.ReplicationOnDemand, FileName: "disk.raw"})).Entity.ID
	project := newProject(ctx, t, c, wait, 10)

	dirA := t.TempDir()
	a := startAgent(t, c, dirA, "10.0.9.1")
	b := startAgent(t, c, t.TempDir(), "10.0.9.2")
	reported := func(host string, want ...string) {
		t.Helper()
		for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
			l, err := c.Server.Hosts.Images(ctx, host)
			if err == nil && slices.Equal(l, want) {
				return
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("host %s reports images %q, %v; want %q", host, l, err, want)
			}
		}
	}
	reported(a.HostID())
	reported(b.HostID())

	// A second cache on A's directory puts the image in place as A's own
	// would (fetched and verified), behind the agent's back.
	cache, err := imagecache.New(filepath.Join(dirA, "images"), func(context.Context, string) (io.ReadCloser, error) {
		return io.NopCloser(bytes.NewReader(content)), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cache.Get(ctx, "local", img, hex.EncodeToString(sum[:])); err != nil {
		t.Fatal(err)
	}
	reported(a.HostID(), img)
	reported(b.HostID())

	// Where would a VM of the image go? The dry run scores both hosts.
	scores := func() (string, map[string]float64) {
		t.Helper()
		spec := vmSpec("vm")
		spec.SourceImageID = img
		var pv api.PlacementPreview
		if err := cl.Do(ctx, http.MethodPost, "/v1/projects/"+project+"/vms?dryRun=true", spec, &pv); err != nil {
			t.Fatal(err)
		}
		m := map[string]float64{}
		for _, cand := range pv.Candidates {
			m[cand.HostID] = cand.Score
		}
		return pv.HostID, m
	}
	eventually := func(what string, ok func(chosen string, score map[string]float64) bool) {
		t.Helper()
		for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
			chosen, score := scores()
			if ok(chosen, score) {
				t.Logf("%s: chose %s, scores %v", what, chosen, score)
				return
			}
			if time.Since(start) > 10*time.Second {
				t.Fatalf("%s: chose %s, scores %v (A %s, B %s)", what, chosen, score, a.HostID(), b.HostID())
			}
		}
	}
	eventually("A holds the image", func(chosen string, score map[string]float64) bool {
		return chosen == a.HostID() && len(score) == 2 && score[a.HostID()] > score[b.HostID()]+0.05
	})
	for range 10 {
		if chosen, _ := scores(); chosen != a.HostID() {
			t.Fatalf("a VM of the image went to %s, not to A (%s), which holds it", chosen, a.HostID())
		}
	}

	// Evicted: the next report says so, and A scores as B does.
	if err := cache.Remove("local", img); err != nil {
		t.Fatal(err)
	}
	reported(a.HostID())
	eventually("A evicted the image", func(_ string, score map[string]float64) bool {
		return len(score) == 2 && math.Abs(score[a.HostID()]-score[b.HostID()]) < 1e-9
	})
}

// createOn waits for a's host to be READY, then creates n VMs one after
// the other, each STOPPED on the host once its create completed.
func createOn(ctx context.Context, t *testing.T, cl *client.Client, wait func(*api.Task, error) *api.Task, a *agent.Agent, project string, n int) {
	t.Helper()
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		h, err := cl.GetHost(ctx, a.HostID())
		if err == nil && h.State == api.HostReady && h.Capacity.CPUCount > 0 {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("host = %+v, %v; want READY with its capacity", h, err)
		}
	}
	for i := range n {
		vm := wait(cl.CreateVM(ctx, project, vmSpec(fmt.Sprintf("vm-%d", i))))
		got, err := cl.GetVM(ctx, vm.Entity.ID)
		if err != nil || got.State != api.VMStopped || got.Host == "" {
			t.Fatalf("VM %d after its create = %+v, %v; want STOPPED on the host", i, got, err)
		}
	}
}

// TestReportsRidePolls: with a controller that takes a report with the
// long poll, the report of a VM the last answer created rides the poll
// that follows (one request instead of two), and the VMs' creates complete
// on it (their tasks wait for the host to report the VM).
func TestReportsRidePolls(t *testing.T) {
	ctx, c, wait := newController(t)
	cl := c.Client
	project := newProject(ctx, t, c, wait, 20)
	// No heartbeat during the test: a report on its own is one no poll carried.
	a := startAgentBeating(t, c, t.TempDir(), "10.0.9.3", time.Hour, func(cfg *agent.Config) { cfg.NoStream = true })
	const n = 8 // the host's CPUs
	createOn(ctx, t, cl, wait, a, project, n)
	onPoll, alone := a.Reports()
	t.Logf("%d VMs created: %d reports rode a poll, %d went alone", n, onPoll, alone)
	if onPoll < n/2 {
		t.Errorf("%d of %d VMs' reports rode a poll (%d alone); want most", onPoll, n, alone)
	}

	// The route itself, with the host's credential.
	host, err := client.New(c.URL, client.WithCACertFile(c.CACert), client.WithToken(a.Credential()))
	if err != nil {
		t.Fatal(err)
	}
	path := "/v1/agent/hosts/" + a.HostID() + "/desired"
	var ds api.HostDesiredState
	if err := host.Do(ctx, http.MethodPost, path+"?after=0", &api.HostStatusReport{Partial: true}, &ds); err != nil ||
		!ds.ReportOnPoll || len(ds.VMs) != n || ds.Revision == 0 {
		t.Fatalf("report and poll (after=0) = %d VMs at %d, reportOnPoll %v, %v; want the %d VMs at once", len(ds.VMs), ds.Revision, ds.ReportOnPoll, err, n)
	}
	for _, tc := range []struct {
		name, path string
		body       any
		code       string
	}{
		{"bad after", path + "?after=-1", &api.HostStatusReport{Partial: true}, api.CodeInvalidQuery},
		{"not a report", path, map[string]any{"vms": "all of them"}, api.CodeInvalidJSON},
		{"another host", "/v1/agent/hosts/not-this-host/desired", &api.HostStatusReport{Partial: true}, "HostNotFound"},
	} {
		err := host.Do(ctx, http.MethodPost, tc.path, tc.body, nil)
		var ae *api.Error
		if !errors.As(err, &ae) || ae.Code != tc.code {
			t.Errorf("%s: %v; want %s", tc.name, err, tc.code)
		}
	}
	// The status comes once the report is recorded, the body once the
	// desired state changes: here, a VM deleted.
	acked := make(chan struct{})
	answered := make(chan error, 1)
	var next api.HostDesiredState
	go func() {
		answered <- host.DoAck(ctx, http.MethodPost, path+"?after="+strconv.FormatInt(ds.Revision, 10),
			&api.HostStatusReport{Partial: true}, &next, func() { close(acked) })
	}()
	select {
	case <-acked:
	case err := <-answered:
		t.Fatalf("the poll ended (%v) before its report was acknowledged", err)
	case <-time.After(10 * time.Second):
		t.Fatal("no acknowledgement of the report in 10 s")
	}
	select {
	case err := <-answered:
		t.Fatalf("the poll answered (%v, revision %d) before the desired state changed", err, next.Revision)
	case <-time.After(200 * time.Millisecond):
	}
	wait(cl.DeleteVM(ctx, ds.VMs[0].ID))
	select {
	case err := <-answered:
		if err != nil || next.Revision <= ds.Revision {
			t.Fatalf("poll after the delete = revision %d, %v; want past %d", next.Revision, err, ds.Revision)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the poll did not answer the delete in 10 s")
	}
}

// TestHeartbeatsListChanges: between full reports (every
// FullReportInterval), a host's heartbeats list only what changed: they
// keep it READY, carry a change on the host (a VM that crashed) to the
// controller, and a full report still comes every FullReportInterval.
func TestHeartbeatsListChanges(t *testing.T) {
	ctx, c, wait := newController(t)
	project := newProject(ctx, t, c, wait, 10)
	const beat = 100 * time.Millisecond
	rare := photontest.NewAgent(t, c, fake.Config{}, func(cfg *agent.Config) {
		cfg.HeartbeatInterval, cfg.FullReportInterval = beat, time.Hour
	})
	often := photontest.NewAgent(t, c, fake.Config{}, func(cfg *agent.Config) {
		cfg.HeartbeatInterval, cfg.FullReportInterval = beat, 500*time.Millisecond
	})
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		hs, err := c.Client.ListHosts(ctx)
		if err == nil && len(hs) == 2 && hs[0].State == api.HostReady && hs[1].State == api.HostReady {
			break
		}
		if time.Since(start) > 10*time.Second {
			t.Fatalf("hosts = %+v, %v; want 2 READY", hs, err)
		}
	}
	spec := vmSpec("vm")
	spec.Affinities = []api.LocalitySpec{{Kind: "host", ID: rare.HostID()}}
	id := wait(c.Client.CreateVM(ctx, project, spec)).Entity.ID

	// Heartbeats go on the host's stream, or on their own without one.
	beats := func() int64 { _, alone := rare.Reports(); return alone + rare.StreamReports() }
	alone0 := beats()
	rare0, often0 := rare.FullReports(), often.FullReports()
	time.Sleep(2 * time.Second)
	alone1 := beats()
	rare1, often1 := rare.FullReports(), often.FullReports()
	t.Logf("in 2 s: host with full reports every hour sent %d reports, %d full; every 0.5 s: %d full", alone1-alone0, rare1-rare0, often1-often0)
	if alone1-alone0 < 5 || rare1 != rare0 {
		t.Errorf("heartbeats every %s for 2 s: %d reports, %d of them full; want about 20, none full", beat, alone1-alone0, rare1-rare0)
	}
	if d := often1 - often0; d < 2 || d > 6 {
		t.Errorf("full reports every 0.5 s for 2 s: %d; want about 4 (every heartbeat: 20)", d)
	}
	if h, err := c.Client.GetHost(ctx, rare.HostID()); err != nil || h.State != api.HostReady {
		t.Fatalf("host beating partial reports = %+v, %v; want READY", h, err)
	}

	// A VM that crashes on the host (no poll answer caused it, no full
	// report due): the next heartbeat says so.
	if err := rare.Driver.Crash(id, "test"); err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); ; time.Sleep(20 * time.Millisecond) {
		vm, err := c.Client.GetVM(ctx, id)
		if err == nil && vm.State == api.VMError {
			break
		}
		if time.Since(start) > 5*time.Second {
			t.Fatalf("VM crashed on its host = %+v, %v; want ERROR", vm, err)
		}
	}
	if n := rare.FullReports(); n != rare0 {
		t.Errorf("%d full reports meanwhile; want none", n-rare0)
	}
}

// TestReportsAreHeartbeats: every report is a heartbeat to the
// controller, so a host whose VMs keep changing sends no heartbeat of its
// own (5,000 hosts beating every 10 s were a third of the reports of
// 100,000 VMs started); its reports of changes keep it READY and one is
// in full every FullReportInterval. Once it goes quiet, it beats again.
func TestReportsAreHeartbeats(t *testing.T) {
	ctx, c, wait := newController(t)
	project := newProject(ctx, t, c, wait, 10)
	// A heartbeat would need a second without a report: an operation that
	// slow on a busy machine is rare, and one is allowed for.
	const beat, full = time.Second, 2 * time.Second
	a := photontest.NewAgent(t, c, fake.Config{}, func(cfg *agent.Config) {
		cfg.HeartbeatInterval, cfg.FullReportInterval = beat, full
	})
	id := wait(c.Client.CreateVM(ctx, project, vmSpec("vm"))).Entity.ID
	beats0, fulls0 := a.Heartbeats(), a.FullReports()
	start, ops := time.Now(), 0
	for ; time.Since(start) < 5*time.Second; ops += 2 {
		t0 := time.Now()
		wait(c.Client.StartVM(ctx, id))
		wait(c.Client.StopVM(ctx, id))
		if d := time.Since(t0); d > beat/2 {
			t.Logf("a start and a stop took %s", d)
		}
	}
	busy := time.Since(start)
	beats, fulls := a.Heartbeats()-beats0, a.FullReports()-fulls0
	t.Logf("%d operations in %s: %d heartbeats, %d full reports", ops, busy, beats, fulls)
	if beats > 1 {
		t.Errorf("%d heartbeats while the VM changed every %s; want none (at most one, a slow operation)", beats, busy/time.Duration(ops))
	}
	if want := int64(busy/full) - 1; fulls < want {
		t.Errorf("%d full reports in %s; want at least %d (every %s)", fulls, busy, want, full)
	}
	if h, err := c.Client.GetHost(ctx, a.HostID()); err != nil || h.State != api.HostReady {
		t.Fatalf("host = %+v, %v; want READY", h, err)
	}
	beats0 = a.Heartbeats()
	time.Sleep(4 * beat)
	if n := a.Heartbeats() - beats0; n < 2 {
		t.Errorf("quiet for %s: %d heartbeats, want about 4", 4*beat, n)
	}
}

// TestEmptyAnswerChangesNothing: an answer to the long poll that is not
// this host's desired state (here an empty 200, as a response cut short
// after its status reads) is ignored: the host does not take it for "no
// VM desired" and delete the VMs it runs.
func TestEmptyAnswerChangesNothing(t *testing.T) {
	var polls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if strings.HasSuffix(r.URL.Path, "/desired") {
			polls.Add(1)
			w.WriteHeader(http.StatusOK) // and no body
			return
		}
		_, _ = io.WriteString(w, "{}") // status reports: accepted
	}))
	defer srv.Close()
	dir := t.TempDir()
	id, _ := json.Marshal(agent.Identity{HostID: "h-1", Credential: "secret", Controller: srv.URL})
	if err := os.WriteFile(filepath.Join(dir, "agent.json"), id, 0o600); err != nil {
		t.Fatal(err)
	}
	drv, err := fake.New(fake.Config{DataDir: filepath.Join(dir, "fake")})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := drv.Ensure(ctx, driver.VMSpec{VMDesired: api.VMDesired{ID: "vm-1", Name: "vm-1", CPUCount: 1, MemoryMB: 512,
		Power: api.VMStarted, Generation: 1}}); err != nil {
		t.Fatal(err)
	}
	a, err := agent.New(agent.Config{ControllerURL: srv.URL, DataDir: dir, Driver: drv, Address: "10.0.9.9",
		HeartbeatInterval: time.Hour, Images: noImages{}, Log: photontest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	for start := time.Now(); polls.Load() < 3; time.Sleep(10 * time.Millisecond) {
		if time.Since(start) > 10*time.Second {
			t.Fatalf("%d polls in 10 s", polls.Load())
		}
	}
	cancel()
	<-done
	vms, err := drv.List(context.Background())
	if err != nil || len(vms) != 1 || vms[0].ID != "vm-1" {
		t.Fatalf("after %d empty answers the host holds %+v, %v; want vm-1 still", polls.Load(), vms, err)
	}
}

// noImages is an image source with nothing to fetch.
type noImages struct{}

func (noImages) Get(context.Context, string, string, string) (string, error) {
	return "", errors.New("no images here")
}

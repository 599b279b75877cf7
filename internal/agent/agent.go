// Package agent is the host agent (`photond agent`): it joins the
// controller once with a join token and keeps the host credential it gets
// in its data dir; then it long-polls its host's desired state, compares it
// with what its driver reports and acts until they match (level-triggered:
// a restart or a lost message is recovered by the next comparison), and
// reports what it observes, which is also its heartbeat.
//
// The host's network (routers, subnets and the VMs' ports: its bridges,
// taps, VXLAN forwarding entries, rules and DHCP leases) is converged the
// same way, through a netplumb.Driver (Config.Network): on every desired
// state the agent hands the driver the whole network the host should have
// (HostDesiredState.Networks and the NICs of its VMs) before it ensures
// the VMs, so a VM's taps exist when its QEMU opens them. A VM whose
// network could not be programmed is not ensured: it is reported with the
// driver's reason (ERROR if it does not exist yet), and the agent tries
// the network again, backing off, until it succeeds or the desired state
// changes; then it ensures those VMs. Without a network driver VMs get no
// network: their NICs are left out of what the VM driver is asked for.
package agent

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/driver"
	"github.com/photon-cloud/photon/internal/imagecache"
	"github.com/photon-cloud/photon/internal/netplumb"
)

// Config configures an agent.
type Config struct {
	// ControllerURL, e.g. "https://10.0.0.1:9000", and the CA to trust.
	ControllerURL string
	CACertFile    string
	// JoinToken is needed only for the first start (no identity in DataDir).
	JoinToken string
	// DataDir keeps the host identity (agent.json) and the image cache.
	DataDir string
	Driver  driver.Driver
	// Network is the host's network driver (netplumb.NewLinux on a real
	// host, netplumb.NewFake on a simulated one). Nil: VMs get no
	// network (their NICs are left out of their specs).
	Network netplumb.Driver
	// UnderlayIP is the host's address that carries the overlays (its
	// VXLAN endpoint), reported to the controller, e.g. "192.0.2.11".
	UnderlayIP string
	// Address the host reports, e.g. "10.0.0.5"; Zone and Tags too.
	Address string
	Zone    string
	Tags    []string
	// HeartbeatInterval: at most this long between status reports
	// (default 3 s); a host whose VMs change more often sends no other.
	HeartbeatInterval time.Duration
	// FullReportInterval: at least this often a report (a heartbeat, or
	// one of changes) is a full report, every VM the host holds (default
	// 60 s, at least HeartbeatInterval). The heartbeats between list only
	// what changed since the last report the controller accepted, as the
	// reports after each change do; a full one lets the controller correct what it
	// holds of the host, whatever the cause (the first report, and the
	// one after a report that may be lost, are full too).
	FullReportInterval time.Duration
	// Images resolves a disk's image to a local file (nil: an image cache
	// in DataDir/images, fetching from the controller). If it is also an
	// ImageLister, status reports list what it holds.
	Images ImageSource
	Log    *slog.Logger
	// NoStream: poll the desired state and send reports on their own even
	// where the controller takes the host's stream
	// (api.HostDesiredState.Stream), e.g. behind a proxy that buffers
	// request bodies.
	NoStream bool
}

// ImageSource makes an image available on a datastore and returns its path.
type ImageSource interface {
	Get(ctx context.Context, datastore, imageID, sha256 string) (string, error)
}

// ImageLister is an ImageSource that lists the images it holds complete
// and verified on a datastore (imagecache.Cache is one). The agent reports
// them, so that the scheduler prefers hosts that need not fetch an image.
type ImageLister interface {
	ListIn(datastore string) []string
}

// Validate checks the configuration.
func (c *Config) Validate() error {
	switch {
	case c.ControllerURL == "":
		return errors.New("agent: no controller URL")
	case c.DataDir == "":
		return errors.New("agent: no data dir")
	case c.Driver == nil:
		return errors.New("agent: no driver")
	case c.Address == "":
		return errors.New("agent: no address")
	}
	return nil
}

// Identity is what the agent keeps in DATA_DIR/agent.json.
type Identity struct {
	HostID     string `json:"hostId"`
	Credential string `json:"credential"`
	Controller string `json:"controller"`
}

// Agent runs one host.
type Agent struct {
	cfg Config
	log *slog.Logger
	c   *client.Client
	id  Identity

	mu       sync.Mutex
	observed map[string]api.VMObserved // last outcome per VM
	busy     map[string]bool           // VMs being acted on
	again    map[string]bool           // desired changed while busy
	desired  map[string]api.VMDesired
	images   []string
	// subnets are the desired state's subnets, by id: the VMs' specs
	// carry those of their NICs. netErr is why the host's network could
	// not be programmed to the last desired state (nil: it was), and
	// badNICs why a VM's NICs were left out of it (a subnet the desired
	// network lacks): such VMs are not ensured.
	subnets map[string]api.SubnetDesired
	netErr  error
	badNICs map[string]error
	// netMu serializes the network driver's Ensures; netWant is the
	// network last asked for, netRetry wakes the retry loop.
	netMu    sync.Mutex
	netWant  *netplumb.Desired
	netRetry chan struct{}
	report   chan struct{}
	// partialOK: the controller takes partial reports (its desired state
	// said so); sent is the VMs of the last report it accepted, which a
	// partial report lists the changes since (nil: send a full one).
	partialOK atomic.Bool
	sent      map[string]api.VMObserved
	// sentImages: the images of the last report the controller accepted.
	sentImages []string
	// pollReports: the controller takes a report with the long poll (its
	// desired state said so). reportMu orders reports: one is built, sent
	// and accepted (or not) before the next is built, so that the
	// controller never records an older observation after a newer one.
	pollReports atomic.Bool
	reportMu    sync.Mutex
	// idle is closed when no VM is being acted on any more (busy empties).
	idle chan struct{}
	// Reports the controller accepted: with a long poll, on their own;
	// full ones, and when the last was.
	onPoll, alone, fulls atomic.Int64
	lastFull             time.Time
	// beats counts the reports the controller accepted that were due to
	// the heartbeat's interval (not to a change).
	beats atomic.Int64
	// streaming is the host's stream while it is up (stream.go); reports
	// go on it. onStream counts those the controller accepted.
	streaming atomic.Pointer[hostStream]
	onStream  atomic.Int64
	streams   atomic.Int64 // opened
	// deletedDisks are disks deleted since the last report.
	deletedDisks []string
	fetches      atomic.Int64
	sessions     map[string]bool // console sessions being (or already) served (console.go)
}

// Reports counts the status reports the controller accepted: those that
// rode a long poll (api.HostDesiredState.ReportOnPoll) and those sent on
// their own (heartbeats, changes no poll carried).
func (a *Agent) Reports() (onPoll, alone int64) { return a.onPoll.Load(), a.alone.Load() }

// StreamReports counts the status reports the controller accepted on the
// host's stream (api.HostDesiredState.Stream).
func (a *Agent) StreamReports() int64 { return a.onStream.Load() }

// Streams counts the streams the agent opened.
func (a *Agent) Streams() int64 { return a.streams.Load() }

// FullReports counts the full status reports the controller accepted.
func (a *Agent) FullReports() int64 { return a.fulls.Load() }

// Heartbeats counts the status reports the controller accepted that were
// sent because the host had sent none for HeartbeatInterval.
func (a *Agent) Heartbeats() int64 { return a.beats.Load() }

// Fetches counts image downloads from the controller (each image once per
// host and datastore, however many VMs need it at once).
func (a *Agent) Fetches() int64 { return a.fetches.Load() }

// New checks the config; Run does the work.
func New(cfg Config) (*Agent, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 3 * time.Second
	}
	if cfg.FullReportInterval <= 0 {
		cfg.FullReportInterval = DefaultFullReportInterval
	}
	cfg.FullReportInterval = max(cfg.FullReportInterval, cfg.HeartbeatInterval)
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	return &Agent{cfg: cfg, log: cfg.Log, observed: map[string]api.VMObserved{}, busy: map[string]bool{},
		again: map[string]bool{}, desired: map[string]api.VMDesired{}, report: make(chan struct{}, 1),
		idle: make(chan struct{}), netRetry: make(chan struct{}, 1)}, nil
}

// HostID is the host's id once joined.
func (a *Agent) HostID() string { return a.id.HostID }

// Credential is the host's bearer token once joined.
func (a *Agent) Credential() string { return a.id.Credential }

func (a *Agent) newClient(token string) (*client.Client, error) {
	// HTTP/1.1: the host's stream, nearly all of its traffic, costs less
	// CPU on both ends than over HTTP/2 (client.WithHTTP1).
	opts := []client.Option{client.WithUserAgent("photon-agent/1"), client.WithTimeout(90 * time.Second), client.WithHTTP1()}
	if a.cfg.CACertFile != "" {
		opts = append(opts, client.WithCACertFile(a.cfg.CACertFile))
	}
	if token != "" {
		opts = append(opts, client.WithToken(token))
	}
	return client.New(a.cfg.ControllerURL, opts...)
}

// Join gets the host identity: from DataDir, or by spending the join token.
// Once joined it does nothing (Run joins again after a caller's Join, and
// must not rewrite the identity that HostID reads meanwhile).
func (a *Agent) Join(ctx context.Context) error {
	if a.c != nil {
		return nil
	}
	path := filepath.Join(a.cfg.DataDir, "agent.json")
	if b, err := os.ReadFile(path); err == nil {
		if err := json.Unmarshal(b, &a.id); err != nil {
			return fmt.Errorf("agent: %s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return err
	}
	if a.id.Credential == "" {
		if a.cfg.JoinToken == "" {
			return errors.New("agent: not joined yet and no join token (photon host join-token)")
		}
		capa, err := a.cfg.Driver.Capacity(ctx)
		if err != nil {
			return fmt.Errorf("agent: capacity: %w", err)
		}
		c, err := a.newClient("")
		if err != nil {
			return err
		}
		req := api.HostJoinRequest{JoinToken: a.cfg.JoinToken, Address: a.cfg.Address, Zone: a.cfg.Zone, Tags: a.cfg.Tags,
			Capacity: capa.HostResources, Datastores: capa.Datastores, Hypervisor: capa.Hypervisor}
		var resp api.HostJoinResponse
		err = c.Do(ctx, http.MethodPost, "/v1/agent/join", &req, &resp)
		c.CloseIdleConnections() // the credential's client makes its own
		if err != nil {
			return fmt.Errorf("agent: join: %w", err)
		}
		a.id = Identity{HostID: resp.HostID, Credential: resp.Credential, Controller: a.cfg.ControllerURL}
		if err := os.MkdirAll(a.cfg.DataDir, 0o700); err != nil {
			return err
		}
		b, _ := json.MarshalIndent(a.id, "", "  ")
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, b, 0o600); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
		a.log.Info("joined", "host", a.id.HostID)
	}
	var err error
	a.c, err = a.newClient(a.id.Credential)
	return err
}

// Run joins if needed, re-adopts what the driver holds, and converges
// until ctx ends or the controller refuses the host's credential.
func (a *Agent) Run(ctx context.Context) error {
	if err := a.Join(ctx); err != nil {
		return err
	}
	if err := a.cfg.Driver.Recover(ctx); err != nil {
		return fmt.Errorf("agent: recover: %w", err)
	}
	if a.cfg.Images == nil {
		hc, err := httpClient(a.cfg.CACertFile)
		if err != nil {
			return err
		}
		fetch := imagecache.HTTPFetcher(hc, a.cfg.ControllerURL, a.id.HostID, a.id.Credential)
		counted := func(ctx context.Context, id string) (io.ReadCloser, error) {
			a.fetches.Add(1)
			return fetch(ctx, id)
		}
		cache, err := imagecache.New(filepath.Join(a.cfg.DataDir, "images"), counted)
		if err != nil {
			return fmt.Errorf("agent: image cache: %w", err)
		}
		a.cfg.Images = cache
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	errc := make(chan error, 3)
	go func() { errc <- a.reportLoop(ctx) }()
	go func() { errc <- a.watchLoop(ctx) }()
	go func() { errc <- a.networkRetryLoop(ctx) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
		return nil
	}
}

// httpClient trusts caFile (the system roots if empty), with no overall
// timeout: an image download takes as long as it takes.
func httpClient(caFile string) (*http.Client, error) {
	conf := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile != "" {
		b, err := os.ReadFile(caFile)
		if err != nil {
			return nil, fmt.Errorf("agent: CA certificate: %w", err)
		}
		conf.RootCAs = x509.NewCertPool()
		if !conf.RootCAs.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("agent: %s holds no PEM certificate", caFile)
		}
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = conf
	return &http.Client{Transport: tr}, nil
}

func refused(err error) bool {
	var ae *api.Error
	return errors.As(err, &ae) && (ae.Status() == http.StatusUnauthorized || ae.Status() == http.StatusForbidden)
}

// watchLoop long-polls the desired state and converges on each answer.
func (a *Agent) watchLoop(ctx context.Context) error {
	var rev int64
	backoff := 100 * time.Millisecond
	stream, noStreamUntil := false, time.Time{}
	for ctx.Err() == nil {
		if stream && !a.cfg.NoStream && time.Now().After(noStreamUntil) {
			var err error
			opened := time.Now()
			if rev, err = a.stream(ctx, rev); err == nil {
				continue // the controller ended it (its lifetime): open another
			}
			if refused(err) {
				return fmt.Errorf("agent: the controller refuses this host's credential: %w", err)
			}
			if time.Since(opened) >= streamLived && ctx.Err() == nil {
				a.log.Debug("host stream ended; opening another", "error", err)
				continue // up for a while (ended at its lifetime, or a controller's restart): at once
			}
			var ae *api.Error
			if errors.As(err, &ae) && (ae.Status() == http.StatusNotFound || ae.Status() == http.StatusMethodNotAllowed) {
				noStreamUntil = time.Now().Add(noStreamFor) // a controller without the route
			}
			if ctx.Err() == nil {
				a.log.Info("host stream ended; polling", "error", err)
			}
			stream = false // until an answer says the controller takes it
		}
		var ds api.HostDesiredState
		path := "/v1/agent/hosts/" + a.id.HostID + "/desired?after=" + strconv.FormatInt(rev, 10)
		err := a.poll(ctx, path, &ds)
		if err == nil {
			err = a.checkAnswer(&ds)
		}
		if err != nil {
			if refused(err) {
				return fmt.Errorf("agent: the controller refuses this host's credential: %w", err)
			}
			if ctx.Err() == nil {
				a.log.Warn("desired state", "error", err)
			}
			select {
			case <-time.After(backoff):
			case <-ctx.Done():
			}
			backoff = min(backoff*2, 5*time.Second)
			continue
		}
		backoff = 100 * time.Millisecond
		rev, stream = ds.Revision, ds.Stream
		a.answered(ctx, &ds)
	}
	return nil
}

// answered acts on an answer of the desired state (a poll's or the
// stream's).
func (a *Agent) answered(ctx context.Context, ds *api.HostDesiredState) {
	a.partialOK.Store(ds.PartialReports)
	a.pollReports.Store(ds.ReportOnPoll && ds.PartialReports)
	a.converge(ctx, ds)
	a.serveConsoles(ctx, ds.Consoles)
}

// checkAnswer refuses an answer that is not this host's desired state: an
// empty one (a response cut short after its status) would otherwise read
// as "no VM desired here", and the host would delete every VM it runs.
func (a *Agent) checkAnswer(ds *api.HostDesiredState) error {
	if ds.HostID != a.id.HostID || ds.Revision <= 0 {
		return fmt.Errorf("agent: desired state answer for host %q at revision %d, not this host's (%s): ignored", ds.HostID, ds.Revision, a.id.HostID)
	}
	return nil
}

// settleWait bounds how long a poll waits for the VMs the last answer set
// on their way (a simulated host's at once, a real one's in seconds) so
// that their report can ride it.
const settleWait = 10 * time.Millisecond

// poll sends the long poll for the desired state: with the host's report
// of what changed, when there is one and the controller takes it
// (api.HostDesiredState.ReportOnPoll): a request less for each change.
func (a *Agent) poll(ctx context.Context, path string, ds *api.HostDesiredState) error {
	if !a.pollReports.Load() {
		return a.c.Do(ctx, http.MethodGet, path, nil, ds)
	}
	a.waitIdle(ctx, settleWait)
	a.reportMu.Lock()
	locked := true
	unlock := func() {
		if locked {
			locked = false
			a.reportMu.Unlock()
		}
	}
	defer unlock()
	r, all, ok, err := a.buildReport(ctx, reportChanges)
	if err != nil || !ok {
		unlock()
		return a.c.Do(ctx, http.MethodGet, path, nil, ds)
	}
	// Accepted (the status came): the next report may be built.
	err = a.c.DoAck(ctx, http.MethodPost, path, &r, ds, func() {
		a.reportAccepted(&r, all)
		a.onPoll.Add(1)
		unlock()
	})
	if err != nil && locked {
		a.reportLost()
	}
	return err
}

// waitIdle waits until no VM is being acted on, or d passed.
func (a *Agent) waitIdle(ctx context.Context, d time.Duration) {
	a.mu.Lock()
	if len(a.busy) == 0 {
		a.mu.Unlock()
		return
	}
	ch := a.idle
	a.mu.Unlock()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ch:
	case <-t.C:
	case <-ctx.Done():
	}
}

// converge compares desired with what the driver holds and sets each VM
// that differs on its way; VMs the host should not have are deleted.
func (a *Agent) converge(ctx context.Context, ds *api.HostDesiredState) {
	have, err := a.cfg.Driver.List(ctx)
	if err != nil {
		a.log.Warn("list VMs", "error", err)
		return
	}
	// The network first, so that the VMs' taps exist when they boot; the
	// VMs acting meanwhile still see the desired state before this one.
	want, bad, subnets := networkDesired(ds)
	netErr := a.ensureNetwork(ctx, want)
	a.mu.Lock()
	a.desired = make(map[string]api.VMDesired, len(ds.VMs))
	for _, d := range ds.VMs {
		a.desired[d.ID] = d
	}
	a.images = ds.Images
	a.subnets, a.badNICs, a.netErr = subnets, bad, netErr
	a.mu.Unlock()
	a.prefetch(ctx, ds.Images)
	a.deleteDisks(ctx, ds.DeleteDisks)
	haveByID := map[string]api.VMObserved{}
	for _, h := range have {
		haveByID[h.ID] = h
	}
	for _, d := range ds.VMs {
		h, exists := haveByID[d.ID]
		switch {
		case d.Power == api.VMDeleted:
			if exists {
				a.act(ctx, d.ID)
			}
		case !exists || h.Generation < d.Generation || h.State != d.Power:
			a.act(ctx, d.ID)
		}
	}
	for id := range haveByID {
		a.mu.Lock()
		_, want := a.desired[id]
		a.mu.Unlock()
		if !want {
			a.act(ctx, id)
		}
	}
	a.kickReport()
}

// deleteDisks removes the files of deleted persistent disks; the next
// report tells the controller which are gone.
func (a *Agent) deleteDisks(ctx context.Context, disks []api.DiskDesired) {
	dd, ok := a.cfg.Driver.(driver.DiskDriver)
	for _, d := range disks {
		if ok {
			if err := dd.DeleteDisk(ctx, d); err != nil {
				a.log.Warn("delete disk", "disk", d.ID, "error", err)
				continue
			}
		}
		a.mu.Lock()
		a.deletedDisks = append(a.deletedDisks, d.ID)
		a.mu.Unlock()
	}
}

// prefetch copies EAGER images to every datastore of the host in the
// background; the cache fetches each once.
func (a *Agent) prefetch(ctx context.Context, ids []string) {
	if a.cfg.Images == nil || len(ids) == 0 {
		return
	}
	capa, err := a.cfg.Driver.Capacity(ctx)
	if err != nil {
		return
	}
	for _, ds := range capa.Datastores {
		for _, id := range ids {
			go func() {
				if _, err := a.cfg.Images.Get(ctx, ds.Name, id, ""); err != nil && ctx.Err() == nil {
					a.log.Warn("prefetch image", "image", id, "datastore", ds.Name, "error", err)
				}
			}()
		}
	}
}

// act runs one VM's convergence in the background, one at a time per VM:
// a change that arrives meanwhile runs after it.
func (a *Agent) act(ctx context.Context, id string) {
	a.mu.Lock()
	if a.busy[id] {
		a.again[id] = true
		a.mu.Unlock()
		return
	}
	a.busy[id] = true
	a.mu.Unlock()
	go func() {
		for {
			a.actOnce(ctx, id)
			a.mu.Lock()
			if !a.again[id] || ctx.Err() != nil {
				delete(a.busy, id)
				if len(a.busy) == 0 {
					close(a.idle)
					a.idle = make(chan struct{})
				}
				a.mu.Unlock()
				a.kickReport()
				return
			}
			delete(a.again, id)
			a.mu.Unlock()
		}
	}()
}

func (a *Agent) actOnce(ctx context.Context, id string) {
	a.mu.Lock()
	d, want := a.desired[id]
	a.mu.Unlock()
	if !want || d.Power == api.VMDeleted {
		if err := a.cfg.Driver.Delete(ctx, id); err != nil {
			a.log.Warn("delete VM", "vm", id, "error", err)
			return
		}
		a.mu.Lock()
		delete(a.observed, id)
		a.mu.Unlock()
		a.log.Info("deleted VM", "vm", id)
		return
	}
	spec := driver.VMSpec{VMDesired: d, ImagePaths: map[string]string{}}
	err := a.nicSpec(&spec)
	for _, disk := range d.Disks {
		if disk.ImageID == "" || a.cfg.Images == nil || err != nil {
			continue
		}
		var p string
		if p, err = a.cfg.Images.Get(ctx, disk.Datastore, disk.ImageID, disk.ImageSHA256); err != nil {
			err = fmt.Errorf("image %s: %w", disk.ImageID, err)
			break
		}
		spec.ImagePaths[disk.ImageID] = p
	}
	var st api.VMObserved
	if err == nil {
		st, err = a.cfg.Driver.Ensure(ctx, spec)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.log.Warn("ensure VM", "vm", id, "generation", d.Generation, "error", err)
		o := a.observed[id]
		o.ID, o.Error = id, err.Error()
		if st.State != "" {
			o.State = st.State
		}
		a.observed[id] = o
		return
	}
	st.ID, st.Error = id, ""
	if st.Generation < d.Generation {
		st.Generation = d.Generation
	}
	a.observed[id] = st
}

func (a *Agent) kickReport() {
	select {
	case a.report <- struct{}{}:
	default:
	}
}

// reportDelay is how long a change waits before its own report, with a
// controller that takes reports with the long poll: the poll that follows
// the answer which caused it usually carries it first.
const reportDelay = 20 * time.Millisecond

// DefaultFullReportInterval is Config.FullReportInterval's default.
const DefaultFullReportInterval = time.Minute

// reportKind is what a status report says: the changes since the last
// report accepted, if any; the same as a heartbeat, sent even if nothing
// changed; or everything, a full report. A controller that does not take
// partial reports gets full ones.
type reportKind int

const (
	reportChanges reportKind = iota
	reportBeat
	reportFull
)

// reportLoop sends the host's status after every change (only the
// changes, to a controller that takes partial reports) that no poll
// carried, and once HeartbeatInterval passed without a report sent (a
// heartbeat: every report is one to the controller, so a host whose VMs
// change often sends no other); in full at least every
// FullReportInterval.
func (a *Agent) reportLoop(ctx context.Context) error {
	t := time.NewTicker(a.cfg.HeartbeatInterval)
	defer t.Stop()
	kind, beat := reportFull, false // beat: the interval passed (a heartbeat, full or not)
	for {
		if sent, err := a.sendReport(ctx, kind); err != nil {
			if refused(err) {
				return fmt.Errorf("agent: the controller refuses this host's credential: %w", err)
			}
			if ctx.Err() == nil {
				a.log.Warn("status report", "error", err)
			}
		} else if sent {
			if beat {
				a.beats.Add(1)
			}
			t.Reset(a.cfg.HeartbeatInterval)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			kind, beat = a.fullIfDue(reportBeat), true
		case <-a.report:
			kind, beat = a.fullIfDue(reportChanges), false
			if a.streaming.Load() != nil {
				a.waitIdle(ctx, settleWait) // one report for the changes of one answer
			} else if a.pollReports.Load() {
				select {
				case <-time.After(reportDelay):
				case <-ctx.Done():
					return nil
				}
			}
		}
	}
}

// fullIfDue is kind, or a full report when one is due (the next report,
// a heartbeat or changes, is full once FullReportInterval, less half a
// heartbeat, passed since the last full one).
func (a *Agent) fullIfDue(kind reportKind) reportKind {
	a.mu.Lock()
	defer a.mu.Unlock()
	if time.Since(a.lastFull) >= a.cfg.FullReportInterval-a.cfg.HeartbeatInterval/2 {
		return reportFull
	}
	return kind
}

// sendReport sends the host's status (see reportKind), unless it is a
// report of changes and nothing changed; sent says whether the
// controller accepted one.
func (a *Agent) sendReport(ctx context.Context, kind reportKind) (sent bool, err error) {
	a.reportMu.Lock()
	defer a.reportMu.Unlock()
	r, all, ok, err := a.buildReport(ctx, kind)
	if err != nil || !ok {
		return false, err
	}
	count := &a.alone
	if s := a.streaming.Load(); s != nil {
		err, count = s.send(ctx, &r), &a.onStream
	} else {
		err = a.c.Do(ctx, http.MethodPost, "/v1/agent/hosts/"+a.id.HostID+"/status", &r, nil)
	}
	if err != nil {
		a.reportLost()
		return false, err
	}
	a.reportAccepted(&r, all)
	count.Add(1)
	return true, nil
}

// buildReport builds the host's status report (reportMu held) of that
// kind; all is every VM the host holds. A report of changes with nothing
// new to say (no VM changed, no disk deleted, the same images) is not ok:
// there is nothing to send.
func (a *Agent) buildReport(ctx context.Context, kind reportKind) (r api.HostStatusReport, all []api.VMObserved, ok bool, err error) {
	capa, err := a.cfg.Driver.Capacity(ctx)
	if err != nil {
		return r, nil, false, err
	}
	have, err := a.cfg.Driver.List(ctx)
	if err != nil {
		return r, nil, false, err
	}
	images := a.cachedImages(capa.Datastores)
	a.mu.Lock()
	r = api.HostStatusReport{UnderlayIP: a.cfg.UnderlayIP, Capacity: capa.HostResources, Datastores: capa.Datastores,
		VMs: make([]api.VMObserved, 0, len(have)), Images: images}
	for _, h := range have {
		o, ok := a.observed[h.ID]
		if ok && o.Generation > h.Generation {
			h.Generation = o.Generation
		}
		if ok && o.Error != "" {
			h.Error = o.Error
		}
		r.VMs = append(r.VMs, h)
	}
	// VMs that failed before existing are reported with their error.
	for id, o := range a.observed {
		if o.Error != "" && !containsVM(r.VMs, id) {
			if _, ok := a.desired[id]; ok {
				r.VMs = append(r.VMs, api.VMObserved{ID: id, State: api.VMError, Error: o.Error})
			}
		}
	}
	// A VM that should run but broke (its QEMU died) is booted again now,
	// not at the next answer of the desired state (up to 30 s away).
	var broken []string
	for _, h := range have {
		if d, ok := a.desired[h.ID]; ok && h.State == api.VMError && d.Power == api.VMStarted && !a.busy[h.ID] {
			broken = append(broken, h.ID)
		}
	}
	a.mu.Unlock()
	for _, id := range broken {
		a.log.Info("VM broke, booting it again", "vm", id)
		a.act(ctx, id)
	}
	a.mu.Lock()
	r.DeletedDisks = a.deletedDisks
	sent, sentImages := a.sent, a.sentImages
	a.mu.Unlock()
	all = r.VMs
	if kind != reportFull && sent != nil && a.partialOK.Load() {
		r.VMs, r.Partial = changes(sent, all), true
		if kind == reportChanges && len(r.VMs) == 0 && len(r.DeletedDisks) == 0 && slices.Equal(r.Images, sentImages) {
			return r, all, false, nil
		}
	}
	return r, all, true, nil
}

// reportAccepted records that the controller accepted r (all: every VM
// the host held): the next partial report lists the changes since.
func (a *Agent) reportAccepted(r *api.HostStatusReport, all []api.VMObserved) {
	a.mu.Lock()
	if r.Partial && a.sent != nil {
		// r lists the changes since a.sent (see buildReport; a.sent is
		// read and written with reportMu held only): sent follows them
		// instead of being built again from every VM.
		for _, o := range r.VMs {
			if o.Gone {
				delete(a.sent, o.ID)
			} else {
				a.sent[o.ID] = o
			}
		}
	} else {
		a.sent = make(map[string]api.VMObserved, len(all))
		for _, o := range all {
			a.sent[o.ID] = o
		}
	}
	a.deletedDisks = a.deletedDisks[len(r.DeletedDisks):]
	a.sentImages = r.Images
	if !r.Partial {
		a.lastFull = time.Now()
		a.fulls.Add(1)
	}
	a.mu.Unlock()
}

// reportLost records that a report may not have been recorded: what the
// controller holds is unknown, so the next report is full.
func (a *Agent) reportLost() {
	a.mu.Lock()
	a.sent = nil
	a.mu.Unlock()
}

// changes lists the VMs of all whose observation differs from sent's, and
// those of sent no longer in all (Gone).
func changes(sent map[string]api.VMObserved, all []api.VMObserved) []api.VMObserved {
	out := []api.VMObserved{}
	known := 0 // VMs of all in sent (each once: all lists a VM once)
	for _, o := range all {
		s, ok := sent[o.ID]
		if ok {
			known++
		}
		if !ok || s != o {
			out = append(out, o)
		}
	}
	if known == len(sent) {
		return out // none gone
	}
	in := make(map[string]bool, len(all))
	for _, o := range all {
		in[o.ID] = true
	}
	for id := range sent {
		if !in[id] {
			out = append(out, api.VMObserved{ID: id, Gone: true})
		}
	}
	return out
}

// cachedImages lists the images the image cache holds on the host's
// datastores (each id once, sorted); none if the source cannot list.
// Directories of datastores the host no longer reports do not count.
func (a *Agent) cachedImages(dss []api.DatastoreReport) []string {
	l, ok := a.cfg.Images.(ImageLister)
	if !ok {
		return []string{}
	}
	ids := []string{}
	for _, ds := range dss {
		ids = append(ids, l.ListIn(ds.Name)...)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

func containsVM(l []api.VMObserved, id string) bool {
	for _, v := range l {
		if v.ID == id {
			return true
		}
	}
	return false
}

// Package controller assembles the Photon controller: etcd (embedded or
// external), TLS material and the admin token in the data dir, the task
// engine, the services and the HTTPS API. `photond controller` and the test
// harness both start it through Start, so tests run the real stack.
package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/net/netutil"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/audit"
	"github.com/photon-cloud/photon/internal/auth"
	"github.com/photon-cloud/photon/internal/certs"
	"github.com/photon-cloud/photon/internal/compute"
	"github.com/photon-cloud/photon/internal/fleet"
	"github.com/photon-cloud/photon/internal/hosts"
	"github.com/photon-cloud/photon/internal/httpapi"
	"github.com/photon-cloud/photon/internal/images"
	"github.com/photon-cloud/photon/internal/network"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tasks"
	"github.com/photon-cloud/photon/internal/tenancy"
)

// Files in the data dir besides etcd/ and the TLS material.
const (
	AdminTokenFile = "admin.token"
	URLFile        = "controller.url"
)

// recentKeys bounds the records a controller keeps of its own commits
// (store.KeepRecent), about 1 KB each (a lock far less). A VM created and
// started writes its record, lock and task 4 times; with 1<<16, the keys
// of VMs waiting seconds for their start were dropped before it came
// (bench/fleet, 30,000 VMs: a third of their reads went to etcd).
const recentKeys = 1 << 18

// Config configures a controller.
type Config struct {
	// DataDir holds etcd data (unless EtcdEndpoints), certificates, the admin token.
	DataDir string
	// Listen is the HTTPS address, e.g. "127.0.0.1:9000" (port 0: any free port).
	Listen string
	// EtcdEndpoints names an external etcd cluster; empty: embedded etcd.
	EtcdEndpoints []string
	// TLSSANs are extra names for the server certificate.
	TLSSANs []string
	Log     *slog.Logger
	// AccessTokenTTL is the lifetime of users' access tokens (0: 15 minutes).
	AccessTokenTTL time.Duration
	// LoginLimits throttle failed logins (zero: auth.DefaultLoginLimits).
	LoginLimits auth.LoginLimits
	// AuditRetention is how long audit records are kept (0: 90 days).
	AuditRetention time.Duration
	// MaxImageBytes bounds an uploaded image (0: images.DefaultMaxUploadSize, 64 GiB).
	MaxImageBytes int64
	// FloatingIPRange is the floating IPs VMs may acquire, e.g.
	// "203.0.113.10-203.0.113.50" or "203.0.113.0/28" (network.ParseRange);
	// empty: none.
	FloatingIPRange string
	// ImageLimits bound uploads: the disk an image may hold, the free
	// space kept on the controller, decompression (zero: images' defaults).
	ImageLimits images.Limits
	// HeartbeatTimeout: a host silent this long turns ERROR (0: 15 s).
	HeartbeatTimeout time.Duration
	// HostTimeout bounds how long a task waits for a host to act (0: 2 min).
	HostTimeout time.Duration
	// JoinTokenTTL: how long a host join token is valid (0: 1 h).
	JoinTokenTTL time.Duration
	// CPUOvercommit and MemoryOvercommit scale what hosts offer for
	// placement (0: 1, none); host metadata overcommit.cpu/.memory
	// overrides them per host.
	CPUOvercommit, MemoryOvercommit float64
	// StoreLimits bound how long a request waits for etcd and how often
	// the controller checks that etcd answers (zero: store.DefaultLimits,
	// a request 10 s). While etcd is away requests fail with 503.
	StoreLimits store.Limits
	// PlacementSample is how many feasible hosts a placement scores
	// (0: fleet.DefaultSample; negative: all).
	PlacementSample int
	// MaxConnections bounds the connections the API serves at once (0:
	// DefaultMaxConnections): one more waits, in the kernel's accept
	// queue, until one closes. Each host's agent holds one.
	MaxConnections int
}

// DefaultMaxConnections is Config.MaxConnections' default: a fleet of a
// few thousand hosts (one connection each) and its users. An idle
// connection costs about 60 KB.
const DefaultMaxConnections = 8192

// Controller is a running controller.
type Controller struct {
	// URL is where it serves, e.g. "https://127.0.0.1:9000".
	URL string
	// CACert is the path of the CA certificate clients trust.
	CACert string
	// Etcd is the etcd endpoints in use: the external cluster's, or the
	// embedded member's unix socket ("unix:///DATA_DIR/etcd/etcd.sock",
	// for tools of the same user; the controller calls it in process).
	Etcd []string
	// Server is the API (its route table is what the OpenAPI test checks).
	Server *httpapi.Server
	// Tokens is the credential store (tests register host credentials with it).
	Tokens *auth.Tokens

	log      *slog.Logger
	srv      *http.Server
	serveErr chan error
	closers  []func()
}

// Start starts a controller and returns once it serves.
func Start(ctx context.Context, cfg Config) (_ *Controller, err error) {
	log := cfg.Log
	if log == nil {
		log = slog.Default()
	}
	c := &Controller{log: log, CACert: filepath.Join(cfg.DataDir, certs.CACertFile), serveErr: make(chan error, 1)}
	defer func() {
		if err != nil {
			c.close()
		}
	}()
	if cfg.DataDir == "" {
		return nil, errors.New("no data dir")
	}
	// The controller's user's only (keys, tokens, images, etcd), also
	// when it existed with a looser mode.
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	if err := os.Chmod(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	c.Etcd = cfg.EtcdEndpoints
	maxTxnOps := 128 // etcd's default, for an external cluster
	var st *store.Store
	if len(c.Etcd) == 0 {
		var e *store.Embedded
		if e, err = store.StartEmbedded(ctx, filepath.Join(cfg.DataDir, "etcd"), log); err != nil {
			return nil, err
		}
		c.closers = append(c.closers, e.Close)
		c.Etcd = []string{e.Endpoint} // for tools; the controller calls it in process
		maxTxnOps = store.EmbeddedMaxTxnOps
		st, err = store.ConnectClient(ctx, e.Client(), "embedded")
		if err == nil {
			st.SingleMember()
		}
	} else {
		st, err = store.Connect(ctx, c.Etcd)
	}
	if err != nil {
		return nil, err
	}
	c.closers = append(c.closers, func() { _ = st.Close() })
	st.SetLimits(cfg.StoreLimits)
	healthCtx, stopHealth := context.WithCancel(context.Background())
	go st.RunHealth(healthCtx, log)
	c.closers = append(c.closers, stopHealth)
	// A VM's record, its lock and its task are read back soon after this
	// controller wrote them (a host's report of the VM, the task it
	// completes): their reads in transactions come from its own commits.
	// So are the hosts' and datastores' usage records, which every
	// placement on them writes: the next one there (a few seconds later
	// on 5,000 hosts) reads them from here, not from etcd nor from the
	// fleet index's copy, which lags the commits under way.
	st.KeepRecent(recentKeys, "vms", "locks", "tasks", "hostusage", "dsusage")

	tlsConf, err := certs.Ensure(cfg.DataDir, cfg.TLSSANs)
	if err != nil {
		return nil, fmt.Errorf("TLS: %w", err)
	}
	tokens := auth.New(st)
	if cfg.AccessTokenTTL > 0 {
		tokens.AccessTTL = cfg.AccessTokenTTL
	}
	if cfg.LoginLimits != (auth.LoginLimits{}) {
		tokens.Limiter = auth.NewLimiter(cfg.LoginLimits)
	}
	if err := tokens.Start(ctx, log); err != nil {
		return nil, err
	}
	c.closers = append(c.closers, tokens.Close)
	c.Tokens = tokens
	if err := ensureAdminToken(ctx, cfg.DataDir, tokens); err != nil {
		return nil, err
	}
	engine, err := tasks.New(st, log)
	if err != nil {
		return nil, err
	}
	ten, err := tenancy.New(st, engine)
	if err != nil {
		return nil, err
	}
	imgs, err := images.New(st, engine, filepath.Join(cfg.DataDir, "images"))
	if err != nil {
		return nil, err
	}
	imgs.Log = log
	if cfg.MaxImageBytes > 0 {
		imgs.MaxUploadSize = cfg.MaxImageBytes
	}
	imgs.Limits = cfg.ImageLimits
	iam, err := auth.NewService(st, engine, tokens)
	if err != nil {
		return nil, err
	}
	auditLog := audit.New(st)
	if cfg.AuditRetention > 0 {
		auditLog.Retention = cfg.AuditRetention
	}
	hostSvc, err := hosts.New(st, engine, tokens, log, hosts.Config{HeartbeatTimeout: cfg.HeartbeatTimeout,
		CPUOvercommit: cfg.CPUOvercommit, MemoryOvercommit: cfg.MemoryOvercommit, JoinTokenTTL: cfg.JoinTokenTTL})
	if err != nil {
		return nil, err
	}
	fips, err := network.ParseRange(cfg.FloatingIPRange)
	if err != nil {
		return nil, fmt.Errorf("--floating-ip-range: %w", err)
	}
	comp, err := compute.New(st, engine, hostSvc, imageUsers{}, log, compute.Config{HostTimeout: cfg.HostTimeout, MaxTxnOps: maxTxnOps, FloatingIPs: fips})
	if err != nil {
		return nil, err
	}
	index := fleet.New(st, hostSvc, log)
	if cfg.PlacementSample != 0 {
		index.Sample = cfg.PlacementSample
	}
	comp.SetPlacer(index)
	netSvc, err := network.New(st, engine)
	if err != nil {
		return nil, err
	}
	ten.SetProjectDefaults(netSvc.CreateDefaults)
	c.Server = httpapi.New(httpapi.Deps{Store: st, Tasks: engine, Tenancy: ten, Tokens: tokens, Auth: iam, Audit: auditLog, Log: log, Images: imgs,
		Hosts: hostSvc, Compute: comp, Network: netSvc})

	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	maxConns := cfg.MaxConnections
	if maxConns <= 0 {
		maxConns = DefaultMaxConnections
	}
	addr := ln.Addr().(*net.TCPAddr)
	ln = netutil.LimitListener(ln, maxConns)
	c.srv = &http.Server{
		Handler:           c.Server,
		TLSConfig:         tlsConf,
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       60 * time.Second,
		WriteTimeout:      httpapi.RequestTimeout + 10*time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
		// Frames of at most 16 KB (HTTP/2's default; a TLS record holds
		// no more). Go's client sizes the buffer of a request body of
		// unknown length (a host's stream) to the frames the server
		// takes, up to 512 KB, for as long as the request lasts: 5,000
		// hosts' streams held 2.5 GB of buffers in bench/fleet.
		HTTP2: &http.HTTP2Config{MaxReadFrameSize: 16 << 10},
	}
	c.srv.RegisterOnShutdown(c.Server.StopStreams)
	loopCtx, cancelLoop := context.WithCancel(context.Background())
	loopDone := make(chan struct{})
	imgsDone := make(chan struct{})
	go func() { engine.Loop(loopCtx); close(loopDone) }()
	go hostSvc.Run(loopCtx)
	go index.Run(loopCtx)
	go auditLog.Loop(loopCtx, time.Hour, log)
	go func() { imgs.Loop(loopCtx); close(imgsDone) }()
	// Closers run in reverse: the loop stops before the store closes.
	c.closers = append(c.closers, func() { cancelLoop(); <-loopDone; <-imgsDone })
	go func() { c.serveErr <- c.srv.ServeTLS(ln, "", "") }()

	c.URL = "https://" + advertised(addr)
	if err := certs.WriteFileAtomic(filepath.Join(cfg.DataDir, URLFile), []byte(c.URL+"\n"), 0o644); err != nil {
		_ = c.srv.Close()
		return nil, err
	}
	log.Info("controller serving", "url", c.URL, "data_dir", cfg.DataDir, "etcd", strings.Join(c.Etcd, ","))
	return c, nil
}

// Wait blocks until the server fails or ctx ends.
func (c *Controller) Wait(ctx context.Context) error {
	select {
	case err := <-c.serveErr:
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
		return nil
	}
}

// Close stops serving (letting requests finish for up to 15 s), then the
// task loop, the store and embedded etcd.
func (c *Controller) Close() {
	if c.srv != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		defer cancel()
		if err := c.srv.Shutdown(ctx); err != nil {
			c.log.Warn("shutdown", "error", err)
		}
	}
	c.close()
}

func (c *Controller) close() {
	for i := len(c.closers) - 1; i >= 0; i-- {
		c.closers[i]()
	}
	c.closers = nil
}

// imageUsers lets VMs count as users of their images.
type imageUsers struct{}

func (imageUsers) AcquireImage(ctx context.Context, tx *store.Txn, id string) (*api.Image, error) {
	return images.AcquireImage(ctx, tx, id)
}

func (imageUsers) ReleaseImage(ctx context.Context, tx *store.Txn, id string) error {
	return images.ReleaseImage(ctx, tx, id)
}

// advertised is the host:port clients reach a listener at: a wildcard
// address becomes loopback.
func advertised(a *net.TCPAddr) string {
	if a.IP.IsUnspecified() {
		return net.JoinHostPort("127.0.0.1", fmt.Sprint(a.Port))
	}
	return a.String()
}

// ensureAdminToken reads DATA_DIR/admin.token, making it (mode 0600) on
// first start, and registers it in etcd as the system administrator. To
// rotate it, delete the file and restart: the old token stops working.
func ensureAdminToken(ctx context.Context, dir string, tokens *auth.Tokens) error {
	path := filepath.Join(dir, AdminTokenFile)
	b, err := os.ReadFile(path)
	token := strings.TrimSpace(string(b))
	switch {
	case err == nil && token != "":
	case err == nil || errors.Is(err, os.ErrNotExist):
		token = auth.NewToken()
		if err := certs.WriteFileAtomic(path, []byte(token+"\n"), 0o600); err != nil {
			return fmt.Errorf("admin token: %w", err)
		}
	default:
		return fmt.Errorf("admin token: %w", err)
	}
	return tokens.SetBootstrap(ctx, token, auth.Principal{Subject: "admin", Role: auth.RoleSystemAdmin})
}

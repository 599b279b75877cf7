// Package hosts owns the host registry: join tokens and host credentials,
// registration of what a host offers (CPU, memory, datastores), host states
// (suspend, maintenance, delete), liveness from heartbeats (an etcd lease
// per host: a host silent past the timeout turns ERROR, decided from its
// liveness key as it is now, and READY again when it is back; its reported
// capacity kept current), per-host usage records that placements update in their own
// transactions, and the desired state each agent watches.
//
// Keys (under store.Prefix):
//
//	hosts/<id>                 the host (api.Host plus mode and credential)
//	hostusage/<id>             CPU, memory, VMs placed on it
//	hostalive/<id>             present while heartbeats come (leased)
//	hostimages/<id>            images the host reports cached (images.go)
//	datastores/<id>, dsusage/<id>
//	jointokens/<sha256>        one-time join tokens
//	names/hosts/<address>      address -> id
//	desired/<host>/<vm>        what the host should run (api.VMDesired)
//	consolereq/<host>/<session> a console a user waits for (leased; console.go)
package hosts

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/auth"
	"github.com/photon-cloud/photon/internal/scheduler"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tasks"
)

// Operations.
const (
	OpCreateHost       = "CREATE_HOST"
	OpDeleteHost       = "DELETE_HOST"
	OpSuspendHost      = "SUSPEND_HOST"
	OpResumeHost       = "RESUME_HOST"
	OpEnterMaintenance = "ENTER_MAINTENANCE_MODE"
	OpExitMaintenance  = "EXIT_MAINTENANCE_MODE"
)

// Modes an operator puts a host in (its state when alive).
const (
	modeReady       = api.HostReady
	modeSuspended   = api.HostSuspended
	modeMaintenance = api.HostMaintenance
	modeUnjoined    = api.HostNotProvisioned
)

// Record is a host as stored.
type Record struct {
	api.Host
	// Mode is the operator's choice; State is Mode unless the host is down.
	Mode string `json:"mode"`
	// CredentialKey is the store key of its credential (to revoke it).
	CredentialKey string `json:"credentialKey,omitempty"`
	// DatastoreIDs it sees.
	DatastoreIDs []string `json:"datastoreIds"`
	Joined       bool     `json:"joined"`
	// UnderlayIP is the host's VXLAN endpoint as it last reported it
	// (api.HostStatusReport.UnderlayIP; see UnderlayOf).
	UnderlayIP string `json:"underlayIp,omitempty"`
}

// Usage is what is placed on a host.
type Usage struct {
	CPU      int   `json:"cpu"`
	MemoryMB int64 `json:"memoryMb"`
	VMs      int   `json:"vms"`
}

// DatastoreUsage is what is placed on a datastore.
type DatastoreUsage struct {
	UsedGB float64 `json:"usedGb"`
}

// Config tunes the registry.
type Config struct {
	// HeartbeatTimeout: a host silent this long becomes ERROR (default 15 s).
	HeartbeatTimeout time.Duration
	// JoinTokenTTL: how long a join token is valid (default 1 h).
	JoinTokenTTL time.Duration
	// CPUOvercommit and MemoryOvercommit scale what a host offers for
	// placement (default 1: none), e.g. 4 places 64 vCPUs on 16. A host's
	// metadata "overcommit.cpu" / "overcommit.memory" overrides them.
	CPUOvercommit, MemoryOvercommit float64
}

// Host metadata keys that override the overcommit ratios for one host.
const (
	MetaCPUOvercommit    = "overcommit.cpu"
	MetaMemoryOvercommit = "overcommit.memory"
)

// Overcommit returns the CPU and memory overcommit ratios of a host (a
// nil Service has no configured ratios, only the host's own).
func (s *Service) Overcommit(r *Record) (cpu, mem float64) {
	cpu, mem = 1, 1
	if s != nil {
		cpu, mem = s.cfg.CPUOvercommit, s.cfg.MemoryOvercommit
	}
	if v, err := strconv.ParseFloat(r.Metadata[MetaCPUOvercommit], 64); err == nil && v > 0 {
		cpu = v
	}
	if v, err := strconv.ParseFloat(r.Metadata[MetaMemoryOvercommit], 64); err == nil && v > 0 {
		mem = v
	}
	return cpu, mem
}

// Service is the host registry.
type Service struct {
	st     *store.Store
	tasks  *tasks.Engine
	tokens *auth.Tokens
	log    *slog.Logger
	cfg    Config

	mu       sync.Mutex
	leases   map[string]hostLease // host -> its liveness lease, in this process
	renewals atomic.Int64         // lease renewals sent to etcd (LeaseRenewals)
	lastSeen map[string]int64     // host -> last heartbeat seen by this process (ms)
	// underlays are the underlay addresses recorded (SetUnderlay), by host.
	underlayMu sync.Mutex
	underlays  map[string]string
	// peerSets are the subnets' peers, built once per change (peers).
	peerMu   sync.Mutex
	peerSets map[string]*peerSet
	hub      *store.Hub
	mirror   *store.Mirror // of hubPrefixes, feeding hub
	// records caches host and datastore records for Reserve.
	records  *store.Cache
	consoles map[string]*ConsoleWait // session -> the GET waiting in this process
	images   map[string]imagesSeen   // host -> its cached images as this process last read or wrote them
}

// maxCachedRecords bounds the host and datastore records Reserve caches
// (a few hundred bytes each).
const maxCachedRecords = 1 << 17

func hostKey(id string) string         { return store.Key("hosts", id) }
func usageKey(id string) string        { return store.Key("hostusage", id) }
func aliveKey(id string) string        { return store.Key("hostalive", id) }
func dsKey(id string) string           { return store.Key("datastores", id) }
func dsUsageKey(id string) string      { return store.Key("dsusage", id) }
func addressKey(addr string) string    { return store.Key("names", "hosts", addr) }
func joinKey(token string) string      { return store.Key("jointokens", hashHex(token)) }
func DesiredPrefix(host string) string { return store.Prefix("desired", host) }
func DesiredKey(host, vm string) string {
	return store.Key("desired", host, vm)
}

func hashHex(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// New returns the registry and registers its operations.
func New(st *store.Store, engine *tasks.Engine, tokens *auth.Tokens, log *slog.Logger, cfg Config) (*Service, error) {
	if cfg.HeartbeatTimeout <= 0 {
		cfg.HeartbeatTimeout = 15 * time.Second
	}
	if cfg.JoinTokenTTL <= 0 {
		cfg.JoinTokenTTL = time.Hour
	}
	if cfg.CPUOvercommit <= 0 {
		cfg.CPUOvercommit = 1
	}
	if cfg.MemoryOvercommit <= 0 {
		cfg.MemoryOvercommit = 1
	}
	s := &Service{st: st, tasks: engine, tokens: tokens, log: log, cfg: cfg, leases: map[string]hostLease{}, lastSeen: map[string]int64{}, underlays: map[string]string{}, peerSets: map[string]*peerSet{},
		images: map[string]imagesSeen{}}
	s.mirror = st.NewMirror(hubPrefixes...)
	s.hub = s.mirror.Hub()
	s.records = st.NewCache(maxCachedRecords, store.Prefix("hosts"), store.Prefix("datastores"))
	var ops []*tasks.Operation
	for _, op := range []string{OpCreateHost, OpDeleteHost, OpSuspendHost, OpResumeHost, OpEnterMaintenance, OpExitMaintenance} {
		ops = append(ops, &tasks.Operation{Name: op, Steps: []tasks.Step{{Name: op, Run: func(context.Context, *store.Txn, *api.Task) error { return nil }}}})
	}
	if err := engine.Register(ops...); err != nil {
		return nil, err
	}
	return s, nil
}

// Run keeps liveness and the desired-state mirror current until ctx ends.
func (s *Service) Run(ctx context.Context) {
	go s.mirror.Run(ctx)
	go s.records.Run(ctx, s.log)
	s.watchLiveness(ctx)
}

// submit runs fn and records a one-step task done in the same transaction.
func (s *Service) submit(ctx context.Context, op, hostID string, fn func(tx *store.Txn) error) (*api.Task, error) {
	var task *api.Task
	_, err := s.st.Update(ctx, func(tx *store.Txn) error {
		var err error
		if task, err = s.tasks.NewTask(op, api.Entity{ID: hostID, Kind: api.KindHost}, "", ""); err != nil {
			return err
		}
		if err := fn(tx); err != nil {
			return err
		}
		s.tasks.CompleteStep(task, 0)
		return s.tasks.Submit(ctx, tx, task)
	})
	return task, err
}

func notFound(id string) error { return api.Errorf("HostNotFound", "host %s not found", id) }

func validID(id string) bool { return id != "" && len(id) <= 64 && !strings.ContainsAny(id, "/\x00") }

// Get reads a host.
func (s *Service) Get(ctx context.Context, id string) (*Record, error) {
	var h Record
	if !validID(id) {
		return nil, notFound(id)
	}
	if _, err := s.st.Get(ctx, hostKey(id), &h); errors.Is(err, store.ErrNotFound) {
		return nil, notFound(id)
	} else if err != nil {
		return nil, err
	}
	var u Usage
	if _, err := s.st.Get(ctx, usageKey(id), &u); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	h.Usage = api.HostResources{CPUCount: u.CPU, MemoryMB: u.MemoryMB}
	h.Datastores = h.DatastoreIDs
	s.mu.Lock()
	if seen := s.lastSeen[id]; seen > h.LastSeen {
		h.LastSeen = seen // heartbeats are not written to etcd; this controller saw it
	}
	s.mu.Unlock()
	return &h, nil
}

// List reads one page of hosts.
func (s *Service) List(ctx context.Context, token string, size int) ([]api.Host, string, error) {
	recs, next, err := store.PageOf[Record](ctx, s.st, store.Prefix("hosts"), token, size, nil)
	if err != nil {
		return nil, "", err
	}
	out := make([]api.Host, 0, len(recs))
	for _, r := range recs {
		full, err := s.Get(ctx, r.ID)
		if err != nil {
			continue
		}
		out = append(out, full.Host)
	}
	return out, next, nil
}

// Create pre-registers a host by address; it joins later.
func (s *Service) Create(ctx context.Context, spec *api.HostCreateSpec) (*api.Task, error) {
	if err := validateAddress(spec.Address); err != nil {
		return nil, err
	}
	id := uuid.Must(uuid.NewV7()).String()
	return s.submit(ctx, OpCreateHost, id, func(tx *store.Txn) error {
		if taken, err := tx.Exists(ctx, addressKey(spec.Address)); err != nil {
			return err
		} else if taken {
			e := api.Errorf(api.CodeNameTaken, "a host with address %s exists", spec.Address)
			e.Data = map[string]string{"field": "address"}
			return e
		}
		h := Record{Host: api.Host{Base: api.Base{ID: id, Kind: api.KindHost}, Address: spec.Address,
			UsageTags: orEmpty(spec.UsageTags), AvailabilityZone: spec.AvailabilityZone, State: modeUnjoined,
			Metadata: spec.Metadata, Datastores: []string{}}, Mode: modeReady, DatastoreIDs: []string{}}
		if h.Metadata == nil {
			h.Metadata = map[string]string{}
		}
		h.State = modeUnjoined
		if err := tx.Put(addressKey(spec.Address), id); err != nil {
			return err
		}
		return tx.Put(hostKey(id), &h)
	})
}

func validateAddress(a string) error {
	if a == "" || len(a) > 253 || strings.ContainsAny(a, " /\t\n\x00") {
		return api.FieldError("address", "want a host name or IP address, got %q", a)
	}
	return nil
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// NewJoinToken mints a one-time join token, for a pre-registered host or
// (hostID "") for a new one.
func (s *Service) NewJoinToken(ctx context.Context, hostID string) (*api.JoinToken, error) {
	if hostID != "" {
		if _, err := s.Get(ctx, hostID); err != nil {
			return nil, err
		}
	}
	jt := &api.JoinToken{Token: "jt-" + auth.NewToken(), ExpiresAt: time.Now().Add(s.cfg.JoinTokenTTL).UnixMilli(), HostID: hostID}
	stored := api.JoinToken{ExpiresAt: jt.ExpiresAt, HostID: hostID}
	if _, err := s.st.Update(ctx, func(tx *store.Txn) error { return tx.Put(joinKey(jt.Token), stored) }); err != nil {
		return nil, err
	}
	return jt, nil
}

// Join exchanges a join token for a host identity and credential, and
// records what the host offers. The token is spent in the same transaction.
func (s *Service) Join(ctx context.Context, req *api.HostJoinRequest) (*api.HostJoinResponse, error) {
	if err := validateAddress(req.Address); err != nil {
		return nil, err
	}
	if req.Capacity.CPUCount <= 0 || req.Capacity.MemoryMB <= 0 {
		return nil, api.FieldError("capacity", "a host must offer CPUs and memory")
	}
	for i, d := range req.Datastores {
		if api.ValidateName("datastores", d.Name) != nil || d.CapacityGB < 0 {
			return nil, api.FieldError(fmt.Sprintf("datastores[%d]", i), "bad datastore %q", d.Name)
		}
	}
	cred := auth.NewToken()
	var resp api.HostJoinResponse
	_, err := s.st.Update(ctx, func(tx *store.Txn) error {
		var jt api.JoinToken
		ok, err := tx.Get(ctx, joinKey(req.JoinToken), &jt)
		if err != nil {
			return err
		}
		if !ok || req.JoinToken == "" || time.Now().UnixMilli() > jt.ExpiresAt {
			return api.Errorf(api.CodeInvalidAuthToken, "the join token is not valid (used, expired or unknown)")
		}
		tx.Delete(joinKey(req.JoinToken))
		id := jt.HostID
		if id == "" {
			var existing string
			if ok, err := tx.Get(ctx, addressKey(req.Address), &existing); err != nil {
				return err
			} else if ok {
				id = existing
			}
		}
		var h Record
		if id != "" {
			if err := tx.MustGet(ctx, hostKey(id), &h); err != nil {
				return notFound(id)
			}
			if h.CredentialKey != "" {
				tx.Delete(h.CredentialKey)
			}
			if h.Address != req.Address {
				tx.Delete(addressKey(h.Address))
			}
		} else {
			id = uuid.Must(uuid.NewV7()).String()
			h = Record{Host: api.Host{Base: api.Base{ID: id, Kind: api.KindHost}, UsageTags: []string{"CLOUD"},
				Metadata: map[string]string{}}, Mode: modeReady}
		}
		h.Address, h.Joined, h.EsxVersion, h.Capacity = req.Address, true, req.Hypervisor, req.Capacity
		if req.Zone != "" {
			h.AvailabilityZone = req.Zone
		}
		if req.Tags != nil {
			h.UsageTags = req.Tags
		}
		if err := s.putDatastores(ctx, tx, &h, req.Datastores); err != nil {
			return err
		}
		h.State = h.Mode // alive from its first heartbeat; until then the monitor may mark it ERROR
		h.CredentialKey = auth.TokenKey(cred)
		if err := tx.Put(h.CredentialKey, auth.Principal{Subject: "host:" + id, Role: auth.RoleHost}); err != nil {
			return err
		}
		if err := tx.Put(addressKey(req.Address), id); err != nil {
			return err
		}
		resp = api.HostJoinResponse{HostID: id, Credential: cred}
		return tx.Put(hostKey(id), &h)
	})
	if err != nil {
		return nil, err
	}
	s.log.Info("host joined", "host", resp.HostID, "address", req.Address)
	return &resp, nil
}

// putDatastores records the datastores a host reports: local ones get ids
// of their own, shared ones (same name on several hosts) one id for all.
func (s *Service) putDatastores(ctx context.Context, tx *store.Txn, h *Record, reports []api.DatastoreReport) error {
	var ids []string
	for _, d := range reports {
		id := h.ID + "." + d.Name
		if d.Shared {
			id = "shared." + d.Name
		}
		var ds api.Datastore
		ok, err := tx.Get(ctx, dsKey(id), &ds)
		if err != nil {
			return err
		}
		if !ok {
			ds = api.Datastore{Base: api.Base{ID: id, Kind: api.KindDatastore}, Name: d.Name, Type: "LOCAL", HostIDs: []string{}}
			if d.Shared {
				ds.Type = "SHARED"
			}
		}
		ds.CapacityGB, ds.Tags = d.CapacityGB, orEmpty(d.Tags)
		if !slices.Contains(ds.HostIDs, h.ID) {
			ds.HostIDs = append(ds.HostIDs, h.ID)
		}
		if err := tx.Put(dsKey(id), &ds); err != nil {
			return err
		}
		ids = append(ids, id)
	}
	h.DatastoreIDs = orEmpty(ids)
	return nil
}

// LeaseRenewals counts the liveness lease renewals this process sent to
// etcd: a host's heartbeats renew its lease at most every quarter TTL.
func (s *Service) LeaseRenewals() int64 { return s.renewals.Load() }

// hostLease is a host's liveness lease and when this process last renewed
// it.
type hostLease struct {
	lease   store.Lease
	renewed time.Time
}

// Heartbeat records that a host is alive, keeping its liveness lease,
// and what it offers (capacity, from its report). A
// lease renewed less than a quarter of its TTL ago is left as it is: a
// host's reports ride its long polls, one per change, and renewing the
// lease for each was an etcd lease stream per report. With each renewal,
// a host whose record says ERROR for want of heartbeats (as a lease-expiry
// event that came late, after an etcd outage, made it say before setAlive
// read the key) or a capacity other than the one reported is put right
// (see settle).
func (s *Service) Heartbeat(ctx context.Context, hostID string, capacity api.HostResources) error {
	ttl := max(int64(s.cfg.HeartbeatTimeout.Seconds()), 2)
	now := time.Now()
	s.mu.Lock()
	hl, ok := s.leases[hostID]
	s.lastSeen[hostID] = now.UnixMilli()
	s.mu.Unlock()
	if ok && now.Sub(hl.renewed) < time.Duration(ttl)*time.Second/4 {
		return nil
	}
	if ok {
		s.renewals.Add(1)
		if err := s.st.KeepAlive(ctx, hl.lease); err == nil {
			s.mu.Lock()
			if cur, still := s.leases[hostID]; still && cur.lease == hl.lease {
				s.leases[hostID] = hostLease{hl.lease, now}
			}
			s.mu.Unlock()
			return s.settle(ctx, hostID, capacity)
		} else if !errors.Is(err, store.ErrNotFound) {
			return err
		}
	}
	l, err := s.st.PutWithLease(ctx, aliveKey(hostID), now.UnixMilli(), ttl)
	if err != nil {
		return err
	}
	s.mu.Lock()
	s.leases[hostID] = hostLease{l, now}
	s.mu.Unlock()
	if err := s.setAlive(ctx, hostID, true); err != nil {
		return err
	}
	return s.settle(ctx, hostID, capacity)
}

// reasonNoHeartbeat begins the reason of a host ERROR for want of
// heartbeats (setAlive), the only ERROR a heartbeat ends.
const reasonNoHeartbeat = "no heartbeat for "

// validCapacity: what a host may offer (as Join checks).
func validCapacity(c api.HostResources) bool { return c.CPUCount > 0 && c.MemoryMB > 0 }

// settle puts right, after a heartbeat kept the host's lease, what its
// record says against it: ERROR for want of heartbeats becomes its mode
// again, and the capacity becomes the one reported (an agent restarted
// on other CPUs). The record is read from the cache (a heartbeat
// costs no etcd read); a change is a revision-checked transaction that
// reads it again, with the liveness key (present: the lease is held now).
func (s *Service) settle(ctx context.Context, hostID string, capacity api.HostResources) error {
	var h Record
	if err := s.records.Get(ctx, hostKey(hostID), &h); errors.Is(err, store.ErrNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if !needsSettling(&h, capacity) {
		return nil
	}
	_, err := s.st.Update(ctx, func(tx *store.Txn) error {
		var h Record
		if ok, err := tx.Get(ctx, hostKey(hostID), &h); err != nil || !ok || !needsSettling(&h, capacity) {
			return err
		}
		if validCapacity(capacity) && capacity != h.Capacity {
			s.log.Info("host capacity", "host", hostID, "from", h.Capacity, "to", capacity)
			h.Capacity = capacity
		}
		if h.Joined && h.State == api.HostError && strings.HasPrefix(h.Reason, reasonNoHeartbeat) {
			if alive, err := tx.Exists(ctx, aliveKey(hostID)); err != nil {
				return err
			} else if alive {
				s.log.Info("host state", "host", hostID, "from", h.State, "to", h.Mode, "why", "heartbeats with a live lease")
				h.State, h.Reason = h.Mode, ""
				h.LastSeen = time.Now().UnixMilli()
			}
		}
		return tx.Put(hostKey(hostID), &h)
	})
	return err
}

// needsSettling: h says ERROR for want of heartbeats, or another capacity
// than the (valid) one reported.
func needsSettling(h *Record, capacity api.HostResources) bool {
	return (h.Joined && h.State == api.HostError && strings.HasPrefix(h.Reason, reasonNoHeartbeat)) ||
		(validCapacity(capacity) && capacity != h.Capacity)
}

// setAlive moves a host between its mode and ERROR. It marks ERROR only
// if the host's liveness key is absent now, read in the same
// revision-checked transaction: a lease-expiry event may come late (after
// an etcd outage), when the host already holds a new lease.
func (s *Service) setAlive(ctx context.Context, hostID string, alive bool) error {
	_, err := s.st.Update(ctx, func(tx *store.Txn) error {
		var h Record
		if ok, err := tx.Get(ctx, hostKey(hostID), &h); err != nil || !ok {
			return err
		}
		want, reason := h.Mode, ""
		if !alive {
			want, reason = api.HostError, reasonNoHeartbeat+s.cfg.HeartbeatTimeout.String()
		}
		if h.State == want || !h.Joined {
			return nil
		}
		if !alive {
			if now, err := tx.Exists(ctx, aliveKey(hostID)); err != nil || now {
				return err // alive after all: its lease is held
			}
		}
		s.log.Info("host state", "host", hostID, "from", h.State, "to", want)
		h.State, h.Reason = want, reason
		h.LastSeen = time.Now().UnixMilli()
		return tx.Put(hostKey(hostID), &h)
	})
	return err
}

// watchLiveness turns hosts whose liveness key vanished ERROR, and checks
// every host once at start (a host that died while no controller ran).
func (s *Service) watchLiveness(ctx context.Context) {
	for ctx.Err() == nil {
		rev, err := s.st.Rev(ctx)
		if err != nil {
			time.Sleep(time.Second)
			continue
		}
		recs, err := store.List[Record](ctx, s.st, store.Prefix("hosts"))
		if err == nil {
			for _, h := range recs {
				if !h.Joined {
					continue
				}
				alive, err := s.aliveNow(ctx, h.ID)
				if err == nil && !alive && h.State != api.HostError {
					// Give a host that was up when we started one timeout to speak.
					go func(id string) {
						select {
						case <-time.After(s.cfg.HeartbeatTimeout):
						case <-ctx.Done():
							return
						}
						if alive, err := s.aliveNow(ctx, id); err == nil && !alive {
							_ = s.setAlive(ctx, id, false)
						}
					}(h.ID)
				}
			}
		}
		for evs := range s.st.Watch(ctx, store.Prefix("hostalive"), rev) {
			for _, ev := range evs {
				if ev.Delete {
					id := ev.Key[strings.LastIndexByte(ev.Key, '/')+1:]
					s.mu.Lock()
					delete(s.leases, id)
					s.mu.Unlock()
					if err := s.setAlive(ctx, id, false); err != nil && ctx.Err() == nil {
						s.log.Warn("mark host down", "host", id, "error", err)
					}
				}
			}
		}
	}
}

func (s *Service) aliveNow(ctx context.Context, id string) (bool, error) {
	var v int64
	_, err := s.st.Get(ctx, aliveKey(id), &v)
	if errors.Is(err, store.ErrNotFound) {
		return false, nil
	}
	return err == nil, err
}

// SetMode carries out suspend, resume, enter- and exit-maintenance.
func (s *Service) SetMode(ctx context.Context, id, op string) (*api.Task, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	return s.submit(ctx, op, id, func(tx *store.Txn) error {
		var h Record
		if err := tx.MustGet(ctx, hostKey(id), &h); err != nil {
			return notFound(id)
		}
		var u Usage
		if _, err := tx.Get(ctx, usageKey(id), &u); err != nil {
			return err
		}
		bad := func() error {
			return api.Errorf("InvalidHostState", "host %s is %s; %s needs it %s", h.Address, h.Mode, op, map[string]string{
				OpSuspendHost: "READY", OpResumeHost: "SUSPENDED", OpEnterMaintenance: "SUSPENDED", OpExitMaintenance: "in MAINTENANCE"}[op])
		}
		switch op {
		case OpSuspendHost:
			if h.Mode != modeReady {
				return bad()
			}
			h.Mode = modeSuspended
		case OpResumeHost:
			if h.Mode != modeSuspended {
				return bad()
			}
			h.Mode = modeReady
		case OpEnterMaintenance:
			if h.Mode != modeSuspended {
				return bad()
			}
			if u.VMs > 0 {
				return api.Errorf("HostHasVms", "host %s has %d VM(s); move or delete them first", h.Address, u.VMs)
			}
			h.Mode = modeMaintenance
		case OpExitMaintenance:
			if h.Mode != modeMaintenance {
				return bad()
			}
			h.Mode = modeReady
		}
		h.Suspended = h.Mode == modeSuspended
		if h.State != api.HostError && h.Joined {
			h.State = h.Mode
		}
		return tx.Put(hostKey(id), &h)
	})
}

// Delete removes a host that is NOT_PROVISIONED, in MAINTENANCE or ERROR
// and has no VMs; its credential stops working in the same transaction.
func (s *Service) Delete(ctx context.Context, id string) (*api.Task, error) {
	if _, err := s.Get(ctx, id); err != nil {
		return nil, err
	}
	task, err := s.submit(ctx, OpDeleteHost, id, func(tx *store.Txn) error {
		var h Record
		if err := tx.MustGet(ctx, hostKey(id), &h); err != nil {
			return notFound(id)
		}
		if h.State != api.HostNotProvisioned && h.State != api.HostMaintenance && h.State != api.HostError {
			return api.Errorf("InvalidHostState", "host %s is %s; delete needs NOT_PROVISIONED, MAINTENANCE or ERROR", h.Address, h.State)
		}
		var u Usage
		if _, err := tx.Get(ctx, usageKey(id), &u); err != nil {
			return err
		}
		if u.VMs > 0 {
			return api.Errorf("HostHasVms", "host %s has %d VM(s)", h.Address, u.VMs)
		}
		for _, dsID := range h.DatastoreIDs {
			var ds api.Datastore
			if ok, err := tx.Get(ctx, dsKey(dsID), &ds); err != nil {
				return err
			} else if !ok {
				continue
			}
			ds.HostIDs = slices.DeleteFunc(ds.HostIDs, func(x string) bool { return x == id })
			if len(ds.HostIDs) == 0 {
				tx.Delete(dsKey(dsID))
				tx.Delete(dsUsageKey(dsID))
			} else if err := tx.Put(dsKey(dsID), &ds); err != nil {
				return err
			}
		}
		if h.CredentialKey != "" {
			tx.Delete(h.CredentialKey)
		}
		tx.Delete(hostKey(id))
		tx.Delete(usageKey(id))
		tx.Delete(imagesKey(id))
		tx.Delete(addressKey(h.Address))
		return nil
	})
	if err == nil {
		s.mu.Lock()
		hl, ok := s.leases[id]
		delete(s.leases, id)
		delete(s.images, id)
		s.mu.Unlock()
		if ok {
			_ = s.st.Revoke(context.WithoutCancel(ctx), hl.lease)
		}
	}
	return task, err
}

// Datastore reads one datastore with its usage.
func (s *Service) Datastore(ctx context.Context, id string) (*api.Datastore, error) {
	var ds api.Datastore
	if !validID(id) {
		return nil, api.Errorf("DatastoreNotFound", "datastore %s not found", id)
	}
	if _, err := s.st.Get(ctx, dsKey(id), &ds); errors.Is(err, store.ErrNotFound) {
		return nil, api.Errorf("DatastoreNotFound", "datastore %s not found", id)
	} else if err != nil {
		return nil, err
	}
	var u DatastoreUsage
	if _, err := s.st.Get(ctx, dsUsageKey(id), &u); err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, err
	}
	ds.UsedGB = u.UsedGB
	return &ds, nil
}

// Datastores reads one page of datastores.
func (s *Service) Datastores(ctx context.Context, token string, size int) ([]api.Datastore, string, error) {
	l, next, err := store.PageOf[api.Datastore](ctx, s.st, store.Prefix("datastores"), token, size, nil)
	if err != nil {
		return nil, "", err
	}
	for i := range l {
		if full, err := s.Datastore(ctx, l[i].ID); err == nil {
			l[i] = *full
		}
	}
	return l, next, nil
}

// Fleet reads the scheduler's view of every host: capacity less usage,
// and the images each reports cached.
func (s *Service) Fleet(ctx context.Context) ([]scheduler.Host, error) {
	recs, err := store.List[Record](ctx, s.st, store.Prefix("hosts"))
	if err != nil {
		return nil, err
	}
	usages, err := storeMap[Usage](ctx, s.st, store.Prefix("hostusage"))
	if err != nil {
		return nil, err
	}
	dss, err := storeMap[api.Datastore](ctx, s.st, store.Prefix("datastores"))
	if err != nil {
		return nil, err
	}
	dsu, err := storeMap[DatastoreUsage](ctx, s.st, store.Prefix("dsusage"))
	if err != nil {
		return nil, err
	}
	imgs, err := storeMap[CachedImages](ctx, s.st, store.Prefix("hostimages"))
	if err != nil {
		return nil, err
	}
	out := make([]scheduler.Host, 0, len(recs))
	for _, r := range recs {
		h := s.view(&r, usages[r.ID], dss, dsu)
		h.Images = imgs[r.ID].Images
		out = append(out, h)
	}
	return out, nil
}

func (s *Service) view(r *Record, u Usage, dss map[string]api.Datastore, dsu map[string]DatastoreUsage) scheduler.Host {
	h := s.HostView(r, u)
	for _, id := range r.DatastoreIDs {
		ds := dss[id]
		h.Datastores = append(h.Datastores, scheduler.Datastore{ID: id, Name: LocalName(id), FreeGB: ds.CapacityGB - dsu[id].UsedGB, Tags: ds.Tags})
	}
	return h
}

// HostView is the scheduler's view of a host without its datastores:
// capacity times the overcommit ratios, less usage.
func (s *Service) HostView(r *Record, u Usage) scheduler.Host {
	cpuR, memR := s.Overcommit(r)
	cpu, mem := int(float64(r.Capacity.CPUCount)*cpuR), int64(float64(r.Capacity.MemoryMB)*memR)
	return scheduler.Host{ID: r.ID, Address: r.Address, Zone: r.AvailabilityZone, Tags: r.UsageTags, State: r.State,
		CPUTotal: cpu, CPUFree: cpu - u.CPU, MemTotalMB: mem, MemFreeMB: mem - u.MemoryMB}
}

// storeMap reads every object under prefix keyed by its last key segment.
func storeMap[T any](ctx context.Context, st *store.Store, prefix string) (map[string]T, error) {
	kvs, _, err := st.Page(ctx, prefix, "", 1<<30)
	if err != nil {
		return nil, err
	}
	out := make(map[string]T, len(kvs))
	for _, kv := range kvs {
		var v T
		if err := store.Decode(kv.Value, &v); err != nil {
			return nil, err
		}
		out[kv.Key[strings.LastIndexByte(kv.Key, '/')+1:]] = v
	}
	return out, nil
}

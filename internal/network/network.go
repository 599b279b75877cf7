package network

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"strings"

	"github.com/google/uuid"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tasks"
)

// Operations (each done in its submitting transaction: COMPLETED at once).
const (
	OpCreateRouter = "CREATE_ROUTER"
	OpUpdateRouter = "UPDATE_ROUTER"
	OpDeleteRouter = "DELETE_ROUTER"
	OpCreateSubnet = "CREATE_SUBNET"
	OpUpdateSubnet = "UPDATE_SUBNET"
	OpDeleteSubnet = "DELETE_SUBNET"
	OpSetDefault   = "SET_DEFAULT_SUBNET"
)

// QuotaKey is the project quota key of addresses (one COUNT per port).
const QuotaKey = "sdn.size"

// MaxPageSize bounds list pages.
const MaxPageSize = 100

// MaxDNS bounds a subnet's DNS servers.
const MaxDNS = 4

func routerKey(id string) string                { return store.Key("routers", id) }
func subnetKey(id string) string                { return store.Key("subnets", id) }
func routerNameKey(pid, name string) string     { return store.Key("names", "routers", pid, name) }
func subnetNameKey(pid, name string) string     { return store.Key("names", "subnets", pid, name) }
func projectRouterKey(pid, id string) string    { return store.Key("project-routers", pid, id) }
func routerSubnetKey(rid, id string) string     { return store.Key("router-subnets", rid, id) }
func defaultKey(pid string) string              { return store.Key("default-subnet", pid) }
func vniKey(n uint32) string                    { return store.Key("vnis", strconv.FormatUint(uint64(n), 10)) }
func ipKey(subnet string, ip netip.Addr) string { return store.Key("ipam", subnet, ip.String()) }

var vniNextKey = store.Key("vni-next")

// DefaultKey is where a project's default subnet id lives, for callers
// that prefetch what AllocatePorts reads.
func DefaultKey(projectID string) string { return defaultKey(projectID) }

// SubnetKey is where a subnet's record lives.
func SubnetKey(id string) string { return subnetKey(id) }

// Record is a subnet as stored: the API object plus its router's CIDR
// and its address allocation.
type Record struct {
	api.Subnet
	RouterCIDR string `json:"routerCidr"`
	// Ports counts the subnet's ports (allocated addresses).
	Ports uint32 `json:"ports"`
	// Next is the offset of the next address to try (portAddr); Wrapped
	// says it went round once (addresses at and after Next may be taken).
	Next    uint32 `json:"next"`
	Wrapped bool   `json:"wrapped,omitempty"`
}

// Desired is the subnet as a host carries it (without its peers).
func (r *Record) Desired() (api.SubnetDesired, api.RouterDesired) {
	return api.SubnetDesired{ID: r.ID, RouterID: r.RouterID, CIDR: r.PrivateIPCidr, Gateway: r.ReservedIPs["GATEWAY"],
			VNI: r.VNI, NAT: r.Type == api.SubnetNAT, DNS: r.DNSServerAddresses, MTU: MTU, Peers: []string{}},
		api.RouterDesired{ID: r.RouterID, CIDR: r.RouterCIDR}
}

// MTU is what VMs get: a 1500-byte underlay less VXLAN's 50 bytes.
const MTU = 1450

// Service carries out network requests.
type Service struct {
	st    *store.Store
	tasks *tasks.Engine
}

// New returns the service and registers its operations.
func New(st *store.Store, engine *tasks.Engine) (*Service, error) {
	s := &Service{st: st, tasks: engine}
	var ops []*tasks.Operation
	for _, name := range []string{OpCreateRouter, OpUpdateRouter, OpDeleteRouter, OpCreateSubnet, OpUpdateSubnet, OpDeleteSubnet, OpSetDefault} {
		ops = append(ops, &tasks.Operation{Name: name, Steps: []tasks.Step{{Name: name, Run: done}}})
	}
	if err := engine.Register(ops...); err != nil {
		return nil, err
	}
	return s, nil
}

func done(context.Context, *store.Txn, *api.Task) error { return nil }

// submit runs fn and a task for op, done at once, in one transaction.
func (s *Service) submit(ctx context.Context, op string, entity api.Entity, projectID string, fn func(tx *store.Txn, t *api.Task) error) (*api.Task, error) {
	var task *api.Task
	_, err := s.st.Update(ctx, func(tx *store.Txn) error {
		var err error
		if task, err = s.tasks.NewTask(op, entity, "", projectID); err != nil {
			return err
		}
		if err := fn(tx, task); err != nil {
			return err
		}
		s.tasks.CompleteStep(task, 0)
		return s.tasks.Submit(ctx, tx, task)
	})
	if err != nil {
		return nil, err
	}
	return task, nil
}

func fieldErr(field, format string, args ...any) error { return api.FieldError(field, format, args...) }

func validID(id string) bool { return id != "" && len(id) <= 64 && !strings.ContainsAny(id, "/\x00") }

func newID() string { return uuid.Must(uuid.NewV7()).String() }

func routerNotFound(id string) error {
	return api.Errorf(api.CodeRouterNotFound, "router %s not found", id)
}

func subnetNotFound(id string) error {
	return api.Errorf(api.CodeSubnetNotFound, "subnet %s not found", id)
}

func nameTaken(kind, name string) error {
	e := api.Errorf(api.CodeNameTaken, "a %s named %q exists in the project", kind, name)
	e.Data = map[string]string{"field": "name"}
	return e
}

// projectTenant reads a project in tx: its tenant, or ProjectNotFound.
func projectTenant(ctx context.Context, tx *store.Txn, projectID string) (string, error) {
	var p api.Project
	if !validID(projectID) {
		return "", api.Errorf(api.CodeProjectNotFound, "project %s not found", projectID)
	}
	if err := tx.MustGet(ctx, store.Key("projects", projectID), &p); errors.Is(err, store.ErrNotFound) {
		return "", api.Errorf(api.CodeProjectNotFound, "project %s not found", projectID)
	} else if err != nil {
		return "", err
	}
	if p.State != api.StateReady && p.State != api.StateCreating {
		return "", api.Errorf(api.CodeInvalidState, "project %s is %s", p.Name, p.State)
	}
	return p.TenantID, nil
}

func page[T any](ctx context.Context, st *store.Store, prefix, token string, size int, index func(string) string) ([]T, string, error) {
	if size <= 0 || size > MaxPageSize {
		size = MaxPageSize
	}
	l, next, err := store.PageOf[T](ctx, st, prefix, token, size, index)
	if l == nil && err == nil {
		l = []T{}
	}
	return l, next, err
}

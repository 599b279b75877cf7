package photontest

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/hosts"
	"github.com/photon-cloud/photon/internal/scheduler"
	"github.com/photon-cloud/photon/internal/store"
)

// Invariants that tests check over what a run left (robustness tests:
// the multi-controller storm, the fault suite): the fleet's usage is the
// sum of what is placed (FleetState), each project's quota usage is the
// sum of what it holds (ProjectUsageViolations), no task is left
// unfinished (UnfinishedTasks).

// Overcommit is a host's ratios: its metadata's, else the controllers'.
func Overcommit(meta map[string]string, cpuR, memR float64) (float64, float64) {
	if v, err := strconv.ParseFloat(meta[hosts.MetaCPUOvercommit], 64); err == nil && v > 0 {
		cpuR = v
	}
	if v, err := strconv.ParseFloat(meta[hosts.MetaMemoryOvercommit], 64); err == nil && v > 0 {
		memR = v
	}
	return cpuR, memR
}

// StoredVM is what the checker reads of a VM record in etcd.
type StoredVM struct {
	HostID      string            `json:"hostId"`
	DatastoreID string            `json:"datastoreId"`
	Request     scheduler.Request `json:"request"`
	Reserved    bool              `json:"reserved"`
	// ProjectID and Cost: what Charged charged the project (a VM whose
	// create failed stays, ERROR, holding nothing).
	ProjectID string              `json:"projectId"`
	Cost      []api.QuotaLineItem `json:"cost"`
	Charged   bool                `json:"charged"`
}

// FleetState is hosts, datastores, their usage and the VMs, as etcd held
// them at one revision.
type FleetState struct {
	Rev            int64
	Hosts          map[string]hosts.Record
	Usage          map[string]hosts.Usage
	Datastores     map[string]api.Datastore
	DatastoreUsage map[string]hosts.DatastoreUsage
	VMs            map[string]StoredVM
}

// ReadFleet reads the fleet in one etcd transaction: every range at the
// same revision.
func ReadFleet(ctx context.Context, st *store.Store) (*FleetState, error) {
	prefixes := []string{"hosts", "hostusage", "datastores", "dsusage", "vms"}
	ops := make([]clientv3.Op, len(prefixes))
	for i, p := range prefixes {
		ops[i] = clientv3.OpGet(store.Prefix(p), clientv3.WithPrefix())
	}
	resp, err := st.Client().Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, err
	}
	s := &FleetState{Rev: resp.Header.Revision}
	decode := func(i int, put func(id string, b []byte) error) error {
		for _, kv := range resp.Responses[i].GetResponseRange().Kvs {
			id := strings.TrimPrefix(string(kv.Key), store.Prefix(prefixes[i]))
			if err := put(id, kv.Value); err != nil {
				return fmt.Errorf("%s: %w", kv.Key, err)
			}
		}
		return nil
	}
	s.Hosts, s.Usage, s.Datastores, s.DatastoreUsage, s.VMs = map[string]hosts.Record{}, map[string]hosts.Usage{}, map[string]api.Datastore{},
		map[string]hosts.DatastoreUsage{}, map[string]StoredVM{}
	for i, put := range []func(string, []byte) error{
		func(id string, b []byte) error { return into(s.Hosts, id, b) },
		func(id string, b []byte) error { return into(s.Usage, id, b) },
		func(id string, b []byte) error { return into(s.Datastores, id, b) },
		func(id string, b []byte) error { return into(s.DatastoreUsage, id, b) },
		func(id string, b []byte) error { return into(s.VMs, id, b) },
	} {
		if err := decode(i, put); err != nil {
			return nil, err
		}
	}
	return s, nil
}

func into[T any](m map[string]T, id string, b []byte) error {
	var v T
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	m[id] = v
	return nil
}

// Placed counts the VMs holding a host.
func (s *FleetState) Placed() int {
	n := 0
	for _, v := range s.VMs {
		if v.Reserved {
			n++
		}
	}
	return n
}

// Violations lists every broken invariant: a host's usage over its
// capacity × overcommit, or not the sum of the VMs placed on it; the same
// for datastores' space; a VM placed on a host that does not exist.
func (s *FleetState) Violations(cpuR, memR float64) []string {
	var bad []string
	sum := map[string]hosts.Usage{}
	dsSum := map[string]float64{}
	for id, v := range s.VMs {
		if !v.Reserved {
			continue
		}
		if _, ok := s.Hosts[v.HostID]; !ok {
			bad = append(bad, fmt.Sprintf("VM %s holds unknown host %q", id, v.HostID))
		}
		u := sum[v.HostID]
		u.CPU += v.Request.CPU
		u.MemoryMB += v.Request.MemoryMB
		u.VMs++
		sum[v.HostID] = u
		dsSum[v.DatastoreID] += v.Request.DiskGB
	}
	for id, u := range s.Usage {
		h, ok := s.Hosts[id]
		if !ok {
			if u != (hosts.Usage{}) {
				bad = append(bad, fmt.Sprintf("usage %+v of unknown host %s", u, id))
			}
			continue
		}
		cr, mr := Overcommit(h.Metadata, cpuR, memR)
		capCPU, capMem := int(float64(h.Capacity.CPUCount)*cr), int64(float64(h.Capacity.MemoryMB)*mr)
		if u.CPU > capCPU {
			bad = append(bad, fmt.Sprintf("host %s over CPU: %d used of %d × %v = %d", h.Address, u.CPU, h.Capacity.CPUCount, cr, capCPU))
		}
		if u.MemoryMB > capMem {
			bad = append(bad, fmt.Sprintf("host %s over memory: %d MB used of %d × %v = %d MB", h.Address, u.MemoryMB, h.Capacity.MemoryMB, mr, capMem))
		}
	}
	for id, h := range s.Hosts {
		if u, want := s.Usage[id], sum[id]; u != want {
			bad = append(bad, fmt.Sprintf("host %s usage %+v, its VMs add up to %+v", h.Address, u, want))
		}
	}
	for id, ds := range s.Datastores {
		used := s.DatastoreUsage[id].UsedGB
		if used > ds.CapacityGB+1e-9 {
			bad = append(bad, fmt.Sprintf("datastore %s over capacity: %v GB used of %v", id, used, ds.CapacityGB))
		}
		if math.Abs(used-dsSum[id]) > 1e-6 {
			bad = append(bad, fmt.Sprintf("datastore %s usage %v GB, its VMs' disks add up to %v GB", id, used, dsSum[id]))
		}
	}
	sort.Strings(bad)
	return bad
}

// Summary is each host's usage against its capacity × overcommit.
func (s *FleetState) Summary(cpuR, memR float64) string {
	var parts []string
	for id, h := range s.Hosts {
		cr, mr := Overcommit(h.Metadata, cpuR, memR)
		u := s.Usage[id]
		parts = append(parts, fmt.Sprintf("%s %d VMs, CPU %d/%d, memory %d/%d GB", h.Address, u.VMs,
			u.CPU, int(float64(h.Capacity.CPUCount)*cr), u.MemoryMB/1024, int64(float64(h.Capacity.MemoryMB)*mr)/1024))
	}
	sort.Strings(parts)
	return strings.Join(parts, "; ")
}

// ProjectUsageViolations compares each quota item of a project (read
// through the API) with what the project holds: the costs of the VMs
// charged to it in fs (read from etcd; nothing may change between that
// read and this check) and of its persistent disks, summed per key in the
// item's unit.
func ProjectUsageViolations(ctx context.Context, cl *client.Client, fs *FleetState, projectID string) ([]string, error) {
	q, err := cl.GetProjectQuota(ctx, projectID)
	if err != nil {
		return nil, err
	}
	disks, err := cl.ListDisks(ctx, projectID, "")
	if err != nil {
		return nil, err
	}
	var costs [][]api.QuotaLineItem
	for _, v := range fs.VMs {
		if v.ProjectID == projectID && v.Charged {
			costs = append(costs, v.Cost)
		}
	}
	vms := len(costs)
	for _, d := range disks {
		costs = append(costs, d.Cost)
	}
	sum := map[string]float64{}
	for _, c := range costs {
		for _, it := range c {
			if qi, ok := q.QuotaItems[it.Key]; ok {
				sum[it.Key] += api.ConvertUnit(it.Value, it.Unit, qi.Unit)
			}
		}
	}
	var bad []string
	for k, qi := range q.QuotaItems {
		if math.Abs(qi.Usage-sum[k]) > 1e-6*max(1, qi.Limit) {
			bad = append(bad, fmt.Sprintf("project %s %s usage %v %s, its %d charged VMs and %d disks add up to %v", projectID, k, qi.Usage, qi.Unit, vms, len(disks), sum[k]))
		}
	}
	sort.Strings(bad)
	return bad, nil
}

// UnfinishedTasks lists the tasks not COMPLETED nor ERROR.
func UnfinishedTasks(ctx context.Context, cl *client.Client) ([]api.Task, error) {
	ts, err := cl.ListTasks(ctx, client.TaskFilter{})
	if err != nil {
		return nil, err
	}
	var out []api.Task
	for _, t := range ts {
		if !t.Done() {
			out = append(out, t)
		}
	}
	return out, nil
}

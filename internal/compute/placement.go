package compute

import (
	"context"
	"errors"
	"hash/fnv"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/hosts"
	"github.com/photon-cloud/photon/internal/scheduler"
	"github.com/photon-cloud/photon/internal/store"
)

// Placer places on a (possibly stale) view of the fleet: the fleet index.
type Placer interface {
	Place(ctx context.Context, r *scheduler.Request) (scheduler.Decision, error)
	// CatchUp waits until the view has seen every change committed so far.
	CatchUp(ctx context.Context) error
}

// SetPlacer makes placements use p (the fleet index) instead of reading
// the whole fleet from etcd for each.
func (s *Service) SetPlacer(p Placer) {
	s.placer = p
	s.batch.catchUp = p.CatchUp
}

// recordCopier is a Placer that also holds the hosts' and datastores'
// records and usage records (the fleet index): see fleet.Index.Copy.
type recordCopier interface {
	Copy(key string) ([]byte, int64, bool)
}

// seedCopies seeds tx with the records Reserve reads for d (the host's
// and datastore's records and usage records) from the placer's copies:
// most creates then read nothing of the host from etcd, in a scratch run
// or in the batch's own (with 5,000 hosts, a batch's hosts are rarely
// the batch before's, and the first create on a host need not read its
// records). The copies lag the commits, but a record this controller
// wrote is not taken from them: tx knows it already, from the commits
// under way (the batch's base) or from what the store keeps of its own
// commits (store.KeepRecent, which the controller asks of usage records).
// A copy stale after all (another controller, a record dropped from what
// the store keeps) makes the batch's commit conflict; the view then
// catches up before the batch runs again.
func (s *Service) seedCopies(tx *store.Txn, d scheduler.Decision) {
	c, ok := s.placer.(recordCopier)
	if !ok || d.HostID == "" {
		return
	}
	for _, keys := range [][]string{hosts.RecordKeys(d), hosts.UsageKeys(d)} {
		for _, k := range keys {
			if tx.Knows(k) {
				continue
			}
			if val, rev, ok := c.Copy(k); ok {
				tx.SeedKV(k, val, rev)
			}
		}
	}
}

// place chooses a host for req. On a refusal from a possibly stale view it
// catches up and tries again, so that a refusal is never due to lag.
func (s *Service) place(ctx context.Context, req *scheduler.Request) (scheduler.Decision, error) {
	if s.placer == nil {
		hs, err := s.hosts.Fleet(ctx)
		if err != nil {
			return scheduler.Decision{}, err
		}
		return scheduler.Place(&scheduler.Fleet{Hosts: hs}, req)
	}
	d, err := s.placer.Place(ctx, req)
	var ae *api.Error
	if errors.As(err, &ae) {
		if cerr := s.placer.CatchUp(ctx); cerr != nil {
			return d, cerr
		}
		d, err = s.placer.Place(ctx, req)
	}
	return d, err
}

// stale is what an attempt returns when the commit-time check found the
// view stale: the view catches up and the attempt runs again.
func (s *Service) stale(ctx context.Context) error {
	if s.placer != nil {
		if err := s.placer.CatchUp(ctx); err != nil {
			return err
		}
	}
	return store.ErrConflict
}

func groupKey(projectID, name string) string { return store.Key("placement-groups", projectID, name) }

// groupRecord is a placement group as stored: its policy and members.
type groupRecord struct {
	scheduler.Group
	// Members: VM id -> where it is.
	Members map[string]groupMember `json:"members"`
}

type groupMember struct {
	Host string `json:"host"`
	Zone string `json:"zone,omitempty"`
}

// validateGroup checks a placement group spec and fills its defaults.
func validateGroup(g *api.PlacementGroupSpec) error {
	if err := api.ValidateName("placementGroup.name", g.Name); err != nil {
		return err
	}
	switch g.Policy {
	case "":
		g.Policy = api.PlacementAntiAffinity
	case api.PlacementAntiAffinity, api.PlacementAffinity:
	default:
		return api.FieldError("placementGroup.policy", "want anti-affinity or affinity, got %q", g.Policy)
	}
	switch g.Scope {
	case "":
		g.Scope = api.PlacementScopeHost
	case api.PlacementScopeHost, api.PlacementScopeZone:
	default:
		return api.FieldError("placementGroup.scope", "want host or zone, got %q", g.Scope)
	}
	return nil
}

// readGroup reads the VM's placement group in tx (its revision becomes a
// condition of the commit, so concurrent members cannot both take a host
// a strict group forbids) and returns it with its members.
func readGroup(ctx context.Context, tx *store.Txn, projectID string, spec *api.PlacementGroupSpec) (*groupRecord, error) {
	var g groupRecord
	ok, err := tx.Get(ctx, groupKey(projectID, spec.Name), &g)
	if err != nil {
		return nil, err
	}
	if !ok {
		g = groupRecord{Group: scheduler.Group{Name: spec.Name, Policy: spec.Policy, Scope: spec.Scope, Strict: spec.Strict},
			Members: map[string]groupMember{}}
	} else if g.Policy != spec.Policy || g.Scope != spec.Scope || g.Strict != spec.Strict {
		return nil, api.FieldError("placementGroup", "group %s is %s per %s (strict %v)", g.Name, g.Policy, g.Scope, g.Strict)
	}
	g.Hosts, g.Zones = map[string]int{}, map[string]int{}
	for _, m := range g.Members {
		g.Hosts[m.Host]++
		if m.Zone != "" {
			g.Zones[m.Zone]++
		}
	}
	return &g, nil
}

// joinGroup records a placed VM as a member of its group.
func joinGroup(tx *store.Txn, projectID string, g *groupRecord, vmID, host, zone string) error {
	if g.Members == nil {
		g.Members = map[string]groupMember{}
	}
	g.Members[vmID] = groupMember{Host: host, Zone: zone}
	return tx.Put(groupKey(projectID, g.Name), g)
}

// leaveGroup removes a VM from its group; the last member takes the group.
func leaveGroup(ctx context.Context, tx *store.Txn, v *vmRecord) error {
	if v.Request.Group == nil {
		return nil
	}
	k := groupKey(v.ProjectID, v.Request.Group.Name)
	var g groupRecord
	if ok, err := tx.Get(ctx, k, &g); err != nil || !ok {
		return err
	}
	if _, ok := g.Members[v.ID]; !ok {
		return nil
	}
	delete(g.Members, v.ID)
	if len(g.Members) == 0 {
		tx.Delete(k)
		return nil
	}
	return tx.Put(k, &g)
}

// errDryRun ends a dry run's transaction without committing it.
var errDryRun = errors.New("dry run")

// PreviewVM answers a dry run of CreateVM: everything a create checks
// (spec, quota, names, placement) on the current state, then where the VM
// would go and how the hosts scored, with nothing written.
func (s *Service) PreviewVM(ctx context.Context, projectID string, spec *api.VMCreateSpec) (*api.PlacementPreview, error) {
	pv := &api.PlacementPreview{Eliminated: map[string]int{}, Candidates: []api.PlacementCandidate{}}
	id, fn, _, err := s.createVMTxn(ctx, projectID, spec, pv, nil)
	if err != nil {
		return nil, err
	}
	_, err = s.st.Update(ctx, func(tx *store.Txn) error {
		t, err := s.tasks.NewTask(OpCreateVM, api.Entity{ID: id, Kind: api.KindVM}, "", projectID)
		if err != nil {
			return err
		}
		return fn(tx, t, false)
	})
	if errors.Is(err, errDryRun) {
		return pv, nil
	}
	if err == nil {
		err = errors.New("dry run ended without a decision")
	}
	return nil, err
}

// preview fills a dry run's answer from a decision or a refusal.
func preview(pv *api.PlacementPreview, d scheduler.Decision, perr *api.Error) {
	if perr != nil {
		pv.Placed, pv.Error = false, perr
		for r, n := range perr.Data {
			var k int
			for _, c := range n {
				if c < '0' || c > '9' {
					k = -1
					break
				}
				k = k*10 + int(c-'0')
			}
			if k >= 0 {
				pv.Eliminated[r] = k
				pv.Hosts += k
			}
		}
		pv.Considered = pv.Hosts
		return
	}
	pv.Placed, pv.HostID, pv.DatastoreID, pv.Score = true, d.HostID, d.DatastoreID, d.Score
	if sc := d.Scoring; sc != nil {
		pv.Hosts, pv.Considered, pv.Feasible = sc.Hosts, sc.Considered, sc.Feasible
		for r, n := range sc.Eliminated {
			pv.Eliminated[r] = n
		}
		for _, c := range sc.Top {
			pv.Candidates = append(pv.Candidates, api.PlacementCandidate{HostID: c.HostID, DatastoreID: c.DatastoreID, Score: c.Score})
		}
	}
}

// seedOf makes a VM's placement choices repeatable (group commit runs a
// create twice: once to prefetch what it reads, once for real).
func seedOf(id string) uint64 {
	h := fnv.New64a()
	h.Write([]byte(id))
	return h.Sum64() | 1
}

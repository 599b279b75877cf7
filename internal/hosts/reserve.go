package hosts

import (
	"context"
	"fmt"
	"math"
	"strings"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/scheduler"
	"github.com/photon-cloud/photon/internal/store"
)

// UsageKeys are the usage records Reserve reads and writes for d: the
// host's, and its datastore's if d names one.
func UsageKeys(d scheduler.Decision) []string {
	if d.DatastoreID == "" {
		return []string{usageKey(d.HostID)}
	}
	return []string{usageKey(d.HostID), dsUsageKey(d.DatastoreID)}
}

// RecordKeys are the records Reserve reads (and is conditioned on) for d
// besides the usage records: the host's, and its datastore's if d names
// one.
func RecordKeys(d scheduler.Decision) []string {
	if d.DatastoreID == "" {
		return []string{hostKey(d.HostID)}
	}
	return []string{hostKey(d.HostID), dsKey(d.DatastoreID)}
}

// Reserve re-checks, inside tx, that req fits on the chosen host (and
// datastore) with the same Fit the scheduler used, on the records tx reads,
// and adds req to their usage; it returns the host's record as read. A
// host that no longer fits is a placement refusal explaining why.
func (s *Service) Reserve(ctx context.Context, tx *store.Txn, d scheduler.Decision, req *scheduler.Request) (*Record, error) {
	// The host's and datastore's records (rarely written) from the cache,
	// their usage (written by every placement there) from etcd: at most
	// two round trips, none when the batch before read or wrote them or
	// tx is seeded with them (the fleet index's copies).
	if err := s.records.Seed(ctx, tx, RecordKeys(d)...); err != nil {
		return nil, err
	}
	if err := tx.Prefetch(ctx, UsageKeys(d)...); err != nil {
		return nil, err
	}
	var h Record
	if err := tx.MustGet(ctx, hostKey(d.HostID), &h); err != nil {
		return nil, notFound(d.HostID)
	}
	var u Usage
	if _, err := tx.Get(ctx, usageKey(d.HostID), &u); err != nil {
		return nil, err
	}
	dss := map[string]api.Datastore{}
	dsu := map[string]DatastoreUsage{}
	for _, id := range h.DatastoreIDs {
		if id != d.DatastoreID {
			continue // only the chosen datastore is read (and conditioned on)
		}
		var ds api.Datastore
		var du DatastoreUsage
		if _, err := tx.Get(ctx, dsKey(id), &ds); err != nil {
			return nil, err
		}
		if _, err := tx.Get(ctx, dsUsageKey(id), &du); err != nil {
			return nil, err
		}
		dss[id], dsu[id] = ds, du
	}
	v := s.view(&h, u, dss, dsu)
	if d.DatastoreID != "" {
		v.Datastores = pick(v.Datastores, d.DatastoreID)
	}
	ds, reason := scheduler.Fit(&v, req)
	if reason != "" {
		return nil, scheduler.Explain(1, map[string]int{reason: 1})
	}
	u.CPU += req.CPU
	u.MemoryMB += req.MemoryMB
	u.VMs++
	if err := tx.Put(usageKey(d.HostID), u); err != nil {
		return nil, err
	}
	if req.DiskGB > 0 {
		var err error
		if rec, ok := dss[ds]; ok {
			err = putDatastoreUsage(tx, ds, &rec, dsu[ds], req.DiskGB) // read above
		} else {
			err = s.addDatastoreUsage(ctx, tx, ds, req.DiskGB)
		}
		if err != nil {
			return nil, err
		}
	}
	return &h, nil
}

func pick(dss []scheduler.Datastore, id string) []scheduler.Datastore {
	for _, d := range dss {
		if d.ID == id {
			return []scheduler.Datastore{d}
		}
	}
	return nil
}

// Release returns what Reserve added (a VM leaving its host).
func (s *Service) Release(ctx context.Context, tx *store.Txn, hostID, datastoreID string, req *scheduler.Request) error {
	var u Usage
	if ok, err := tx.Get(ctx, usageKey(hostID), &u); err != nil {
		return err
	} else if ok {
		u.CPU = max(0, u.CPU-req.CPU)
		u.MemoryMB = max(0, u.MemoryMB-req.MemoryMB)
		u.VMs = max(0, u.VMs-1)
		if err := tx.Put(usageKey(hostID), u); err != nil {
			return err
		}
	}
	if req.DiskGB > 0 && datastoreID != "" {
		return s.addDatastoreUsage(ctx, tx, datastoreID, -req.DiskGB)
	}
	return nil
}

// ReserveDatastore adds gb to a datastore's usage in tx (a persistent
// disk), refusing when it does not fit; negative gb releases.
func (s *Service) ReserveDatastore(ctx context.Context, tx *store.Txn, id string, gb float64) error {
	return s.addDatastoreUsage(ctx, tx, id, gb)
}

func (s *Service) addDatastoreUsage(ctx context.Context, tx *store.Txn, id string, gb float64) error {
	var ds api.Datastore
	if ok, err := tx.Get(ctx, dsKey(id), &ds); err != nil {
		return err
	} else if !ok {
		if gb < 0 {
			return nil
		}
		return api.Errorf("DatastoreNotFound", "datastore %s not found", id)
	}
	var du DatastoreUsage
	if _, err := tx.Get(ctx, dsUsageKey(id), &du); err != nil {
		return err
	}
	return putDatastoreUsage(tx, id, &ds, du, gb)
}

// putDatastoreUsage writes datastore id's usage du (as read in tx) plus
// gb, refusing when it does not fit ds.
func putDatastoreUsage(tx *store.Txn, id string, ds *api.Datastore, du DatastoreUsage, gb float64) error {
	if gb > 0 && du.UsedGB+gb > ds.CapacityGB+1e-9 {
		return api.Errorf("NotEnoughDatastoreCapacity", "datastore %s has %s GB free, %s GB needed",
			ds.Name, fmt.Sprint(math.Max(0, ds.CapacityGB-du.UsedGB)), fmt.Sprint(gb))
	}
	du.UsedGB = math.Max(0, du.UsedGB+gb)
	return tx.Put(dsUsageKey(id), du)
}

// HostOf reads, in tx, a host's record (e.g. to check it is alive or sees
// a datastore), through the cache Reserve reads it through.
func (s *Service) HostOf(ctx context.Context, tx *store.Txn, id string) (*Record, error) {
	if err := s.records.Seed(ctx, tx, hostKey(id)); err != nil {
		return nil, err
	}
	var h Record
	if err := tx.MustGet(ctx, hostKey(id), &h); err != nil {
		return nil, notFound(id)
	}
	return &h, nil
}

// PlaceDisk chooses a datastore for a persistent disk of gb: the one with
// the most room among candidates (all datastores when candidates is nil).
func (s *Service) PlaceDisk(ctx context.Context, gb float64, candidates []string) (string, error) {
	dss, err := storeMap[api.Datastore](ctx, s.st, store.Prefix("datastores"))
	if err != nil {
		return "", err
	}
	dsu, err := storeMap[DatastoreUsage](ctx, s.st, store.Prefix("dsusage"))
	if err != nil {
		return "", err
	}
	best, bestFree, lacking := "", -1.0, 0
	for id, ds := range dss {
		if candidates != nil && !contains(candidates, id) {
			continue
		}
		free := ds.CapacityGB - dsu[id].UsedGB
		if free+1e-9 < gb {
			lacking++
			continue
		}
		if free > bestFree || (free == bestFree && id < best) {
			best, bestFree = id, free
		}
	}
	if best == "" {
		if lacking == 0 {
			return "", api.Errorf("NotEnoughDatastoreCapacity", "no datastore to place the disk on")
		}
		return "", api.Errorf("NotEnoughDatastoreCapacity", "no datastore fits %v GB: %d lacked capacity", gb, lacking)
	}
	return best, nil
}

func contains(l []string, s string) bool {
	for _, x := range l {
		if x == s {
			return true
		}
	}
	return false
}

// LocalName is the name a host knows a datastore by (its id is
// "<host>.<name>", or "shared.<name>" for shared ones).
func LocalName(datastoreID string) string {
	_, name, ok := strings.Cut(datastoreID, ".")
	if !ok {
		return datastoreID
	}
	return name
}

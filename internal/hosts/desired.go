package hosts

import (
	"context"
	"slices"
	"strings"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// hostPrefixes are the per-host records that make up a host's desired
// state: desired/<host>/..., consolereq/<host>/..., diskgc/<host>/...,
// desired-net/<host>/... (see netdesired.go). They and the per-router
// desired-rhost/<router>/... and desired-rsub/<router>/... (hubPrefixes)
// are mirrored in memory
// (store.Mirror, one watch whatever the number of hosts), whose changes
// wake the host's long poll.
var (
	hostPrefixes = []string{"desired", "consolereq", "diskgc", "desired-net"}
	hubPrefixes  = append(slices.Clip(hostPrefixes), "desired-rhost", "desired-rsub")
)

// DesiredVersion is a number that grows whenever the host's desired state
// may have changed, as this controller's watch has seen it (0 while the
// watch is not up).
func (s *Service) DesiredVersion(host string) int64 { return s.hub.Version(host) }

// DesiredState is a host's desired state as Desired answers it. Its VMs
// are their records as stored (each the JSON of an api.VMDesired, as the
// controller wrote it), carried as they are rather than decoded and
// encoded again for every answer: a host's answer lists all its VMs.
type DesiredState struct {
	api.HostDesiredState
	VMs [][]byte // stand for HostDesiredState.VMs, left nil
	// vmIDs and vmRevs are, for each of VMs, the VM and the mod revision
	// of its record.
	vmIDs  []string
	vmRevs []int64
}

// Diff makes d a desired state of changes (api.HostDesiredState.Changes)
// against the one last sent, whose VMs' records' revisions sent holds (by
// VM id): VMs keeps only those whose record is not the one sent, and
// RemovedVMs names those sent that d no longer lists. It returns the
// revisions of d's VMs, all of them, for the next call. With sent nil
// (none sent yet), d stays whole.
func (d *DesiredState) Diff(sent map[string]int64) map[string]int64 {
	now := make(map[string]int64, len(d.vmIDs))
	for i, id := range d.vmIDs {
		now[id] = d.vmRevs[i]
	}
	if sent == nil {
		return now
	}
	changed := d.VMs[:0:0]
	for i, id := range d.vmIDs {
		if rev, ok := sent[id]; !ok || rev != d.vmRevs[i] {
			changed = append(changed, d.VMs[i])
		}
	}
	for id := range sent {
		if _, ok := now[id]; !ok {
			d.RemovedVMs = append(d.RemovedVMs, id)
		}
	}
	slices.Sort(d.RemovedVMs)
	d.VMs, d.vmIDs, d.vmRevs, d.Changes = changed, nil, nil, true
	return now
}

// MarshalJSON is AppendJSON for encoding/json, so that no encoder can send
// the embedded, empty VM list instead: an agent would take it for "no VM
// desired" and delete every VM it runs. (Slower: encoding/json scans what
// it returns again; the API server calls AppendJSON.)
func (d *DesiredState) MarshalJSON() ([]byte, error) { return d.AppendJSON(nil) }

// AppendJSON appends the desired state's JSON (an api.HostDesiredState) to
// b. The VMs' records go in as they are: encoding/json would scan each
// again (json.RawMessage is compacted), costing what decoding it does.
func (d *DesiredState) AppendJSON(b []byte) ([]byte, error) {
	rest, err := store.Encode(struct {
		*api.HostDesiredState
		VMs []api.VMDesired `json:"vms,omitempty"` // hides the embedded field: the records go first
	}{HostDesiredState: &d.HostDesiredState})
	if err != nil {
		return b, err
	}
	n := len(rest) + len(`{"vms":[],`)
	for _, v := range d.VMs {
		n += len(v) + 1
	}
	b = slices.Grow(b, n)
	b = append(b, `{"vms":[`...)
	for i, v := range d.VMs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, v...)
	}
	b = append(b, "],"...)
	return append(b, rest[1:]...), nil // rest is {"hostId":...}
}

// PeerCoalesce is how long a host's desired state waits, when only its
// subnets' peers changed, for more changes to send together.
const PeerCoalesce = 250 * time.Millisecond

// Desired answers an agent's long poll: the host's desired state once it
// has changed after revision after (0: at once), or as it stands after wait.
func (s *Service) Desired(ctx context.Context, hostID string, after int64, wait time.Duration, images func(context.Context) ([]string, error)) (*DesiredState, error) {
	if after > 0 {
		// Its own records, and those of each router it has ports on
		// (their hosts and subnets).
		ids := append([]string{hostID}, s.routerIDs(hostID)...)
		revs := make([]int64, len(ids))
		for i := range revs {
			revs[i] = after
		}
		start := time.Now()
		s.hub.WaitAny(ctx, ids, revs, wait)
		if len(ids) > 1 && s.hub.Version(hostID) <= after {
			// Woken only by its routers' records (another host joined
			// or left one, a subnet got its first port or lost its
			// last): such changes come in bursts (a new host joins
			// every router its VMs need; a fleet filling up), and each
			// would send every host of the router its whole
			// network. Coalesced for up to PeerCoalesce, the host's own
			// changes still ending the wait at once.
			s.hub.Wait(ctx, hostID, after, min(PeerCoalesce, max(0, wait-time.Since(start))))
		}
	}
	// From the mirror (or, while its watch is down, etcd), at one
	// revision, that the next poll waits after.
	lists, rev, err := s.hostLists(ctx, hostID)
	if err != nil {
		return nil, err
	}
	vms := make([][]byte, len(lists[0]))
	ids := make([]string, len(lists[0]))
	revs := make([]int64, len(lists[0]))
	for i, kv := range lists[0] {
		vms[i], ids[i], revs[i] = kv.Value, kv.Key[strings.LastIndexByte(kv.Key, '/')+1:], kv.Rev
	}
	consoles, err := store.DecodeAll[api.ConsoleSession](lists[1])
	if err != nil {
		return nil, err
	}
	gone, err := store.DecodeAll[api.DiskDesired](lists[2])
	if err != nil {
		return nil, err
	}
	nets, err := s.networks(ctx, hostID, lists[3])
	if err != nil {
		return nil, err
	}
	ds := &DesiredState{HostDesiredState: api.HostDesiredState{HostID: hostID, Revision: rev, Images: []string{}, Consoles: consoles,
		DeleteDisks: gone, PartialReports: true, Networks: nets}, VMs: vms, vmIDs: ids, vmRevs: revs}
	if images != nil {
		if ds.Images, err = images(ctx); err != nil {
			return nil, err
		}
	}
	return ds, nil
}

// Assigned reports whether a VM the host should run boots from image
// (its credential may then fetch the image).
func (s *Service) Assigned(ctx context.Context, hostID, imageID string) (bool, error) {
	lists, _, err := s.hostLists(ctx, hostID)
	if err != nil {
		return false, err
	}
	vms, err := store.DecodeAll[api.VMDesired](lists[0])
	if err != nil {
		return false, err
	}
	for _, v := range vms {
		for _, d := range v.Disks {
			if d.ImageID == imageID {
				return true, nil
			}
		}
	}
	return false, nil
}

// hostLists reads the host's records under each of hostPrefixes, in that
// order, and the revision they are at: from the mirror, or etcd while its
// watch is down.
func (s *Service) hostLists(ctx context.Context, hostID string) ([][]store.KV, int64, error) {
	if lists, rev, ok := s.mirror.Read(hostID, hostPrefixes...); ok {
		return lists, rev, nil
	}
	prefixes := make([]string, len(hostPrefixes))
	for i, p := range hostPrefixes {
		prefixes[i] = store.Prefix(p, hostID)
	}
	return s.st.Lists(ctx, prefixes...)
}

// DesiredKeys returns the keys under the host's desired prefix (see
// DesiredKey; not only VMs'): from the mirror, or etcd while the mirror
// is not up. The mirror's view is a read from a moment ago: a change it
// has not seen yet is one a read just before that change would miss too.
func (s *Service) DesiredKeys(ctx context.Context, hostID string) ([]string, error) {
	if lists, _, ok := s.mirror.Read(hostID, "desired"); ok {
		keys := make([]string, len(lists[0]))
		for i, kv := range lists[0] {
			keys[i] = kv.Key
		}
		return keys, nil
	}
	return s.st.Keys(ctx, DesiredPrefix(hostID))
}

// DiskGCPrefix holds the persistent disks a host should delete from its
// datastores: deleted disks whose files it may hold.
func DiskGCPrefix(host string) string { return store.Prefix("diskgc", host) }

// DiskGCKey is one such disk.
func DiskGCKey(host, disk string) string { return store.Key("diskgc", host, disk) }

// ForgetDeletedDisks drops the records of disks a host reports deleted.
func (s *Service) ForgetDeletedDisks(ctx context.Context, hostID string, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	_, err := s.st.Update(ctx, func(tx *store.Txn) error {
		for _, id := range ids {
			tx.Delete(DiskGCKey(hostID, id))
		}
		return nil
	})
	return err
}

// DiskHost names the host that holds a datastore's files for disk cleanup:
// the host of a local datastore, or the first host seeing a shared one.
func (s *Service) DiskHost(ctx context.Context, tx *store.Txn, datastoreID string) (string, error) {
	var ds api.Datastore
	ok, err := tx.Get(ctx, dsKey(datastoreID), &ds)
	if err != nil || !ok || len(ds.HostIDs) == 0 {
		return "", err
	}
	return ds.HostIDs[0], nil
}

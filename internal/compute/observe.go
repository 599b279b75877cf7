package compute

import (
	"context"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/hosts"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tasks"
)

// Observe records what a host reports of its VMs and wakes the tasks that
// wait for it. VMs the host should run but does not report are marked not
// present; the host's report is the truth about the host.
//
// A partial report (api.HostStatusReport.Partial) lists only the VMs
// whose observation changed since the host's last report (a VM no longer
// held: Gone): only those are read and written. A host's reports after
// each change then cost in proportion to the change, not to the VMs on
// the host; its full reports (its heartbeats) remain the truth.
func (s *Service) Observe(ctx context.Context, hostID string, observed []api.VMObserved, partial bool) error {
	if partial {
		return s.observePartial(ctx, hostID, observed)
	}
	// A heartbeat that repeats the host's last report, its desired state
	// unchanged since, would change nothing: skip its reads (every host
	// reports every few seconds). Once in a while one is observed anyway.
	ver, sum, now := s.hosts.DesiredVersion(hostID), digest(observed), time.Now()
	if s.seen.repeats(hostID, ver, sum, now) {
		s.seen.repeated.Add(1)
		return nil
	}
	byID := presentByID(observed)
	// The VMs the host should run: the keys under its desired prefix
	// (hosts.DesiredKey) name them; their values are not needed here.
	prefix := hosts.DesiredPrefix(hostID)
	desired, err := s.hosts.DesiredKeys(ctx, hostID)
	if err != nil {
		return err
	}
	ids := make([]string, 0, len(desired)+len(observed))
	seen := map[string]bool{}
	for _, k := range desired {
		id := strings.TrimPrefix(k, prefix)
		if id == "" || strings.Contains(id, "/") {
			continue // not a VM's desired state
		}
		ids, seen[id] = append(ids, id), true
	}
	for _, o := range observed {
		if !seen[o.ID] {
			ids = append(ids, o.ID) // being deleted: its record says whether it is gone
		}
	}
	last := s.seen.host(hostID)
	kicks, err := s.observeAll(ctx, hostID, byID, ids, last)
	if err != nil {
		return err
	}
	last.ver, last.sum, last.at, last.items = ver, sum, now, vmDigests(observed)
	if prev := s.seen.get(hostID); prev != nil && prev.ver == ver && prev.sum == sum {
		last.at = prev.at // a repeat observed anyway: the period runs from the first
	}
	s.seen.set(hostID, last)
	s.seen.observed.Add(1) // counted once recorded: a read after sees it
	s.kick(kicks)
	return nil
}

// observePartial records a partial report: only the VMs it lists. The
// host's per-VM seen cache (for its full reports) is left as it is: a VM
// the report changes has a new record revision or a new observation
// there, so the next full report reads it again. Its last full report no
// longer says what etcd holds, though: recorded, the partial report
// patches it (seenCache.patch), and the next full report is a repeat only
// if it is the last one with the partial reports' changes, the desired
// state unchanged since the last of them (e.g. a VM that crashed,
// reported in a partial report, and came back is observed).
func (s *Service) observePartial(ctx context.Context, hostID string, observed []api.VMObserved) error {
	s.seen.partial.Add(1)
	if len(observed) == 0 {
		return nil // a heartbeat with nothing new: nothing to record
	}
	ver := s.hosts.DesiredVersion(hostID)
	s.seen.changed(hostID)
	ids := make([]string, len(observed))
	for i, o := range observed {
		ids[i] = o.ID
	}
	kicks, err := s.observeAll(ctx, hostID, presentByID(observed), ids, &seenHost{now: map[string]seenVM{}})
	if err != nil {
		return err
	}
	s.seen.patch(hostID, ver, observed)
	s.kick(kicks)
	return nil
}

// presentByID indexes the VMs a report says the host holds (not Gone).
func presentByID(observed []api.VMObserved) map[string]api.VMObserved {
	byID := make(map[string]api.VMObserved, len(observed))
	for _, o := range observed {
		if !o.Gone {
			byID[o.ID] = o
		}
	}
	return byID
}

// observeAll records the report (byID: the VMs it says are present) for
// ids. A round trip reads the VMs and their locks, a transaction writes
// those that changed, conditioned on them (and their locks) only: a change
// to a VM the report leaves as it is does not make it retry. Chunks keep
// each transaction under etcd's operation limit.
func (s *Service) observeAll(ctx context.Context, hostID string, byID map[string]api.VMObserved, ids []string, seen *seenHost) ([]kick, error) {
	var kicks []kick
	for lo := 0; lo < len(ids); lo += observeChunk {
		k, err := s.observeSome(ctx, hostID, byID, ids[lo:min(lo+observeChunk, len(ids))], seen)
		if err != nil {
			return nil, err
		}
		kicks = append(kicks, k...)
	}
	return kicks, nil
}

// kick wakes the tasks a report's commits left to run.
func (s *Service) kick(kicks []kick) {
	for _, k := range kicks {
		for _, id := range k.tasks {
			s.tasks.KickTaskSeeded(id, k.seen)
		}
	}
}

// reportCommits bounds the group commits of reports under way at once
// (see store.Group): the reports that come meanwhile join the next.
const reportCommits = 2

// observeChunk bounds the VMs one transaction of Observe updates (a few
// conditions each: the VM, its lock, the task waiting).
const observeChunk = 50

func lockKey(id string) string { return store.Key("locks", id) }

// observeSome records the report for ids in one transaction and returns
// the tasks to kick.
func (s *Service) observeSome(ctx context.Context, hostID string, byID map[string]api.VMObserved, ids []string, seen *seenHost) ([]kick, error) {
	keys := make([]string, len(ids), 2*len(ids))
	for i, id := range ids {
		keys[i] = vmKey(id)
	}
	// With nothing known of the VMs' last observation (a partial report,
	// which lists changes only), most will change: their locks come in the
	// same round trip.
	if seen.last == nil {
		for _, id := range ids {
			keys = append(keys, lockKey(id))
		}
	}
	var kicks []string
	var last *store.Txn
	attempts := 0
	rev, err := s.reports.Update(ctx, func(tx *store.Txn) error {
		last = tx
		kicks = kicks[:0]
		attempts++
		// The records as this controller last wrote them, where it did
		// (mostly: the create or start the report shows); the commit is
		// conditioned on them. Again (a conflict), from etcd.
		getMany := s.st.GetManyRecent
		if attempts > 1 {
			getMany = s.st.GetMany
		}
		kvs, err := getMany(ctx, keys)
		if err != nil {
			return err
		}
		if err := s.readAgainMissing(ctx, kvs, len(ids)); err != nil {
			return err
		}
		for _, kv := range kvs[len(ids):] {
			tx.SeedKV(kv.Key, kv.Value, kv.Rev)
		}
		// The VMs the report changes; only their locks are read (a second
		// round trip, for a few keys instead of one per VM of the host).
		type change struct {
			id  string
			kv  store.KV
			rec *vmRecord // as read, the report applied
		}
		var changed []change
		var locks []string
		for i, id := range ids {
			vkv := kvs[i]
			if vkv.Value == nil {
				continue
			}
			o, present := byID[id]
			if seen.same(id, vkv.Rev, o, present) {
				continue // this record, this observation: no change last time
			}
			var v vmRecord
			if err := store.Decode(vkv.Value, &v); err != nil {
				return fmt.Errorf("decode %s: %w", vkv.Key, err)
			}
			if v.HostID != hostID || !observe(&v, byID, id) {
				seen.note(id, vkv.Rev, o, present)
				continue
			}
			changed, locks = append(changed, change{id, vkv, &v}), append(locks, lockKey(id))
		}
		if err := tx.Prefetch(ctx, locks...); err != nil {
			return err
		}
		var holders []string
		for _, c := range changed {
			id := c.id
			// Read again through tx (from the seed, not decoded again) so
			// that the commit is conditioned on the VM and its lock as read.
			tx.SeedKV(c.kv.Key, c.kv.Value, c.kv.Rev)
			if _, err := tx.Exists(ctx, c.kv.Key); err != nil {
				return err
			}
			holder, err := lockedBy(ctx, tx, id)
			if err != nil {
				return err
			}
			if holder != "" {
				holders = append(holders, holder)
			}
			// Handed over: the task's step taking it (getVM) need not
			// decode the record again.
			if err := tx.PutHanded(vmKey(id), c.rec); err != nil {
				return err
			}
		}
		// The tasks waiting for what the report shows (a create waiting
		// for its VM to exist, a start for it to run) take their step in
		// this commit: a transaction per VM less, and the VM written once.
		// One that cannot is kicked, after the commit, as one that
		// completed a step but not its last is. The tasks' records are
		// conditions of the commit: if it conflicts (a task run meanwhile,
		// e.g. by the request that submitted it), the report is recorded
		// again without them and the tasks kicked.
		if attempts > 1 {
			kicks = append(kicks, holders...)
			return nil
		}
		taskKeys := make([]string, len(holders))
		for i, id := range holders {
			taskKeys[i] = tasks.Key(id)
		}
		if err := tx.Prefetch(ctx, taskKeys...); err != nil {
			return err
		}
		for _, id := range holders {
			run, err := s.tasks.Advance(ctx, tx, id)
			if err != nil {
				return err
			}
			if run {
				kicks = append(kicks, id)
			}
		}
		return nil
	})
	if err != nil || len(kicks) == 0 {
		return nil, err
	}
	// The woken tasks read the VMs from this commit, not etcd.
	return []kick{{tasks: kicks, seen: store.Committed(last, rev)}}, nil
}

// readAgainMissing reads again, linearizably, the VM records among
// kvs[:n] that a serializable read found absent, and their locks among
// kvs[n:] (read for each VM, if at all), in place. A host learns of a new
// VM from its desired state, which the hub sends once etcd's watch
// delivers the write; etcd notifies watchers before the write is visible
// to reads, so a simulated host's report of the VM can come back faster
// than a serializable read sees its record. Skipped as absent, the VM was
// never observed, the host took its report as recorded, and the create
// waited for the host's next full report (bench/fleet: one VM in 30,000
// in some runs, 39-56 s instead of at most 12).
func (s *Service) readAgainMissing(ctx context.Context, kvs []store.KV, n int) error {
	var idx []int
	for i, kv := range kvs[:n] {
		if kv.Value == nil {
			idx = append(idx, i)
			if len(kvs) > n {
				idx = append(idx, n+i)
			}
		}
	}
	if len(idx) == 0 {
		return nil
	}
	keys := make([]string, len(idx))
	for j, i := range idx {
		keys[j] = kvs[i].Key
	}
	again, err := s.st.GetManyLinearizable(ctx, keys)
	if err != nil {
		return err
	}
	for j, i := range idx {
		kvs[i] = again[j]
	}
	return nil
}

// kick is the tasks one commit of Observe wakes, with what it wrote.
type kick struct {
	tasks []string
	seen  *store.Snapshot
}

// observe applies what the host reports of VM id (absent from byID: not
// present) to v and reports whether v changed.
func observe(v *vmRecord, byID map[string]api.VMObserved, id string) bool {
	o, present := byID[id]
	changed := v.Present != present
	v.Present = present
	if present {
		if o.Generation > v.Observed {
			v.Observed, changed = o.Generation, true
		}
		if o.Error != v.HostErr {
			v.HostErr, changed = o.Error, true
		}
		// The observed power state is the VM's state once the VM
		// exists (CREATING until its create step ends). A placed VM
		// that crashed (ERROR) and was booted again comes back; one
		// whose create failed holds no place and stays ERROR.
		if v.State != api.VMCreating && (v.State != api.VMError || v.Reserved) && o.State != "" && o.State != v.State && o.Generation >= v.Generation {
			v.State, changed = o.State, true
		}
	}
	return changed
}

// seenCache remembers, per host and VM, the record revision and the
// observation that last changed nothing: a report that repeats it (most
// heartbeats) skips decoding the record. A record at a given revision is
// always the same bytes, and observe depends on nothing else.
type seenCache struct {
	mu    sync.Mutex
	hosts map[string]*seenHost
	// Full reports observed, repeats skipped, and partial reports.
	observed, repeated, partial atomic.Int64
}

// ObserveCounts returns how many full host reports this controller
// observed (recorded in etcd: a read after the count grows sees what the
// report said), how many it skipped as repeats, and how many partial reports
// it observed (see Observe).
func (s *Service) ObserveCounts() (observed, repeated, partial int64) {
	return s.seen.observed.Load(), s.seen.repeated.Load(), s.seen.partial.Load()
}

type seenHost struct {
	last map[string]seenVM // from the host's previous report
	now  map[string]seenVM // this report's
	// The report as a whole: the host's desired state version when it was
	// observed, the digest of what it said (the sum of items, each VM's
	// digest), and when.
	ver   int64
	sum   uint64
	items map[string]uint64
	at    time.Time
}

// observeEvery bounds how long repeats of a report go unobserved.
const observeEvery = 30 * time.Second

// repeats reports whether a report is the host's last one again, with its
// desired state unchanged, observed less than observeEvery ago.
func (c *seenCache) repeats(hostID string, ver int64, sum uint64, now time.Time) bool {
	h := c.get(hostID)
	return h != nil && ver != 0 && h.ver == ver && h.sum == sum && now.Sub(h.at) < observeEvery
}

// changed marks the host's last full report as no longer what etcd holds
// (a partial report changed it): the next one is not a repeat.
func (c *seenCache) changed(hostID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if h := c.hosts[hostID]; h != nil && h.ver != 0 {
		c.hosts[hostID] = &seenHost{last: h.last, now: h.now, sum: h.sum, items: h.items, at: h.at} // ver 0: never a repeat
	}
}

// patch applies a partial report, recorded at desired state version ver,
// to the host's last full report: the full report that repeats the
// result, the desired state still at ver, changes nothing. The period of
// observeEvery still runs from the last full report observed.
//
// The items are patched in place, the sum by the VMs the report lists: a
// cost in proportion to the change, not to the host's VMs. (Only the
// cache, under its lock, reads a host's items; a seenHost's other fields,
// read without it, are never changed once it is in the cache.)
func (c *seenCache) patch(hostID string, ver int64, observed []api.VMObserved) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.hosts[hostID]
	if h == nil || h.items == nil || ver == 0 {
		return // no full report to patch: the next one is observed
	}
	sum := h.sum
	for _, o := range observed {
		sum -= h.items[o.ID] // 0 for a VM not listed
		if o.Gone {
			delete(h.items, o.ID)
		} else {
			d := vmDigest(o)
			h.items[o.ID], sum = d, sum+d
		}
	}
	c.hosts[hostID] = &seenHost{last: h.last, now: h.now, ver: ver, sum: sum, items: h.items, at: h.at}
}

func (c *seenCache) get(hostID string) *seenHost {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.hosts[hostID]
}

// digest sums a report's VMs, whatever their order: the sum of each one's
// digest (vmDigest). (A report listing a VM twice sums it twice: it
// repeats no patched report, and is observed.)
func digest(vms []api.VMObserved) uint64 {
	var sum uint64
	for _, v := range vms {
		sum += vmDigest(v)
	}
	return sum
}

// vmDigests are a report's VMs' digests, by id (kept for patch).
func vmDigests(vms []api.VMObserved) map[string]uint64 {
	items := make(map[string]uint64, len(vms))
	for _, v := range vms {
		items[v.ID] = vmDigest(v)
	}
	return items
}

// vmDigest sums what observe reads of a VM's observation.
func vmDigest(v api.VMObserved) uint64 {
	h := fnv.New64a()
	var b []byte
	b = append(append(b, v.ID...), 0)
	b = append(append(b, v.State...), 0)
	b = append(strconv.AppendInt(b, v.Generation, 10), 0)
	b = append(append(b, v.Error...), 0)
	b = strconv.AppendBool(b, v.Gone)
	h.Write(b)
	return h.Sum64()
}

type seenVM struct {
	rev     int64
	o       api.VMObserved
	present bool
}

// host returns what the host's last report left, to fill with this one's.
func (c *seenCache) host(hostID string) *seenHost {
	c.mu.Lock()
	defer c.mu.Unlock()
	h := &seenHost{now: map[string]seenVM{}}
	if old := c.hosts[hostID]; old != nil {
		h.last = old.now
	}
	return h
}

// set keeps this report's (only the VMs it covered, so that the cache
// holds no VM that left the host).
func (c *seenCache) set(hostID string, h *seenHost) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hosts == nil {
		c.hosts = map[string]*seenHost{}
	}
	c.hosts[hostID] = h
}

func (h *seenHost) same(id string, rev int64, o api.VMObserved, present bool) bool {
	e, ok := h.last[id]
	if ok && e.rev == rev && e.o == o && e.present == present {
		h.now[id] = e
		return true
	}
	return false
}

func (h *seenHost) note(id string, rev int64, o api.VMObserved, present bool) {
	h.now[id] = seenVM{rev: rev, o: o, present: present}
}

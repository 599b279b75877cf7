// Package fleet keeps the scheduler's fleet index: every host's free CPU,
// memory and datastore space (after overcommit), tags, zone, state and the
// images it has cached, in memory, built from etcd once and then kept
// current by one watch over the key range that holds hosts/, hostusage/,
// datastores/, dsusage/, hostimages/ and desired/. Each change updates only
// the hosts it touches.
//
// A host's images (for image locality) are the union of two sources:
//
//   - hostimages/<host>: what the host's agent last reported complete in
//     its image cache (the hosts service writes it only when the set
//     changes). It is the truth about the cache, including images that came
//     by EAGER replication or stayed after their VMs left; an image the
//     host evicts drops out with the report that says so.
//   - desired/<host>/<vm>: the boot images of VMs placed on the host since
//     its reported set last changed. The host fetches such an image only
//     when it makes the VM and reports it some seconds (for a large image,
//     minutes) after the placement; until then the index counts it as
//     cached already, so that a burst of VMs from one image lands together
//     and the image is fetched once. The next change of the reported set
//     settles it: listed, it stays as reported; not listed, it goes (the
//     host evicted it, or was still fetching it while another image came;
//     it returns with the report that lists it).
//
// "Since" compares etcd revisions (the desired record's creation with the
// reported set's last write), so the images of a host are a function of
// what etcd holds: an index rebuilt from a fresh list agrees with one that
// followed the watch. One exception: a VM deleted before its host reported
// its image leaves that image counted until the host's reported set next
// changes (the deletion does not say which image the VM had). A stale
// image costs a slightly worse score, never a wrong placement: images only
// score, they filter nothing.
//
// The index may lag etcd by a watch delivery. Placements on it are
// re-checked in their commit transaction (hosts.Reserve, with the same
// scheduler.Fit); a placement found stale calls CatchUp, which waits until
// the index has seen every revision committed so far, and retries.
package fleet

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/metadata"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/hosts"
	"github.com/photon-cloud/photon/internal/scheduler"
	"github.com/photon-cloud/photon/internal/store"
)

// DefaultSample is how many feasible hosts a placement scores by default.
const DefaultSample = scheduler.DefaultSample

// The watched key range: from datastores/ to just past hostusage/.
var (
	rangeStart = store.Prefix("datastores")
	rangeEnd   = store.Key("hostusage0") // '0' follows '/'
)

// Index is the in-memory fleet view.
type Index struct {
	st    *store.Store
	hosts *hosts.Service
	log   *slog.Logger
	// Sample is the number of feasible hosts a placement scores (<= 0: all).
	Sample int

	mu      sync.RWMutex
	rev     int64         // every change up to rev is applied
	advance chan struct{} // closed (and replaced) when rev moves
	ready   bool
	fleet   scheduler.Fleet
	dss     map[string]*dsEntry
	// pending: host -> boot images of VMs placed there since its reported
	// set last changed, and not in that set (see the package doc).
	pending map[string][]pendingImage
	// early: host -> images it reported, until its hosts/ record arrives
	// (then they live in the host's Images).
	early  map[string][]string
	intern map[string]string
	// copies: the hosts' and datastores' records and usage records as
	// stored, by key (see Copy); a host's view decodes its usage from
	// them.
	copies map[string]copyKV

	progress func(context.Context) error
}

// copyKV is a record as stored, and the revision it was last written at.
type copyKV struct {
	val []byte
	rev int64
}

// pendingImage is an image placed on a host, with the creation revision
// of (the latest of) the desired records that placed it.
type pendingImage struct {
	id  string
	rev int64
}

type dsEntry struct {
	capacityGB, usedGB float64
	tags               []string
	hosts              []string
}

// New returns an index; Run fills it and keeps it current.
func New(st *store.Store, h *hosts.Service, log *slog.Logger) *Index {
	if log == nil {
		log = slog.Default()
	}
	return &Index{st: st, hosts: h, log: log, Sample: DefaultSample, advance: make(chan struct{})}
}

// Run lists the fleet and follows the watch until ctx ends, starting over
// (a fresh list) when the watch fails.
func (x *Index) Run(ctx context.Context) {
	for ctx.Err() == nil {
		if err := x.run(ctx); err != nil && ctx.Err() == nil {
			x.log.Warn("fleet index: restarting", "error", err)
			select {
			case <-time.After(200 * time.Millisecond):
			case <-ctx.Done():
			}
		}
	}
}

func (x *Index) run(ctx context.Context) error {
	c := x.st.Client()
	resp, err := c.Get(ctx, rangeStart, clientv3.WithRange(rangeEnd))
	if err != nil {
		return err
	}
	rev := resp.Header.Revision
	x.mu.Lock()
	x.reset()
	// Keys sort datastores/ < desired/ < dsusage/ < hostimages/ < hosts/
	// < hostusage/: a host finds its datastores, pending and reported
	// images in place; its usage updates it after.
	for _, kv := range resp.Kvs {
		x.apply(string(kv.Key), kv.Value, kv.CreateRevision, kv.ModRevision)
	}
	x.setRev(rev)
	x.ready = true
	x.mu.Unlock()

	// The client's watcher keys its streams by the context's metadata: a
	// key of our own gives this watch a stream of its own, so that a
	// progress request (asked with the same metadata) reaches it alone.
	// (The client may be in-process, etcd's v3client, which has no
	// connection to make a second watcher on.)
	own := func(ctx context.Context) context.Context {
		return metadata.AppendToOutgoingContext(clientv3.WithRequireLeader(ctx), "photon-watch", "fleet-index")
	}
	w := c.Watcher
	wctx, cancel := context.WithCancel(own(ctx))
	defer cancel()
	x.mu.Lock()
	x.progress = func(ctx context.Context) error { return w.RequestProgress(own(ctx)) }
	x.mu.Unlock()
	wc := w.Watch(wctx, rangeStart, clientv3.WithRange(rangeEnd), clientv3.WithRev(rev+1), clientv3.WithProgressNotify())
	for resp := range wc {
		if err := resp.Err(); err != nil {
			return err
		}
		x.mu.Lock()
		for _, e := range resp.Events {
			var val []byte
			if e.Type != clientv3.EventTypeDelete {
				val = e.Kv.Value
			}
			x.apply(string(e.Kv.Key), val, e.Kv.CreateRevision, e.Kv.ModRevision)
		}
		x.setRev(store.WatchedRev(resp))
		x.mu.Unlock()
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("watch ended")
}

// reset empties the index (mu held).
func (x *Index) reset() {
	x.fleet = scheduler.Fleet{ByID: map[string]int{}}
	x.dss, x.intern = map[string]*dsEntry{}, map[string]string{}
	x.pending, x.early = map[string][]pendingImage{}, map[string][]string{}
	x.copies = map[string]copyKV{}
}

// setRev records that every change up to rev is applied (mu held).
func (x *Index) setRev(rev int64) {
	if rev > x.rev {
		x.rev = rev
		close(x.advance)
		x.advance = make(chan struct{})
	}
}

func (x *Index) str(s string) string {
	if v, ok := x.intern[s]; ok {
		return v
	}
	x.intern[s] = s
	return s
}

func (x *Index) strs(l []string) []string {
	if len(l) == 0 {
		return nil
	}
	out := make([]string, len(l))
	for i, s := range l {
		out[i] = x.str(s)
	}
	return out
}

// kindOf splits a key into its kind (the first part under store.Root:
// "hosts", "hostusage", ...) and the rest.
func kindOf(key string) (kind, rest string) {
	kind, rest, _ = strings.Cut(strings.TrimPrefix(key, store.Root), "/")
	return kind, rest
}

// apply one key's new value (nil: deleted), created and last modified at
// those revisions, mu held.
func (x *Index) apply(key string, val []byte, created, modified int64) {
	kind, rest := kindOf(key)
	switch kind {
	case "hostusage", "dsusage", "hosts", "datastores":
		if val == nil {
			delete(x.copies, key)
		} else {
			x.copies[key] = copyKV{val, modified}
		}
	}
	switch kind {
	case "hosts":
		if val == nil {
			x.removeHost(rest)
			return
		}
		var r hosts.Record
		if store.Decode(val, &r) == nil {
			x.putHost(&r)
		}
	case "hostusage":
		var u hosts.Usage
		if val != nil && store.Decode(val, &u) != nil {
			return
		}
		if i, ok := x.fleet.ByID[rest]; ok {
			h := &x.fleet.Hosts[i]
			h.CPUFree, h.MemFreeMB = h.CPUTotal-u.CPU, h.MemTotalMB-u.MemoryMB
		}
	case "datastores":
		if val == nil {
			delete(x.dss, rest)
			return
		}
		var ds api.Datastore
		if store.Decode(val, &ds) != nil {
			return
		}
		e := x.ds(rest)
		e.capacityGB, e.tags, e.hosts = ds.CapacityGB, x.strs(ds.Tags), ds.HostIDs
		x.refreshDatastore(rest, e)
	case "dsusage":
		var du hosts.DatastoreUsage
		if val != nil && store.Decode(val, &du) != nil {
			return
		}
		e := x.ds(rest)
		e.usedGB = du.UsedGB
		x.refreshDatastore(rest, e)
	case "hostimages":
		var ci hosts.CachedImages
		if val != nil && store.Decode(val, &ci) != nil {
			return
		}
		x.reportImages(rest, ci.Images, modified)
	case "desired":
		// desired/<host>/<vm>: the VM's boot image will be cached there.
		host, _, _ := strings.Cut(rest, "/")
		if val == nil || !strings.Contains(string(val), `"imageId"`) {
			return
		}
		var d struct {
			Disks []struct {
				ImageID string `json:"imageId"`
			} `json:"disks"`
		}
		if store.Decode(val, &d) != nil {
			return
		}
		for _, disk := range d.Disks {
			if disk.ImageID != "" {
				x.addImage(host, disk.ImageID, created)
			}
		}
	}
}

func (x *Index) ds(id string) *dsEntry {
	e := x.dss[id]
	if e == nil {
		e = &dsEntry{}
		x.dss[id] = e
	}
	return e
}

// refreshDatastore copies a datastore's free space and tags into the
// hosts that see it.
func (x *Index) refreshDatastore(id string, e *dsEntry) {
	for _, hid := range e.hosts {
		i, ok := x.fleet.ByID[hid]
		if !ok {
			continue
		}
		h := &x.fleet.Hosts[i]
		for j := range h.Datastores {
			if h.Datastores[j].ID == id {
				h.Datastores[j].FreeGB, h.Datastores[j].Tags = e.capacityGB-e.usedGB, e.tags
			}
		}
		h.SumDatastores()
	}
}

// addImage counts a boot image of a VM placed on host (its desired
// record created at rev) as there, pending the host's report, unless the
// host reported it already.
func (x *Index) addImage(host, image string, rev int64) {
	pending := x.pending[host]
	if i := slices.IndexFunc(pending, func(p pendingImage) bool { return p.id == image }); i >= 0 {
		pending[i].rev = max(pending[i].rev, rev)
		return
	}
	image = x.str(image)
	if i, ok := x.fleet.ByID[host]; ok {
		h := &x.fleet.Hosts[i]
		if slices.Contains(h.Images, image) {
			return
		}
		h.Images = append(h.Images, image)
	} else if slices.Contains(x.early[host], image) {
		return
	}
	x.pending[host] = append(pending, pendingImage{id: image, rev: rev})
}

// reportImages applies a host's reported set of cached images, written at
// rev (nil: the record is gone). Pending images placed before rev are
// settled by it, as are those it lists.
func (x *Index) reportImages(host string, images []string, rev int64) {
	pending := x.pending[host]
	if len(pending) > 0 {
		pending = slices.DeleteFunc(pending, func(p pendingImage) bool { return p.rev < rev || slices.Contains(images, p.id) })
		if len(pending) == 0 {
			delete(x.pending, host)
		} else {
			x.pending[host] = pending
		}
	}
	i, known := x.fleet.ByID[host]
	if !known {
		pending = nil // joins the reported ones in putHost
	}
	var all []string
	if n := len(images) + len(pending); n > 0 {
		all = make([]string, 0, n)
		for _, id := range images {
			all = append(all, x.str(id))
		}
		for _, p := range pending {
			all = append(all, p.id)
		}
	}
	switch {
	case known:
		x.fleet.Hosts[i].Images = all
	case all == nil:
		delete(x.early, host)
	default:
		x.early[host] = all
	}
}

func (x *Index) putHost(r *hosts.Record) {
	var u hosts.Usage
	if c, ok := x.copies[store.Key("hostusage", r.ID)]; ok {
		_ = store.Decode(c.val, &u) // (undecodable: none)
	}
	h := x.hosts.HostView(r, u)
	h.Zone, h.State, h.Tags = x.str(h.Zone), x.str(h.State), x.strs(h.Tags)
	h.Datastores = make([]scheduler.Datastore, 0, len(r.DatastoreIDs))
	for _, id := range r.DatastoreIDs {
		d := scheduler.Datastore{ID: id, Name: hosts.LocalName(id)}
		if e := x.dss[id]; e != nil {
			d.FreeGB, d.Tags = e.capacityGB-e.usedGB, e.tags
			if !slices.Contains(e.hosts, r.ID) {
				e.hosts = append(e.hosts, r.ID)
			}
		}
		h.Datastores = append(h.Datastores, d)
	}
	h.SumDatastores()
	if i, ok := x.fleet.ByID[r.ID]; ok {
		h.Images = x.fleet.Hosts[i].Images
		x.fleet.Hosts[i] = h
		return
	}
	early, pending := x.early[r.ID], x.pending[r.ID]
	if n := len(early) + len(pending); n > 0 {
		h.Images = append(make([]string, 0, n), early...)
		for _, p := range pending {
			h.Images = append(h.Images, p.id)
		}
	}
	delete(x.early, r.ID)
	x.fleet.ByID[r.ID] = len(x.fleet.Hosts)
	x.fleet.Hosts = append(x.fleet.Hosts, h)
}

func (x *Index) removeHost(id string) {
	i, ok := x.fleet.ByID[id]
	if !ok {
		return
	}
	last := len(x.fleet.Hosts) - 1
	if i != last {
		x.fleet.Hosts[i] = x.fleet.Hosts[last]
		x.fleet.ByID[x.fleet.Hosts[i].ID] = i
	}
	x.fleet.Hosts[last] = scheduler.Host{}
	x.fleet.Hosts = x.fleet.Hosts[:last]
	delete(x.fleet.ByID, id)
	delete(x.pending, id)
}

// waitReady blocks until the first list is in.
func (x *Index) waitReady(ctx context.Context) error {
	for {
		x.mu.RLock()
		ready, ch := x.ready, x.advance
		x.mu.RUnlock()
		if ready {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Place runs the scheduler on the index.
func (x *Index) Place(ctx context.Context, r *scheduler.Request) (scheduler.Decision, error) {
	if err := x.waitReady(ctx); err != nil {
		return scheduler.Decision{}, err
	}
	x.mu.RLock()
	defer x.mu.RUnlock()
	f := x.fleet
	f.Sample = x.Sample
	return scheduler.Place(&f, r)
}

// Copy returns a host's or a datastore's record or usage record
// (hosts.RecordKeys, hosts.UsageKeys) as stored, and the revision it was
// last written at, as of the index's view: for a host or datastore the
// index knows that has no usage record (nothing placed there yet),
// absent (nil at revision 0). A transaction
// seeded with it (store.Txn.SeedKV) reads it from memory instead of etcd;
// a copy that is stale after all only makes its commit conflict.
func (x *Index) Copy(key string) ([]byte, int64, bool) {
	x.mu.RLock()
	defer x.mu.RUnlock()
	if !x.ready {
		return nil, 0, false
	}
	if c, ok := x.copies[key]; ok {
		return c.val, c.rev, true
	}
	kind, id := kindOf(key)
	switch kind {
	case "hostusage":
		_, ok := x.fleet.ByID[id]
		return nil, 0, ok
	case "dsusage":
		return nil, 0, x.dss[id] != nil
	}
	return nil, 0, false
}

// Rev is the revision the index has caught up with.
func (x *Index) Rev() int64 {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return x.rev
}

// WaitRev waits until the index has applied every change up to rev.
func (x *Index) WaitRev(ctx context.Context, rev int64) error {
	var asked time.Time
	for {
		x.mu.RLock()
		have, ch, progress := x.rev, x.advance, x.progress
		x.mu.RUnlock()
		if have >= rev {
			return nil
		}
		if progress != nil && time.Since(asked) > 50*time.Millisecond {
			// Nothing in our range may change for a while: ask etcd to
			// tell the watch how far it is (again if that got lost).
			asked = time.Now()
			_ = progress(ctx)
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ch:
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		}
		t.Stop()
	}
}

// CatchUp waits (up to 5 s) until the index has seen every change
// committed before the call.
func (x *Index) CatchUp(ctx context.Context) error {
	rev, err := x.st.Rev(ctx)
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := x.WaitRev(wctx, rev); err != nil && ctx.Err() == nil {
		return nil // late: the retry places on what there is
	}
	return ctx.Err()
}

// Hosts returns a copy of the index's hosts (tests, tools).
func (x *Index) Hosts() []scheduler.Host {
	x.mu.RLock()
	defer x.mu.RUnlock()
	return slices.Clone(x.fleet.Hosts)
}

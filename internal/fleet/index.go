// Package fleet keeps the scheduler's fleet index: every host's free CPU,
// memory and datastore space (after overcommit), tags, zone, state and the
// images placed on it, in memory, built from etcd once and then kept
// current by one watch over the key range that holds hosts/, hostusage/,
// datastores/, dsusage/ and desired/ (images placed on a host; the host
// keeps them cached). Each change updates only the hosts it touches.
//
// The index may lag etcd by a watch delivery. Placements on it are
// re-checked in their commit transaction (hosts.Reserve, with the same
// scheduler.Fit); a placement found stale calls CatchUp, which waits until
// the index has seen every revision committed so far, and retries.
package fleet

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"

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
	usage   map[string]hosts.Usage
	dss     map[string]*dsEntry
	images  map[string][]string // host -> images placed there (before the host is known)
	intern  map[string]string

	progress func(context.Context) error
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
	x.fleet = scheduler.Fleet{ByID: map[string]int{}}
	x.usage, x.dss, x.images, x.intern = map[string]hosts.Usage{}, map[string]*dsEntry{}, map[string][]string{}, map[string]string{}
	// Datastores first (keys sort datastores/ < dsusage/ < hosts/), then
	// usage, then hosts, which read them.
	for _, kv := range resp.Kvs {
		x.apply(string(kv.Key), kv.Value)
	}
	x.setRev(rev)
	x.ready = true
	x.mu.Unlock()

	w := clientv3.NewWatcher(c)
	defer w.Close()
	wctx, cancel := context.WithCancel(clientv3.WithRequireLeader(ctx))
	defer cancel()
	x.mu.Lock()
	// The watcher finds the stream by the context's metadata: ask with
	// the same (require-leader) metadata as the watch.
	x.progress = func(ctx context.Context) error { return w.RequestProgress(clientv3.WithRequireLeader(ctx)) }
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
			x.apply(string(e.Kv.Key), val)
		}
		x.setRev(resp.Header.Revision)
		x.mu.Unlock()
	}
	if ctx.Err() != nil {
		return nil
	}
	return errors.New("watch ended")
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

// apply one key's new value (nil: deleted), mu held.
func (x *Index) apply(key string, val []byte) {
	kind, rest, _ := strings.Cut(strings.TrimPrefix(key, store.Root), "/")
	switch kind {
	case "hosts":
		if val == nil {
			x.removeHost(rest)
			return
		}
		var r hosts.Record
		if json.Unmarshal(val, &r) == nil {
			x.putHost(&r)
		}
	case "hostusage":
		var u hosts.Usage
		if val != nil && json.Unmarshal(val, &u) != nil {
			return
		}
		if val == nil {
			delete(x.usage, rest)
		} else {
			x.usage[rest] = u
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
		if json.Unmarshal(val, &ds) != nil {
			return
		}
		e := x.ds(rest)
		e.capacityGB, e.tags, e.hosts = ds.CapacityGB, x.strs(ds.Tags), ds.HostIDs
		x.refreshDatastore(rest, e)
	case "dsusage":
		var du hosts.DatastoreUsage
		if val != nil && json.Unmarshal(val, &du) != nil {
			return
		}
		e := x.ds(rest)
		e.usedGB = du.UsedGB
		x.refreshDatastore(rest, e)
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
		if json.Unmarshal(val, &d) != nil {
			return
		}
		for _, disk := range d.Disks {
			if disk.ImageID != "" {
				x.addImage(host, disk.ImageID)
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
	}
}

func (x *Index) addImage(host, image string) {
	if i, ok := x.fleet.ByID[host]; ok {
		h := &x.fleet.Hosts[i]
		if !slices.Contains(h.Images, image) {
			h.Images = append(h.Images, x.str(image))
		}
		return
	}
	if !slices.Contains(x.images[host], image) {
		x.images[host] = append(x.images[host], x.str(image))
	}
}

func (x *Index) putHost(r *hosts.Record) {
	h := x.hosts.HostView(r, x.usage[r.ID])
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
	if i, ok := x.fleet.ByID[r.ID]; ok {
		h.Images = x.fleet.Hosts[i].Images
		x.fleet.Hosts[i] = h
		return
	}
	h.Images = x.images[r.ID]
	delete(x.images, r.ID)
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
	delete(x.usage, id)
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

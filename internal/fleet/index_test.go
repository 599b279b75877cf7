package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/auth"
	"github.com/photon-cloud/photon/internal/hosts"
	"github.com/photon-cloud/photon/internal/scheduler"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tasks"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

// etcd starts an embedded etcd (photontest would import this package
// through the controller).
func etcd(t testing.TB) *store.Store {
	t.Helper()
	e, err := store.StartEmbedded(context.Background(), filepath.Join(t.TempDir(), "etcd"), quiet)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.Close)
	st, err := store.Connect(context.Background(), []string{e.Endpoint})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func newIndex(t testing.TB, st *store.Store, cfg hosts.Config) *Index {
	t.Helper()
	engine, err := tasks.New(st, quiet)
	if err != nil {
		t.Fatal(err)
	}
	h, err := hosts.New(st, engine, auth.New(st), quiet, cfg)
	if err != nil {
		t.Fatal(err)
	}
	return New(st, h, quiet)
}

func put(t testing.TB, st *store.Store, key string, v any) {
	t.Helper()
	if _, err := st.Update(context.Background(), func(tx *store.Txn) error { return tx.Put(key, v) }); err != nil {
		t.Fatal(err)
	}
}

func record(id string, cpu int, mem int64, state string, ds ...string) hosts.Record {
	return hosts.Record{Host: api.Host{Base: api.Base{ID: id}, Address: "addr-" + id, State: state, AvailabilityZone: "z1",
		UsageTags: []string{"CLOUD"}, Capacity: api.HostResources{CPUCount: cpu, MemoryMB: mem}, Metadata: map[string]string{}},
		Mode: state, DatastoreIDs: ds, Joined: true}
}

// TestIndexFollowsEtcd: the index is built from what is in etcd, follows
// each change with one watch, applies overcommit, and CatchUp returns
// promptly even when the last write is outside the watched range.
func TestIndexFollowsEtcd(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := etcd(t)
	put(t, st, store.Key("hosts", "h1"), record("h1", 8, 8192, api.HostReady, "h1.local", "shared.nfs"))
	put(t, st, store.Key("datastores", "h1.local"), api.Datastore{CapacityGB: 100, HostIDs: []string{"h1"}})
	put(t, st, store.Key("datastores", "shared.nfs"), api.Datastore{CapacityGB: 1000, Tags: []string{"ssd"}, HostIDs: []string{"h1"}})
	put(t, st, store.Key("hostusage", "h1"), hosts.Usage{CPU: 2, MemoryMB: 1024, VMs: 1})
	x := newIndex(t, st, hosts.Config{CPUOvercommit: 4})
	go x.Run(ctx)

	check := func(what string, want func(hs map[string]scheduler.Host) bool) {
		t.Helper()
		if err := x.CatchUp(ctx); err != nil {
			t.Fatal(err)
		}
		m := map[string]scheduler.Host{}
		for _, h := range x.Hosts() {
			m[h.ID] = h
		}
		if !want(m) {
			t.Fatalf("%s: index has %+v", what, m)
		}
	}
	check("initial list", func(m map[string]scheduler.Host) bool {
		h := m["h1"]
		return len(m) == 1 && h.CPUTotal == 32 && h.CPUFree == 30 && h.MemFreeMB == 7168 && len(h.Datastores) == 2 &&
			h.Datastores[1].FreeGB == 1000 && h.Datastores[1].Tags[0] == "ssd"
	})
	put(t, st, store.Key("hostusage", "h1"), hosts.Usage{CPU: 10, MemoryMB: 4096, VMs: 3})
	put(t, st, store.Key("dsusage", "shared.nfs"), hosts.DatastoreUsage{UsedGB: 250})
	check("usage", func(m map[string]scheduler.Host) bool {
		h := m["h1"]
		// Fit reads the datastores' summary (SumDatastores): it follows too.
		ds, _ := scheduler.Fit(&h, &scheduler.Request{CPU: 1, DiskGB: 700})
		_, why := scheduler.Fit(&h, &scheduler.Request{CPU: 1, DiskGB: 760})
		return h.CPUFree == 22 && h.MemFreeMB == 4096 && h.Datastores[1].FreeGB == 750 &&
			ds == "shared.nfs" && why == scheduler.ReasonDatastore
	})
	r2 := record("h2", 4, 4096, api.HostReady, "shared.nfs")
	r2.Metadata[hosts.MetaCPUOvercommit] = "2"
	put(t, st, store.Key("hosts", "h2"), r2)
	put(t, st, store.Key("datastores", "shared.nfs"), api.Datastore{CapacityGB: 1000, Tags: []string{"ssd"}, HostIDs: []string{"h1", "h2"}})
	put(t, st, store.Key("desired", "h2", "vm1"), api.VMDesired{ID: "vm1", Disks: []api.DiskDesired{{ImageID: "img1"}}})
	check("new host", func(m map[string]scheduler.Host) bool {
		h := m["h2"]
		return len(m) == 2 && h.CPUTotal == 8 && h.Datastores[0].FreeGB == 750 && len(h.Images) == 1 && h.Images[0] == "img1"
	})
	r1 := record("h1", 8, 8192, api.HostSuspended, "h1.local", "shared.nfs")
	put(t, st, store.Key("hosts", "h1"), r1)
	check("suspended", func(m map[string]scheduler.Host) bool {
		return m["h1"].State == api.HostSuspended && m["h1"].CPUFree == 22
	})
	d, err := x.Place(ctx, &scheduler.Request{CPU: 1})
	if err != nil || d.HostID != "h2" {
		t.Fatalf("placed %+v %v, want h2", d, err)
	}
	if _, err := st.Update(ctx, func(tx *store.Txn) error { tx.Delete(store.Key("hosts", "h2")); return nil }); err != nil {
		t.Fatal(err)
	}
	check("deleted", func(m map[string]scheduler.Host) bool { _, ok := m["h2"]; return len(m) == 1 && !ok })

	// A write outside the range: CatchUp asks etcd for the watch's progress.
	put(t, st, store.Key("tasks", "x"), "y")
	start := time.Now()
	if err := x.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el > time.Second {
		t.Errorf("CatchUp after an unrelated write took %s", el)
	}
}

// TestIndexCopy: the index holds the hosts' and datastores' records and
// usage records as etcd does (bytes and revision); the usage record of a
// known host with none (nothing placed yet, or deleted) is absent at
// revision 0; an unknown host's are not answered; other records (a VM's)
// are not copied.
func TestIndexCopy(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := etcd(t)
	put(t, st, store.Key("hosts", "h1"), record("h1", 8, 8192, api.HostReady, "h1.local"))
	put(t, st, store.Key("hostusage", "h1"), hosts.Usage{CPU: 2, MemoryMB: 1024, VMs: 1})
	x := newIndex(t, st, hosts.Config{})
	go x.Run(ctx)
	put(t, st, store.Key("datastores", "h1.local"), api.Datastore{CapacityGB: 100, HostIDs: []string{"h1"}})
	put(t, st, store.Key("dsusage", "h1.local"), hosts.DatastoreUsage{UsedGB: 7})
	if err := x.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	d := scheduler.Decision{HostID: "h1", DatastoreID: "h1.local"}
	keys := hosts.UsageKeys(d)
	copied := append(slices.Clone(keys), hosts.RecordKeys(d)...)
	put(t, st, store.Key("vms", "v1"), map[string]string{"id": "v1"})
	if err := x.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	kvs, err := st.GetMany(ctx, append(copied, store.Key("vms", "v1")))
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range kvs {
		val, rev, ok := x.Copy(want.Key)
		if i == len(copied) {
			if ok {
				t.Errorf("Copy(%s) = %s: the index copies only hosts' and datastores' records", want.Key, val)
			}
			continue
		}
		if !ok || string(val) != string(want.Value) || rev != want.Rev {
			t.Errorf("Copy(%s) = %s at %d, %v; etcd has %s at %d", want.Key, val, rev, ok, want.Value, want.Rev)
		}
	}
	if _, err := st.Update(ctx, func(tx *store.Txn) error { tx.Delete(keys[0]); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := x.CatchUp(ctx); err != nil {
		t.Fatal(err)
	}
	if val, rev, ok := x.Copy(keys[0]); !ok || val != nil || rev != 0 {
		t.Errorf("Copy of a deleted usage record = %s at %d, %v; want absent", val, rev, ok)
	}
	d2 := scheduler.Decision{HostID: "h2", DatastoreID: "h2.local"}
	for _, k := range append(hosts.UsageKeys(d2), hosts.RecordKeys(d2)...) {
		if val, _, ok := x.Copy(k); ok {
			t.Errorf("Copy(%s) of an unknown host = %s", k, val)
		}
	}
}

// TestIndexImages: a host's images are what it reports cached plus the
// boot images of VMs placed there since its reported set last changed;
// a report settles those (listed: kept; not: dropped); an eviction drops
// an image; placement prefers the host with the image; at every step an
// index built afresh by listing agrees with the one that followed the
// watch.
func TestIndexImages(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := etcd(t)
	// h3 reports before its record exists (as on a relist: hostimages/
	// sorts before hosts/), then a VM is placed there.
	put(t, st, store.Key("hostimages", "h3"), hosts.CachedImages{Images: []string{"img-c"}})
	put(t, st, store.Key("desired", "h3", "vm3"), api.VMDesired{ID: "vm3", Disks: []api.DiskDesired{{ImageID: "img-d"}}})
	for _, id := range []string{"h1", "h2", "h3"} {
		put(t, st, store.Key("datastores", id+".local"), api.Datastore{CapacityGB: 100, HostIDs: []string{id}})
		put(t, st, store.Key("hosts", id), record(id, 8, 8192, api.HostReady, id+".local"))
	}
	x := newIndex(t, st, hosts.Config{})
	go x.Run(ctx)
	images := func(x *Index) map[string][]string {
		t.Helper()
		if err := x.CatchUp(ctx); err != nil {
			t.Fatal(err)
		}
		m := map[string][]string{}
		for _, h := range x.Hosts() {
			l := slices.Clone(h.Images)
			slices.Sort(l)
			m[h.ID] = l
		}
		return m
	}
	check := func(what string, want map[string][]string) {
		t.Helper()
		got := images(x)
		for _, id := range []string{"h1", "h2", "h3"} {
			if !slices.Equal(got[id], want[id]) {
				t.Fatalf("%s: %s has images %q, want %q", what, id, got[id], want[id])
			}
		}
		// Built afresh from etcd: the same.
		y := newIndex(t, st, hosts.Config{})
		yctx, ycancel := context.WithCancel(ctx)
		defer ycancel()
		go y.Run(yctx)
		if fresh := images(y); !maps.EqualFunc(fresh, got, slices.Equal[[]string]) {
			t.Fatalf("%s: the index that followed the watch has %q, one built afresh %q", what, got, fresh)
		}
	}
	prefers := func(image, host string) {
		t.Helper()
		for range 20 {
			d, err := x.Place(ctx, &scheduler.Request{CPU: 1, ImageID: image})
			if err != nil || d.HostID != host {
				t.Fatalf("place a VM of %s: %+v %v, want %s", image, d, err, host)
			}
		}
	}
	placed := func(host, vm, image string) {
		put(t, st, store.Key("desired", host, vm), api.VMDesired{ID: vm, Disks: []api.DiskDesired{{ImageID: image}}})
	}
	reports := func(host string, images ...string) {
		put(t, st, store.Key("hostimages", host), hosts.CachedImages{Images: images})
	}
	check("start", map[string][]string{"h3": {"img-c", "img-d"}})

	reports("h1", "img-a", "img-b")
	check("h1 reports", map[string][]string{"h1": {"img-a", "img-b"}, "h3": {"img-c", "img-d"}})
	prefers("img-a", "h1")

	// A VM of img-a placed on h2: there (pending) until h2's set changes.
	reports("h2", "img-e")
	placed("h2", "vm2", "img-a")
	check("pending", map[string][]string{"h1": {"img-a", "img-b"}, "h2": {"img-a", "img-e"}, "h3": {"img-c", "img-d"}})
	placed("h2", "vm2", "img-a") // a change of the VM (its record is not new): no change
	check("pending, VM changed", map[string][]string{"h1": {"img-a", "img-b"}, "h2": {"img-a", "img-e"}, "h3": {"img-c", "img-d"}})
	reports("h2", "img-a", "img-e")
	check("settled", map[string][]string{"h1": {"img-a", "img-b"}, "h2": {"img-a", "img-e"}, "h3": {"img-c", "img-d"}})
	// A report without a placed image settles it too: gone.
	placed("h1", "vm1", "img-f")
	check("pending on h1", map[string][]string{"h1": {"img-a", "img-b", "img-f"}, "h2": {"img-a", "img-e"}, "h3": {"img-c", "img-d"}})
	reports("h1", "img-a", "img-b", "img-g")
	check("not reported", map[string][]string{"h1": {"img-a", "img-b", "img-g"}, "h2": {"img-a", "img-e"}, "h3": {"img-c", "img-d"}})

	// Evictions: the reports decide, whatever VMs the host has.
	reports("h1", "img-b")
	reports("h2", "img-e")
	reports("h3")
	check("evicted", map[string][]string{"h1": {"img-b"}, "h2": {"img-e"}})
	prefers("img-b", "h1")
	prefers("img-e", "h2")

	// A host's record updates keep its images; its deletion drops them.
	r := record("h2", 8, 8192, api.HostReady, "h2.local")
	r.UsageTags = []string{"CLOUD", "gpu"}
	put(t, st, store.Key("hosts", "h2"), r)
	check("host updated", map[string][]string{"h1": {"img-b"}, "h2": {"img-e"}})
	if _, err := st.Update(ctx, func(tx *store.Txn) error {
		tx.Delete(store.Key("hosts", "h1"))
		tx.Delete(store.Key("hostimages", "h1"))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	check("h1 deleted", map[string][]string{"h2": {"img-e"}})
	if n := len(images(x)); n != 2 {
		t.Fatalf("%d hosts, want 2", n)
	}
}

// TestIndexBytesPerHost measures the index's memory per host (logged; the
// bound only catches a regression by a large factor).
func TestIndexBytesPerHost(t *testing.T) {
	bytesPerHost(t, 0)
}

// TestIndexBytesPerHostWithImages: the same with 4 cached images per host
// out of 100 in the fleet (ids are interned: each host pays for its slice,
// not for the strings).
func TestIndexBytesPerHostWithImages(t *testing.T) {
	bytesPerHost(t, 4)
}

func bytesPerHost(t *testing.T, images int) {
	const n = 10000
	x := New(nil, nil, nil)
	x.reset()
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	// The records as the watch delivers them, made in the loop: those the
	// index keeps (its copies) count, the others are garbage.
	recordBytes := 0
	for i := range n {
		id := fmt.Sprintf("0190a4c2-7e1b-7000-8000-%012d", i)
		r := record(id, 64, 256<<10, api.HostReady, id+".local")
		r.Address = fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
		b, _ := json.Marshal(r)
		recordBytes += len(b)
		ds, _ := json.Marshal(api.Datastore{CapacityGB: 2000, HostIDs: []string{id}})
		x.apply(store.Key("datastores", id+".local"), ds, 0, 0)
		x.apply(store.Key("hostusage", id), []byte(`{"cpu":4,"memoryMb":8192,"vms":2}`), 0, 0)
		x.apply(store.Key("hosts", id), b, 0, 0)
		if images > 0 {
			var ci hosts.CachedImages
			for j := range images {
				ci.Images = append(ci.Images, fmt.Sprintf("0190a4c2-0000-7000-8000-%012d", (i+j*7)%100))
			}
			b, _ := json.Marshal(ci)
			x.apply(store.Key("hostimages", id), b, 0, 0)
		}
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("fleet index: %.0f bytes per host (%d hosts, one local datastore and %d cached images each; a host's record is %d bytes)",
		per, n, images, recordBytes/n)
	if len(x.fleet.Hosts) != n || x.fleet.Hosts[5].CPUFree != 60 || len(x.fleet.Hosts[5].Images) != images {
		t.Fatalf("index: %d hosts, %+v", len(x.fleet.Hosts), x.fleet.Hosts[5])
	}
	if per > 4096 {
		t.Errorf("%.0f bytes per host", per)
	}
}

package fleet

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"path/filepath"
	"runtime"
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
		return h.CPUFree == 22 && h.MemFreeMB == 4096 && h.Datastores[1].FreeGB == 750
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

// TestIndexBytesPerHost measures the index's memory per host (logged; the
// bound only catches a regression by a large factor).
func TestIndexBytesPerHost(t *testing.T) {
	const n = 10000
	x := New(nil, nil, nil)
	x.fleet = scheduler.Fleet{ByID: map[string]int{}}
	x.usage, x.dss, x.images, x.intern = map[string]hosts.Usage{}, map[string]*dsEntry{}, map[string][]string{}, map[string]string{}
	var vals [][]byte
	for i := range n {
		id := fmt.Sprintf("0190a4c2-7e1b-7000-8000-%012d", i)
		r := record(id, 64, 256<<10, api.HostReady, id+".local")
		r.Address = fmt.Sprintf("10.%d.%d.%d", i>>16, (i>>8)&255, i&255)
		b, _ := json.Marshal(r)
		vals = append(vals, b)
	}
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for i, b := range vals {
		id := fmt.Sprintf("0190a4c2-7e1b-7000-8000-%012d", i)
		ds, _ := json.Marshal(api.Datastore{CapacityGB: 2000, HostIDs: []string{id}})
		x.apply(store.Key("datastores", id+".local"), ds)
		x.apply(store.Key("hostusage", id), []byte(`{"cpu":4,"memoryMb":8192,"vms":2}`))
		x.apply(store.Key("hosts", id), b)
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	per := float64(after.HeapAlloc-before.HeapAlloc) / n
	t.Logf("fleet index: %.0f bytes per host (%d hosts, one local datastore each)", per, n)
	if len(x.fleet.Hosts) != n || x.fleet.Hosts[5].CPUFree != 60 {
		t.Fatalf("index: %d hosts, %+v", len(x.fleet.Hosts), x.fleet.Hosts[5])
	}
	if per > 4096 {
		t.Errorf("%.0f bytes per host", per)
	}
	runtime.KeepAlive(vals)
}

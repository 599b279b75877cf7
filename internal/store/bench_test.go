package store_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"
	clientv3 "go.etcd.io/etcd/client/v3"

	"github.com/photon-cloud/photon/internal/store"
)

// BenchmarkVMEtcdWork is what etcd does for each VM created and started
// in bench/fleet's run, alone: the writes and commit conditions counted
// per VM there (session "Lighter simulated hosts, no project index,
// merged commits under etcd's request bound" in docs/performance.md), of
// the sizes stored, on the embedded member, with one watch taking every
// change (the controller has several). It reports the CPU of this
// process (etcd, its client, the watch) per VM: the floor of a
// controller's CPU per VM, before placement, HTTP, JSON and the hosts.
// Run with -benchtime 100000x for the 100,000 VMs.
//
//   - now: a create batch's 8 writes per VM (its record, task, name,
//     task index, lock, desired state, its host's and datastore's usage)
//     and 5 conditions (its name absent, the host's and datastore's
//     records and usage), 100 VMs a commit, each on its own host of
//     5,000; then its host's report's 3 writes (record, task, the lock
//     deleted) and 3 conditions, 100 a commit.
//   - least: what DESIGN.md's rules of state leave (a record per object
//     and per usage, a persisted task, usage in the VM's transaction):
//     the record, task, name and the two usage records written, the name
//     and the usage conditioned on; then the record and task, conditioned
//     on themselves. No lock, task index or desired-state key, and the
//     host's and datastore's records not conditioned on.
//   - now-without-…: now less one of those (what each costs), and
//     now-half-values: now with every value half its size (what the
//     bytes cost, against the keys).
func BenchmarkVMEtcdWork(b *testing.B) {
	now := vmEtcdMix{recordConds: true, index: true, lock: true, desired: true}
	for _, c := range []struct {
		name string
		mix  vmEtcdMix
	}{
		{"now", now},
		{"least", vmEtcdMix{}},
		{"now-without-record-conditions", now.with(func(m *vmEtcdMix) { m.recordConds = false })},
		{"now-without-lock", now.with(func(m *vmEtcdMix) { m.lock = false })},
		{"now-without-task-index", now.with(func(m *vmEtcdMix) { m.index = false })},
		{"now-without-desired", now.with(func(m *vmEtcdMix) { m.desired = false })},
		{"now-half-values", now.with(func(m *vmEtcdMix) { m.halfValues = true })},
	} {
		b.Run(c.name, func(b *testing.B) { benchVMEtcdWork(b, c.mix) })
	}
}

// vmEtcdMix is what BenchmarkVMEtcdWork writes and conditions on per VM
// beyond the least: the host's and datastore's records conditioned on,
// the task index, the lock (written, conditioned on and deleted), the
// desired-state key; halfValues makes every value half its size.
type vmEtcdMix struct {
	recordConds, index, lock, desired, halfValues bool
}

func (m vmEtcdMix) with(f func(*vmEtcdMix)) vmEtcdMix {
	f(&m)
	return m
}

func benchVMEtcdWork(b *testing.B, mix vmEtcdMix) {
	// The garbage collector's target photond controller runs with
	// (controllerGOGC in cmd/photond).
	defer debug.SetGCPercent(debug.SetGCPercent(400))
	ctx := context.Background()
	e, err := store.StartEmbedded(ctx, filepath.Join(b.TempDir(), "etcd"), slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(e.Close)
	c := e.Client()
	wctx, stop := context.WithCancel(ctx)
	defer stop()
	w := c.Watch(wctx, store.Root, clientv3.WithPrefix())
	go func() {
		for range w { // taken, as the controller's watches take them
		}
	}()
	value := func(n int) string { return string(bytes.Repeat([]byte("x"), n)) }
	const hosts, batch = 5000, 100
	// A host's keys, made once: the loop below times etcd, not them.
	type hostKeys struct{ id, rec, use, ds, dsUse string }
	hk := make([]hostKeys, hosts)
	hostUse, dsUse := value(33), value(12)
	rev := map[string]int64{} // mod revision of the keys conditioned on
	for lo := 0; lo < hosts; lo += 250 {
		var ops []clientv3.Op
		for i := lo; i < lo+250; i++ {
			h := uuid.NewString()
			hk[i] = hostKeys{h, store.Key("hosts", h), store.Key("hostusage", h), store.Key("datastores", h+".local"), store.Key("dsusage", h+".local")}
			for _, kv := range [][2]string{{hk[i].rec, value(387)}, {hk[i].ds, value(206)}, {hk[i].use, hostUse}, {hk[i].dsUse, dsUse}} {
				ops = append(ops, clientv3.OpPut(kv[0], kv[1]))
			}
		}
		resp, err := c.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			b.Fatal(err)
		}
		for _, op := range ops {
			rev[string(op.KeyBytes())] = resp.Header.Revision
		}
	}
	sized := func(n int) string {
		if mix.halfValues {
			n /= 2
		}
		return value(n)
	}
	vmRec, vmSeen, task, taskDone, short, desired := sized(1209), sized(1400), sized(720), sized(950), sized(38), sized(259)
	commit := func(cmps []clientv3.Cmp, ops []clientv3.Op) int64 {
		resp, err := c.Txn(ctx).If(cmps...).Then(ops...).Commit()
		if err != nil || !resp.Succeeded {
			b.Fatalf("commit: %v (succeeded %v)", err, resp != nil && resp.Succeeded)
		}
		return resp.Header.Revision
	}
	next := 0 // host of the next VM
	b.ResetTimer()
	cpu0, t0 := cpuTime(), time.Now()
	for done := 0; done < b.N; done += batch {
		n := min(batch, b.N-done)
		ids := make([]string, n)
		var cmps []clientv3.Cmp
		var ops []clientv3.Op
		var usage []string
		for i := range ids {
			ids[i] = uuid.NewString()
			id, h := ids[i], hk[next]
			next = (next + 1) % hosts
			name := store.Key("names", "vms", "project", "vm-"+id)
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(name), "=", 0))
			conditioned := []string{h.use, h.dsUse}
			if mix.recordConds {
				conditioned = append(conditioned, h.rec, h.ds)
			}
			for _, k := range conditioned {
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", rev[k]))
			}
			usage = append(usage, h.use, h.dsUse)
			ops = append(ops, clientv3.OpPut(store.Key("vms", id), vmRec), clientv3.OpPut(store.Key("tasks", id), task),
				clientv3.OpPut(name, short), clientv3.OpPut(h.use, hostUse), clientv3.OpPut(h.dsUse, dsUse))
			if mix.index {
				ops = append(ops, clientv3.OpPut(store.Key("tasks-by-entity", id, id), short))
			}
			if mix.lock {
				ops = append(ops, clientv3.OpPut(store.Key("locks", id), short))
			}
			if mix.desired {
				ops = append(ops, clientv3.OpPut(store.Key("desired", h.id, id), desired))
			}
		}
		created := commit(cmps, ops)
		for _, k := range usage {
			rev[k] = created
		}
		cmps, ops = nil, nil
		for _, id := range ids {
			conditioned := []string{store.Key("vms", id), store.Key("tasks", id)}
			ops = append(ops, clientv3.OpPut(store.Key("vms", id), vmSeen), clientv3.OpPut(store.Key("tasks", id), taskDone))
			if mix.lock {
				conditioned = append(conditioned, store.Key("locks", id))
				ops = append(ops, clientv3.OpDelete(store.Key("locks", id)))
			}
			for _, k := range conditioned {
				cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", created))
			}
		}
		commit(cmps, ops)
	}
	cpu, wall := cpuTime()-cpu0, time.Since(t0)
	b.StopTimer()
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/VM")
	b.ReportMetric(float64(b.N)/wall.Seconds(), "VMs/s")
}

// cpuTime is the CPU this process used so far, user and system.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

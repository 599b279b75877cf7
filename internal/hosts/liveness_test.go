package hosts_test

import (
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/agent"
	"github.com/photon-cloud/photon/internal/controller"
	"github.com/photon-cloud/photon/internal/driver/fake"
	"github.com/photon-cloud/photon/internal/hosts"
	"github.com/photon-cloud/photon/internal/photontest"
	"github.com/photon-cloud/photon/internal/store"
)

// TestLateExpiryEvent: an expiry event of a host's liveness key that
// comes late (after an etcd outage), when the host already holds a fresh
// lease, leaves it READY; and a host found ERROR for want of heartbeats
// (as such an event left it before) while its agent reports is READY
// again within one heartbeat timeout.
func TestLateExpiryEvent(t *testing.T) {
	c, a := readyHost(t) // heartbeat timeout 2 s, reports every 200 ms
	cl, id := c.Client, a.HostID()
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) { // its first heartbeat
		var ms int64
		if _, err := c.Server.Store.Get(ctx, store.Key("hostalive", id), &ms); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("liveness key of a READY host: %v", err)
		}
	}
	if err := hosts.MarkDown(ctx, c.Server.Hosts, id); err != nil {
		t.Fatal(err)
	}
	if h, err := cl.GetHost(ctx, id); err != nil || h.State != api.HostReady {
		t.Fatalf("host with a live lease after a late expiry event = %+v, %v; want READY", h, err)
	}
	// The record says ERROR (as the late event made it say before).
	st := c.Server.Store
	key := store.Key("hosts", id)
	if _, err := st.Update(ctx, func(tx *store.Txn) error {
		var h hosts.Record
		if err := tx.MustGet(ctx, key, &h); err != nil {
			return err
		}
		h.State, h.Reason = api.HostError, "no heartbeat for 2s"
		return tx.Put(key, &h)
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	waitState(t, cl, id, api.HostReady)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("READY again %v after; want within the heartbeat timeout (2 s)", d)
	}
	// Gone for good: ERROR still comes.
	a.Stop()
	waitState(t, cl, id, api.HostError)
}

// TestCapacityFollowsReports: an agent restarted on other CPUs and
// memory (its identity kept, no new join) shows them on its host.
func TestCapacityFollowsReports(t *testing.T) {
	c := photontest.NewController(t, "", func(cfg *controller.Config) { cfg.HeartbeatTimeout = 2 * time.Second })
	dir := t.TempDir()
	a := photontest.NewAgent(t, c, fake.Config{CPUCount: 4, MemoryMB: 8192}, func(cfg *agent.Config) { cfg.DataDir = dir })
	cl, id := c.Client, a.HostID()
	waitState(t, cl, id, api.HostReady)
	a.Stop()
	b := photontest.NewAgent(t, c, fake.Config{CPUCount: 12, MemoryMB: 32768}, func(cfg *agent.Config) { cfg.DataDir = dir })
	if b.HostID() != id {
		t.Fatalf("restarted agent is host %s, want %s", b.HostID(), id)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		h, err := cl.GetHost(ctx, id)
		if err == nil && h.Capacity == (api.HostResources{CPUCount: 12, MemoryMB: 32768}) && h.State == api.HostReady {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("host after its agent restarted with 12 CPUs and 32 GB = %+v, %v", h, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

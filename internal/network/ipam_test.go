package network_test

import (
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/agent"
	"github.com/photon-cloud/photon/internal/driver/fake"
	"github.com/photon-cloud/photon/internal/photontest"
	"github.com/photon-cloud/photon/internal/store"
)

// TestIPAMTwoControllers: two controllers on one etcd, 500 concurrent
// creates (32 clients, split across both APIs) into one /24 of which 250
// addresses are free: exactly 250 succeed, every address distinct; the
// rest are refused IpExhausted naming the subnet. Deleting them returns
// the addresses.
func TestIPAMTwoControllers(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: 500 creates on two controllers")
	}
	etcd := photontest.ExternalEtcd(t)
	e := newEnv(t, etcd, "vm 1000 COUNT, sdn.size 1000 COUNT")
	ctrls := []*photontest.Cloud{e.Cloud, e.Cloud.NewPeer(t, fast)}
	for i := range 2 {
		addr := fmt.Sprintf("10.20.0.%d", i+1)
		photontest.NewAgent(t, ctrls[i], fake.Config{CPUCount: 400, MemoryMB: 400 << 10},
			func(a *agent.Config) { a.Address, a.HeartbeatInterval = addr, time.Second })
	}
	waitHosts(t, e.cl, 2)
	r := e.router(t, e.project, "r", "10.30.0.0/16")
	sub := e.subnet(t, r, api.SubnetCreateSpec{Name: "s", PrivateIPCidr: "10.30.1.0/24"})
	// 253 addresses for ports; 3 taken first leave 250.
	var first []string
	for i := range 3 {
		first = append(first, e.done(t)(e.cl.CreateVM(ctx, e.project, vmSpec(fmt.Sprintf("first%d", i), sub))).Entity.ID)
	}
	clients := make([]*client.Client, 32)
	for i := range clients {
		clients[i] = ctrls[i%2].NewClient(t, e.Token)
	}
	const creates = 500
	var (
		mu      sync.Mutex
		made    []string
		refused int
		other   []string
	)
	next := make(chan int, creates)
	for i := range creates {
		next <- i
	}
	close(next)
	start := time.Now()
	var wg sync.WaitGroup
	for _, cl := range clients {
		wg.Go(func() {
			for i := range next {
				task, err := waitOn(cl)(cl.CreateVM(ctx, e.project, vmSpec(fmt.Sprintf("vm%d", i), sub)))
				mu.Lock()
				var ae *api.Error
				switch {
				case err == nil:
					made = append(made, task.Entity.ID)
				case errors.As(err, &ae) && ae.Code == api.CodeIPExhausted && ae.Data["subnet"] == sub:
					refused++
				default:
					if task != nil {
						err = fmt.Errorf("%w (task %s %s)", err, task.ID, task.Operation)
					}
					other = append(other, err.Error())
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	t.Logf("%d creates on 2 controllers in %v", creates, time.Since(start).Round(time.Millisecond))
	if len(made) != 250 || refused != 250 || len(other) > 0 {
		t.Fatalf("made %d, refused IpExhausted %d, other errors %d (first: %v); want 250, 250, 0", len(made), refused, len(other), other[:min(len(other), 3)])
	}
	seen := map[string]string{}
	for _, id := range append(made, first...) {
		n := networks(t, e.cl, id)
		if len(n) != 1 || n[0].Network != sub {
			t.Fatalf("VM %s: networks %+v", id, n)
		}
		if o, dup := seen[n[0].IPAddress]; dup {
			t.Fatalf("VMs %s and %s share %s", o, id, n[0].IPAddress)
		}
		seen[n[0].IPAddress] = id
		if ip := n[0].IPAddress; ip == "10.30.1.0" || ip == "10.30.1.1" || ip == "10.30.1.255" {
			t.Fatalf("VM %s got reserved address %s", id, ip)
		}
	}
	st := photontest.Store(t, etcd)
	count := func() int {
		n, err := st.Count(ctx, store.Prefix("ipam", sub))
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := count(); n != 253 {
		t.Fatalf("%d address keys, want 253", n)
	}
	// Deletes, across both controllers, return the addresses.
	var dwg sync.WaitGroup
	dels := make(chan string, len(made))
	for _, id := range made {
		dels <- id
	}
	close(dels)
	for _, cl := range clients[:8] {
		dwg.Go(func() {
			for id := range dels {
				if _, err := waitOn(cl)(cl.DeleteVM(ctx, id)); err != nil {
					t.Errorf("delete %s: %v", id, err)
				}
			}
		})
	}
	dwg.Wait()
	if n := count(); n != 3 {
		t.Fatalf("%d address keys after deletes, want 3", n)
	}
	if s := getSubnet(t, e.cl, sub); s.ID != sub {
		t.Fatal(s)
	}
	// And they are handed out again (the cursor has wrapped).
	for i := range 5 {
		e.done(t)(e.cl.CreateVM(ctx, e.project, vmSpec(fmt.Sprintf("again%d", i), sub)))
	}
}

func waitOn(cl *client.Client) func(*api.Task, error) (*api.Task, error) {
	return func(task *api.Task, err error) (*api.Task, error) { return wait(cl, task, err) }
}

package network_test

import (
	"encoding/json"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/agent"
	"github.com/photon-cloud/photon/internal/driver/fake"
	"github.com/photon-cloud/photon/internal/photontest"
)

// TestDesiredNetworks: VMs of one subnet on two hosts. Each host's
// desired state carries the VM's NICs, the subnet and its router, and
// as peers the other host's underlay address (its address, then the one
// it reports); a host waiting on its desired state is woken when another
// host joins or leaves the subnet, and the peer goes with the other
// host's last VM on it.
func TestDesiredNetworks(t *testing.T) {
	e := newEnv(t, "", "vm 10 COUNT")
	var ids []string
	for i := range 2 {
		addr := fmt.Sprintf("10.20.0.%d", i+1)
		photontest.NewAgent(t, e.Cloud, fake.Config{}, func(a *agent.Config) {
			// No underlay address reported: the host's address is its own.
			a.Address, a.UnderlayIP, a.HeartbeatInterval = addr, "", time.Second
		})
	}
	waitHosts(t, e.cl, 2)
	hs, _ := e.cl.ListHosts(ctx)
	for _, h := range hs {
		ids = append(ids, h.ID)
	}
	slices.SortFunc(hs, func(a, b api.Host) int { return compare(a.Address, b.Address) })
	h1, h2 := hs[0].ID, hs[1].ID
	r := e.router(t, e.project, "r", "10.40.0.0/16")
	sub := e.subnet(t, r, api.SubnetCreateSpec{Name: "s", PrivateIPCidr: "10.40.1.0/24", DNSServerAddresses: []string{"9.9.9.9"}})
	other := e.subnet(t, r, api.SubnetCreateSpec{Name: "o", PrivateIPCidr: "10.40.2.0/24", Type: api.SubnetNoNAT})
	on := func(name, host string, subnets ...string) string {
		spec := vmSpec(name, subnets...)
		spec.Affinities = []api.LocalitySpec{{Kind: "host", ID: host}}
		return e.done(t)(e.cl.CreateVM(ctx, e.project, spec)).Entity.ID
	}
	desired := func(host string) *api.HostNetworkDesired {
		t.Helper()
		ds, err := e.Server.Hosts.Desired(ctx, host, 0, 0, nil)
		if err != nil || ds.Networks == nil {
			t.Fatalf("desired state of %s: %+v %v", host, ds, err)
		}
		return ds.Networks
	}
	// desiredWhen is desired(host) once ok holds (the mirror follows
	// etcd), or as it is after 5 s.
	desiredWhen := func(host string, ok func(*api.HostNetworkDesired) bool) *api.HostNetworkDesired {
		t.Helper()
		n := desired(host)
		for deadline := time.Now().Add(5 * time.Second); !ok(n) && time.Now().Before(deadline); n = desired(host) {
			time.Sleep(20 * time.Millisecond)
		}
		return n
	}
	// peersOf is the host's peers on subnet once they are want (the
	// mirror the desired state is read from follows etcd by a watch), or
	// as they are after 5 s.
	peersOf := func(host, subnet string, want ...string) []string {
		t.Helper()
		var p []string
		for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			p = nil
			for _, s := range desired(host).Subnets {
				if s.ID == subnet {
					p = s.Peers
				}
			}
			if slices.Equal(p, want) {
				break
			}
		}
		return p
	}
	v1 := on("v1", h1, sub)
	n := desiredWhen(h1, func(n *api.HostNetworkDesired) bool { return len(n.Subnets) == 1 })
	if len(n.Subnets) != 1 || len(n.Routers) != 1 || n.Routers[0].CIDR != "10.40.0.0/16" {
		t.Fatalf("h1 networks = %+v", n)
	}
	s := n.Subnets[0]
	if s.ID != sub || s.RouterID != r || s.CIDR != "10.40.1.0/24" || s.Gateway != "10.40.1.1" || s.VNI == 0 || !s.NAT ||
		s.MTU != 1450 || !slices.Equal(s.DNS, []string{"9.9.9.9"}) || len(s.Peers) != 0 {
		t.Fatalf("h1 subnet = %+v", s)
	}
	if n := desired(h2); len(n.Subnets) != 0 || len(n.Routers) != 0 {
		t.Fatalf("h2, with no VM, carries %+v", n)
	}
	// h1 waits on its desired state; a VM of the subnet on h2 wakes it.
	ds, err := e.Server.Hosts.Desired(ctx, h1, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	woke := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		_, _ = e.Server.Hosts.Desired(ctx, h1, ds.Revision, 20*time.Second, nil)
		woke <- time.Since(start)
	}()
	time.Sleep(100 * time.Millisecond)
	v2 := on("v2", h2, sub, other)
	select {
	case d := <-woke:
		t.Logf("h1 woken %v after it began waiting", d)
	case <-time.After(10 * time.Second):
		t.Fatal("h1's wait was not woken by a peer joining its subnet")
	}
	if p := peersOf(h1, sub, "10.20.0.2"); !slices.Equal(p, []string{"10.20.0.2"}) {
		t.Fatalf("h1's peers = %v, want [10.20.0.2]", p)
	}
	if p := peersOf(h2, sub, "10.20.0.1"); !slices.Equal(p, []string{"10.20.0.1"}) {
		t.Fatalf("h2's peers = %v, want [10.20.0.1]", p)
	}
	if n := desiredWhen(h2, func(n *api.HostNetworkDesired) bool { return len(n.Subnets) == 2 }); len(n.Subnets) != 2 || len(n.Routers) != 1 {
		t.Fatalf("h2 networks = %+v", n)
	}
	// The router is distributed: h1, with no port on other, carries it
	// too (its VMs' answers to other's are routed onto it on h1), with
	// h2 as its peer.
	if p := peersOf(h1, other, "10.20.0.2"); !slices.Equal(p, []string{"10.20.0.2"}) {
		t.Fatalf("h1's peers on the router's other subnet = %v, want [10.20.0.2]", p)
	}
	// The VM's NICs in h2's desired state.
	ds2, err := e.Server.Hosts.Desired(ctx, h2, 0, 0, nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := ds2.MarshalJSON()
	var whole api.HostDesiredState
	if err := jsonDecode(b, &whole); err != nil || len(whole.VMs) != 1 || len(whole.VMs[0].NICs) != 2 ||
		whole.VMs[0].NICs[0].SubnetID != sub || whole.VMs[0].NICs[1].SubnetID != other || whole.VMs[0].NICs[0].MAC == "" {
		t.Fatalf("h2's VMs = %+v %v", whole.VMs, err)
	}
	// h2 reports an underlay address: h1's peer changes to it; a bad one
	// is refused.
	if err := e.Server.Hosts.SetUnderlay(ctx, h2, "192.0.2.2"); err != nil {
		t.Fatal(err)
	}
	if p := peersOf(h1, sub, "192.0.2.2"); !slices.Equal(p, []string{"192.0.2.2"}) {
		t.Fatalf("h1's peers after h2's report = %v", p)
	}
	if err := e.Server.Hosts.SetUnderlay(ctx, h2, "not-an-ip"); err == nil {
		t.Fatal("a bad underlay address was taken")
	}
	// A second VM on h2 then the first gone: h2 still carries the subnet.
	v3 := on("v3", h2, sub)
	e.done(t)(e.cl.DeleteVM(ctx, v2))
	if p := peersOf(h1, sub, "192.0.2.2"); !slices.Equal(p, []string{"192.0.2.2"}) {
		t.Fatalf("h1's peers with v3 on h2 = %v", p)
	}
	if n := desiredWhen(h2, func(n *api.HostNetworkDesired) bool { return len(n.Subnets) == 1 }); len(n.Subnets) != 1 {
		t.Fatalf("h2 without v2 carries %+v", n)
	}
	e.done(t)(e.cl.DeleteVM(ctx, v3))
	if p := peersOf(h1, sub); len(p) != 0 {
		t.Fatalf("h1's peers with nothing on h2 = %v", p)
	}
	if n := desiredWhen(h2, func(n *api.HostNetworkDesired) bool { return len(n.Subnets) == 0 }); len(n.Subnets) != 0 || len(n.Routers) != 0 {
		t.Fatalf("h2 with no VM carries %+v", n)
	}
	e.done(t)(e.cl.DeleteVM(ctx, v1))
	if n := desiredWhen(h1, func(n *api.HostNetworkDesired) bool { return len(n.Subnets) == 0 }); len(n.Subnets) != 0 {
		t.Fatalf("h1 with no VM carries %+v", n)
	}
	_ = ids
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func jsonDecode(b []byte, v any) error { return json.Unmarshal(b, v) }

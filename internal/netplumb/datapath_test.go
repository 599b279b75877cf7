package netplumb_test

import (
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/netplumb"
	"github.com/photon-cloud/photon/internal/netplumb/nettest"
)

// twoHosts is the network of the data-path test: router r1 with a NAT
// subnet s1 (10.1.0.0/24) on both hosts and a NO_NAT subnet s2
// (10.2.0.0/24) with a VM on h1; another project's router r2 with subnet t1 on the
// SAME CIDR as s1, on both hosts.
func twoHosts(w *world) (h1, h2 netplumb.Desired) {
	a, b := w.hosts[0].underlay, w.hosts[1].underlay
	// A host carries every subnet of each router it has (as a DVR
	// router has an interface on each of its subnets on every host): s2
	// is on h2 without ports, so that b's replies to c route there.
	s2 := nettest.Subnet("s2", "r1", 2, false, b)
	s2b := nettest.Subnet("s2", "r1", 2, false, a)
	t1 := nettest.Subnet("t1", "r2", 1, true, b)
	t1.VNI = 200
	h1 = netplumb.Desired{
		HostNetworkDesired: api.HostNetworkDesired{
			Routers: []api.RouterDesired{nettest.Router("r1"), nettest.Router("r2")},
			Subnets: []api.SubnetDesired{nettest.Subnet("s1", "r1", 1, true, b), s2, t1},
		},
		Ports: []netplumb.Port{
			nettest.Port("pa", "s1", 1, 10, "fa:16:3e:00:00:0a"),
			nettest.Port("pc", "s2", 2, 10, "fa:16:3e:00:00:0c"),
			nettest.Port("pd", "t1", 1, 10, "fa:16:3e:00:00:0d"),
		},
	}
	t1b := nettest.Subnet("t1", "r2", 1, true, a)
	t1b.VNI = 200
	h2 = netplumb.Desired{
		HostNetworkDesired: api.HostNetworkDesired{
			Routers: []api.RouterDesired{nettest.Router("r1"), nettest.Router("r2")},
			Subnets: []api.SubnetDesired{nettest.Subnet("s1", "r1", 1, true, a), s2b, t1b},
		},
		Ports: []netplumb.Port{
			nettest.Port("pb", "s1", 1, 11, "fa:16:3e:00:00:0b"),
			nettest.Port("pe", "t1", 1, 11, "fa:16:3e:00:00:0e"),
		},
	}
	return h1, h2
}

func TestDataPath(t *testing.T) {
	w := newWorld(t, 2)
	h1, h2 := twoHosts(w)
	ensure(t, w.hosts[0].d, h1)
	ensure(t, w.hosts[1].d, h2)
	a := w.vm(w.hosts[0], "a", "s1", "fa:16:3e:00:00:0a", "10.1.0.10/24", "10.1.0.1")
	b := w.vm(w.hosts[1], "b", "s1", "fa:16:3e:00:00:0b", "10.1.0.11/24", "10.1.0.1")
	c := w.vm(w.hosts[0], "c", "s2", "fa:16:3e:00:00:0c", "10.2.0.10/24", "10.2.0.1")
	d := w.vm(w.hosts[0], "d", "t1", "fa:16:3e:00:00:0d", "10.1.0.10/24", "10.1.0.1")
	e := w.vm(w.hosts[1], "e", "t1", "fa:16:3e:00:00:0e", "10.1.0.11/24", "10.1.0.1")

	for _, tc := range []struct {
		name     string
		from, to string
		want     bool
	}{
		{"same subnet across hosts (VXLAN)", a, "10.1.0.11", true},
		{"same subnet back", b, "10.1.0.10", true},
		{"gateway from a VM", a, "10.1.0.1", true},
		{"other subnet, same host, through the gateway", c, "10.1.0.10", true},
		{"other subnet, other host, through the gateway", c, "10.1.0.11", true},
		{"back from the other host", b, "10.2.0.10", true},
		{"other project, same CIDR, across hosts", d, "10.1.0.11", true},
		{"other project cannot reach r1's other subnet", d, "10.2.0.10", false},
		{"NAT subnet reaches the outside", a, "203.0.113.1", true},
		{"NAT subnet on the other host reaches the outside", b, "203.0.113.1", true},
		{"NO_NAT subnet does not reach the outside", c, "203.0.113.1", false},
		{"outside does not reach a VM without floating ip", w.out, "10.1.0.10", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ping(t, tc.from, tc.to); got != tc.want {
				t.Errorf("ping %s: got %v, want %v", tc.to, got, tc.want)
			}
		})
	}
	_ = e
}

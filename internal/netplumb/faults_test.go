package netplumb_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/netplumb"
	"github.com/photon-cloud/photon/internal/netplumb/nettest"
	"github.com/vishvananda/netlink"
)

// A subnet the kernel refuses (its VNI already taken by a device photon
// did not make) fails alone: the error names it, none of its devices
// stay, its router gets no gateway on it, and the rest is programmed.
func TestFailedSubnetLeavesNothing(t *testing.T) {
	w := newWorld(t, 1)
	hs := w.hosts[0]
	blocker := &netlink.Vxlan{LinkAttrs: netlink.LinkAttrs{Name: "blocker"}, VxlanId: 102, SrcAddr: net.ParseIP(hs.underlay), Port: netplumb.VXLANPort}
	must(t, hs.h.LinkAdd(blocker))
	want := netplumb.Desired{
		HostNetworkDesired: api.HostNetworkDesired{
			Routers: []api.RouterDesired{nettest.Router("r1")},
			Subnets: []api.SubnetDesired{nettest.Subnet("s1", "r1", 1, true, "192.0.2.99"), nettest.Subnet("s2", "r1", 2, true, "192.0.2.99")},
		},
		Ports: []netplumb.Port{nettest.Port("p1", "s1", 1, 10, "fa:16:3e:00:00:01"), nettest.Port("p2", "s2", 2, 10, "fa:16:3e:00:00:02")},
	}
	err := hs.d.Ensure(context.Background(), want)
	if err == nil || !strings.Contains(err.Error(), "subnet s2") || !strings.Contains(err.Error(), "port p2") {
		t.Fatalf("Ensure: %v; want an error naming subnet s2 and port p2", err)
	}
	for _, name := range []string{netplumb.BridgeName("s2"), netplumb.VXLANName("s2"), netplumb.GwHostName("s2"), netplumb.TapName("p2")} {
		if _, err := hs.h.LinkByName(name); err == nil {
			t.Errorf("%s left behind by the failed subnet", name)
		}
	}
	for _, name := range []string{netplumb.BridgeName("s1"), netplumb.VXLANName("s1"), netplumb.GwHostName("s1"), netplumb.TapName("p1"), netplumb.UplinkName("r1")} {
		if _, err := hs.h.LinkByName(name); err != nil {
			t.Errorf("%s missing: %v", name, err)
		}
	}
	if _, err := os.Stat(filepath.Join(hs.nsDir, netplumb.RouterNSName("r1"))); err != nil {
		t.Errorf("r1's namespace: %v", err)
	}
	must(t, hs.h.LinkDel(blocker))
	ensure(t, hs.d, want)
	ensure(t, hs.d, netplumb.Desired{})
	if l := leftovers(t, hs); len(l) > 0 {
		t.Errorf("left behind: %v", l)
	}
}

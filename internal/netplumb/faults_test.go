package netplumb_test

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/nftables"
	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/netplumb"
	"github.com/photon-cloud/photon/internal/netplumb/nettest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
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

// Ensure repairs what was changed under it: a lost or stray forwarding
// entry, a bridge set down, a tap deleted, a gateway veth taken off its
// bridge, a router's nftables table deleted.
func TestEnsureRepairs(t *testing.T) {
	w := newWorld(t, 1)
	hs := w.hosts[0]
	want := netplumb.Desired{
		HostNetworkDesired: api.HostNetworkDesired{
			Routers: []api.RouterDesired{nettest.Router("r1")},
			Subnets: []api.SubnetDesired{nettest.Subnet("s1", "r1", 1, true, "192.0.2.98", "192.0.2.99")},
		},
		Ports: []netplumb.Port{nettest.Port("p1", "s1", 1, 10, "fa:16:3e:00:00:01")},
	}
	ensure(t, hs.d, want)
	tap, err := hs.h.LinkByName(netplumb.TapName("p1"))
	must(t, err)
	tt, ok := tap.(*netlink.Tuntap)
	if !ok || tt.Mode != netlink.TUNTAP_MODE_TAP || tt.NonPersist || tt.Flags&netlink.TUNTAP_VNET_HDR == 0 || tt.Flags&netlink.TUNTAP_NO_PI == 0 {
		t.Fatalf("tap %s: %#v; want a persistent tap with vnet_hdr and no_pi", tap.Attrs().Name, tap)
	}
	before := snapshot(t, hs)

	vx, err := hs.h.LinkByName(netplumb.VXLANName("s1"))
	must(t, err)
	must(t, hs.h.NeighDel(&netlink.Neigh{LinkIndex: vx.Attrs().Index, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, IP: net.ParseIP("192.0.2.99"), HardwareAddr: make(net.HardwareAddr, 6)}))
	must(t, hs.h.NeighAppend(&netlink.Neigh{LinkIndex: vx.Attrs().Index, Family: unix.AF_BRIDGE, Flags: netlink.NTF_SELF, State: netlink.NUD_PERMANENT, IP: net.ParseIP("192.0.2.66"), HardwareAddr: make(net.HardwareAddr, 6)}))
	br, err := hs.h.LinkByName(netplumb.BridgeName("s1"))
	must(t, err)
	must(t, hs.h.LinkSetDown(br))
	must(t, hs.h.LinkDel(tap))
	gw, err := hs.h.LinkByName(netplumb.GwHostName("s1"))
	must(t, err)
	must(t, hs.h.LinkSetNoMaster(gw))
	rns, err := netns.GetFromPath(filepath.Join(hs.nsDir, netplumb.RouterNSName("r1")))
	must(t, err)
	defer rns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(rns)))
	must(t, err)
	c.DelTable(&nftables.Table{Name: "photon", Family: nftables.TableFamilyIPv4})
	must(t, c.Flush())

	ensure(t, hs.d, want)
	after := snapshot(t, hs)
	for k, v := range before {
		switch {
		case k == "link "+netplumb.TapName("p1"): // recreated: a new index
			if after[k] == "" {
				t.Errorf("tap not recreated")
			}
		case strings.HasPrefix(k, netplumb.RouterNSName("r1")+": rule "): // reprogrammed: new handles
			if after[k] == "" {
				t.Errorf("%s not restored", k)
			}
		default:
			if after[k] != v {
				t.Errorf("%s: %s before, %s after the repair", k, v, after[k])
			}
		}
	}
	for k := range after {
		if _, ok := before[k]; !ok {
			t.Errorf("%s: not there before", k)
		}
	}
	br, err = hs.h.LinkByName(netplumb.BridgeName("s1"))
	must(t, err)
	if br.Attrs().Flags&net.FlagUp == 0 {
		t.Errorf("bridge still down")
	}
}

// Package nettest is the conformance suite of netplumb drivers (the Linux
// driver and the fake run the same cases) and the network namespaces the
// Linux driver's tests build their "hosts" from.
package nettest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/netplumb"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// Router, Subnet and Port build a valid Desired: router r with subnet s
// (10.<n>.0.0/24, gateway .1, VNI 100+n) and a port p at .10.
func Router(id string) api.RouterDesired { return api.RouterDesired{ID: id, CIDR: "10.0.0.0/8"} }

func Subnet(id, router string, n int, nat bool, peers ...string) api.SubnetDesired {
	return api.SubnetDesired{ID: id, RouterID: router, CIDR: fmt.Sprintf("10.%d.0.0/24", n),
		Gateway: fmt.Sprintf("10.%d.0.1", n), VNI: uint32(100 + n), NAT: nat, DNS: []string{"1.1.1.1"}, MTU: 1450, Peers: peers}
}

func Port(id, subnet string, n, host int, mac string) netplumb.Port {
	return netplumb.Port{VMID: "vm-" + id, NICDesired: api.NICDesired{ID: id, SubnetID: subnet, MAC: mac,
		IP: fmt.Sprintf("10.%d.0.%d", n, host)}}
}

func valid() netplumb.Desired {
	return netplumb.Desired{
		HostNetworkDesired: api.HostNetworkDesired{
			Routers: []api.RouterDesired{Router("r1")},
			Subnets: []api.SubnetDesired{Subnet("s1", "r1", 1, true, "192.0.2.99")},
		},
		Ports: []netplumb.Port{Port("p1", "s1", 1, 10, "fa:16:3e:00:00:01")},
	}
}

// Run checks what every driver must do: accept and re-accept a valid
// network, refuse a broken one naming the part at fault, and accept the
// empty network.
func Run(t *testing.T, newDriver func(t *testing.T) netplumb.Driver) {
	ctx := context.Background()
	t.Run("valid twice then empty", func(t *testing.T) {
		d := newDriver(t)
		for i := range 2 {
			if err := d.Ensure(ctx, valid()); err != nil {
				t.Fatalf("Ensure %d: %v", i, err)
			}
		}
		if err := d.Ensure(ctx, netplumb.Desired{}); err != nil {
			t.Fatalf("Ensure empty: %v", err)
		}
	})
	bad := []struct {
		name   string
		mutate func(*netplumb.Desired)
		want   string
	}{
		{"port on unknown subnet", func(d *netplumb.Desired) { d.Ports[0].SubnetID = "nope" }, "port p1"},
		{"subnet on unknown router", func(d *netplumb.Desired) { d.Subnets[0].RouterID = "nope" }, "subnet s1"},
		{"bad subnet cidr", func(d *netplumb.Desired) { d.Subnets[0].CIDR = "10.1.0.0/33" }, "subnet s1"},
		{"host bits in cidr", func(d *netplumb.Desired) { d.Subnets[0].CIDR = "10.1.0.5/24" }, "subnet s1"},
		{"ipv6 cidr", func(d *netplumb.Desired) { d.Subnets[0].CIDR = "fd00::/64" }, "subnet s1"},
		{"bad router cidr", func(d *netplumb.Desired) { d.Routers[0].CIDR = "ten" }, "router r1"},
		{"gateway outside cidr", func(d *netplumb.Desired) { d.Subnets[0].Gateway = "10.2.0.1" }, "gateway"},
		{"gateway is network address", func(d *netplumb.Desired) { d.Subnets[0].Gateway = "10.1.0.0" }, "gateway"},
		{"vni zero", func(d *netplumb.Desired) { d.Subnets[0].VNI = 0 }, "vni"},
		{"vni too big", func(d *netplumb.Desired) { d.Subnets[0].VNI = 1 << 24 }, "vni"},
		{"bad peer", func(d *netplumb.Desired) { d.Subnets[0].Peers = []string{"peer"} }, "peer"},
		{"bad mtu", func(d *netplumb.Desired) { d.Subnets[0].MTU = 70000 }, "mtu"},
		{"bad mac", func(d *netplumb.Desired) { d.Ports[0].MAC = "fa:16:3e" }, "mac"},
		{"multicast mac", func(d *netplumb.Desired) { d.Ports[0].MAC = "01:00:5e:00:00:01" }, "mac"},
		{"gateway mac range", func(d *netplumb.Desired) { d.Ports[0].MAC = "02:70:67:00:00:01" }, "mac"},
		{"ip outside subnet", func(d *netplumb.Desired) { d.Ports[0].IP = "10.9.0.10" }, "port p1"},
		{"ip is gateway", func(d *netplumb.Desired) { d.Ports[0].IP = "10.1.0.1" }, "port p1"},
		{"ip is broadcast", func(d *netplumb.Desired) { d.Ports[0].IP = "10.1.0.255" }, "port p1"},
		{"bad floating ip", func(d *netplumb.Desired) { d.Ports[0].FloatingIP = "x" }, "floating"},
		{"duplicate port", func(d *netplumb.Desired) { d.Ports = append(d.Ports, d.Ports[0]) }, "twice"},
		{"duplicate ip", func(d *netplumb.Desired) {
			p := d.Ports[0]
			p.ID, p.MAC = "p2", "fa:16:3e:00:00:02"
			d.Ports = append(d.Ports, p)
		}, "ip 10.1.0.10"},
		{"duplicate mac", func(d *netplumb.Desired) {
			p := d.Ports[0]
			p.ID, p.IP = "p2", "10.1.0.11"
			d.Ports = append(d.Ports, p)
		}, "mac"},
		{"overlapping subnets on a router", func(d *netplumb.Desired) {
			s := d.Subnets[0]
			s.ID, s.VNI, s.CIDR, s.Gateway = "s2", 999, "10.1.0.0/16", "10.1.1.1"
			d.Subnets = append(d.Subnets, s)
		}, "overlaps"},
		{"subnet too small", func(d *netplumb.Desired) { d.Subnets[0].CIDR, d.Subnets[0].Gateway = "10.1.0.0/31", "10.1.0.1" }, "subnet s1"},
		{"empty port id", func(d *netplumb.Desired) { d.Ports[0].ID = "" }, "empty id"},
	}
	for _, tc := range bad {
		t.Run("refuses "+tc.name, func(t *testing.T) {
			d := newDriver(t)
			want := valid()
			tc.mutate(&want)
			err := d.Ensure(ctx, want)
			if err == nil {
				t.Fatalf("Ensure accepted %s", tc.name)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Ensure: %v; want an error naming %q", err, tc.want)
			}
		})
	}
}

// NewNS makes a network namespace kept at dir/name and removes it when
// the test ends; it returns its path.
func NewNS(t testing.TB, dir, name string) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, nil, 0o444); err != nil {
		t.Fatal(err)
	}
	err := func() error {
		runtime.LockOSThread()
		orig, err := netns.Get()
		if err != nil {
			runtime.UnlockOSThread()
			return err
		}
		defer orig.Close()
		if err := unix.Unshare(unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			return err
		}
		merr := unix.Mount(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()), path, "none", unix.MS_BIND, "")
		if err := netns.Set(orig); err != nil {
			return err // leave the thread locked: it dies with the goroutine
		}
		runtime.UnlockOSThread()
		return merr
	}()
	if err != nil {
		t.Fatalf("netns %s: %v", path, err)
	}
	t.Cleanup(func() {
		unix.Unmount(path, unix.MNT_DETACH)
		os.Remove(path)
	})
	return path
}

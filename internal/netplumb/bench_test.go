package netplumb_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/netplumb"
	"github.com/photon-cloud/photon/internal/netplumb/nettest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// manyPorts is a host with ports NICs on ports/100 subnets (NAT, 100
// ports each, every 10th with a floating IP) of 2 routers, each subnet
// with 10 peers.
func manyPorts(ports int) netplumb.Desired {
	var want netplumb.Desired
	want.Routers = []api.RouterDesired{{ID: "r0", CIDR: "10.0.0.0/9"}, {ID: "r1", CIDR: "10.128.0.0/9"}}
	var peers []string
	for i := range 10 {
		peers = append(peers, fmt.Sprintf("192.0.2.%d", 100+i))
	}
	for i := 0; i*100 < ports; i++ {
		r := i % 2
		sid := fmt.Sprintf("s%d", i)
		want.Subnets = append(want.Subnets, api.SubnetDesired{ID: sid, RouterID: fmt.Sprintf("r%d", r),
			CIDR: fmt.Sprintf("10.%d.%d.0/24", r*128, i), Gateway: fmt.Sprintf("10.%d.%d.1", r*128, i),
			VNI: uint32(1000 + i), NAT: true, MTU: 1450, Peers: peers})
		for j := 0; j < 100 && i*100+j < ports; j++ {
			n := i*100 + j
			p := netplumb.Port{NICDesired: api.NICDesired{ID: fmt.Sprintf("p%d", n), SubnetID: sid,
				MAC: fmt.Sprintf("fa:16:3e:00:%02x:%02x", n>>8, n&0xff), IP: fmt.Sprintf("10.%d.%d.%d", r*128, i, 10+j)}}
			if n%10 == 0 {
				p.FloatingIP = fmt.Sprintf("198.51.%d.%d", n>>8, n&0xff)
			}
			want.Ports = append(want.Ports, p)
		}
	}
	return want
}

// countRules counts the nftables rules in the namespace at path.
func countRules(b testing.TB, path string) int {
	ns, err := netns.GetFromPath(path)
	must(b, err)
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	must(b, err)
	tables, err := c.ListTables()
	must(b, err)
	n := 0
	for _, t := range tables {
		chains, err := c.ListChainsOfTableFamily(t.Family)
		must(b, err)
		for _, ch := range chains {
			if ch.Table.Name == t.Name {
				rs, err := c.GetRules(t, ch)
				must(b, err)
				n += len(rs)
			}
		}
	}
	return n
}

// BenchmarkEnsure times the steady state (an agent's loop giving a host
// what it already has) with many ports, and reports the first Ensure's
// time and the host's nftables rules and links.
func BenchmarkEnsure(b *testing.B) {
	if os.Geteuid() != 0 {
		b.Skip("needs root (network namespaces)")
	}
	for _, ports := range []int{100, 1000} {
		b.Run(fmt.Sprintf("ports=%d", ports), func(b *testing.B) {
			dir := b.TempDir()
			path := nettest.NewNS(b, dir, "host")
			_, h := openNS(b, path)
			// (no dummy devices on this kernel: a veth stands in)
			must(b, h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink"}, PeerName: "outside"}))
			up(b, h, "outside")
			up(b, h, "uplink")
			nsDir := filepath.Join(dir, "netns")
			d, err := netplumb.NewLinux(netplumb.Config{UnderlayIP: "192.0.2.1", Uplink: "uplink", NetNS: path, NetNSDir: nsDir})
			must(b, err)
			b.Cleanup(func() {
				d.Ensure(context.Background(), netplumb.Desired{})
				d.Close()
				es, _ := os.ReadDir(nsDir)
				for _, e := range es {
					unix.Unmount(filepath.Join(nsDir, e.Name()), unix.MNT_DETACH)
				}
			})
			want := manyPorts(ports)
			start := time.Now()
			must(b, d.Ensure(context.Background(), want))
			first := time.Since(start)
			rules := countRules(b, path)
			es, _ := os.ReadDir(nsDir)
			for _, e := range es {
				rules += countRules(b, filepath.Join(nsDir, e.Name()))
			}
			links, err := h.LinkList()
			must(b, err)
			b.ResetTimer()
			for b.Loop() {
				if err := d.Ensure(context.Background(), want); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(first.Milliseconds()), "first-ms")
			b.ReportMetric(float64(rules), "rules")
			b.ReportMetric(float64(len(links)), "links")
		})
	}
}

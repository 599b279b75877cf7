package netplumb_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
	"github.com/photon-cloud/photon/internal/netplumb"
	"github.com/photon-cloud/photon/internal/netplumb/nettest"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// The data-path tests build a small datacenter out of network namespaces:
// an "underlay" namespace with a bridge every host's eth0 is plugged into
// (192.0.2.0/24), an "outside" namespace with a bridge every host's
// "uplink" is plugged into (203.0.113.1/24 on it, a host i at
// 203.0.113.1i), and per host a namespace the host's Linux driver
// programs. A VM is a namespace whose eth0 (a veth with the port's MAC) is
// plugged into the subnet's bridge next to the port's tap: a tap has no
// carrier without a reader, and a veth carries the same frames through
// the same bridge, so the test checks everything but QEMU's end of the
// tap.

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("netplumb's Linux tests need root (network namespaces)")
	}
}

type host struct {
	name     string
	ns       string // path
	h        *netlink.Handle
	nsDir    string
	underlay string
	d        netplumb.Driver
}

type world struct {
	t     *testing.T
	dir   string
	ul    string
	out   string
	hosts []*host
}

func openNS(t testing.TB, path string) (netns.NsHandle, *netlink.Handle) {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	if err != nil {
		t.Fatal(err)
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.Close(); ns.Close() })
	return ns, h
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func up(t testing.TB, h *netlink.Handle, name string) netlink.Link {
	t.Helper()
	ln, err := h.LinkByName(name)
	must(t, err)
	must(t, h.LinkSetUp(ln))
	return ln
}

func addAddr(t testing.TB, h *netlink.Handle, name, cidr string) {
	t.Helper()
	ln, err := h.LinkByName(name)
	must(t, err)
	a, err := netlink.ParseAddr(cidr)
	must(t, err)
	must(t, h.AddrAdd(ln, a))
}

// newWorld makes the underlay, the outside and n hosts, each with its
// driver.
func newWorld(t *testing.T, n int) *world {
	requireRoot(t)
	dir, err := os.MkdirTemp("", "netplumb-")
	must(t, err)
	t.Cleanup(func() { os.RemoveAll(dir) })
	w := &world{t: t, dir: dir}
	w.ul = nettest.NewNS(t, dir, "ul")
	w.out = nettest.NewNS(t, dir, "out")
	ulNS, ulH := openNS(t, w.ul)
	outNS, outH := openNS(t, w.out)
	_ = ulNS
	_ = outNS
	must(t, ulH.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "ul"}}))
	up(t, ulH, "ul")
	up(t, ulH, "lo")
	must(t, outH.LinkAdd(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: "ob"}}))
	up(t, outH, "ob")
	up(t, outH, "lo")
	addAddr(t, outH, "ob", "203.0.113.1/24")
	// The outside knows the way to the private ranges (as a misconfigured
	// neighbour might): isolation must not rest on its not knowing.
	_, private, _ := net.ParseCIDR("10.0.0.0/8")
	must(t, outH.RouteAdd(&netlink.Route{Dst: private, Gw: net.ParseIP("203.0.113.11")}))
	for i := 1; i <= n; i++ {
		hs := &host{name: fmt.Sprintf("h%d", i), underlay: fmt.Sprintf("192.0.2.1%d", i)}
		hs.ns = nettest.NewNS(t, dir, hs.name)
		_, hs.h = openNS(t, hs.ns)
		hs.nsDir = filepath.Join(dir, hs.name+"-netns")
		up(t, hs.h, "lo")
		must(t, hs.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "eth0"}, PeerName: hs.name, PeerNamespace: netlink.NsFd(int(ulNS))}))
		ln := up(t, ulH, hs.name)
		must(t, ulH.LinkSetMasterByIndex(ln, mustIndex(t, ulH, "ul")))
		up(t, hs.h, "eth0")
		addAddr(t, hs.h, "eth0", hs.underlay+"/24")
		must(t, hs.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "uplink"}, PeerName: hs.name, PeerNamespace: netlink.NsFd(int(outNS))}))
		ln = up(t, outH, hs.name)
		must(t, outH.LinkSetMasterByIndex(ln, mustIndex(t, outH, "ob")))
		up(t, hs.h, "uplink")
		addAddr(t, hs.h, "uplink", fmt.Sprintf("203.0.113.1%d/24", i))
		hs.d = w.driver(hs)
		w.hosts = append(w.hosts, hs)
		t.Cleanup(func() {
			hs.d.Close()
			// Unmount router namespaces a failed test left behind.
			es, _ := os.ReadDir(hs.nsDir)
			for _, e := range es {
				unix.Unmount(filepath.Join(hs.nsDir, e.Name()), unix.MNT_DETACH)
			}
		})
	}
	return w
}

func (w *world) driver(hs *host) netplumb.Driver {
	d, err := netplumb.NewLinux(netplumb.Config{UnderlayIP: hs.underlay, Uplink: "uplink", NetNS: hs.ns, NetNSDir: hs.nsDir})
	must(w.t, err)
	return d
}

func mustIndex(t testing.TB, h *netlink.Handle, name string) int {
	t.Helper()
	ln, err := h.LinkByName(name)
	must(t, err)
	return ln.Attrs().Index
}

// vm plugs a "VM" namespace into subnet's bridge on hs: eth0 with mac,
// and, if cidr is not empty, that address and a default route via gw.
func (w *world) vm(hs *host, name, subnet, mac, cidr, gw string) string {
	return w.vmAt(hs, "v"+name, name, subnet, mac, cidr, gw)
}

// vmAt is vm with the host end of its veth named side.
func (w *world) vmAt(hs *host, side, name, subnet, mac, cidr, gw string) string {
	t := w.t
	t.Helper()
	path := nettest.NewNS(t, w.dir, name)
	vmNS, vmH := openNS(t, path)
	hw, err := net.ParseMAC(mac)
	must(t, err)
	must(t, hs.h.LinkAdd(&netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: side, MTU: 1450}, PeerName: "eth0", PeerHardwareAddr: hw, PeerNamespace: netlink.NsFd(int(vmNS))}))
	ln := up(t, hs.h, side)
	must(t, hs.h.LinkSetMasterByIndex(ln, mustIndex(t, hs.h, netplumb.BridgeName(subnet))))
	up(t, vmH, "lo")
	eth := up(t, vmH, "eth0")
	must(t, vmH.LinkSetMTU(eth, 1450))
	if cidr != "" {
		addAddr(t, vmH, "eth0", cidr)
		must(t, vmH.RouteAdd(&netlink.Route{LinkIndex: eth.Attrs().Index, Gw: net.ParseIP(gw)}))
	}
	return path
}

// ping reports whether from (a namespace path) gets an echo reply from ip
// within a few seconds.
func ping(t testing.TB, from, ip string) bool {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "nsenter", "--net="+from, "busybox", "ping", "-c", "1", "-W", "3", ip).CombinedOutput()
	if err != nil {
		t.Logf("ping %s from %s: %v: %s", ip, filepath.Base(from), err, strings.TrimSpace(string(out)))
	}
	return err == nil
}

func ensure(t testing.TB, d netplumb.Driver, want netplumb.Desired) {
	t.Helper()
	if err := d.Ensure(context.Background(), want); err != nil {
		t.Fatalf("Ensure: %v", err)
	}
}

// inNS runs fn on a thread in the namespace at path.
func inNS(t testing.TB, path string, fn func()) {
	t.Helper()
	ns, err := netns.GetFromPath(path)
	must(t, err)
	defer ns.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		must(t, netns.Set(ns))
		fn()
	}()
	<-done
}

// snapshot is what must not change when Ensure is given what is already
// there: every link's name and index, every nftables rule's handle, every
// forwarding entry, in the host and its router namespaces.
func snapshot(t testing.TB, hs *host) map[string]string {
	t.Helper()
	out := map[string]string{}
	var walk func(prefix, path string)
	walk = func(prefix, path string) {
		ns, h := openNS(t, path)
		links, err := h.LinkList()
		must(t, err)
		for _, ln := range links {
			out[prefix+"link "+ln.Attrs().Name] = fmt.Sprint(ln.Attrs().Index, " master ", ln.Attrs().MasterIndex, " mtu ", ln.Attrs().MTU)
			if ln.Type() == "vxlan" {
				ns, err := h.NeighList(ln.Attrs().Index, unix.AF_BRIDGE)
				must(t, err)
				for _, n := range ns {
					out[prefix+"fdb "+ln.Attrs().Name+" "+n.HardwareAddr.String()+" "+n.IP.String()] = "present"
				}
			}
		}
		c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
		must(t, err)
		tables, err := c.ListTables()
		must(t, err)
		for _, tb := range tables {
			chains, err := c.ListChainsOfTableFamily(tb.Family)
			must(t, err)
			for _, ch := range chains {
				if ch.Table.Name != tb.Name {
					continue
				}
				rules, err := c.GetRules(tb, ch)
				must(t, err)
				for _, r := range rules {
					out[fmt.Sprintf("%srule %s/%s %s", prefix, tb.Name, ch.Name, r.UserData)] = fmt.Sprint(r.Handle)
				}
			}
		}
	}
	walk("", hs.ns)
	es, _ := os.ReadDir(hs.nsDir)
	for _, e := range es {
		walk(e.Name()+": ", filepath.Join(hs.nsDir, e.Name()))
	}
	return out
}

// leftovers lists what photon made that is still on hs: links with
// photon's alias or name prefixes, photon's nftables tables, router
// namespaces, floating IP routes and proxy entries.
func leftovers(t testing.TB, hs *host) []string {
	t.Helper()
	var out []string
	links, err := hs.h.LinkList()
	must(t, err)
	for _, ln := range links {
		n := ln.Attrs().Name
		if strings.HasPrefix(ln.Attrs().Alias, "photon:") || len(n) == 14 && slices.Contains([]string{"pb", "pv", "pg", "pu", "pt"}, n[:2]) {
			out = append(out, "link "+n)
		}
		if ln.Type() == "vxlan" {
			ns, _ := hs.h.NeighList(ln.Attrs().Index, unix.AF_BRIDGE)
			for _, nb := range ns {
				if nb.IP != nil {
					out = append(out, "fdb "+n+" "+nb.IP.String())
				}
			}
		}
	}
	ns, err := netns.GetFromPath(hs.ns)
	must(t, err)
	defer ns.Close()
	c, err := nftables.New(nftables.WithNetNSFd(int(ns)))
	must(t, err)
	tables, err := c.ListTables()
	must(t, err)
	for _, tb := range tables {
		if strings.HasPrefix(tb.Name, "photon") {
			out = append(out, "nftables table "+tb.Name)
		}
	}
	es, _ := os.ReadDir(hs.nsDir)
	for _, e := range es {
		out = append(out, "netns "+e.Name())
	}
	routes, err := hs.h.RouteList(nil, netlink.FAMILY_V4)
	must(t, err)
	for _, r := range routes {
		if r.Protocol == 112 {
			out = append(out, "route "+r.Dst.String())
		}
	}
	up, err := hs.h.LinkByName("uplink")
	must(t, err)
	neighs, err := hs.h.NeighProxyList(up.Attrs().Index, netlink.FAMILY_V4)
	must(t, err)
	for _, n := range neighs {
		out = append(out, "proxy arp "+n.IP.String())
	}
	if n := netplumb.Responders(hs.d); n != 0 {
		out = append(out, fmt.Sprintf("%d dhcp responders", n))
	}
	return out
}

func mustAddr(t testing.TB, cidr string) *netlink.Addr {
	t.Helper()
	a, err := netlink.ParseAddr(cidr)
	must(t, err)
	return a
}

package netplumb_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

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
	t := w.t
	t.Helper()
	path := nettest.NewNS(t, w.dir, name)
	vmNS, vmH := openNS(t, path)
	hw, err := net.ParseMAC(mac)
	must(t, err)
	side := "v" + name
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

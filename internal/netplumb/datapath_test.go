package netplumb_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/nclient4"
	"github.com/vishvananda/netlink"

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
		{"a VM does not reach its host (agent, VXLAN socket)", a, "192.0.2.11", false},
		{"a VM does not reach its host's uplink address", a, "203.0.113.11", false},
		{"a VM does not reach another host's underlay", a, "192.0.2.12", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := ping(t, tc.from, tc.to); got != tc.want {
				t.Errorf("ping %s: got %v, want %v", tc.to, got, tc.want)
			}
		})
	}
	_ = e

	t.Run("no VXLAN packet from a VM leaves through the uplink", func(t *testing.T) {
		for _, tc := range []struct {
			port int
			want bool
		}{{4790, true}, {netplumb.VXLANPort, false}} {
			var conn net.PacketConn
			inNS(t, w.out, func() {
				var err error
				conn, err = net.ListenPacket("udp4", fmt.Sprintf("203.0.113.1:%d", tc.port))
				must(t, err)
			})
			inNS(t, a, func() {
				c, err := net.Dial("udp4", fmt.Sprintf("203.0.113.1:%d", tc.port))
				must(t, err)
				for range 3 {
					c.Write([]byte("hello"))
				}
				c.Close()
			})
			conn.SetReadDeadline(time.Now().Add(time.Second))
			_, _, err := conn.ReadFrom(make([]byte, 64))
			conn.Close()
			if got := err == nil; got != tc.want {
				t.Errorf("udp to port %d reached the outside: %v, want %v", tc.port, got, tc.want)
			}
		}
	})

	t.Run("a VM's frame to its bridge's MAC reaches no host stack", func(t *testing.T) {
		br, err := w.hosts[0].h.LinkByName(netplumb.BridgeName("s1"))
		must(t, err)
		for _, dst := range []string{"192.0.2.11", "192.0.2.12"} { // h1 itself, h2 through h1's ip_forward
			var conn net.PacketConn
			listenIn := w.hosts[0].ns
			if dst == "192.0.2.12" {
				listenIn = w.hosts[1].ns
			}
			inNS(t, listenIn, func() {
				var err error
				conn, err = net.ListenPacket("udp4", dst+":9999")
				must(t, err)
			})
			inNS(t, a, func() {
				eth, err := netlink.LinkByName("eth0")
				must(t, err)
				_, ul, _ := net.ParseCIDR("192.0.2.0/24")
				must(t, netlink.RouteReplace(&netlink.Route{LinkIndex: eth.Attrs().Index, Dst: ul, Scope: netlink.SCOPE_LINK}))
				must(t, netlink.NeighSet(&netlink.Neigh{LinkIndex: eth.Attrs().Index, Family: netlink.FAMILY_V4, State: netlink.NUD_PERMANENT,
					IP: net.ParseIP(dst), HardwareAddr: br.Attrs().HardwareAddr}))
				c, err := net.Dial("udp4", dst+":9999")
				must(t, err)
				for range 3 {
					c.Write([]byte("hello"))
				}
				c.Close()
				must(t, netlink.RouteDel(&netlink.Route{LinkIndex: eth.Attrs().Index, Dst: ul, Scope: netlink.SCOPE_LINK}))
			})
			conn.SetReadDeadline(time.Now().Add(time.Second))
			_, from, err := conn.ReadFrom(make([]byte, 64))
			conn.Close()
			if err == nil {
				t.Errorf("a VM's packet to %s through its bridge's MAC arrived (from %s)", dst, from)
			}
		}
	})

	t.Run("a VM keeps its own host's gateway MAC", func(t *testing.T) {
		// b answered probes from h1's router; its entry for the gateway
		// must still be the gateway MAC, never h1's host MAC.
		inNS(t, b, func() {
			ns, err := netlink.NeighList(0, netlink.FAMILY_V4)
			must(t, err)
			for _, n := range ns {
				if n.IP.String() == "10.1.0.1" && n.HardwareAddr.String() != netplumb.GatewayMAC("s1").String() {
					t.Errorf("b's gateway 10.1.0.1 is at %s, want %s", n.HardwareAddr, netplumb.GatewayMAC("s1"))
				}
			}
		})
	})

	t.Run("port security", func(t *testing.T) {
		// A VM plugged in where its port's tap is (a veth of the tap's
		// name: the rules match the tap's name).
		h1.Ports = append(h1.Ports, nettest.Port("ps", "s1", 1, 13, "fa:16:3e:00:00:13"))
		ensure(t, w.hosts[0].d, h1)
		tap, err := w.hosts[0].h.LinkByName(netplumb.TapName("ps"))
		must(t, err)
		must(t, w.hosts[0].h.LinkDel(tap))
		s := w.vmAt(w.hosts[0], netplumb.TapName("ps"), "s", "s1", "fa:16:3e:00:00:13", "10.1.0.13/24", "10.1.0.1")
		if !ping(t, s, "10.1.0.11") {
			t.Fatalf("a VM with its own MAC and address is not let through")
		}
		_, sh := openNS(t, s)
		eth, err := sh.LinkByName("eth0")
		must(t, err)
		must(t, sh.AddrDel(eth, mustAddr(t, "10.1.0.13/24")))
		must(t, sh.AddrAdd(eth, mustAddr(t, "10.1.0.14/24")))
		if ping(t, s, "10.1.0.11") {
			t.Errorf("a VM with another address is let through")
		}
		must(t, sh.AddrDel(eth, mustAddr(t, "10.1.0.14/24")))
		must(t, sh.AddrAdd(eth, mustAddr(t, "10.1.0.13/24")))
		must(t, sh.LinkSetHardwareAddr(eth, net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 0x66}))
		if ping(t, s, "10.1.0.11") {
			t.Errorf("a VM with another MAC is let through")
		}
		// The stand-in is the test's, not photon's: Ensure leaves it.
		h1.Ports = h1.Ports[:len(h1.Ports)-1]
		ensure(t, w.hosts[0].d, h1)
		stand, err := w.hosts[0].h.LinkByName(netplumb.TapName("ps"))
		must(t, err)
		must(t, w.hosts[0].h.LinkDel(stand))
	})

	t.Run("floating ip", func(t *testing.T) {
		h1.Ports[0].FloatingIP = "203.0.113.100"
		ensure(t, w.hosts[0].d, h1)
		if !ping(t, w.out, "203.0.113.100") {
			t.Errorf("the outside does not reach a's floating ip")
		}
		if !ping(t, a, "203.0.113.1") {
			t.Errorf("a with a floating ip does not reach the outside")
		}
		h1.Ports[0].FloatingIP = ""
		ensure(t, w.hosts[0].d, h1)
		if ping(t, w.out, "203.0.113.100") {
			t.Errorf("the outside reaches a released floating ip")
		}
	})

	t.Run("dhcp", func(t *testing.T) {
		h1.Ports = append(h1.Ports, nettest.Port("pf", "s1", 1, 12, "fa:16:3e:00:00:0f"))
		ensure(t, w.hosts[0].d, h1)
		f := w.vm(w.hosts[0], "f", "s1", "fa:16:3e:00:00:0f", "", "")
		g := w.vm(w.hosts[0], "g", "s1", "fa:16:3e:00:00:99", "", "")
		var lease *nclient4.Lease
		inNS(t, f, func() {
			c, err := nclient4.New("eth0", nclient4.WithTimeout(2*time.Second), nclient4.WithRetry(2))
			must(t, err)
			defer c.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			lease, err = c.Request(ctx)
			must(t, err)
		})
		ack := lease.ACK
		if got := ack.YourIPAddr.String(); got != "10.1.0.12" {
			t.Errorf("yiaddr %s, want 10.1.0.12", got)
		}
		if got := net.IP(ack.SubnetMask()).String(); got != "255.255.255.0" {
			t.Errorf("mask %s", got)
		}
		if r := ack.Router(); len(r) != 1 || r[0].String() != "10.1.0.1" {
			t.Errorf("router %v", r)
		}
		if d := ack.DNS(); len(d) != 1 || d[0].String() != "1.1.1.1" {
			t.Errorf("dns %v", d)
		}
		if mtu := ack.Options.Get(dhcpv4.OptionInterfaceMTU); len(mtu) != 2 || int(mtu[0])<<8|int(mtu[1]) != 1450 {
			t.Errorf("mtu option %v", mtu)
		}
		if ack.IPAddressLeaseTime(0) != netplumb.LeaseTime {
			t.Errorf("lease time %v", ack.IPAddressLeaseTime(0))
		}
		// The guest image's client: busybox udhcpc.
		out, err := exec.Command("nsenter", "--net="+f, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-s", "/bin/true", "-t", "3", "-T", "1").CombinedOutput()
		if err != nil || !strings.Contains(string(out), "lease of 10.1.0.12 obtained") {
			t.Errorf("udhcpc: %v: %s", err, out)
		}
		out, err = exec.Command("nsenter", "--net="+g, "busybox", "udhcpc", "-i", "eth0", "-n", "-q", "-f", "-s", "/bin/true", "-t", "2", "-T", "1").CombinedOutput()
		if err == nil || strings.Contains(string(out), "obtained") {
			t.Errorf("udhcpc with an unknown MAC got a lease: %s", out)
		}
	})

	t.Run("Ensure again and a restarted driver change nothing", func(t *testing.T) {
		for i, hs := range w.hosts {
			want := []netplumb.Desired{h1, h2}[i]
			before := snapshot(t, hs)
			ensure(t, hs.d, want)
			must(t, hs.d.Close())
			hs.d = w.driver(hs)
			ensure(t, hs.d, want)
			after := snapshot(t, hs)
			for k, v := range before {
				if after[k] != v {
					t.Errorf("%s: %s: %s, then %s", hs.name, k, v, after[k])
				}
			}
			for k, v := range after {
				if _, ok := before[k]; !ok {
					t.Errorf("%s: %s: new (%s)", hs.name, k, v)
				}
			}
		}
		if !ping(t, a, "10.1.0.11") {
			t.Errorf("no traffic after the restart")
		}
	})

	t.Run("removing a subnet, a router, then everything leaves nothing", func(t *testing.T) {
		// r2 and t1 go from h1.
		h1.Routers = h1.Routers[:1]
		h1.Subnets = h1.Subnets[:2]
		h1.Ports = slices.DeleteFunc(h1.Ports, func(p netplumb.Port) bool { return p.SubnetID == "t1" })
		ensure(t, w.hosts[0].d, h1)
		for _, name := range []string{netplumb.BridgeName("t1"), netplumb.VXLANName("t1"), netplumb.GwHostName("t1"), netplumb.UplinkName("r2"), netplumb.TapName("pd")} {
			if _, err := w.hosts[0].h.LinkByName(name); err == nil {
				t.Errorf("%s still there", name)
			}
		}
		if _, err := os.Stat(filepath.Join(w.hosts[0].nsDir, netplumb.RouterNSName("r2"))); err == nil {
			t.Errorf("r2's namespace still there")
		}
		if !ping(t, a, "10.1.0.11") {
			t.Errorf("r1 lost traffic when r2 went")
		}
		for _, hs := range w.hosts {
			ensure(t, hs.d, netplumb.Desired{})
			if l := leftovers(t, hs); len(l) > 0 {
				t.Errorf("%s: left behind: %v", hs.name, l)
			}
		}
	})
}

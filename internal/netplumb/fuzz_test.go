package netplumb

import (
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/photon-cloud/photon/api"
)

func FuzzParseCIDR(f *testing.F) {
	for _, s := range []string{"10.10.1.0/24", "192.168.0.1/24", "0.0.0.0/0", "10.0.0.0/33", "fd00::/64", "::ffff:10.0.0.0/104", "", "1.2.3.4/-1", "01.2.3.4/8"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		p, err := ParseCIDR(s)
		if err != nil {
			return
		}
		if !p.Addr().Is4() || p.Masked() != p || p.Bits() < 0 || p.Bits() > 32 {
			t.Fatalf("ParseCIDR(%q) = %s", s, p)
		}
		if q, err := ParseCIDR(p.String()); err != nil || q != p {
			t.Fatalf("round trip of %s: %s, %v", p, q, err)
		}
		b := broadcast(p)
		if !p.Contains(b) {
			t.Fatalf("broadcast %s outside %s", b, p)
		}
	})
}

func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{"fa:16:3e:12:34:56", "FA-16-3E-12-34-56", "fa16.3e12.3456", "01:00:5e:00:00:01", "00:00:00:00:00:00", "02:70:67:00:00:01", "00:00:00:00:fe:80:00:00:00:00:00:00:02:00:5e:10:00:00:00:01", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMAC(s)
		if err != nil {
			return
		}
		if len(m) != 6 || m[0]&1 != 0 || isGatewayMAC(m) || isHostMAC(m) {
			t.Fatalf("ParseMAC(%q) = %s", s, m)
		}
	})
}

// FuzzCheck: check never panics, and what it accepts keeps the
// invariants the drivers build on.
func FuzzCheck(f *testing.F) {
	f.Add("r1", "10.0.0.0/8", "s1", "r1", "10.1.0.0/24", "10.1.0.1", uint32(101), 1450, "192.0.2.2", "p1", "s1", "fa:16:3e:00:00:01", "10.1.0.10", "")
	f.Add("r1", "10.0.0.0/8", "s1", "r1", "10.1.0.0/30", "10.1.0.2", uint32(1), 0, "", "p1", "s1", "fa:16:3e:00:00:01", "10.1.0.1", "203.0.113.5")
	f.Fuzz(func(t *testing.T, rid, rcidr, sid, srouter, scidr, gw string, vni uint32, mtu int, peer, pid, psub, mac, ip, fip string) {
		want := Desired{
			HostNetworkDesired: api.HostNetworkDesired{
				Routers: []api.RouterDesired{{ID: rid, CIDR: rcidr}},
				Subnets: []api.SubnetDesired{{ID: sid, RouterID: srouter, CIDR: scidr, Gateway: gw, VNI: vni, MTU: mtu, Peers: strings.Split(peer, ",")}},
			},
			Ports: []Port{{NICDesired: api.NICDesired{ID: pid, SubnetID: psub, MAC: mac, IP: ip, FloatingIP: fip}}},
		}
		p, err := check(want)
		if err != nil {
			return
		}
		s := p.subnets[sid]
		pt := p.ports[pid]
		if s == nil || pt == nil || p.routers[s.RouterID] == nil {
			t.Fatalf("accepted a dangling reference: %+v", want)
		}
		if !s.CIDR.Contains(s.Gateway) || s.Gateway == s.CIDR.Addr() || s.Gateway == broadcast(s.CIDR) {
			t.Fatalf("accepted gateway %s of %s", s.Gateway, s.CIDR)
		}
		if !s.CIDR.Contains(pt.IP) || pt.IP == s.Gateway || s.VNI == 0 || s.VNI >= 1<<24 || s.MTU < 576 || s.MTU > 9000 {
			t.Fatalf("accepted %+v", want)
		}
		if len(bridgeName(sid)) > 15 || len(TapName(pid)) > 15 {
			t.Fatalf("device name too long")
		}
	})
}

// FuzzDHCPAnswer: the responder's handling of whatever a guest sends
// never panics, and answers only a known MAC with its own address.
func FuzzDHCPAnswer(f *testing.F) {
	mac := net.HardwareAddr{0xfa, 0x16, 0x3e, 0, 0, 1}
	for _, typ := range []dhcpv4.MessageType{dhcpv4.MessageTypeDiscover, dhcpv4.MessageTypeRequest, dhcpv4.MessageTypeInform, dhcpv4.MessageTypeRelease} {
		m, _ := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(typ))
		f.Add(m.ToBytes())
	}
	m, _ := dhcpv4.New(dhcpv4.WithHwAddr(net.HardwareAddr{1, 2, 3, 4, 5, 6}), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover))
	f.Add(m.ToBytes())
	var leases leaseTable
	gw := netip.MustParseAddr("10.1.0.1")
	leases.set(map[string]map[string]lease{"s1": {mac.String(): {ip: netip.MustParseAddr("10.1.0.10"), mask: net.CIDRMask(24, 32), gateway: gw, mtu: 1450}}})
	f.Fuzz(func(t *testing.T, b []byte) {
		if len(b) > maxDHCPPacket {
			return
		}
		req, err := dhcpv4.FromBytes(b)
		if err != nil {
			return
		}
		resp, dst := answer(req, "s1", gw, &leases)
		if resp == nil {
			return
		}
		if req.ClientHWAddr.String() != mac.String() || dst == nil {
			t.Fatalf("answered %s", req.ClientHWAddr)
		}
		if y := resp.YourIPAddr; !y.IsUnspecified() && !y.Equal(net.ParseIP("10.1.0.10")) {
			t.Fatalf("handed out %s", y)
		}
		if len(resp.ToBytes()) > 1500 {
			t.Fatalf("reply of %d bytes", len(resp.ToBytes()))
		}
	})
}

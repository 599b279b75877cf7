package netplumb

import (
	"fmt"
	"net"
	"net/netip"
	"sort"
)

// DefaultMTU is the MTU of a subnet that names none: a 1500-byte underlay
// less VXLAN's 50 bytes of encapsulation.
const DefaultMTU = 1450

// Bounds of what Ensure accepts (hostile input is bounded).
const (
	maxRouters = 4096
	maxSubnets = 4096
	maxPorts   = 65536
	maxPeers   = 4096
	maxDNS     = 8
	maxIDLen   = 128
)

// plan is a checked Desired, with everything parsed: what both drivers
// build from.
type plan struct {
	routers map[string]*routerPlan
	subnets map[string]*subnetPlan
	ports   map[string]*portPlan
}

type routerPlan struct {
	ID      string
	CIDR    netip.Prefix
	Subnets []*subnetPlan // sorted by id
}

type subnetPlan struct {
	ID       string
	RouterID string
	CIDR     netip.Prefix
	Gateway  netip.Addr
	VNI      uint32
	NAT      bool
	DNS      []netip.Addr
	MTU      int
	Peers    []netip.Addr // sorted, distinct
	Ports    []*portPlan  // sorted by id
}

type portPlan struct {
	ID       string
	VMID     string
	SubnetID string
	MAC      net.HardwareAddr
	IP       netip.Addr
	Floating netip.Addr // invalid if none
}

// ParseCIDR parses an IPv4 subnet, "10.10.1.0/24", with its host bits
// clear.
func ParseCIDR(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("cidr %q: %v", s, err)
	}
	if !p.Addr().Is4() {
		return netip.Prefix{}, fmt.Errorf("cidr %q: not IPv4", s)
	}
	if p.Masked() != p {
		return netip.Prefix{}, fmt.Errorf("cidr %q: host bits set (%s)", s, p.Masked())
	}
	return p, nil
}

// ParseIPv4 parses a dotted IPv4 address.
func ParseIPv4(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("address %q: %v", s, err)
	}
	if !a.Is4() {
		return netip.Addr{}, fmt.Errorf("address %q: not IPv4", s)
	}
	return a, nil
}

// ParseMAC parses a unicast Ethernet address, "fa:16:3e:12:34:56".
func ParseMAC(s string) (net.HardwareAddr, error) {
	m, err := net.ParseMAC(s)
	if err != nil {
		return nil, fmt.Errorf("mac %q: %v", s, err)
	}
	if len(m) != 6 {
		return nil, fmt.Errorf("mac %q: not a 48-bit Ethernet address", s)
	}
	if m[0]&1 != 0 {
		return nil, fmt.Errorf("mac %q: multicast", s)
	}
	if m[0] == 0 && m[1] == 0 && m[2] == 0 && m[3] == 0 && m[4] == 0 && m[5] == 0 {
		return nil, fmt.Errorf("mac %q: all zeros", s)
	}
	if isGatewayMAC(m) || isHostMAC(m) {
		return nil, fmt.Errorf("mac %q: in the range photon keeps for its gateways", s)
	}
	return m, nil
}

func checkID(kind, id string) error {
	if id == "" {
		return fmt.Errorf("%s: empty id", kind)
	}
	if len(id) > maxIDLen {
		return fmt.Errorf("%s %.32q...: id longer than %d bytes", kind, id, maxIDLen)
	}
	return nil
}

// check validates want: the invariants both drivers keep. Every router,
// subnet and port is named in its error.
func check(want Desired) (*plan, error) {
	if len(want.Routers) > maxRouters || len(want.Subnets) > maxSubnets || len(want.Ports) > maxPorts {
		return nil, fmt.Errorf("netplumb: too many routers, subnets or ports (%d, %d, %d; at most %d, %d, %d)",
			len(want.Routers), len(want.Subnets), len(want.Ports), maxRouters, maxSubnets, maxPorts)
	}
	p := &plan{routers: map[string]*routerPlan{}, subnets: map[string]*subnetPlan{}, ports: map[string]*portPlan{}}
	for _, r := range want.Routers {
		if err := checkID("router", r.ID); err != nil {
			return nil, fmt.Errorf("netplumb: %w", err)
		}
		if p.routers[r.ID] != nil {
			return nil, fmt.Errorf("netplumb: router %s: given twice", r.ID)
		}
		cidr, err := ParseCIDR(r.CIDR)
		if err != nil {
			return nil, fmt.Errorf("netplumb: router %s: %w", r.ID, err)
		}
		p.routers[r.ID] = &routerPlan{ID: r.ID, CIDR: cidr}
	}
	vnis := map[uint32]string{}
	for _, s := range want.Subnets {
		if err := checkID("subnet", s.ID); err != nil {
			return nil, fmt.Errorf("netplumb: %w", err)
		}
		if p.subnets[s.ID] != nil {
			return nil, fmt.Errorf("netplumb: subnet %s: given twice", s.ID)
		}
		r := p.routers[s.RouterID]
		if r == nil {
			return nil, fmt.Errorf("netplumb: subnet %s: router %q is not on this host", s.ID, s.RouterID)
		}
		cidr, err := ParseCIDR(s.CIDR)
		if err != nil {
			return nil, fmt.Errorf("netplumb: subnet %s: %w", s.ID, err)
		}
		if cidr.Bits() > 30 {
			return nil, fmt.Errorf("netplumb: subnet %s: cidr %s: smaller than a /30", s.ID, cidr)
		}
		gw, err := ParseIPv4(s.Gateway)
		if err != nil {
			return nil, fmt.Errorf("netplumb: subnet %s: gateway: %w", s.ID, err)
		}
		if !cidr.Contains(gw) || gw == cidr.Addr() || gw == broadcast(cidr) {
			return nil, fmt.Errorf("netplumb: subnet %s: gateway %s is not a host address of %s", s.ID, gw, cidr)
		}
		if s.VNI == 0 || s.VNI >= 1<<24 {
			return nil, fmt.Errorf("netplumb: subnet %s: vni %d not in 1..16777215", s.ID, s.VNI)
		}
		if other, ok := vnis[s.VNI]; ok {
			return nil, fmt.Errorf("netplumb: subnet %s: vni %d also subnet %s's", s.ID, s.VNI, other)
		}
		vnis[s.VNI] = s.ID
		mtu := s.MTU
		if mtu == 0 {
			mtu = DefaultMTU
		}
		if mtu < 576 || mtu > 9000 {
			return nil, fmt.Errorf("netplumb: subnet %s: mtu %d not in 576..9000", s.ID, s.MTU)
		}
		if len(s.DNS) > maxDNS {
			return nil, fmt.Errorf("netplumb: subnet %s: more than %d dns servers", s.ID, maxDNS)
		}
		sp := &subnetPlan{ID: s.ID, RouterID: s.RouterID, CIDR: cidr, Gateway: gw, VNI: s.VNI, NAT: s.NAT, MTU: mtu}
		for _, d := range s.DNS {
			a, err := ParseIPv4(d)
			if err != nil {
				return nil, fmt.Errorf("netplumb: subnet %s: dns: %w", s.ID, err)
			}
			sp.DNS = append(sp.DNS, a)
		}
		if len(s.Peers) > maxPeers {
			return nil, fmt.Errorf("netplumb: subnet %s: more than %d peers", s.ID, maxPeers)
		}
		seen := map[netip.Addr]bool{}
		for _, pe := range s.Peers {
			a, err := ParseIPv4(pe)
			if err != nil {
				return nil, fmt.Errorf("netplumb: subnet %s: peer: %w", s.ID, err)
			}
			if a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() {
				return nil, fmt.Errorf("netplumb: subnet %s: peer %s is not a unicast address", s.ID, a)
			}
			if !seen[a] {
				seen[a] = true
				sp.Peers = append(sp.Peers, a)
			}
		}
		sort.Slice(sp.Peers, func(i, j int) bool { return sp.Peers[i].Less(sp.Peers[j]) })
		for _, o := range r.Subnets {
			if o.CIDR.Overlaps(cidr) {
				return nil, fmt.Errorf("netplumb: subnet %s: cidr %s overlaps subnet %s's %s on router %s", s.ID, cidr, o.ID, o.CIDR, r.ID)
			}
		}
		r.Subnets = append(r.Subnets, sp)
		p.subnets[s.ID] = sp
	}
	macs := map[string]string{}
	type subnetIP struct {
		subnet string
		ip     netip.Addr
	}
	ips := map[subnetIP]string{}
	fips := map[netip.Addr]string{}
	for _, pt := range want.Ports {
		if err := checkID("port", pt.ID); err != nil {
			return nil, fmt.Errorf("netplumb: %w", err)
		}
		if p.ports[pt.ID] != nil {
			return nil, fmt.Errorf("netplumb: port %s: given twice", pt.ID)
		}
		s := p.subnets[pt.SubnetID]
		if s == nil {
			return nil, fmt.Errorf("netplumb: port %s: subnet %s is not on this host", pt.ID, pt.SubnetID)
		}
		mac, err := ParseMAC(pt.MAC)
		if err != nil {
			return nil, fmt.Errorf("netplumb: port %s: %w", pt.ID, err)
		}
		if other, ok := macs[mac.String()]; ok {
			return nil, fmt.Errorf("netplumb: port %s: mac %s also port %s's", pt.ID, mac, other)
		}
		macs[mac.String()] = pt.ID
		ip, err := ParseIPv4(pt.IP)
		if err != nil {
			return nil, fmt.Errorf("netplumb: port %s: ip: %w", pt.ID, err)
		}
		if !s.CIDR.Contains(ip) || ip == s.CIDR.Addr() || ip == broadcast(s.CIDR) || ip == s.Gateway {
			return nil, fmt.Errorf("netplumb: port %s: ip %s is not a free host address of subnet %s (%s, gateway %s)", pt.ID, ip, s.ID, s.CIDR, s.Gateway)
		}
		if other, ok := ips[subnetIP{s.ID, ip}]; ok {
			return nil, fmt.Errorf("netplumb: port %s: ip %s also port %s's", pt.ID, ip, other)
		}
		ips[subnetIP{s.ID, ip}] = pt.ID
		pp := &portPlan{ID: pt.ID, VMID: pt.VMID, SubnetID: s.ID, MAC: mac, IP: ip}
		if pt.FloatingIP != "" {
			f, err := ParseIPv4(pt.FloatingIP)
			if err != nil {
				return nil, fmt.Errorf("netplumb: port %s: floating ip: %w", pt.ID, err)
			}
			if other, ok := fips[f]; ok {
				return nil, fmt.Errorf("netplumb: port %s: floating ip %s also port %s's", pt.ID, f, other)
			}
			if f.IsUnspecified() || f.IsMulticast() || f.IsLoopback() {
				return nil, fmt.Errorf("netplumb: port %s: floating ip %s is not a unicast address", pt.ID, f)
			}
			fips[f] = pt.ID
			pp.Floating = f
		}
		s.Ports = append(s.Ports, pp)
		p.ports[pt.ID] = pp
	}
	for _, r := range p.routers {
		sort.Slice(r.Subnets, func(i, j int) bool { return r.Subnets[i].ID < r.Subnets[j].ID })
	}
	for _, s := range p.subnets {
		sort.Slice(s.Ports, func(i, j int) bool { return s.Ports[i].ID < s.Ports[j].ID })
	}
	return p, nil
}

// broadcast is the last address of p.
func broadcast(p netip.Prefix) netip.Addr {
	a := p.Addr().As4()
	n := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3])
	n |= (1 << (32 - p.Bits())) - 1
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// netmask is p's mask as an address, 255.255.255.0 for a /24.
func netmask(p netip.Prefix) net.IPMask { return net.CIDRMask(p.Bits(), 32) }

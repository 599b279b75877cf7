package network

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"

	"github.com/photon-cloud/photon/api"
)

// MinSubnetBits is the smallest subnet (a /29: five addresses for VMs).
const MinSubnetBits = 29

// maxSpanBits bounds a router's or subnet's size (a /8): a port's MAC
// holds the low 24 bits of its address (see MAC).
const maxSpanBits = 8

// transit is where each host's data plane takes the links between its
// router namespaces and the host from (api.TransitCIDR): a router or
// subnet there would route its VMs' packets into them.
var transit = netip.MustParsePrefix(api.TransitCIDR)

// ParseCIDR parses an IPv4 CIDR of a router or subnet and clears its host
// bits ("192.168.0.1/24" is 192.168.0.0/24, as Photon accepted it); one
// overlapping the hosts' transit range is refused. field names the body
// field in errors.
func ParseCIDR(field, s string) (netip.Prefix, error) {
	if len(s) > 64 {
		return netip.Prefix{}, fieldErr(field, "%q is not a CIDR like 10.10.0.0/16", trunc(s))
	}
	p, err := netip.ParsePrefix(strings.TrimSpace(s))
	if err != nil || !p.Addr().Is4() {
		return netip.Prefix{}, fieldErr(field, "%q is not an IPv4 CIDR like 10.10.0.0/16", trunc(s))
	}
	if p.Bits() < maxSpanBits {
		return netip.Prefix{}, fieldErr(field, "%s is larger than a /%d", p, maxSpanBits)
	}
	if p = p.Masked(); p.Overlaps(transit) {
		return netip.Prefix{}, fieldErr(field, "%s overlaps %s, the hosts' transit links to their routers", p, transit)
	}
	return p, nil
}

func trunc(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

// span is an IPv4 prefix as numbers: first (the network) and last (the
// broadcast) address.
func span(p netip.Prefix) (first, last uint32) {
	a := p.Masked().Addr().As4()
	first = binary.BigEndian.Uint32(a[:])
	last = first | (1<<(32-p.Bits()) - 1)
	return first, last
}

func addr(n uint32) netip.Addr {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], n)
	return netip.AddrFrom4(b)
}

// contains reports whether inner lies within outer.
func contains(outer, inner netip.Prefix) bool {
	return outer.Bits() <= inner.Bits() && outer.Contains(inner.Addr())
}

// Gateway is a subnet's gateway: its first host address.
func Gateway(p netip.Prefix) netip.Addr {
	f, _ := span(p)
	return addr(f + 1)
}

// capacity is the number of addresses a subnet hands to ports: all but
// the network, gateway and broadcast addresses.
func capacity(p netip.Prefix) uint32 {
	f, l := span(p)
	return l - f + 1 - 3
}

// portAddr is the off-th address a subnet hands out (from 0): after the
// gateway.
func portAddr(p netip.Prefix, off uint32) netip.Addr {
	f, _ := span(p)
	return addr(f + 2 + off)
}

// Netmask is a prefix's mask, e.g. "255.255.255.0".
func Netmask(bits int) string {
	m := ^uint32(0) << (32 - bits)
	if bits == 0 {
		m = 0
	}
	return addr(m).String()
}

// MAC is a port's MAC address: locally administered (0xfa), then the
// low 16 bits of the subnet's VNI and the low 24 bits of the port's
// address. Unique within a subnet (its addresses are, and a subnet is at
// most a /8) and across subnets while VNIs stay under 65,536.
func MAC(vni uint32, ip netip.Addr) string {
	a := ip.As4()
	return fmt.Sprintf("fa:%02x:%02x:%02x:%02x:%02x", byte(vni>>8), byte(vni), a[1], a[2], a[3])
}

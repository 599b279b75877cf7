package netplumb

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net"
	"net/netip"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// l2Table is the host's bridge-family table. Port security, on every tap:
// a frame whose source MAC, IPv4 source (other than 0.0.0.0) or ARP
// sender is not its port's, or that is neither IPv4 nor ARP, is dropped
// (two sets, tap name . MAC and tap name . address: one lookup per
// frame, however many ports). It also keeps each subnet's gateway local
// (a distributed router): on every VXLAN port,
//   - ARP for a gateway address neither leaves nor enters;
//   - frames to or from a gateway MAC (02:70:67:…) do not enter, and
//     do not leave as they are: a router's ARP reply is dropped, its ARP
//     request leaves as a probe from this host's MAC (sender 06:70:<underlay
//     address>, sender address 0.0.0.0, so no remote guest learns the
//     gateway address at another host's MAC), its other frames leave with
//     this host's MAC as source;
//   - a frame to this host's MAC (the answer to such a probe) enters
//     addressed to the subnet's gateway MAC.
func l2Table(p *plan, host net.HardwareAddr) *tableSpec {
	if len(p.subnets) == 0 {
		return nil
	}
	gwp := gwMACPrefixBytes()
	macs, ips, digest := portSets(p)
	isTap := func() []expr.Any { return matchIifPrefix(prefixTap) }
	in := []ruleSpec{
		// Port security: a VM sends only from its port's MAC and
		// address (0.0.0.0 while it asks DHCP), and only IPv4 and ARP.
		{"port-mac " + digest, cat(isTap(), ifPairNotInSet(ll, etherSrc, 6, setPortMAC), one(verdict(expr.VerdictDrop)))},
		{"port-type", cat(isTap(), []expr.Any{loadPayload(ll, etherType, 2),
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0x08, 0x00}},
			&expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: etherARP}}, one(verdict(expr.VerdictDrop)))},
		{"port-ip " + digest, cat(isTap(), matchBytes(ll, etherType, []byte{0x08, 0x00}),
			[]expr.Any{loadPayload(nh, ipSrc, 4), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}}},
			ifPairNotInSet(nh, ipSrc, 4, setPortIP), one(verdict(expr.VerdictDrop)))},
		{"port-arp-ip " + digest, cat(isTap(), matchBytes(ll, etherType, etherARP),
			[]expr.Any{loadPayload(nh, arpSPA, 4), &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte{0, 0, 0, 0}}},
			ifPairNotInSet(nh, arpSPA, 4, setPortIP), one(verdict(expr.VerdictDrop)))},
		{"port-arp-mac " + digest, cat(isTap(), matchBytes(ll, etherType, etherARP),
			ifPairNotInSet(nh, arpSHA, 6, setPortMAC), one(verdict(expr.VerdictDrop)))},

		{"in-gw-src", cat(matchIifPrefix(prefixVXLAN), matchMasked(ll, etherSrc, macMask24, gwp), one(verdict(expr.VerdictDrop)))},
		{"in-gw-dst", cat(matchIifPrefix(prefixVXLAN), matchMasked(ll, etherDst, macMask24, gwp), one(verdict(expr.VerdictDrop)))},
	}
	var out []ruleSpec
	for _, id := range sortedKeys(p.subnets) {
		s := p.subnets[id]
		gw := s.Gateway.As4()
		vx := vxlanName(id)
		in = append(in,
			ruleSpec{"in-arp-gw " + id + " " + s.Gateway.String(), cat(matchIif(vx), matchBytes(ll, etherType, etherARP), matchBytes(nh, arpTPA, gw[:]), one(verdict(expr.VerdictDrop)))},
			ruleSpec{"in-host-mac " + id, cat(matchIif(vx), matchBytes(ll, etherDst, host), setBytes(ll, etherDst, gatewayMAC(id)))},
		)
		out = append(out,
			ruleSpec{"out-arp-gw " + id + " " + s.Gateway.String(), cat(matchOif(vx), matchBytes(ll, etherType, etherARP), matchBytes(nh, arpTPA, gw[:]), one(verdict(expr.VerdictDrop)))},
		)
	}
	gwSrc := func() []expr.Any { return cat(matchOifPrefix(prefixVXLAN), matchMasked(ll, etherSrc, macMask24, gwp)) }
	out = append(out,
		ruleSpec{"out-gw-dst", cat(matchOifPrefix(prefixVXLAN), matchMasked(ll, etherDst, macMask24, gwp), one(verdict(expr.VerdictDrop)))},
		ruleSpec{"out-gw-arp-reply", cat(gwSrc(), matchBytes(ll, etherType, etherARP), matchBytes(nh, arpOp, arpReply), one(verdict(expr.VerdictDrop)))},
		ruleSpec{"out-gw-arp-probe " + host.String(), cat(gwSrc(), matchBytes(ll, etherType, etherARP), matchBytes(nh, arpOp, arpRequest),
			setBytes(nh, arpSHA, host), setBytes(nh, arpSPA, []byte{0, 0, 0, 0}), setBytes(ll, etherSrc, host))},
		ruleSpec{"out-gw-src " + host.String(), cat(gwSrc(), setBytes(ll, etherSrc, host))},
	)
	return &tableSpec{name: tableL2, family: nftables.TableFamilyBridge, sets: []setSpec{
		{name: setPortMAC, typ: nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeEtherAddr), elems: macs},
		{name: setPortIP, typ: nftables.MustConcatSetType(nftables.TypeIFName, nftables.TypeIPAddr), elems: ips},
	}, chains: []chainSpec{
		// Before the bridge's forwarding decision, so that a rewritten
		// destination is forwarded by its new MAC.
		{name: "in", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookPrerouting, prio: nftables.ChainPriorityFilter, policy: nftables.ChainPolicyAccept, rules: in},
		{name: "out", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookForward, prio: nftables.ChainPriorityFilter, policy: nftables.ChainPolicyAccept, rules: out},
	}}
}

const (
	setPortMAC = "port_mac" // tap name . MAC of every port
	setPortIP  = "port_ip"  // tap name . address of every port
)

// portSets are the elements of the port security sets and a digest of
// them.
func portSets(p *plan) (macs, ips [][]byte, digest string) {
	h := sha256.New()
	for _, id := range sortedKeys(p.ports) {
		pt := p.ports[id]
		name := ifname(TapName(id))
		macs = append(macs, append(append([]byte{}, name...), pad4(append([]byte{}, pt.MAC...))...))
		a := pt.IP.As4()
		ips = append(ips, append(append([]byte{}, name...), a[:]...))
		fmt.Fprintf(h, "%s %s %s\n", id, pt.MAC, pt.IP)
	}
	return macs, ips, hex.EncodeToString(h.Sum(nil)[:8])
}

// natTable is the host's IPv4 table ("photon-nat"). Nothing a subnet's
// bridge or VXLAN device hands the host's IP stack (a guest's frame to
// the bridge's own MAC) is delivered or forwarded: else a guest reaches
// the host and, through ip_forward, the underlay, where a packet to port
// 4789 enters any overlay. With an uplink, it masquerades the routers'
// transit addresses out the uplink, and keeps the transit links from
// reaching anything but the uplink: not the host itself (its agent, its
// VXLAN socket) and not the underlay or another router; and no VXLAN
// packet leaves through the uplink either (where the uplink is the
// underlay, a guest's packet to another host's port 4789 would be
// masqueraded to this host's own address and enter any overlay there).
func (l *Linux) natTable(p *plan) *tableSpec {
	if len(p.subnets) == 0 && (l.cfg.Uplink == "" || len(p.routers) == 0) {
		return nil
	}
	in := []ruleSpec{
		{"bridge-in-drop", cat(matchIifPrefix(prefixBridge), one(verdict(expr.VerdictDrop)))},
	}
	fwd := []ruleSpec{
		// Bridged frames pass here too where br_netfilter is loaded
		// (in and out the same kind of bridge): only routing is dropped.
		{"bridge-fwd-drop", cat(matchIifPrefix(prefixBridge),
			[]expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: []byte(prefixBridge)}},
			one(verdict(expr.VerdictDrop)))},
	}
	var post []ruleSpec
	if l.cfg.Uplink != "" && len(p.routers) > 0 {
		post = append(post, ruleSpec{"masq " + l.transit.String() + " " + l.cfg.Uplink, cat(matchOif(l.cfg.Uplink), matchSrcPrefix(l.transit), one(&expr.Masq{}))})
		in = append(in, ruleSpec{"transit-in-drop", cat(matchIifPrefix(prefixUplink), one(verdict(expr.VerdictDrop)))})
		fwd = append(fwd,
			ruleSpec{"transit-fwd-no-vxlan", cat(matchIifPrefix(prefixUplink),
				[]expr.Any{&expr.Meta{Key: expr.MetaKeyL4PROTO, Register: 1}, &expr.Cmp{Op: expr.CmpOpEq, Register: 1, Data: []byte{unix.IPPROTO_UDP}}},
				matchBytes(expr.PayloadBaseTransportHeader, 2, []byte{VXLANPort >> 8, VXLANPort & 0xff}),
				one(verdict(expr.VerdictDrop)))},
			ruleSpec{"transit-fwd-only-uplink " + l.cfg.Uplink, cat(matchIifPrefix(prefixUplink),
				[]expr.Any{&expr.Meta{Key: expr.MetaKeyOIFNAME, Register: 1}, &expr.Cmp{Op: expr.CmpOpNeq, Register: 1, Data: ifname(l.cfg.Uplink)}},
				one(verdict(expr.VerdictDrop)))})
	}
	return &tableSpec{name: tableNAT, family: nftables.TableFamilyIPv4, chains: []chainSpec{
		{name: "post", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPostrouting, prio: nftables.ChainPriorityNATSource, policy: nftables.ChainPolicyAccept, rules: post},
		{name: "in", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookInput, prio: nftables.ChainPriorityFilter, policy: nftables.ChainPolicyAccept, rules: in},
		{name: "fwd", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookForward, prio: nftables.ChainPriorityFilter, policy: nftables.ChainPolicyAccept, rules: fwd},
	}}
}

func (l *Linux) ensureHostRules(p *plan, routers map[string]*routerState) error {
	c, err := nftConn(l.hostNS)
	if err != nil {
		return fmt.Errorf("netplumb: nftables: %w", err)
	}
	if err := syncTable(c, tableL2, nftables.TableFamilyBridge, l2Table(p, l.hostMAC)); err != nil {
		return fmt.Errorf("netplumb: host: %w", err)
	}
	if err := syncTable(c, tableNAT, nftables.TableFamilyIPv4, l.natTable(p)); err != nil {
		return fmt.Errorf("netplumb: host: %w", err)
	}
	if l.cfg.Uplink != "" && len(routers) > 0 {
		if err := writeSysctl(l.hostNS, "net/ipv4/ip_forward", "1"); err != nil {
			return fmt.Errorf("netplumb: host ip_forward: %w", err)
		}
	}
	return nil
}

// floating is a floating IP's host side: a route to its router's transit
// address and a proxy ARP entry on the uplink.
type floating struct {
	ip     netip.Addr
	via    netip.Addr
	uplink int // index of the router's transit link
}

func (l *Linux) ownRoutes() ([]netlink.Route, error) {
	return l.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: routeProto, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
}

func (l *Linux) proxyEntry(ip netip.Addr) (*netlink.Neigh, error) {
	up, err := l.h.LinkByName(l.cfg.Uplink)
	if err != nil {
		return nil, fmt.Errorf("uplink %s: %w", l.cfg.Uplink, err)
	}
	return &netlink.Neigh{LinkIndex: up.Attrs().Index, Family: unix.AF_INET, Flags: netlink.NTF_PROXY, IP: net.IP(ip.AsSlice())}, nil
}

// removeStaleFloating deletes the routes and proxy ARP entries of
// floating IPs want does not have.
func (l *Linux) removeStaleFloating(p *plan) error {
	routes, err := l.ownRoutes()
	if err != nil {
		return fmt.Errorf("netplumb: list floating ip routes: %w", err)
	}
	want := map[netip.Addr]bool{}
	if l.cfg.Uplink != "" {
		for _, pt := range p.ports {
			if pt.Floating.IsValid() {
				want[pt.Floating] = true
			}
		}
	}
	for _, rt := range routes {
		if rt.Dst == nil {
			continue
		}
		ip, _ := netip.AddrFromSlice(rt.Dst.IP.To4())
		if want[ip] {
			continue
		}
		if err := l.h.RouteDel(&rt); err != nil && !isNoEnt(err) {
			return fmt.Errorf("netplumb: floating ip %s: delete route: %w", ip, err)
		}
		if l.cfg.Uplink != "" {
			if n, err := l.proxyEntry(ip); err == nil {
				l.h.NeighDel(n)
			}
		}
	}
	return nil
}

func (l *Linux) ensureFloating(p *plan, routers map[string]*routerState) error {
	if l.cfg.Uplink == "" {
		return nil
	}
	routes, err := l.ownRoutes()
	if err != nil {
		return fmt.Errorf("netplumb: list floating ip routes: %w", err)
	}
	have := map[netip.Addr]netlink.Route{}
	for _, rt := range routes {
		if rt.Dst != nil {
			ip, _ := netip.AddrFromSlice(rt.Dst.IP.To4())
			have[ip] = rt
		}
	}
	var errs []error
	for _, id := range sortedKeys(p.ports) {
		pt := p.ports[id]
		if !pt.Floating.IsValid() {
			continue
		}
		st := routers[p.subnets[pt.SubnetID].RouterID]
		if st == nil || !st.transit.IsValid() {
			errs = append(errs, fmt.Errorf("netplumb: port %s: floating ip %s: its router is not programmed", id, pt.Floating))
			continue
		}
		via := st.transit.Addr().Next().Next()
		up, err := l.h.LinkByName(uplinkName(st.id))
		if err != nil {
			errs = append(errs, fmt.Errorf("netplumb: port %s: floating ip %s: %w", id, pt.Floating, err))
			continue
		}
		rt, ok := have[pt.Floating]
		if !ok || !rt.Gw.Equal(net.IP(via.AsSlice())) || rt.LinkIndex != up.Attrs().Index {
			nr := &netlink.Route{Dst: &net.IPNet{IP: net.IP(pt.Floating.AsSlice()), Mask: net.CIDRMask(32, 32)},
				Gw: net.IP(via.AsSlice()), LinkIndex: up.Attrs().Index, Protocol: routeProto, Table: unix.RT_TABLE_MAIN}
			if err := l.h.RouteReplace(nr); err != nil {
				errs = append(errs, fmt.Errorf("netplumb: port %s: floating ip %s: route: %w", id, pt.Floating, err))
				continue
			}
		}
		n, err := l.proxyEntry(pt.Floating)
		if err == nil {
			err = l.h.NeighSet(n)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("netplumb: port %s: floating ip %s: proxy arp on %s: %w", id, pt.Floating, l.cfg.Uplink, err))
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%w", joinErrs(errs))
	}
	return nil
}

// ensureDHCP publishes the leases of want's ports and runs one responder
// per subnet gateway, restarting one whose gateway link was recreated.
func (l *Linux) ensureDHCP(p *plan, routers map[string]*routerState, fail func(error)) {
	m := map[string]map[string]lease{}
	for _, s := range p.subnets {
		ls := map[string]lease{}
		for _, pt := range s.Ports {
			ls[pt.MAC.String()] = lease{ip: pt.IP, mask: netmask(s.CIDR), gateway: s.Gateway, dns: s.DNS, mtu: s.MTU}
		}
		m[s.ID] = ls
	}
	l.leases.set(m)
	for _, id := range sortedKeys(p.subnets) {
		s := p.subnets[id]
		st := routers[s.RouterID]
		if st == nil {
			continue
		}
		idx, ok := st.gwIndex[id]
		if !ok {
			continue
		}
		if r := l.dhcp[id]; r != nil {
			if r.ifindex == idx {
				continue
			}
			r.stop()
			delete(l.dhcp, id)
		}
		r, err := startResponder(st.ns, gwNSName(id), idx, id, s.Gateway, &l.leases, l.log)
		if err != nil {
			fail(fmt.Errorf("netplumb: subnet %s: dhcp on %s: %w", id, gwNSName(id), err))
			continue
		}
		l.dhcp[id] = r
	}
}

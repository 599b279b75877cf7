package netplumb

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// routerState is what ensureRouter made, for the host-wide steps.
type routerState struct {
	*routerNS
	transit netip.Prefix   // invalid without an uplink
	gwIndex map[string]int // subnet id -> gateway link index in the namespace
}

// openRouterNS opens (or creates) router id's namespace; created reports
// a new one.
func (l *Linux) openRouterNS(id string) (*routerNS, bool, error) {
	if r := l.routers[id]; r != nil {
		if _, err := os.Stat(hostPath(l.nsDir, r.name)); err == nil {
			return r, false, nil
		}
		r.close()
		delete(l.routers, id)
	}
	name := routerNSName(id)
	path := hostPath(l.nsDir, name)
	created := false
	ns, err := netns.GetFromPath(path)
	if err != nil {
		if !os.IsNotExist(err) && !errors.Is(err, unix.ENOENT) {
			// A leftover file that is no namespace: replace it.
			deleteNamedNS(l.nsDir, name)
		}
		if ns, err = createNamedNS(l.nsDir, name); err != nil {
			return nil, false, fmt.Errorf("namespace %s: %w", name, err)
		}
		created = true
	}
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		ns.Close()
		if created {
			deleteNamedNS(l.nsDir, name)
		}
		return nil, false, fmt.Errorf("namespace %s: netlink: %w", name, err)
	}
	r := &routerNS{id: id, ns: ns, h: h, name: name}
	l.routers[id] = r
	return r, created, nil
}

// ensureRouter makes router r's namespace, its gateways on the subnets
// that were made, its transit link and its rules.
func (l *Linux) ensureRouter(r *routerPlan, subnetOK map[string]int) (*routerState, error) {
	var u undo
	rns, created, err := l.openRouterNS(r.ID)
	if err != nil {
		return nil, err
	}
	if created {
		u.add(func() {
			rns.close()
			delete(l.routers, r.ID)
			deleteNamedNS(l.nsDir, rns.name)
		})
	}
	st := &routerState{routerNS: rns, gwIndex: map[string]int{}}
	err = l.ensureRouterBody(r, st, subnetOK, &u)
	if err != nil {
		u.run()
		return nil, err
	}
	return st, nil
}

func (l *Linux) ensureRouterBody(r *routerPlan, st *routerState, subnetOK map[string]int, u *undo) error {
	lo, err := st.h.LinkByName("lo")
	if err != nil {
		return fmt.Errorf("namespace %s: lo: %w", st.name, err)
	}
	if lo.Attrs().Flags&net.FlagUp == 0 {
		if err := st.h.LinkSetUp(lo); err != nil {
			return fmt.Errorf("namespace %s: lo up: %w", st.name, err)
		}
	}
	if err := writeSysctl(st.ns, "net/ipv4/ip_forward", "1"); err != nil {
		return fmt.Errorf("namespace %s: ip_forward: %w", st.name, err)
	}
	var errs []error
	want := map[string]bool{}
	for _, s := range r.Subnets {
		br, ok := subnetOK[s.ID]
		if !ok {
			continue
		}
		want[gwNSName(s.ID)] = true
		idx, err := l.ensureGateway(st.routerNS, s, br)
		if err != nil {
			errs = append(errs, fmt.Errorf("subnet %s: gateway %s: %w", s.ID, s.Gateway, err))
			continue
		}
		st.gwIndex[s.ID] = idx
	}
	// Gateways of subnets that left the router (their host ends went
	// with removeStale; a namespace end alone is removed here).
	links, err := st.h.LinkList()
	if err != nil {
		return fmt.Errorf("namespace %s: list links: %w", st.name, err)
	}
	for _, ln := range links {
		n := ln.Attrs().Name
		if strings.HasPrefix(n, prefixGwNS) && len(n) == len(prefixGwNS)+12 && !want[n] {
			if err := st.h.LinkDel(ln); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("namespace %s: delete %s: %w", st.name, n, err))
			}
		}
	}
	if l.cfg.Uplink != "" {
		tr, err := l.ensureUplink(r, st.routerNS, u)
		if err != nil {
			return fmt.Errorf("transit link: %w", err)
		}
		st.transit = tr
	}
	c, err := nftConn(st.ns)
	if err != nil {
		return fmt.Errorf("namespace %s: nftables: %w", st.name, err)
	}
	if err := syncTable(c, tableRouter, nftables.TableFamilyIPv4, routerTable(r)); err != nil {
		return fmt.Errorf("namespace %s: %w", st.name, err)
	}
	return errors.Join(errs...)
}

// ensureGateway makes subnet s's gateway veth: host end on the bridge,
// router end in the namespace with the gateway MAC and address. It
// returns the router end's index.
func (l *Linux) ensureGateway(rns *routerNS, s *subnetPlan, br int) (int, error) {
	hn, nn := gwHostName(s.ID), gwNSName(s.ID)
	hl, err := l.linkByName(l.h, hn)
	if err != nil {
		return 0, err
	}
	nl, err := l.linkByName(rns.h, nn)
	if err != nil {
		return 0, err
	}
	if hl != nil && (hl.Type() != "veth" || nl == nil) {
		l.h.LinkDel(hl)
		hl = nil
	}
	if hl == nil && nl != nil {
		rns.h.LinkDel(nl)
		nl = nil
	}
	created := false
	if hl == nil {
		v := &netlink.Veth{
			LinkAttrs:        netlink.LinkAttrs{Name: hn, MTU: s.MTU, MasterIndex: br},
			PeerName:         nn,
			PeerHardwareAddr: gatewayMAC(s.ID),
			PeerNamespace:    netlink.NsFd(int(rns.ns)),
		}
		if err := l.h.LinkAdd(v); err != nil {
			return 0, fmt.Errorf("create veth %s/%s: %w", hn, nn, err)
		}
		created = true
		if hl, err = l.h.LinkByName(hn); err != nil {
			return 0, err
		}
		if nl, err = rns.h.LinkByName(nn); err != nil {
			l.h.LinkDel(hl)
			return 0, err
		}
	}
	err = func() error {
		if err := ensureLinkState(l.h, hl, alias("gateway", s.ID), s.MTU, br); err != nil {
			return err
		}
		if !bytes.Equal(nl.Attrs().HardwareAddr, gatewayMAC(s.ID)) {
			if err := rns.h.LinkSetHardwareAddr(nl, gatewayMAC(s.ID)); err != nil {
				return fmt.Errorf("set mac of %s: %w", nn, err)
			}
		}
		if err := ensureLinkState(rns.h, nl, "", s.MTU, -1); err != nil {
			return err
		}
		return ensureAddrs(rns.h, nl, netip.PrefixFrom(s.Gateway, s.CIDR.Bits()))
	}()
	if err != nil {
		if created {
			l.h.LinkDel(hl)
		}
		return 0, err
	}
	return nl.Attrs().Index, nil
}

// ensureAddrs makes ln's IPv4 addresses exactly want.
func ensureAddrs(h *netlink.Handle, ln netlink.Link, want netip.Prefix) error {
	addrs, err := h.AddrList(ln, netlink.FAMILY_V4)
	if err != nil {
		return fmt.Errorf("list addresses of %s: %w", ln.Attrs().Name, err)
	}
	have := false
	for _, a := range addrs {
		ones, _ := a.Mask.Size()
		ip, _ := netip.AddrFromSlice(a.IP.To4())
		if ip == want.Addr() && ones == want.Bits() {
			have = true
			continue
		}
		if err := h.AddrDel(ln, &a); err != nil {
			return fmt.Errorf("delete address %s of %s: %w", a.IPNet, ln.Attrs().Name, err)
		}
	}
	if have {
		return nil
	}
	a := &netlink.Addr{IPNet: &net.IPNet{IP: net.IP(want.Addr().AsSlice()), Mask: net.CIDRMask(want.Bits(), 32)}}
	if err := h.AddrAdd(ln, a); err != nil {
		return fmt.Errorf("add address %s to %s: %w", want, ln.Attrs().Name, err)
	}
	return nil
}

// transitOf is the /30 of ln's address in the transit range, if any.
func (l *Linux) transitOf(ln netlink.Link) (netip.Prefix, bool) {
	addrs, err := l.h.AddrList(ln, netlink.FAMILY_V4)
	if err != nil {
		return netip.Prefix{}, false
	}
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP.To4())
		ones, _ := a.Mask.Size()
		if ones == 30 && l.transit.Contains(ip) {
			p, _ := ip.Prefix(30)
			if ip == p.Addr().Next() {
				return p, true
			}
		}
	}
	return netip.Prefix{}, false
}

// ensureUplink makes router r's transit veth: host end "pu…" with the
// /30's first address, router end "up0" with its second and a default
// route via the first. The /30 is the host end's if it has one (so a
// restart keeps it), else the lowest free one of the transit range.
func (l *Linux) ensureUplink(r *routerPlan, rns *routerNS, u *undo) (netip.Prefix, error) {
	hn := uplinkName(r.ID)
	hl, err := l.linkByName(l.h, hn)
	if err != nil {
		return netip.Prefix{}, err
	}
	nl, err := l.linkByName(rns.h, uplinkNS)
	if err != nil {
		return netip.Prefix{}, err
	}
	if hl != nil && (hl.Type() != "veth" || nl == nil) {
		l.h.LinkDel(hl)
		hl = nil
	}
	if hl == nil && nl != nil {
		rns.h.LinkDel(nl)
		nl = nil
	}
	var tr netip.Prefix
	if hl != nil {
		if p, ok := l.transitOf(hl); ok {
			tr = p
		}
	}
	if !tr.IsValid() {
		if tr, err = l.freeTransit(); err != nil {
			return netip.Prefix{}, err
		}
	}
	if hl == nil {
		v := &netlink.Veth{
			LinkAttrs:     netlink.LinkAttrs{Name: hn},
			PeerName:      uplinkNS,
			PeerNamespace: netlink.NsFd(int(rns.ns)),
		}
		if err := l.h.LinkAdd(v); err != nil {
			return netip.Prefix{}, fmt.Errorf("create veth %s/%s: %w", hn, uplinkNS, err)
		}
		u.add(func() { l.h.LinkDel(v) })
		if hl, err = l.h.LinkByName(hn); err != nil {
			return netip.Prefix{}, err
		}
		if nl, err = rns.h.LinkByName(uplinkNS); err != nil {
			return netip.Prefix{}, err
		}
	}
	hostA := tr.Addr().Next()
	nsA := hostA.Next()
	if err := ensureLinkState(l.h, hl, alias("uplink", r.ID), 0, -1); err != nil {
		return netip.Prefix{}, err
	}
	if err := ensureAddrs(l.h, hl, netip.PrefixFrom(hostA, 30)); err != nil {
		return netip.Prefix{}, err
	}
	if err := ensureLinkState(rns.h, nl, "", 0, -1); err != nil {
		return netip.Prefix{}, err
	}
	if err := ensureAddrs(rns.h, nl, netip.PrefixFrom(nsA, 30)); err != nil {
		return netip.Prefix{}, err
	}
	routes, err := rns.h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Table: unix.RT_TABLE_MAIN}, netlink.RT_FILTER_TABLE)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("list routes: %w", err)
	}
	ok := false
	for _, rt := range routes {
		if (rt.Dst == nil || isDefault(rt.Dst)) && rt.Gw.Equal(net.IP(hostA.AsSlice())) && rt.LinkIndex == nl.Attrs().Index {
			ok = true
		}
	}
	if !ok {
		rt := &netlink.Route{LinkIndex: nl.Attrs().Index, Gw: net.IP(hostA.AsSlice()),
			Dst: &net.IPNet{IP: net.IPv4zero.To4(), Mask: net.CIDRMask(0, 32)}}
		if err := rns.h.RouteReplace(rt); err != nil {
			return netip.Prefix{}, fmt.Errorf("default route via %s: %w", hostA, err)
		}
	}
	return tr, nil
}

func isDefault(n *net.IPNet) bool {
	ones, _ := n.Mask.Size()
	return ones == 0
}

// freeTransit is the lowest /30 of the transit range no uplink holds.
func (l *Linux) freeTransit() (netip.Prefix, error) {
	owned, err := l.ownedLinks()
	if err != nil {
		return netip.Prefix{}, err
	}
	used := map[netip.Prefix]bool{}
	for _, o := range owned {
		if o.kind == "uplink" {
			if p, ok := l.transitOf(o.link); ok {
				used[p] = true
			}
		}
	}
	a := l.transit.Addr()
	for {
		p := netip.PrefixFrom(a, 30)
		if !l.transit.Contains(a) {
			return netip.Prefix{}, fmt.Errorf("transit range %s exhausted", l.transit)
		}
		if !used[p] {
			return p, nil
		}
		for range 4 {
			a = a.Next()
		}
	}
}

// routerTable is the nftables table of a router's namespace: SNAT of NAT
// subnets and of floating IPs out the transit link, DNAT of floating IPs
// in, and a filter that lets from the outside only replies and DNATed
// traffic, and to the outside only NAT subnets and floating IPs.
func routerTable(r *routerPlan) *tableSpec {
	var pre, post, fwd []ruleSpec
	fwd = append(fwd,
		ruleSpec{"established", cat(ctStateEstablished(), one(verdict(expr.VerdictAccept)))},
		ruleSpec{"in-dnat", cat(matchIif(uplinkNS), ctStatusDNAT(), one(verdict(expr.VerdictAccept)))},
		ruleSpec{"in-drop", cat(matchIif(uplinkNS), one(verdict(expr.VerdictDrop)))},
	)
	for _, s := range r.Subnets {
		for _, pt := range s.Ports {
			if !pt.Floating.IsValid() {
				continue
			}
			pre = append(pre, ruleSpec{"dnat " + pt.Floating.String() + " " + pt.IP.String(),
				cat(matchIif(uplinkNS), matchIP(ipDst, pt.Floating), natTo(expr.NATTypeDestNAT, pt.IP))})
			post = append(post, ruleSpec{"snat " + pt.IP.String() + " " + pt.Floating.String(),
				cat(matchOif(uplinkNS), matchIP(ipSrc, pt.IP), natTo(expr.NATTypeSourceNAT, pt.Floating))})
			fwd = append(fwd, ruleSpec{"out-fip " + pt.IP.String(),
				cat(matchOif(uplinkNS), matchIP(ipSrc, pt.IP), one(verdict(expr.VerdictAccept)))})
		}
	}
	for _, s := range r.Subnets {
		if !s.NAT {
			continue
		}
		post = append(post, ruleSpec{"masq " + s.CIDR.String(), cat(matchOif(uplinkNS), matchSrcPrefix(s.CIDR), one(&expr.Masq{}))})
		fwd = append(fwd, ruleSpec{"out " + s.CIDR.String(), cat(matchOif(uplinkNS), matchSrcPrefix(s.CIDR), one(verdict(expr.VerdictAccept)))})
	}
	fwd = append(fwd, ruleSpec{"out-drop", cat(matchOif(uplinkNS), one(verdict(expr.VerdictDrop)))})
	return &tableSpec{name: tableRouter, family: nftables.TableFamilyIPv4, chains: []chainSpec{
		{name: "pre", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPrerouting, prio: nftables.ChainPriorityNATDest, policy: nftables.ChainPolicyAccept, rules: pre},
		{name: "post", typ: nftables.ChainTypeNAT, hook: nftables.ChainHookPostrouting, prio: nftables.ChainPriorityNATSource, policy: nftables.ChainPolicyAccept, rules: post},
		{name: "fwd", typ: nftables.ChainTypeFilter, hook: nftables.ChainHookForward, prio: nftables.ChainPriorityFilter, policy: nftables.ChainPolicyAccept, rules: fwd},
	}}
}

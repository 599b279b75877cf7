package netplumb

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"os"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// VXLANPort is the overlay's UDP port (IANA's).
const VXLANPort = 4789

var errNoDev = unix.ENODEV

// ensureSubnet makes subnet s's bridge and VXLAN device and its
// forwarding entries, and returns the bridge's index.
func (l *Linux) ensureSubnet(s *subnetPlan, fdb map[int]map[netip.Addr]bool) (int, error) {
	var u undo
	br, err := l.ensureBridge(s, &u)
	if err != nil {
		u.run()
		return 0, err
	}
	vx, err := l.ensureVXLAN(s, br, &u)
	if err != nil {
		u.run()
		return 0, err
	}
	if err := l.ensureFDB(s, vx, fdb[vx.Attrs().Index]); err != nil {
		u.run()
		return 0, err
	}
	return br, nil
}

func (l *Linux) ensureBridge(s *subnetPlan, u *undo) (int, error) {
	name := bridgeName(s.ID)
	ln, err := l.linkByName(l.h, name)
	if err != nil {
		return 0, fmt.Errorf("bridge %s: %w", name, err)
	}
	if ln != nil && ln.Type() != "bridge" {
		if err := l.h.LinkDel(ln); err != nil {
			return 0, fmt.Errorf("bridge %s: delete a %s of that name: %w", name, ln.Type(), err)
		}
		ln = nil
	}
	if ln == nil {
		br := &netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Name: name, MTU: s.MTU}}
		if err := l.h.LinkAdd(br); err != nil {
			return 0, fmt.Errorf("bridge %s: create: %w", name, err)
		}
		u.add(func() { l.h.LinkDel(br) })
		if ln, err = l.h.LinkByName(name); err != nil {
			return 0, fmt.Errorf("bridge %s: %w", name, err)
		}
	}
	if err := ensureLinkState(l.h, ln, alias("bridge", s.ID), s.MTU, -1); err != nil {
		return 0, fmt.Errorf("bridge %s: %w", name, err)
	}
	return ln.Attrs().Index, nil
}

func (l *Linux) ensureVXLAN(s *subnetPlan, br int, u *undo) (netlink.Link, error) {
	name := vxlanName(s.ID)
	ln, err := l.linkByName(l.h, name)
	if err != nil {
		return nil, fmt.Errorf("vxlan %s: %w", name, err)
	}
	if ln != nil {
		vx, ok := ln.(*netlink.Vxlan)
		if !ok || vx.VxlanId != int(s.VNI) || !vx.SrcAddr.Equal(net.IP(l.underlay.AsSlice())) ||
			vx.Port != VXLANPort || vx.Learning || vx.Group != nil && !vx.Group.IsUnspecified() {
			if err := l.h.LinkDel(ln); err != nil {
				return nil, fmt.Errorf("vxlan %s: delete a wrong one: %w", name, err)
			}
			ln = nil
		}
	}
	if ln == nil {
		vx := &netlink.Vxlan{
			LinkAttrs: netlink.LinkAttrs{Name: name, MTU: s.MTU, MasterIndex: br},
			VxlanId:   int(s.VNI),
			SrcAddr:   net.IP(l.underlay.AsSlice()),
			Port:      VXLANPort,
			Learning:  false,
		}
		if err := l.h.LinkAdd(vx); err != nil {
			return nil, fmt.Errorf("vxlan %s (vni %d): create: %w", name, s.VNI, err)
		}
		u.add(func() { l.h.LinkDel(vx) })
		if ln, err = l.h.LinkByName(name); err != nil {
			return nil, fmt.Errorf("vxlan %s: %w", name, err)
		}
	}
	if err := ensureLinkState(l.h, ln, alias("vxlan", s.ID), s.MTU, br); err != nil {
		return nil, fmt.Errorf("vxlan %s: %w", name, err)
	}
	return ln, nil
}

var zeroMAC = net.HardwareAddr{0, 0, 0, 0, 0, 0}

// fdbPeers lists the all-zeros forwarding entries of the host's devices
// (by link index): a VXLAN device's peers, that get its broadcast,
// unknown-unicast and multicast frames.
func fdbPeers(h *netlink.Handle) (map[int]map[netip.Addr]bool, error) {
	ns, err := h.NeighList(0, unix.AF_BRIDGE)
	if err != nil {
		return nil, err
	}
	out := map[int]map[netip.Addr]bool{}
	for _, n := range ns {
		if !bytes.Equal(n.HardwareAddr, zeroMAC) || n.IP == nil {
			continue
		}
		a, ok := netip.AddrFromSlice(n.IP.To4())
		if !ok {
			continue
		}
		if out[n.LinkIndex] == nil {
			out[n.LinkIndex] = map[netip.Addr]bool{}
		}
		out[n.LinkIndex][a] = true
	}
	return out, nil
}

func fdbEntry(idx int, peer netip.Addr) *netlink.Neigh {
	return &netlink.Neigh{
		LinkIndex:    idx,
		Family:       unix.AF_BRIDGE,
		Flags:        netlink.NTF_SELF,
		State:        netlink.NUD_PERMANENT | netlink.NUD_NOARP,
		IP:           net.IP(peer.AsSlice()),
		HardwareAddr: zeroMAC,
	}
}

// ensureFDB makes the VXLAN device's all-zeros entries exactly s.Peers
// (`bridge fdb append 00:00:00:00:00:00 dst PEER dev pvX`).
// cur is what the device has (nil for a new one).
func (l *Linux) ensureFDB(s *subnetPlan, vx netlink.Link, cur map[netip.Addr]bool) error {
	idx := vx.Attrs().Index
	want := map[netip.Addr]bool{}
	for _, p := range s.Peers {
		want[p] = true
		if cur[p] {
			continue
		}
		if err := l.h.NeighAppend(fdbEntry(idx, p)); err != nil {
			return fmt.Errorf("vxlan %s: add fdb entry for peer %s: %w", vx.Attrs().Name, p, err)
		}
	}
	for a := range cur {
		if want[a] {
			continue
		}
		if err := l.h.NeighDel(fdbEntry(idx, a)); err != nil {
			return fmt.Errorf("vxlan %s: delete fdb entry for peer %s: %w", vx.Attrs().Name, a, err)
		}
	}
	return nil
}

// ensureTap makes port pt's persistent tap on its subnet's bridge; ln is
// the link of its name, if listed.
func (l *Linux) ensureTap(pt *portPlan, br, mtu int, ln netlink.Link) error {
	name := TapName(pt.ID)
	var err error
	if ln != nil {
		// A tap in use by QEMU is never replaced for what the kernel
		// does not report (Mode 0: no IFLA_TUN attributes), only for
		// being something else.
		tt, ok := ln.(*netlink.Tuntap)
		if !ok || tt.Mode != 0 && tt.Mode != netlink.TUNTAP_MODE_TAP {
			if err := l.h.LinkDel(ln); err != nil {
				return fmt.Errorf("delete a wrong one: %w", err)
			}
			ln = nil
		}
	}
	created := false
	if ln == nil {
		tt := &netlink.Tuntap{
			LinkAttrs: netlink.LinkAttrs{Name: name},
			Mode:      netlink.TUNTAP_MODE_TAP,
			Flags:     netlink.TUNTAP_NO_PI | netlink.TUNTAP_VNET_HDR,
			Owner:     uint32(os.Getuid()),
			Group:     uint32(os.Getgid()),
		}
		// /dev/net/tun makes the device in the opener's namespace.
		if err := inNS(l.hostNS, func() error { return netlink.LinkAdd(tt) }); err != nil {
			return fmt.Errorf("create: %w", err)
		}
		created = true
		if ln, err = l.h.LinkByName(name); err != nil {
			return err
		}
	}
	if err := ensureLinkState(l.h, ln, alias("port", pt.ID), mtu, br); err != nil {
		if created {
			l.h.LinkDel(ln)
		}
		return err
	}
	return nil
}

package netplumb

import (
	"encoding/binary"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/dhcpv4/server4"
	"github.com/vishvananda/netns"
)

// LeaseTime is what the DHCP responder hands out. The address is fixed
// for the port's life; the lease only bounds how long a guest keeps it
// after its port is gone.
const LeaseTime = 24 * time.Hour

// lease is what a port gets by DHCP.
type lease struct {
	ip      netip.Addr
	mask    net.IPMask
	gateway netip.Addr
	dns     []netip.Addr
	mtu     int
}

// leaseTable maps a subnet's ports' MACs to their leases; the driver
// replaces it on every Ensure, responders read it.
type leaseTable struct {
	mu sync.RWMutex
	m  map[string]map[string]lease // subnet id -> mac -> lease
}

func (t *leaseTable) set(m map[string]map[string]lease) {
	t.mu.Lock()
	t.m = m
	t.mu.Unlock()
}

func (t *leaseTable) get(subnetID string, mac net.HardwareAddr) (lease, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	l, ok := t.m[subnetID][mac.String()]
	return l, ok
}

// responder answers DHCP on one subnet's gateway interface, inside its
// router's namespace: only the MACs of the host's own ports, each with
// its fixed address. Requests through a relay are ignored.
type responder struct {
	subnetID string
	ifindex  int
	conn     *net.UDPConn
	done     chan struct{}
}

// maxDHCPPacket bounds what is read: a DHCP message on a 1500-byte link.
const maxDHCPPacket = 1500

func startResponder(ns netns.NsHandle, ifname string, ifindex int, subnetID string, gw netip.Addr, leases *leaseTable, log *slog.Logger) (*responder, error) {
	var conn *net.UDPConn
	err := inNS(ns, func() error {
		var err error
		conn, err = server4.NewIPv4UDPConn(ifname, &net.UDPAddr{Port: dhcpv4.ServerPort})
		return err
	})
	if err != nil {
		return nil, err
	}
	r := &responder{subnetID: subnetID, ifindex: ifindex, conn: conn, done: make(chan struct{})}
	go r.serve(gw, leases, log)
	return r, nil
}

func (r *responder) stop() {
	r.conn.Close()
	<-r.done
}

func (r *responder) serve(gw netip.Addr, leases *leaseTable, log *slog.Logger) {
	defer close(r.done)
	buf := make([]byte, maxDHCPPacket)
	for {
		n, _, err := r.conn.ReadFrom(buf)
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				log.Warn("netplumb: dhcp read", "subnet", r.subnetID, "err", err)
			}
			return
		}
		req, err := dhcpv4.FromBytes(buf[:n])
		if err != nil {
			continue
		}
		resp, dst := answer(req, r.subnetID, gw, leases)
		if resp == nil {
			continue
		}
		if _, err := r.conn.WriteTo(resp.ToBytes(), dst); err != nil {
			log.Warn("netplumb: dhcp write", "subnet", r.subnetID, "to", dst, "err", err)
		}
	}
}

// answer is the reply to req and where to send it, or nil: unknown MACs,
// relayed requests and messages that need no reply get none.
func answer(req *dhcpv4.DHCPv4, subnetID string, gw netip.Addr, leases *leaseTable) (*dhcpv4.DHCPv4, *net.UDPAddr) {
	if req.OpCode != dhcpv4.OpcodeBootRequest || len(req.ClientHWAddr) != 6 {
		return nil, nil
	}
	if req.GatewayIPAddr != nil && !req.GatewayIPAddr.IsUnspecified() {
		return nil, nil
	}
	l, ok := leases.get(subnetID, req.ClientHWAddr)
	if !ok {
		return nil, nil
	}
	var typ dhcpv4.MessageType
	yours := net.IP(l.ip.AsSlice())
	switch req.MessageType() {
	case dhcpv4.MessageTypeDiscover:
		typ = dhcpv4.MessageTypeOffer
	case dhcpv4.MessageTypeRequest:
		typ = dhcpv4.MessageTypeAck
		want := req.RequestedIPAddress()
		if want == nil || want.IsUnspecified() {
			want = req.ClientIPAddr
		}
		if sid := req.ServerIdentifier(); sid != nil && !sid.IsUnspecified() && !sid.Equal(net.IP(gw.AsSlice())) {
			return nil, nil // the client chose another server
		}
		if want != nil && !want.IsUnspecified() && !want.Equal(yours) {
			typ = dhcpv4.MessageTypeNak
		}
	case dhcpv4.MessageTypeInform:
		typ = dhcpv4.MessageTypeAck
		yours = net.IPv4zero
	default:
		return nil, nil
	}
	gwIP := net.IP(gw.AsSlice())
	mods := []dhcpv4.Modifier{
		dhcpv4.WithMessageType(typ),
		dhcpv4.WithServerIP(gwIP),
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(gwIP)),
	}
	if typ != dhcpv4.MessageTypeNak {
		mtu := make([]byte, 2)
		binary.BigEndian.PutUint16(mtu, uint16(l.mtu))
		mods = append(mods,
			dhcpv4.WithYourIP(yours),
			dhcpv4.WithNetmask(l.mask),
			dhcpv4.WithRouter(gwIP),
			dhcpv4.WithGeneric(dhcpv4.OptionInterfaceMTU, mtu),
		)
		if typ != dhcpv4.MessageTypeAck || req.MessageType() != dhcpv4.MessageTypeInform {
			mods = append(mods, dhcpv4.WithLeaseTime(uint32(LeaseTime/time.Second)))
		}
		if len(l.dns) > 0 {
			var dns []net.IP
			for _, d := range l.dns {
				dns = append(dns, net.IP(d.AsSlice()))
			}
			mods = append(mods, dhcpv4.WithDNS(dns...))
		}
	}
	resp, err := dhcpv4.NewReplyFromRequest(req, mods...)
	if err != nil {
		return nil, nil
	}
	dst := &net.UDPAddr{IP: net.IPv4bcast, Port: dhcpv4.ClientPort}
	if typ != dhcpv4.MessageTypeNak && req.ClientIPAddr != nil && !req.ClientIPAddr.IsUnspecified() && !req.IsBroadcast() {
		dst = &net.UDPAddr{IP: req.ClientIPAddr, Port: dhcpv4.ClientPort}
	}
	return resp, dst
}

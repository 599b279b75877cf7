package netplumb

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/google/nftables"
	mdnetlink "github.com/mdlayher/netlink"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/photon-cloud/photon/api"
)

// Config is what the Linux driver needs of its host.
type Config struct {
	// UnderlayIP is the host's address that carries the overlays (the
	// VXLAN endpoint), e.g. "192.0.2.11".
	UnderlayIP string
	// Uplink is the interface NAT subnets and floating IPs reach the
	// outside through, e.g. "eth0". Empty: routers get no transit link
	// (their subnets reach only one another).
	Uplink string
	// StateDir keeps what the driver must remember across restarts
	// (0700). The driver keeps its state in the kernel (devices carry
	// their owner in their alias); the directory is created, not yet
	// written.
	StateDir string
	Logger   *slog.Logger

	// NetNS is the path of the host's network namespace, e.g.
	// "/run/netns/host1"; empty: the namespace of the thread calling
	// NewLinux (the agent's). Lets one process run one driver per test
	// "host".
	NetNS string
	// NetNSDir is where router namespaces are kept (bind mounts named
	// "qr-" and 12 hex digits), default "/run/netns" (where `ip netns`
	// finds them). Two drivers in one mount namespace need two.
	NetNSDir string
	// TransitCIDR is where the /30 transit links between the host and
	// its router namespaces come from, default "169.254.64.0/18".
	TransitCIDR string
}

// DefaultTransitCIDR is Config.TransitCIDR's default, the range the
// controller keeps routers and subnets out of.
const DefaultTransitCIDR = api.TransitCIDR

// routeProto marks the host routes photon adds (floating IPs), so that
// Ensure finds its own: RTPROT 112 is unassigned in iproute2's
// rt_protos.
const routeProto = 112

// Linux programs a host's kernel: netlink, nftables, a DHCP responder.
type Linux struct {
	cfg      Config
	log      *slog.Logger
	underlay netip.Addr
	hostMAC  []byte
	transit  netip.Prefix
	hostNS   netns.NsHandle
	h        *netlink.Handle
	nsDir    string

	mu      sync.Mutex
	routers map[string]*routerNS // by router id, opened namespaces
	dhcp    map[string]*responder
	leases  leaseTable
	closed  bool
}

type routerNS struct {
	id   string
	ns   netns.NsHandle
	h    *netlink.Handle
	name string
}

func (r *routerNS) close() {
	r.h.Close()
	r.ns.Close()
}

// NewLinux returns the driver that programs this host's kernel.
func NewLinux(cfg Config) (Driver, error) {
	l, err := newLinux(cfg)
	if err != nil {
		return nil, err
	}
	return l, nil
}

func newLinux(cfg Config) (*Linux, error) {
	u, err := ParseIPv4(cfg.UnderlayIP)
	if err != nil {
		return nil, fmt.Errorf("netplumb: underlay ip: %w", err)
	}
	if cfg.TransitCIDR == "" {
		cfg.TransitCIDR = DefaultTransitCIDR
	}
	tr, err := ParseCIDR(cfg.TransitCIDR)
	if err != nil || tr.Bits() > 29 {
		return nil, fmt.Errorf("netplumb: transit cidr %q: want an IPv4 /29 or larger (%v)", cfg.TransitCIDR, err)
	}
	if cfg.NetNSDir == "" {
		cfg.NetNSDir = "/run/netns"
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.StateDir != "" {
		if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
			return nil, fmt.Errorf("netplumb: state dir: %w", err)
		}
	}
	var hns netns.NsHandle
	if cfg.NetNS != "" {
		hns, err = netns.GetFromPath(cfg.NetNS)
	} else {
		hns, err = netns.Get()
	}
	if err != nil {
		return nil, fmt.Errorf("netplumb: host netns: %w", err)
	}
	h, err := netlink.NewHandleAt(hns)
	if err != nil {
		hns.Close()
		return nil, fmt.Errorf("netplumb: netlink: %w", err)
	}
	if cfg.Uplink != "" {
		if _, err := h.LinkByName(cfg.Uplink); err != nil {
			h.Close()
			hns.Close()
			return nil, fmt.Errorf("netplumb: uplink %s: %w", cfg.Uplink, err)
		}
	}
	return &Linux{
		cfg: cfg, log: cfg.Logger, underlay: u, hostMAC: hostMAC(u), transit: tr,
		hostNS: hns, h: h, nsDir: cfg.NetNSDir,
		routers: map[string]*routerNS{}, dhcp: map[string]*responder{},
	}, nil
}

// Close stops the DHCP responders and leaves the data plane as it is.
func (l *Linux) Close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return nil
	}
	l.closed = true
	for id, r := range l.dhcp {
		r.stop()
		delete(l.dhcp, id)
	}
	for id, r := range l.routers {
		r.close()
		delete(l.routers, id)
	}
	l.h.Close()
	l.hostNS.Close()
	return nil
}

// Ensure makes the host's network exactly want's. Parts that fail are
// undone and named in the error; the rest is still programmed.
func (l *Linux) Ensure(ctx context.Context, want Desired) error {
	p, err := check(want)
	if err != nil {
		return err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return errors.New("netplumb: driver closed")
	}
	var errs []error
	fail := func(err error) { errs = append(errs, err) }

	// What should not be there goes first, so that what replaces it
	// (a floating IP moved, a subnet recreated) finds the place free.
	if err := l.removeStale(p); err != nil {
		fail(err)
	}

	subnetOK := map[string]int{} // subnet id -> bridge index
	// One dump of the bridge forwarding database for all VXLAN devices.
	fdb, err := fdbPeers(l.h)
	if err != nil {
		fail(fmt.Errorf("netplumb: list forwarding entries: %w", err))
	}
	for _, id := range sortedKeys(p.subnets) {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		br, err := l.ensureSubnet(p.subnets[id], fdb)
		if err != nil {
			fail(fmt.Errorf("netplumb: subnet %s: %w", id, err))
			continue
		}
		subnetOK[id] = br
	}
	routerOK := map[string]*routerState{}
	for _, id := range sortedKeys(p.routers) {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		rns, err := l.ensureRouter(p.routers[id], subnetOK)
		if err != nil {
			fail(fmt.Errorf("netplumb: router %s: %w", id, err))
			continue
		}
		routerOK[id] = rns
	}
	// One listing for all taps (a host may have a thousand).
	hostLinks := map[string]netlink.Link{}
	if links, err := l.h.LinkList(); err == nil {
		for _, ln := range links {
			hostLinks[ln.Attrs().Name] = ln
		}
	}
	for _, id := range sortedKeys(p.ports) {
		if err := ctx.Err(); err != nil {
			return errors.Join(append(errs, err)...)
		}
		pt := p.ports[id]
		br, ok := subnetOK[pt.SubnetID]
		if !ok {
			fail(fmt.Errorf("netplumb: port %s: subnet %s failed", id, pt.SubnetID))
			continue
		}
		if err := l.ensureTap(pt, br, p.subnets[pt.SubnetID].MTU, hostLinks[TapName(id)]); err != nil {
			fail(fmt.Errorf("netplumb: port %s: tap %s: %w", id, TapName(id), err))
		}
	}
	if err := l.ensureHostRules(p, routerOK); err != nil {
		fail(err)
	}
	if err := l.ensureFloating(p, routerOK); err != nil {
		fail(err)
	}
	l.ensureDHCP(p, routerOK, fail)
	return errors.Join(errs...)
}

func sortedKeys[T any](m map[string]T) []string {
	return slices.Sorted(maps.Keys(m))
}

// undo is a list of steps that release what a part acquired, run in
// reverse when the part fails.
type undo []func()

func (u *undo) add(f func()) { *u = append(*u, f) }
func (u *undo) run() {
	for i := len(*u) - 1; i >= 0; i-- {
		(*u)[i]()
	}
	*u = nil
}

// ownedLink is a host link photon made: kind and id from its alias.
type ownedLink struct {
	link netlink.Link
	kind string
	id   string
}

func (l *Linux) ownedLinks() ([]ownedLink, error) {
	links, err := l.h.LinkList()
	if err != nil {
		return nil, fmt.Errorf("netplumb: list links: %w", err)
	}
	var out []ownedLink
	for _, ln := range links {
		a := ln.Attrs()
		kind, id, ok := parseAlias(a.Alias)
		if !ok || a.Name != expectedName(kind, id) {
			continue
		}
		out = append(out, ownedLink{ln, kind, id})
	}
	return out, nil
}

func parseAlias(s string) (kind, id string, ok bool) {
	rest, ok := strings.CutPrefix(s, aliasPrefix)
	if !ok {
		return "", "", false
	}
	kind, id, ok = strings.Cut(rest, ":")
	return kind, id, ok && id != ""
}

func expectedName(kind, id string) string {
	switch kind {
	case "bridge":
		return bridgeName(id)
	case "vxlan":
		return vxlanName(id)
	case "gateway":
		return gwHostName(id)
	case "uplink":
		return uplinkName(id)
	case "port":
		return TapName(id)
	}
	return ""
}

// removeStale deletes what photon made that want does not have: taps,
// gateway and transit links, VXLAN devices, bridges, router namespaces,
// floating IP routes, DHCP responders.
func (l *Linux) removeStale(p *plan) error {
	var errs []error
	owned, err := l.ownedLinks()
	if err != nil {
		return err
	}
	wanted := func(o ownedLink) bool {
		switch o.kind {
		case "port":
			return p.ports[o.id] != nil
		case "uplink":
			return p.routers[o.id] != nil && l.cfg.Uplink != ""
		default:
			return p.subnets[o.id] != nil
		}
	}
	// DHCP responders of subnets that go.
	for id, r := range l.dhcp {
		if p.subnets[id] == nil {
			r.stop()
			delete(l.dhcp, id)
		}
	}
	for _, kind := range []string{"port", "gateway", "uplink", "vxlan", "bridge"} {
		for _, o := range owned {
			if o.kind != kind || wanted(o) {
				continue
			}
			if err := l.h.LinkDel(o.link); err != nil && !isNotFound(err) {
				errs = append(errs, fmt.Errorf("netplumb: delete %s %s (%s): %w", o.kind, o.link.Attrs().Name, o.id, err))
			}
		}
	}
	if err := l.removeStaleFloating(p); err != nil {
		errs = append(errs, err)
	}
	// Router namespaces.
	keep := map[string]bool{}
	for id := range p.routers {
		keep[routerNSName(id)] = true
	}
	for id, r := range l.routers {
		if p.routers[id] == nil {
			r.close()
			delete(l.routers, id)
		}
	}
	entries, err := os.ReadDir(l.nsDir)
	if err != nil && !os.IsNotExist(err) {
		errs = append(errs, fmt.Errorf("netplumb: read %s: %w", l.nsDir, err))
	}
	for _, e := range entries {
		n := e.Name()
		if !isRouterNSName(n) || keep[n] {
			continue
		}
		if err := deleteNamedNS(l.nsDir, n); err != nil {
			errs = append(errs, fmt.Errorf("netplumb: delete router namespace %s: %w", n, err))
		}
	}
	return errors.Join(errs...)
}

func isRouterNSName(n string) bool {
	h, ok := strings.CutPrefix(n, prefixRouter)
	if !ok || len(h) != 12 {
		return false
	}
	for _, c := range h {
		if !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func isNotFound(err error) bool {
	var nf netlink.LinkNotFoundError
	return errors.As(err, &nf) || errors.Is(err, os.ErrNotExist) || isNoEnt(err) || errors.Is(err, errNoDev)
}

func (l *Linux) linkByName(h *netlink.Handle, name string) (netlink.Link, error) {
	ln, err := h.LinkByName(name)
	if err != nil {
		if isNotFound(err) {
			return nil, nil
		}
		return nil, err
	}
	return ln, nil
}

// ensureLinkState sets a link's alias, MTU, master and up flag where they
// differ.
func ensureLinkState(h *netlink.Handle, ln netlink.Link, aliasV string, mtu, master int) error {
	a := ln.Attrs()
	if aliasV != "" && a.Alias != aliasV {
		if err := h.LinkSetAlias(ln, aliasV); err != nil {
			return fmt.Errorf("set alias of %s: %w", a.Name, err)
		}
	}
	if mtu > 0 && a.MTU != mtu {
		if err := h.LinkSetMTU(ln, mtu); err != nil {
			return fmt.Errorf("set mtu of %s: %w", a.Name, err)
		}
	}
	if master >= 0 && a.MasterIndex != master {
		if err := h.LinkSetMasterByIndex(ln, master); err != nil {
			return fmt.Errorf("set master of %s: %w", a.Name, err)
		}
	}
	if a.Flags&1 == 0 { // net.FlagUp
		if err := h.LinkSetUp(ln); err != nil {
			return fmt.Errorf("set %s up: %w", a.Name, err)
		}
	}
	return nil
}

func hostPath(dir, name string) string { return filepath.Join(dir, name) }

// nftSockBuffer is the netlink socket buffer of an nftables connection:
// a table of a few hundred rules is one batch whose acknowledgements
// overflow the default buffer (ENOBUFS).
const nftSockBuffer = 8 << 20

// nftConn is a netlink connection to nftables in ns.
func nftConn(ns netns.NsHandle) (*nftables.Conn, error) {
	return nftables.New(nftables.WithNetNSFd(int(ns)), nftables.WithSockOptions(func(c *mdnetlink.Conn) error {
		if err := c.SetReadBuffer(nftSockBuffer); err != nil {
			return err
		}
		return c.SetWriteBuffer(nftSockBuffer)
	}))
}

func joinErrs(errs []error) error { return errors.Join(errs...) }

package hosts

import (
	"context"
	"errors"
	"net/netip"
	"slices"
	"strings"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// A host's network (api.HostDesiredState.Networks) comes from three kinds
// of records, written in the transactions that place and release VMs'
// ports (compute), mirrored with the rest of the desired state:
//
//	desired-net/<host>/<subnet>    the subnet as the host carries it, and
//	                               the number of the host's ports on it
//	desired-rhost/<router>/<host>  the underlay address of a host with
//	                               ports on the router's subnets, and the
//	                               number of its subnets there
//	desired-rsub/<router>/<subnet> a subnet of the router with ports on
//	                               some host, and the number of such hosts
//
// The router is distributed (netplumb): a host routes a packet onto the
// destination subnet's bridge itself, and the answer comes back through
// the other host's router. So a host carries every subnet (with ports
// somewhere) of each router it has ports on, not only those of its own
// ports, and every host of the router is a peer on each of them. A host's
// desired state lists its routers from the first, their subnets from the
// third and their peers from the second (by router id, in the mirror: no
// read of VMs); a host's long poll and stream wait on its own id and on
// each of its routers' ids, so that a host joining or leaving a router,
// or a subnet getting its first port, changes the desired state of every
// host of the router. Writes happen on a host's first and last port on a
// subnet only, as before: no key is written by every port of a subnet.

func netKey(host, subnet string) string    { return store.Key("desired-net", host, subnet) }
func rhostKey(router, host string) string  { return store.Key("desired-rhost", router, host) }
func rsubKey(router, subnet string) string { return store.Key("desired-rsub", router, subnet) }

// netRecord is a subnet a host carries.
type netRecord struct {
	Subnet api.SubnetDesired `json:"subnet"`
	Router api.RouterDesired `json:"router"`
	Ports  int               `json:"ports"`
}

// rhostRecord is a host of a router: its underlay address and how many
// of the router's subnets it has ports on.
type rhostRecord struct {
	IP      string `json:"ip"`
	Subnets int    `json:"subnets"`
}

// rsubRecord is a subnet of a router with ports: on how many hosts.
type rsubRecord struct {
	Subnet api.SubnetDesired `json:"subnet"`
	Hosts  int               `json:"hosts"`
}

// UnderlayOf is a host's underlay address: the one it reported, else its
// address if that is an IP ("" if neither).
func UnderlayOf(h *Record) string {
	if h.UnderlayIP != "" {
		return h.UnderlayIP
	}
	if a, err := netip.ParseAddr(h.Address); err == nil {
		return a.String()
	}
	return ""
}

// JoinSubnet counts in tx one more port of subnet sub (of router r) on
// host h: the host's first makes it carry the subnet, counts it in the
// host's part of the router and the subnet's hosts.
func (s *Service) JoinSubnet(ctx context.Context, tx *store.Txn, h *Record, sub api.SubnetDesired, r api.RouterDesired) error {
	var nr netRecord // its slices shared with tx (see PutKept): read only
	err := store.MustGetKept(ctx, tx, netKey(h.ID, sub.ID), &nr)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err != nil {
		sub.Peers = nil
		nr = netRecord{Subnet: sub, Router: r}
		var rh rhostRecord
		if _, err := tx.Get(ctx, rhostKey(r.ID, h.ID), &rh); err != nil {
			return err
		}
		rh.IP, rh.Subnets = UnderlayOf(h), rh.Subnets+1
		if err := tx.Put(rhostKey(r.ID, h.ID), &rh); err != nil {
			return err
		}
		var rs rsubRecord
		if _, err := tx.Get(ctx, rsubKey(r.ID, sub.ID), &rs); err != nil {
			return err
		}
		rs.Subnet, rs.Hosts = sub, rs.Hosts+1
		if err := tx.Put(rsubKey(r.ID, sub.ID), &rs); err != nil {
			return err
		}
	}
	nr.Ports++
	return tx.PutKept(netKey(h.ID, sub.ID), &nr)
}

// LeaveSubnet counts in tx one port fewer of subnet on host; the last
// one takes the subnet off the host (and the host off the router when it
// was its last subnet there, the subnet off the router's when no host
// has ports on it).
func (s *Service) LeaveSubnet(ctx context.Context, tx *store.Txn, hostID, subnet string) error {
	var nr netRecord
	ok, err := tx.Get(ctx, netKey(hostID, subnet), &nr)
	if err != nil || !ok {
		return err
	}
	if nr.Ports--; nr.Ports > 0 {
		return tx.Put(netKey(hostID, subnet), &nr)
	}
	tx.Delete(netKey(hostID, subnet))
	router := nr.Router.ID
	var rh rhostRecord
	if ok, err := tx.Get(ctx, rhostKey(router, hostID), &rh); err != nil {
		return err
	} else if ok {
		if rh.Subnets--; rh.Subnets > 0 {
			if err := tx.Put(rhostKey(router, hostID), &rh); err != nil {
				return err
			}
		} else {
			tx.Delete(rhostKey(router, hostID))
		}
	}
	var rs rsubRecord
	if ok, err := tx.Get(ctx, rsubKey(router, subnet), &rs); err != nil {
		return err
	} else if ok {
		if rs.Hosts--; rs.Hosts > 0 {
			return tx.Put(rsubKey(router, subnet), &rs)
		}
		tx.Delete(rsubKey(router, subnet))
	}
	return nil
}

// hostSubnets decodes a host's desired-net records.
func hostSubnets(kvs []store.KV) ([]netRecord, error) {
	return store.DecodeAll[netRecord](kvs)
}

// routerIDs are the ids of the routers a host has ports on, as the
// mirror has them now (nil while it is not ready), for its long poll to
// wait on.
func (s *Service) routerIDs(hostID string) []string {
	lists, _, ok := s.mirror.Read(hostID, "desired-net")
	if !ok {
		return nil
	}
	recs, err := hostSubnets(lists[0])
	if err != nil {
		return nil
	}
	ids := make([]string, 0, len(recs))
	for _, nr := range recs {
		ids = append(ids, nr.Router.ID)
	}
	slices.Sort(ids)
	return slices.Compact(ids)
}

// networks builds a host's api.HostNetworkDesired from its desired-net
// records: each router it has ports on, once, and every subnet of those
// routers with ports somewhere, each with the underlay addresses of the
// router's other hosts.
func (s *Service) networks(ctx context.Context, hostID string, kvs []store.KV) (*api.HostNetworkDesired, error) {
	recs, err := hostSubnets(kvs)
	if err != nil {
		return nil, err
	}
	out := &api.HostNetworkDesired{Routers: []api.RouterDesired{}, Subnets: make([]api.SubnetDesired, 0, len(recs))}
	local := map[string]bool{}
	for _, nr := range recs {
		local[nr.Subnet.ID] = true
		if !slices.ContainsFunc(out.Routers, func(r api.RouterDesired) bool { return r.ID == nr.Router.ID }) {
			out.Routers = append(out.Routers, nr.Router)
		}
	}
	slices.SortFunc(out.Routers, func(a, b api.RouterDesired) int { return strings.Compare(a.ID, b.ID) })
	for _, r := range out.Routers {
		peers, err := s.peers(ctx, r.ID, hostID)
		if err != nil {
			return nil, err
		}
		var subs []rsubRecord
		if lists, _, ok := s.mirror.Read(r.ID, "desired-rsub"); ok {
			subs, err = store.DecodeAll[rsubRecord](lists[0])
		} else {
			var lists [][]store.KV
			if lists, _, err = s.st.Lists(ctx, store.Prefix("desired-rsub", r.ID)); err == nil {
				subs, err = store.DecodeAll[rsubRecord](lists[0])
			}
		}
		if err != nil {
			return nil, err
		}
		seen := map[string]bool{}
		for _, rs := range subs {
			seen[rs.Subnet.ID] = true
			sd := rs.Subnet
			sd.Peers = peers
			out.Subnets = append(out.Subnets, sd)
		}
		// A subnet of the host's own ports whose router record the
		// mirror does not show yet.
		for _, nr := range recs {
			if nr.Router.ID == r.ID && !seen[nr.Subnet.ID] {
				sd := nr.Subnet
				sd.Peers = peers
				out.Subnets = append(out.Subnets, sd)
			}
		}
	}
	return out, nil
}

// peerSet is a router's hosts and their underlay addresses as the mirror
// had them at a version of the router's id (Hub.Version): every host's
// desired state lists the same set, less itself.
type peerSet struct {
	ver   int64
	hosts []string // host ids
	ips   []string // their underlay addresses, sorted (unknown ones left out)
}

// maxPeerSets bounds the sets kept; beyond, they are dropped and built again.
const maxPeerSets = 1 << 16

// peers are the underlay addresses of the hosts other than hostID that
// have ports on router's subnets, sorted, each once. The set is built
// once per change of the router's records, not once per host's message.
func (s *Service) peers(ctx context.Context, router, hostID string) ([]string, error) {
	ver := s.hub.Version(router)
	s.peerMu.Lock()
	ps, ok := s.peerSets[router]
	s.peerMu.Unlock()
	if !ok || ver == 0 || ps.ver != ver {
		var kvs []store.KV
		if lists, _, ok := s.mirror.Read(router, "desired-rhost"); ok {
			kvs = lists[0]
		} else {
			lists, _, err := s.st.Lists(ctx, store.Prefix("desired-rhost", router))
			if err != nil {
				return nil, err
			}
			kvs, ver = lists[0], 0 // read from etcd: not kept
		}
		type peer struct{ ip, host string }
		all := make([]peer, 0, len(kvs))
		for _, kv := range kvs {
			var rh rhostRecord
			if store.Decode(kv.Value, &rh) != nil || rh.IP == "" {
				continue
			}
			all = append(all, peer{rh.IP, kv.Key[strings.LastIndexByte(kv.Key, '/')+1:]})
		}
		slices.SortFunc(all, func(a, b peer) int { return strings.Compare(a.ip, b.ip) })
		ps = &peerSet{ver: ver, hosts: make([]string, len(all)), ips: make([]string, len(all))}
		for i, p := range all {
			ps.ips[i], ps.hosts[i] = p.ip, p.host
		}
		if ver != 0 {
			s.peerMu.Lock()
			if len(s.peerSets) >= maxPeerSets {
				clear(s.peerSets)
			}
			s.peerSets[router] = ps
			s.peerMu.Unlock()
		}
	}
	// Sorted by address already: drop the host itself and repeats.
	out := make([]string, 0, len(ps.ips))
	for i, ip := range ps.ips {
		if ps.hosts[i] != hostID && (len(out) == 0 || out[len(out)-1] != ip) {
			out = append(out, ip)
		}
	}
	return out, nil
}

// SetUnderlay records the underlay address a host reports (its VXLAN
// endpoint) when it changes, and rewrites its entries in its routers' hosts with it. An
// address that is not an IP is refused.
func (s *Service) SetUnderlay(ctx context.Context, hostID, ip string) error {
	if ip == "" {
		return nil
	}
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Zone() != "" || !a.IsValid() || a.IsUnspecified() || a.IsMulticast() {
		return api.FieldError("underlayIp", "%q is not a unicast IP address", truncate(ip))
	}
	ip = a.String()
	s.underlayMu.Lock()
	known := s.underlays[hostID] == ip
	s.underlayMu.Unlock()
	if known {
		return nil
	}
	_, err = s.st.Update(ctx, func(tx *store.Txn) error {
		var h Record
		if err := tx.MustGet(ctx, hostKey(hostID), &h); err != nil {
			return err
		}
		if h.UnderlayIP == ip {
			return nil
		}
		h.UnderlayIP = ip
		kvs, _, err := s.st.Lists(ctx, store.Prefix("desired-net", hostID))
		if err != nil {
			return err
		}
		recs, err := hostSubnets(kvs[0])
		if err != nil {
			return err
		}
		for _, nr := range recs {
			var rh rhostRecord
			if ok, err := tx.Get(ctx, rhostKey(nr.Router.ID, hostID), &rh); err != nil || !ok || rh.IP == ip {
				if err != nil {
					return err
				}
				continue
			}
			rh.IP = ip
			if err := tx.Put(rhostKey(nr.Router.ID, hostID), &rh); err != nil {
				return err
			}
		}
		return tx.Put(hostKey(hostID), &h)
	})
	if err != nil {
		return err
	}
	s.underlayMu.Lock()
	if len(s.underlays) > 1<<16 {
		clear(s.underlays)
	}
	s.underlays[hostID] = ip
	s.underlayMu.Unlock()
	return nil
}

func truncate(s string) string {
	if len(s) > 64 {
		return s[:64] + "…"
	}
	return s
}

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

// A host's network (api.HostDesiredState.Networks) comes from two kinds of
// records, written in the transactions that place and release VMs' ports
// (compute), mirrored with the rest of the desired state:
//
//	desired-net/<host>/<subnet>    the subnet as the host carries it, and
//	                               the number of the host's ports on it
//	desired-peers/<subnet>/<host>  the underlay address of a host carrying
//	                               the subnet (there while the above is)
//
// A host's desired state lists its subnets from the first and each one's
// peers from the second (by subnet id, in the mirror: no read of VMs); a
// host's long poll and stream wait on its own id and on each of its
// subnets' ids, so that a host joining or leaving a subnet changes the
// desired state of every other host carrying it.

func netKey(host, subnet string) string  { return store.Key("desired-net", host, subnet) }
func peerKey(subnet, host string) string { return store.Key("desired-peers", subnet, host) }

// netRecord is a subnet a host carries.
type netRecord struct {
	Subnet api.SubnetDesired `json:"subnet"`
	Router api.RouterDesired `json:"router"`
	Ports  int               `json:"ports"`
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
// host h: the host's first makes it carry the subnet and a peer of the
// other hosts carrying it.
func (s *Service) JoinSubnet(ctx context.Context, tx *store.Txn, h *Record, sub api.SubnetDesired, r api.RouterDesired) error {
	var nr netRecord // its slices shared with tx (see PutKept): read only
	err := store.MustGetKept(ctx, tx, netKey(h.ID, sub.ID), &nr)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	if err != nil {
		sub.Peers = nil
		nr = netRecord{Subnet: sub, Router: r}
		if err := tx.Put(peerKey(sub.ID, h.ID), UnderlayOf(h)); err != nil {
			return err
		}
	}
	nr.Ports++
	return tx.PutKept(netKey(h.ID, sub.ID), &nr)
}

// LeaveSubnet counts in tx one port fewer of subnet on host; the last
// one takes the subnet off the host.
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
	tx.Delete(peerKey(subnet, hostID))
	return nil
}

// hostSubnets decodes a host's desired-net records.
func hostSubnets(kvs []store.KV) ([]netRecord, error) {
	return store.DecodeAll[netRecord](kvs)
}

// subnetIDs are the ids of the subnets a host carries, as the mirror has
// them now (nil while it is not ready), for its long poll to wait on.
func (s *Service) subnetIDs(hostID string) []string {
	lists, _, ok := s.mirror.Read(hostID, "desired-net")
	if !ok {
		return nil
	}
	ids := make([]string, len(lists[0]))
	for i, kv := range lists[0] {
		ids[i] = kv.Key[strings.LastIndexByte(kv.Key, '/')+1:]
	}
	return ids
}

// networks builds a host's api.HostNetworkDesired from its desired-net
// records: each subnet with the underlay addresses of the other hosts
// carrying it, each router once.
func (s *Service) networks(ctx context.Context, hostID string, kvs []store.KV) (*api.HostNetworkDesired, error) {
	recs, err := hostSubnets(kvs)
	if err != nil {
		return nil, err
	}
	out := &api.HostNetworkDesired{Routers: []api.RouterDesired{}, Subnets: make([]api.SubnetDesired, 0, len(recs))}
	seen := map[string]bool{}
	for _, nr := range recs {
		peers, err := s.peers(ctx, nr.Subnet.ID, hostID)
		if err != nil {
			return nil, err
		}
		sd := nr.Subnet
		sd.Peers = peers
		out.Subnets = append(out.Subnets, sd)
		if !seen[nr.Router.ID] {
			seen[nr.Router.ID] = true
			out.Routers = append(out.Routers, nr.Router)
		}
	}
	slices.SortFunc(out.Routers, func(a, b api.RouterDesired) int { return strings.Compare(a.ID, b.ID) })
	return out, nil
}

// peerSet is a subnet's hosts and their underlay addresses as the mirror
// had them at a version of the subnet's id (Hub.Version): every host's
// desired state lists the same set, less itself.
type peerSet struct {
	ver   int64
	hosts []string // host ids
	ips   []string // their underlay addresses, sorted (unknown ones left out)
}

// maxPeerSets bounds the sets kept; beyond, they are dropped and built again.
const maxPeerSets = 1 << 16

// peers are the underlay addresses of the hosts other than hostID that
// carry subnet, sorted, each once. The set is built once per change of
// the subnet's peers, not once per host's message.
func (s *Service) peers(ctx context.Context, subnet, hostID string) ([]string, error) {
	ver := s.hub.Version(subnet)
	s.peerMu.Lock()
	ps, ok := s.peerSets[subnet]
	s.peerMu.Unlock()
	if !ok || ver == 0 || ps.ver != ver {
		var kvs []store.KV
		if lists, _, ok := s.mirror.Read(subnet, "desired-peers"); ok {
			kvs = lists[0]
		} else {
			lists, _, err := s.st.Lists(ctx, store.Prefix("desired-peers", subnet))
			if err != nil {
				return nil, err
			}
			kvs, ver = lists[0], 0 // read from etcd: not kept
		}
		type peer struct{ ip, host string }
		all := make([]peer, 0, len(kvs))
		for _, kv := range kvs {
			var ip string
			if store.Decode(kv.Value, &ip) != nil || ip == "" {
				continue
			}
			all = append(all, peer{ip, kv.Key[strings.LastIndexByte(kv.Key, '/')+1:]})
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
			s.peerSets[subnet] = ps
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
// endpoint) when it changes, and rewrites its peer entries with it. An
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
		for _, kv := range kvs[0] {
			sub := kv.Key[strings.LastIndexByte(kv.Key, '/')+1:]
			if err := tx.Put(peerKey(sub, hostID), ip); err != nil {
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

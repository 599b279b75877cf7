package network

import (
	"context"
	"errors"
	"net/netip"
	"strconv"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// maxVNI is VXLAN's bound (24 bits).
const maxVNI = 1<<24 - 1

// SubnetSpec is a subnet create spec checked and normalized.
type SubnetSpec struct {
	Name, Description string
	CIDR              netip.Prefix
	Type              string
	DNS               []string
}

// ValidateSubnetSpec checks a subnet create spec: its name, CIDR (host
// bits cleared, at least a /29), type and DNS servers. Where the CIDR
// lies within its router is checked with the router.
func ValidateSubnetSpec(spec *api.SubnetCreateSpec) (*SubnetSpec, error) {
	if err := api.ValidateName("name", spec.Name); err != nil {
		return nil, err
	}
	if len(spec.Description) > 1024 {
		return nil, fieldErr("description", "at most 1024 bytes")
	}
	cidr, err := ParseCIDR("privateIpCidr", spec.PrivateIPCidr)
	if err != nil {
		return nil, err
	}
	if cidr.Bits() > MinSubnetBits {
		return nil, fieldErr("privateIpCidr", "%s is smaller than a /%d", cidr, MinSubnetBits)
	}
	out := &SubnetSpec{Name: spec.Name, Description: spec.Description, CIDR: cidr, Type: spec.Type, DNS: []string{}}
	switch spec.Type {
	case "":
		out.Type = api.SubnetNAT
	case api.SubnetNAT, api.SubnetNoNAT:
	default:
		return nil, fieldErr("type", "want NAT or NO_NAT, got %q", trunc(spec.Type))
	}
	if len(spec.DNSServerAddresses) > MaxDNS {
		return nil, fieldErr("dnsServerAddresses", "at most %d servers", MaxDNS)
	}
	for i, d := range spec.DNSServerAddresses {
		a, err := netip.ParseAddr(d)
		if err != nil || a.Zone() != "" {
			return nil, fieldErr("dnsServerAddresses["+strconv.Itoa(i)+"]", "%q is not an IP address", trunc(d))
		}
		out.DNS = append(out.DNS, a.String())
	}
	return out, nil
}

// CreateSubnet creates a subnet of a router.
func (s *Service) CreateSubnet(ctx context.Context, routerID string, spec *api.SubnetCreateSpec) (*api.Task, error) {
	sp, err := ValidateSubnetSpec(spec)
	if err != nil {
		return nil, err
	}
	r, err := s.GetRouter(ctx, routerID)
	if err != nil {
		return nil, err
	}
	id := newID()
	return s.submit(ctx, OpCreateSubnet, api.Entity{ID: id, Kind: api.KindSubnet}, r.ProjectID, func(tx *store.Txn, t *api.Task) error {
		cur, err := getRouter(ctx, tx, routerID)
		if err != nil {
			return err
		}
		_, err = s.createSubnet(ctx, tx, cur, id, sp, false)
		return err
	})
}

// createSubnet records a subnet of router r in tx: its name, VNI and
// place in the router (checked against the router's other subnets).
func (s *Service) createSubnet(ctx context.Context, tx *store.Txn, r *api.Router, id string, sp *SubnetSpec, def bool) (*Record, error) {
	rc, err := netip.ParsePrefix(r.PrivateIPCidr)
	if err != nil {
		return nil, err
	}
	if !contains(rc, sp.CIDR) {
		return nil, fieldErr("privateIpCidr", "%s is not within router %s's %s", sp.CIDR, r.Name, rc)
	}
	if taken, err := tx.Exists(ctx, subnetNameKey(r.ProjectID, sp.Name)); err != nil {
		return nil, err
	} else if taken {
		return nil, nameTaken("subnet", sp.Name)
	}
	others, err := s.routerSubnets(ctx, tx, r.ID)
	if err != nil {
		return nil, err
	}
	for _, o := range others {
		if op, err := netip.ParsePrefix(o.PrivateIPCidr); err == nil && op.Overlaps(sp.CIDR) {
			return nil, fieldErr("privateIpCidr", "%s overlaps subnet %s (%s)", sp.CIDR, o.Name, op)
		}
	}
	vni, err := allocVNI(ctx, tx, id)
	if err != nil {
		return nil, err
	}
	first, last := span(sp.CIDR)
	rec := &Record{Subnet: api.Subnet{Base: api.Base{ID: id, Kind: api.KindSubnet}, Name: sp.Name, Description: sp.Description,
		PrivateIPCidr: sp.CIDR.String(), Type: sp.Type, State: api.NetworkReady, IsDefault: def,
		ReservedIPs:        map[string]string{"NETWORK": addr(first).String(), "GATEWAY": Gateway(sp.CIDR).String(), "BROADCAST": addr(last).String()},
		DNSServerAddresses: sp.DNS, RouterID: r.ID, ProjectID: r.ProjectID, VNI: vni}, RouterCIDR: r.PrivateIPCidr}
	for _, put := range []struct {
		k string
		v any
	}{{subnetKey(id), rec}, {subnetNameKey(r.ProjectID, sp.Name), id}, {routerSubnetKey(r.ID, id), id}} {
		if err := tx.Put(put.k, put.v); err != nil {
			return nil, err
		}
	}
	if def {
		if err := tx.Put(defaultKey(r.ProjectID), id); err != nil {
			return nil, err
		}
	}
	return rec, touchRouter(tx, r)
}

// allocVNI takes the next free VNI (a counter, and an index entry per
// VNI so that one reused after the counter wraps is never shared).
func allocVNI(ctx context.Context, tx *store.Txn, subnetID string) (uint32, error) {
	var next uint32
	if _, err := tx.Get(ctx, vniNextKey, &next); err != nil {
		return 0, err
	}
	for try := 0; try < 1000; try++ {
		if next < 1 || next > maxVNI {
			next = 1
		}
		n := next
		next++
		taken, err := tx.Exists(ctx, vniKey(n))
		if err != nil {
			return 0, err
		}
		if taken {
			continue
		}
		if err := tx.Put(vniNextKey, next); err != nil {
			return 0, err
		}
		return n, tx.Put(vniKey(n), subnetID)
	}
	return 0, api.Errorf(api.CodeUnavailable, "no free VXLAN id found")
}

// GetSubnet reads a subnet.
func (s *Service) GetSubnet(ctx context.Context, id string) (*api.Subnet, error) {
	r, err := getSubnet(ctx, s.st.PlainTxn(), id)
	if err != nil {
		return nil, err
	}
	return &r.Subnet, nil
}

func getSubnet(ctx context.Context, tx *store.Txn, id string) (*Record, error) {
	if !validID(id) {
		return nil, subnetNotFound(id)
	}
	var r Record // its map and slices shared with tx when a port's allocation kept it: read only
	if err := store.MustGetKept(ctx, tx, subnetKey(id), &r); errors.Is(err, store.ErrNotFound) {
		return nil, subnetNotFound(id)
	} else if err != nil {
		return nil, err
	}
	return &r, nil
}

// ListSubnets lists a router's subnets, or the one named name.
func (s *Service) ListSubnets(ctx context.Context, routerID, name, token string, size int) ([]api.Subnet, string, error) {
	r, err := s.GetRouter(ctx, routerID)
	if err != nil {
		return nil, "", err
	}
	if name != "" {
		var id string
		if _, err := s.st.Get(ctx, subnetNameKey(r.ProjectID, name), &id); errors.Is(err, store.ErrNotFound) {
			return []api.Subnet{}, "", nil
		} else if err != nil {
			return nil, "", err
		}
		sn, err := s.GetSubnet(ctx, id)
		if err != nil || sn.RouterID != routerID {
			return []api.Subnet{}, "", nil
		}
		return []api.Subnet{*sn}, "", nil
	}
	recs, next, err := page[Record](ctx, s.st, store.Prefix("router-subnets", routerID), token, size, subnetKey)
	out := make([]api.Subnet, len(recs))
	for i := range recs {
		out[i] = recs[i].Subnet
	}
	return out, next, err
}

// UpdateSubnet renames a subnet.
func (s *Service) UpdateSubnet(ctx context.Context, id string, spec *api.SubnetUpdateSpec) (*api.Task, error) {
	if err := api.ValidateName("name", spec.Name); err != nil {
		return nil, err
	}
	sn, err := s.GetSubnet(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.submit(ctx, OpUpdateSubnet, api.Entity{ID: id, Kind: api.KindSubnet}, sn.ProjectID, func(tx *store.Txn, t *api.Task) error {
		cur, err := getSubnet(ctx, tx, id)
		if err != nil || cur.Name == spec.Name {
			return err
		}
		if taken, err := tx.Exists(ctx, subnetNameKey(cur.ProjectID, spec.Name)); err != nil {
			return err
		} else if taken {
			return nameTaken("subnet", spec.Name)
		}
		tx.Delete(subnetNameKey(cur.ProjectID, cur.Name))
		cur.Name = spec.Name
		if err := tx.Put(subnetNameKey(cur.ProjectID, cur.Name), id); err != nil {
			return err
		}
		return tx.Put(subnetKey(id), cur)
	})
}

// DeleteSubnet deletes a subnet without ports (else ContainerNotEmpty).
func (s *Service) DeleteSubnet(ctx context.Context, id string) (*api.Task, error) {
	sn, err := s.GetSubnet(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.submit(ctx, OpDeleteSubnet, api.Entity{ID: id, Kind: api.KindSubnet}, sn.ProjectID, func(tx *store.Txn, t *api.Task) error {
		cur, err := getSubnet(ctx, tx, id)
		if err != nil {
			return err
		}
		if cur.Ports > 0 {
			return api.Errorf(api.CodeContainerNotEmpty, "subnet %s has %d port(s); delete their VMs first", cur.Name, cur.Ports)
		}
		tx.Delete(subnetKey(id))
		tx.Delete(subnetNameKey(cur.ProjectID, cur.Name))
		tx.Delete(routerSubnetKey(cur.RouterID, id))
		tx.Delete(vniKey(cur.VNI))
		var def string
		if _, err := tx.Get(ctx, defaultKey(cur.ProjectID), &def); err != nil {
			return err
		} else if def == id {
			tx.Delete(defaultKey(cur.ProjectID))
		}
		if r, err := getRouter(ctx, tx, cur.RouterID); err == nil {
			return touchRouter(tx, r)
		}
		return nil
	})
}

// SetDefault makes a subnet its project's default (VMs created without
// subnets get a NIC on it).
func (s *Service) SetDefault(ctx context.Context, id string) (*api.Task, error) {
	sn, err := s.GetSubnet(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.submit(ctx, OpSetDefault, api.Entity{ID: id, Kind: api.KindSubnet}, sn.ProjectID, func(tx *store.Txn, t *api.Task) error {
		cur, err := getSubnet(ctx, tx, id)
		if err != nil {
			return err
		}
		var old string
		if _, err := tx.Get(ctx, defaultKey(cur.ProjectID), &old); err != nil {
			return err
		}
		if old == id && cur.IsDefault {
			return nil
		}
		if old != "" && old != id {
			if prev, err := getSubnet(ctx, tx, old); err == nil {
				prev.IsDefault = false
				if err := tx.Put(subnetKey(old), prev); err != nil {
					return err
				}
			}
		}
		cur.IsDefault = true
		if err := tx.Put(defaultKey(cur.ProjectID), id); err != nil {
			return err
		}
		return tx.Put(subnetKey(id), cur)
	})
}

// CreateDefaults gives a project being created (in tx) its default
// router, named "default", of cidr, and a default NAT subnet "default" of
// the router's first /24 (the whole router when it is smaller).
func (s *Service) CreateDefaults(ctx context.Context, tx *store.Txn, projectID, cidr string) error {
	rc, err := ParseCIDR("defaultRouterPrivateIpCidr", cidr)
	if err != nil {
		return err
	}
	if rc.Bits() > MinSubnetBits {
		return fieldErr("defaultRouterPrivateIpCidr", "%s is smaller than a /%d", rc, MinSubnetBits)
	}
	r, err := s.createRouter(ctx, tx, projectID, newID(), "default", rc, true)
	if err != nil {
		return err
	}
	sub := netip.PrefixFrom(rc.Addr(), max(rc.Bits(), 24))
	_, err = s.createSubnet(ctx, tx, r, newID(), &SubnetSpec{Name: "default", CIDR: sub, Type: api.SubnetNAT, DNS: []string{}}, true)
	return err
}

package network

import (
	"context"
	"errors"
	"net/netip"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// ValidateRouterSpec checks a router create spec and normalizes its CIDR.
func ValidateRouterSpec(spec *api.RouterCreateSpec) (netip.Prefix, error) {
	if err := api.ValidateName("name", spec.Name); err != nil {
		return netip.Prefix{}, err
	}
	return ParseCIDR("privateIpCidr", spec.PrivateIPCidr)
}

// CreateRouter creates a router in a project.
func (s *Service) CreateRouter(ctx context.Context, projectID string, spec *api.RouterCreateSpec) (*api.Task, error) {
	cidr, err := ValidateRouterSpec(spec)
	if err != nil {
		return nil, err
	}
	id := newID()
	return s.submit(ctx, OpCreateRouter, api.Entity{ID: id, Kind: api.KindRouter}, projectID, func(tx *store.Txn, t *api.Task) error {
		tid, err := projectTenant(ctx, tx, projectID)
		if err != nil {
			return err
		}
		t.TenantID = tid
		_, err = s.createRouter(ctx, tx, projectID, id, spec.Name, cidr, false)
		return err
	})
}

func (s *Service) createRouter(ctx context.Context, tx *store.Txn, projectID, id, name string, cidr netip.Prefix, def bool) (*api.Router, error) {
	if taken, err := tx.Exists(ctx, routerNameKey(projectID, name)); err != nil {
		return nil, err
	} else if taken {
		return nil, nameTaken("router", name)
	}
	r := &api.Router{Base: api.Base{ID: id, Kind: api.KindRouter}, Name: name, PrivateIPCidr: cidr.String(),
		State: api.NetworkReady, IsDefault: def, ProjectID: projectID}
	for _, put := range []struct {
		k string
		v any
	}{{routerKey(id), r}, {routerNameKey(projectID, name), id}, {projectRouterKey(projectID, id), id}} {
		if err := tx.Put(put.k, put.v); err != nil {
			return nil, err
		}
	}
	return r, nil
}

// GetRouter reads a router.
func (s *Service) GetRouter(ctx context.Context, id string) (*api.Router, error) {
	return getRouter(ctx, s.st.PlainTxn(), id)
}

func getRouter(ctx context.Context, tx *store.Txn, id string) (*api.Router, error) {
	if !validID(id) {
		return nil, routerNotFound(id)
	}
	var r api.Router
	if err := tx.MustGet(ctx, routerKey(id), &r); errors.Is(err, store.ErrNotFound) {
		return nil, routerNotFound(id)
	} else if err != nil {
		return nil, err
	}
	return &r, nil
}

// ListRouters lists a project's routers, or the one named name.
func (s *Service) ListRouters(ctx context.Context, projectID, name, token string, size int) ([]api.Router, string, error) {
	if name != "" {
		var id string
		if _, err := s.st.Get(ctx, routerNameKey(projectID, name), &id); errors.Is(err, store.ErrNotFound) {
			return []api.Router{}, "", nil
		} else if err != nil {
			return nil, "", err
		}
		r, err := s.GetRouter(ctx, id)
		if err != nil {
			return []api.Router{}, "", nil
		}
		return []api.Router{*r}, "", nil
	}
	return page[api.Router](ctx, s.st, store.Prefix("project-routers", projectID), token, size, routerKey)
}

// UpdateRouter renames a router.
func (s *Service) UpdateRouter(ctx context.Context, id string, spec *api.RouterUpdateSpec) (*api.Task, error) {
	if err := api.ValidateName("name", spec.Name); err != nil {
		return nil, err
	}
	r, err := s.GetRouter(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.submit(ctx, OpUpdateRouter, api.Entity{ID: id, Kind: api.KindRouter}, r.ProjectID, func(tx *store.Txn, t *api.Task) error {
		cur, err := getRouter(ctx, tx, id)
		if err != nil {
			return err
		}
		if cur.Name == spec.Name {
			return nil
		}
		if taken, err := tx.Exists(ctx, routerNameKey(cur.ProjectID, spec.Name)); err != nil {
			return err
		} else if taken {
			return nameTaken("router", spec.Name)
		}
		tx.Delete(routerNameKey(cur.ProjectID, cur.Name))
		cur.Name = spec.Name
		if err := tx.Put(routerNameKey(cur.ProjectID, cur.Name), id); err != nil {
			return err
		}
		return tx.Put(routerKey(id), cur)
	})
}

// DeleteRouter deletes a router without subnets (else ContainerNotEmpty).
func (s *Service) DeleteRouter(ctx context.Context, id string) (*api.Task, error) {
	r, err := s.GetRouter(ctx, id)
	if err != nil {
		return nil, err
	}
	return s.submit(ctx, OpDeleteRouter, api.Entity{ID: id, Kind: api.KindRouter}, r.ProjectID, func(tx *store.Txn, t *api.Task) error {
		cur, err := getRouter(ctx, tx, id)
		if err != nil {
			return err
		}
		n, err := s.routerSubnets(ctx, tx, id)
		if err != nil {
			return err
		}
		if len(n) > 0 {
			return api.Errorf(api.CodeContainerNotEmpty, "router %s has %d subnet(s); delete them first", cur.Name, len(n))
		}
		tx.Delete(routerKey(id))
		tx.Delete(routerNameKey(cur.ProjectID, cur.Name))
		tx.Delete(projectRouterKey(cur.ProjectID, id))
		return nil
	})
}

// routerSubnets lists a router's subnets, reading each in tx. The index
// is read outside tx: every subnet create and delete rewrites its
// router's record (touchRouter), on whose revision the caller's commit
// depends (it read the router in tx), so a subnet created or deleted
// meanwhile makes that commit conflict, and its retry lists again.
func (s *Service) routerSubnets(ctx context.Context, tx *store.Txn, routerID string) ([]*Record, error) {
	kvs, _, err := s.st.Page(ctx, store.Prefix("router-subnets", routerID), "", 10000)
	if err != nil {
		return nil, err
	}
	out := make([]*Record, 0, len(kvs))
	for _, kv := range kvs {
		var id string
		if err := store.Decode(kv.Value, &id); err != nil {
			return nil, err
		}
		var rec Record
		if ok, err := tx.Get(ctx, subnetKey(id), &rec); err != nil {
			return nil, err
		} else if ok {
			out = append(out, &rec)
		}
	}
	return out, nil
}

// touchRouter rewrites a router's record in tx (a new revision): see
// routerSubnets.
func touchRouter(tx *store.Txn, r *api.Router) error { return tx.Put(routerKey(r.ID), r) }

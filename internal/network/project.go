package network

import (
	"context"
	"errors"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// MaxProjectNetworks bounds the routers and subnets that a project delete
// deletes with the project, in its one transaction (about four writes
// each, under etcd's default of 128 operations): a project with more is
// refused ContainerNotEmpty.
const MaxProjectNetworks = 24

// CheckProjectNetworks refuses (ContainerNotEmpty) to let a project go
// while one of its subnets has ports (naming it in data.subnet), or while
// it has more than MaxProjectNetworks routers and subnets. Tenancy calls
// it in the transaction that submits the project's delete.
func (s *Service) CheckProjectNetworks(ctx context.Context, tx *store.Txn, projectID string) error {
	_, err := s.projectNetworks(ctx, tx, projectID)
	return err
}

// RemoveProjectNetworks deletes in tx every router and subnet of a
// project being deleted (or whose create failed), with all their keys
// (their VNIs freed) and its default subnet key, refused as
// CheckProjectNetworks refuses. A project without any is fine.
func (s *Service) RemoveProjectNetworks(ctx context.Context, tx *store.Txn, projectID string) error {
	pn, err := s.projectNetworks(ctx, tx, projectID)
	if err != nil {
		return err
	}
	for _, rec := range pn.subnets {
		if err := deleteSubnet(ctx, tx, rec); err != nil {
			return err
		}
	}
	for _, r := range pn.routers {
		deleteRouter(tx, r)
	}
	for _, k := range pn.stray {
		tx.Delete(k)
	}
	tx.Delete(defaultKey(projectID))
	return nil
}

// projectNetworks reads a project's routers and their subnets in tx,
// refused when a subnet has ports or there are too many. The indexes are
// listed outside tx: a router create rewrites its project's record and a
// subnet create its router's (both read in tx by the caller), so one
// committed since the list makes the caller's commit conflict, and its
// retry lists again; a port's allocation rewrites its subnet's record.
func (s *Service) projectNetworks(ctx context.Context, tx *store.Txn, projectID string) (*projectNet, error) {
	pn := &projectNet{}
	if !validID(projectID) {
		return pn, nil
	}
	tooMany := func(n int) error {
		return api.Errorf(api.CodeContainerNotEmpty, "project %s has more than %d routers and subnets (%d listed); delete some first",
			projectID, MaxProjectNetworks, n)
	}
	kvs, _, err := s.st.Page(ctx, store.Prefix("project-routers", projectID), "", MaxProjectNetworks+1)
	if err != nil {
		return nil, err
	}
	if len(kvs) > MaxProjectNetworks {
		return nil, tooMany(len(kvs))
	}
	for _, kv := range kvs {
		var id string
		if err := store.Decode(kv.Value, &id); err != nil {
			return nil, err
		}
		r, err := getRouter(ctx, tx, id)
		if codeOf(err) == api.CodeRouterNotFound {
			pn.stray = append(pn.stray, projectRouterKey(projectID, id))
			continue
		} else if err != nil {
			return nil, err
		}
		pn.routers = append(pn.routers, r)
		sk, _, err := s.st.Page(ctx, store.Prefix("router-subnets", id), "", MaxProjectNetworks+1)
		if err != nil {
			return nil, err
		}
		if n := len(pn.routers) + len(pn.subnets) + len(sk); n > MaxProjectNetworks {
			return nil, tooMany(n)
		}
		for _, kv := range sk {
			var sid string
			if err := store.Decode(kv.Value, &sid); err != nil {
				return nil, err
			}
			var rec Record
			if err := tx.MustGet(ctx, subnetKey(sid), &rec); errors.Is(err, store.ErrNotFound) {
				pn.stray = append(pn.stray, routerSubnetKey(id, sid))
				continue
			} else if err != nil {
				return nil, err
			}
			if rec.Ports > 0 {
				e := api.Errorf(api.CodeContainerNotEmpty, "subnet %s of router %s has %d port(s); delete their VMs first",
					rec.Name, r.Name, rec.Ports)
				e.Data = map[string]string{"subnet": rec.ID}
				return nil, e
			}
			pn.subnets = append(pn.subnets, &rec)
		}
	}
	return pn, nil
}

// projectNet is a project's routers and subnets as read, and index
// entries naming records that are gone.
type projectNet struct {
	routers []*api.Router
	subnets []*Record
	stray   []string
}

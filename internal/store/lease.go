package store

import (
	"context"
	"errors"
	"fmt"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
)

// Lease is an etcd lease: keys put with it vanish when it is not kept
// alive for its TTL (liveness records, e.g. a host's heartbeat).
type Lease int64

// PutWithLease grants a lease of ttlSeconds and puts v at key under it.
func (s *Store) PutWithLease(ctx context.Context, key string, v any, ttlSeconds int64) (Lease, error) {
	b, err := Encode(v)
	if err != nil {
		return 0, fmt.Errorf("encode %s: %w", key, err)
	}
	g, err := s.c.Grant(ctx, ttlSeconds)
	if err != nil {
		return 0, fmt.Errorf("grant lease: %w", err)
	}
	if _, err := s.c.Put(ctx, key, string(b), clientv3.WithLease(g.ID)); err != nil {
		return 0, fmt.Errorf("put %s: %w", key, err)
	}
	return Lease(g.ID), nil
}

// KeepAlive renews a lease once. A lease that has expired is ErrNotFound.
func (s *Store) KeepAlive(ctx context.Context, l Lease) error {
	resp, err := s.c.KeepAliveOnce(ctx, clientv3.LeaseID(l))
	if errors.Is(err, rpctypes.ErrLeaseNotFound) || (err == nil && resp.TTL <= 0) {
		return ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("keep lease alive: %w", err)
	}
	return nil
}

// Revoke ends a lease now, deleting its keys.
func (s *Store) Revoke(ctx context.Context, l Lease) error {
	if _, err := s.c.Revoke(ctx, clientv3.LeaseID(l)); err != nil && !errors.Is(err, rpctypes.ErrLeaseNotFound) {
		return fmt.Errorf("revoke lease: %w", err)
	}
	return nil
}

// Rev returns the store's current revision.
func (s *Store) Rev(ctx context.Context) (int64, error) {
	resp, err := s.c.Get(ctx, "/photon/v1/\x00")
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// ListRev reads every object under prefix and the revision it read at.
func ListRev[T any](ctx context.Context, s *Store, prefix string) ([]T, int64, error) {
	resp, err := s.c.Get(ctx, prefix, clientv3.WithPrefix())
	if err != nil {
		return nil, 0, fmt.Errorf("list %s: %w", prefix, err)
	}
	out := make([]T, 0, len(resp.Kvs))
	for _, kv := range resp.Kvs {
		var v T
		if err := Decode(kv.Value, &v); err != nil {
			return nil, 0, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
		out = append(out, v)
	}
	return out, resp.Header.Revision, nil
}

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
		return 0, writeErr("put "+key, err)
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
	resp, err := s.get1(ctx, "/photon/v1/\x00")
	if err != nil {
		return 0, err
	}
	return resp.Header.Revision, nil
}

// ListRev reads every object under prefix and the revision it read at.
func ListRev[T any](ctx context.Context, s *Store, prefix string) ([]T, int64, error) {
	vals, rev, err := s.Lists(ctx, prefix)
	if err != nil {
		return nil, 0, err
	}
	out, err := DecodeAll[T](vals[0])
	return out, rev, err
}

// Lists reads every key under each of prefixes in one round trip, at one
// revision: their values, per prefix in key order, and that revision.
func (s *Store) Lists(ctx context.Context, prefixes ...string) ([][]KV, int64, error) {
	ops := make([]clientv3.Op, len(prefixes))
	for i, p := range prefixes {
		ops[i] = clientv3.OpGet(p, s.readOpts(clientv3.WithPrefix())...)
	}
	resp, err := s.c.Txn(ctx).Then(ops...).Commit()
	if err != nil {
		return nil, 0, fmt.Errorf("list %v: %w", prefixes, err)
	}
	out := make([][]KV, len(prefixes))
	for i, r := range resp.Responses {
		kvs := r.GetResponseRange().GetKvs()
		out[i] = make([]KV, len(kvs))
		for j, kv := range kvs {
			out[i][j] = KV{Key: string(kv.Key), Value: kv.Value, Rev: kv.ModRevision}
		}
	}
	return out, resp.Header.Revision, nil
}

// DecodeAll decodes each of kvs' values into a new T.
func DecodeAll[T any](kvs []KV) ([]T, error) {
	out := make([]T, len(kvs))
	for i, kv := range kvs {
		if err := Decode(kv.Value, &out[i]); err != nil {
			return nil, fmt.Errorf("decode %s: %w", kv.Key, err)
		}
	}
	return out, nil
}

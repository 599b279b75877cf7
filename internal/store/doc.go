// Package store owns Photon's durable state in etcd: it starts an embedded
// single-member etcd or connects to an external cluster, and gives typed
// get/list/watch and revision-checked transactions over JSON objects kept
// under /photon/v1/<kind>/<id>. There are no locks: every write that depends
// on a read is conditioned on the read's mod_revision and retried on conflict.
// Every request to etcd is bounded, and the store knows (and logs, once)
// when etcd does not answer or is out of space: callers get ErrUnavailable,
// ErrNoSpace or ErrTooLarge (health.go).
package store

package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Root is the prefix of every key Photon writes.
const Root = "/photon/v1/"

// Key builds "/photon/v1/<part>/<part>...", in one allocation (keys are
// built on every request's path: Root + strings.Join was two).
func Key(parts ...string) string {
	n := len(Root) + max(len(parts)-1, 0)
	for _, p := range parts {
		n += len(p)
	}
	var b strings.Builder
	b.Grow(n)
	b.WriteString(Root)
	for i, p := range parts {
		if i > 0 {
			b.WriteByte('/')
		}
		b.WriteString(p)
	}
	return b.String()
}

// Prefix builds a key prefix ending in '/'.
func Prefix(parts ...string) string {
	return Key(parts...) + "/"
}

var (
	// ErrNotFound: the key does not exist.
	ErrNotFound = errors.New("not found")
	// ErrConflict: a transaction's reads were stale; retry.
	ErrConflict = errors.New("conflicting concurrent update")
)

// writeErr wraps an error of a write to etcd: one too large for etcd is
// ErrTooLarge as well (callers map it to a client error, not a 500).
func writeErr(what string, err error) error {
	if tooLarge(err) && !errors.Is(err, ErrTooLarge) {
		return fmt.Errorf("%s: %w: %w", what, ErrTooLarge, err)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// tooLarge reports whether etcd (or the client, before sending) refused a
// request for its size: more bytes than etcd's --max-request-bytes (1.5
// MiB by default) or than the client sends, or more operations than etcd
// takes in one transaction. The same request will never fit.
func tooLarge(err error) bool {
	// etcd answers a full database and an overload with ResourceExhausted too.
	if errors.Is(err, rpctypes.ErrNoSpace) || errors.Is(err, rpctypes.ErrGRPCNoSpace) ||
		errors.Is(err, rpctypes.ErrTooManyRequests) || errors.Is(err, rpctypes.ErrGRPCRequestTooManyRequests) {
		return false
	}
	return errors.Is(err, rpctypes.ErrRequestTooLarge) || errors.Is(err, rpctypes.ErrGRPCRequestTooLarge) ||
		errors.Is(err, rpctypes.ErrTooManyOps) || errors.Is(err, rpctypes.ErrGRPCTooManyOps) ||
		status.Code(err) == codes.ResourceExhausted
}

// Store is Photon's view of etcd.
type Store struct {
	c *clientv3.Client
	// MaxAttempts bounds Update's retries on conflict.
	MaxAttempts int
	// local: the client is the only member of its cluster, in this
	// process (see SingleMember).
	local bool

	obsMu     sync.Mutex
	observers []func(keys []string) // see onCommit

	recent *recent // see KeepRecent; nil: none kept

	// answered is the highest revision of an etcd answer this Store has
	// had (see Visible).
	answered atomic.Int64

	// health bounds requests and knows whether etcd answers (health.go);
	// rawKV is the client's KV without the bounds, for its probes.
	health *health
	rawKV  clientv3.KV
}

// saw records an answer of etcd's at revision rev.
func (s *Store) saw(rev int64) { raiseRev(&s.answered, rev) }

// raiseRev sets the revision a holds to rev if rev is later.
func raiseRev(a *atomic.Int64, rev int64) {
	for cur := a.Load(); rev > cur; cur = a.Load() {
		if a.CompareAndSwap(cur, rev) {
			return
		}
	}
}

// Visible reports whether a plain read now sees every change up to
// revision rev: a change a watch delivered may not be yet (etcd notifies
// watchers before a write is visible to reads) until an answer at rev or
// later has come back (etcd answers once the write is visible). Against a
// cluster (no SingleMember) reads are linearizable: they see every change
// a watch has delivered.
func (s *Store) Visible(rev int64) bool { return !s.local || s.answered.Load() >= rev }

// Connect opens a client to the given etcd endpoints and checks it answers.
func Connect(ctx context.Context, endpoints []string) (*Store, error) {
	c, err := clientv3.New(clientv3.Config{
		Endpoints:   endpoints,
		DialTimeout: 5 * time.Second,
		// A connection etcd no longer answers on (a partition, a
		// stopped process) is found dead in seconds, not at TCP's
		// retransmission timeout; etcd allows pings every 5 s.
		DialKeepAliveTime:    10 * time.Second,
		DialKeepAliveTimeout: 5 * time.Second,
		// Reconnect soon after etcd is back: gRPC's default backoff
		// grows to 2 minutes (35-40 s to recover after a 75 s outage).
		DialOptions: []grpc.DialOption{grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: time.Second},
			MinConnectTimeout: 2 * time.Second,
		})},
		Logger: nopLogger(),
	})
	if err != nil {
		return nil, fmt.Errorf("etcd client %v: %w", endpoints, err)
	}
	return ConnectClient(ctx, c, fmt.Sprint(endpoints))
}

// ConnectClient makes a Store of an etcd client (e.g. Embedded.Client),
// once it answers; the Store closes it.
func ConnectClient(ctx context.Context, c *clientv3.Client, name string) (*Store, error) {
	cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if _, err := c.Get(cctx, "/photon/ping"); err != nil {
		c.Close()
		return nil, fmt.Errorf("etcd %s not answering: %w", name, err)
	}
	s := &Store{c: c, MaxAttempts: 1000, health: newHealth(), rawKV: c.KV}
	// Every request through the client is bounded (see Limits), those of
	// the packages that use Client too.
	c.KV = boundedKV{KV: c.KV, s: s}
	c.Lease = boundedLease{Lease: c.Lease, s: s}
	return s, nil
}

// SingleMember tells the store that its client is the only member of a
// one-member cluster (Embedded.Client): its plain reads (Get, List, Keys,
// Page, Count, Rev, Cache) are then served from the member's applied
// state, without the linearizable read's round through raft. They lose
// nothing: the member applies every write before it acknowledges it, so
// a read sees every write acknowledged before it began. (Against a
// cluster a member may lag the leader: reads stay linearizable there.)
func (s *Store) SingleMember() { s.local = true }

// get1 is a plain read (see SingleMember).
func (s *Store) get1(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	return s.getOnce(ctx, key, s.readOpts(opts...)...)
}

// getOnce is one etcd read, noting the revision it was answered at.
func (s *Store) getOnce(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	resp, err := s.c.Get(ctx, key, opts...)
	if err == nil {
		s.saw(resp.Header.Revision)
	}
	return resp, err
}

// readOpts are the options of a plain read (see SingleMember).
func (s *Store) readOpts(opts ...clientv3.OpOption) []clientv3.OpOption {
	if s.local {
		opts = append(opts, clientv3.WithSerializable())
	}
	return opts
}

// Client is the underlying etcd client (for leases and status).
func (s *Store) Client() *clientv3.Client { return s.c }

// Close closes the client.
func (s *Store) Close() error { return s.c.Close() }

// Get reads key into v and returns its mod revision, or ErrNotFound.
func (s *Store) Get(ctx context.Context, key string, v any) (int64, error) {
	mod, _, err := s.get(ctx, key, v)
	return mod, err
}

// GetAt reads key into v and returns the revision the read was at (the
// key did not change between its mod revision and that one): a Hub
// waiter waits for changes after it.
func (s *Store) GetAt(ctx context.Context, key string, v any) (int64, error) {
	_, at, err := s.get(ctx, key, v)
	return at, err
}

// GetAtLinearizable is GetAt with a linearizable read: it sees every
// change a watch delivered before it began, which a plain read on a
// single member may not yet (see Visible).
func (s *Store) GetAtLinearizable(ctx context.Context, key string, v any) (int64, error) {
	resp, err := s.getOnce(ctx, key)
	_, at, err := decodeGot(key, v, resp, err)
	return at, err
}

func (s *Store) get(ctx context.Context, key string, v any) (mod, at int64, err error) {
	resp, err := s.get1(ctx, key)
	return decodeGot(key, v, resp, err)
}

// decodeGot decodes a read of key into v: its mod revision, the
// revision the read was at.
func decodeGot(key string, v any, resp *clientv3.GetResponse, err error) (mod, at int64, _ error) {
	if err != nil {
		return 0, 0, fmt.Errorf("get %s: %w", key, err)
	}
	if len(resp.Kvs) == 0 {
		return 0, 0, ErrNotFound
	}
	if err := Decode(resp.Kvs[0].Value, v); err != nil {
		return 0, 0, fmt.Errorf("decode %s: %w", key, err)
	}
	return resp.Kvs[0].ModRevision, resp.Header.Revision, nil
}

// Count returns the number of keys under prefix.
func (s *Store) Count(ctx context.Context, prefix string) (int, error) {
	resp, err := s.get1(ctx, prefix, clientv3.WithPrefix(), clientv3.WithCountOnly())
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", prefix, err)
	}
	return int(resp.Count), nil
}

// KV is a raw key and value.
type KV struct {
	Key   string
	Value []byte
	Rev   int64
}

// Page reads up to limit keys under prefix, starting after the key encoded in
// pageToken (empty for the first page). It returns the keys and the token of
// the next page, empty when there is none.
func (s *Store) Page(ctx context.Context, prefix, pageToken string, limit int) ([]KV, string, error) {
	start := prefix
	if pageToken != "" {
		b, err := base64.RawURLEncoding.DecodeString(pageToken)
		if err != nil || !strings.HasPrefix(string(b), prefix) {
			return nil, "", ErrBadPageToken
		}
		start = string(b) + "\x00"
	}
	resp, err := s.get1(ctx, start, clientv3.WithRange(clientv3.GetPrefixRangeEnd(prefix)), clientv3.WithLimit(int64(limit)))
	if err != nil {
		return nil, "", fmt.Errorf("list %s: %w", prefix, err)
	}
	kvs := make([]KV, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		kvs[i] = KV{Key: string(kv.Key), Value: kv.Value, Rev: kv.ModRevision}
	}
	next := ""
	if resp.More && len(kvs) > 0 {
		next = base64.RawURLEncoding.EncodeToString([]byte(kvs[len(kvs)-1].Key))
	}
	return kvs, next, nil
}

// ErrBadPageToken: a page token that this store did not issue.
var ErrBadPageToken = errors.New("bad page token")

// List reads every object under prefix, decoding each into a new T.
func List[T any](ctx context.Context, s *Store, prefix string) ([]T, error) {
	out, _, err := ListRev[T](ctx, s, prefix)
	return out, err
}

// Keys lists the keys under prefix (without their values).
func (s *Store) Keys(ctx context.Context, prefix string) ([]string, error) {
	resp, err := s.get1(ctx, prefix, clientv3.WithPrefix(), clientv3.WithKeysOnly())
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", prefix, err)
	}
	out := make([]string, len(resp.Kvs))
	for i, kv := range resp.Kvs {
		out[i] = string(kv.Key)
	}
	return out, nil
}

// Update runs fn in a transaction and commits it; when a read turned stale
// (or fn returns ErrConflict) it runs fn again with fresh reads, up to
// MaxAttempts times. fn must have no
// effects other than on tx. It returns the revision of the commit.
func (s *Store) Update(ctx context.Context, fn func(tx *Txn) error) (int64, error) {
	return s.update(ctx, fn, func(ctx context.Context, tx *Txn) (int64, error) { return tx.Commit(ctx) })
}

// update is Update, committing with commit.
func (s *Store) update(ctx context.Context, fn func(tx *Txn) error, commit func(context.Context, *Txn) (int64, error)) (int64, error) {
	backoff := time.Millisecond
	for attempt := 0; ; attempt++ {
		tx := s.Txn()
		var rev int64
		err := fn(tx)
		if err == nil {
			rev, err = commit(ctx, tx)
		}
		// fn returns ErrConflict when it finds that what it read outside
		// tx (e.g. a cached view) is stale: it runs again too.
		if !errors.Is(err, ErrConflict) {
			return rev, err
		}
		if attempt+1 >= s.MaxAttempts {
			return 0, fmt.Errorf("after %d attempts: %w", attempt+1, err)
		}
		// Jittered backoff so that racing writers spread out.
		d := backoff/2 + rand.N(backoff)
		if backoff < 50*time.Millisecond {
			backoff *= 2
		}
		select {
		case <-time.After(d):
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}

// Txn collects reads (as conditions on their mod revisions) and writes, and
// commits them atomically: the commit fails with ErrConflict if any key read
// changed since it was read.
type Txn struct {
	s      *Store
	reads  map[string]int64 // key -> mod revision seen (0: absent)
	cache  map[string][]byte
	writes map[string][]byte // nil value: delete
	order  []string
	undo   []undo // how to take back each write, for RollbackTo
	seeded map[string]seed
	base   *Snapshot // shared seeds, after seeded
	// byValue: reads of values a transaction still committing writes
	// (see Pending): conditioned on the value, not a revision.
	byValue map[string]bool
	// scratch: run only to learn what it reads (ScratchTxn).
	scratch bool
	// plain: its reads are plain reads (PlainTxn).
	plain bool
	// kept: values written with PutKept or PutHanded, with the bytes
	// they were written as (see Kept, Take).
	kept map[string]keptValue
	// size is about what the commit carries (see Bytes), kept as t
	// reads and writes.
	size int
}

// MaxTxnBytes bounds what one commit carries (see Txn.Bytes), with room
// to spare below etcd's bound on a request (--max-request-bytes: 1.5 MiB
// by default, the embedded member's too). Commits merged from many (a
// batch of creates, hosts' reports) stay under it: over etcd's bound, a
// merged commit is refused whole ("request is too large"), and each of
// its transactions with it.
const MaxTxnBytes = 1 << 20

type keptValue struct {
	b      []byte
	v      any
	handed bool // PutHanded: for one Take, not for Kept
}

type seed struct {
	val []byte
	rev int64
	// pending: val is written by a commit not yet settled, at a revision
	// not yet known; a read of it is conditioned on the value.
	pending bool
}

// Seed lets t use what o read (values and their revisions) instead of
// reading again: a key t then reads becomes a condition on the revision o
// saw. Keys t is already seeded with (SeedKV, SeedSnapshot) keep their seed. Group commit prefetches this way, running requests on scratch
// transactions concurrently.
func (t *Txn) Seed(o *Txn) {
	if t.seeded == nil {
		t.seeded = map[string]seed{}
	}
	for k, v := range o.cache {
		if _, ok := t.seed(k); !ok {
			t.seeded[k] = seed{val: v, rev: o.reads[k], pending: o.byValue[k]}
		}
	}
}

// SeedKV lets t use val, read at revision rev (0 and nil: absent), for key
// instead of reading it: if t then reads key, the commit is conditioned on
// rev. A caller that read many keys in one round trip (GetMany) seeds
// only those its writes depend on.
func (t *Txn) SeedKV(key string, val []byte, rev int64) {
	if t.seeded == nil {
		t.seeded = map[string]seed{}
	}
	t.seeded[key] = seed{val: val, rev: rev}
}

// Snapshot is a read-only set of values at known revisions that many
// transactions can share as seeds (see Committed and SeedSnapshot).
type Snapshot struct{ m map[string]seed }

// Committed is what o read and wrote, o having committed at revision rev:
// o's writes are at rev (its deletes absent), its other reads were still
// current at rev. The next transactions on the same keys (group commit's
// next batch: the project's quota, the flavors, the hosts' usage) then
// need not read them again; a key that changed since only makes their
// commit conflict.
func Committed(o *Txn, rev int64) *Snapshot {
	m := make(map[string]seed, len(o.cache)+len(o.writes))
	for k, v := range o.cache {
		if _, w := o.writes[k]; !w && !o.byValue[k] { // (the revision of a value read by value is unknown)
			m[k] = seed{val: v, rev: o.reads[k]}
		}
	}
	for k, v := range o.writes {
		if v == nil {
			m[k] = seed{}
		} else {
			m[k] = seed{val: v, rev: rev}
		}
	}
	return &Snapshot{m: m}
}

// Pending is what o read and writes while its commit is under way, over
// under (what the transactions before o left, or nil): a transaction
// seeded with it can run and commit before o's commit returns. Its reads
// of o's writes are conditioned on their values (o's commit revision is
// not known yet): if o does not commit, or anything changes them, it
// conflicts. Group commit overlaps the commits of consecutive batches
// this way.
func Pending(o *Txn, under *Snapshot) *Snapshot {
	m := map[string]seed{}
	if under != nil {
		m = make(map[string]seed, len(under.m)+len(o.writes))
		for k, v := range under.m {
			m[k] = v
		}
	}
	for k, v := range o.cache {
		if _, w := o.writes[k]; !w {
			m[k] = seed{val: v, rev: o.reads[k], pending: o.byValue[k]}
		}
	}
	for k, v := range o.writes {
		m[k] = seed{val: v, pending: true}
	}
	return &Snapshot{m: m}
}

// SeedSnapshot lets t use sn's values (after its own seeds) instead of
// reading them; a key t then reads becomes a condition on sn's revision.
func (t *Txn) SeedSnapshot(sn *Snapshot) { t.base = sn }

type undo struct {
	key     string
	val     []byte
	existed bool // the key was written before (else it is the last in order)
}

// Txn starts an empty transaction.
func (s *Store) Txn() *Txn {
	return &Txn{s: s, reads: map[string]int64{}, cache: map[string][]byte{}, writes: map[string][]byte{}}
}

// ScratchTxn starts a transaction that is run only to learn what it reads,
// to seed another with (Seed): group commit's prefetch. Its writes are
// dropped, not even encoded (a read of a key it wrote reads the stored
// value), and it cannot commit.
func (s *Store) ScratchTxn() *Txn {
	t := s.Txn()
	t.scratch = true
	return t
}

// PlainTxn starts a transaction whose reads are plain reads, for code
// shared with transactions that only reads (an API's GET): never from
// what the store keeps of its own commits (KeepRecent), which may not
// have caught up yet with a change a watch already showed a client (a
// task done, read after it with a VM the same commit wrote).
func (s *Store) PlainTxn() *Txn {
	t := s.Txn()
	t.plain = true
	return t
}

// Get reads key into v. It returns false if the key is absent. The key's
// revision becomes a condition of the commit. Reads see the txn's own writes.
func (t *Txn) Get(ctx context.Context, key string, v any) (bool, error) {
	val, ok := t.writes[key]
	if !ok {
		var err error
		if val, err = t.read(ctx, key); err != nil {
			return false, err
		}
	}
	if val == nil {
		return false, nil
	}
	if err := Decode(val, v); err != nil {
		return false, fmt.Errorf("decode %s: %w", key, err)
	}
	return true, nil
}

// MustGet is Get that returns ErrNotFound for an absent key.
func (t *Txn) MustGet(ctx context.Context, key string, v any) error {
	ok, err := t.Get(ctx, key, v)
	if err == nil && !ok {
		err = ErrNotFound
	}
	return err
}

func (t *Txn) read(ctx context.Context, key string) ([]byte, error) {
	if val, ok := t.cache[key]; ok {
		return val, nil
	}
	if s, ok := t.seed(key); ok {
		t.reads[key], t.cache[key] = s.rev, s.val
		t.size += len(key)
		if s.pending {
			if t.byValue == nil {
				t.byValue = map[string]bool{}
			}
			t.byValue[key] = true
			t.size += len(s.val) // conditioned on the value
		}
		return s.val, nil
	}
	if kv, ok := t.recent(key); ok {
		t.reads[key], t.cache[key] = kv.rev, kv.val
		t.size += len(key)
		return kv.val, nil
	}
	// Serializable: no round through raft. The commit is conditioned on
	// the revision read, so a stale read only makes it retry.
	resp, err := t.s.c.Get(ctx, key, clientv3.WithSerializable())
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	var val []byte
	var rev int64
	if len(resp.Kvs) > 0 {
		val, rev = resp.Kvs[0].Value, resp.Kvs[0].ModRevision
	}
	t.reads[key] = rev
	t.cache[key] = val
	t.size += len(key)
	return val, nil
}

// maxGetMany bounds the reads GetMany sends in one etcd transaction
// (an external etcd allows 128 operations by default).
const maxGetMany = 128

// GetMany reads keys in as few round trips as etcd allows (serializable,
// like a Txn's reads) and returns, in the order of keys, each value and
// its mod revision (nil and 0 for an absent key). The reads are no
// condition of any commit; seed a Txn (SeedKV) with those that must be.
func (s *Store) GetMany(ctx context.Context, keys []string) ([]KV, error) {
	return s.getMany(ctx, keys, clientv3.WithSerializable())
}

// GetManyLinearizable is GetMany with linearizable reads: they see every
// write whose watch event was delivered before they began. A serializable
// read may not, even on a single member: etcd notifies watchers of a
// write before the write is visible to reads (a host that learns of a VM
// from a watch-fed answer can report it before a serializable read of the
// VM's record finds it).
func (s *Store) GetManyLinearizable(ctx context.Context, keys []string) ([]KV, error) {
	return s.getMany(ctx, keys)
}

func (s *Store) getMany(ctx context.Context, keys []string, opts ...clientv3.OpOption) ([]KV, error) {
	out := make([]KV, len(keys))
	for lo := 0; lo < len(keys); lo += maxGetMany {
		hi := min(lo+maxGetMany, len(keys))
		ops := make([]clientv3.Op, 0, hi-lo)
		for _, k := range keys[lo:hi] {
			ops = append(ops, clientv3.OpGet(k, opts...))
		}
		resp, err := s.c.Txn(ctx).Then(ops...).Commit()
		if err != nil {
			return nil, fmt.Errorf("get %d keys: %w", hi-lo, err)
		}
		s.saw(resp.Header.Revision)
		for i, r := range resp.Responses {
			out[lo+i].Key = keys[lo+i]
			if kvs := r.GetResponseRange().GetKvs(); len(kvs) > 0 {
				out[lo+i].Value, out[lo+i].Rev = kvs[0].Value, kvs[0].ModRevision
			}
		}
	}
	return out, nil
}

// Knows reports whether t has read, written or been seeded with key, or
// the Store keeps it (KeepRecent): a read of it needs no round trip.
func (t *Txn) Knows(key string) bool { return t.knows(key) }

// knows is Knows.
func (t *Txn) knows(key string) bool {
	if _, ok := t.writes[key]; ok {
		return true
	}
	if _, ok := t.cache[key]; ok {
		return true
	}
	if _, ok := t.seed(key); ok {
		return true
	}
	_, ok := t.recent(key)
	return ok
}

// recent is key as the store's own commits last wrote it (KeepRecent),
// unless t reads plainly.
func (t *Txn) recent(key string) (recentKV, bool) {
	if t.plain {
		return recentKV{}, false
	}
	return t.s.recent.get(key)
}

func (t *Txn) seed(key string) (seed, bool) {
	if s, ok := t.seeded[key]; ok {
		return s, true
	}
	if t.base != nil {
		s, ok := t.base.m[key]
		return s, ok
	}
	return seed{}, false
}

// Prefetch reads in one round trip those of keys that t has neither read,
// written nor been seeded with, so that reading them later costs no round
// trip each. They become conditions of the commit only once t reads them.
func (t *Txn) Prefetch(ctx context.Context, keys ...string) error {
	var need []string
	for _, k := range keys {
		if !t.knows(k) {
			need = append(need, k)
		}
	}
	if len(need) < 2 {
		return nil // one key costs a round trip either way
	}
	kvs, err := t.s.GetMany(ctx, need)
	if err != nil {
		return err
	}
	for _, kv := range kvs {
		t.SeedKV(kv.Key, kv.Value, kv.Rev)
	}
	return nil
}

// AssumeAbsent tells t that key is absent without reading it: a read
// of it in t finds nothing and is no condition of the commit. Only for a
// key no one else can have written: one under an id the caller has just
// made (a new VM's lock), whose absence a condition would check for
// nothing, at a cost in etcd like a write's.
func (t *Txn) AssumeAbsent(key string) {
	if _, ok := t.writes[key]; ok {
		return
	}
	t.cache[key] = nil
}

// Exists reports whether key exists, conditioning the commit on it.
func (t *Txn) Exists(ctx context.Context, key string) (bool, error) {
	if val, ok := t.writes[key]; ok {
		return val != nil, nil
	}
	val, err := t.read(ctx, key)
	return val != nil, err
}

// Put writes v (as JSON) at key on commit.
func (t *Txn) Put(key string, v any) error {
	if t.scratch {
		return nil
	}
	b, err := Encode(v)
	if err != nil {
		return fmt.Errorf("encode %s: %w", key, err)
	}
	t.PutRaw(key, b)
	return nil
}

// PutKept is Put that also keeps v: while key holds what this Put wrote
// (no write or rollback since), Kept returns v, so that the next request
// of a batch reading the same record (a flavor's or a project's, which
// every create updates) need not decode it again. Neither the caller nor
// anyone Kept returns v to may change v or what it refers to: it is
// shared. (A scratch transaction keeps nothing.)
func (t *Txn) PutKept(key string, v any) error {
	return t.putKept(key, v, false)
}

// PutHanded is Put that hands v over to t: while key holds what this Put
// wrote, one Take of key returns v, for the taker to change (a step that
// reads and writes again the record a report just wrote need not decode
// it). The caller must not use v after. (A scratch transaction keeps
// nothing.)
func (t *Txn) PutHanded(key string, v any) error {
	return t.putKept(key, v, true)
}

func (t *Txn) putKept(key string, v any, handed bool) error {
	if err := t.Put(key, v); err != nil || t.scratch {
		return err
	}
	if t.kept == nil {
		t.kept = map[string]keptValue{}
	}
	t.kept[key] = keptValue{t.writes[key], v, handed}
	return nil
}

// MustGetKept is MustGet that takes, when t keeps one (PutKept), the
// value PutKept wrote at key instead of decoding it: *v is then a copy
// of it whose maps and slices are shared with t, read only.
func MustGetKept[T any](ctx context.Context, t *Txn, key string, v *T) error {
	if k, ok := t.Kept(key); ok {
		if kv, ok := k.(*T); ok {
			*v = *kv
			return nil
		}
	}
	return t.MustGet(ctx, key, v)
}

// Kept returns the value PutKept wrote at key, if key still holds it in
// t: a read of key without decoding it. Read only: see PutKept.
func (t *Txn) Kept(key string) (any, bool) {
	k, ok := t.keptAt(key)
	if !ok || k.handed {
		return nil, false
	}
	return k.v, true
}

// Take returns the value PutHanded wrote at key, if key still holds it
// in t, and forgets it: the caller owns it (a second Take finds nothing).
// It is v as given to PutHanded: what decoding the value written gives,
// but for what JSON does not keep (an empty collection written with
// omitempty is read back nil).
func (t *Txn) Take(key string) (any, bool) {
	k, ok := t.keptAt(key)
	if !ok || !k.handed {
		return nil, false
	}
	delete(t.kept, key)
	return k.v, true
}

func (t *Txn) keptAt(key string) (keptValue, bool) {
	k, ok := t.kept[key]
	if !ok {
		return k, false
	}
	cur, ok := t.writes[key]
	if !ok || len(cur) != len(k.b) || unsafe.SliceData(cur) != unsafe.SliceData(k.b) {
		return k, false // written again, or rolled back
	}
	return k, true
}

// PutRaw writes b, already encoded, at key on commit.
func (t *Txn) PutRaw(key string, b []byte) {
	if t.scratch {
		return
	}
	t.note(key, b)
	t.writes[key] = b
}

// Delete removes key on commit.
func (t *Txn) Delete(key string) {
	if t.scratch {
		return
	}
	t.note(key, nil)
	t.writes[key] = nil
}

// note records that key is to hold val (nil: deleted), for RollbackTo.
func (t *Txn) note(key string, val []byte) {
	old, ok := t.writes[key]
	t.undo = append(t.undo, undo{key: key, val: old, existed: ok})
	if !ok {
		t.order = append(t.order, key)
		t.size += len(key)
	}
	t.size += len(val) - len(old)
}

// Size is the number of reads (conditions) and writes the commit will send.
func (t *Txn) Size() (reads, writes int) { return len(t.reads), len(t.order) }

// Bytes is about what the commit will carry: the keys written and their
// values, the keys read (its conditions) and the values of those
// conditioned on their value. Keep it under MaxTxnBytes.
func (t *Txn) Bytes() int { return t.size }

// Mark returns a point RollbackTo can return to.
func (t *Txn) Mark() int { return len(t.undo) }

// RollbackTo takes back every write made since Mark returned m (reads
// stay: they remain conditions of the commit). Group commit uses it to
// drop one request's writes from a batch.
func (t *Txn) RollbackTo(m int) {
	for i := len(t.undo) - 1; i >= m; i-- {
		u := t.undo[i]
		cur := t.writes[u.key]
		if u.existed {
			t.writes[u.key] = u.val
			t.size += len(u.val) - len(cur)
		} else {
			delete(t.writes, u.key)
			t.order = t.order[:len(t.order)-1]
			t.size -= len(u.key) + len(cur)
		}
	}
	t.undo = t.undo[:m]
}

// Empty reports whether the transaction writes nothing.
func (t *Txn) Empty() bool { return len(t.order) == 0 }

// Commit applies the writes if every read is still current.
func (t *Txn) Commit(ctx context.Context) (int64, error) {
	if t.scratch {
		return 0, errors.New("commit: a scratch transaction does not commit")
	}
	if len(t.order) == 0 {
		return 0, nil // read-only: nothing to make atomic
	}
	resp, err := t.s.c.Txn(ctx).If(t.conditions()...).Then(t.ops()...).Commit()
	if err != nil {
		t.s.recent.drop(t.order) // written or not: unknown
		return 0, writeErr("commit", err)
	}
	if !resp.Succeeded {
		t.s.saw(resp.Header.Revision)
		return 0, t.conflicted()
	}
	t.s.recent.wrote(t, resp.Header.Revision)
	t.s.committed(t.order)
	// Visible once what it wrote is kept too: a client answered from a
	// watch then finds it in the kept values as well as in etcd.
	t.s.saw(resp.Header.Revision)
	return resp.Header.Revision, nil
}

// Verify checks, without writing, that every read of t is still current:
// ErrConflict if not. A refusal that rests on what t read (e.g. a VM's
// state) is confirmed this way when there is nothing to commit. It is a
// read-only etcd transaction: no raft proposal.
func (t *Txn) Verify(ctx context.Context) error {
	if len(t.reads) == 0 {
		return nil
	}
	resp, err := t.s.c.Txn(ctx).If(t.conditions()...).Commit()
	if err != nil {
		return fmt.Errorf("verify: %w", err)
	}
	if !resp.Succeeded {
		return t.conflicted()
	}
	return nil
}

// ops are t's writes as etcd operations.
func (t *Txn) ops() []clientv3.Op {
	ops := make([]clientv3.Op, 0, len(t.order))
	for _, k := range t.order {
		if v := t.writes[k]; v == nil {
			ops = append(ops, clientv3.OpDelete(k))
		} else {
			// OpPut copies the value (to []byte): no need to copy it
			// to a string first. v is not written to after Put.
			ops = append(ops, clientv3.OpPut(k, unsafe.String(unsafe.SliceData(v), len(v))))
		}
	}
	return ops
}

// conditions are t's reads as commit conditions.
func (t *Txn) conditions() []clientv3.Cmp {
	cmps := make([]clientv3.Cmp, 0, len(t.reads))
	for k, rev := range t.reads {
		switch {
		case !t.byValue[k]:
			cmps = append(cmps, clientv3.Compare(clientv3.ModRevision(k), "=", rev))
		case t.cache[k] == nil:
			cmps = append(cmps, clientv3.Compare(clientv3.CreateRevision(k), "=", 0)) // still absent
		default:
			cmps = append(cmps, clientv3.Compare(clientv3.Value(k), "=", string(t.cache[k])))
		}
	}
	return cmps
}

// conflicted tells the caches that one of t's reads changed (they drop
// them all: a cached value the watch has not dropped yet would make every
// retry conflict) and returns ErrConflict.
func (t *Txn) conflicted() error {
	read := make([]string, 0, len(t.reads))
	for k := range t.reads {
		read = append(read, k)
	}
	t.s.recent.drop(read)
	t.s.committed(read)
	return ErrConflict
}

// Event is one change seen by Watch.
type Event struct {
	Key    string
	Value  []byte // nil on delete
	Rev    int64
	Delete bool
}

// Watch streams changes under prefix after revision rev (0: from now) until
// ctx ends. The channel closes when the watch ends; a compacted revision
// ends it too, and the caller re-lists.
func (s *Store) Watch(ctx context.Context, prefix string, rev int64) <-chan []Event {
	opts := []clientv3.OpOption{clientv3.WithPrefix()}
	if rev > 0 {
		opts = append(opts, clientv3.WithRev(rev+1))
	}
	out := make(chan []Event)
	wc := s.c.Watch(clientv3.WithRequireLeader(ctx), prefix, opts...)
	go func() {
		defer close(out)
		for resp := range wc {
			if resp.Err() != nil {
				return
			}
			evs := make([]Event, len(resp.Events))
			for i, e := range resp.Events {
				evs[i] = Event{Key: string(e.Kv.Key), Value: e.Kv.Value, Rev: e.Kv.ModRevision, Delete: e.Type == clientv3.EventTypeDelete}
				if evs[i].Delete {
					evs[i].Value = nil
				}
			}
			select {
			case out <- evs:
			case <-ctx.Done():
				return
			}
		}
	}()
	return out
}

// PageOf reads one page (see Page) of the objects under prefix, decoding
// each into a T. With index set, the values under prefix are ids (an index,
// e.g. tasks-by-entity/<entity>/) and each object is read from index(id);
// one deleted between the two reads is skipped.
func PageOf[T any](ctx context.Context, s *Store, prefix, pageToken string, limit int, index func(id string) string) ([]T, string, error) {
	kvs, next, err := s.Page(ctx, prefix, pageToken, limit)
	if err != nil {
		return nil, "", err
	}
	out := make([]T, 0, len(kvs))
	for _, kv := range kvs {
		var v T
		if index == nil {
			if err := Decode(kv.Value, &v); err != nil {
				return nil, "", fmt.Errorf("decode %s: %w", kv.Key, err)
			}
		} else {
			var id string
			if err := Decode(kv.Value, &id); err != nil {
				return nil, "", fmt.Errorf("decode %s: %w", kv.Key, err)
			}
			if _, err := s.Get(ctx, index(id), &v); errors.Is(err, ErrNotFound) {
				continue
			} else if err != nil {
				return nil, "", err
			}
		}
		out = append(out, v)
	}
	return out, next, nil
}

package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sync/atomic"
	"time"

	"go.etcd.io/etcd/api/v3/v3rpc/rpctypes"
	clientv3 "go.etcd.io/etcd/client/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Errors of a store that etcd does not serve now. Callers map them to an
// answer (the API: 503 with Retry-After, 413); none is a bug.
var (
	// ErrUnavailable: etcd did not answer within Limits.OpTimeout, or is
	// known to be unreachable (see RunHealth): retry later.
	ErrUnavailable = errors.New("the store (etcd) is unavailable")
	// ErrNoSpace: etcd refuses writes, its space quota exhausted
	// (alarm NOSPACE) until an operator frees space; reads still work.
	ErrNoSpace = errors.New("the store (etcd) is out of space")
	// ErrTooLarge: etcd refused a request for its size (see tooLarge):
	// nothing was written, and the same write will never fit.
	ErrTooLarge = errors.New("the change is larger than the store (etcd) takes in one request")
)

// Limits bound what the store waits for etcd.
type Limits struct {
	// OpTimeout bounds one etcd request (a read, a commit, a lease
	// call): past it the request fails with ErrUnavailable. Default 10 s.
	OpTimeout time.Duration
	// ProbeInterval is how often RunHealth checks that etcd answers
	// (default 2 s; while etcd is away, a quarter of it).
	ProbeInterval time.Duration
	// ProbeTimeout bounds one check (default 2 s).
	ProbeTimeout time.Duration
}

// DefaultLimits are the limits of a store that was given none.
var DefaultLimits = Limits{OpTimeout: 10 * time.Second, ProbeInterval: 2 * time.Second, ProbeTimeout: 2 * time.Second}

func (l Limits) withDefaults() Limits {
	if l.OpTimeout <= 0 {
		l.OpTimeout = DefaultLimits.OpTimeout
	}
	if l.ProbeInterval <= 0 {
		l.ProbeInterval = DefaultLimits.ProbeInterval
	}
	if l.ProbeTimeout <= 0 {
		l.ProbeTimeout = DefaultLimits.ProbeTimeout
	}
	return l
}

// health is what the store knows of etcd's reachability: requests carry
// a deadline; a request that fails for want of an answer makes RunHealth
// check at once; two checks in a row unanswered mark etcd down, and then
// requests fail at once (and those under way end) until a check is
// answered again.
type health struct {
	limits atomic.Pointer[Limits]
	down   atomic.Bool
	// noSpace: etcd refused a change for want of space (NOSPACE) and
	// has taken none since.
	noSpace atomic.Bool
	kick    chan struct{} // a request went unanswered: check now

	// up is canceled when etcd is marked down: requests under way then
	// end at once rather than at their deadline. RunHealth replaces it
	// when etcd answers again.
	up atomic.Pointer[upContext]
}

type upContext struct {
	ctx    context.Context
	cancel context.CancelFunc
}

func newUp() *upContext {
	ctx, cancel := context.WithCancel(context.Background())
	return &upContext{ctx, cancel}
}

func newHealth() *health {
	h := &health{kick: make(chan struct{}, 1)}
	l := DefaultLimits
	h.limits.Store(&l)
	h.up.Store(newUp())
	return h
}

// SetLimits sets the store's bounds on waiting for etcd (zero fields:
// DefaultLimits).
func (s *Store) SetLimits(l Limits) {
	l = l.withDefaults()
	s.health.limits.Store(&l)
}

// Limits are the store's bounds on waiting for etcd.
func (s *Store) Limits() Limits { return *s.health.limits.Load() }

// Available reports whether etcd is taken to answer (false once RunHealth
// found it unreachable, until it answers again).
func (s *Store) Available() bool { return !s.health.down.Load() }

// Probe checks that etcd answers a linearizable read (a member without a
// quorum does not) within Limits.ProbeTimeout: ErrUnavailable if not.
func (s *Store) Probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, s.Limits().ProbeTimeout)
	defer cancel()
	_, err := s.rawKV.Get(ctx, "/photon/ping")
	if err != nil {
		if errors.Is(err, rpctypes.ErrNoSpace) {
			return nil // answering; writes are refused (ErrNoSpace)
		}
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return nil
}

// RunHealth checks that etcd answers (Probe) every ProbeInterval, and at
// once when a request went unanswered, until ctx ends. It logs "etcd
// unreachable" once when etcd stops answering (two checks in a row) and
// "etcd reachable again" once it does; in between, requests fail at once
// with ErrUnavailable instead of waiting for their deadline.
func (s *Store) RunHealth(ctx context.Context, log *slog.Logger) {
	h := s.health
	failed := 0
	var since time.Time
	full := false // as last logged
	for {
		if now := h.noSpace.Load(); now != full {
			full = now
			if full {
				log.Error("etcd out of space (NOSPACE alarm): changes fail with 503 until an operator frees space and disarms the alarm")
			} else {
				log.Info("etcd takes changes again")
			}
		}
		l := s.Limits()
		wait := l.ProbeInterval
		if failed > 0 {
			wait = l.ProbeInterval / 4
		}
		select {
		case <-ctx.Done():
			return
		case <-h.kick:
		case <-time.After(wait):
		}
		err := s.Probe(ctx)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			failed = 0
			if h.down.Load() {
				h.up.Store(newUp())
				h.down.Store(false)
				log.Info("etcd reachable again", "unreachable_for", time.Since(since).Round(time.Millisecond))
			}
			continue
		}
		failed++
		if failed == 2 && !h.down.Load() {
			since = time.Now()
			h.down.Store(true)
			h.up.Load().cancel()
			log.Error("etcd unreachable: requests fail with 503 until it answers", "error", err)
		}
	}
}

// budgetKey is the context key of a waitBudget.
type budgetKey struct{}

// waitBudget is how long (ns) the requests made under a context may
// still wait for etcd, in all.
type waitBudget struct{ left atomic.Int64 }

// WithWaitBudget bounds the time requests made under the returned
// context wait for etcd, in all, to d: an API request that reads and
// commits several times fails (ErrUnavailable) once etcd has taken d
// to answer them, rather than waiting OpTimeout for each. Time spent
// otherwise (a long poll's wait for a change) does not count.
func WithWaitBudget(ctx context.Context, d time.Duration) context.Context {
	b := &waitBudget{}
	b.left.Store(int64(d))
	return context.WithValue(ctx, budgetKey{}, b)
}

// begin starts one etcd request under ctx: it fails at once while etcd is
// down or ctx's wait budget is spent; else its context ends at OpTimeout
// (or the budget's end) or when etcd is marked down.
func (s *Store) begin(ctx context.Context) (context.Context, func(), error) {
	h := s.health
	if h.down.Load() && ctx.Err() == nil {
		return nil, nil, ErrUnavailable
	}
	timeout := h.limits.Load().OpTimeout
	b, _ := ctx.Value(budgetKey{}).(*waitBudget)
	if b != nil {
		left := time.Duration(b.left.Load())
		if left <= 0 {
			return nil, nil, fmt.Errorf("%w: the request waited its bound for etcd", ErrUnavailable)
		}
		timeout = min(timeout, left)
	}
	start := time.Now()
	octx, cancel := context.WithTimeout(ctx, timeout)
	stop := context.AfterFunc(h.up.Load().ctx, cancel)
	return octx, func() {
		stop()
		cancel()
		if b != nil {
			b.left.Add(-int64(time.Since(start)))
		}
	}, nil
}

// classify turns the error of a request begun under ctx (run under octx)
// into the store's: ErrUnavailable when etcd did not answer in time or
// said it cannot serve (no leader, a timeout, unreachable), ErrNoSpace,
// ErrTooLarge. The caller's own end (ctx done) is left as it is.
func (s *Store) classify(ctx, octx context.Context, err error) error {
	if err == nil || ctx.Err() != nil {
		return err
	}
	switch {
	case errors.Is(err, rpctypes.ErrNoSpace):
		s.health.noSpace.Store(true)
		return fmt.Errorf("%w: %v", ErrNoSpace, err)
	case tooLarge(err):
		return fmt.Errorf("%w: %v", ErrTooLarge, err)
	case octx.Err() != nil || unanswered(err):
		select {
		case s.health.kick <- struct{}{}:
		default:
		}
		return fmt.Errorf("%w: %v", ErrUnavailable, err)
	}
	return err
}

// unanswered reports whether err says etcd could not serve the request
// (as opposed to refusing it).
func unanswered(err error) bool {
	var ee rpctypes.EtcdError
	code := codes.OK
	if errors.As(err, &ee) {
		code = ee.Code()
	} else if st, ok := status.FromError(err); ok {
		code = st.Code()
	}
	return code == codes.Unavailable || code == codes.DeadlineExceeded
}

// boundedKV is the client's KV with every request bounded (begin,
// classify): every user of the client (the store, and the packages that
// use Client directly) gets the bounds.
type boundedKV struct {
	clientv3.KV
	s *Store
}

func (b boundedKV) Get(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.GetResponse, error) {
	octx, done, err := b.s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	r, err := b.KV.Get(octx, key, opts...)
	return r, b.s.classify(ctx, octx, err)
}

func (b boundedKV) Put(ctx context.Context, key, val string, opts ...clientv3.OpOption) (*clientv3.PutResponse, error) {
	octx, done, err := b.s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	r, err := b.KV.Put(octx, key, val, opts...)
	if err == nil && b.s.health.noSpace.Load() {
		b.s.health.noSpace.Store(false)
	}
	return r, b.s.classify(ctx, octx, err)
}

func (b boundedKV) Delete(ctx context.Context, key string, opts ...clientv3.OpOption) (*clientv3.DeleteResponse, error) {
	octx, done, err := b.s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	r, err := b.KV.Delete(octx, key, opts...)
	return r, b.s.classify(ctx, octx, err)
}

func (b boundedKV) Do(ctx context.Context, op clientv3.Op) (clientv3.OpResponse, error) {
	octx, done, err := b.s.begin(ctx)
	if err != nil {
		return clientv3.OpResponse{}, err
	}
	defer done()
	r, err := b.KV.Do(octx, op)
	return r, b.s.classify(ctx, octx, err)
}

func (b boundedKV) Txn(ctx context.Context) clientv3.Txn {
	return &boundedTxn{b: b, ctx: ctx}
}

// boundedTxn collects a transaction and commits it bounded.
type boundedTxn struct {
	b            boundedKV
	ctx          context.Context
	cmps         []clientv3.Cmp
	thens, elses []clientv3.Op
}

func (t *boundedTxn) If(cs ...clientv3.Cmp) clientv3.Txn {
	t.cmps = append(t.cmps, cs...)
	return t
}

func (t *boundedTxn) Then(ops ...clientv3.Op) clientv3.Txn {
	t.thens = append(t.thens, ops...)
	return t
}

func (t *boundedTxn) Else(ops ...clientv3.Op) clientv3.Txn {
	t.elses = append(t.elses, ops...)
	return t
}

func (t *boundedTxn) Commit() (*clientv3.TxnResponse, error) {
	octx, done, err := t.b.s.begin(t.ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	tx := t.b.KV.Txn(octx)
	if len(t.cmps) > 0 {
		tx = tx.If(t.cmps...)
	}
	if len(t.thens) > 0 {
		tx = tx.Then(t.thens...)
	}
	if len(t.elses) > 0 {
		tx = tx.Else(t.elses...)
	}
	r, err := tx.Commit()
	if err == nil && r.Succeeded && t.b.s.health.noSpace.Load() && slices.ContainsFunc(t.thens, clientv3.Op.IsPut) {
		t.b.s.health.noSpace.Store(false) // (reads and deletes are taken when full)
	}
	return r, t.b.s.classify(t.ctx, octx, err)
}

// boundedLease is the client's Lease with its one-shot calls bounded
// (KeepAlive's stream is not a request).
type boundedLease struct {
	clientv3.Lease
	s *Store
}

func (b boundedLease) Grant(ctx context.Context, ttl int64) (*clientv3.LeaseGrantResponse, error) {
	octx, done, err := b.s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	r, err := b.Lease.Grant(octx, ttl)
	return r, b.s.classify(ctx, octx, err)
}

func (b boundedLease) Revoke(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseRevokeResponse, error) {
	octx, done, err := b.s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	r, err := b.Lease.Revoke(octx, id)
	return r, b.s.classify(ctx, octx, err)
}

func (b boundedLease) KeepAliveOnce(ctx context.Context, id clientv3.LeaseID) (*clientv3.LeaseKeepAliveResponse, error) {
	octx, done, err := b.s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	r, err := b.Lease.KeepAliveOnce(octx, id)
	return r, b.s.classify(ctx, octx, err)
}

func (b boundedLease) TimeToLive(ctx context.Context, id clientv3.LeaseID, opts ...clientv3.LeaseOption) (*clientv3.LeaseTimeToLiveResponse, error) {
	octx, done, err := b.s.begin(ctx)
	if err != nil {
		return nil, err
	}
	defer done()
	r, err := b.Lease.TimeToLive(octx, id, opts...)
	return r, b.s.classify(ctx, octx, err)
}

// Package auth owns identity and access: credentials (the bootstrap admin
// token and other opaque tokens, stored in etcd by their SHA-256, never in
// clear; users with bcrypt passwords; signed JWT access tokens and revocable
// refresh tokens; login rate limits) and roles (role bindings on the system,
// tenants and projects, and the Access they give a principal). The HTTP
// layer asks it who a request is and what that principal may reach.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// Global roles of a principal. A user's roles on the system, tenants and
// projects come from role bindings (see Access).
const (
	// RoleSystemAdmin: the bootstrap admin token.
	RoleSystemAdmin = api.RoleSystemAdmin
	// RoleHost: a host's credential ({Subject: "host:<id>", Role: "host"}).
	RoleHost = "host"
	// RoleUser: a local user, Subject "user:<name>".
	RoleUser = "user"
)

// Principal is who a request acts as.
type Principal struct {
	// Subject, e.g. "admin", "user:alice", "host:0190...".
	Subject string `json:"subject"`
	Role    string `json:"role"`
	// Groups of a user, e.g. ["devs"].
	Groups []string `json:"groups,omitempty"`
}

// Tokens checks and issues bearer tokens.
type Tokens struct {
	st *store.Store
	// AccessTTL is an access token's lifetime (default 15 minutes).
	AccessTTL time.Duration
	// RefreshTTL is a refresh token's lifetime (default 30 days).
	RefreshTTL time.Duration
	// KeyRotation is how long a signing key signs (default 24 hours).
	KeyRotation time.Duration
	// Limiter throttles password logins per user and per client address.
	Limiter *Limiter

	now  func() time.Time
	ring keyring
	// cache holds the records every request reads: opaque tokens'
	// principals, sessions and users (see store.Cache for why it is exact).
	cache *store.Cache
	stop  context.CancelFunc
}

// cachedRecords bounds the credentials, sessions and users kept in memory.
const cachedRecords = 1 << 16

// New returns the token store with default lifetimes and login limits.
func New(st *store.Store) *Tokens {
	return &Tokens{st: st, AccessTTL: 15 * time.Minute, RefreshTTL: 30 * 24 * time.Hour,
		KeyRotation: 24 * time.Hour, Limiter: NewLimiter(DefaultLoginLimits), now: time.Now,
		cache: st.NewCache(cachedRecords, store.Prefix("auth", "tokens"), store.Prefix("auth", "sessions"), store.Prefix("users")),
		stop:  func() {}}
}

// Start makes sure a signing key exists and starts keeping the credential
// cache current. Call it once before serving; Close stops it.
func (t *Tokens) Start(ctx context.Context, log *slog.Logger) error {
	if err := t.ensureKey(ctx); err != nil {
		return err
	}
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	t.stop = cancel
	go t.cache.Run(cctx, log)
	return nil
}

// Close stops keeping the cache current.
func (t *Tokens) Close() { t.stop() }

// TokenKey is the store key a token's principal is kept at (by its hash).
func TokenKey(token string) string { return tokenKey(token) }

func tokenKey(token string) string {
	sum := sha256.Sum256([]byte(token))
	return store.Key("auth", "tokens", hex.EncodeToString(sum[:]))
}

// NewToken returns a fresh random token (256 bits, URL-safe).
func NewToken() string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// Register makes token stand for p (idempotent).
func (t *Tokens) Register(ctx context.Context, token string, p Principal) error {
	_, err := t.st.Update(ctx, func(tx *store.Txn) error { return tx.Put(tokenKey(token), p) })
	if err != nil {
		return fmt.Errorf("register token: %w", err)
	}
	return nil
}

// SetBootstrap makes token the one bootstrap (admin) token: it stands for p,
// and the bootstrap token it replaces, if any, stops working in the same
// transaction.
func (t *Tokens) SetBootstrap(ctx context.Context, token string, p Principal) error {
	ptr := store.Key("auth", "bootstrap")
	_, err := t.st.Update(ctx, func(tx *store.Txn) error {
		var old string
		if _, err := tx.Get(ctx, ptr, &old); err != nil {
			return err
		}
		if old != "" && old != tokenKey(token) {
			tx.Delete(old)
		}
		if err := tx.Put(ptr, tokenKey(token)); err != nil {
			return err
		}
		return tx.Put(tokenKey(token), p)
	})
	if err != nil {
		return fmt.Errorf("set bootstrap token: %w", err)
	}
	return nil
}

// Unregister makes an opaque token stop working (no-op if unknown).
func (t *Tokens) Unregister(ctx context.Context, token string) error {
	_, err := t.st.Update(ctx, func(tx *store.Txn) error { tx.Delete(tokenKey(token)); return nil })
	return err
}

// Authenticate returns the principal of an Authorization header value: a
// JWT access token of a user (whose session and user must still exist), or
// an opaque token (the bootstrap admin token, host credentials).
func (t *Tokens) Authenticate(ctx context.Context, header string) (*Principal, error) {
	if header == "" {
		return nil, api.Errorf(api.CodeMissingAuthToken, "this call needs an Authorization: Bearer <token> header")
	}
	scheme, token, ok := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, api.Errorf(api.CodeInvalidAuthToken, "Authorization header must be \"Bearer <token>\"")
	}
	if strings.Count(token, ".") == 2 {
		return t.authenticateJWT(ctx, token)
	}
	var p Principal
	if err := t.cache.Get(ctx, tokenKey(token), &p); errors.Is(err, store.ErrNotFound) {
		return nil, api.Errorf(api.CodeInvalidAuthToken, "the token is not valid")
	} else if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	return &p, nil
}

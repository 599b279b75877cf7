// Package auth owns credentials: bearer tokens, stored in etcd by their
// SHA-256 (never in clear), and the principals they stand for. The HTTP
// layer asks it who a request is; it is the one place that decides.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// Roles.
const (
	RoleSystemAdmin = "system-admin"
)

// Principal is who a request acts as.
type Principal struct {
	Subject string `json:"subject"`
	Role    string `json:"role"`
}

// Tokens checks and issues bearer tokens.
type Tokens struct {
	st *store.Store
}

// New returns the token store.
func New(st *store.Store) *Tokens { return &Tokens{st: st} }

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

// Authenticate returns the principal of an Authorization header value.
func (t *Tokens) Authenticate(ctx context.Context, header string) (*Principal, error) {
	if header == "" {
		return nil, api.Errorf(api.CodeMissingAuthToken, "this call needs an Authorization: Bearer <token> header")
	}
	scheme, token, ok := strings.Cut(header, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return nil, api.Errorf(api.CodeInvalidAuthToken, "Authorization header must be \"Bearer <token>\"")
	}
	var p Principal
	if _, err := t.st.Get(ctx, tokenKey(token), &p); errors.Is(err, store.ErrNotFound) {
		return nil, api.Errorf(api.CodeInvalidAuthToken, "the token is not valid")
	} else if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	return &p, nil
}

package auth

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/uuid"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// Access tokens are HS256 JWTs signed with a key kept in etcd
// (auth/signing-keys/<kid>), so every controller sharing the etcd signs and
// accepts the same tokens. A key is used for signing for KeyRotation and
// kept for verifying until every token it signed has expired.

const issuer = "photon"

// signingKey is a key as stored.
type signingKey struct {
	KID     string `json:"kid"`
	Secret  []byte `json:"secret"`
	Created int64  `json:"created"` // ms since the epoch
}

func signingKeyPrefix() string        { return store.Prefix("auth", "signing-keys") }
func signingKeyKey(kid string) string { return store.Key("auth", "signing-keys", kid) }

// claims are an access token's claims.
type claims struct {
	jwt.RegisteredClaims
	// Sid is the session (refresh token) the token was issued from; revoking
	// the session revokes the token.
	Sid string `json:"sid"`
}

// keyring caches signing keys read from etcd.
type keyring struct {
	mu      sync.Mutex
	keys    map[string]*signingKey
	current *signingKey
}

// ensureKey makes sure a signing key younger than KeyRotation exists, and
// deletes keys no token can still need. Controllers racing here may each add
// a key; both are valid.
func (t *Tokens) ensureKey(ctx context.Context) error {
	keys, err := store.List[signingKey](ctx, t.st, signingKeyPrefix())
	if err != nil {
		return fmt.Errorf("signing keys: %w", err)
	}
	now := t.now()
	var newest *signingKey
	for i := range keys {
		k := &keys[i]
		if newest == nil || k.KID > newest.KID {
			newest = k
		}
	}
	if newest == nil || now.Sub(time.UnixMilli(newest.Created)) > t.KeyRotation {
		secret := make([]byte, 32)
		if _, err := rand.Read(secret); err != nil {
			return err
		}
		k := signingKey{KID: uuid.Must(uuid.NewV7()).String(), Secret: secret, Created: now.UnixMilli()}
		if _, err := t.st.Update(ctx, func(tx *store.Txn) error { return tx.Put(signingKeyKey(k.KID), &k) }); err != nil {
			return fmt.Errorf("new signing key: %w", err)
		}
		keys = append(keys, k)
		newest = &keys[len(keys)-1]
	}
	// A key stops signing after KeyRotation; its tokens live AccessTTL more.
	keep := t.KeyRotation + 2*t.AccessTTL
	t.ring.mu.Lock()
	defer t.ring.mu.Unlock()
	t.ring.keys = map[string]*signingKey{}
	for i := range keys {
		k := &keys[i]
		if k != newest && now.Sub(time.UnixMilli(k.Created)) > keep {
			if _, err := t.st.Update(ctx, func(tx *store.Txn) error { tx.Delete(signingKeyKey(k.KID)); return nil }); err != nil {
				return err
			}
			continue
		}
		t.ring.keys[k.KID] = k
	}
	t.ring.current = newest
	return nil
}

// key returns the verifying key kid, reading etcd when it is new to this
// controller (another controller made it).
func (t *Tokens) key(ctx context.Context, kid string) (*signingKey, error) {
	t.ring.mu.Lock()
	k := t.ring.keys[kid]
	t.ring.mu.Unlock()
	if k != nil {
		return k, nil
	}
	var sk signingKey
	if _, err := t.st.Get(ctx, signingKeyKey(kid), &sk); err != nil {
		return nil, err
	}
	t.ring.mu.Lock()
	if t.ring.keys == nil {
		t.ring.keys = map[string]*signingKey{}
	}
	t.ring.keys[kid] = &sk
	t.ring.mu.Unlock()
	return &sk, nil
}

// signingKeyNow returns the key to sign with, rotating it when due.
func (t *Tokens) signingKeyNow(ctx context.Context) (*signingKey, error) {
	t.ring.mu.Lock()
	cur := t.ring.current
	t.ring.mu.Unlock()
	if cur == nil || t.now().Sub(time.UnixMilli(cur.Created)) > t.KeyRotation {
		if err := t.ensureKey(ctx); err != nil {
			return nil, err
		}
		t.ring.mu.Lock()
		cur = t.ring.current
		t.ring.mu.Unlock()
	}
	return cur, nil
}

// signAccess issues an access token for subject in session sid.
func (t *Tokens) signAccess(ctx context.Context, subject, sid string) (string, error) {
	k, err := t.signingKeyNow(ctx)
	if err != nil {
		return "", err
	}
	now := t.now()
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: issuer, Subject: subject, ID: uuid.NewString(),
			IssuedAt: jwt.NewNumericDate(now), NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(now.Add(t.AccessTTL)),
		},
		Sid: sid,
	}
	tok := jwt.NewWithClaims(jwt.SigningMethodHS256, c)
	tok.Header["kid"] = k.KID
	return tok.SignedString(k.Secret)
}

// verifyAccess checks an access token's signature and times and returns its claims.
func (t *Tokens) verifyAccess(ctx context.Context, token string) (*claims, error) {
	var lookupErr error
	c, err := parseAccess(token, t.now, func(kid string) ([]byte, error) {
		k, err := t.key(ctx, kid)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				lookupErr = err
			}
			return nil, err
		}
		return k.Secret, nil
	})
	if lookupErr != nil {
		return nil, fmt.Errorf("signing key: %w", lookupErr)
	}
	return c, err
}

// maxTokenBytes bounds an access token read (ours are about 350 bytes).
const maxTokenBytes = 4096

// parseAccess checks an access token (an HS256 JWT from issuer, with a
// kid that secret finds the key of, unexpired at now) and returns its
// claims; a token that is not is InvalidAuthToken (ExpiredAuthToken once
// expired). It reads nothing but the token: the fuzz target's entry.
func parseAccess(token string, now func() time.Time, secret func(kid string) ([]byte, error)) (*claims, error) {
	if len(token) > maxTokenBytes {
		return nil, api.Errorf(api.CodeInvalidAuthToken, "the token is not valid")
	}
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(tok *jwt.Token) (any, error) {
		kid, _ := tok.Header["kid"].(string)
		if kid == "" || len(kid) > 64 {
			return nil, errors.New("no key id")
		}
		return secret(kid)
	}, jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}), jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(), jwt.WithTimeFunc(now))
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return nil, api.Errorf(api.CodeExpiredAuthToken, "the access token has expired; get a new one with the refresh token")
	case err != nil:
		return nil, api.Errorf(api.CodeInvalidAuthToken, "the token is not valid")
	}
	return &c, nil
}

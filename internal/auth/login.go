package auth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"
	"golang.org/x/crypto/bcrypt"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/store"
)

// Users are kept under users/<name> with their bcrypt hash; a login opens a
// session (auth/sessions/<sid>) whose refresh token is "<sid>.<secret>",
// stored as the secret's SHA-256. Access tokens name their session, so
// revoking the session (or deleting the user) stops them at once. Each
// refresh rotates the refresh token (a new secret, in the same
// revision-checked transaction that checks the old one); an old refresh
// token used again means it was stolen or copied, and revokes the whole
// session (OAuth 2.0 Security BCP, refresh token rotation).

// userRecord is a user as stored.
type userRecord struct {
	api.User
	PasswordHash []byte `json:"passwordHash"`
}

func userKey(name string) string             { return store.Key("users", name) }
func sessionKey(sid string) string           { return store.Key("auth", "sessions", sid) }
func userSessionKey(name, sid string) string { return store.Key("auth", "user-sessions", name, sid) }
func userSessionPrefix(name string) string   { return store.Prefix("auth", "user-sessions", name) }

// session is a login: what a refresh token stands for.
type session struct {
	SID        string `json:"sid"`
	User       string `json:"user"`
	SecretHash []byte `json:"secretHash"`
	// Rotated are the hashes of the session's earlier refresh tokens,
	// newest last (at most maxRotated): one used again revokes the session.
	Rotated [][]byte `json:"rotated,omitempty"`
	Created int64    `json:"created"`
	Expires int64    `json:"expires"`
}

// maxRotated bounds the earlier refresh tokens a session remembers.
const maxRotated = 32

// dummyHash makes a login of an unknown user cost as much as a wrong password.
var dummyHash, _ = bcrypt.GenerateFromPassword([]byte("photon-no-such-user"), bcrypt.DefaultCost)

func errBadCredentials() error {
	return &api.Error{Code: api.CodeInvalidCredentials, Message: "wrong user name or password", HTTPStatus: 401}
}

// Login answers a token request from a client at remote (its IP address):
// the password grant checks the password (rate-limited per user and per
// address) and opens a session; the refresh_token grant issues a new access
// token in an existing session.
func (t *Tokens) Login(ctx context.Context, req *api.TokenRequest, remote string) (*api.TokenResponse, error) {
	if err := ValidateTokenRequest(req); err != nil {
		return nil, err
	}
	ipKey := "ip:" + remote
	switch req.GrantType {
	case api.GrantPassword:
		userKey := "user:" + req.Username
		if wait := t.Limiter.Blocked(userKey, ipKey); wait > 0 {
			return nil, tooMany(wait)
		}
		u, err := t.checkPassword(ctx, req.Username, req.Password)
		if err != nil {
			var ae *api.Error
			if errors.As(err, &ae) && ae.Code == api.CodeInvalidCredentials {
				t.Limiter.Fail(userKey, ipKey)
			}
			return nil, err
		}
		t.Limiter.Reset(userKey)
		return t.openSession(ctx, u.Name)
	default: // refresh_token
		if wait := t.Limiter.Blocked(ipKey); wait > 0 {
			return nil, tooMany(wait)
		}
		resp, err := t.refresh(ctx, req.RefreshToken)
		var ae *api.Error
		if errors.As(err, &ae) && ae.Status() == 401 {
			t.Limiter.Fail(ipKey)
		}
		return resp, err
	}
}

func tooMany(wait time.Duration) error {
	secs := int(wait.Seconds() + 0.999)
	return &api.Error{Code: api.CodeTooManyRequests, HTTPStatus: 429,
		Message: fmt.Sprintf("too many failed logins; retry in %d s", secs),
		Data:    map[string]string{"retryAfter": strconv.Itoa(secs)}}
}

// ValidateTokenRequest checks a token request's shape (the fuzz target's entry).
func ValidateTokenRequest(req *api.TokenRequest) error {
	switch req.GrantType {
	case api.GrantPassword:
		if req.Username == "" {
			return api.FieldError("username", "is required")
		}
		if len(req.Username) > 63 {
			return api.FieldError("username", "at most 63 characters")
		}
		if req.Password == "" {
			return api.FieldError("password", "is required")
		}
		if len(req.Password) > 72 {
			return api.FieldError("password", "at most 72 bytes")
		}
	case api.GrantRefreshToken:
		if req.RefreshToken == "" {
			return api.FieldError("refresh_token", "is required")
		}
		if len(req.RefreshToken) > 256 {
			return api.FieldError("refresh_token", "not a refresh token")
		}
	case "":
		return api.FieldError("grant_type", "is required (password or refresh_token)")
	default:
		return api.FieldError("grant_type", "%q: want password or refresh_token", req.GrantType)
	}
	return nil
}

func (t *Tokens) checkPassword(ctx context.Context, name, password string) (*userRecord, error) {
	var u userRecord
	_, err := t.st.Get(ctx, userKey(name), &u)
	if errors.Is(err, store.ErrNotFound) || api.ValidateName("username", name) != nil {
		_ = bcrypt.CompareHashAndPassword(dummyHash, []byte(password))
		return nil, errBadCredentials()
	}
	if err != nil {
		return nil, err
	}
	if bcrypt.CompareHashAndPassword(u.PasswordHash, []byte(password)) != nil {
		return nil, errBadCredentials()
	}
	return &u, nil
}

func (t *Tokens) openSession(ctx context.Context, name string) (*api.TokenResponse, error) {
	secret, sum, err := newSecret()
	if err != nil {
		return nil, err
	}
	now := t.now()
	s := session{SID: uuid.Must(uuid.NewV7()).String(), User: name, Created: now.UnixMilli(),
		Expires: now.Add(t.RefreshTTL).UnixMilli(), SecretHash: sum}
	_, err = t.st.Update(ctx, func(tx *store.Txn) error {
		if err := tx.MustGet(ctx, userKey(name), new(userRecord)); err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return errBadCredentials()
			}
			return err
		}
		if err := tx.Put(sessionKey(s.SID), &s); err != nil {
			return err
		}
		return tx.Put(userSessionKey(name, s.SID), s.SID)
	})
	if err != nil {
		return nil, err
	}
	return t.tokenResponse(ctx, &s, secret)
}

// newSecret makes a refresh token's secret and its SHA-256.
func newSecret() (secret, sum []byte, err error) {
	secret = make([]byte, 32)
	if _, err := rand.Read(secret); err != nil {
		return nil, nil, err
	}
	h := sha256.Sum256(secret)
	return secret, h[:], nil
}

// tokenResponse answers a login or refresh of session s whose refresh
// token's secret is secret.
func (t *Tokens) tokenResponse(ctx context.Context, s *session, secret []byte) (*api.TokenResponse, error) {
	access, err := t.signAccess(ctx, "user:"+s.User, s.SID)
	if err != nil {
		return nil, err
	}
	return &api.TokenResponse{AccessToken: access, RefreshToken: s.SID + "." + base64.RawURLEncoding.EncodeToString(secret),
		IDToken: access, ExpiresIn: int(t.AccessTTL.Seconds()), TokenType: "Bearer"}, nil
}

func errBadRefresh() error {
	return &api.Error{Code: api.CodeInvalidAuthToken, Message: "the refresh token is not valid (expired or revoked?); log in again", HTTPStatus: 401}
}

// parseRefresh splits a refresh token into its session id and the
// SHA-256 of its secret.
func parseRefresh(token string) (sid string, sum []byte, err error) {
	sid, secretB64, ok := strings.Cut(token, ".")
	if !ok || !validID(sid) {
		return "", nil, errBadRefresh()
	}
	secret, err := base64.RawURLEncoding.DecodeString(secretB64)
	if err != nil {
		return "", nil, errBadRefresh()
	}
	h := sha256.Sum256(secret)
	return sid, h[:], nil
}

// refresh issues a new access token and a new refresh token in the
// session of token, which stops working. A refresh token the session
// has rotated away from revokes the session: it was used twice, by its
// holder and by someone else.
func (t *Tokens) refresh(ctx context.Context, token string) (*api.TokenResponse, error) {
	sid, sum, err := parseRefresh(token)
	if err != nil {
		return nil, err
	}
	secret, next, err := newSecret()
	if err != nil {
		return nil, err
	}
	var s session
	reused := false
	_, err = t.st.Update(ctx, func(tx *store.Txn) error {
		s, reused = session{}, false // a retry reads afresh
		if err := tx.MustGet(ctx, sessionKey(sid), &s); errors.Is(err, store.ErrNotFound) {
			return errBadRefresh()
		} else if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare(sum, s.SecretHash) != 1 {
			for _, old := range s.Rotated {
				if subtle.ConstantTimeCompare(sum, old) == 1 {
					reused = true
					tx.Delete(sessionKey(s.SID))
					tx.Delete(userSessionKey(s.User, s.SID))
					return nil
				}
			}
			return errBadRefresh()
		}
		if t.now().UnixMilli() > s.Expires {
			return errBadRefresh()
		}
		if err := tx.MustGet(ctx, userKey(s.User), new(userRecord)); errors.Is(err, store.ErrNotFound) {
			return errBadCredentials()
		} else if err != nil {
			return err
		}
		s.Rotated = append(s.Rotated, s.SecretHash)
		if len(s.Rotated) > maxRotated {
			s.Rotated = s.Rotated[len(s.Rotated)-maxRotated:]
		}
		s.SecretHash = next
		return tx.Put(sessionKey(s.SID), &s)
	})
	if err != nil {
		return nil, err
	}
	if reused {
		return nil, &api.Error{Code: api.CodeInvalidAuthToken, HTTPStatus: 401,
			Message: "the refresh token was already used; its session is revoked (log in again)"}
	}
	return t.tokenResponse(ctx, &s, secret)
}

// Revoke ends the session of a refresh token (the current one or one it
// rotated away from): the refresh token and every access token issued
// in the session stop working. A caller that is not a system
// administrator may revoke only its own sessions.
func (t *Tokens) Revoke(ctx context.Context, p *Principal, token string) error {
	sid, sum, err := parseRefresh(token)
	if err != nil {
		return err
	}
	_, err = t.st.Update(ctx, func(tx *store.Txn) error {
		var s session
		if err := tx.MustGet(ctx, sessionKey(sid), &s); errors.Is(err, store.ErrNotFound) {
			return errBadRefresh()
		} else if err != nil {
			return err
		}
		if !slices.ContainsFunc(append(s.Rotated, s.SecretHash), func(h []byte) bool { return subtle.ConstantTimeCompare(sum, h) == 1 }) ||
			t.now().UnixMilli() > s.Expires {
			return errBadRefresh()
		}
		if p.Role != RoleSystemAdmin && p.Subject != "user:"+s.User {
			return api.Errorf(api.CodeAccessForbidden, "the refresh token belongs to another user")
		}
		tx.Delete(sessionKey(s.SID))
		tx.Delete(userSessionKey(s.User, s.SID))
		return nil
	})
	return err
}

// authenticateJWT checks an access token, its session and its user.
func (t *Tokens) authenticateJWT(ctx context.Context, token string) (*Principal, error) {
	c, err := t.verifyAccess(ctx, token)
	if err != nil {
		return nil, err
	}
	name, ok := strings.CutPrefix(c.Subject, "user:")
	if !ok || !validID(c.Sid) || api.ValidateName("sub", name) != nil {
		return nil, api.Errorf(api.CodeInvalidAuthToken, "the token is not valid")
	}
	var s session
	if err := t.cache.Get(ctx, sessionKey(c.Sid), &s); errors.Is(err, store.ErrNotFound) {
		return nil, api.Errorf(api.CodeInvalidAuthToken, "the token was revoked")
	} else if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	var u userRecord
	if err := t.cache.Get(ctx, userKey(name), &u); errors.Is(err, store.ErrNotFound) || s.User != name {
		return nil, api.Errorf(api.CodeInvalidAuthToken, "the token's user no longer exists")
	} else if err != nil {
		return nil, fmt.Errorf("authenticate: %w", err)
	}
	return &Principal{Subject: c.Subject, Role: RoleUser, Groups: u.Groups}, nil
}

func validID(id string) bool {
	return id != "" && len(id) <= 64 && !strings.ContainsAny(id, "/\x00")
}

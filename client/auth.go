package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/photon-cloud/photon/api"
)

// Login exchanges a user name and password for tokens (POST /v1/auth/token).
func (c *Client) Login(ctx context.Context, username, password string) (*api.TokenResponse, error) {
	var t api.TokenResponse
	err := c.Do(ctx, http.MethodPost, "/v1/auth/token",
		&api.TokenRequest{GrantType: api.GrantPassword, Username: username, Password: password}, &t)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// Refresh gets a new access token with a refresh token.
func (c *Client) Refresh(ctx context.Context, refreshToken string) (*api.TokenResponse, error) {
	var t api.TokenResponse
	err := c.Do(ctx, http.MethodPost, "/v1/auth/token",
		&api.TokenRequest{GrantType: api.GrantRefreshToken, RefreshToken: refreshToken}, &t)
	if err != nil {
		return nil, err
	}
	return &t, nil
}

// Revoke ends the session of a refresh token (and its access tokens).
func (c *Client) Revoke(ctx context.Context, refreshToken string) error {
	return c.Do(ctx, http.MethodPost, "/v1/auth/revoke", &api.RevokeRequest{Token: refreshToken}, nil)
}

// Session is a login's tokens as a client keeps them.
type Session struct {
	AccessToken  string    `json:"accessToken"`
	RefreshToken string    `json:"refreshToken"`
	Expires      time.Time `json:"expires"`
}

// SessionFrom turns a token answer into a Session.
func SessionFrom(t *api.TokenResponse, now time.Time) Session {
	return Session{AccessToken: t.AccessToken, RefreshToken: t.RefreshToken,
		Expires: now.Add(time.Duration(t.ExpiresIn) * time.Second)}
}

// WithSession authenticates with a login's tokens and refreshes the access
// token transparently: shortly before it expires, or when the controller
// answers 401 ExpiredAuthToken (the request is then sent once more).
// onRefresh, if set, is called with every new session (the CLI saves it).
func WithSession(s Session, onRefresh func(Session)) Option {
	return func(o *options) error {
		o.token = s.AccessToken
		o.session = &refresher{s: s, onRefresh: onRefresh}
		return nil
	}
}

// refresher is an http.RoundTripper that keeps a session's access token fresh.
type refresher struct {
	mu        sync.Mutex
	s         Session
	onRefresh func(Session)
	base      *url.URL
	next      http.RoundTripper
}

func (rf *refresher) wrap(hc *http.Client, base *url.URL) *http.Client {
	c := *hc
	rf.base, rf.next = base, hc.Transport
	if rf.next == nil {
		rf.next = http.DefaultTransport
	}
	c.Transport = rf
	return &c
}

// token returns a fresh access token, refreshing if it expires within 30 s
// (or if force).
func (rf *refresher) token(ctx context.Context, force bool, stale string) (string, error) {
	rf.mu.Lock()
	defer rf.mu.Unlock()
	if force && rf.s.AccessToken != stale {
		return rf.s.AccessToken, nil // another request refreshed already
	}
	if !force && time.Until(rf.s.Expires) > 30*time.Second {
		return rf.s.AccessToken, nil
	}
	if rf.s.RefreshToken == "" {
		return rf.s.AccessToken, nil
	}
	b, _ := json.Marshal(&api.TokenRequest{GrantType: api.GrantRefreshToken, RefreshToken: rf.s.RefreshToken})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, rf.base.String()+"/v1/auth/token", bytes.NewReader(b))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := rf.next.RoundTrip(req)
	if err != nil {
		return "", fmt.Errorf("refresh the access token: %w", err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		err := decodeError(resp.StatusCode, data)
		return "", fmt.Errorf("refresh the access token (log in again): %w", err)
	}
	var t api.TokenResponse
	if err := json.Unmarshal(data, &t); err != nil || t.AccessToken == "" {
		return "", errors.New("refresh the access token: malformed answer")
	}
	if t.RefreshToken == "" {
		t.RefreshToken = rf.s.RefreshToken
	}
	rf.s = SessionFrom(&t, time.Now())
	if rf.onRefresh != nil {
		rf.onRefresh(rf.s)
	}
	return rf.s.AccessToken, nil
}

func (rf *refresher) RoundTrip(req *http.Request) (*http.Response, error) {
	if strings.HasSuffix(req.URL.Path, "/v1/auth/token") {
		return rf.next.RoundTrip(req)
	}
	tok, err := rf.token(req.Context(), false, "")
	if err != nil {
		return nil, err
	}
	r2 := req.Clone(req.Context())
	r2.Header.Set("Authorization", "Bearer "+tok)
	resp, err := rf.next.RoundTrip(r2)
	if err != nil || resp.StatusCode != http.StatusUnauthorized || (req.Body != nil && req.GetBody == nil) {
		return resp, err
	}
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	resp.Body.Close()
	var e api.Error
	if json.Unmarshal(data, &e) != nil || e.Code != api.CodeExpiredAuthToken {
		resp.Body = io.NopCloser(bytes.NewReader(data))
		return resp, nil
	}
	if tok, err = rf.token(req.Context(), true, tok); err != nil {
		return nil, err
	}
	r3 := req.Clone(req.Context())
	if req.GetBody != nil {
		if r3.Body, err = req.GetBody(); err != nil {
			return nil, err
		}
	}
	r3.Header.Set("Authorization", "Bearer "+tok)
	return rf.next.RoundTrip(r3)
}

// Users.

// ListUsers lists users, all pages.
func (c *Client) ListUsers(ctx context.Context) ([]api.User, error) {
	return ListAll[api.User](ctx, c, "/v1/users")
}

// GetUser reads a user by name.
func (c *Client) GetUser(ctx context.Context, name string) (*api.User, error) {
	return getOne[api.User](ctx, c, "/v1/users/"+esc(name))
}

// CreateUser creates a user.
func (c *Client) CreateUser(ctx context.Context, spec *api.UserCreateSpec) (*api.Task, error) {
	return c.call(ctx, http.MethodPost, "/v1/users", spec)
}

// UpdateUser changes a user's password or groups.
func (c *Client) UpdateUser(ctx context.Context, name string, spec *api.UserUpdateSpec) (*api.Task, error) {
	return c.call(ctx, http.MethodPatch, "/v1/users/"+esc(name), spec)
}

// DeleteUser deletes a user; its tokens stop working.
func (c *Client) DeleteUser(ctx context.Context, name string) (*api.Task, error) {
	return c.call(ctx, http.MethodDelete, "/v1/users/"+esc(name), nil)
}

// Role bindings.

// IAMPath is the /iam path of the system (kind "system"), a tenant
// ("tenant"), a project ("project") or one object ("vm", "disk", "image").
func IAMPath(kind, id string) string {
	if p := objectPath(kind, id); p != "" {
		return p + "/iam"
	}
	return "/v1/system/iam"
}

// objectPath is the path of a tenant, project, VM, disk or image by its
// kind ("tenant", "project", "vm", "disk", "image"); "" for another kind.
func objectPath(kind, id string) string {
	switch kind {
	case "tenant", "project", "vm", "disk", "image":
		return "/v1/" + kind + "s/" + esc(id)
	}
	return ""
}

// GetIAM reads the role bindings at an IAMPath.
func (c *Client) GetIAM(ctx context.Context, path string) ([]api.RoleBinding, error) {
	var bs []api.RoleBinding
	if err := c.get(ctx, path, &bs); err != nil {
		return nil, err
	}
	return bs, nil
}

// SetIAM replaces the role bindings at an IAMPath.
func (c *Client) SetIAM(ctx context.Context, path string, bs []api.RoleBinding) (*api.Task, error) {
	return c.call(ctx, http.MethodPost, path, bs)
}

// PatchIAM adds or removes grants at an IAMPath.
func (c *Client) PatchIAM(ctx context.Context, path string, ds ...api.RoleBindingDelta) (*api.Task, error) {
	return c.call(ctx, http.MethodPatch, path, ds)
}

// ListAudit reads the audit log since a time (ms since the epoch, RFC 3339
// or a duration like "1h"; "" for all), all pages.
func (c *Client) ListAudit(ctx context.Context, since string) ([]api.AuditEntry, error) {
	return ListAll[api.AuditEntry](ctx, c, "/v1/system/audit"+query("since", since))
}

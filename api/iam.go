package api

// Identity and access: users, tokens, role bindings, the audit log.

// KindUser is the kind of a user object.
const KindUser = "user"

// Roles a binding may grant.
const (
	// RoleSystemAdmin may do everything (bound on the system scope).
	RoleSystemAdmin = "system-admin"
	// RoleTenantAdmin manages its tenant and all of the tenant's projects.
	RoleTenantAdmin = "tenant-admin"
	// RoleProjectUser reads its project and creates, changes and deletes the
	// project's VMs, disks, images and services.
	RoleProjectUser = "project-user"
	// RoleProjectViewer reads its project and what is in it.
	RoleProjectViewer = "project-viewer"
)

// CodeInvalidCredentials: a login with a wrong user name or password (401).
const CodeInvalidCredentials = "InvalidCredentials"

// Grant types of POST /v1/auth/token.
const (
	GrantPassword     = "password"
	GrantRefreshToken = "refresh_token"
)

// TokenRequest is the body of POST /v1/auth/token (JSON, or the same names
// as an application/x-www-form-urlencoded form, OAuth2 style).
type TokenRequest struct {
	// GrantType is "password" or "refresh_token".
	GrantType string `json:"grant_type"`
	// Username and Password for the password grant, e.g. "alice".
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// RefreshToken for the refresh_token grant.
	RefreshToken string `json:"refresh_token,omitempty"`
	// Scope is accepted and ignored (the old SDK sends "openid offline_access ...").
	Scope string `json:"scope,omitempty"`
}

// TokenResponse answers a successful token request.
type TokenResponse struct {
	// AccessToken is a signed JWT to send as "Authorization: Bearer ...".
	AccessToken string `json:"access_token"`
	// RefreshToken gets new access tokens until it expires or is revoked.
	RefreshToken string `json:"refresh_token,omitempty"`
	// IDToken is the access token again, for the old SDK's OpenID Connect login.
	IDToken string `json:"id_token,omitempty"`
	// ExpiresIn is the access token's lifetime in seconds, e.g. 900.
	ExpiresIn int `json:"expires_in"`
	// TokenType is "Bearer".
	TokenType string `json:"token_type"`
}

// RevokeRequest is the body of POST /v1/auth/revoke: the refresh token to
// revoke. The access tokens issued from it stop working too.
type RevokeRequest struct {
	Token string `json:"token"`
}

// UserCreateSpec is the body of POST /v1/users.
type UserCreateSpec struct {
	// Name is the login name and the user's id, e.g. "alice".
	Name string `json:"name"`
	// Password, 8 to 72 bytes.
	Password string `json:"password"`
	// Groups the user belongs to, e.g. ["devs"]; role bindings may name "group:devs".
	Groups []string `json:"groups,omitempty"`
}

// UserUpdateSpec is the body of PATCH /v1/users/{id}: the fields given change.
type UserUpdateSpec struct {
	Password *string   `json:"password,omitempty"`
	Groups   *[]string `json:"groups,omitempty"`
}

// User is a local user. Its id is its name.
type User struct {
	Base
	Name   string   `json:"name"`
	Groups []string `json:"groups"`
	// CreatedTime in ms since the epoch.
	CreatedTime int64 `json:"createdTime"`
}

// RoleBinding grants a role to subjects on a scope (the system, a tenant or
// a project): {"role": "tenant-admin", "subjects": ["user:alice", "group:ops"]}.
type RoleBinding struct {
	Role     string   `json:"role"`
	Subjects []string `json:"subjects"`
}

// Actions of a RoleBindingDelta.
const (
	ActionAdd    = "ADD"
	ActionRemove = "REMOVE"
)

// RoleBindingDelta is the body of PATCH .../iam:
// {"action": "ADD", "role": "project-user", "subject": "user:bob"}.
type RoleBindingDelta struct {
	Action  string `json:"action"`
	Role    string `json:"role"`
	Subject string `json:"subject"`
}

// AuditEntry is one record of the audit log: a mutating request and its result.
type AuditEntry struct {
	ID string `json:"id"`
	// Time in ms since the epoch.
	Time int64 `json:"time"`
	// Subject is who made the request, e.g. "user:alice", "admin", "anonymous".
	Subject string `json:"subject"`
	// Method and Path of the request, e.g. "DELETE", "/v1/projects/0190...".
	Method string `json:"method"`
	Path   string `json:"path"`
	// Object is the id the request acted on, when known.
	Object string `json:"object,omitempty"`
	// Status is the HTTP status answered; Code the error code if it failed.
	Status int    `json:"status"`
	Code   string `json:"code,omitempty"`
	// TaskID is the task the request answered with, if any.
	TaskID string `json:"taskId,omitempty"`
	// RemoteAddr is the client's address, e.g. "10.0.0.7".
	RemoteAddr string `json:"remoteAddr,omitempty"`
}

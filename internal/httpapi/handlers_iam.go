package httpapi

import (
	"io"
	"mime"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/audit"
	"github.com/photon-cloud/photon/internal/auth"
)

// Identity and access: tokens, users, role bindings, the audit log.

func (l linker) user(u *api.User) { u.SelfLink = l.base + "/v1/users/" + u.ID }

func (s *Server) needAuth() error {
	if s.Auth == nil || s.Tokens == nil {
		return api.Errorf(api.CodeUnavailable, "identity service not configured")
	}
	return nil
}

// DecodeTokenRequest reads a token request: an OAuth2 form
// (application/x-www-form-urlencoded) or JSON with the same names.
func DecodeTokenRequest(contentType string, body []byte) (*api.TokenRequest, error) {
	var req api.TokenRequest
	mt, _, _ := mime.ParseMediaType(contentType)
	if mt == "application/x-www-form-urlencoded" {
		q, err := url.ParseQuery(string(body))
		if err != nil {
			return nil, api.Errorf(api.CodeInvalidEntity, "malformed form body: %v", err)
		}
		req = api.TokenRequest{GrantType: q.Get("grant_type"), Username: q.Get("username"), Password: q.Get("password"),
			RefreshToken: q.Get("refresh_token"), Scope: q.Get("scope")}
	} else if err := DecodeBody(body, &req); err != nil {
		return nil, err
	}
	if err := auth.ValidateTokenRequest(&req); err != nil {
		return nil, err
	}
	return &req, nil
}

func readBody(r *http.Request) ([]byte, error) { return io.ReadAll(r.Body) }

// token answers POST /v1/auth/token and the old SDK's POST /openidconnect/token.
func (s *Server) token(r *http.Request) (int, any, error) {
	if err := s.needAuth(); err != nil {
		return 0, nil, err
	}
	body, err := readBody(r)
	if err != nil {
		return 0, nil, err
	}
	req, err := DecodeTokenRequest(r.Header.Get("Content-Type"), body)
	if err != nil {
		return 0, nil, err
	}
	if req.GrantType == api.GrantPassword {
		infoOf(r).subject = "login:" + req.Username
	} else {
		infoOf(r).subject = "refresh"
	}
	remote, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		remote = r.RemoteAddr
	}
	resp, err := s.Tokens.Login(r.Context(), req, remote)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, resp, nil
}

func (s *Server) revoke(r *http.Request) (int, any, error) {
	var req api.RevokeRequest
	if err := decode(r, &req); err != nil {
		return 0, nil, err
	}
	if req.Token == "" || len(req.Token) > 256 {
		return 0, nil, api.FieldError("token", "a refresh token is required")
	}
	if err := s.Tokens.Revoke(r.Context(), PrincipalOf(r), req.Token); err != nil {
		return 0, nil, err
	}
	return http.StatusNoContent, nil, nil
}

// Users.

func (s *Server) listUsers(r *http.Request) (int, any, error) {
	token, size, err := pageParams(r)
	if err != nil {
		return 0, nil, err
	}
	l, next, err := s.Auth.ListUsers(r.Context(), token, size)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, list(r, l, next, links(r).user), nil
}

func (s *Server) createUser(r *http.Request) (int, any, error) {
	var spec api.UserCreateSpec
	if err := decode(r, &spec); err != nil {
		return 0, nil, err
	}
	t, err := s.Auth.CreateUser(r.Context(), &spec)
	return taskAnswer(r, t, err)
}

func (s *Server) getUser(r *http.Request) (int, any, error) {
	u, err := s.Auth.GetUser(r.Context(), r.PathValue("id"))
	if err != nil {
		return 0, nil, err
	}
	links(r).user(u)
	return http.StatusOK, u, nil
}

func (s *Server) updateUser(r *http.Request) (int, any, error) {
	var spec api.UserUpdateSpec
	if err := decode(r, &spec); err != nil {
		return 0, nil, err
	}
	t, err := s.Auth.UpdateUser(r.Context(), r.PathValue("id"), &spec)
	return taskAnswer(r, t, err)
}

func (s *Server) deleteUser(r *http.Request) (int, any, error) {
	t, err := s.Auth.DeleteUser(r.Context(), r.PathValue("id"))
	return taskAnswer(r, t, err)
}

// Role bindings: /v1/system/iam, /v1/tenants/{id}/iam, /v1/projects/{id}/iam.

// scopeOf names the scope of an iam route's path.
func (s *Server) scopeOf(r *http.Request, kind string) (auth.Scope, error) {
	id := r.PathValue("id")
	switch kind {
	case auth.ScopeTenant:
		if _, err := s.Tenancy.GetTenant(r.Context(), id); err != nil {
			return auth.Scope{}, err
		}
		return auth.Scope{Kind: kind, ID: id, TenantID: id}, nil
	case auth.ScopeProject:
		p, err := s.Tenancy.GetProject(r.Context(), id)
		if err != nil {
			return auth.Scope{}, err
		}
		return auth.Scope{Kind: kind, ID: id, TenantID: p.TenantID}, nil
	case auth.ScopeVM, auth.ScopeDisk, auth.ScopeImage:
		o, err := s.ownerRules()[objectCollections[kind]].find(r.Context(), id)
		if err != nil {
			return auth.Scope{}, err
		}
		return auth.Scope{Kind: kind, ID: id, TenantID: o.tenantID, ProjectID: o.projectID}, nil
	}
	return auth.SystemScope, nil
}

// objectCollections maps the object scope kinds to their path collections.
var objectCollections = map[string]string{auth.ScopeVM: "vms", auth.ScopeDisk: "disks", auth.ScopeImage: "images"}

// objectIAMRoutes are the /iam routes of single objects: anyone who may read
// the object reads its bindings; tenant-admins change them.
func (s *Server) objectIAMRoutes() []Route {
	var out []Route
	for _, kind := range []string{auth.ScopeVM, auth.ScopeDisk, auth.ScopeImage} {
		p := "/v1/" + objectCollections[kind] + "/{id}/iam"
		out = append(out,
			Route{Method: "GET", Path: p, Perm: PermObjectRead, h: s.getIAM(kind)},
			Route{Method: "POST", Path: p, Perm: PermTenantWrite, h: s.setIAM(kind)},
			Route{Method: "PATCH", Path: p, Perm: PermTenantWrite, h: s.patchIAM(kind)})
	}
	return out
}

func (s *Server) getIAM(kind string) handler {
	return func(r *http.Request) (int, any, error) {
		sc, err := s.scopeOf(r, kind)
		if err != nil {
			return 0, nil, err
		}
		bs, err := s.Auth.Policy(r.Context(), sc)
		if err != nil {
			return 0, nil, err
		}
		return http.StatusOK, bs, nil
	}
}

func (s *Server) setIAM(kind string) handler {
	return func(r *http.Request) (int, any, error) {
		var bs []api.RoleBinding
		if err := decode(r, &bs); err != nil {
			return 0, nil, err
		}
		if _, err := auth.ValidateBindings(kind, bs); err != nil {
			return 0, nil, err
		}
		sc, err := s.scopeOf(r, kind)
		if err != nil {
			return 0, nil, err
		}
		t, err := s.Auth.SetPolicy(r.Context(), sc, bs)
		return taskAnswer(r, t, err)
	}
}

// DecodeDeltas reads a PATCH .../iam body: one RoleBindingDelta or a list.
func DecodeDeltas(kind string, body []byte) ([]api.RoleBindingDelta, error) {
	var ds []api.RoleBindingDelta
	trimmed := strings.TrimLeft(string(body), " \t\r\n")
	if strings.HasPrefix(trimmed, "{") {
		var d api.RoleBindingDelta
		if err := DecodeBody(body, &d); err != nil {
			return nil, err
		}
		ds = []api.RoleBindingDelta{d}
	} else if err := DecodeBody(body, &ds); err != nil {
		return nil, err
	}
	if err := auth.ValidateDeltas(kind, ds); err != nil {
		return nil, err
	}
	return ds, nil
}

func (s *Server) patchIAM(kind string) handler {
	return func(r *http.Request) (int, any, error) {
		body, err := readBody(r)
		if err != nil {
			return 0, nil, err
		}
		ds, err := DecodeDeltas(kind, body)
		if err != nil {
			return 0, nil, err
		}
		sc, err := s.scopeOf(r, kind)
		if err != nil {
			return 0, nil, err
		}
		t, err := s.Auth.PatchPolicy(r.Context(), sc, ds)
		return taskAnswer(r, t, err)
	}
}

// Audit log.

func (s *Server) listAudit(r *http.Request) (int, any, error) {
	if s.Audit == nil {
		return 0, nil, api.Errorf(api.CodeUnavailable, "audit log not configured")
	}
	token, size, err := pageParams(r)
	if err != nil {
		return 0, nil, err
	}
	since, err := audit.ParseSince(r.URL.Query().Get("since"), time.Now())
	if err != nil {
		return 0, nil, err
	}
	l, next, err := s.Audit.List(r.Context(), since, token, size)
	if err != nil {
		return 0, nil, err
	}
	return http.StatusOK, list(r, l, next, func(*api.AuditEntry) {}), nil
}

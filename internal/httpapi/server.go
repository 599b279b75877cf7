// Package httpapi owns the REST API: the route table, authentication of
// every request, request decoding and limits, the one mapping from errors to
// HTTP answers, and the OpenAPI document (openapi.json, tested against the
// route table).
package httpapi

import (
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"reflect"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/audit"
	"github.com/photon-cloud/photon/internal/auth"
	"github.com/photon-cloud/photon/internal/compute"
	"github.com/photon-cloud/photon/internal/hosts"
	"github.com/photon-cloud/photon/internal/images"
	"github.com/photon-cloud/photon/internal/network"
	"github.com/photon-cloud/photon/internal/stackgrow"
	"github.com/photon-cloud/photon/internal/store"
	"github.com/photon-cloud/photon/internal/tasks"
	"github.com/photon-cloud/photon/internal/tenancy"
)

//go:embed openapi.json
var openAPI []byte

// Limits on requests.
const (
	MaxBodyBytes   = 1 << 20
	RequestTimeout = 60 * time.Second
	// RetryAfter is the Retry-After (seconds) of a 503 answer.
	RetryAfter = "5"
)

// Deps are the services the API serves. Services not yet set (nil) leave
// their routes registered but answering ServiceUnavailable.
type Deps struct {
	Store   *store.Store
	Tasks   *tasks.Engine
	Tenancy *tenancy.Service
	Tokens  *auth.Tokens
	Auth    *auth.Service // users and role bindings
	Audit   *audit.Log    // the audit log
	Log     *slog.Logger
	Images  *images.Service
	Hosts   *hosts.Service
	Compute *compute.Service
	Network *network.Service
}

// Server serves the API.
type Server struct {
	Deps
	mux    *http.ServeMux
	routes []Route
	// streams ends the hosts' streams (StopStreams).
	streams     context.Context
	stopStreams context.CancelFunc
}

// Perm is what a route needs of the caller. The path's {id} names the
// object the permission is checked against.
type Perm int

// Permissions routes declare.
const (
	PermPublic        Perm = iota // no credential
	PermAuthenticated             // any valid credential (answers filtered by what it may see)
	PermSystemAdmin               // system administrators only
	PermTenantRead                // {id} is a tenant the caller may read
	PermTenantWrite               // {id} is a tenant the caller may change
	PermProjectRead               // {id} is a project the caller may read
	PermProjectWrite              // {id} is a project the caller may change
	PermObjectRead                // {id} is an object (vm, disk, image, flavor, task) the caller may read
	PermObjectWrite               // {id} is an object the caller may change
	PermHost                      // {id} is the host whose credential the caller holds
)

// Route is one entry of the route table.
type Route struct {
	Method string
	Path   string // ServeMux pattern path, e.g. /v1/tenants/{id}
	// Perm is what the caller needs; PermPublic routes need no token.
	Perm Perm
	// Stream routes move large bodies (image upload and download): wrap
	// applies neither MaxBodyBytes nor RequestTimeout, and the handler gets
	// the ResponseWriter to set its own limits and deadlines.
	Stream bool
	// BodyIDs lists the ids the route's JSON body carries. The service
	// authorizes each against the object the path names, as {id} is
	// here: an object the caller's project may not use answers exactly
	// as a missing one. The isolation matrix tries each with another
	// tenant's object.
	BodyIDs []BodyID
	h       handler
	stream  streamHandler
}

// BodyID is an id in a route's body and the collection it names.
type BodyID struct {
	// Field is the id's place in the body, e.g. "sourceImageId" or
	// "affinities[kind=vm].id".
	Field string
	// Collection is what it names, e.g. "images" (as in paths).
	Collection string
}

// with returns rt carrying ids in its body.
func (rt Route) with(ids ...BodyID) Route {
	rt.BodyIDs = ids
	return rt
}

// streamHandler is a handler of a Stream route. It answers as a handler
// does, or writes the answer itself and returns status 0 and no error.
type streamHandler func(w http.ResponseWriter, r *http.Request) (int, any, error)

// handler answers a request with a status and a body to encode, or an error.
type handler func(r *http.Request) (int, any, error)

// New builds the server.
func New(d Deps) *Server {
	if d.Log == nil {
		d.Log = slog.Default()
	}
	s := &Server{Deps: d, mux: http.NewServeMux()}
	s.streams, s.stopStreams = context.WithCancel(context.Background())
	s.routes = append(s.routeTable(), s.objectIAMRoutes()...)
	for _, rt := range s.routes {
		s.mux.Handle(rt.Method+" "+rt.Path, s.wrap(rt))
	}
	// What no route matches (any method): one lookup per request, not a
	// lookup to tell unknown requests apart and another to route.
	s.mux.HandleFunc(unknownPattern, s.unknown)
	return s
}

// unknownPattern matches what no route does.
const unknownPattern = "/"

// StopStreams ends the hosts' streams (at shutdown: http.Server.Shutdown
// waits for requests, and a stream lasts StreamLifetime); their hosts
// open them again, or poll, elsewhere.
func (s *Server) StopStreams() { s.stopStreams() }

// Routes returns the route table.
func (s *Server) Routes() []Route { return s.routes }

// OpenAPI returns the OpenAPI document served at /v1/openapi.json.
func OpenAPI() []byte { return openAPI }

func (s *Server) routeTable() []Route {
	r := func(method, path string, perm Perm, h handler) Route {
		return Route{Method: method, Path: path, Perm: perm, h: h}
	}
	rs := func(method, path string, perm Perm, h streamHandler) Route {
		return Route{Method: method, Path: path, Perm: perm, Stream: true, stream: h}
	}
	return append(append([]Route{
		r("GET", "/v1/info", PermPublic, s.info),
		r("GET", "/v1/openapi.json", PermPublic, s.openapi),
		r("GET", "/v1/system/auth", PermPublic, s.authInfo),
		r("GET", "/v1/system/info", PermAuthenticated, s.info),
		r("GET", "/v1/system/status", PermAuthenticated, s.status),
		r("GET", "/v1/system/usage", PermSystemAdmin, s.usage), // fleet-wide counts: an administrator's view
		r("GET", "/v1/system/audit", PermSystemAdmin, s.listAudit),
		r("GET", "/v1/system/iam", PermSystemAdmin, s.getIAM(auth.ScopeSystem)),
		r("POST", "/v1/system/iam", PermSystemAdmin, s.setIAM(auth.ScopeSystem)),
		r("PATCH", "/v1/system/iam", PermSystemAdmin, s.patchIAM(auth.ScopeSystem)),

		r("POST", "/v1/auth/token", PermPublic, s.token),
		r("POST", "/openidconnect/token", PermPublic, s.token),
		r("POST", "/v1/auth/revoke", PermAuthenticated, s.revoke),
		r("GET", "/v1/users", PermSystemAdmin, s.listUsers),
		r("POST", "/v1/users", PermSystemAdmin, s.createUser),
		r("GET", "/v1/users/{id}", PermSystemAdmin, s.getUser),
		r("PATCH", "/v1/users/{id}", PermSystemAdmin, s.updateUser),
		r("DELETE", "/v1/users/{id}", PermSystemAdmin, s.deleteUser),

		r("GET", "/v1/tenants", PermAuthenticated, s.listTenants),
		r("POST", "/v1/tenants", PermSystemAdmin, s.createTenant),
		r("GET", "/v1/tenants/{id}", PermTenantRead, s.getTenant),
		r("DELETE", "/v1/tenants/{id}", PermSystemAdmin, s.deleteTenant),
		r("GET", "/v1/tenants/{id}/projects", PermTenantRead, s.listProjects),
		r("POST", "/v1/tenants/{id}/projects", PermTenantWrite, s.createProject),
		r("GET", "/v1/tenants/{id}/quota", PermTenantRead, s.getTenantQuota),
		r("PUT", "/v1/tenants/{id}/quota", PermSystemAdmin, s.setTenantQuota),
		r("PATCH", "/v1/tenants/{id}/quota", PermSystemAdmin, s.setTenantQuota),
		r("DELETE", "/v1/tenants/{id}/quota", PermSystemAdmin, s.setTenantQuota),
		r("GET", "/v1/tenants/{id}/tasks", PermTenantRead, s.entityTasks(api.KindTenant)),
		r("GET", "/v1/tenants/{id}/iam", PermTenantRead, s.getIAM(auth.ScopeTenant)),
		r("POST", "/v1/tenants/{id}/iam", PermTenantWrite, s.setIAM(auth.ScopeTenant)),
		r("PATCH", "/v1/tenants/{id}/iam", PermTenantWrite, s.patchIAM(auth.ScopeTenant)),

		r("GET", "/v1/projects/{id}", PermProjectRead, s.getProject),
		r("DELETE", "/v1/projects/{id}", PermTenantWrite, s.deleteProject),
		r("GET", "/v1/projects/{id}/quota", PermProjectRead, s.getProjectQuota),
		r("PUT", "/v1/projects/{id}/quota", PermTenantWrite, s.setProjectQuota),
		r("PATCH", "/v1/projects/{id}/quota", PermTenantWrite, s.setProjectQuota),
		r("DELETE", "/v1/projects/{id}/quota", PermTenantWrite, s.setProjectQuota),
		r("GET", "/v1/projects/{id}/tasks", PermProjectRead, s.entityTasks(api.KindProject)),
		r("GET", "/v1/projects/{id}/iam", PermProjectRead, s.getIAM(auth.ScopeProject)),
		r("POST", "/v1/projects/{id}/iam", PermTenantWrite, s.setIAM(auth.ScopeProject)),
		r("PATCH", "/v1/projects/{id}/iam", PermTenantWrite, s.patchIAM(auth.ScopeProject)),

		r("GET", "/v1/flavors", PermAuthenticated, s.listFlavors),
		r("POST", "/v1/flavors", PermSystemAdmin, s.createFlavor),
		r("GET", "/v1/flavors/{id}", PermAuthenticated, s.getFlavor),
		r("DELETE", "/v1/flavors/{id}", PermSystemAdmin, s.deleteFlavor),
		r("GET", "/v1/flavors/{id}/tasks", PermAuthenticated, s.entityTasks(api.KindFlavor)),

		r("GET", "/v1/images", PermAuthenticated, s.listImages),
		rs("POST", "/v1/images", PermSystemAdmin, s.uploadImage(false)),
		r("GET", "/v1/images/{id}", PermObjectRead, s.getImage),
		r("DELETE", "/v1/images/{id}", PermObjectWrite, s.deleteImage),
		r("GET", "/v1/images/{id}/tasks", PermObjectRead, s.imageTasks),
		r("GET", "/v1/projects/{id}/images", PermProjectRead, s.listProjectImages),
		rs("POST", "/v1/projects/{id}/images", PermProjectWrite, s.uploadImage(true)),
		rs("GET", "/v1/agent/hosts/{id}/images/{image}/content", PermHost, s.imageContent),

		r("GET", "/v1/tasks", PermAuthenticated, s.listTasks),
	}, append(s.infraRoutes(r, rs), s.networkRoutes(r)...)...), []Route{
		r("GET", "/v1/tasks/{id}", PermObjectRead, s.getTask),
	}...)
}

// ServeHTTP routes a request; unknown paths and methods get API errors
// (unknown).
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// unknown answers a request no route matches: 405 with the methods the
// path allows, or 404.
func (s *Server) unknown(w http.ResponseWriter, r *http.Request) {
	var allow []string
	for _, m := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
		r2 := r.Clone(r.Context())
		r2.Method = m
		if _, p := s.mux.Handler(r2); p != "" && p != unknownPattern {
			allow = append(allow, m)
		}
	}
	if len(allow) > 0 {
		w.Header().Set("Allow", strings.Join(allow, ", "))
		s.writeError(w, r, api.Errorf(api.CodeMethodNotAllowed, "%s is not allowed on %s (allowed: %s)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
		return
	}
	s.writeError(w, r, api.Errorf(api.CodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
}

// wrap adds to a route what every request gets: recovery, a timeout, a
// body limit, authentication, and encoding of the answer.
func (s *Server) wrap(rt Route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		stackgrow.Grow() // a fresh goroutine per request (HTTP/2), bound for etcd
		start := time.Now()
		status := 0
		info := &requestInfo{}
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler { // a response cut short on purpose
					s.recordAudit(r, rt, info, status)
					panic(p)
				}
				s.Log.Error("panic serving request", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				status = s.writeError(w, r, fmt.Errorf("panic: %v", p))
			}
			s.recordAudit(r, rt, info, status)
			s.Log.Debug("request", "method", r.Method, "path", r.URL.Path, "status", status, "duration", time.Since(start))
		}()
		ctx, cancel := r.Context(), context.CancelFunc(func() {})
		if !rt.Stream {
			ctx, cancel = context.WithTimeout(ctx, RequestTimeout)
			r.Body = http.MaxBytesReader(w, r.Body, MaxBodyBytes)
		}
		if !rt.Stream && s.Store != nil {
			// A request waits for etcd at most the store's OpTimeout in
			// all (then 503), however many reads and commits it makes.
			ctx = store.WithWaitBudget(ctx, s.Store.Limits().OpTimeout)
		}
		defer cancel()
		r = r.WithContext(ctx)
		r = r.WithContext(context.WithValue(ctx, infoKey{}, info))
		if err := s.authenticate(r, rt, info); err != nil {
			info.err = err
			status = s.writeError(w, r, err)
			return
		}
		var code int
		var body any
		var err error
		if rt.stream != nil {
			code, body, err = rt.stream(w, r)
		} else {
			code, body, err = rt.h(r)
		}
		if err != nil {
			info.err = err
			status = s.writeError(w, r, err)
			return
		}
		if code == 0 {
			return // a stream handler answered itself
		}
		status = code
		info.body = body
		if raw, ok := body.([]byte); ok {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(code)
			_, _ = w.Write(raw)
			return
		}
		writeJSON(w, code, body)
	})
}

func writeJSON(w http.ResponseWriter, code int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	writeBody(w, body)
}

// jsonAppender is a body that encodes itself (e.g. hosts.DesiredState,
// with records carried as stored).
type jsonAppender interface {
	AppendJSON(b []byte) ([]byte, error)
}

// writeBody writes body's JSON and a newline, as json.Encoder does (with
// store.Encode: encoding/json's bytes in less time). A body that cannot be
// encoded aborts the response (wrap lets the panic through; net/http
// resets the stream): the status is already sent, and an empty answer
// must not pass for one.
func writeBody(w io.Writer, body any) {
	var b []byte
	var err error
	if a, ok := body.(jsonAppender); ok {
		b, err = a.AppendJSON(nil)
	} else {
		b, err = store.Encode(body)
	}
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_, _ = w.Write(append(b, '\n'))
}

// toAPIError maps any error to the API error to send. This is the one place
// that decides; causes of internal errors are logged, never sent.
func toAPIError(err error) (*api.Error, bool) {
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		return ae, false
	case errors.Is(err, store.ErrUnavailable):
		return api.Errorf(api.CodeUnavailable, "the store (etcd) is unavailable; retry later"), false
	case errors.Is(err, store.ErrNoSpace):
		return api.Errorf(api.CodeUnavailable, "the store (etcd) is out of space and refuses changes until an operator frees some; retry later"), false
	case errors.Is(err, store.ErrTooLarge):
		return api.Errorf(api.CodeRequestTooLarge, "the change is larger than the store takes in one request; send less (e.g. shorter metadata or environment)"), false
	case errors.Is(err, store.ErrBadPageToken):
		return api.Errorf(api.CodeInvalidQuery, "pageLink: not a page token this server issued"), false
	case errors.Is(err, store.ErrTooLarge):
		return api.Errorf(api.CodeRequestTooLarge, "the request makes a change too large to store at once; send less"), false
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, store.ErrConflict):
		return api.Errorf(api.CodeUnavailable, "the controller is busy; retry"), true
	}
	var mbe *http.MaxBytesError
	if errors.As(err, &mbe) {
		return api.Errorf(api.CodeRequestTooLarge, "request body larger than %d bytes", mbe.Limit), false
	}
	return api.Errorf(api.CodeInternalError, "internal error; the controller's log has the cause"), true
}

func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) int {
	ae := s.answerError(r, err)
	code := ae.Status()
	if code == http.StatusServiceUnavailable {
		w.Header().Set("Retry-After", RetryAfter)
	}
	writeJSON(w, code, ae)
	// An error may leave the request's body unread (a 413, a 401 before
	// reading): HTTP/2 then resets the stream as the handler returns,
	// which drops an answer still buffered (curl saw a 413's headers and
	// not its body). Sent now, it arrives.
	_ = http.NewResponseController(w).Flush()
	return code
}

// answerError is the API error that answers err (toAPIError), logging the
// cause of an internal one.
func (s *Server) answerError(r *http.Request, err error) *api.Error {
	ae, internal := toAPIError(err)
	switch {
	case internal && errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		// The client went away (e.g. an agent's long poll at shutdown).
		s.Log.Debug("request canceled by the client", "method", r.Method, "path", r.URL.Path)
	case internal:
		s.Log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
	}
	return ae
}

// decode reads a JSON body into v. Malformed JSON is InvalidJson naming
// where it went wrong.
func decode(r *http.Request, v any) error {
	dec := json.NewDecoder(r.Body)
	if err := dec.Decode(v); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return jsonError(err)
	}
	if dec.More() {
		return api.Errorf(api.CodeInvalidJSON, "request body holds more than one JSON value")
	}
	return nil
}

// DecodeBody is decode for a byte slice (the fuzz target's entry).
func DecodeBody(b []byte, v any) error {
	r, _ := http.NewRequest("POST", "/", strings.NewReader(string(b)))
	return decode(r, v)
}

func jsonError(err error) error {
	var se *json.SyntaxError
	var te *json.UnmarshalTypeError
	switch {
	case errors.As(err, &se):
		return api.Errorf(api.CodeInvalidJSON, "malformed JSON at byte %d: %v", se.Offset, err)
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		e := api.Errorf(api.CodeInvalidJSON, "%s: want %s, got JSON %s", field, jsonKind(te.Type), te.Value)
		e.Data = map[string]string{"field": field}
		return e
	case err.Error() == "EOF":
		return api.Errorf(api.CodeInvalidJSON, "empty request body; want a JSON object")
	}
	return api.Errorf(api.CodeInvalidJSON, "malformed JSON: %v", err)
}

// jsonKind names a Go type as the JSON a client should send.
func jsonKind(t reflect.Type) string {
	switch t.Kind() {
	case reflect.Struct, reflect.Map:
		return "an object"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Pointer:
		return jsonKind(t.Elem())
	}
	return "a number"
}

// pageParams reads ?pageSize= and ?pageLink=.
func pageParams(r *http.Request) (string, int, error) {
	q := r.URL.Query()
	size := 0
	if v := q.Get("pageSize"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > tenancy.MaxPageSize {
			e := api.Errorf(api.CodeInvalidQuery, "pageSize: want 1-%d, got %q", tenancy.MaxPageSize, v)
			e.Data = map[string]string{"field": "pageSize"}
			return "", 0, e
		}
		size = n
	}
	if size == 0 {
		size = tenancy.MaxPageSize
	}
	return q.Get("pageLink"), size, nil
}

// baseURL is the scheme and host the client reached us at.
func baseURL(r *http.Request) string {
	scheme := "https"
	if r.TLS == nil {
		scheme = "http"
	}
	return scheme + "://" + r.Host
}

// list builds a list body with selfLinks and the next page's link.
func list[T any](r *http.Request, items []T, next string, link func(*T)) *api.List[T] {
	for i := range items {
		link(&items[i])
	}
	if items == nil {
		items = []T{}
	}
	out := &api.List[T]{Items: items}
	if next != "" {
		q := r.URL.Query()
		q.Set("pageLink", next)
		out.NextPageLink = r.URL.Path + "?" + q.Encode()
	}
	return out
}

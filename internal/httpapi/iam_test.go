package httpapi_test

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/auth"
	"github.com/photon-cloud/photon/internal/controller"
	"github.com/photon-cloud/photon/internal/photontest"
)

// post sends a raw POST and returns the status and body.
func post(t *testing.T, c *photontest.Cloud, path, contentType, body string) (int, []byte) {
	t.Helper()
	req, _ := http.NewRequest("POST", c.URL+path, strings.NewReader(body))
	req.Header.Set("Content-Type", contentType)
	resp, err := (&http.Client{Transport: httpTransport(t, c)}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func TestTokens(t *testing.T) {
	c := photontest.NewController(t, "")
	cl := c.Client
	waitFor(t, cl)(cl.CreateUser(ctx(), &api.UserCreateSpec{Name: "alice", Password: "alice-password", Groups: []string{"devs"}}))
	form := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password"}, "scope": {"openid offline_access"}}.Encode()

	for _, tc := range []struct {
		name, path, contentType, body string
		status                        int
		code                          string
	}{
		{"json password", "/v1/auth/token", "application/json", `{"grant_type":"password","username":"alice","password":"alice-password"}`, 200, ""},
		{"form password", "/v1/auth/token", "application/x-www-form-urlencoded", form, 200, ""},
		{"old SDK endpoint", "/openidconnect/token", "application/x-www-form-urlencoded", form, 200, ""},
		{"wrong password", "/v1/auth/token", "application/json", `{"grant_type":"password","username":"alice","password":"nope-nope"}`, 401, api.CodeInvalidCredentials},
		{"unknown user", "/v1/auth/token", "application/json", `{"grant_type":"password","username":"bob","password":"whatever1"}`, 401, api.CodeInvalidCredentials},
		{"no grant", "/v1/auth/token", "application/json", `{"username":"alice"}`, 400, api.CodeInvalidEntity},
		{"unknown grant", "/v1/auth/token", "application/json", `{"grant_type":"client_credentials"}`, 400, api.CodeInvalidEntity},
		{"bad refresh token", "/v1/auth/token", "application/json", `{"grant_type":"refresh_token","refresh_token":"x.y"}`, 401, api.CodeInvalidAuthToken},
		{"malformed json", "/v1/auth/token", "application/json", `{"grant_type":`, 400, api.CodeInvalidJSON},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, b := post(t, c, tc.path, tc.contentType, tc.body)
			if status != tc.status {
				t.Fatalf("status %d %s, want %d", status, b, tc.status)
			}
			if tc.code != "" {
				var e api.Error
				if json.Unmarshal(b, &e); e.Code != tc.code {
					t.Errorf("code %q, want %q", e.Code, tc.code)
				}
				return
			}
			var tr api.TokenResponse
			if err := json.Unmarshal(b, &tr); err != nil || tr.TokenType != "Bearer" || tr.ExpiresIn != 900 ||
				strings.Count(tr.AccessToken, ".") != 2 || tr.RefreshToken == "" || tr.IDToken == "" {
				t.Errorf("token response %s (%v)", b, err)
			}
		})
	}

	// GET /v1/system/auth names this controller as the token endpoint.
	var ai api.AuthInfo
	if err := c.NewClient(t, "").Do(ctx(), "GET", "/v1/system/auth", nil, &ai); err != nil || !ai.Enabled || ai.Endpoint != "127.0.0.1" || ai.Port == 0 {
		t.Errorf("system/auth = %+v, %v", ai, err)
	}

	t.Run("refresh, revoke, delete", func(t *testing.T) {
		tok, err := cl.Login(ctx(), "alice", "alice-password")
		if err != nil {
			t.Fatal(err)
		}
		alice := c.NewClient(t, tok.AccessToken)
		if _, err := alice.ListTenants(ctx(), ""); err != nil {
			t.Fatalf("alice lists tenants: %v", err)
		}
		again, err := cl.Refresh(ctx(), tok.RefreshToken)
		if err != nil || again.AccessToken == "" || again.AccessToken == tok.AccessToken {
			t.Fatalf("refresh = %+v, %v", again, err)
		}
		// Revoking the refresh token ends both tokens of the session.
		if err := alice.Revoke(ctx(), again.RefreshToken); err != nil {
			t.Fatal(err)
		}
		if _, err := alice.ListTenants(ctx(), ""); !isCode(err, api.CodeInvalidAuthToken) {
			t.Errorf("revoked access token: %v", err)
		}
		if _, err := cl.Refresh(ctx(), tok.RefreshToken); !isCode(err, api.CodeInvalidAuthToken) {
			t.Errorf("revoked refresh token: %v", err)
		}
		// Deleting the user stops its tokens at once.
		tok, _ = cl.Login(ctx(), "alice", "alice-password")
		alice = c.NewClient(t, tok.AccessToken)
		waitFor(t, cl)(cl.DeleteUser(ctx(), "alice"))
		if _, err := alice.ListTenants(ctx(), ""); !isCode(err, api.CodeInvalidAuthToken) {
			t.Errorf("token of a deleted user: %v", err)
		}
	})

	t.Run("users", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			spec api.UserCreateSpec
			code string
		}{
			{"short password", api.UserCreateSpec{Name: "u1", Password: "short"}, api.CodeInvalidEntity},
			{"bad name", api.UserCreateSpec{Name: "a b", Password: "long-enough"}, api.CodeInvalidEntity},
			{"bad group", api.UserCreateSpec{Name: "u1", Password: "long-enough", Groups: []string{"x/y"}}, api.CodeInvalidEntity},
		} {
			if _, err := cl.CreateUser(ctx(), &tc.spec); !isCode(err, tc.code) {
				t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
			}
		}
		waitFor(t, cl)(cl.CreateUser(ctx(), &api.UserCreateSpec{Name: "carol", Password: "carol-password"}))
		if _, err := cl.CreateUser(ctx(), &api.UserCreateSpec{Name: "carol", Password: "carol-password"}); !errors.Is(err, api.ErrNameTaken) {
			t.Errorf("duplicate user: %v", err)
		}
		tok, _ := cl.Login(ctx(), "carol", "carol-password")
		pw := "new-password"
		waitFor(t, cl)(cl.UpdateUser(ctx(), "carol", &api.UserUpdateSpec{Password: &pw}))
		if _, err := c.NewClient(t, tok.AccessToken).ListTenants(ctx(), ""); !isCode(err, api.CodeInvalidAuthToken) {
			t.Errorf("token after a password change: %v", err)
		}
		if _, err := cl.Login(ctx(), "carol", "new-password"); err != nil {
			t.Errorf("login with the new password: %v", err)
		}
		users, err := cl.ListUsers(ctx())
		if err != nil || len(users) != 1 || users[0].Name != "carol" || users[0].SelfLink == "" {
			t.Errorf("users = %+v, %v", users, err)
		}
	})
}

func isCode(err error, code string) bool {
	var ae *api.Error
	return errors.As(err, &ae) && ae.Code == code
}

// TestAccessTokenExpiry: an expired access token is 401 ExpiredAuthToken;
// a client holding the session refreshes transparently.
func TestAccessTokenExpiry(t *testing.T) {
	c := photontest.NewController(t, "", func(cfg *controller.Config) { cfg.AccessTokenTTL = time.Second })
	cl := c.Client
	waitFor(t, cl)(cl.CreateUser(ctx(), &api.UserCreateSpec{Name: "dave", Password: "dave-password"}))
	tok, err := cl.Login(ctx(), "dave", "dave-password")
	if err != nil {
		t.Fatal(err)
	}
	refreshed := 0
	// The session claims a long life, so only the server's 401 triggers the refresh.
	s := client.Session{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Expires: time.Now().Add(time.Hour)}
	auto, err := client.New(c.URL, client.WithCACertFile(c.CACert), client.WithSession(s, func(client.Session) { refreshed++ }))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(2500 * time.Millisecond) // past expiry and the JWT library's leeway
	if _, err := c.NewClient(t, tok.AccessToken).ListTenants(ctx(), ""); !isCode(err, api.CodeExpiredAuthToken) {
		t.Errorf("expired token: %v, want ExpiredAuthToken", err)
	}
	if _, err := auto.ListTenants(ctx(), ""); err != nil || refreshed != 1 {
		t.Errorf("session client after expiry: %v, refreshed %d times", err, refreshed)
	}
}

// TestLoginRateLimit: a brute-force loop against one user is throttled
// to one guess per UserEvery after UserBurst failures, the right password
// included; other users from another address are unaffected.
func TestLoginRateLimit(t *testing.T) {
	lim := auth.LoginLimits{UserBurst: 5, UserEvery: 2 * time.Second, IPBurst: 50, IPEvery: time.Second}
	c := photontest.NewController(t, "", func(cfg *controller.Config) { cfg.LoginLimits = lim })
	cl := c.Client
	waitFor(t, cl)(cl.CreateUser(ctx(), &api.UserCreateSpec{Name: "erin", Password: "erin-password"}))
	waitFor(t, cl)(cl.CreateUser(ctx(), &api.UserCreateSpec{Name: "frank", Password: "frank-password"}))
	anon := c.NewClient(t, "")
	const attempts = 40
	counts := map[string]int{}
	start := time.Now()
	for i := 0; i < attempts; i++ {
		_, err := anon.Login(ctx(), "erin", "guess-"+string(rune('a'+i%26)))
		var ae *api.Error
		errors.As(err, &ae)
		counts[ae.Code]++
	}
	took := time.Since(start)
	t.Logf("brute force: %d wrong passwords in %v: %d InvalidCredentials (401), %d TooManyRequests (429)",
		attempts, took.Round(time.Millisecond), counts[api.CodeInvalidCredentials], counts[api.CodeTooManyRequests])
	if counts[api.CodeInvalidCredentials] > lim.UserBurst+int(took/lim.UserEvery)+1 || counts[api.CodeTooManyRequests] < attempts-lim.UserBurst-int(took/lim.UserEvery)-1 {
		t.Errorf("not throttled: %v", counts)
	}
	// The right password is refused while throttled, with a retry hint.
	_, err := anon.Login(ctx(), "erin", "erin-password")
	var ae *api.Error
	if !errors.As(err, &ae) || ae.HTTPStatus != 429 || ae.Data["retryAfter"] == "" {
		t.Errorf("right password while throttled: %v", err)
	}
	if _, err := anon.Login(ctx(), "frank", "frank-password"); err != nil {
		t.Errorf("another user: %v", err)
	}
	time.Sleep(lim.UserEvery + 100*time.Millisecond)
	if _, err := anon.Login(ctx(), "erin", "erin-password"); err != nil {
		t.Errorf("after the wait: %v", err)
	}
}

// TestVisibility: lists and objects show a caller only what its roles reach.
func TestVisibility(t *testing.T) {
	c := photontest.NewController(t, "")
	cl := c.Client
	var tenants, projects [2]string
	for i, name := range []string{"vA", "vB"} {
		tenants[i] = waitFor(t, cl)(cl.CreateTenant(ctx(), &api.TenantCreateSpec{Name: name})).Entity.ID
		projects[i] = waitFor(t, cl)(cl.CreateProject(ctx(), tenants[i], &api.ProjectCreateSpec{Name: name + "1"})).Entity.ID
	}
	sibling := waitFor(t, cl)(cl.CreateProject(ctx(), tenants[0], &api.ProjectCreateSpec{Name: "vA2"})).Entity.ID
	for _, u := range []string{"pat", "tom", "gina"} {
		waitFor(t, cl)(cl.CreateUser(ctx(), &api.UserCreateSpec{Name: u, Password: "password-" + u, Groups: []string{"team-" + u}}))
	}
	waitFor(t, cl)(cl.PatchIAM(ctx(), client.IAMPath("project", projects[0]), api.RoleBindingDelta{Action: api.ActionAdd, Role: api.RoleProjectUser, Subject: "user:pat"}))
	waitFor(t, cl)(cl.SetIAM(ctx(), client.IAMPath("tenant", tenants[0]), []api.RoleBinding{{Role: api.RoleTenantAdmin, Subjects: []string{"tom"}}}))
	// A group grant reaches its members.
	waitFor(t, cl)(cl.PatchIAM(ctx(), client.IAMPath("project", projects[1]), api.RoleBindingDelta{Action: api.ActionAdd, Role: api.RoleProjectViewer, Subject: "group:team-gina"}))

	login := func(u string) *client.Client {
		tok, err := cl.Login(ctx(), u, "password-"+u)
		if err != nil {
			t.Fatal(err)
		}
		return c.NewClient(t, tok.AccessToken)
	}
	pat, tom, gina := login("pat"), login("tom"), login("gina")

	for _, tc := range []struct {
		name     string
		cl       *client.Client
		tenants  []string
		projects int // projects of tenant A it sees (-1: tenant A invisible)
	}{
		{"project-user", pat, []string{"vA"}, 1},
		{"tenant-admin", tom, []string{"vA"}, 2},
		{"group viewer in B", gina, []string{"vB"}, -1},
		{"system-admin", cl, []string{"vA", "vB"}, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := tc.cl.ListTenants(ctx(), "")
			var names []string
			for _, tn := range l {
				names = append(names, tn.Name)
			}
			if err != nil || strings.Join(names, ",") != strings.Join(tc.tenants, ",") {
				t.Errorf("tenants = %v, %v; want %v", names, err, tc.tenants)
			}
			ps, err := tc.cl.ListProjects(ctx(), tenants[0], "")
			if tc.projects < 0 {
				if !isCode(err, api.CodeTenantNotFound) {
					t.Errorf("projects of a foreign tenant: %v", err)
				}
				return
			}
			if err != nil || len(ps) != tc.projects {
				t.Errorf("projects = %d, %v; want %d", len(ps), err, tc.projects)
			}
			tn, err := tc.cl.GetTenant(ctx(), tenants[0])
			if err != nil || len(tn.Projects) != tc.projects {
				t.Errorf("tenant's project refs = %+v, %v", tn, err)
			}
		})
	}
	// Task listings filter by the tenant and project recorded on each task.
	tasks, err := pat.ListTasks(ctx(), client.TaskFilter{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tk := range tasks {
		if tk.TenantID != tenants[0] || (tk.ProjectID != "" && tk.ProjectID != projects[0]) {
			t.Errorf("project-user sees task %s %s of tenant %s project %s", tk.Operation, tk.ID, tk.TenantID, tk.ProjectID)
		}
	}
	if len(tasks) == 0 {
		t.Error("project-user sees no tasks")
	}
	// Tasks named by id (with and without a wait: all are done) are
	// filtered the same way: naming a foreign task does not show it.
	all, err := cl.ListTasks(ctx(), client.TaskFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var ids, mine []string
	for _, tk := range all {
		ids = append(ids, tk.ID)
	}
	for _, tk := range tasks {
		mine = append(mine, tk.ID)
	}
	slices.Sort(mine)
	for _, q := range []string{"", "&wait=5"} {
		var l api.List[api.Task]
		if err := pat.Do(ctx(), "GET", "/v1/tasks?ids="+strings.Join(ids, ",")+q, nil, &l); err != nil {
			t.Fatal(err)
		}
		var got []string
		for _, tk := range l.Items {
			got = append(got, tk.ID)
		}
		slices.Sort(got)
		if len(ids) <= len(mine) || !slices.Equal(got, mine) {
			t.Errorf("project-user naming all %d tasks%s sees %d, want its own %d", len(ids), q, len(got), len(mine))
		}
	}
	if _, err := pat.GetProject(ctx(), sibling); !isCode(err, api.CodeProjectNotFound) {
		t.Errorf("sibling project: %v, want ProjectNotFound", err)
	}
	if _, err := gina.GetProject(ctx(), projects[1]); err != nil {
		t.Errorf("group member: %v", err)
	}
	// Bad bindings.
	for _, tc := range []struct {
		name string
		path string
		d    api.RoleBindingDelta
	}{
		{"role of another scope", client.IAMPath("tenant", tenants[0]), api.RoleBindingDelta{Action: api.ActionAdd, Role: api.RoleProjectUser, Subject: "pat"}},
		{"unknown user", client.IAMPath("tenant", tenants[0]), api.RoleBindingDelta{Action: api.ActionAdd, Role: api.RoleTenantAdmin, Subject: "user:nobody"}},
		{"bad action", client.IAMPath("project", projects[0]), api.RoleBindingDelta{Action: "GRANT", Role: api.RoleProjectUser, Subject: "pat"}},
		{"bad subject", client.IAMPath("project", projects[0]), api.RoleBindingDelta{Action: api.ActionAdd, Role: api.RoleProjectUser, Subject: "robot:x"}},
	} {
		if _, err := cl.PatchIAM(ctx(), tc.path, tc.d); !isCode(err, api.CodeInvalidEntity) {
			t.Errorf("%s: %v, want InvalidEntity", tc.name, err)
		}
	}
	// Removing the grant removes the access at once.
	waitFor(t, cl)(cl.PatchIAM(ctx(), client.IAMPath("project", projects[0]), api.RoleBindingDelta{Action: api.ActionRemove, Role: api.RoleProjectUser, Subject: "user:pat"}))
	if _, err := pat.GetProject(ctx(), projects[0]); !isCode(err, api.CodeProjectNotFound) {
		t.Errorf("after REMOVE: %v", err)
	}
	bs, err := tom.GetIAM(ctx(), client.IAMPath("tenant", tenants[0]))
	if err != nil || len(bs) != 1 || bs[0].Subjects[0] != "user:tom" {
		t.Errorf("tenant iam = %+v, %v", bs, err)
	}
}

// TestAudit: mutating requests, refused ones included, are in the audit
// log with who, what, the object, the result and the task.
func TestAudit(t *testing.T) {
	c := photontest.NewController(t, "")
	cl := c.Client
	since := time.Now().Add(-time.Second).UnixMilli()
	task := waitFor(t, cl)(cl.CreateTenant(ctx(), &api.TenantCreateSpec{Name: "audited"}))
	_, _ = cl.CreateTenant(ctx(), &api.TenantCreateSpec{Name: "audited"}) // NameTaken
	_, _ = cl.GetTenant(ctx(), task.Entity.ID)                            // a read: not audited
	_, _ = c.NewClient(t, "").Login(ctx(), "nobody", "wrong-password")
	entries, err := cl.ListAudit(ctx(), "")
	if err != nil {
		t.Fatal(err)
	}
	want := []struct {
		subject, method, path, code string
		status                      int
		task                        bool
	}{
		{"admin", "POST", "/v1/tenants", "", 201, true},
		{"admin", "POST", "/v1/tenants", api.CodeNameTaken, 400, false},
		{"login:nobody", "POST", "/v1/auth/token", api.CodeInvalidCredentials, 401, false},
	}
	if len(entries) != len(want) {
		t.Fatalf("audit = %+v, want %d entries", entries, len(want))
	}
	for i, w := range want {
		e := entries[i]
		if e.Subject != w.subject || e.Method != w.method || e.Path != w.path || e.Code != w.code || e.Status != w.status ||
			(e.TaskID != "") != w.task || e.Time < since || e.RemoteAddr == "" {
			t.Errorf("entry %d = %+v, want %+v", i, e, w)
		}
	}
	if entries[0].TaskID != task.ID || entries[0].Object != task.Entity.ID {
		t.Errorf("entry 0 task/object = %s/%s, want %s/%s", entries[0].TaskID, entries[0].Object, task.ID, task.Entity.ID)
	}
	time.Sleep(5 * time.Millisecond) // the last entry is now more than 1 ms old
	later, err := cl.ListAudit(ctx(), "1ms")
	if err != nil || len(later) != 0 {
		t.Errorf("since 1ms ago: %d entries, %v", len(later), err)
	}
	if _, err := cl.ListAudit(ctx(), "yesterday"); !isCode(err, api.CodeInvalidQuery) {
		t.Errorf("bad since: %v", err)
	}
}

// TestTokensAcrossControllers: two controllers on one etcd accept each
// other's tokens (the signing keys are in etcd).
func TestTokensAcrossControllers(t *testing.T) {
	etcd := photontest.ExternalEtcd(t)
	c1 := photontest.NewController(t, etcd)
	c2 := photontest.NewController(t, etcd)
	// The controller started last holds the bootstrap token.
	waitFor(t, c2.Client)(c2.Client.CreateUser(ctx(), &api.UserCreateSpec{Name: "hal", Password: "hal-password"}))
	tok, err := c2.NewClient(t, "").Login(ctx(), "hal", "hal-password")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c1.NewClient(t, tok.AccessToken).ListTenants(ctx(), ""); err != nil {
		t.Errorf("token from controller 2 at controller 1: %v", err)
	}
	if _, err := c1.NewClient(t, "").Refresh(ctx(), tok.RefreshToken); err != nil {
		t.Errorf("refresh at the other controller: %v", err)
	}
}

// TestObjectGrants: a grant on one image reaches that image alone.
func TestObjectGrants(t *testing.T) {
	c := photontest.NewController(t, "")
	cl := c.Client
	tid := waitFor(t, cl)(cl.CreateTenant(ctx(), &api.TenantCreateSpec{Name: "og"})).Entity.ID
	pid := waitFor(t, cl)(cl.CreateProject(ctx(), tid, &api.ProjectCreateSpec{Name: "og1"})).Entity.ID
	upload := func(name string) string {
		task, err := cl.UploadImage(ctx(), strings.NewReader(strings.Repeat("x", 4096)), 4096, client.ImageUpload{Name: name, ProjectID: pid, FileName: "d.raw"})
		return waitFor(t, cl)(task, err).Entity.ID
	}
	img, other := upload("shared"), upload("private")
	waitFor(t, cl)(cl.CreateUser(ctx(), &api.UserCreateSpec{Name: "oscar", Password: "oscar-password"}))
	path := "/v1/images/" + img + "/iam"
	waitFor(t, cl)(cl.PatchIAM(ctx(), path, api.RoleBindingDelta{Action: api.ActionAdd, Role: api.RoleProjectViewer, Subject: "user:oscar"}))
	if bs, err := cl.GetIAM(ctx(), path); err != nil || len(bs) != 1 || bs[0].Subjects[0] != "user:oscar" {
		t.Fatalf("image iam = %+v, %v", bs, err)
	}
	tok, err := cl.Login(ctx(), "oscar", "oscar-password")
	if err != nil {
		t.Fatal(err)
	}
	oscar := c.NewClient(t, tok.AccessToken)
	for _, tc := range []struct {
		name   string
		call   func() error
		status int
	}{
		{"read the image", func() error { _, err := oscar.GetImage(ctx(), img); return err }, 200},
		{"read its bindings", func() error { _, err := oscar.GetIAM(ctx(), path); return err }, 200},
		{"delete it (viewer)", func() error { _, err := oscar.DeleteImage(ctx(), img); return err }, 403},
		{"change its bindings", func() error {
			_, err := oscar.PatchIAM(ctx(), path, api.RoleBindingDelta{Action: api.ActionAdd, Role: api.RoleProjectUser, Subject: "user:oscar"})
			return err
		}, 403},
		{"another image of the project", func() error { _, err := oscar.GetImage(ctx(), other); return err }, 404},
		{"the project", func() error { _, err := oscar.GetProject(ctx(), pid); return err }, 404},
	} {
		err := tc.call()
		status := 200
		var ae *api.Error
		if errors.As(err, &ae) {
			status = ae.HTTPStatus
		} else if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if status != tc.status {
			t.Errorf("%s: %d (%v), want %d", tc.name, status, err, tc.status)
		}
	}
}

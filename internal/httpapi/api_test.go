package httpapi_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/httpapi"
	"github.com/photon-cloud/photon/internal/photontest"
)

// TestOpenAPIMatchesRoutes checks that every route the server registers is
// in openapi.json and every operation there is a route.
func TestOpenAPIMatchesRoutes(t *testing.T) {
	var doc struct {
		OpenAPI string                                `json:"openapi"`
		Paths   map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(httpapi.OpenAPI(), &doc); err != nil {
		t.Fatalf("openapi.json: %v", err)
	}
	if !strings.HasPrefix(doc.OpenAPI, "3.") {
		t.Errorf("openapi = %q, want 3.x", doc.OpenAPI)
	}
	inDoc := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			switch method {
			case "get", "put", "post", "delete", "patch", "head", "options", "trace":
				inDoc[strings.ToUpper(method)+" "+path] = true
			}
		}
	}
	routes := map[string]bool{}
	for _, r := range httpapi.New(httpapi.Deps{Log: photontest.Logger(t)}).Routes() {
		routes[r.Method+" "+r.Path] = true
	}
	var missing, extra []string
	for k := range routes {
		if !inDoc[k] {
			missing = append(missing, k)
		}
	}
	for k := range inDoc {
		if !routes[k] {
			extra = append(extra, k)
		}
	}
	sort.Strings(missing)
	sort.Strings(extra)
	if len(missing) > 0 {
		t.Errorf("routes missing from openapi.json:\n  %s", strings.Join(missing, "\n  "))
	}
	if len(extra) > 0 {
		t.Errorf("openapi.json operations with no route:\n  %s", strings.Join(extra, "\n  "))
	}
}

// raw sends a request with a raw body and returns the status and decoded error.
func raw(t *testing.T, c *photontest.Cloud, token, method, path, body string) (int, api.Error) {
	t.Helper()
	req, err := http.NewRequest(method, c.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	hc := &http.Client{Transport: httpTransport(t, c)}
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var e api.Error
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, e
}

func httpTransport(t *testing.T, c *photontest.Cloud) http.RoundTripper {
	t.Helper()
	pem, err := os.ReadFile(c.CACert)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate")
	}
	return &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}}
}

func ctx() context.Context { return context.Background() }

func quota(kv ...any) *api.QuotaSpec {
	q := &api.QuotaSpec{QuotaItems: map[string]api.QuotaItem{}}
	for i := 0; i+2 < len(kv)+1; i += 3 {
		q.QuotaItems[kv[i].(string)] = api.QuotaItem{Limit: float64(kv[i+1].(int)), Unit: kv[i+2].(string)}
	}
	return q
}

// waitFor returns a function that waits for a task-returning call and
// fails the test unless it completes: waitFor(t, c)(c.CreateTenant(...)).
func waitFor(t *testing.T, c *client.Client) func(*api.Task, error) *api.Task {
	return func(task *api.Task, err error) *api.Task {
		t.Helper()
		return mustTask(t, c, task, err)
	}
}

func mustTask(t *testing.T, c *client.Client, task *api.Task, err error) *api.Task {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	done, err := c.WaitTask(ctx(), task)
	if err != nil {
		t.Fatal(err)
	}
	if done.State != api.TaskCompleted {
		t.Fatalf("task %s %s: %v", done.Operation, done.State, done.Err())
	}
	return done
}

func TestAPI(t *testing.T) {
	for _, mode := range photontest.ControllerModes {
		t.Run(mode.Name, func(t *testing.T) {
			c := mode.Start(t)
			cl := c.Client
			t.Run("auth", func(t *testing.T) { testAuth(t, c) })
			t.Run("bad input", func(t *testing.T) { testBadInput(t, c) })
			t.Run("tenants projects quotas", func(t *testing.T) { testTenancy(t, c, cl) })
			t.Run("flavors", func(t *testing.T) { testFlavors(t, cl) })
			t.Run("paging", func(t *testing.T) { testPaging(t, cl) })
			t.Run("quota race", func(t *testing.T) { testQuotaRace(t, cl) })
			t.Run("restart keeps state", func(t *testing.T) {
				before, err := client.ListAll[api.Tenant](ctx(), cl, "/v1/tenants")
				if err != nil {
					t.Fatal(err)
				}
				c.Restart(t)
				after, err := client.ListAll[api.Tenant](ctx(), c.Client, "/v1/tenants")
				if err != nil {
					t.Fatal(err)
				}
				if len(before) == 0 || len(after) != len(before) {
					t.Fatalf("tenants before restart %d, after %d", len(before), len(after))
				}
				for i := range before {
					if before[i].ID != after[i].ID || fmt.Sprint(before[i].Quota) != fmt.Sprint(after[i].Quota) {
						t.Errorf("tenant %d changed across restart: %+v -> %+v", i, before[i], after[i])
					}
				}
			})
		})
	}
}

func testAuth(t *testing.T, c *photontest.Cloud) {
	for _, tc := range []struct {
		name, token, path string
		status            int
		code              string
	}{
		{"info is open", "", "/v1/info", 200, ""},
		{"auth info is open", "", "/v1/system/auth", 200, ""},
		{"openapi is open", "", "/v1/openapi.json", 200, ""},
		{"missing token", "", "/v1/tenants", 401, api.CodeMissingAuthToken},
		{"wrong token", "nope", "/v1/tenants", 401, api.CodeInvalidAuthToken},
		{"wrong token on status", "nope", "/v1/system/status", 401, api.CodeInvalidAuthToken},
		{"admin token", c.Token, "/v1/tenants", 200, ""},
		{"unknown path", c.Token, "/v1/nothing", 404, api.CodeNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, e := raw(t, c, tc.token, "GET", tc.path, "")
			if status != tc.status || e.Code != tc.code {
				t.Errorf("GET %s = %d %q, want %d %q", tc.path, status, e.Code, tc.status, tc.code)
			}
		})
	}
}

func testBadInput(t *testing.T, c *photontest.Cloud) {
	long := strings.Repeat("a", 64)
	for _, tc := range []struct {
		name, method, path, body string
		code, field              string
	}{
		{"malformed JSON", "POST", "/v1/tenants", `{"name":`, api.CodeInvalidJSON, ""},
		{"empty body", "POST", "/v1/tenants", ``, api.CodeInvalidJSON, ""},
		{"wrong type", "POST", "/v1/tenants", `{"name": 5}`, api.CodeInvalidJSON, "name"},
		{"missing name", "POST", "/v1/tenants", `{}`, api.CodeInvalidEntity, "name"},
		{"long name", "POST", "/v1/tenants", `{"name":"` + long + `"}`, api.CodeInvalidEntity, "name"},
		{"bad characters", "POST", "/v1/tenants", `{"name":"a b/c"}`, api.CodeInvalidEntity, "name"},
		{"name starting with a digit", "POST", "/v1/tenants", `{"name":"1a"}`, api.CodeInvalidEntity, "name"},
		{"negative quota", "POST", "/v1/tenants", `{"name":"x","quota":{"quotaItems":{"vm.cpu":{"limit":-1,"unit":"COUNT"}}}}`, api.CodeInvalidEntity, "quota.quotaItems.vm.cpu"},
		{"unknown unit", "POST", "/v1/tenants", `{"name":"x","quota":{"quotaItems":{"vm.cpu":{"limit":1,"unit":"TB"}}}}`, api.CodeInvalidEntity, "quota.quotaItems.vm.cpu"},
		{"unknown flavor kind", "POST", "/v1/flavors", `{"name":"f","kind":"gpu","cost":[]}`, api.CodeInvalidEntity, "kind"},
		{"vm flavor without cpu", "POST", "/v1/flavors", `{"name":"f","kind":"vm","cost":[{"key":"vm.memory","value":1,"unit":"GB"}]}`, api.CodeInvalidEntity, "cost"},
		{"flavor cost unit", "POST", "/v1/flavors", `{"name":"f","kind":"ephemeral-disk","cost":[{"key":"d","value":1,"unit":"XB"}]}`, api.CodeInvalidEntity, "cost[0]"},
		{"bad page size", "GET", "/v1/tenants?pageSize=0", ``, api.CodeInvalidQuery, "pageSize"},
		{"bad page link", "GET", "/v1/tenants?pageLink=zzz", ``, api.CodeInvalidQuery, ""},
		{"bad task state", "GET", "/v1/tasks?state=DONE", ``, api.CodeInvalidQuery, ""},
		{"bad task wait", "GET", "/v1/tasks/t1?wait=forever", ``, api.CodeInvalidQuery, ""},
		{"task wait too long", "GET", "/v1/tasks/t1?wait=2m", ``, api.CodeInvalidQuery, ""},
		{"negative task wait", "GET", "/v1/tasks/t1?wait=-1", ``, api.CodeInvalidQuery, ""},
		{"tasks by id with a filter", "GET", "/v1/tasks?ids=t1&state=QUEUED", ``, api.CodeInvalidQuery, ""},
		{"tasks by id, bad wait", "GET", "/v1/tasks?ids=t1&wait=forever", ``, api.CodeInvalidQuery, ""},
		{"too many tasks by id", "GET", "/v1/tasks?ids=" + strings.Repeat("t1,", 1001), ``, api.CodeInvalidQuery, ""},
		{"bad method", "PUT", "/v1/tenants", `{}`, api.CodeMethodNotAllowed, ""},
		{"bad method on a path with an id", "DELETE", "/v1/tasks/t1", ``, api.CodeMethodNotAllowed, ""},
		{"unknown path", "GET", "/v1/nope", ``, api.CodeNotFound, ""},
		{"unknown path under a route", "GET", "/v1/tenants/t1/nope", ``, api.CodeNotFound, ""},
		{"unknown tenant", "GET", "/v1/tenants/nope", ``, api.CodeTenantNotFound, ""},
		{"project in unknown tenant", "POST", "/v1/tenants/nope/projects", `{"name":"p"}`, api.CodeTenantNotFound, ""},
		{"unknown task", "GET", "/v1/tasks/nope", ``, api.CodeTaskNotFound, ""},
		{"huge body", "POST", "/v1/tenants", `{"name":"` + strings.Repeat("x", httpapi.MaxBodyBytes) + `"}`, api.CodeRequestTooLarge, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, e := raw(t, c, c.Token, tc.method, tc.path, tc.body)
			if status >= 500 || status < 400 || e.Code != tc.code || e.Message == "" {
				t.Fatalf("%s %s = %d %+v, want 4xx %s", tc.method, tc.path, status, e, tc.code)
			}
			if status != api.StatusForCode(tc.code) {
				t.Errorf("status %d, want %d", status, api.StatusForCode(tc.code))
			}
			if tc.field != "" && e.Data["field"] != tc.field {
				t.Errorf("field = %q, want %q (message %q)", e.Data["field"], tc.field, e.Message)
			}
		})
	}
}

func testTenancy(t *testing.T, c *photontest.Cloud, cl *client.Client) {
	task := waitFor(t, cl)(cl.CreateTenant(ctx(), &api.TenantCreateSpec{Name: "acme", Quota: quota("vm.cpu", 10, "COUNT", "vm.memory", 40, "GB")}))
	if task.Operation != "CREATE_TENANT" || task.Entity.Kind != api.KindTenant || !strings.HasPrefix(task.SelfLink, c.URL+"/v1/tasks/") {
		t.Errorf("task = %+v", task)
	}
	tid := task.Entity.ID
	if _, err := cl.CreateTenant(ctx(), &api.TenantCreateSpec{Name: "acme"}); !errors.Is(err, api.ErrNameTaken) {
		t.Errorf("duplicate tenant: %v, want NameTaken", err)
	}
	l, err := cl.ListTenants(ctx(), "acme")
	if err != nil || len(l) != 1 || l[0].ID != tid || l[0].SelfLink != c.URL+"/v1/tenants/"+tid {
		t.Fatalf("list ?name=acme = %+v, %v", l, err)
	}

	// A project must name every key the tenant limits, and fit.
	if _, err := cl.CreateProject(ctx(), tid, &api.ProjectCreateSpec{Name: "web", Quota: quota("vm.cpu", 4, "COUNT")}); err == nil || !strings.Contains(err.Error(), "vm.memory") {
		t.Errorf("project without vm.memory: %v", err)
	}
	_, err = cl.CreateProject(ctx(), tid, &api.ProjectCreateSpec{Name: "big", Quota: quota("vm.cpu", 11, "COUNT", "vm.memory", 1, "GB")})
	var ae *api.Error
	if !errors.As(err, &ae) || ae.Code != api.CodeQuotaError || ae.HTTPStatus != 400 || !strings.Contains(ae.Message, "vm.cpu") {
		t.Errorf("oversized project: %v, want 400 QuotaError naming vm.cpu", err)
	}
	ptask := waitFor(t, cl)(cl.CreateProject(ctx(), tid, &api.ProjectCreateSpec{Name: "web", Quota: quota("vm.cpu", 4, "COUNT", "vm.memory", 2048, "MB")}))
	if len(ptask.Steps) != 2 || ptask.Steps[0].Operation != "RESERVE_QUOTA" || ptask.Steps[1].Operation != "CREATE_PROJECT" {
		t.Errorf("project task steps = %+v", ptask.Steps)
	}
	pid := ptask.Entity.ID
	p, err := cl.GetProject(ctx(), pid)
	if err != nil || p.State != api.StateReady || p.TenantID != tid {
		t.Fatalf("project = %+v, %v", p, err)
	}
	tq, err := cl.GetTenantQuota(ctx(), tid)
	if err != nil {
		t.Fatal(err)
	}
	if got := tq.QuotaItems["vm.cpu"].Usage; got != 4 {
		t.Errorf("tenant vm.cpu usage = %v, want 4", got)
	}
	if got := tq.QuotaItems["vm.memory"].Usage; got != 2 {
		t.Errorf("tenant vm.memory usage = %v GB, want 2 (2048 MB)", got)
	}

	// Tenant limits can't go below what projects hold; project quota changes move usage.
	if _, err := cl.UpdateTenantQuota(ctx(), tid, quota("vm.cpu", 3, "COUNT")); !errors.Is(err, api.ErrQuota) {
		t.Errorf("tenant limit below usage: %v, want QuotaError", err)
	}
	waitFor(t, cl)(cl.UpdateProjectQuota(ctx(), pid, quota("vm.cpu", 6, "COUNT")))
	if tq, _ = cl.GetTenantQuota(ctx(), tid); tq.QuotaItems["vm.cpu"].Usage != 6 {
		t.Errorf("after project PATCH, tenant vm.cpu usage = %v, want 6", tq.QuotaItems["vm.cpu"].Usage)
	}
	if _, err := cl.UpdateProjectQuota(ctx(), pid, quota("vm.cpu", 11, "COUNT")); !errors.Is(err, api.ErrQuota) {
		t.Errorf("project PATCH beyond tenant: %v, want QuotaError", err)
	}
	waitFor(t, cl)(cl.UpdateTenantQuota(ctx(), tid, quota("disk.capacity", 100, "GB")))
	if tq, _ = cl.GetTenantQuota(ctx(), tid); len(tq.QuotaItems) != 3 {
		t.Errorf("tenant quota after PATCH = %+v", tq)
	}
	waitFor(t, cl)(cl.ExcludeTenantQuota(ctx(), tid, quota("disk.capacity", 0, "GB")))
	if tq, _ = cl.GetTenantQuota(ctx(), tid); len(tq.QuotaItems) != 2 {
		t.Errorf("tenant quota after exclude = %+v", tq)
	}

	// A tenant with projects can't be deleted; deleting the project returns its quota.
	if _, err := cl.DeleteTenant(ctx(), tid); err == nil || !strings.Contains(err.Error(), api.CodeContainerNotEmpty) {
		t.Errorf("delete tenant with project: %v, want ContainerNotEmpty", err)
	}
	waitFor(t, cl)(cl.DeleteProject(ctx(), pid))
	if _, err := cl.GetProject(ctx(), pid); err == nil || !strings.Contains(err.Error(), api.CodeProjectNotFound) {
		t.Errorf("deleted project: %v", err)
	}
	if tq, _ = cl.GetTenantQuota(ctx(), tid); tq.QuotaItems["vm.cpu"].Usage != 0 || tq.QuotaItems["vm.memory"].Usage != 0 {
		t.Errorf("tenant usage after project delete = %+v", tq)
	}
	tasks, err := cl.ListTasks(ctx(), client.TaskFilter{EntityID: pid})
	if err != nil || len(tasks) != 3 {
		t.Errorf("tasks of project = %d, %v; want create, quota, delete", len(tasks), err)
	}
	waitFor(t, cl)(cl.DeleteTenant(ctx(), tid))
	usage, err := cl.SystemUsage(ctx())
	if err != nil || usage.NumberProjects != 0 {
		t.Errorf("system usage = %+v, %v", usage, err)
	}
	st, err := cl.SystemStatus(ctx())
	if err != nil || st.Status != "READY" {
		t.Errorf("system status = %+v, %v", st, err)
	}
}

func testFlavors(t *testing.T, cl *client.Client) {
	cost := []api.QuotaLineItem{{Key: "vm", Value: 1, Unit: "COUNT"}, {Key: "vm.cpu", Value: 2, Unit: "COUNT"}, {Key: "vm.memory", Value: 4, Unit: "GB"}}
	task := waitFor(t, cl)(cl.CreateFlavor(ctx(), &api.FlavorCreateSpec{Name: "small", Kind: "vm", Cost: cost}))
	// Same name, other kind: allowed; same name and kind: NameTaken.
	waitFor(t, cl)(cl.CreateFlavor(ctx(), &api.FlavorCreateSpec{Name: "small", Kind: "ephemeral-disk", Cost: []api.QuotaLineItem{{Key: "ephemeral-disk", Value: 1, Unit: "COUNT"}}}))
	if _, err := cl.CreateFlavor(ctx(), &api.FlavorCreateSpec{Name: "small", Kind: "vm", Cost: cost}); !errors.Is(err, api.ErrNameTaken) {
		t.Errorf("duplicate flavor: %v", err)
	}
	l, err := cl.ListFlavors(ctx(), client.FlavorFilter{Kind: "vm"})
	if err != nil || len(l) != 1 || l[0].Name != "small" || len(l[0].Cost) != 3 {
		t.Fatalf("vm flavors = %+v, %v", l, err)
	}
	l, err = cl.ListFlavors(ctx(), client.FlavorFilter{Name: "small"})
	if err != nil || len(l) != 2 {
		t.Fatalf("flavors named small = %+v, %v", l, err)
	}
	waitFor(t, cl)(cl.DeleteFlavor(ctx(), task.Entity.ID))
	if _, err := cl.GetFlavor(ctx(), task.Entity.ID); err == nil || !strings.Contains(err.Error(), api.CodeFlavorNotFound) {
		t.Errorf("deleted flavor: %v", err)
	}
}

func testPaging(t *testing.T, cl *client.Client) {
	for i := 0; i < 5; i++ {
		waitFor(t, cl)(cl.CreateTenant(ctx(), &api.TenantCreateSpec{Name: fmt.Sprintf("page%d", i)}))
	}
	var page api.List[api.Tenant]
	if err := cl.Do(ctx(), "GET", "/v1/tenants?pageSize=2", nil, &page); err != nil {
		t.Fatal(err)
	}
	if len(page.Items) != 2 || !strings.Contains(page.NextPageLink, "pageLink=") {
		t.Fatalf("first page = %d items, next %q", len(page.Items), page.NextPageLink)
	}
	all, err := client.ListAll[api.Tenant](ctx(), cl, "/v1/tenants?pageSize=2")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, tn := range all {
		if seen[tn.ID] {
			t.Errorf("tenant %s on two pages", tn.Name)
		}
		seen[tn.ID] = true
	}
	if len(all) < 5 {
		t.Errorf("paged through %d tenants, want >= 5", len(all))
	}
}

// testQuotaRace: 50 concurrent project creates race for the last 20 units
// of a tenant's vm.cpu: exactly 20 succeed, 30 fail with QuotaError, and the
// tenant's usage equals the sum of its projects' limits.
func testQuotaRace(t *testing.T, cl *client.Client) {
	const limit, held, racers = 100, 80, 50
	tt := waitFor(t, cl)(cl.CreateTenant(ctx(), &api.TenantCreateSpec{Name: "race", Quota: quota("vm.cpu", limit, "COUNT")}))
	tid := tt.Entity.ID
	waitFor(t, cl)(cl.CreateProject(ctx(), tid, &api.ProjectCreateSpec{Name: "holder", Quota: quota("vm.cpu", held, "COUNT")}))

	var wg sync.WaitGroup
	var mu sync.Mutex
	ok, quotaErr := 0, 0
	var other []error
	for i := 0; i < racers; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			task, err := cl.CreateProject(ctx(), tid, &api.ProjectCreateSpec{Name: fmt.Sprintf("r%d", i), Quota: quota("vm.cpu", 1, "COUNT")})
			if err == nil {
				task, err = cl.WaitTask(ctx(), task)
				if err == nil {
					err = task.Err()
				}
			}
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil:
				ok++
			case errors.Is(err, api.ErrQuota):
				quotaErr++
			default:
				other = append(other, err)
			}
		}()
	}
	wg.Wait()
	projects, err := cl.ListProjects(ctx(), tid, "")
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, p := range projects {
		sum += p.Quota.QuotaItems["vm.cpu"].Limit
	}
	tq, err := cl.GetTenantQuota(ctx(), tid)
	if err != nil {
		t.Fatal(err)
	}
	usage := tq.QuotaItems["vm.cpu"].Usage
	t.Logf("quota race: %d concurrent creates for the last %d units: %d succeeded, %d QuotaError, %d other; tenant usage %v, sum of project limits %v",
		racers, limit-held, ok, quotaErr, len(other), usage, sum)
	if ok != limit-held || quotaErr != racers-(limit-held) || len(other) > 0 {
		t.Errorf("succeeded %d (want %d), QuotaError %d (want %d), other errors %v", ok, limit-held, quotaErr, racers-(limit-held), other)
	}
	if usage != sum || sum != limit || len(projects) != 1+limit-held {
		t.Errorf("usage %v, sum %v, projects %d; want %d, %d, %d", usage, sum, len(projects), limit, limit, 1+limit-held)
	}
}

// TestAdminTokenRotation: deleting admin.token and restarting makes a new
// token; the old one is refused.
func TestAdminTokenRotation(t *testing.T) {
	c := photontest.NewController(t, "")
	old := c.Token
	if err := os.Remove(c.DataDir + "/admin.token"); err != nil {
		t.Fatal(err)
	}
	c.Restart(t)
	if c.Token == old {
		t.Fatal("restart without admin.token kept the old token")
	}
	if status, e := raw(t, c, old, "GET", "/v1/tenants", ""); status != 401 || e.Code != api.CodeInvalidAuthToken {
		t.Errorf("old token: %d %s, want 401 InvalidAuthToken", status, e.Code)
	}
	if status, _ := raw(t, c, c.Token, "GET", "/v1/tenants", ""); status != 200 {
		t.Errorf("new token: %d", status)
	}
	if fi, err := os.Stat(c.DataDir + "/admin.token"); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("admin.token mode = %v, %v; want 0600", fi.Mode(), err)
	}
}

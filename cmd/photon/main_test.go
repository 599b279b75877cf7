package main

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/spf13/cobra"

	"github.com/photon-cloud/photon/api"
)

func TestExpandLeadingGlobals(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"-n flavor create -n small", "--non-interactive flavor create -n small"},
		{"-o json -d tenant list", "--output json --detail tenant list"},
		{"-ojson flavor list -n", "--output=json flavor list -n"},
		{"--output json -n flavor create -n x", "--output json --non-interactive flavor create -n x"},
		{"tenant list -n", "tenant list -n"},
		{"", ""},
	} {
		got := strings.Join(expandLeadingGlobals(strings.Fields(tc.in)), " ")
		if got != tc.want {
			t.Errorf("expandLeadingGlobals(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestConfigSaveLoadEnv(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv(envConfig, "")
	t.Setenv(envTarget, "")
	t.Setenv(envToken, "")
	t.Setenv(envCACert, "")
	path, err := configPath()
	if err != nil || path != filepath.Join(home, ".photon-config") {
		t.Fatalf("configPath() = %q, %v", path, err)
	}
	if c, err := loadConfig(path); err != nil || c.Target != "" {
		t.Fatalf("missing file: %+v, %v", c, err)
	}
	in := config{Target: "https://a:1", Token: "tok", CACert: "/ca.crt", Tenant: &ref{ID: "t", Name: "t1"}}
	if err := saveConfig(path, in); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, %v", st.Mode().Perm(), err)
	}
	out, err := loadConfig(path)
	if err != nil || out.Target != in.Target || out.Token != in.Token || out.Tenant.Name != "t1" {
		t.Fatalf("loaded %+v, %v", out, err)
	}

	t.Setenv(envToken, "envtok")
	if c := out.withEnv(); c.Token != "envtok" || c.Target != in.Target || c.Tenant == nil {
		t.Errorf("token from env: %+v", c)
	}
	// Another target from the environment must not get the saved token.
	t.Setenv(envToken, "")
	t.Setenv(envTarget, "https://b:2")
	if c := out.withEnv(); c.Token != "" || c.Target != "https://b:2" || c.Tenant != nil || c.CACert != "" {
		t.Errorf("other target from env kept saved state: %+v", c)
	}
	other := filepath.Join(home, "new-dir", "photon.json")
	t.Setenv(envConfig, other)
	if p, _ := configPath(); p != other {
		t.Errorf("PHOTON_CONFIG ignored: %s", p)
	}
	if err := saveConfig(other, in); err != nil {
		t.Errorf("save into a missing directory: %v", err)
	}
}

// fake is a controller that answers a few routes from a table.
type fake struct {
	*httptest.Server
	ca    string
	polls atomic.Int32
}

func newFake(t *testing.T, routes map[string]http.HandlerFunc) *fake {
	t.Helper()
	mux := http.NewServeMux()
	for pattern, h := range routes {
		mux.HandleFunc(pattern, h)
	}
	mux.HandleFunc("GET /v1/info", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, 200, api.Info{BaseVersion: "1.0.0", FullVersion: "1.0.0-test"})
	})
	f := &fake{Server: httptest.NewTLSServer(mux)}
	t.Cleanup(f.Close)
	f.ca = filepath.Join(t.TempDir(), "ca.crt")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.Certificate().Raw})
	if err := os.WriteFile(f.ca, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// runCLI runs the CLI in-process against f with a fresh configuration.
func runCLI(t *testing.T, f *fake, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	t.Setenv(envConfig, filepath.Join(t.TempDir(), "config"))
	t.Setenv(envTarget, f.URL)
	t.Setenv(envCACert, f.ca)
	t.Setenv(envToken, "tok")
	var out, errb bytes.Buffer
	code = run(context.Background(), args, &out, &errb)
	return out.String(), errb.String(), code
}

func TestFailedTaskExitsNonZero(t *testing.T) {
	var f *fake
	task := func(state string) api.Task {
		tk := api.Task{Base: api.Base{ID: "task-1", Kind: api.KindTask}, Operation: "CREATE_TENANT", State: state,
			Entity: api.Entity{ID: "ten-1", Kind: api.KindTenant},
			Steps:  []api.Step{{Sequence: 0, Operation: "CREATE_TENANT", State: state}}}
		if state == api.TaskError {
			tk.Steps[0].Errors = []api.Error{{Code: "NotEnoughCpuResource", Message: "0 of 3 hosts fit"}}
		}
		return tk
	}
	f = newFake(t, map[string]http.HandlerFunc{
		"POST /v1/tenants": func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer tok" {
				writeJSON(w, 401, api.Error{Code: api.CodeMissingAuthToken, Message: "no token"})
				return
			}
			var spec api.TenantCreateSpec
			if err := json.NewDecoder(r.Body).Decode(&spec); err != nil || spec.Name != "t1" ||
				spec.Quota.QuotaItems["vm.cpu"] != (api.QuotaItem{Unit: "COUNT", Limit: 20}) {
				writeJSON(w, 400, api.Error{Code: api.CodeInvalidEntity, Message: "unexpected spec"})
				return
			}
			writeJSON(w, 201, task(api.TaskQueued))
		},
		"GET /v1/tasks/task-1": func(w http.ResponseWriter, r *http.Request) {
			if f.polls.Add(1) < 2 {
				writeJSON(w, 200, task(api.TaskStarted))
				return
			}
			writeJSON(w, 200, task(api.TaskError))
		},
	})
	stdout, stderr, code := runCLI(t, f, "tenant", "create", "t1", "--limits", "vm.cpu 20 COUNT")
	if code != exitError {
		t.Fatalf("exit %d, want 1\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	want := "photon: NotEnoughCpuResource: 0 of 3 hosts fit (task task-1 CREATE_TENANT)\n"
	if stderr != want || stdout != "" {
		t.Errorf("stderr %q, want %q; stdout %q", stderr, want, stdout)
	}
	if f.polls.Load() < 2 {
		t.Errorf("polled %d times", f.polls.Load())
	}
}

func TestAPIErrorAndNameResolution(t *testing.T) {
	ten := api.Tenant{Base: api.Base{ID: "ten-1", Kind: api.KindTenant}, Name: "t1", State: api.StateReady,
		Quota: api.Quota{QuotaItems: map[string]api.QuotaItem{"vm.cpu": {Unit: "COUNT", Limit: 20, Usage: 4}}}}
	f := newFake(t, map[string]http.HandlerFunc{
		"GET /v1/tenants": func(w http.ResponseWriter, r *http.Request) {
			items := []api.Tenant{}
			if n := r.URL.Query().Get("name"); n == "" || n == ten.Name {
				items = append(items, ten)
			}
			writeJSON(w, 200, api.List[api.Tenant]{Items: items})
		},
		"GET /v1/tenants/{id}": func(w http.ResponseWriter, r *http.Request) {
			if r.PathValue("id") != ten.ID {
				writeJSON(w, 404, api.Error{Code: api.CodeTenantNotFound, Message: "no tenant " + r.PathValue("id")})
				return
			}
			writeJSON(w, 200, ten)
		},
		"GET /v1/tenants/ten-1/quota": func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 200, ten.Quota)
		},
		"POST /v1/tenants/ten-1/projects": func(w http.ResponseWriter, r *http.Request) {
			writeJSON(w, 400, api.Error{Code: api.CodeQuotaError, Message: "Not enough quota: vm.cpu 30 COUNT asked, 16 free"})
		},
	})

	stdout, stderr, code := runCLI(t, f, "-n", "tenant", "quota", "show", "t1")
	if code != 0 || stdout != "vm.cpu\t20\t4\tCOUNT\n" {
		t.Errorf("quota show by name: exit %d, %q, %q", code, stdout, stderr)
	}
	stdout, stderr, code = runCLI(t, f, "-n", "tenant", "list")
	if code != 0 || stdout != "ten-1\tt1\tREADY\t0\n" {
		t.Errorf("tenant list -n: exit %d, %q, %q", code, stdout, stderr)
	}
	stdout, _, code = runCLI(t, f, "tenant", "list")
	if lines := strings.Split(stdout, "\n"); code != 0 || !slices.Equal(strings.Fields(lines[0]), []string{"ID", "NAME", "STATE", "PROJECTS"}) {
		t.Errorf("tenant list table: exit %d\n%s", code, stdout)
	}
	_, stderr, code = runCLI(t, f, "project", "create", "p1", "-t", "t1", "--limits", "vm.cpu 30 COUNT")
	if code != exitError || stderr != "photon: QuotaError: Not enough quota: vm.cpu 30 COUNT asked, 16 free\n" {
		t.Errorf("quota refusal: exit %d, %q", code, stderr)
	}
	_, stderr, code = runCLI(t, f, "tenant", "show", "nosuch")
	if code != exitError || !strings.HasPrefix(stderr, "photon: TenantNotFound: ") {
		t.Errorf("unknown tenant: exit %d, %q", code, stderr)
	}
	_, stderr, code = runCLI(t, f, "project", "create", "p1", "-t", "t1", "--limits", "vm.cpu x COUNT")
	if code != exitUsage || !strings.Contains(stderr, "bad value") {
		t.Errorf("bad limits: exit %d, %q", code, stderr)
	}
}

func TestTargetSetAndLogin(t *testing.T) {
	f := newFake(t, map[string]http.HandlerFunc{
		"GET /v1/system/status": func(w http.ResponseWriter, r *http.Request) {
			if r.Header.Get("Authorization") != "Bearer good" {
				writeJSON(w, 401, api.Error{Code: api.CodeInvalidAuthToken, Message: "bad token"})
				return
			}
			writeJSON(w, 200, api.SystemStatus{Status: "READY"})
		},
	})
	cfg := filepath.Join(t.TempDir(), "config")
	t.Setenv(envConfig, cfg)
	t.Setenv(envTarget, "")
	t.Setenv(envToken, "")
	t.Setenv(envCACert, "")
	cli := func(args ...string) (string, string, int) {
		var out, errb bytes.Buffer
		code := run(context.Background(), args, &out, &errb)
		return out.String(), errb.String(), code
	}
	if _, stderr, code := cli("target", "set", f.URL, "--ca-cert", f.ca); code != 0 || stderr != "" {
		t.Fatalf("target set: %d %q", code, stderr)
	}
	if _, stderr, code := cli("target", "login", "--token", "bad"); code != 1 || !strings.Contains(stderr, "InvalidAuthToken") {
		t.Errorf("login with a bad token: %d %q", code, stderr)
	}
	if c, _ := loadConfig(cfg); c.Token != "" {
		t.Errorf("a refused token was saved")
	}
	if _, stderr, code := cli("target", "login", "--token", "good"); code != 0 {
		t.Fatalf("login: %d %q", code, stderr)
	}
	c, _ := loadConfig(cfg)
	if c.Target != f.URL || c.Token != "good" || c.CACert != f.ca {
		t.Errorf("saved %+v", c)
	}
	if stdout, _, code := cli("-n", "system", "status"); code != 0 || stdout != "READY\n" {
		t.Errorf("system status -n: %d %q", code, stdout)
	}
	cli("target", "logout")
	if c, _ := loadConfig(cfg); c.Token != "" || c.Target != f.URL {
		t.Errorf("after logout: %+v", c)
	}
	// A new target forgets the old token.
	cli("target", "login", "--token", "good")
	cli("target", "set", "https://other.example:9000", "-c")
	if c, _ := loadConfig(cfg); c.Token != "" || !c.NoCertCheck {
		t.Errorf("after target set to another URL: %+v", c)
	}
}

// TestEveryCommandHasHelpWithExample walks the command tree.
func TestEveryCommandHasHelpWithExample(t *testing.T) {
	a := &app{}
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		if c.Name() == "help" || c.Hidden {
			return
		}
		if c.Short == "" || c.Example == "" {
			t.Errorf("%s: no short help or no example", c.CommandPath())
		}
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	root := a.rootCmd()
	root.InitDefaultHelpCmd()
	walk(root)
}

func TestProgressPrinter(t *testing.T) {
	var buf bytes.Buffer
	a := &app{stderr: &buf}
	step := func(seq int, op, state string) api.Step { return api.Step{Sequence: seq, Operation: op, State: state} }
	p := a.progressPrinter()
	p(&api.Task{Operation: "CREATE_VM", State: api.TaskQueued,
		Steps: []api.Step{step(0, "RESERVE", api.TaskQueued), step(1, "PLACE", api.TaskQueued)}})
	p(&api.Task{Operation: "CREATE_VM", State: api.TaskStarted,
		Steps: []api.Step{step(0, "RESERVE", api.TaskCompleted), step(1, "PLACE", api.TaskQueued)}})
	p(&api.Task{Operation: "CREATE_VM", State: api.TaskCompleted,
		Steps: []api.Step{step(0, "RESERVE", api.TaskCompleted), step(1, "PLACE", api.TaskCompleted)}})
	want := "  RESERVE: QUEUED\n  PLACE: QUEUED\n  RESERVE: COMPLETED\n  PLACE: COMPLETED\nCREATE_VM COMPLETED\n"
	if buf.String() != want {
		t.Errorf("progress:\n%s\nwant:\n%s", buf.String(), want)
	}
	// A task already done when first seen prints nothing.
	buf.Reset()
	a.progressPrinter()(&api.Task{Operation: "CREATE_TENANT", State: api.TaskCompleted,
		Steps: []api.Step{step(0, "CREATE_TENANT", api.TaskCompleted)}})
	if buf.Len() != 0 {
		t.Errorf("finished task printed progress: %q", buf.String())
	}
}

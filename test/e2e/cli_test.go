package e2e

import (
	"bytes"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/photontest"
)

// cli runs bin/photon with its own HOME and configuration file.
type cli struct {
	t   *testing.T
	bin string
	env []string
	// Config is the configuration file the CLI uses.
	Config string
}

// result is one run of the CLI.
type result struct {
	args           []string
	stdout, stderr string
	code           int
}

func (r result) String() string {
	return "photon " + strings.Join(r.args, " ") + ": exit " + strconv.Itoa(r.code) +
		"\nstdout:\n" + r.stdout + "stderr:\n" + r.stderr
}

// newCLI returns a CLI whose HOME is a new temporary directory, with no
// PHOTON_* variables from the test's environment, plus env.
func newCLI(t *testing.T, env ...string) *cli {
	t.Helper()
	home := t.TempDir()
	var base []string
	for _, kv := range os.Environ() {
		if strings.HasPrefix(kv, "PHOTON_") || strings.HasPrefix(kv, "HOME=") {
			continue
		}
		base = append(base, kv)
	}
	base = append(base, "HOME="+home)
	return &cli{t: t, bin: photontest.Binary(t, "photon"), env: append(base, env...),
		Config: filepath.Join(home, ".photon-config")}
}

// run runs the CLI and returns what it printed and its exit status.
func (c *cli) run(args ...string) result {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	done := make(chan error, 1)
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("start photon: %v", err)
	}
	go func() { done <- cmd.Wait() }()
	var err error
	select {
	case err = <-done:
	case <-time.After(60 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		c.t.Fatalf("photon %s: no exit within 60s\n%s%s", strings.Join(args, " "), out.String(), errb.String())
	}
	r := result{args: args, stdout: out.String(), stderr: errb.String()}
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		r.code = ee.ExitCode()
	case err != nil:
		c.t.Fatalf("photon %s: %v", strings.Join(args, " "), err)
	}
	return r
}

// ok runs the CLI, fails the test unless it exits 0, and returns its stdout.
func (c *cli) ok(args ...string) string {
	c.t.Helper()
	r := c.run(args...)
	if r.code != 0 {
		c.t.Fatalf("want success, got %s", r)
	}
	return r.stdout
}

// fail runs the CLI and fails the test unless it exits with status code and
// its stderr holds want.
func (c *cli) fail(code int, want string, args ...string) result {
	c.t.Helper()
	r := c.run(args...)
	if r.code != code || !strings.Contains(r.stderr, want) {
		c.t.Fatalf("want exit %d with %q on stderr, got %s", code, want, r)
	}
	if !strings.HasPrefix(r.stderr, "photon: ") {
		c.t.Errorf("stderr does not start with \"photon: \": %s", r)
	}
	return r
}

// json runs the CLI with -o json and decodes its stdout into out.
func (c *cli) json(out any, args ...string) {
	c.t.Helper()
	stdout := c.ok(append(args, "-o", "json")...)
	if err := json.Unmarshal([]byte(stdout), out); err != nil {
		c.t.Fatalf("photon %s -o json: %v\n%s", strings.Join(args, " "), err, stdout)
	}
}

// rows splits -n output into lines of tab-separated fields.
func rows(s string) [][]string {
	var out [][]string
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if l != "" {
			out = append(out, strings.Split(l, "\t"))
		}
	}
	return out
}

// oneID checks that -n output of a create is a single id and returns it.
func oneID(t *testing.T, out string) string {
	t.Helper()
	id := strings.TrimSpace(out)
	if id == "" || strings.ContainsAny(id, " \t\n") {
		t.Fatalf("want a single id, got %q", out)
	}
	return id
}

// loggedIn returns a CLI pointed at c and logged in through the configuration file.
func loggedIn(t *testing.T, c *photontest.Controller) *cli {
	t.Helper()
	p := newCLI(t)
	p.ok("target", "set", c.URL, "--ca-cert", c.CACert)
	p.ok("target", "login", "--token", c.Token)
	return p
}

func TestCLITargetAndLogin(t *testing.T) {
	c := photontest.StartController(t, "", nil)
	p := newCLI(t)

	if out := p.ok("target", "set", c.URL, "--ca-cert", c.CACert); !strings.Contains(out, c.URL) {
		t.Errorf("target set printed %q, want the URL", out)
	}
	var view struct {
		Target   string `json:"target"`
		CACert   string `json:"caCert"`
		LoggedIn bool   `json:"loggedIn"`
	}
	p.json(&view, "target", "show")
	if view.Target != c.URL || view.CACert != c.CACert || view.LoggedIn {
		t.Errorf("target show = %+v, want target %s, CA %s, not logged in", view, c.URL, c.CACert)
	}

	// /v1/info needs no token; everything else does.
	var info api.Info
	p.json(&info, "target", "info")
	if info.BaseVersion == "" {
		t.Errorf("target info: empty baseVersion: %+v", info)
	}
	r := p.fail(1, "MissingAuthToken", "system", "status")
	if !strings.Contains(r.stderr, "target login") {
		t.Errorf("auth error gives no hint to log in: %s", r)
	}
	p.fail(1, "InvalidAuthToken", "target", "login", "--token", "not-the-token")

	p.ok("target", "login", "--token", c.Token)
	st, err := os.Stat(p.Config)
	if err != nil {
		t.Fatalf("configuration file: %v", err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("configuration file mode %v, want 0600", st.Mode().Perm())
	}
	b, _ := os.ReadFile(p.Config)
	if !strings.Contains(string(b), c.Token) || !strings.Contains(string(b), c.URL) {
		t.Errorf("configuration file lacks target or token:\n%s", b)
	}
	p.json(&view, "target", "show")
	if !view.LoggedIn {
		t.Errorf("target show after login: not logged in")
	}

	var status api.SystemStatus
	p.json(&status, "system", "status")
	if status.Status != "READY" {
		t.Errorf("system status = %+v, want READY", status)
	}
	if out := p.ok("system", "status"); !strings.Contains(out, "READY") {
		t.Errorf("system status table lacks READY:\n%s", out)
	}
	var sinfo api.Info
	p.json(&sinfo, "system", "info")
	if sinfo.BaseVersion != info.BaseVersion {
		t.Errorf("system info %+v differs from target info %+v", sinfo, info)
	}

	p.ok("target", "logout")
	p.fail(1, "MissingAuthToken", "tenant", "list")

	// Without the CA the certificate is not trusted unless a person accepts
	// its fingerprint (no one answers here); -n refuses; -c skips the check.
	q := newCLI(t)
	q.fail(1, "not trusted", "target", "set", c.URL)
	q.fail(2, "--fingerprint", "-n", "target", "set", c.URL)
	q.ok("target", "set", c.URL, "-c")
	q.ok("target", "login", "--token", c.Token)
	q.ok("tenant", "list")
}

func TestCLIEnvironmentOnly(t *testing.T) {
	c := photontest.StartController(t, "", nil)
	cfg := filepath.Join(t.TempDir(), "photon.json")
	env := []string{"PHOTON_CONFIG=" + cfg, "PHOTON_TARGET=" + c.URL, "PHOTON_CA_CERT=" + c.CACert}

	p := newCLI(t, append(env, "PHOTON_TOKEN="+c.Token)...)
	id := oneID(t, p.ok("-n", "tenant", "create", "envtenant"))
	var ts []api.Tenant
	p.json(&ts, "tenant", "list")
	if len(ts) != 1 || ts[0].ID != id || ts[0].Name != "envtenant" {
		t.Errorf("tenant list = %+v, want envtenant %s", ts, id)
	}
	if _, err := os.Stat(cfg); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("commands without target set/login wrote %s: %v", cfg, err)
	}
	if _, err := os.Stat(p.Config); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("PHOTON_CONFIG set, yet %s was written: %v", p.Config, err)
	}

	// No token: a clear auth error, not a crash.
	noToken := newCLI(t, env...)
	r := noToken.fail(1, "MissingAuthToken", "tenant", "list")
	if r.stdout != "" {
		t.Errorf("failed command printed on stdout: %s", r)
	}
	// No target at all.
	newCLI(t).fail(1, "no target", "tenant", "list")
}

func TestCLITenantsProjectsQuota(t *testing.T) {
	c := photontest.StartController(t, "", nil)
	p := loggedIn(t, c)

	tid := oneID(t, p.ok("-n", "tenant", "create", "t1", "--limits", "vm 10 COUNT, vm.cpu 20 COUNT, vm.memory 40 GB"))
	p.fail(1, "NameTaken", "tenant", "create", "t1")
	if out := p.ok("tenant", "create", "t2"); !strings.Contains(out, "t2") {
		t.Errorf("tenant create printed %q", out)
	}

	// Table, plain rows and JSON name the same tenants.
	table := p.ok("tenant", "list")
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") || !strings.Contains(lines[0], "NAME") {
		t.Fatalf("tenant list table:\n%s", table)
	}
	if !strings.Contains(table, tid) {
		t.Errorf("tenant list table lacks %s:\n%s", tid, table)
	}
	plain := rows(p.ok("-n", "tenant", "list"))
	if len(plain) != 2 {
		t.Fatalf("tenant list -n: %q", plain)
	}
	if i := slices.IndexFunc(plain, func(r []string) bool { return r[0] == tid }); i < 0 || plain[i][1] != "t1" {
		t.Errorf("tenant list -n lacks %s t1: %q", tid, plain)
	}
	var ts []api.Tenant
	p.json(&ts, "tenant", "list")
	if len(ts) != 2 {
		t.Fatalf("tenant list -o json: %+v", ts)
	}
	p.json(&ts, "tenant", "list", "--name", "t1")
	if len(ts) != 1 || ts[0].ID != tid || ts[0].Kind != api.KindTenant {
		t.Fatalf("tenant list --name t1: %+v", ts)
	}
	want := map[string]api.QuotaItem{
		"vm":        {Unit: "COUNT", Limit: 10},
		"vm.cpu":    {Unit: "COUNT", Limit: 20},
		"vm.memory": {Unit: "GB", Limit: 40},
	}
	checkQuota(t, "tenant t1", ts[0].Quota, want)

	// show takes a name or an id.
	var ten api.Tenant
	p.json(&ten, "tenant", "show", "t1")
	if ten.ID != tid {
		t.Errorf("tenant show t1: id %s, want %s", ten.ID, tid)
	}
	p.json(&ten, "tenant", "show", tid)
	if ten.Name != "t1" {
		t.Errorf("tenant show %s: name %s", tid, ten.Name)
	}
	p.fail(1, "TenantNotFound", "tenant", "show", "nosuch")

	// A project carves its quota out of the tenant's.
	pid := oneID(t, p.ok("-n", "project", "create", "p1", "-t", "t1", "--limits", "vm 5 COUNT, vm.cpu 10 COUNT, vm.memory 20 GB"))
	var ps []api.Project
	p.json(&ps, "project", "list", "-t", "t1")
	if len(ps) != 1 || ps[0].ID != pid || ps[0].Name != "p1" {
		t.Fatalf("project list -t t1: %+v", ps)
	}
	checkQuota(t, "project p1", ps[0].Quota, map[string]api.QuotaItem{
		"vm": {Unit: "COUNT", Limit: 5}, "vm.cpu": {Unit: "COUNT", Limit: 10}, "vm.memory": {Unit: "GB", Limit: 20},
	})
	var q api.Quota
	p.json(&q, "tenant", "quota", "show", "t1")
	want["vm"] = api.QuotaItem{Unit: "COUNT", Limit: 10, Usage: 5}
	want["vm.cpu"] = api.QuotaItem{Unit: "COUNT", Limit: 20, Usage: 10}
	want["vm.memory"] = api.QuotaItem{Unit: "GB", Limit: 40, Usage: 20}
	checkQuota(t, "tenant t1 after p1", q, want)
	if out := p.ok("tenant", "quota", "show", "t1"); !strings.Contains(out, "vm.memory") || !strings.Contains(out, "USAGE") {
		t.Errorf("tenant quota show table:\n%s", out)
	}

	// 11 CPUs do not fit in the 10 left.
	r := p.fail(1, "QuotaError", "project", "create", "p2", "-t", tid, "--limits", "vm 5 COUNT, vm.cpu 11 COUNT, vm.memory 20 GB")
	if r.stdout != "" {
		t.Errorf("refused create printed on stdout: %s", r)
	}
	p.fail(1, "ProjectNotFound", "project", "show", "p2", "-t", "t1")

	// Quota update changes the named keys and keeps the others.
	p.json(&q, "tenant", "quota", "update", "t1", "--limits", "vm.cpu 30 COUNT")
	want["vm.cpu"] = api.QuotaItem{Unit: "COUNT", Limit: 30, Usage: 10}
	checkQuota(t, "tenant t1 after update", q, want)
	p.fail(1, "QuotaError", "tenant", "quota", "update", "t1", "--limits", "vm.cpu 5 COUNT")
	// Now p2 fits.
	pid2 := oneID(t, p.ok("-n", "project", "create", "p2", "-t", "t1", "--limits", "vm 5 COUNT, vm.cpu 11 COUNT, vm.memory 20 GB"))
	p.json(&q, "project", "quota", "update", "p2", "-t", "t1", "--limits", "vm.cpu 12 COUNT")
	if q.QuotaItems["vm.cpu"].Limit != 12 {
		t.Errorf("project quota update: %+v", q)
	}
	p.json(&q, "project", "quota", "show", pid2)
	if q.QuotaItems["vm.cpu"].Limit != 12 || q.QuotaItems["vm.memory"].Limit != 20 {
		t.Errorf("project quota show %s: %+v", pid2, q)
	}

	// The current tenant stands in for -t.
	if out := p.ok("tenant", "set", "t1"); !strings.Contains(out, tid) {
		t.Errorf("tenant set printed %q", out)
	}
	plain = rows(p.ok("-n", "project", "list"))
	if len(plain) != 2 {
		t.Errorf("project list -n with the current tenant: %q", plain)
	}
	var pr api.Project
	p.json(&pr, "project", "show", "p1")
	if pr.ID != pid || pr.TenantID != tid {
		t.Errorf("project show p1: %+v", pr)
	}

	// Every change is a task.
	var tasks []api.Task
	p.json(&tasks, "task", "list", "--entityId", tid)
	if len(tasks) == 0 {
		t.Fatalf("task list --entityId %s: none", tid)
	}
	create := tasks[slices.IndexFunc(tasks, func(t api.Task) bool { return t.Operation == "CREATE_TENANT" })]
	if create.State != api.TaskCompleted || create.Entity.ID != tid || create.Entity.Kind != api.KindTenant {
		t.Errorf("tenant's create task: %+v", create)
	}
	var task api.Task
	p.json(&task, "task", "show", create.ID)
	if task.ID != create.ID || task.Operation != "CREATE_TENANT" || len(task.Steps) == 0 {
		t.Errorf("task show %s: %+v", create.ID, task)
	}
	if out := p.ok("task", "show", create.ID); !strings.Contains(out, "CREATE_TENANT") || !strings.Contains(out, "COMPLETED") {
		t.Errorf("task show table:\n%s", out)
	}
	p.json(&task, "task", "wait", create.ID)
	if task.State != api.TaskCompleted {
		t.Errorf("task wait: %+v", task)
	}
	tr := rows(p.ok("-n", "tenant", "tasks", "t1"))
	if len(tr) < 2 || !slices.ContainsFunc(tr, func(r []string) bool { return r[0] == create.ID && r[2] == api.TaskCompleted }) {
		t.Errorf("tenant tasks -n lacks %s: %q", create.ID, tr)
	}
	p.json(&tasks, "project", "tasks", "p1", "-t", "t1")
	if !slices.ContainsFunc(tasks, func(t api.Task) bool { return t.Operation == "CREATE_PROJECT" && t.Entity.ID == pid }) {
		t.Errorf("project tasks p1: %+v", tasks)
	}
	p.fail(1, "TaskNotFound", "task", "show", "no-such-task")

	// A tenant with projects stays; without them it goes, and its quota with it.
	p.fail(1, "ContainerNotEmpty", "tenant", "delete", "t1")
	if out := p.ok("project", "delete", "p1", "-t", "t1"); !strings.Contains(out, pid) {
		t.Errorf("project delete printed %q", out)
	}
	p.json(&q, "tenant", "quota", "show", "t1")
	if got := q.QuotaItems["vm.cpu"].Usage; got != 12 {
		t.Errorf("tenant vm.cpu usage after deleting p1 = %v, want 12 (p2's)", got)
	}
	p.ok("project", "delete", pid2)
	if out := strings.TrimSpace(p.ok("-n", "tenant", "delete", "t1")); out != tid {
		t.Errorf("tenant delete -n printed %q, want %s", out, tid)
	}
	p.json(&ts, "tenant", "list", "--name", "t1")
	if len(ts) != 0 {
		t.Errorf("t1 still listed after delete: %+v", ts)
	}
	// Deleting the current tenant forgot it.
	if out := p.ok("-n", "tenant", "get"); out != "" {
		t.Errorf("tenant get after deleting the current tenant: %q", out)
	}

	var usage api.SystemUsage
	p.json(&usage, "system", "usage")
	if usage.NumberTenants != 1 || usage.NumberProjects != 0 {
		t.Errorf("system usage = %+v, want 1 tenant, 0 projects", usage)
	}
}

func TestCLIPercentAndExclude(t *testing.T) {
	c := photontest.StartController(t, "", nil)
	p := loggedIn(t, c)
	p.ok("tenant", "create", "t1", "--limits", "vm.cpu 20 COUNT, vm.memory 40 GB")

	// --percent takes a share of each of the tenant's limits.
	var pr api.Project
	p.json(&pr, "project", "create", "half", "-t", "t1", "--percent", "50")
	checkQuota(t, "project half", pr.Quota, map[string]api.QuotaItem{
		"vm.cpu": {Unit: "COUNT", Limit: 10}, "vm.memory": {Unit: "GB", Limit: 20},
	})

	var q api.Quota
	p.json(&q, "tenant", "quota", "exclude", "t1", "--limits", "vm.memory")
	checkQuota(t, "t1 after exclude", q, map[string]api.QuotaItem{"vm.cpu": {Unit: "COUNT", Limit: 20, Usage: 10}})
	p.json(&q, "tenant", "quota", "set", "t1", "--limits", "vm.cpu 15 COUNT, vm 4 COUNT")
	checkQuota(t, "t1 after set", q, map[string]api.QuotaItem{
		"vm.cpu": {Unit: "COUNT", Limit: 15, Usage: 10}, "vm": {Unit: "COUNT", Limit: 4},
	})
	p.fail(1, "QuotaError", "tenant", "quota", "set", "t1", "--limits", "vm.cpu 5 COUNT")
	p.fail(1, "QuotaError", "project", "create", "whole", "-t", "t1", "--percent", "100")
	if out := p.ok("-n", "tenant", "quota", "show", "t1"); !strings.Contains(out, "vm.cpu\t15\t10\tCOUNT\n") {
		t.Errorf("tenant quota show -n:\n%s", out)
	}
}

func TestCLIFlavors(t *testing.T) {
	c := photontest.StartController(t, "", nil)
	p := loggedIn(t, c)

	// The global -n before the command word, the flavor's -n after it.
	fid := oneID(t, p.ok("-n", "flavor", "create", "-n", "small", "-k", "vm", "-c", "vm 1 COUNT, vm.cpu 1 COUNT, vm.memory 2 GB"))
	var disk api.Flavor
	p.json(&disk, "flavor", "create", "-n", "small", "-k", "persistent-disk", "-c", "persistent-disk 1 COUNT")
	if disk.Name != "small" || disk.Kind != api.FlavorKindPersistentDisk || disk.State != api.StateReady {
		t.Errorf("flavor create -o json: %+v", disk)
	}
	p.fail(1, "NameTaken", "flavor", "create", "-n", "small", "-k", "vm", "-c", "vm.cpu 2 COUNT, vm.memory 4 GB")
	p.fail(1, "InvalidEntity", "flavor", "create", "-n", "odd", "-k", "gpu", "-c", "gpu 1 COUNT")

	var fs []api.Flavor
	p.json(&fs, "flavor", "list")
	if len(fs) != 2 {
		t.Fatalf("flavor list: %+v", fs)
	}
	p.json(&fs, "flavor", "list", "--kind", "vm")
	if len(fs) != 1 || fs[0].ID != fid {
		t.Fatalf("flavor list --kind vm: %+v", fs)
	}
	wantCost := []api.QuotaLineItem{{Key: "vm", Value: 1, Unit: "COUNT"}, {Key: "vm.cpu", Value: 1, Unit: "COUNT"}, {Key: "vm.memory", Value: 2, Unit: "GB"}}
	if !slices.Equal(fs[0].Cost, wantCost) {
		t.Errorf("flavor cost = %+v, want %+v", fs[0].Cost, wantCost)
	}
	plain := rows(p.ok("-n", "flavor", "list", "--name", "small"))
	if len(plain) != 2 {
		t.Errorf("flavor list -n --name small: %q", plain)
	}
	if !slices.ContainsFunc(plain, func(r []string) bool {
		return len(r) == 5 && r[0] == fid && r[1] == "small" && r[2] == "vm" && r[3] == "READY" && r[4] == "vm 1 COUNT, vm.cpu 1 COUNT, vm.memory 2 GB"
	}) {
		t.Errorf("flavor list -n lacks %s: %q", fid, plain)
	}
	if out := p.ok("flavor", "list"); !strings.Contains(out, "KIND") || !strings.Contains(out, "persistent-disk") {
		t.Errorf("flavor list table:\n%s", out)
	}

	// Two flavors are named small: the name needs a kind.
	p.fail(2, "several kinds", "flavor", "show", "small")
	var f api.Flavor
	p.json(&f, "flavor", "show", "small", "-k", "vm")
	if f.ID != fid {
		t.Errorf("flavor show small -k vm: %+v", f)
	}
	p.json(&f, "flavor", "show", fid)
	if f.Name != "small" || f.Kind != "vm" {
		t.Errorf("flavor show %s: %+v", fid, f)
	}
	if out := p.ok("flavor", "show", fid); !strings.Contains(out, "vm.memory") {
		t.Errorf("flavor show table:\n%s", out)
	}

	p.ok("flavor", "delete", "small", "-k", "vm")
	p.fail(1, "FlavorNotFound", "flavor", "show", fid)
	var tasks []api.Task
	p.json(&tasks, "task", "list", "--entityId", fid, "--entityKind", "flavor")
	var ops []string
	for _, t := range tasks {
		ops = append(ops, t.Operation+" "+t.State)
	}
	slices.Sort(ops)
	if !slices.Equal(ops, []string{"CREATE_FLAVOR COMPLETED", "DELETE_FLAVOR COMPLETED"}) {
		t.Errorf("flavor %s tasks: %q", fid, ops)
	}
	p.json(&tasks, "task", "list", "--state", "ERROR")
	if len(tasks) != 0 {
		t.Errorf("task list --state ERROR: %+v", tasks)
	}
}

// TestCLIUsageErrors checks that mistakes in calling the CLI exit 2 before
// anything is sent.
func TestCLIUsageErrors(t *testing.T) {
	p := newCLI(t, "PHOTON_TARGET=https://127.0.0.1:1", "PHOTON_TOKEN=x")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"bogus"}, "unknown command"},
		{[]string{"tenant", "bogus"}, "unknown command"},
		{[]string{"tenant", "create"}, "NAME"},
		{[]string{"tenant", "create", "t1", "--limits", "vm.cpu ten COUNT"}, "bad value"},
		{[]string{"tenant", "create", "t1", "--limits", "vm.cpu 1 PETA"}, "unknown unit"},
		{[]string{"tenant", "list", "--bogus"}, "unknown flag"},
		{[]string{"-o", "yaml", "tenant", "list"}, "output format"},
		{[]string{"project", "create", "p", "-t", "t", "--limits", "vm 1 COUNT", "--percent", "5"}, "exclude each other"},
		{[]string{"flavor", "create", "-n", "f", "-k", "vm"}, "cost"},
		{[]string{"tenant", "quota", "set", "t1"}, "limits"},
		{[]string{"task", "show"}, "TASK_ID"},
	} {
		r := p.fail(2, tc.want, tc.args...)
		if !strings.Contains(r.stderr, "--help") {
			t.Errorf("usage error without a pointer to --help: %s", r)
		}
	}
	// Every command has help with an example.
	for _, args := range [][]string{
		{"target", "set"}, {"target", "login"}, {"tenant", "create"}, {"tenant", "quota", "update"},
		{"project", "create"}, {"project", "list"}, {"flavor", "create"}, {"task", "list"}, {"system", "status"},
	} {
		out := p.ok(append(args, "--help")...)
		if !strings.Contains(out, "Examples:") {
			t.Errorf("photon %s --help has no example:\n%s", strings.Join(args, " "), out)
		}
	}
}

// checkQuota compares a quota's items with want.
func checkQuota(t *testing.T, what string, got api.Quota, want map[string]api.QuotaItem) {
	t.Helper()
	if len(got.QuotaItems) != len(want) {
		t.Errorf("%s quota = %+v, want %+v", what, got.QuotaItems, want)
		return
	}
	for k, w := range want {
		if g := got.QuotaItems[k]; g != w {
			t.Errorf("%s quota %s = %+v, want %+v", what, k, g, w)
		}
	}
}

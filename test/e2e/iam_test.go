package e2e

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/internal/certs"
	"github.com/photon-cloud/photon/internal/photontest"
)

// runIn runs the CLI with stdin and returns stdout, stderr and the exit status.
func (c *cli) runIn(stdin string, args ...string) (string, string, int) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = c.env
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		c.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// TestCLIFingerprintPinning: `target set` without a CA shows the CA's
// fingerprint and pins it when the person says yes; -n needs --fingerprint.
func TestCLIFingerprintPinning(t *testing.T) {
	c := photontest.StartController(t, "", nil)
	fp, err := certs.Fingerprint(c.CACert)
	if err != nil {
		t.Fatal(err)
	}
	colons := strings.ToUpper(fp[0:2]) + ":" + strings.ToUpper(fp[2:4])

	p := newCLI(t)
	out, errs, code := p.runIn("no\n", "target", "set", c.URL)
	if code != 1 || !strings.Contains(out, colons) || !strings.Contains(errs, "not trusted") {
		t.Fatalf("answering no: exit %d\n%s%s", code, out, errs)
	}
	out, errs, code = p.runIn("y\n", "target", "set", c.URL)
	if code != 0 || !strings.Contains(out, colons) {
		t.Fatalf("answering yes: exit %d\n%s%s", code, out, errs)
	}
	var cfg struct {
		Fingerprint string `json:"fingerprint"`
	}
	b, _ := os.ReadFile(p.Config)
	if err := json.Unmarshal(b, &cfg); err != nil || cfg.Fingerprint != fp {
		t.Fatalf("pinned %q, want %q (%v)", cfg.Fingerprint, fp, err)
	}
	p.ok("target", "login", "--token", c.Token)
	p.ok("tenant", "list") // the pin verifies the connection
	if out := p.ok("target", "show"); !strings.Contains(out, "pinned CA") {
		t.Errorf("target show:\n%s", out)
	}

	q := newCLI(t)
	q.fail(2, "--fingerprint", "-n", "target", "set", c.URL)
	q.fail(1, "does not match", "-n", "target", "set", c.URL, "--fingerprint", strings.Repeat("ab", 32))
	q.ok("-n", "target", "set", c.URL, "--fingerprint", fp)
	q.ok("target", "login", "--token", c.Token)
	q.ok("system", "status")
}

// TestCLIUsersRolesAudit: users, a password login with a saved session,
// tenant and project grants, refusals, logout, and the audit log.
func TestCLIUsersRolesAudit(t *testing.T) {
	c := photontest.StartController(t, "", nil)
	admin := loggedIn(t, c)
	admin.ok("user", "create", "alice", "--password", "alice-password")
	admin.ok("user", "create", "bob", "--password", "bob-password", "--group", "devs")
	if out := admin.ok("-n", "user", "list"); len(rows(out)) != 2 || rows(out)[1][1] != "devs" {
		t.Errorf("user list:\n%s", out)
	}
	admin.ok("tenant", "create", "t1")
	admin.ok("tenant", "create", "t2")
	admin.ok("project", "create", "p1", "-t", "t1")
	admin.ok("tenant", "iam", "add", "t1", "-p", "user:alice", "-r", "tenant-admin")
	admin.ok("project", "iam", "add", "p1", "-t", "t1", "-p", "group:devs", "-r", "project-viewer")
	if out := admin.ok("-n", "tenant", "iam", "show", "t1"); strings.TrimSpace(out) != "tenant-admin\tuser:alice" {
		t.Errorf("tenant iam show:\n%q", out)
	}
	admin.fail(1, "InvalidEntity", "tenant", "iam", "add", "t1", "-p", "user:alice", "-r", "project-user")

	alice := newCLI(t)
	alice.ok("target", "set", c.URL, "--ca-cert", c.CACert)
	alice.fail(1, "InvalidCredentials", "target", "login", "-u", "alice", "-p", "wrong-password")
	if _, errs, code := alice.runIn("alice-password\n", "target", "login", "-u", "alice", "-p", "-"); code != 0 {
		t.Fatalf("login with the password on stdin: exit %d %s", code, errs)
	}
	b, _ := os.ReadFile(alice.Config)
	if !strings.Contains(string(b), "refreshToken") {
		t.Errorf("no session saved:\n%s", b)
	}
	var tenants []api.Tenant
	alice.json(&tenants, "tenant", "list")
	if len(tenants) != 1 || tenants[0].Name != "t1" {
		t.Errorf("alice's tenants = %+v, want only t1", tenants)
	}
	alice.ok("project", "create", "p2", "-t", "t1") // tenant-admin may
	alice.fail(1, "TenantNotFound", "project", "create", "p3", "-t", tenants[0].ID[:0]+"t2")
	alice.fail(1, "AccessForbidden", "user", "list")
	alice.fail(1, "AccessForbidden", "tenant", "create", "t3")

	bob := newCLI(t)
	bob.ok("target", "set", c.URL, "--ca-cert", c.CACert)
	bob.ok("target", "login", "-u", "bob", "-p", "bob-password")
	bob.ok("project", "show", "p1", "-t", "t1")
	bob.fail(1, "ProjectNotFound", "project", "show", "p2", "-t", "t1")
	bob.fail(1, "AccessForbidden", "project", "delete", "p1", "-t", "t1")

	alice.ok("target", "logout")
	alice.fail(1, "MissingAuthToken", "tenant", "list")

	admin.ok("tenant", "iam", "remove", "t1", "-p", "user:alice", "-r", "tenant-admin")
	admin.ok("user", "set-groups", "bob") // bob leaves devs: t1 and p1 are gone for him
	bob.fail(1, "TenantNotFound", "project", "show", "p1", "-t", "t1")
	admin.ok("user", "delete", "bob")
	bob.fail(1, "InvalidAuthToken", "tenant", "list")

	out := admin.ok("system", "audit", "--since", "1h")
	for _, want := range []string{"POST /v1/users", "user:alice", "PATCH /v1/tenants/", "login:alice", "InvalidCredentials", "DELETE /v1/users/bob"} {
		if !strings.Contains(out, want) {
			t.Errorf("audit lacks %q:\n%s", want, out)
		}
	}
	var entries []api.AuditEntry
	admin.json(&entries, "system", "audit")
	if len(entries) < 10 {
		t.Errorf("audit has %d entries", len(entries))
	}
}

// TestCLIRefresh: the CLI refreshes an expired access token with the saved
// refresh token, transparently, and saves the new one.
func TestCLIRefresh(t *testing.T) {
	c := photontest.StartController(t, "", nil, "--access-token-ttl", "2s")
	admin := loggedIn(t, c)
	admin.ok("user", "create", "rita", "--password", "rita-password")
	p := newCLI(t)
	p.ok("target", "set", c.URL, "--ca-cert", c.CACert)
	p.ok("target", "login", "-u", "rita", "-p", "rita-password")
	access := func() string {
		var cfg struct {
			Session struct {
				AccessToken string `json:"accessToken"`
			} `json:"session"`
		}
		b, _ := os.ReadFile(p.Config)
		if err := json.Unmarshal(b, &cfg); err != nil || cfg.Session.AccessToken == "" {
			t.Fatalf("no session in the configuration: %v\n%s", err, b)
		}
		return cfg.Session.AccessToken
	}
	first := access()
	time.Sleep(3 * time.Second)
	p.ok("tenant", "list")
	if access() == first {
		t.Error("the access token was not refreshed")
	}
	// Refresh tokens rotate: the CLI saved the new one, so it refreshes
	// again (the old one used again would revoke the session).
	second := access()
	time.Sleep(3 * time.Second)
	p.ok("tenant", "list")
	if access() == second {
		t.Error("the access token was not refreshed a second time")
	}
	p.ok("target", "logout")
	p.fail(1, "MissingAuthToken", "tenant", "list")
}

package httpapi_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime/multipart"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/photon-cloud/photon/api"
	"github.com/photon-cloud/photon/client"
	"github.com/photon-cloud/photon/internal/controller"
	"github.com/photon-cloud/photon/internal/driver/fake"
	"github.com/photon-cloud/photon/internal/photontest"
	"github.com/photon-cloud/photon/internal/store"
)

// setVirtualSize writes an image record's virtual size directly (as an
// upload of a qcow2 with that virtual size records it).
func setVirtualSize(t *testing.T, c *photontest.Cloud, id string, size int64) {
	t.Helper()
	if _, err := c.Server.Store.Update(ctx(), func(tx *store.Txn) error {
		var img api.Image
		if err := tx.MustGet(ctx(), store.Key("images", id), &img); err != nil {
			return err
		}
		img.VirtualSize = size
		return tx.Put(store.Key("images", id), &img)
	}); err != nil {
		t.Fatal(err)
	}
}

// A VM's boot disk is at least as large as its image's virtual size and is
// charged for it, in the project's quota and on the host's datastore: a
// small file holding a huge disk is no way around either.
func TestBootDiskVirtualSize(t *testing.T) {
	c := photontest.NewController(t, "")
	cl := c.Client
	photontest.NewAgent(t, c, fake.Config{CPUCount: 16, MemoryMB: 16 * 1024,
		Datastores: []api.DatastoreReport{{Name: "local", CapacityGB: 100}}})
	for _, f := range []api.FlavorCreateSpec{
		{Name: "vs-small", Kind: "vm", Cost: []api.QuotaLineItem{{Key: "vm.cpu", Value: 1, Unit: "COUNT"}, {Key: "vm.memory", Value: 1, Unit: "GB"}}},
		{Name: "vs-eph", Kind: "ephemeral-disk", Cost: []api.QuotaLineItem{{Key: "ephemeral-disk", Value: 1, Unit: "COUNT"}}},
	} {
		waitFor(t, cl)(cl.CreateFlavor(ctx(), &f))
	}
	tenant := waitFor(t, cl)(cl.CreateTenant(ctx(), &api.TenantCreateSpec{Name: "vs",
		Quota: quota("vm.cpu", 100, "COUNT", "ephemeral-disk.capacity", 1<<22, "GB")})).Entity.ID
	small := waitFor(t, cl)(cl.CreateProject(ctx(), tenant, &api.ProjectCreateSpec{Name: "vs-small",
		Quota: quota("vm.cpu", 10, "COUNT", "ephemeral-disk.capacity", 50, "GB")})).Entity.ID
	big := waitFor(t, cl)(cl.CreateProject(ctx(), tenant, &api.ProjectCreateSpec{Name: "vs-big",
		Quota: quota("vm.cpu", 10, "COUNT", "ephemeral-disk.capacity", 1<<21, "GB")})).Entity.ID
	upload := func(project string) string {
		return waitFor(t, cl)(cl.UploadImage(ctx(), bytes.NewReader(make([]byte, 4096)), 4096,
			client.ImageUpload{Name: "vs-img", ProjectID: project, FileName: "disk.raw"})).Entity.ID
	}
	imgSmall, imgBig := upload(small), upload(big)
	const pib = int64(1) << 50
	spec := func(name, image string, capGB float64) *api.VMCreateSpec {
		return &api.VMCreateSpec{Name: name, Flavor: "vs-small", SourceImageID: image,
			AttachedDisks: []api.AttachedDiskCreateSpec{{Name: "boot", Kind: "ephemeral-disk", Flavor: "vs-eph", CapacityGB: capGB, BootDisk: true}}}
	}

	// 1 PiB virtual size against a 50 GB quota: refused at once.
	setVirtualSize(t, c, imgSmall, pib)
	for _, capGB := range []float64{0, 1} {
		_, err := cl.CreateVM(ctx(), small, spec(fmt.Sprintf("huge%v", capGB), imgSmall, capGB))
		if !errors.Is(err, &api.Error{Code: api.CodeQuotaError}) {
			t.Errorf("VM of a 1 PiB image, capacityGb %v, in a 50 GB project = %v, want QuotaError", capGB, err)
		}
	}

	// Within quota but not on any datastore: the create ends ERROR.
	setVirtualSize(t, c, imgBig, pib)
	task, err := cl.CreateVM(ctx(), big, spec("huge", imgBig, 1))
	if err == nil {
		task, err = cl.WaitTask(ctx(), task)
	}
	if err == nil && task.State == api.TaskCompleted {
		t.Errorf("VM of a 1 PiB image on a 100 GB datastore completed")
	} else if err == nil {
		t.Logf("1 PiB on a 100 GB datastore: %v", task.Err())
	}

	// A 5 GiB + 1 byte disk asked for as 1 GB is raised to 6 GB and
	// charged 6 GB.
	setVirtualSize(t, c, imgSmall, 5<<30+1)
	task = waitFor(t, cl)(cl.CreateVM(ctx(), small, spec("raised", imgSmall, 1)))
	v, err := cl.GetVM(ctx(), task.Entity.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.AttachedDisks) != 1 || v.AttachedDisks[0].CapacityGB != 6 {
		t.Errorf("boot disk of a 5 GiB+1 image asked as 1 GB: %+v, want capacityGb 6", v.AttachedDisks)
	}
	q, err := cl.GetProjectQuota(ctx(), small)
	if err != nil {
		t.Fatal(err)
	}
	if got := q.QuotaItems["ephemeral-disk.capacity"].Usage; got != 6 {
		t.Errorf("ephemeral-disk.capacity usage = %v, want 6", got)
	}
	ds, err := cl.ListDatastores(ctx())
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].UsedGB != 6 {
		t.Errorf("datastores = %+v, want 6 GB used", ds)
	}
}

// Free-form fields are bounded with a 400 naming the field, so a body
// under the 1 MiB limit is never refused by the store with a 500; every
// 413 carries its JSON body, over HTTP/2 and HTTP/1.1 alike.
func TestBodySizes(t *testing.T) {
	c := photontest.NewController(t, "")
	cl := c.Client
	photontest.NewAgent(t, c, fake.Config{CPUCount: 16, MemoryMB: 16 * 1024})
	for _, f := range []api.FlavorCreateSpec{
		{Name: "bs-small", Kind: "vm", Cost: []api.QuotaLineItem{{Key: "vm.cpu", Value: 1, Unit: "COUNT"}, {Key: "vm.memory", Value: 1, Unit: "GB"}}},
		{Name: "bs-eph", Kind: "ephemeral-disk", Cost: []api.QuotaLineItem{{Key: "ephemeral-disk", Value: 1, Unit: "COUNT"}}},
	} {
		waitFor(t, cl)(cl.CreateFlavor(ctx(), &f))
	}
	tenant := waitFor(t, cl)(cl.CreateTenant(ctx(), &api.TenantCreateSpec{Name: "bs", Quota: quota("vm.cpu", 100, "COUNT")})).Entity.ID
	project := waitFor(t, cl)(cl.CreateProject(ctx(), tenant, &api.ProjectCreateSpec{Name: "bs1", Quota: quota("vm.cpu", 10, "COUNT")})).Entity.ID
	vm := waitFor(t, cl)(cl.CreateVM(ctx(), project, &api.VMCreateSpec{Name: "bs-vm", Flavor: "bs-small",
		AttachedDisks: []api.AttachedDiskCreateSpec{{Name: "boot", Kind: "ephemeral-disk", Flavor: "bs-eph", CapacityGB: 1, BootDisk: true}}})).Entity.ID

	bigMap := func(total int) map[string]string {
		m := map[string]string{}
		for i := 0; total > 0; i++ {
			n := min(total, 8<<10)
			m[fmt.Sprintf("k%d", i)] = strings.Repeat("v", n)
			total -= n
		}
		return m
	}
	vmSpec := func(name string, env map[string]string) *api.VMCreateSpec {
		return &api.VMCreateSpec{Name: name, Flavor: "bs-small", Environment: env,
			AttachedDisks: []api.AttachedDiskCreateSpec{{Name: "boot", Kind: "ephemeral-disk", Flavor: "bs-eph", CapacityGB: 1, BootDisk: true}}}
	}
	one := func(v string) map[string]string { return map[string]string{"k": v} }
	mustJSON := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	cases := []struct {
		name, method, path, body string
		status                   int
		field                    string
	}{
		{"metadata 0.9 MB", "POST", "/v1/vms/" + vm + "/set_metadata", mustJSON(api.VMMetadata{Metadata: one(strings.Repeat("m", 900<<10))}), 400, "metadata"},
		{"metadata 0.9 MB in many keys", "POST", "/v1/vms/" + vm + "/set_metadata", mustJSON(api.VMMetadata{Metadata: bigMap(900 << 10)}), 400, "metadata"},
		{"metadata 65 KB", "POST", "/v1/vms/" + vm + "/set_metadata", mustJSON(api.VMMetadata{Metadata: one(strings.Repeat("m", 65<<10))}), 400, "metadata"},
		{"metadata 60 KB", "POST", "/v1/vms/" + vm + "/set_metadata", mustJSON(api.VMMetadata{Metadata: one(strings.Repeat("m", 60<<10))}), 201, ""},
		{"environment 0.9 MB", "POST", "/v1/projects/" + project + "/vms", mustJSON(vmSpec("env-big", one(strings.Repeat("e", 900<<10)))), 400, "environment"},
		{"environment 60 KB", "POST", "/v1/projects/" + project + "/vms", mustJSON(vmSpec("env-ok", bigMap(60<<10))), 201, ""},
		{"tags 3000", "POST", "/v1/projects/" + project + "/vms", mustJSON(&api.VMCreateSpec{Name: "tags", Flavor: "bs-small", Tags: strings.Split(strings.Repeat("t,", 3000), ",")[:3000],
			AttachedDisks: []api.AttachedDiskCreateSpec{{Name: "boot", Kind: "ephemeral-disk", Flavor: "bs-eph", CapacityGB: 1, BootDisk: true}}}), 400, "tags"},
		{"body 1.5 MiB", "POST", "/v1/vms/" + vm + "/set_metadata", mustJSON(api.VMMetadata{Metadata: one(strings.Repeat("m", 3<<19))}), 413, ""},
		{"body 2 MiB, tenant create", "POST", "/v1/tenants", `{"name": "` + strings.Repeat("x", 2<<20) + `"}`, 413, ""},
		{"body 64 MiB, tenant create", "POST", "/v1/tenants", `{"name": "` + strings.Repeat("x", 64<<20) + `"}`, 413, ""},
	}
	for _, proto := range []string{"h2", "http/1.1"} {
		for _, tc := range cases {
			t.Run(proto+"/"+tc.name, func(t *testing.T) {
				if tc.status == 201 && proto != "h2" {
					t.Skip("done once")
				}
				status, ct, e := rawProto(t, c, proto, tc.method, tc.path, "application/json", tc.body)
				if status != tc.status {
					t.Fatalf("= %d %+v, want %d", status, e, tc.status)
				}
				if status < 400 {
					return
				}
				if e.Code == "" || e.Message == "" || ct != "application/json" {
					t.Errorf("%d answer without its JSON body: content-type %q, %+v", status, ct, e)
				}
				if tc.field != "" && e.Data["field"] != tc.field {
					t.Errorf("= %+v, want the field %q named", e, tc.field)
				}
			})
		}
	}
}

// rawProto sends a request as the admin over HTTP/2 ("h2") or HTTP/1.1
// and returns the status, content type and error body.
func rawProto(t *testing.T, c *photontest.Cloud, proto, method, path, contentType, body string) (int, string, api.Error) {
	t.Helper()
	tr := httpTransport(t, c).(*http.Transport)
	if proto == "h2" {
		tr.ForceAttemptHTTP2 = true
	} else {
		tr.TLSClientConfig.NextProtos = []string{"http/1.1"}
	}
	req, err := http.NewRequest(method, c.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+c.Token)
	req.Header.Set("Content-Type", contentType)
	resp, err := (&http.Client{Transport: tr}).Do(req)
	if err != nil {
		t.Fatalf("%s %s over %s: %v", method, path, proto, err)
	}
	defer resp.Body.Close()
	if proto == "h2" && resp.ProtoMajor != 2 {
		t.Fatalf("answered over %s", resp.Proto)
	}
	b, _ := io.ReadAll(resp.Body)
	var e api.Error
	_ = json.Unmarshal(b, &e)
	return resp.StatusCode, resp.Header.Get("Content-Type"), e
}

// An upload over the image size bound is refused with 413 and its JSON
// body, though the client is still sending when the answer goes.
func TestUploadTooLarge(t *testing.T) {
	c := photontest.NewController(t, "", func(cfg *controller.Config) { cfg.MaxImageBytes = 1 << 20 })
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	_ = mw.WriteField("name", "big")
	fw, _ := mw.CreateFormFile("file", "disk.raw")
	_, _ = fw.Write(make([]byte, 64<<20))
	_ = mw.Close()
	for _, proto := range []string{"h2", "http/1.1"} {
		status, ct, e := rawProto(t, c, proto, "POST", "/v1/images", mw.FormDataContentType(), b.String())
		if status != 413 || e.Code != api.CodeRequestTooLarge || e.Message == "" || ct != "application/json" {
			t.Errorf("%s: 64 MiB upload over a 1 MiB bound = %d %q %+v, want 413 RequestTooLarge with its body", proto, status, ct, e)
		}
	}
}

// Every error answer keeps its JSON body though the request's body is left
// unread, as curl sees it over HTTP/2 and HTTP/1.1 (Go's client read it
// before; curl over HTTP/2 got the 413's headers and lost its body).
func TestErrorBodyUnreadRequest(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		t.Skip("no curl on this machine:", err)
	}
	c := photontest.NewController(t, "")
	big := filepath.Join(t.TempDir(), "big.json")
	if err := os.WriteFile(big, []byte(`{"name":"`+strings.Repeat("x", 2<<20)+`"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		proto, token string
		status       string
	}{
		{"--http2", c.Token, "413"}, {"--http1.1", c.Token, "413"},
		{"--http2", "", "401"}, {"--http1.1", "", "401"},
	} {
		for range 5 {
			args := []string{"-sS", "-o", "-", "-w", "\n%{http_code}", tc.proto, "--cacert", c.CACert, "-H", "Content-Type: application/json",
				"--data-binary", "@" + big, c.URL + "/v1/tenants"}
			if tc.token != "" {
				args = append(args, "-H", "Authorization: Bearer "+tc.token)
			}
			out, err := exec.Command(curl, args...).CombinedOutput()
			o := strings.TrimSpace(string(out))
			i := strings.LastIndex(o, "\n")
			body, status := o[:max(i, 0)], o[i+1:]
			var e api.Error
			if err != nil || status != tc.status || json.Unmarshal([]byte(body), &e) != nil || e.Code == "" || e.Message == "" {
				t.Errorf("curl %s, 2 MiB body, token %v: %v %q, want %s with a JSON error body", tc.proto, tc.token != "", err, out, tc.status)
			}
		}
	}
}

// /v1/system/usage counts the whole cloud: a system administrator's view.
// Anyone else gets 403 AccessForbidden (it answered every user before).
func TestSystemUsageAdminOnly(t *testing.T) {
	c := photontest.NewController(t, "")
	cl := c.Client
	waitFor(t, cl)(cl.CreateUser(ctx(), &api.UserCreateSpec{Name: "plain", Password: "password-plain"}))
	tok, err := cl.Login(ctx(), "plain", "password-plain")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.NewClient(t, tok.AccessToken).SystemUsage(ctx()); !errors.Is(err, &api.Error{Code: api.CodeAccessForbidden}) {
		t.Errorf("usage as a user without roles = %v, want AccessForbidden", err)
	}
	if _, err := cl.SystemUsage(ctx()); err != nil {
		t.Errorf("usage as the admin: %v", err)
	}
}

// Each refresh rotates the refresh token; the old one stops working, and
// using it again revokes the session (its access tokens and its newest
// refresh token too), as OAuth 2.0's security BCP asks.
func TestRefreshRotation(t *testing.T) {
	c := photontest.NewController(t, "")
	cl := c.Client
	waitFor(t, cl)(cl.CreateUser(ctx(), &api.UserCreateSpec{Name: "rot", Password: "password-rot"}))
	anon := c.NewClient(t, "")
	tok, err := anon.Login(ctx(), "rot", "password-rot")
	if err != nil {
		t.Fatal(err)
	}
	r1 := tok.RefreshToken
	t2, err := anon.Refresh(ctx(), r1)
	if err != nil {
		t.Fatal(err)
	}
	if t2.RefreshToken == "" || t2.RefreshToken == r1 {
		t.Fatalf("refresh answered refresh token %q, want a new one (was %q)", t2.RefreshToken, r1)
	}
	t3, err := anon.Refresh(ctx(), t2.RefreshToken)
	if err != nil || t3.RefreshToken == t2.RefreshToken {
		t.Fatalf("second refresh = %+v, %v; want a third refresh token", t3, err)
	}
	if _, err := c.NewClient(t, t3.AccessToken).ListTenants(ctx(), ""); err != nil {
		t.Fatalf("the newest access token: %v", err)
	}
	// r1 again: refused, and the session with it.
	if _, err := anon.Refresh(ctx(), r1); !isCode(err, api.CodeInvalidAuthToken) {
		t.Errorf("reused refresh token = %v, want InvalidAuthToken", err)
	}
	if _, err := anon.Refresh(ctx(), t3.RefreshToken); !isCode(err, api.CodeInvalidAuthToken) {
		t.Errorf("newest refresh token after a reuse = %v, want InvalidAuthToken (session revoked)", err)
	}
	if _, err := c.NewClient(t, t3.AccessToken).ListTenants(ctx(), ""); !isCode(err, api.CodeInvalidAuthToken) {
		t.Errorf("access token after a reuse = %v, want InvalidAuthToken (session revoked)", err)
	}
	// Another session is untouched; logging out with its first (rotated)
	// refresh token still ends it.
	tok, err = anon.Login(ctx(), "rot", "password-rot")
	if err != nil {
		t.Fatal(err)
	}
	t2, err = anon.Refresh(ctx(), tok.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	user := c.NewClient(t, t2.AccessToken)
	if err := user.Revoke(ctx(), tok.RefreshToken); err != nil {
		t.Fatalf("revoke with the rotated refresh token: %v", err)
	}
	if _, err := user.ListTenants(ctx(), ""); !isCode(err, api.CodeInvalidAuthToken) {
		t.Errorf("access token after revoke = %v, want InvalidAuthToken", err)
	}
}

// setImageState writes an image record's state directly.
func setImageState(t *testing.T, c *photontest.Cloud, id, state string) {
	t.Helper()
	if _, err := c.Server.Store.Update(ctx(), func(tx *store.Txn) error {
		var img api.Image
		if err := tx.MustGet(ctx(), store.Key("images", id), &img); err != nil {
			return err
		}
		img.State = state
		return tx.Put(store.Key("images", id), &img)
	}); err != nil {
		t.Fatal(err)
	}
}

// A VM's source image must be usable by its project: an infrastructure
// image, or one of that project. Another project's image answers as a
// missing one whatever its state (even to a system administrator), and
// gains no user.
func TestSourceImageScope(t *testing.T) {
	c := photontest.NewController(t, "")
	cl := c.Client
	photontest.NewAgent(t, c, fake.Config{CPUCount: 16, MemoryMB: 16 * 1024})
	for _, f := range []api.FlavorCreateSpec{
		{Name: "sc-small", Kind: "vm", Cost: []api.QuotaLineItem{{Key: "vm.cpu", Value: 1, Unit: "COUNT"}, {Key: "vm.memory", Value: 1, Unit: "GB"}}},
		{Name: "sc-eph", Kind: "ephemeral-disk", Cost: []api.QuotaLineItem{{Key: "ephemeral-disk", Value: 1, Unit: "COUNT"}}},
	} {
		waitFor(t, cl)(cl.CreateFlavor(ctx(), &f))
	}
	var projects [2]string
	for i, name := range []string{"sca", "scb"} {
		tenant := waitFor(t, cl)(cl.CreateTenant(ctx(), &api.TenantCreateSpec{Name: name, Quota: quota("vm.cpu", 100, "COUNT")})).Entity.ID
		projects[i] = waitFor(t, cl)(cl.CreateProject(ctx(), tenant, &api.ProjectCreateSpec{Name: name + "1", Quota: quota("vm.cpu", 10, "COUNT")})).Entity.ID
	}
	upload := func(name, project string) string {
		return waitFor(t, cl)(cl.UploadImage(ctx(), bytes.NewReader(make([]byte, 4096)), 4096,
			client.ImageUpload{Name: name, ProjectID: project, FileName: "disk.raw"})).Entity.ID
	}
	own, foreign, infra := upload("sc-own", projects[0]), upload("sc-foreign", projects[1]), upload("sc-infra", "")
	seq := 0
	create := func(image string) error {
		seq++
		task, err := cl.CreateVM(ctx(), projects[0], &api.VMCreateSpec{Name: fmt.Sprintf("sc%d", seq), Flavor: "sc-small", SourceImageID: image,
			AttachedDisks: []api.AttachedDiskCreateSpec{{Name: "boot", Kind: "ephemeral-disk", Flavor: "sc-eph", BootDisk: true}}})
		if err == nil {
			task, err = cl.WaitTask(ctx(), task)
		}
		if err == nil {
			err = task.Err()
		}
		return err
	}
	for _, tc := range []struct {
		name, image, state, code string
	}{
		{"own image", own, "", ""},
		{"infrastructure image", infra, "", ""},
		{"another tenant's image", foreign, "", "ImageNotFound"},
		{"another tenant's image in ERROR", foreign, api.ImageError, "ImageNotFound"},
		{"another tenant's image PENDING_DELETE", foreign, api.ImagePendingDelete, "ImageNotFound"},
		{"own image in ERROR", own, api.ImageError, "InvalidImageState"},
	} {
		if tc.state != "" {
			setImageState(t, c, tc.image, tc.state)
		}
		err := create(tc.image)
		switch {
		case tc.code == "" && err != nil:
			t.Errorf("%s: %v, want created", tc.name, err)
		case tc.code != "" && !errors.Is(err, &api.Error{Code: tc.code}):
			t.Errorf("%s: %v, want %s", tc.name, err, tc.code)
		}
		if tc.code == "ImageNotFound" {
			missing := create("0190aaaa-0000-7000-8000-000000000000")
			if err != nil && missing != nil && strings.ReplaceAll(err.Error(), tc.image, "X") != strings.ReplaceAll(missing.Error(), "0190aaaa-0000-7000-8000-000000000000", "X") {
				t.Errorf("%s answered %q; a missing image %q", tc.name, err, missing)
			}
		}
	}
	setImageState(t, c, foreign, api.ImageReady)
	if img, err := cl.GetImage(ctx(), foreign); err != nil || img.Users != 0 {
		t.Errorf("the foreign image = %+v, %v; want no user", img, err)
	}
}
